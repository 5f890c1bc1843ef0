package files

import (
	"context"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

// TestRecordsDecodeLater: with PollRequest.DecodeLater a JSON line's
// event has no Data, Raw the whole line, and says it is undecoded; its
// ID, subject (from the key) and fingerprint are those of a decoded
// read; a line that cannot be decoded is refused as before, with the
// same error; CSV rows are decoded.
func TestRecordsDecodeLater(t *testing.T) {
	dir := t.TempDir()
	lines := []string{
		`{"id":"m1","score":80,"eligible":true,"name":{"first":"Ann"},"tags":["a",{"b":[1e3]}]}`,
		`{"id":"m2","score":60,"eligible":false,"note":"caf\u00e9 \"q\""}`,
		`{"id":7,"eligible":true}`,
		`{"eligible":true,"id":"m\u00e9"}`,
	}
	write(t, dir, "r.jsonl", strings.Join(lines, "\n")+"\n")
	trigger := Spec().Trigger("records")
	for _, key := range []string{"id", ""} {
		params := map[string]any{"path": "r.jsonl", "key": key}
		if key == "" {
			delete(params, "key")
		}
		whole, err := poll(t, open(t, dir), params, "")
		if err != nil {
			t.Fatal(err)
		}
		later, err := trigger.Poll(context.Background(), open(t, dir), connectors.PollRequest{Params: params, Start: connectors.StartNow, DecodeLater: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(later.Events) != len(lines) || later.Cursor != whole.Cursor {
			t.Fatalf("key %q: %d events, cursor %q; decoded: %d, %q", key, len(later.Events), later.Cursor, len(whole.Events), whole.Cursor)
		}
		for i, ev := range later.Events {
			w := whole.Events[i]
			if !ev.Undecoded || ev.Data != nil || w.Undecoded || w.Data == nil {
				t.Errorf("key %q, event %d: undecoded %v (data %v); decoded read: %v", key, i, ev.Undecoded, ev.Data, w.Undecoded)
			}
			if ev.ID != w.ID || ev.Subject != w.Subject || ev.Fingerprint != w.Fingerprint || string(ev.Raw) != lines[i] {
				t.Errorf("key %q, event %d: %s %s %s %s; decoded: %s %s %s", key, i, ev.ID, ev.Subject, ev.Fingerprint, ev.Raw, w.ID, w.Subject, w.Fingerprint)
			}
		}
	}
	// A bad line fails the poll as it does decoded, with the same error.
	for _, bad := range []string{`{"id":"m4","score":1e999}`, `{"id":"m4","other":[1,}`, `{"id":"m4","other":"\x"}`, `{"id":"m4"} trailing`, `{"score":1}`, `[1]`, `null`} {
		write(t, dir, "bad.jsonl", bad+"\n")
		bp := map[string]any{"path": "bad.jsonl", "key": "id"}
		_, wantErr := poll(t, open(t, dir), bp, "")
		_, err := trigger.Poll(context.Background(), open(t, dir), connectors.PollRequest{Params: bp, Start: connectors.StartNow, DecodeLater: true})
		if wantErr == nil || err == nil || err.Error() != wantErr.Error() {
			t.Errorf("%s: error %v, decoded %v", bad, err, wantErr)
		}
	}
	// A line the fast path leaves to encoding/json is decoded.
	write(t, dir, "odd.jsonl", "{\"id\":\"m5\",\"s\":\"bad \xff utf8\"}\n")
	res, err := trigger.Poll(context.Background(), open(t, dir), connectors.PollRequest{Params: map[string]any{"path": "odd.jsonl", "key": "id"}, Start: connectors.StartNow, DecodeLater: true})
	if err != nil || len(res.Events) != 1 || res.Events[0].Undecoded || res.Events[0].Data["s"] != "bad \ufffd utf8" || res.Events[0].Subject != "record/m5" {
		t.Fatalf("odd line: %+v %v", res, err)
	}
	// CSV rows are decoded.
	write(t, dir, "r.csv", "id,score\nm1,80\n")
	res, err = trigger.Poll(context.Background(), open(t, dir), connectors.PollRequest{Params: map[string]any{"path": "r.csv"}, Start: connectors.StartNow, DecodeLater: true})
	if err != nil || len(res.Events) != 1 || res.Events[0].Undecoded || len(res.Events[0].Data) != 2 {
		t.Fatalf("csv: %+v %v", res, err)
	}
}
