package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// advanceClaim advances evs with Advance.Claim for owner, a lease of a
// minute from now. Recipes and Limit are left out: the store must not
// read them.
func advanceClaim(t *testing.T, s engine.Store, recipe, owner string, now time.Time, evs ...engine.NewEvent) []engine.Enqueued {
	t.Helper()
	enq, err := s.Advance(ctx, recipe, engine.Advance{Events: evs, Claim: &engine.ClaimRequest{Owner: owner, Now: now, Lease: time.Minute}})
	if err != nil {
		t.Fatalf("Advance(%s) with a claim for %s: %v", recipe, owner, err)
	}
	if len(enq) != len(evs) {
		t.Fatalf("Advance(%s) reported %d events of %d", recipe, len(enq), len(evs))
	}
	return enq
}

// claimedWith checks that q is the run of e claimed with its page, as
// Claim would have returned it for recipe, and returns the run.
func claimedWith(t *testing.T, recipe string, q engine.Enqueued, e engine.NewEvent) *engine.ClaimedRun {
	t.Helper()
	r := q.Run
	if q.Status != engine.RunRunning || r == nil || q.RunID == 0 {
		t.Fatalf("event %s: %+v, want a run claimed with the page (status running, Run set)", e.ID, q)
	}
	if r.ID != q.RunID || r.Recipe != recipe || r.EventID != e.ID || r.Subject != e.Subject || r.OrderingKey != e.OrderingKey ||
		r.Connector != e.Connector || r.Fingerprint != e.Fingerprint || string(r.Data) != string(e.Data) {
		t.Errorf("event %s claimed as %+v (data %s), want run %d of recipe %s as the event says", e.ID, r, r.Data, q.RunID, recipe)
	}
	if r.Attempts != 1 || r.Token != 1 || r.Lease() != (engine.Lease{RunID: q.RunID, Token: 1}) {
		t.Errorf("event %s claimed with attempts %d, token %d; want a first claim (1, 1)", e.ID, r.Attempts, r.Token)
	}
	return r
}

// issueIntent is the journal line of a first write about to be sent, as
// a page's event carries it (NewEvent.Intent).
func issueIntent(started time.Time) *engine.StepRecord {
	return &engine.StepRecord{Index: 0, StepID: "issue", Action: "certs.create", Status: engine.StepStarted,
		Input: json.RawMessage(`{"member":"a"}`), Started: started}
}

// leftQueued checks that q is a new run the page did not claim.
func leftQueued(t *testing.T, q engine.Enqueued, why string) {
	t.Helper()
	if q.Status != engine.RunQueued || q.Run != nil || q.RunID == 0 {
		t.Errorf("event %s: %+v, want a queued run, not claimed (%s)", q.EventID, q, why)
	}
}

// testAdvanceClaim: with Advance.Claim, each new run of the page that is
// claimable comes back claimed for the owner, as Claim would return it,
// and is held as any claimed run: its lease is recorded under, renewed,
// released and taken over when it ends; the queue does not hand it out
// again. A run of a key an earlier run of the page holds stays queued and
// is claimed from the queue once that run is done.
func testAdvanceClaim(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	e1, e2, e3 := ev("1", "a"), ev("2", "b"), ev("3", "a")
	e2.Fingerprint = "fp-2"
	enq := advanceClaim(t, s, "r", "w1", now, e1, e2, e3)
	r1, r2 := claimedWith(t, "r", enq[0], e1), claimedWith(t, "r", enq[1], e2)
	leftQueued(t, enq[2], "run 1 of its key, in this page, comes first")
	for _, q := range enq[:2] {
		if d := run(t, s, q.RunID); d.Status != engine.RunRunning || d.Attempts != 1 {
			t.Errorf("run %d is %s after %d attempts, want running after 1", q.RunID, d.Status, d.Attempts)
		}
	}
	if d := run(t, s, enq[2].RunID); d.Status != engine.RunQueued || d.Attempts != 0 {
		t.Errorf("run %d is %s after %d attempts, want queued, never claimed", enq[2].RunID, d.Status, d.Attempts)
	}

	// The queue hands out none of them: 1 and 2 are held, 3 waits for 1.
	other := open(t)
	if got := claim(t, other, "w2", 10, now); len(got) != 0 {
		t.Fatalf("claim after the claimed advance = %s, want nothing", eventIDs(got))
	}
	held, err := s.RenewLeases(ctx, "w1", now.Add(time.Minute), []int64{r1.ID, r2.ID}, time.Time{})
	slices.Sort(held)
	if err != nil || !slices.Equal(held, []int64{r1.ID, r2.ID}) {
		t.Errorf("w1 renews %v, %v; want the two runs claimed with the page %v", held, err, []int64{r1.ID, r2.ID})
	}

	// The owner records under the lease; then 3 is claimable.
	step := engine.StepRecord{RunID: r1.ID, StepID: "s", Action: "c.get", Status: engine.StepSucceeded, Attempts: 1, Started: now, Finished: now}
	finish(t, s, r1, engine.RunSucceeded, step)
	if d := run(t, s, r1.ID); d.Status != engine.RunSucceeded || len(d.Steps) != 1 {
		t.Errorf("run 1 after its outcome: %s with %d steps, want succeeded with 1", d.Status, len(d.Steps))
	}
	third := claim(t, other, "w2", 10, now)
	if got := eventIDs(third); got != "[3]" {
		t.Fatalf("claim after run 1 finished = %s, want [3] (its key is free)", got)
	}
	if third[0].ID != enq[2].RunID || third[0].Attempts != 1 {
		t.Errorf("run 3 claimed as %+v, want run %d, first attempt", third[0], enq[2].RunID)
	}

	// Released with its owner, run 2 goes back to the queue and its lease
	// is refused.
	if n, err := s.ReleaseOwner(ctx, "w1"); err != nil || n != 1 {
		t.Fatalf("ReleaseOwner(w1) = %d, %v; want run 2 released", n, err)
	}
	if err := s.Record(ctx, r2.Lease(), nil, &engine.Completion{RunID: r2.ID, Status: engine.RunSucceeded, Finished: now}); !isLeaseLost(err, r2.ID) {
		t.Errorf("outcome of run 2 after its release: %v, want a *LeaseLostError", err)
	}
	again := claim(t, other, "w2", 10, now)
	if eventIDs(again) != "[2]" || again[0].Attempts != 2 || again[0].Token <= r2.Token {
		t.Fatalf("claim after the release = %+v, want run 2, second attempt, a greater token", again)
	}

	finish(t, other, third[0], engine.RunSucceeded)
	finish(t, other, again[0], engine.RunSucceeded)

	// The lease ends at Claim.Now + Claim.Lease: taken over after it.
	e4 := ev("4", "d")
	r4 := claimedWith(t, "r", advanceClaim(t, s, "r", "w1", now, e4)[0], e4)
	late := open(t)
	if got := claim(t, late, "w3", 10, now.Add(30*time.Second)); len(got) != 0 {
		t.Fatalf("claim within the lease of run 4 = %s, want nothing", eventIDs(got))
	}
	took := claim(t, late, "w3", 10, now.Add(2*time.Minute))
	if len(took) != 1 || took[0].ID != r4.ID || took[0].Attempts != 2 {
		t.Fatalf("claim after the lease of run 4 = %s, want it taken over (attempt 2)", eventIDs(took))
	}
	if err := s.Record(ctx, r4.Lease(), nil, &engine.Completion{RunID: r4.ID, Status: engine.RunSucceeded, Finished: now}); !isLeaseLost(err, r4.ID) {
		t.Errorf("outcome of run 4 under the lease taken over: %v, want a *LeaseLostError", err)
	}
}

// testAdvanceClaimKeys: a run whose key an earlier run holds, queued or
// running, of an earlier advance and of any recipe, is not claimed with
// its page; runs of free keys of the same page are.
func testAdvanceClaimKeys(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	now := time.Now()
	advance(t, s, "r", ev("queued", "q"), ev("held", "h"))
	held := claim(t, s, "w0", 1, now, "r")
	if eventIDs(held) != "[queued]" {
		t.Fatalf("claimed %s, want [queued]", eventIDs(held))
	}
	// Now "queued" runs (key q) and "held" is queued (key h).
	free, afterRunning, afterQueued := ev("free", "f"), ev("after-running", "q"), ev("after-queued", "h")
	enq := advanceClaim(t, s, "other", "w1", now, afterRunning, free, afterQueued)
	leftQueued(t, enq[0], "an earlier run of key q is running")
	claimedWith(t, "other", enq[1], free)
	leftQueued(t, enq[2], "an earlier run of key h is queued")
	// The queue keeps the order of each key.
	if got := eventIDs(claim(t, s, "w2", 10, now, "r", "other")); got != "[held]" {
		t.Fatalf("claim = %s, want [held] (after-running waits for queued, after-queued for held)", got)
	}
	finish(t, s, held[0], engine.RunSucceeded)
	if got := eventIDs(claim(t, s, "w2", 10, now, "r", "other")); got != "[after-running]" {
		t.Fatalf("claim after run queued finished = %s, want [after-running]", got)
	}
}

// testAdvanceClaimSkipsNonRuns: skipped, suppressed and duplicate events
// are never claimed with their page, nor is the queued run of an event
// seen again; the runs the page queued are.
func testAdvanceClaimSkipsNonRuns(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	now := time.Now()
	// Recipe A wrote member/1 in state f1 (an earlier queued run of the
	// event "old" stays queued: its key is held).
	advance(t, s, "A", ev("writer", "w"), ev("old", "w"))
	w := claim(t, s, "w", 1, now, "A")[0]
	finish(t, s, w, engine.RunSucceeded, engine.StepRecord{RunID: w.ID, StepID: "w", Action: "m.update", Status: engine.StepSucceeded, Attempts: 1,
		Wrote: []engine.Echo{{Connector: "members", Subject: "member/1", Fingerprint: "f1"}}})
	// "old" is claimable again now; the page's runs must not take it.
	skip := ev("skip", "s")
	skip.Skipped, skip.Data, skip.Values = true, nil, json.RawMessage(`{"x":1}`)
	skippedEcho := echoOf("skipped-echo", "f1")
	data := skippedEcho.Data
	skippedEcho.Skipped, skippedEcho.Data, skippedEcho.Encode = true, nil, func() (json.RawMessage, error) { return data, nil }
	fresh := ev("fresh", "n")
	enq := advanceClaim(t, s, "A", "w1", now, echoOf("echo", "f1"), skip, skippedEcho, ev("old", "w"), fresh, ev("fresh", "n"))
	for i, want := range []struct {
		status string
		run    bool
	}{{engine.RunSuppressed, true}, {engine.RunSkipped, false}, {engine.RunSuppressed, true}, {"", false}, {engine.RunRunning, true}, {"", false}} {
		q := enq[i]
		if q.Status != want.status || (q.RunID != 0) != want.run {
			t.Errorf("event %s: %+v, want status %q and a run: %v", q.EventID, q, want.status, want.run)
		}
		if q.Status != engine.RunRunning && q.Run != nil {
			t.Errorf("event %s (%s) was claimed with the page: %+v", q.EventID, q.Status, q.Run)
		}
	}
	claimedWith(t, "A", enq[4], fresh)
	for _, q := range []engine.Enqueued{enq[0], enq[2]} {
		if d := run(t, s, q.RunID); d.Status != engine.RunSuppressed || d.Attempts != 0 {
			t.Errorf("echo %s is %s after %d attempts, want suppressed, never claimed", q.EventID, d.Status, d.Attempts)
		}
	}
	// The event seen again left its run to the queue.
	if got := claim(t, s, "w2", 10, now, "A"); eventIDs(got) != "[old]" || got[0].Attempts != 1 {
		t.Errorf("claim after the page = %+v, want run old, first attempt (the page claims only its new runs)", got)
	}
}

// testAdvanceClaimChains: a run claimed with its page follows its cause as
// a run Claim returns does: the event of another recipe's write is not
// an echo, and the run inherits the writer's chain, so that its own
// writes are echoes for the writer too.
func testAdvanceClaimChains(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	now := time.Now()
	wrote := func(r *engine.ClaimedRun, fp string) {
		t.Helper()
		finish(t, s, r, engine.RunSucceeded, engine.StepRecord{RunID: r.ID, StepID: "w", Action: "m.update", Status: engine.StepSucceeded, Attempts: 1,
			Wrote: []engine.Echo{{Connector: "members", Subject: "member/1", Fingerprint: fp}}})
	}
	// A's run, claimed with its page, writes f1; it is an echo for A.
	a1 := ev("a1", "ka")
	a := claimedWith(t, "A", advanceClaim(t, s, "A", "w", now, a1)[0], a1)
	// Seen before the write is recorded, by A and by B: only their
	// claims can tell, once A's run has ended (on SQLite, in a page
	// outcome: no row of runs).
	advance(t, s, "A", echoOf("early-a", "f1"))
	advance(t, s, "B", echoOf("early-b", "f1"))
	wrote(a, "f1")
	for _, r := range claim(t, s, "w", 10, now, "A", "B") {
		if want := r.Recipe == "A"; r.Echo != want {
			t.Errorf("%s's early sight of A's write claimed with Echo %v, want %v", r.Recipe, r.Echo, want)
		}
		if r.Recipe == "B" {
			// What B's run writes is then an echo for A too (A is in its chain).
			finish(t, s, r, engine.RunSucceeded, engine.StepRecord{RunID: r.ID, StepID: "w", Action: "m.update", Status: engine.StepSucceeded, Attempts: 1,
				Wrote: []engine.Echo{{Connector: "members", Subject: "member/1", Fingerprint: "f0"}}})
		} else {
			finish(t, s, r, engine.RunSuppressed)
		}
	}
	for recipe, want := range map[string]string{"A": engine.RunSuppressed, "C": engine.RunRunning} {
		enq := advanceClaim(t, s, recipe, "w", now, echoOf(recipe+"-f0", "f0"))
		if enq[0].Status != want {
			t.Errorf("the write of B's run of A's write seen by %s: %s, want %s", recipe, enq[0].Status, want)
		}
		if r := enq[0].Run; r != nil {
			finish(t, s, r, engine.RunSucceeded)
		}
	}
	if enq := advanceClaim(t, s, "A", "w", now, echoOf("a-f1", "f1")); enq[0].Status != engine.RunSuppressed || enq[0].Run != nil {
		t.Fatalf("A's write seen by A: %+v, want suppressed", enq[0])
	}
	// B sees it: claimed, not an echo, A in its chain.
	bf1 := echoOf("b-f1", "f1")
	b := claimedWith(t, "B", advanceClaim(t, s, "B", "w", now, bf1)[0], bf1)
	if b.Echo {
		t.Errorf("B's run of A's write is an echo: %+v", b)
	}
	wrote(b, "f3")
	for recipe, want := range map[string]string{"A": engine.RunSuppressed, "B": engine.RunSuppressed, "C": engine.RunRunning} {
		enq := advanceClaim(t, s, recipe, "w", now, echoOf(recipe+"-f3", "f3"))
		if enq[0].Status != want {
			t.Errorf("B's write seen by %s: %s, want %s (B's run took A's chain when claimed with its page)", recipe, enq[0].Status, want)
		}
		if r := enq[0].Run; r != nil {
			finish(t, s, r, engine.RunSucceeded)
		}
	}
}

// testConcurrentAdvanceClaims: runners advance pages of different recipes
// at once, each with its own handle and a claim, all pages holding a run
// of one key: only its earliest run is claimed, and the others follow it,
// one at a time, in arrival order. A few rounds, each started together
// on connected handles, so that the advances overlap.
func testConcurrentAdvanceClaims(t *testing.T, open func(t *testing.T) engine.Store) {
	const runners, rounds = 6, 8
	now := time.Now()
	handles := make([]engine.Store, runners)
	recipes := make([]string, runners)
	for i := range handles {
		handles[i], recipes[i] = open(t), fmt.Sprint("r", i)
		if _, err := handles[i].Cursor(ctx, recipes[i]); err != nil {
			t.Fatal(err)
		}
	}
	for round := range rounds {
		key := fmt.Sprint("shared-", round)
		shared := make([]engine.Enqueued, runners)
		errs := make([]error, runners)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range handles {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				own := fmt.Sprint("own-", round, "-", i)
				evs := []engine.NewEvent{ev(own, own), ev(fmt.Sprint(key, "-", i), key)}
				<-start
				enq, err := handles[i].Advance(ctx, recipes[i], engine.Advance{Events: evs,
					Claim: &engine.ClaimRequest{Owner: fmt.Sprint("w", i), Now: now, Lease: time.Minute}})
				switch {
				case err != nil:
					errs[i] = err
				case len(enq) != 2 || enq[0].Run == nil:
					errs[i] = fmt.Errorf("enqueued %+v, want the run of its own key claimed", enq)
				default:
					shared[i] = enq[1]
					errs[i] = handles[i].Record(ctx, enq[0].Run.Lease(), nil, &engine.Completion{RunID: enq[0].RunID, Status: engine.RunSucceeded, Finished: now})
				}
			}(i)
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		var first *engine.ClaimedRun
		var order []int64
		for _, q := range shared {
			order = append(order, q.RunID)
			if q.Run == nil {
				continue
			}
			if first != nil {
				t.Fatalf("round %d: runs %d and %d of key %s were both claimed with their pages", round, first.ID, q.Run.ID, key)
			}
			first = q.Run
		}
		slices.Sort(order)
		if first == nil || first.ID != order[0] {
			t.Fatalf("round %d: of the runs %v of key %s, %+v was claimed with its page; want the earliest, %d", round, order, key, first, order[0])
		}
		s, cur := handles[0], first
		for _, want := range order[1:] {
			if got := claim(t, s, "w", 10, now, recipes...); len(got) != 0 {
				t.Fatalf("round %d: claim while run %d of key %s runs = %s, want nothing", round, cur.ID, key, eventIDs(got))
			}
			finish(t, s, cur, engine.RunSucceeded)
			next := claim(t, s, "w", 10, now, recipes...)
			if len(next) != 1 || next[0].ID != want {
				t.Fatalf("round %d: claim after run %d of key %s = %s, want run %d", round, cur.ID, key, eventIDs(next), want)
			}
			cur = next[0]
		}
		finish(t, s, cur, engine.RunSucceeded)
	}
}

// testAdvanceClaimIntent: an event's Intent is journaled for its run when
// the run is claimed with the page, and Journaled says so; a store that
// does not journal it must not say it did (the engine then journals it
// before the write). A run left queued gets no journal line, and neither
// does a skipped event.
func testAdvanceClaimIntent(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	started := now.Add(-time.Second)
	intent := func() *engine.StepRecord { return issueIntent(started) }
	e1, e2, e3 := ev("1", "a"), ev("2", "a"), ev("3", "b")
	e1.Intent, e2.Intent = intent(), intent()
	e3.Skipped, e3.Data, e3.Intent = true, nil, intent()
	enq := advanceClaim(t, s, "r", "w1", now, e1, e2, e3)
	claimedWith(t, "r", enq[0], e1)
	leftQueued(t, enq[1], "run 1 of its key, in this page, comes first")
	steps := func(id int64) []engine.StepRecord {
		t.Helper()
		got, err := s.Steps(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := steps(enq[0].RunID); enq[0].Journaled {
		if len(got) != 1 || got[0].RunID != enq[0].RunID || got[0].StepID != "issue" || got[0].Status != engine.StepStarted ||
			string(got[0].Input) != `{"member":"a"}` || !got[0].Started.Equal(started) {
			t.Errorf("run %d: Journaled, but the journal is %+v; want the intent, under the run's ID", enq[0].RunID, got)
		}
	} else if len(got) != 0 {
		t.Errorf("run %d: not Journaled, but the journal is %+v", enq[0].RunID, got)
	}
	if enq[1].Journaled || len(steps(enq[1].RunID)) != 0 {
		t.Errorf("run %d, left queued: Journaled %v, journal %+v; want none", enq[1].RunID, enq[1].Journaled, steps(enq[1].RunID))
	}
	if enq[2].Journaled || enq[2].RunID != 0 {
		t.Errorf("a skipped event: %+v; want no run and nothing journaled", enq[2])
	}
	// The claim's lease records on over the intent.
	done := engine.StepRecord{RunID: enq[0].RunID, Index: 0, StepID: "issue", Action: "certs.create", Status: engine.StepSucceeded,
		Attempts: 1, Started: started, Finished: now}
	if err := s.Record(ctx, enq[0].Run.Lease(), []engine.StepRecord{done}, &engine.Completion{RunID: enq[0].RunID, Status: engine.RunSucceeded, Finished: now}); err != nil {
		t.Fatal(err)
	}
	if got := steps(enq[0].RunID); len(got) != 1 || got[0].Status != engine.StepSucceeded {
		t.Errorf("after the outcome, the journal is %+v; want the one step, succeeded", got)
	}
}

// testAdvanceClaimHeldUnread: the runs claimed with a page are held as
// any running run even when nothing reads them in between (a store may
// keep them apart until they are recorded): their keys stay held against
// later pages and the queue, the backlog and the lease renewal count
// them, the first write of a run records it whole (finished, or running
// with its intent and the write's steps), and a release or a lease that
// ended hands them to the queue with their intents journaled.
func testAdvanceClaimHeldUnread(t *testing.T, open func(t *testing.T) engine.Store) {
	s, other := open(t), open(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	started := now.Add(-time.Second)
	intent := func() *engine.StepRecord { return issueIntent(started) }
	e1, e2, e5 := ev("1", "a"), ev("2", "b"), ev("5", "e")
	e1.Intent, e5.Intent = intent(), intent()
	enq := advanceClaim(t, s, "r", "w1", now, e1, e2, e5)
	r1, r2, r5 := claimedWith(t, "r", enq[0], e1), claimedWith(t, "r", enq[1], e2), claimedWith(t, "r", enq[2], e5)

	// Another runner's page leaves the run of a held key queued, and the
	// queue hands it out only once that key is free.
	e3 := ev("3", "a")
	leftQueued(t, advanceClaim(t, other, "r", "w2", now, e3)[0], "run 1 holds key a, claimed with the page before")
	if got := claim(t, other, "w2", 10, now); len(got) != 0 {
		t.Fatalf("claim while the page's runs are held = %s, want nothing", eventIDs(got))
	}
	if n, err := other.Backlog(ctx, []string{"r"}); err != nil || n != 4 {
		t.Errorf("Backlog = %d, %v; want 4 (three runs held, one queued)", n, err)
	}
	held, err := s.RenewLeases(ctx, "w1", now.Add(time.Minute), []int64{r1.ID, r2.ID, r5.ID}, time.Time{})
	slices.Sort(held)
	if want := []int64{r1.ID, r2.ID, r5.ID}; err != nil || !slices.Equal(held, want) {
		t.Errorf("w1 renews %v, %v; want the runs claimed with the page %v", held, err, want)
	}

	// A lease holds through any handle on the store: run 2's first write
	// comes through another one.
	step2 := engine.StepRecord{RunID: r2.ID, Index: 0, StepID: "issue", Action: "certs.create", Status: engine.StepStarted, Started: now}
	if err := other.Record(ctx, r2.Lease(), []engine.StepRecord{step2}, nil); err != nil {
		t.Fatalf("a step of run 2 through another handle: %v", err)
	}

	// Run 1's first write is its outcome: the run is recorded whole, the
	// outcome's step line over its intent.
	done := engine.StepRecord{RunID: r1.ID, Index: 0, StepID: "issue", Action: "certs.create", Status: engine.StepSucceeded,
		Attempts: 1, Input: json.RawMessage(`{"member":"a"}`), Started: started, Finished: now}
	finish(t, s, r1, engine.RunSucceeded, done)
	if err := s.Record(ctx, r1.Lease(), nil, &engine.Completion{RunID: r1.ID, Status: engine.RunSucceeded, Finished: now}); !isLeaseLost(err, r1.ID) {
		t.Errorf("a second outcome of run 1: %v, want a *LeaseLostError", err)
	}
	third := claim(t, other, "w2", 10, now)
	if eventIDs(third) != "[3]" {
		t.Fatalf("claim after run 1 ended = %s, want [3] (key a is free)", eventIDs(third))
	}

	// Run 5's first write is a step, not its outcome: the run is running,
	// with its intent and the step; its outcome comes later.
	next := engine.StepRecord{RunID: r5.ID, Index: 1, StepID: "notify", Action: "mail.send", Status: engine.StepStarted, Started: now}
	if err := s.Record(ctx, r5.Lease(), []engine.StepRecord{next}, nil); err != nil {
		t.Fatalf("a step of run 5 under its page's lease: %v", err)
	}
	if d := run(t, other, r5.ID); d.Status != engine.RunRunning || d.Attempts != 1 || len(d.Steps) != 2 ||
		d.Steps[0].Status != engine.StepStarted || d.Steps[1].StepID != "notify" {
		t.Errorf("run 5 after a step: %s, %d attempts, steps %+v; want running, 1 attempt, its intent and the step", d.Status, d.Attempts, d.Steps)
	}
	finish(t, s, r5, engine.RunSucceeded)

	d := run(t, other, r1.ID)
	if d.Status != engine.RunSucceeded || d.Attempts != 1 || len(d.Steps) != 1 || d.Steps[0].Status != engine.StepSucceeded ||
		string(d.Steps[0].Input) != `{"member":"a"}` || !d.Steps[0].Started.Equal(started) || d.EventID != "1" {
		t.Errorf("run 1 after its outcome: %+v; want succeeded after 1 attempt, its one step succeeded", d)
	}

	if d := run(t, s, r2.ID); d.Status != engine.RunRunning || len(d.Steps) != 1 || d.Steps[0].Status != engine.StepStarted {
		t.Errorf("run 2 after a step through another handle: %s, steps %+v; want running with the step", d.Status, d.Steps)
	}

	// Released with its owner, run 2 goes to the queue; its lease is
	// refused from then on.
	if n, err := s.ReleaseOwner(ctx, "w1"); err != nil || n != 1 {
		t.Fatalf("ReleaseOwner(w1) = %d, %v; want run 2 released", n, err)
	}
	if err := s.Record(ctx, r2.Lease(), nil, &engine.Completion{RunID: r2.ID, Status: engine.RunSucceeded, Finished: now}); !isLeaseLost(err, r2.ID) {
		t.Errorf("outcome of run 2 after its release: %v, want a *LeaseLostError", err)
	}
	again := claim(t, other, "w2", 10, now)
	if eventIDs(again) != "[2]" || again[0].Attempts != 2 {
		t.Fatalf("claim after the release = %s, want run 2, second attempt", eventIDs(again))
	}
	finish(t, other, third[0], engine.RunSucceeded)
	finish(t, other, again[0], engine.RunSucceeded)

	// Taken over when the lease ends, a run resumes from its intent.
	e4 := ev("4", "d")
	e4.Intent = intent()
	r4 := claimedWith(t, "r", advanceClaim(t, s, "r", "w1", now, e4)[0], e4)
	took := claim(t, other, "w3", 10, now.Add(2*time.Minute))
	if len(took) != 1 || took[0].ID != r4.ID || took[0].Attempts != 2 {
		t.Fatalf("claim after the lease of run 4 = %s, want it taken over (attempt 2)", eventIDs(took))
	}
	steps, err := other.Steps(ctx, r4.ID)
	if err != nil || len(steps) != 1 || steps[0].Status != engine.StepStarted || string(steps[0].Input) != `{"member":"a"}` {
		t.Errorf("the journal of run 4 taken over: %+v, %v; want its intent, to settle", steps, err)
	}
	if err := s.Record(ctx, r4.Lease(), nil, &engine.Completion{RunID: r4.ID, Status: engine.RunSucceeded, Finished: now}); !isLeaseLost(err, r4.ID) {
		t.Errorf("outcome of run 4 under the lease taken over: %v, want a *LeaseLostError", err)
	}
	if n, err := other.Backlog(ctx, []string{"r"}); err != nil || n != 1 {
		t.Errorf("Backlog at the end = %d, %v; want 1 (run 4, taken over)", n, err)
	}
}

// testAdvanceEncodedAhead: a store that encodes an Advance ahead of the
// call (AdvanceEncoder, while the page before commits) claims its runs
// and journals their intents as it does encoding in turn; a page's
// events changed after encoding are not taken for the encoded ones.
func testAdvanceEncodedAhead(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	enc, ok := s.(engine.AdvanceEncoder)
	if !ok {
		t.Skip("the store encodes each Advance in its call (no AdvanceEncoder)")
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	started := now.Add(-time.Second)
	e1, e2 := ev("1", "a"), ev("2", "b")
	e1.Intent = issueIntent(started)
	adv := engine.Advance{Events: []engine.NewEvent{e1, e2}, Claim: &engine.ClaimRequest{Owner: "w1", Now: now, Lease: time.Minute}}
	if err := enc.EncodeAdvance("r", &adv); err != nil {
		t.Fatalf("EncodeAdvance: %v", err)
	}
	enq, err := s.Advance(ctx, "r", adv)
	if err != nil || len(enq) != 2 {
		t.Fatalf("Advance of a page encoded ahead: %+v, %v", enq, err)
	}
	claimedWith(t, "r", enq[0], e1)
	claimedWith(t, "r", enq[1], e2)
	if !enq[0].Journaled || enq[1].Journaled {
		t.Fatalf("Journaled %v, %v; want the intent of the first run only", enq[0].Journaled, enq[1].Journaled)
	}
	got, err := s.Steps(ctx, enq[0].RunID)
	if err != nil || len(got) != 1 || got[0].Status != engine.StepStarted || string(got[0].Input) != `{"member":"a"}` || !got[0].Started.Equal(started) {
		t.Errorf("run %d's journal: %+v, %v; want its intent", enq[0].RunID, got, err)
	}
	// The encoding is of the events it was made for: a page with more
	// events than were encoded is encoded again.
	e3, e4 := ev("3", "c"), ev("4", "d")
	e4.Intent = issueIntent(started)
	stale := engine.Advance{Events: []engine.NewEvent{e3}, Claim: &engine.ClaimRequest{Owner: "w1", Now: now, Lease: time.Minute}}
	if err := enc.EncodeAdvance("r", &stale); err != nil {
		t.Fatalf("EncodeAdvance: %v", err)
	}
	stale.Events = append(stale.Events, e4)
	enq, err = s.Advance(ctx, "r", stale)
	if err != nil || len(enq) != 2 {
		t.Fatalf("Advance of a page changed after its encoding: %+v, %v", enq, err)
	}
	claimedWith(t, "r", enq[1], e4)
	if !enq[1].Journaled {
		t.Errorf("event 4, added after the encoding: not Journaled; want its intent journaled")
	}
}
