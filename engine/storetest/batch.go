package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// batchJournal returns s's engine.BatchJournal, skipping the test (the
// ability is optional) when it has none.
func batchJournal(t *testing.T, s engine.Store) engine.BatchJournal {
	t.Helper()
	bj, ok := s.(engine.BatchJournal)
	if !ok {
		t.Skipf("%T has no engine.BatchJournal (optional)", s)
	}
	return bj
}

// claimEach advances one event per id (each its own key) and claims them
// all, in arrival order.
func claimEach(t *testing.T, s engine.Store, now time.Time, ids ...string) []*engine.ClaimedRun {
	t.Helper()
	var evs []engine.NewEvent
	for _, id := range ids {
		evs = append(evs, ev(id, "k-"+id))
	}
	advance(t, s, "r", evs...)
	runs := claim(t, s, "w", len(ids), now)
	if len(runs) != len(ids) {
		t.Fatalf("claimed %s, want %v", eventIDs(runs), ids)
	}
	return runs
}

func intentOf(run int64, step string, now time.Time) engine.StepRecord {
	return engine.StepRecord{RunID: run, Index: 0, StepID: step, Action: "c.create", Status: engine.StepStarted,
		Input: json.RawMessage(`{"run":` + fmt.Sprint(run) + `}`), Attempts: 1, Started: now}
}

func resultOf(intent engine.StepRecord, now time.Time, wrote ...engine.Echo) engine.StepRecord {
	r := intent
	r.Status, r.Output, r.Finished, r.Wrote = engine.StepSucceeded, json.RawMessage(`{"ok":true}`), now, wrote
	return r
}

func isLeaseLost(err error, run int64) bool {
	var lost *engine.LeaseLostError
	return errors.As(err, &lost) && errors.Is(err, engine.ErrLeaseLost) && lost.RunID == run
}

// testRecordMany: a batch writes each of its writes as Record would, in
// order, and each stands alone: a lost lease in the middle, or a write of
// another run's records, refuses that write only and writes nothing of
// it; the others commit, echoes and give-backs included.
func testRecordMany(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	bj := batchJournal(t, s)
	now := time.Now().UTC().Truncate(time.Millisecond)
	runs := claimEach(t, s, now, "1", "2", "3", "4", "5")
	r1, r2, r3, r4, r5 := runs[0], runs[1], runs[2], runs[3], runs[4]
	// Run 2's lease is lost: given back and claimed again, by a new token.
	stale := r2.Lease()
	if err := s.Record(ctx, stale, nil, &engine.Completion{RunID: r2.ID, Status: engine.RunQueued}); err != nil {
		t.Fatal(err)
	}
	again := claim(t, open(t), "w2", 1, now)
	if len(again) != 1 || again[0].ID != r2.ID {
		t.Fatalf("claimed %s again, want run %d", eventIDs(again), r2.ID)
	}
	written := engine.Echo{Connector: "fake", Subject: "member/3", Fingerprint: "f3"}
	i1 := intentOf(r1.ID, "issue", now)
	writes := []engine.JournalWrite{
		// 0: run 1's intent.
		{Lease: r1.Lease(), Steps: []engine.StepRecord{i1}},
		// 1: the lost lease: its steps and outcome are refused.
		{Lease: stale, Steps: []engine.StepRecord{intentOf(r2.ID, "issue", now)}, Fin: &engine.Completion{RunID: r2.ID, Status: engine.RunDead, Error: "stale", Finished: now}},
		// 2: run 3 ends with a write, remembered as an echo.
		{Lease: r3.Lease(), Steps: []engine.StepRecord{resultOf(intentOf(r3.ID, "issue", now), now, written)},
			Fin: &engine.Completion{RunID: r3.ID, Status: engine.RunSucceeded, Finished: now, Version: "v3"}},
		// 3: run 4 is given back.
		{Lease: r4.Lease(), Fin: &engine.Completion{RunID: r4.ID, Status: engine.RunQueued}},
		// 4: run 1's result replaces its intent (the earlier write of the
		// batch), and ends it.
		{Lease: r1.Lease(), Steps: []engine.StepRecord{resultOf(i1, now)}, Fin: &engine.Completion{RunID: r1.ID, Status: engine.RunSucceeded, Finished: now}},
		// 5: after its outcome earlier in the batch, run 3 is no longer
		// held.
		{Lease: r3.Lease(), Steps: []engine.StepRecord{{RunID: r3.ID, Index: 1, StepID: "late", Action: "c.get", Status: engine.StepSucceeded, Attempts: 1}}},
		// 6: another run's records under run 5's lease: refused whole.
		{Lease: r5.Lease(), Steps: []engine.StepRecord{intentOf(r5.ID, "issue", now), intentOf(r1.ID, "other", now)}},
	}
	errs := bj.RecordMany(ctx, writes)
	if len(errs) != len(writes) {
		t.Fatalf("RecordMany answered %d errors for %d writes", len(errs), len(writes))
	}
	for i, want := range []string{"", "lost", "", "", "", "lost", "refused"} {
		switch want {
		case "":
			if errs[i] != nil {
				t.Errorf("write %d: %v, want it written", i, errs[i])
			}
		case "lost":
			if !isLeaseLost(errs[i], writes[i].Lease.RunID) {
				t.Errorf("write %d: %v, want a *LeaseLostError for run %d", i, errs[i], writes[i].Lease.RunID)
			}
		case "refused":
			if errs[i] == nil || errors.Is(errs[i], engine.ErrLeaseLost) {
				t.Errorf("write %d (another run's records): %v, want refused", i, errs[i])
			}
		}
	}
	reader := open(t)
	if d := run(t, reader, r1.ID); d.Status != engine.RunSucceeded || len(d.Steps) != 1 || d.Steps[0].Status != engine.StepSucceeded || string(d.Steps[0].Output) != `{"ok":true}` {
		t.Errorf("run 1: %s, steps %+v; want succeeded with the intent replaced by its result", d.Status, d.Steps)
	}
	if d := run(t, reader, r2.ID); d.Status != engine.RunRunning || len(d.Steps) != 0 {
		t.Errorf("run 2 (lease lost): %s, steps %+v; want running under its new claim, nothing journaled", d.Status, d.Steps)
	}
	if d := run(t, reader, r3.ID); d.Status != engine.RunSucceeded || len(d.Steps) != 1 || d.Steps[0].StepID != "issue" {
		t.Errorf("run 3: %s, steps %+v; want succeeded with its one step (the late write refused)", d.Status, d.Steps)
	}
	if d := run(t, reader, r5.ID); d.Status != engine.RunRunning || len(d.Steps) != 0 {
		t.Errorf("run 5 (a refused write): %s, steps %+v; want running, nothing journaled", d.Status, d.Steps)
	}
	if vs, ok := s.(engine.Versions); ok {
		if v, err := vs.RunVersion(ctx, r3.ID); err != nil || v != "v3" {
			t.Errorf("run 3's version = %q, %v; want v3", v, err)
		}
	}
	// The given-back run is claimable at once.
	if got := claim(t, s, "w3", 10, now); len(got) != 1 || got[0].ID != r4.ID || got[0].Attempts != 2 {
		t.Errorf("after the give-back, claimed %s; want run %d again", eventIDs(got), r4.ID)
	}
	// Run 3's write is an echo for recipe r, as with Record.
	echo := ev("echo-3", "k-echo")
	echo.Subject, echo.Fingerprint, echo.Connector = written.Subject, written.Fingerprint, written.Connector
	if enq := advance(t, s, "r", echo); enq[0].Status != engine.RunSuppressed {
		t.Errorf("the echo of run 3's write: %s, want suppressed", enq[0].Status)
	}
}

// testRecordManyOneRunTwice: writes of one run in a batch go in the
// order given, each judged by its own lease as it comes: a write under a
// lease taken over is refused wherever it stands, even beside writes
// under the run's current lease, and a write after the run's outcome or
// give-back earlier in the batch is refused as it would be after a
// Record, and keeps nothing of itself (its step line, its echo).
func testRecordManyOneRunTwice(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	bj := batchJournal(t, s)
	now := time.Now().UTC().Truncate(time.Millisecond)
	runs := claimEach(t, s, now, "x", "y", "z")
	x, y, z := runs[0], runs[1], runs[2]
	// Run x's first lease is taken over.
	stale := x.Lease()
	if err := s.Record(ctx, stale, nil, &engine.Completion{RunID: x.ID, Status: engine.RunQueued}); err != nil {
		t.Fatal(err)
	}
	again := claim(t, s, "w2", 1, now)
	if len(again) != 1 || again[0].ID != x.ID {
		t.Fatalf("claimed %s again, want run %d", eventIDs(again), x.ID)
	}
	current := again[0].Lease()
	line := func(run int64, idx int, id string) engine.StepRecord {
		return engine.StepRecord{RunID: run, Index: idx, StepID: id, Action: "c.get", Status: engine.StepSucceeded, Output: json.RawMessage(`"` + id + `"`), Attempts: 1}
	}
	late := engine.Echo{Connector: "fake", Subject: "member/late", Fingerprint: "late"}
	lateLine := line(y.ID, 0, "late")
	lateLine.Wrote = []engine.Echo{late}
	dead := func(run int64) *engine.Completion {
		return &engine.Completion{RunID: run, Status: engine.RunDead, Error: "stale", Finished: now}
	}
	writes := []engine.JournalWrite{
		// 0: the lease taken over, before the current one's writes.
		{Lease: stale, Steps: []engine.StepRecord{line(x.ID, 0, "stale")}, Fin: dead(x.ID)},
		// 1: run y ends.
		{Lease: y.Lease(), Steps: []engine.StepRecord{line(y.ID, 0, "result")}, Fin: &engine.Completion{RunID: y.ID, Status: engine.RunSucceeded, Finished: now}},
		// 2: run x under its current lease.
		{Lease: current, Steps: []engine.StepRecord{line(x.ID, 0, "fresh")}},
		// 3: run z is given back.
		{Lease: z.Lease(), Fin: &engine.Completion{RunID: z.ID, Status: engine.RunQueued}},
		// 4: after its outcome: would replace y's line and leave an echo.
		{Lease: y.Lease(), Steps: []engine.StepRecord{lateLine}},
		// 5: after its give-back.
		{Lease: z.Lease(), Steps: []engine.StepRecord{line(z.ID, 0, "after")}},
		// 6: the lease taken over, after the current one's writes.
		{Lease: stale, Fin: dead(x.ID)},
		// 7: run x goes on.
		{Lease: current, Steps: []engine.StepRecord{line(x.ID, 1, "second")}},
	}
	errs := bj.RecordMany(ctx, writes)
	if len(errs) != len(writes) {
		t.Fatalf("RecordMany answered %d errors for %d writes", len(errs), len(writes))
	}
	for i, lost := range []bool{true, false, false, false, true, true, true, false} {
		switch {
		case lost && !isLeaseLost(errs[i], writes[i].Lease.RunID):
			t.Errorf("write %d: %v, want a *LeaseLostError for run %d", i, errs[i], writes[i].Lease.RunID)
		case !lost && errs[i] != nil:
			t.Errorf("write %d: %v, want it written", i, errs[i])
		}
	}
	outputs := func(steps []engine.StepRecord) []string {
		var out []string
		for _, st := range steps {
			out = append(out, string(st.Output))
		}
		return out
	}
	for _, c := range []struct {
		run     int64
		status  string
		outputs string
	}{
		{x.ID, engine.RunRunning, `["fresh" "second"]`},
		{y.ID, engine.RunSucceeded, `["result"]`},
		{z.ID, engine.RunQueued, `[]`},
	} {
		d := run(t, s, c.run)
		if got := fmt.Sprint(outputs(d.Steps)); d.Status != c.status || got != c.outputs {
			t.Errorf("run %d: %s with step outputs %s; want %s with %s", c.run, d.Status, got, c.status, c.outputs)
		}
	}
	echo := ev("echo-late", "k-echo-late")
	echo.Subject, echo.Fingerprint, echo.Connector = late.Subject, late.Fingerprint, late.Connector
	if enq := advance(t, s, "r", echo); enq[0].Status != engine.RunQueued {
		t.Errorf("an event of the refused write's subject: %s, want queued (the refused write left an echo)", enq[0].Status)
	}
}

// testRecordManyConcurrent: batches from several goroutines, every write
// its own run's, each commit exactly what it was given.
func testRecordManyConcurrent(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	bj := batchJournal(t, s)
	now := time.Now().UTC().Truncate(time.Millisecond)
	const writers, each = 4, 20
	var ids []string
	for i := 0; i < writers*each; i++ {
		ids = append(ids, fmt.Sprint("c", i))
	}
	runs := claimEach(t, s, now, ids...)
	fail := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func(mine []*engine.ClaimedRun) {
			var intents, outcomes []engine.JournalWrite
			for _, r := range mine {
				in := intentOf(r.ID, "issue", now)
				intents = append(intents, engine.JournalWrite{Lease: r.Lease(), Steps: []engine.StepRecord{in}})
				outcomes = append(outcomes, engine.JournalWrite{Lease: r.Lease(), Steps: []engine.StepRecord{resultOf(in, now)},
					Fin: &engine.Completion{RunID: r.ID, Status: engine.RunSucceeded, Finished: now}})
			}
			for _, batch := range [][]engine.JournalWrite{intents, outcomes} {
				for i, err := range bj.RecordMany(ctx, batch) {
					if err != nil {
						fail <- fmt.Errorf("run %d: %w", batch[i].Lease.RunID, err)
						return
					}
				}
			}
			fail <- nil
		}(runs[w*each : (w+1)*each])
	}
	for w := 0; w < writers; w++ {
		if err := <-fail; err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range runs {
		if d := run(t, s, r.ID); d.Status != engine.RunSucceeded || len(d.Steps) != 1 || d.Steps[0].Status != engine.StepSucceeded {
			t.Fatalf("run %d: %s, steps %+v; want succeeded with one step", r.ID, d.Status, d.Steps)
		}
	}
}

// PartialWrite checks that a journal write which fails half-way through
// a batch leaves nothing of itself: its steps are not kept without its
// outcome, and the other writes of the batch still commit. poison makes
// the store fail on the outcome of the given run, after that run's steps
// were sent; the store's own test provides it (a fault point, or a value
// the database refuses).
func PartialWrite(t *testing.T, s engine.Store, poison func(w *engine.JournalWrite)) {
	t.Helper()
	bj := batchJournal(t, s)
	now := time.Now().UTC().Truncate(time.Millisecond)
	runs := claimEach(t, s, now, "p1", "p2", "p3")
	var writes []engine.JournalWrite
	for _, r := range runs {
		writes = append(writes, engine.JournalWrite{Lease: r.Lease(),
			Steps: []engine.StepRecord{resultOf(intentOf(r.ID, "issue", now), now, engine.Echo{Connector: "fake", Subject: "member/" + r.EventID, Fingerprint: "f"})},
			Fin:   &engine.Completion{RunID: r.ID, Status: engine.RunSucceeded, Finished: now}})
	}
	bad := runs[1]
	poison(&writes[1])
	errs := bj.RecordMany(ctx, writes)
	if len(errs) != len(writes) {
		t.Fatalf("RecordMany answered %d errors for %d writes", len(errs), len(writes))
	}
	if errs[1] == nil {
		t.Fatalf("the poisoned write of run %d was accepted", bad.ID)
	}
	for _, i := range []int{0, 2} {
		if errs[i] != nil {
			t.Errorf("write %d (run %d) failed with the poisoned one: %v", i, runs[i].ID, errs[i])
		}
		if d := run(t, s, runs[i].ID); d.Status != engine.RunSucceeded || len(d.Steps) != 1 {
			t.Errorf("run %d: %s, steps %+v; want succeeded with its step", runs[i].ID, d.Status, d.Steps)
		}
	}
	if d := run(t, s, bad.ID); d.Status != engine.RunRunning || len(d.Steps) != 0 {
		t.Errorf("the poisoned run %d: %s, steps %+v; want running with nothing journaled (all or nothing)", bad.ID, d.Status, d.Steps)
	}
	echo := ev("echo-p2", "k-echo-p2")
	echo.Subject, echo.Fingerprint, echo.Connector = "member/"+bad.EventID, "f", "fake"
	if enq := advance(t, s, "r", echo); enq[0].Status != engine.RunQueued {
		t.Errorf("the poisoned run's write was remembered as an echo (%s): part of it committed", enq[0].Status)
	}
	// Its lease still holds: the runner can write it again.
	w := writes[1]
	w.Fin = &engine.Completion{RunID: bad.ID, Status: engine.RunSucceeded, Finished: now}
	if err := s.Record(ctx, bad.Lease(), w.Steps[:1], w.Fin); err != nil {
		t.Errorf("writing run %d again after the failed batch: %v", bad.ID, err)
	}
}
