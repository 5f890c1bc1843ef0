package sqlitestore

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// TestIntentInAClaimReadsBackAsItsJournalLine: an intent kept in a page
// claim becomes, once written out, the very step row the journal would
// have written for it.
func TestIntentInAClaimReadsBackAsItsJournalLine(t *testing.T) {
	started := time.Date(2026, 11, 26, 1, 2, 3, 456789012, time.UTC)
	for _, r := range []engine.StepRecord{
		{Index: 0, StepID: "issue", Action: "certs.create", Status: engine.StepStarted, Input: json.RawMessage(`{"member":"a"}`), Started: started},
		{Index: 3, StepID: `quo"te\ and ünïcode`, Action: "files.append", Status: engine.StepStarted, Attempts: 2,
			Input: json.RawMessage(`{"record":{"name":"A \"B\"","n":1.5e3}}`), Output: json.RawMessage(`[1,null]`),
			Error: "line\nbreak", Started: started, Finished: started.Add(time.Second)},
		{Index: 1, StepID: "s", Action: "a.b", Status: engine.StepStarted},
	} {
		enc, err := encodeIntent(&r)
		if err != nil {
			t.Fatalf("encodeIntent(%+v): %v", r, err)
		}
		if !json.Valid(enc) {
			t.Fatalf("encodeIntent(%+v) = %s, not JSON", r, enc)
		}
		r.RunID = 42
		pr := &pagedRun{id: 42, intent: enc}
		got, err := pr.intentArgs()
		if err != nil {
			t.Fatal(err)
		}
		if want := stepArgs(&r); !reflect.DeepEqual(got, want) {
			t.Errorf("intent %s reads back as\n%#v\nwant\n%#v", enc, got, want)
		}
	}
	if _, err := encodeIntent(&engine.StepRecord{StepID: "s", Input: json.RawMessage(`{"a":`)}); err == nil {
		t.Error("an input that is not JSON was kept in the claim")
	}
}
