package files

import (
	"context"
	"reflect"
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

// TestRecordsDecodeLaterGivesTheFields: with PollRequest.Fields an
// undecoded event carries the values of those fields, decoded as a
// decoded read holds them (strings, numbers, objects, null), NoField for
// a field the record lacks, in the order asked; the key among them or
// not. Without Fields, or for a record decoded whole, there are none.
func TestRecordsDecodeLaterGivesTheFields(t *testing.T) {
	dir := t.TempDir()
	lines := []string{
		`{"id":"m1","score":80,"eligible":true,"name":{"first":"Ann"}}`,
		`{"id":"m2","score":60,"eligible":null,"note":"caf\u00e9"}`,
		`{"eligible":true,"id":"m3"}`,
		"{\"id\":\"m4\",\"s\":\"bad \xff utf8\"}", // decoded whole by encoding/json
	}
	write(t, dir, "r.jsonl", strings.Join(lines, "\n")+"\n")
	trigger := Spec().Trigger("records")
	params := map[string]any{"path": "r.jsonl", "key": "id"}
	whole, err := poll(t, open(t, dir), params, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, fields := range [][]string{{"score", "eligible", "name", "missing", "note"}, {"eligible", "id"}} {
		res, err := trigger.Poll(context.Background(), open(t, dir), connectors.PollRequest{Params: params, Start: connectors.StartNow, DecodeLater: true, Fields: fields})
		if err != nil || len(res.Events) != len(lines) {
			t.Fatalf("%q: %+v %v", fields, res, err)
		}
		for i, ev := range res.Events {
			if !ev.Undecoded {
				if ev.Fields != nil {
					t.Errorf("%q, event %d: decoded whole, with fields %v", fields, i, ev.Fields)
				}
				continue
			}
			if len(ev.Fields) != len(fields) {
				t.Fatalf("%q, event %d: fields %v", fields, i, ev.Fields)
			}
			for f, name := range fields {
				want, ok := whole.Events[i].Data[name]
				if !ok {
					want = connectors.NoField
				}
				if !reflect.DeepEqual(ev.Fields[f], want) {
					t.Errorf("%q, event %d: %s = %#v, want %#v", fields, i, name, ev.Fields[f], want)
				}
			}
			if ev.ID != whole.Events[i].ID || ev.Subject != whole.Events[i].Subject {
				t.Errorf("%q, event %d: %s %s, decoded %s %s", fields, i, ev.ID, ev.Subject, whole.Events[i].ID, whole.Events[i].Subject)
			}
		}
		if res.Events[3].Undecoded {
			t.Errorf("%q: the odd line is undecoded", fields)
		}
	}
	res, err := trigger.Poll(context.Background(), open(t, dir), connectors.PollRequest{Params: params, Start: connectors.StartNow, DecodeLater: true})
	if err != nil || res.Events[0].Fields != nil {
		t.Fatalf("without Fields: %v %v", res.Events[0].Fields, err)
	}
}
