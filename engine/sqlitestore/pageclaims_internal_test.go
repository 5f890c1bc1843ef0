package sqlitestore

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
	"time"
	"unicode/utf8"

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

// TestAPageRunIsOneRowWrittenOnce: a run claimed with its page is no row
// of runs until its outcome; runs of the claim that end together are one
// page outcome, counted out of the claim, which is gone, both its rows,
// once every run of it is recorded; a read writes each out as one row,
// inserted finished (no update).
func TestAPageRunIsOneRowWrittenOnce(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	count := func(table string) (n int) {
		t.Helper()
		if err := s.r.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	now := time.Now()
	var evs []engine.NewEvent
	for _, id := range []string{"a", "b", "c"} {
		evs = append(evs, engine.NewEvent{ID: id, Subject: "s/" + id, Connector: "c", Data: json.RawMessage(`{}`),
			Intent: &engine.StepRecord{Index: 0, StepID: "w", Action: "c.write", Status: engine.StepStarted, Input: json.RawMessage(`{"id":"` + id + `"}`), Started: now}})
	}
	enq, err := s.Advance(ctx, "r", engine.Advance{Events: evs, Claim: &engine.ClaimRequest{Owner: "w1", Now: now, Lease: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if runs, claims, held := count("runs"), count("page_claims"), count("page_claim_runs"); runs != 0 || claims != 1 || held != 1 {
		t.Fatalf("after the advance: %d runs, %d claims, %d claims' runs; want the three runs in one claim, no row of runs", runs, claims, held)
	}
	var writes []engine.JournalWrite
	for _, q := range enq[:2] {
		writes = append(writes, engine.JournalWrite{Lease: q.Run.Lease(),
			Steps: []engine.StepRecord{{RunID: q.RunID, Index: 0, StepID: "w", Action: "c.write", Status: engine.StepSucceeded, Attempts: 1, Started: now, Finished: now}},
			Fin:   &engine.Completion{RunID: q.RunID, Status: engine.RunSucceeded, Finished: now}})
	}
	for i, err := range s.RecordMany(ctx, writes) {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	// The two ended together: one page outcome, listed out of the claim,
	// which holds the third.
	if runs, steps, outcomes, ended, claims := count("runs"), count("steps"), count("page_outcomes"), count("page_ended"), count("page_claims"); runs != 0 || steps != 0 || outcomes != 1 || ended != 2 || claims != 1 {
		t.Fatalf("after two outcomes: %d runs, %d steps, %d page outcomes, %d runs ended out of their claim, %d claims; want 0, 0, 1, 2, 1",
			runs, steps, outcomes, ended, claims)
	}
	var held []int64
	rows, err := s.r.Query(`SELECT run FROM page_runs`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		held = append(held, id)
	}
	rows.Close()
	if len(held) != 1 || held[0] != enq[2].RunID {
		t.Fatalf("page_runs lists %v; want only the third run, %d", held, enq[2].RunID)
	}
	last := enq[2]
	if err := s.Record(ctx, last.Run.Lease(), nil, &engine.Completion{RunID: last.RunID, Status: engine.RunSucceeded, Finished: now}); err != nil {
		t.Fatal(err)
	}
	if claims, held, ended, outcomes := count("page_claims"), count("page_claim_runs"), count("page_ended"), count("page_outcomes"); claims != 0 || held != 0 || ended != 0 || outcomes != 2 {
		t.Fatalf("after the last outcome: %d claims, %d claims' runs, %d ended, %d page outcomes; want none, none, none, 2", claims, held, ended, outcomes)
	}
	if len(s.paged) != 0 {
		t.Errorf("the handle still remembers %d claimed runs", len(s.paged))
	}
	// An operator's read writes them out: each run one row, finished as
	// its outcome says, with its step (the third's intent kept).
	list, err := s.ListRuns(ctx, engine.RunFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var finished int
	if err := s.r.QueryRow(`SELECT count(*) FROM runs WHERE status = 'succeeded' AND attempts = 1 AND owner IS NULL`).Scan(&finished); err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || finished != 3 || count("steps") != 3 || count("page_outcomes") != 0 {
		t.Fatalf("after a read: %d runs listed, %d rows succeeded, %d steps, %d page outcomes; want 3, 3, 3, 0", len(list), finished, count("steps"), count("page_outcomes"))
	}
}

// FuzzIntentInAClaim: whatever a step's names, error and input hold, the
// intent kept in a claim reads back as the journal line, or the advance
// refuses it (an input or output that is not JSON), and the claim's JSON
// stays JSON.
func FuzzIntentInAClaim(f *testing.F) {
	f.Add("issue", "certs.create", "", `{"member":"a"}`, `[1]`, 0, int64(1764118800123456789))
	f.Add(`q"\`, "a.b", "line\nbreak \u2028", `"s"`, ``, 7, int64(0))
	f.Fuzz(func(t *testing.T, step, action, errText, input, output string, index int, started int64) {
		if !utf8.ValidString(step) || !utf8.ValidString(action) || !utf8.ValidString(errText) {
			t.Skip("names and errors are text")
		}
		r := engine.StepRecord{Index: index, StepID: step, Action: action, Status: engine.StepStarted, Error: errText, Attempts: 1}
		if input != "" {
			r.Input = json.RawMessage(input)
		}
		if output != "" {
			r.Output = json.RawMessage(output)
		}
		if started > 0 {
			r.Started = time.Unix(0, started)
		}
		enc, err := encodeIntent(&r)
		if err != nil {
			if (input == "" || json.Valid([]byte(input))) && (output == "" || json.Valid([]byte(output))) {
				t.Fatalf("refused an intent whose input and output are JSON: %v", err)
			}
			return
		}
		if !json.Valid(enc) {
			t.Fatalf("the claim would hold %q, not JSON", enc)
		}
		r.RunID = 9
		got, err := (&pagedRun{id: 9, intent: enc}).intentArgs()
		if err != nil {
			t.Fatal(err)
		}
		want := stepArgs(&r)
		// What reads back is the JSON as encoding/json keeps a raw value.
		for i, raw := range []json.RawMessage{r.Input, r.Output} {
			if len(raw) > 0 {
				var back json.RawMessage
				if err := json.Unmarshal(raw, &back); err != nil {
					t.Fatal(err)
				}
				want[5+i] = []byte(back)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("intent %s reads back as\n%#v\nwant\n%#v", enc, got, want)
		}
	})
}

// twoHandles opens one new store twice, as two processes would.
func twoHandles(t *testing.T) (s, other *Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.db")
	var err error
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if other, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return s, other
}

// TestARunTakenElsewhereIsForgotten: a claimed run that another handle
// released is forgotten at this handle's next renewal; a run it still
// holds is remembered.
func TestARunTakenElsewhereIsForgotten(t *testing.T) {
	ctx := context.Background()
	s, other := twoHandles(t)
	now := time.Now()
	claimOne := func(id string) int64 {
		t.Helper()
		enq, err := s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{{ID: id, Subject: "s/" + id, Connector: "c", Data: json.RawMessage(`{}`)}},
			Claim: &engine.ClaimRequest{Owner: "w1", Now: now, Lease: time.Minute}})
		if err != nil || enq[0].Run == nil {
			t.Fatalf("advance of %s: %+v, %v", id, enq, err)
		}
		return enq[0].RunID
	}
	released := claimOne("a")
	if n, err := other.ReleaseOwner(ctx, "w1"); err != nil || n != 1 {
		t.Fatalf("ReleaseOwner through another handle: %d, %v", n, err)
	}
	kept := claimOne("b")
	if _, err := s.RenewLeases(ctx, "w1", now.Add(time.Minute), []int64{released, kept}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if s.paged[released] != nil || s.paged[kept] == nil {
		t.Errorf("after the renewal the handle remembers run %d: %v, run %d: %v; want only the one it holds (%d)",
			released, s.paged[released] != nil, kept, s.paged[kept] != nil, kept)
	}
}

// TestARunWrittenOutElsewhereIsJournaledAsARowWhenItsClaimIDIsReused: a
// run this handle claimed with a page is written out by another handle
// (an operator's read), which deletes the claim; the next page claim
// gets the same ID, with later runs. Journaling the first run then
// finishes its row, and leaves the new claim and its run alone.
func TestARunWrittenOutElsewhereIsJournaledAsARowWhenItsClaimIDIsReused(t *testing.T) {
	ctx := context.Background()
	s, other := twoHandles(t)
	now := time.Now()
	claimOne := func(id string) (engine.Enqueued, int64) {
		t.Helper()
		enq, err := s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{{ID: id, Subject: "s/" + id, Connector: "c", Data: json.RawMessage(`{}`)}},
			Claim: &engine.ClaimRequest{Owner: "w1", Now: now, Lease: time.Minute}})
		if err != nil || enq[0].Run == nil {
			t.Fatalf("advance of %s: %+v, %v", id, enq, err)
		}
		var claim int64
		if err := s.r.QueryRow(`SELECT max(id) FROM page_claims`).Scan(&claim); err != nil {
			t.Fatal(err)
		}
		return enq[0], claim
	}
	first, firstClaim := claimOne("a")
	if _, err := other.ListRuns(ctx, engine.RunFilter{}); err != nil { // writes every claim out
		t.Fatal(err)
	}
	second, secondClaim := claimOne("b")
	if secondClaim != firstClaim {
		t.Fatalf("the second page claim has ID %d, the first had %d: the test needs the ID given again", secondClaim, firstClaim)
	}
	yes := true
	if err := s.Record(ctx, first.Run.Lease(), nil, &engine.Completion{RunID: first.RunID, Status: engine.RunSucceeded, Condition: &yes, Finished: now}); err != nil {
		t.Fatalf("journaling run %d, written out elsewhere: %v", first.RunID, err)
	}
	var pending int64
	if err := s.r.QueryRow(`SELECT pending FROM page_claims WHERE id = ?`, secondClaim).Scan(&pending); err != nil || pending != 1 {
		t.Errorf("the second page claim holds %d runs (%v), want 1: run %d", pending, err, second.RunID)
	}
	if s.paged[second.RunID] == nil {
		t.Errorf("the handle no longer remembers run %d of the second claim", second.RunID)
	}
	// (An operator's read writes the second claim out too.)
	run, err := s.GetRun(ctx, first.RunID)
	if err != nil || run.Status != engine.RunSucceeded {
		t.Fatalf("run %d: %+v, %v; want it succeeded", first.RunID, run, err)
	}
}

// TestAnAdvanceEncodedAheadClaimsAsOneEncodedInTurn: a page encoded ahead
// (EncodeAdvance, while the page before commits) writes the same page
// claim as one Advance encodes itself.
func TestAnAdvanceEncodedAheadClaimsAsOneEncodedInTurn(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	page := func() engine.Advance {
		var evs []engine.NewEvent
		for i := range 4 {
			id := fmt.Sprintf("e%d", i)
			ev := engine.NewEvent{ID: id, Subject: "m/" + id, Connector: "c", Data: json.RawMessage(`{"n":` + fmt.Sprint(i) + `}`), Skipped: i == 2}
			if i != 1 {
				ev.OrderingKey = "k" + id
				ev.Intent = &engine.StepRecord{Index: 0, StepID: "issue", Action: "c.write", Status: engine.StepStarted,
					Input: json.RawMessage(`{"member":"` + id + `"}`), Attempts: 1, Started: now}
			}
			evs = append(evs, ev)
		}
		return engine.Advance{Events: evs, Claim: &engine.ClaimRequest{Owner: "w1", Now: now, Lease: time.Minute}}
	}
	claimed := func(s *Store) string {
		t.Helper()
		var keys, runs string
		if err := s.r.QueryRow(`SELECT keys, runs FROM page_claim_runs`).Scan(&keys, &runs); err != nil {
			t.Fatal(err)
		}
		// created is the store's clock at the advance.
		return keys + "\n" + regexp.MustCompile(`"created":\d+`).ReplaceAllString(runs, `"created":T`)
	}
	inTurn, ahead := tempStore(t), tempStore(t)
	if _, err := inTurn.Advance(ctx, "r", page()); err != nil {
		t.Fatal(err)
	}
	adv := page()
	if err := ahead.EncodeAdvance("r", &adv); err != nil || adv.Encoded == nil {
		t.Fatalf("EncodeAdvance: %v, encoded %v", err, adv.Encoded)
	}
	if _, err := ahead.Advance(ctx, "r", adv); err != nil {
		t.Fatal(err)
	}
	if a, b := claimed(ahead), claimed(inTurn); a != b {
		t.Errorf("the page claim encoded ahead:\n%s\nencoded in turn:\n%s", a, b)
	}
}
