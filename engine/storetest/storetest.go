// Package storetest is the conformance suite of engine.Store: every rule
// the interface docs in engine/store.go state, checked against any store.
// A store's own test calls Run:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) engine.Store { ... })
//	}
//
// open returns a handle on the store of the test t: every call with one t
// opens the same data (a second handle is a second runner process), calls
// with different tests open different, empty stores. The handle is closed
// by open's own t.Cleanup, or earlier by the suite.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// Run runs the whole suite, each rule a subtest.
func Run(t *testing.T, open func(t *testing.T) engine.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) engine.Store)
	}{
		{"AdvanceStoresCursorStatesAndEventsTogether", testAdvance},
		{"RepeatedEventsAreDropped", testDedupe},
		{"SkippedEventsAreCountedNotStored", testSkipped},
		{"PruneKeepsDeadLettersAndDedup", testPrune},
		{"ClaimsFollowArrivalOrderOneRunPerKey", testOrdering},
		{"LeasesHoldUntilTheyEndThenAnotherTakesOver", testTakeOver},
		{"FencingRefusesTheOldHolder", testFencing},
		{"GiveBackMakesARunClaimableAtOnce", testGiveBack},
		{"RenewalsReportTheRunsStillHeld", testRenew},
		{"RenewalsRenewOnlyTheNamedRuns", testRenewNamed},
		{"RenewalsReleaseUnnamedRunsLeasedBeforeTheBound", testRenewRelease},
		{"JournalKeepsOneLinePerStepAndIntents", testJournal},
		{"EchoChainsSuppressOnlyTheWritersChain", testEchoChains},
		{"DeadLettersAndReplay", testDeadLetters},
		{"InspectorFiltersAndPages", testInspector},
		{"OnePollerPerRecipe", testLeadPoll},
		{"RunnersJoinOnceAndDeadRunnersRunsAreResumed", testJoin},
		{"BacklogCountsQueuedAndRunning", testBacklog},
		{"ConcurrentClaimersNeverShareARun", testConcurrentClaimers},
		{"StateCopiesIntoAnotherStore", testStateCopy},
		{"MetaValuesAreCompareAndSwap", testMeta},
		{"QueueStatsCountTheQueue", testQueueStats},
		{"VersionsPinRunsAndKeepEveryAttempt", testVersions},
		{"RecordManyWritesEachItemAllOrNothing", testRecordMany},
		{"RecordManyFromConcurrentWriters", testRecordManyConcurrent},
		{"RecordManyJudgesEachWriteOfARunInOrder", testRecordManyOneRunTwice},
		{"AdvanceClaimHoldsThePagesClaimableRuns", testAdvanceClaim},
		{"AdvanceClaimLeavesRunsOfHeldKeysQueued", testAdvanceClaimKeys},
		{"AdvanceClaimNeverClaimsSkippedSuppressedOrDuplicate", testAdvanceClaimSkipsNonRuns},
		{"AdvanceClaimSetsEchoAndChainAsClaimDoes", testAdvanceClaimChains},
		{"ConcurrentAdvanceClaimsKeepOneRunPerKey", testConcurrentAdvanceClaims},
		{"AdvanceClaimJournalsTheIntentOnlyWhenItSaysSo", testAdvanceClaimIntent},
		{"AdvanceClaimHoldsRunsNobodyRead", testAdvanceClaimHeldUnread},
		{"AdvanceEncodedAheadClaimsAsInTurn", testAdvanceEncodedAhead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

var ctx = context.Background()

func ev(id, key string) engine.NewEvent {
	return engine.NewEvent{ID: id, Subject: "subject/" + id, OrderingKey: key, Connector: "fake", Time: time.Unix(1700000000, 0).UTC(),
		Data: json.RawMessage(`{"id":"` + id + `"}`)}
}

// echoOf is an event of member/1 (connector members) in state fp, with
// its own ordering key.
func echoOf(id, fp string) engine.NewEvent {
	e := ev(id, "k-"+id)
	e.Subject, e.Fingerprint, e.Connector = "member/1", fp, "members"
	return e
}

func advance(t *testing.T, s engine.Store, recipe string, evs ...engine.NewEvent) []engine.Enqueued {
	t.Helper()
	enq, err := s.Advance(ctx, recipe, engine.Advance{Events: evs})
	if err != nil {
		t.Fatalf("Advance(%s): %v", recipe, err)
	}
	if len(enq) != len(evs) {
		t.Fatalf("Advance(%s) reported %d events of %d", recipe, len(enq), len(evs))
	}
	return enq
}

func claim(t *testing.T, s engine.Store, owner string, limit int, now time.Time, recipes ...string) []*engine.ClaimedRun {
	t.Helper()
	if len(recipes) == 0 {
		recipes = []string{"r"}
	}
	runs, err := s.Claim(ctx, engine.ClaimRequest{Owner: owner, Recipes: recipes, Limit: limit, Now: now, Lease: time.Minute})
	if err != nil {
		t.Fatalf("Claim(%s): %v", owner, err)
	}
	return runs
}

func eventIDs(runs []*engine.ClaimedRun) string {
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.EventID)
	}
	return fmt.Sprint(ids)
}

func finish(t *testing.T, s engine.Store, cr *engine.ClaimedRun, status string, steps ...engine.StepRecord) {
	t.Helper()
	if err := s.Record(ctx, cr.Lease(), steps, &engine.Completion{RunID: cr.ID, Status: status, Finished: time.Now()}); err != nil {
		t.Fatalf("finishing run %d (%s): %v", cr.ID, cr.EventID, err)
	}
}

func run(t *testing.T, s engine.Store, id int64) *engine.RunDetail {
	t.Helper()
	d, err := s.GetRun(ctx, id)
	if err != nil {
		t.Fatalf("GetRun(%d): %v", id, err)
	}
	return d
}

func testAdvance(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	if c, err := s.Cursor(ctx, "r"); err != nil || c != "" {
		t.Fatalf("cursor before the first poll = %q, %v; want empty", c, err)
	}
	cur := "c1"
	enq, err := s.Advance(ctx, "r", engine.Advance{Cursor: &cur,
		States: []engine.SubjectState{{Subject: "a", State: "active"}, {Subject: "b", State: "lapsed"}},
		Events: []engine.NewEvent{ev("1", "k1"), ev("2", "k2")}})
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range enq {
		if q.RunID == 0 || q.Status != engine.RunQueued || q.EventID != fmt.Sprint(i+1) {
			t.Errorf("enqueued[%d] = %+v, want a queued run for event %d", i, q, i+1)
		}
	}
	// A second handle (another runner) sees all of it.
	other := open(t)
	if c, _ := other.Cursor(ctx, "r"); c != "c1" {
		t.Errorf("cursor = %q, want c1", c)
	}
	if c, _ := other.Cursor(ctx, "other-recipe"); c != "" {
		t.Errorf("another recipe's cursor = %q, want empty", c)
	}
	st, err := other.PriorStates(ctx, "r", []string{"a", "b", "unknown"})
	if err != nil || len(st) != 2 || st["a"] != "active" || st["b"] != "lapsed" {
		t.Errorf("states = %v, %v; want a: active, b: lapsed, unknown absent", st, err)
	}
	// States are replaced, the cursor too; an advance without a cursor
	// keeps it.
	cur2 := "c2"
	if _, err := s.Advance(ctx, "r", engine.Advance{Cursor: &cur2, States: []engine.SubjectState{{Subject: "a", State: "lapsed"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{ev("3", "k3")}}); err != nil {
		t.Fatal(err)
	}
	if c, _ := other.Cursor(ctx, "r"); c != "c2" {
		t.Errorf("cursor = %q, want c2", c)
	}
	if st, _ := other.PriorStates(ctx, "r", []string{"a"}); st["a"] != "lapsed" {
		t.Errorf("state of a = %q, want lapsed", st["a"])
	}
	// A page of many states, one subject twice: all are kept, the later
	// of the two.
	var many []engine.SubjectState
	var subjects []string
	for i := range 150 {
		sub := fmt.Sprintf("s%03d", i)
		many = append(many, engine.SubjectState{Subject: sub, State: "active"})
		subjects = append(subjects, sub)
	}
	many = append(many, engine.SubjectState{Subject: "s007", State: "lapsed"})
	if _, err := s.Advance(ctx, "r", engine.Advance{States: many}); err != nil {
		t.Fatal(err)
	}
	if st, err := other.PriorStates(ctx, "r", subjects); err != nil || len(st) != 150 || st["s007"] != "lapsed" || st["s149"] != "active" {
		t.Errorf("after a page of 151 states: %d states, s007 %q, s149 %q, %v; want 150, lapsed, active", len(st), st["s007"], st["s149"], err)
	}
	runs := claim(t, other, "w", 10, time.Now())
	if got := eventIDs(runs); got != "[1 2 3]" {
		t.Fatalf("claimed %s, want [1 2 3]", got)
	}
	r := runs[0]
	if r.Recipe != "r" || r.Subject != "subject/1" || r.Connector != "fake" || r.OrderingKey != "k1" || r.Attempts != 1 || string(r.Data) != `{"id":"1"}` {
		t.Errorf("claimed run = %+v", r)
	}
	// A cancelled advance leaves nothing behind.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	cur3 := "c3"
	if _, err := s.Advance(cctx, "r", engine.Advance{Cursor: &cur3, Events: []engine.NewEvent{ev("4", "k4")}}); err == nil {
		t.Log("an advance with a cancelled context was applied (allowed: it is all or nothing)")
		if c, _ := s.Cursor(ctx, "r"); c != "c3" {
			t.Errorf("the advance reported success but the cursor is %q", c)
		}
	} else {
		if c, _ := s.Cursor(ctx, "r"); c != "c2" {
			t.Errorf("a failed advance moved the cursor to %q", c)
		}
		if got := claim(t, s, "w", 10, time.Now()); len(got) != 0 {
			t.Errorf("a failed advance queued %s", eventIDs(got))
		}
	}
}

func testDedupe(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	advance(t, s, "r", ev("e1", "k1"))
	enq := advance(t, s, "r", ev("e1", "k1"), ev("e2", "k2"), ev("e2", "k2"))
	if enq[0].RunID != 0 || enq[1].RunID == 0 || enq[2].RunID != 0 {
		t.Errorf("enqueued = %+v, want e1 (seen before) and the second e2 dropped", enq)
	}
	// Another recipe may see the same event ID.
	if enq := advance(t, s, "other", ev("e1", "k9")); enq[0].RunID == 0 {
		t.Error("an event of another recipe was dropped")
	}
	if got := claim(t, s, "w", 10, time.Now(), "r", "other"); len(got) != 3 {
		t.Errorf("claimed %s, want three runs", eventIDs(got))
	}
}

// testSkipped: an event the condition rejects makes no run and no event
// row; the page's skips are counted in one SkipPage with a sample of what
// the condition read. Such an event's data is for an echo only: Encode,
// which the store calls then, or its Data as read.
func testSkipped(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	// A writer's run remembers member/1 in state f1.
	advance(t, s, "r", ev("w", "writer"))
	w := claim(t, s, "w", 1, time.Now())[0]
	finish(t, s, w, engine.RunSucceeded, engine.StepRecord{RunID: w.ID, StepID: "one", Action: "c.one", Status: engine.StepSucceeded, Attempts: 1,
		Wrote: []engine.Echo{{Connector: "fake", Subject: "member/1", Fingerprint: "f1"}, {Connector: "fake", Subject: "member/2", Fingerprint: "f9"}}})
	skip := func(id, fp string) engine.NewEvent {
		return engine.NewEvent{ID: id, Subject: "member/1", Fingerprint: fp, Connector: "fake", OrderingKey: "member/1",
			Skipped: true, Values: json.RawMessage(`{"trigger.status":"lapsed"}`),
			Encode: func() (json.RawMessage, error) { return json.RawMessage(`{"id":"` + id + `"}`), nil }}
	}
	// A skipped event is counted, not stored; a skipped echo is recorded
	// as suppressed like any echo, with the data Encode gives.
	enq := advance(t, s, "r", skip("echo", "f1"), skip("other", "f2"), ev("queued", "member/1"))
	for i, want := range []string{engine.RunSuppressed, engine.RunSkipped, engine.RunQueued} {
		if enq[i].Status != want || (enq[i].RunID == 0) != (want == engine.RunSkipped) {
			t.Errorf("event %s: %+v, want %s (a run only when not skipped)", enq[i].EventID, enq[i], want)
		}
	}
	if d := run(t, s, enq[0].RunID); d.Status != engine.RunSuppressed || string(d.Event) != `{"id":"echo"}` {
		t.Errorf("the suppressed echo: %s with event %s", d.Status, d.Event)
	}
	if runs, _ := s.ListRuns(ctx, engine.RunFilter{}); len(runs) != 3 {
		t.Errorf("%d runs, want the writer, the echo and the queued one", len(runs))
	}
	if sl, ok := s.(engine.SkipLister); ok {
		pages, err := sl.ListSkips(ctx, engine.RunFilter{Recipe: "r"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pages) != 1 || pages[0].Count != 1 || len(pages[0].Sample) != 1 || pages[0].Sample[0].EventID != "other" ||
			string(pages[0].Sample[0].Values) != `{"trigger.status":"lapsed"}` || pages[0].Created.IsZero() {
			t.Errorf("skip pages: %+v", pages)
		}
		// The sample is bounded.
		var many []engine.NewEvent
		for i := 0; i < engine.SkipSample+4; i++ {
			many = append(many, skip(fmt.Sprint("s", i), fmt.Sprint("g", i)))
		}
		advance(t, s, "r", many...)
		pages, _ = sl.ListSkips(ctx, engine.RunFilter{Recipe: "r", Limit: 1})
		if len(pages) != 1 || pages[0].Count != len(many) || len(pages[0].Sample) != engine.SkipSample {
			t.Errorf("the newest page: %+v, want %d counted and %d sampled", pages, len(many), engine.SkipSample)
		}
	}
	// A skipped event read as JSON carries it as its Data, with no
	// Encode: the same, the echo recorded with that data.
	asRead := func(id, fp string) engine.NewEvent {
		e := skip(id, fp)
		e.Subject, e.OrderingKey, e.Encode, e.Data = "member/2", "member/2", nil, json.RawMessage(`{"id":"`+id+`","as":"read"}`)
		return e
	}
	enq = advance(t, s, "r", asRead("echo2", "f9"), asRead("other2", "f8"))
	if enq[0].Status != engine.RunSuppressed || enq[1].Status != engine.RunSkipped || enq[1].RunID != 0 {
		t.Errorf("skipped events with their data: %+v", enq)
	} else if d := run(t, s, enq[0].RunID); string(d.Event) != `{"id":"echo2","as":"read"}` {
		t.Errorf("the suppressed echo with its data: event %s", d.Event)
	}
	// Only the queued one is claimable; the others do not hold its key.
	if got := eventIDs(claim(t, s, "w", 10, time.Now())); got != "[queued]" {
		t.Errorf("claimed %s, want [queued]", got)
	}
}

// testPrune: a prune removes finished runs, their journals and their
// events' data, and old skip pages; dead letters and queued runs stay, and
// a pruned event seen again is still a duplicate.
func testPrune(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	pruner, ok := s.(engine.Pruner)
	if !ok {
		t.Fatalf("%T has no retention (engine.Pruner)", s)
	}
	sk := ev("skip", "d")
	sk.Data, sk.Skipped = nil, true
	advance(t, s, "r", ev("ok", "a"), ev("dead", "b"), ev("waiting", "c"), sk)
	cr := claim(t, s, "w", 2, time.Now())
	if len(cr) != 2 {
		t.Fatalf("claimed %s", eventIDs(cr))
	}
	step := func(c *engine.ClaimedRun) engine.StepRecord {
		return engine.StepRecord{RunID: c.ID, StepID: "one", Action: "c.one", Status: engine.StepSucceeded, Input: json.RawMessage(`{}`)}
	}
	finish(t, s, cr[0], engine.RunSucceeded, step(cr[0]))
	finish(t, s, cr[1], engine.RunDead, step(cr[1]))
	if res, err := pruner.Prune(ctx, engine.Prune{Before: time.Now().Add(-time.Hour)}); err != nil || res.Runs+res.Steps+res.Events+res.SkipPages != 0 {
		t.Fatalf("a prune of nothing old: %+v %v", res, err)
	}
	res, err := pruner.Prune(ctx, engine.Prune{Before: time.Now().Add(time.Second), Vacuum: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Runs != 1 || res.Steps != 1 || res.Events != 1 || res.SkipPages != 1 {
		t.Fatalf("pruned %+v, want the succeeded run, its step and event data, and the skip page", res)
	}
	runs, _ := s.ListRuns(ctx, engine.RunFilter{})
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.EventID)
	}
	if fmt.Sprint(ids) != "[waiting dead]" {
		t.Fatalf("runs left: %v, want the queued one and the dead letter", ids)
	}
	if d := run(t, s, cr[1].ID); len(d.Steps) != 1 || len(d.Event) == 0 {
		t.Fatalf("the dead letter lost its audit: %+v", d)
	}
	if again := advance(t, s, "r", ev("ok", "a")); again[0].RunID != 0 || again[0].Status != "" {
		t.Fatalf("a pruned event seen again: %+v, want a duplicate", again)
	}
}

func testOrdering(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	// keys a, b, a, c, b; a run of another recipe shares key a.
	advance(t, s, "r", ev("1", "a"), ev("2", "b"), ev("3", "a"), ev("4", "c"), ev("5", "b"))
	advance(t, s, "other", ev("6", "a"))
	now := time.Now()
	first := claim(t, s, "w1", 10, now)
	if got := eventIDs(first); got != "[1 2 4]" {
		t.Fatalf("first claim = %s, want one run per key, earliest first: [1 2 4]", got)
	}
	if got := claim(t, s, "w2", 10, now, "r", "other"); len(got) != 0 {
		t.Fatalf("claim while 1, 2, 4 run = %s, want nothing", eventIDs(got))
	}
	finish(t, s, first[0], engine.RunSucceeded)
	if got := eventIDs(claim(t, s, "w2", 10, now, "r", "other")); got != "[3]" {
		t.Fatalf("after run 1 = %s, want [3] (the key is shared across recipes, in arrival order)", got)
	}
	// The limit is honoured, in arrival order.
	advance(t, s, "r", ev("7", "x"), ev("8", "y"), ev("9", "z"))
	if got := eventIDs(claim(t, s, "w3", 2, now)); got != "[7 8]" {
		t.Errorf("claim of 2 = %s, want [7 8]", got)
	}
	// Only the named recipes.
	advance(t, s, "third", ev("10", "q"))
	if got := eventIDs(claim(t, s, "w3", 10, now, "third")); got != "[10]" {
		t.Errorf("claim of recipe third = %s, want [10]", got)
	}
}

func testTakeOver(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	advance(t, s, "r", ev("1", "a"))
	now := time.Now()
	first := claim(t, s, "w1", 10, now)
	if len(first) != 1 || first[0].Attempts != 1 {
		t.Fatalf("claim = %+v", first)
	}
	other := open(t)
	if got := claim(t, other, "w2", 10, now.Add(30*time.Second)); len(got) != 0 {
		t.Fatalf("claim within the lease = %s", eventIDs(got))
	}
	second := claim(t, other, "w2", 10, now.Add(2*time.Minute))
	if len(second) != 1 || second[0].ID != first[0].ID {
		t.Fatalf("claim after the lease = %s, want the run taken over", eventIDs(second))
	}
	if second[0].Attempts != 2 || second[0].Token <= first[0].Token {
		t.Errorf("taken over: attempts %d token %d (first token %d): want attempts 2 and a greater token", second[0].Attempts, second[0].Token, first[0].Token)
	}
	if d := run(t, s, first[0].ID); d.Status != engine.RunRunning || d.Attempts != 2 {
		t.Errorf("run = %s after %d attempts, want running after 2", d.Status, d.Attempts)
	}
}

func testFencing(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	advance(t, s, "r", ev("1", "a"))
	now := time.Now()
	old := claim(t, s, "w1", 1, now)[0]
	intent := engine.StepRecord{RunID: old.ID, Index: 0, StepID: "issue", Action: "c.create", Status: engine.StepStarted, Attempts: 1, Started: now}
	if err := s.Record(ctx, old.Lease(), []engine.StepRecord{intent}, nil); err != nil {
		t.Fatalf("the holder's intent: %v", err)
	}
	other := open(t)
	cur := claim(t, other, "w2", 1, now.Add(2*time.Minute))[0]
	if cur.ID != old.ID {
		t.Fatalf("took over run %d, want %d", cur.ID, old.ID)
	}
	// The old holder can write nothing any more: no step, no outcome,
	// no give-back, no echo.
	done := intent
	done.Status, done.Output, done.Finished = engine.StepSucceeded, json.RawMessage(`{"id":"old"}`), now
	done.Wrote = []engine.Echo{{Connector: "c", Subject: "s", Fingerprint: "old"}}
	for name, fin := range map[string]*engine.Completion{
		"step":     nil,
		"outcome":  {RunID: old.ID, Status: engine.RunSucceeded, Finished: now},
		"giveback": {RunID: old.ID, Status: engine.RunQueued},
	} {
		steps := []engine.StepRecord{done}
		if name == "giveback" {
			steps = nil
		}
		err := s.Record(ctx, old.Lease(), steps, fin)
		var lost *engine.LeaseLostError
		if !errors.Is(err, engine.ErrLeaseLost) || !errors.As(err, &lost) || lost.RunID != old.ID {
			t.Errorf("%s recorded under the lost lease: err = %v, want a *LeaseLostError for run %d", name, err, old.ID)
		}
	}
	d := run(t, s, old.ID)
	if d.Status != engine.RunRunning || len(d.Steps) != 1 || d.Steps[0].Status != engine.StepStarted {
		t.Errorf("after refused writes: status %s, steps %+v; want running with the intent only", d.Status, d.Steps)
	}
	echo := ev("echo", "z")
	echo.Subject, echo.Fingerprint, echo.Connector = "s", "old", "c"
	if enq := advance(t, s, "r", echo); enq[0].Status != engine.RunQueued {
		t.Errorf("an echo of a refused write was %s, want queued (nothing was remembered)", enq[0].Status)
	}
	// The new holder goes on.
	finish(t, other, cur, engine.RunSucceeded, done)
	if d := run(t, s, old.ID); d.Status != engine.RunSucceeded {
		t.Errorf("after the new holder finished: %s", d.Status)
	}
	// A lease of a finished run is refused too, and an unknown run.
	if err := s.Record(ctx, cur.Lease(), nil, &engine.Completion{RunID: cur.ID, Status: engine.RunDead}); !errors.Is(err, engine.ErrLeaseLost) {
		t.Errorf("outcome of a finished run: %v, want ErrLeaseLost", err)
	}
	if err := s.Record(ctx, engine.Lease{RunID: 999999, Token: 1}, nil, &engine.Completion{RunID: 999999, Status: engine.RunDead}); !errors.Is(err, engine.ErrLeaseLost) {
		t.Errorf("outcome of an unknown run: %v, want ErrLeaseLost", err)
	}
	// ReleaseOwner ends the leases it releases.
	advance(t, s, "r", ev("2", "b"))
	held := claim(t, s, "w3", 1, now)[0]
	if n, err := s.ReleaseOwner(ctx, "w3"); err != nil || n != 1 {
		t.Fatalf("ReleaseOwner = %d, %v; want 1", n, err)
	}
	if err := s.Record(ctx, held.Lease(), nil, &engine.Completion{RunID: held.ID, Status: engine.RunSucceeded}); !errors.Is(err, engine.ErrLeaseLost) {
		t.Errorf("outcome after release: %v, want ErrLeaseLost", err)
	}
}

func testGiveBack(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	advance(t, s, "r", ev("1", "a"), ev("2", "a"))
	now := time.Now()
	cr := claim(t, s, "w1", 10, now)
	if len(cr) != 1 {
		t.Fatalf("claimed %s", eventIDs(cr))
	}
	if err := s.Record(ctx, cr[0].Lease(), nil, &engine.Completion{RunID: cr[0].ID, Status: engine.RunQueued}); err != nil {
		t.Fatal(err)
	}
	d := run(t, s, cr[0].ID)
	if d.Status != engine.RunQueued || d.Finished != nil {
		t.Errorf("given back: %s, finished %v; want queued, unfinished", d.Status, d.Finished)
	}
	again := claim(t, s, "w2", 10, now)
	if got := eventIDs(again); got != "[1]" {
		t.Fatalf("claim after give-back = %s, want [1] at once (and still before 2)", got)
	}
	if again[0].Attempts != 2 {
		t.Errorf("attempts = %d, want 2", again[0].Attempts)
	}
}

func testRenew(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	advance(t, s, "r", ev("1", "a"), ev("2", "b"), ev("3", "c"))
	now := time.Now()
	mine := claim(t, s, "w1", 2, now)
	theirs := claim(t, s, "w2", 1, now)
	held, err := s.RenewLeases(ctx, "w1", now.Add(10*time.Minute), runIDs(mine), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(held)
	want := []int64{mine[0].ID, mine[1].ID}
	slices.Sort(want)
	if !slices.Equal(held, want) {
		t.Errorf("held = %v, want %v", held, want)
	}
	// Renewed: not taken after the first lease would have ended; w2's is.
	got := claim(t, s, "w3", 10, now.Add(5*time.Minute))
	if eventIDs(got) != "[3]" {
		t.Errorf("claim after w2's lease = %s, want [3] (w1 renewed)", eventIDs(got))
	}
	// w1 lost nothing; w2 lost its run.
	if held, _ := s.RenewLeases(ctx, "w2", now.Add(10*time.Minute), runIDs(theirs), time.Time{}); len(held) != 0 {
		t.Errorf("w2 holds %v after its run was taken over", held)
	}
}

// runIDs are the runs' IDs.
func runIDs(runs []*engine.ClaimedRun) []int64 {
	ids := make([]int64, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	return ids
}

// testRenewNamed: a renewal extends the leases of the runs the runner
// names, and only those: a run it holds and does not name (claimed from
// the queue or with a page, alone in its page claim or beside a named
// run) keeps its lease, which ends; another runner then takes it, and
// the old holder's lease is refused. A named run another owner holds is
// not renewed either. This is what frees the runs of a claim whose
// answer was lost: the runner, not knowing them, does not name them.
func testRenewNamed(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	now := time.Now()
	advance(t, s, "r", ev("1", "a"), ev("2", "b"), ev("3", "c"))
	queued := claim(t, s, "w1", 3, now)
	if eventIDs(queued) != "[1 2 3]" {
		t.Fatalf("w1 claimed %s, want [1 2 3]", eventIDs(queued))
	}
	e4, e5, e6 := ev("4", "d"), ev("5", "e"), ev("6", "f")
	e5.Intent = issueIntent(now)
	enq := advanceClaim(t, s, "r", "w1", now, e4, e5, e6)
	p4, p5, p6 := claimedWith(t, "r", enq[0], e4), claimedWith(t, "r", enq[1], e5), claimedWith(t, "r", enq[2], e6)
	advance(t, s, "r", ev("7", "g"))
	theirs := claim(t, s, "w2", 1, now)
	if eventIDs(theirs) != "[7]" {
		t.Fatalf("w2 claimed %s, want [7]", eventIDs(theirs))
	}
	e8 := ev("8", "h")
	p8 := claimedWith(t, "r", advanceClaim(t, s, "r", "w1", now, e8)[0], e8)

	// w1 names one run from the queue, one of its first page, and w2's.
	held, err := s.RenewLeases(ctx, "w1", now.Add(10*time.Minute), []int64{queued[0].ID, p4.ID, theirs[0].ID}, time.Time{})
	slices.Sort(held)
	if want := []int64{queued[0].ID, p4.ID}; err != nil || !slices.Equal(held, want) {
		t.Fatalf("w1 renews %v, %v; want only the named runs it holds %v", held, err, want)
	}
	if held, err := s.RenewLeases(ctx, "w1", now.Add(10*time.Minute), nil, time.Time{}); err != nil || len(held) != 0 {
		t.Errorf("a renewal naming nothing: %v, %v; want nothing held, no error", held, err)
	}

	// After the first leases ended, before the renewed ones end, another
	// runner takes every run that was not renewed, and only those.
	got := claim(t, open(t), "w3", 10, now.Add(5*time.Minute))
	if eventIDs(got) != "[2 3 5 6 7 8]" {
		t.Fatalf("claim after the unrenewed leases ended = %s, want [2 3 5 6 7 8]: the unnamed runs, and w2's", eventIDs(got))
	}
	for _, old := range []*engine.ClaimedRun{queued[1], p5, p6, p8} {
		err := s.Record(ctx, old.Lease(), nil, &engine.Completion{RunID: old.ID, Status: engine.RunSucceeded, Finished: now})
		if !errors.Is(err, engine.ErrLeaseLost) {
			t.Errorf("w1's old lease of run %d (event %s), not renewed and taken over: %v, want ErrLeaseLost", old.ID, old.EventID, err)
		}
	}
	for _, r := range got {
		if r.EventID == "5" {
			if d := run(t, s, r.ID); len(d.Steps) != 1 || d.Steps[0].Status != engine.StepStarted {
				t.Errorf("run 5, taken over, has steps %+v; want its intent, journaled with its page", d.Steps)
			}
		}
	}
	// w1 still holds what it named.
	finish(t, s, queued[0], engine.RunSucceeded)
	finish(t, s, p4, engine.RunSucceeded)
}

// testRenewRelease: a renewal with a releaseBefore puts back in the
// queue, at once, the runs its owner holds, does not name and holds
// under a lease that ends before that bound — from the queue or with a
// page, alone in its page claim or beside a named run — and no other:
// not a run leased until the bound or later (a claim whose answer may be
// on its way), not a named one, not another owner's. Another runner
// claims the released runs at once under new tokens, keys still in
// order; the old holder's leases of them are refused, its other leases
// stand. This is what frees the runs of a claim whose answer was lost
// within a renewal rather than a lease.
func testRenewRelease(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	now := time.Now()
	advance(t, s, "r", ev("1", "a"), ev("2", "b"))
	queued := claim(t, s, "w1", 2, now) // 1: its answer lost; 2: known
	if eventIDs(queued) != "[1 2]" {
		t.Fatalf("w1 claimed %s, want [1 2]", eventIDs(queued))
	}
	advance(t, s, "r", ev("3", "c"), ev("4", "d"), ev("5", "a"))
	// Asked half a minute later: its answer may be on its way.
	inFlight := claim(t, s, "w1", 1, now.Add(30*time.Second))
	theirs := claim(t, s, "w2", 1, now)
	if eventIDs(inFlight) != "[3]" || eventIDs(theirs) != "[4]" {
		t.Fatalf("w1 then w2 claimed %s and %s, want [3] and [4] (5 waits behind 1)", eventIDs(inFlight), eventIDs(theirs))
	}
	e6, e7, e8 := ev("6", "f"), ev("7", "g"), ev("8", "h")
	e7.Intent = issueIntent(now)
	enq := advanceClaim(t, s, "r", "w1", now, e6, e7)
	p6, p7 := claimedWith(t, "r", enq[0], e6), claimedWith(t, "r", enq[1], e7)
	p8 := claimedWith(t, "r", advanceClaim(t, s, "r", "w1", now, e8)[0], e8)

	// w1 names 2 and 6, and vouches for every claim asked before now+1s.
	held, err := s.RenewLeases(ctx, "w1", now.Add(10*time.Second+time.Minute), []int64{queued[1].ID, p6.ID}, now.Add(time.Second+time.Minute))
	slices.Sort(held)
	if want := []int64{queued[1].ID, p6.ID}; err != nil || !slices.Equal(held, want) {
		t.Fatalf("w1 renews %v, %v; want the named runs %v", held, err, want)
	}
	// Before any lease ended, another runner takes the released runs.
	got := claim(t, open(t), "w3", 10, now)
	if eventIDs(got) != "[1 7 8]" {
		t.Fatalf("claim right after the renewal = %s, want [1 7 8]: the unnamed runs leased before the bound, not 3 (leased after it), 2 and 6 (named), 4 (w2's) nor 5 (behind 1)", eventIDs(got))
	}
	for _, r := range got {
		if r.Attempts != 2 || r.Token <= 1 {
			t.Errorf("run %d (event %s) claimed again with attempts %d, token %d; want a second claim", r.ID, r.EventID, r.Attempts, r.Token)
		}
		if r.EventID == "7" {
			if d := run(t, s, r.ID); len(d.Steps) != 1 || d.Steps[0].Status != engine.StepStarted {
				t.Errorf("run 7, released, has steps %+v; want its intent, journaled with its page", d.Steps)
			}
		}
	}
	for _, old := range []*engine.ClaimedRun{queued[0], p7, p8} {
		err := s.Record(ctx, old.Lease(), nil, &engine.Completion{RunID: old.ID, Status: engine.RunSucceeded, Finished: now})
		if !errors.Is(err, engine.ErrLeaseLost) {
			t.Errorf("w1's old lease of run %d (event %s), released: %v, want ErrLeaseLost", old.ID, old.EventID, err)
		}
	}
	// A renewal with no bound releases nothing.
	if held, err := s.RenewLeases(ctx, "w1", now.Add(10*time.Second+time.Minute), nil, time.Time{}); err != nil || len(held) != 0 {
		t.Errorf("a renewal naming nothing, with no bound: %v, %v", held, err)
	}
	if more := claim(t, s, "w3", 10, now); len(more) != 0 {
		t.Fatalf("claim after a renewal with no bound = %s, want nothing", eventIDs(more))
	}
	// The rest stand: w1's named runs and its claim in flight, w2's run.
	finish(t, s, queued[1], engine.RunSucceeded)
	finish(t, s, p6, engine.RunSucceeded)
	finish(t, s, inFlight[0], engine.RunSucceeded)
	finish(t, s, theirs[0], engine.RunSucceeded)
	// Keys keep their order: 5 is claimed once 1 is done.
	for _, r := range got {
		finish(t, s, r, engine.RunSucceeded)
	}
	if last := claim(t, s, "w3", 10, now); eventIDs(last) != "[5]" {
		t.Errorf("claim after 1 ended = %s, want [5]", eventIDs(last))
	}
}

func testJournal(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	advance(t, s, "r", ev("1", "a"))
	now := time.Now().UTC().Truncate(time.Millisecond)
	cr := claim(t, s, "w", 1, now)[0]
	// Step 1 is journaled first (out of order), then step 0; then the
	// intent of step 1 is replaced by its result.
	lines := []engine.StepRecord{
		{RunID: cr.ID, Index: 1, StepID: "issue", Action: "c.create", Status: engine.StepStarted, Input: json.RawMessage(`{"name":"x"}`), Attempts: 1, Started: now},
	}
	if err := s.Record(ctx, cr.Lease(), lines, nil); err != nil {
		t.Fatal(err)
	}
	read := engine.StepRecord{RunID: cr.ID, Index: 0, StepID: "get", Action: "c.get", Status: engine.StepSucceeded, Output: json.RawMessage(`{"id":"m1"}`), Attempts: 1, Started: now, Finished: now}
	if err := s.Record(ctx, cr.Lease(), []engine.StepRecord{read}, nil); err != nil {
		t.Fatal(err)
	}
	steps, err := open(t).Steps(ctx, cr.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 || steps[0].StepID != "get" || steps[1].StepID != "issue" || steps[1].Status != engine.StepStarted {
		t.Fatalf("journal = %+v, want get then the intent of issue", steps)
	}
	if string(steps[1].Input) != `{"name":"x"}` || steps[1].Attempts != 1 || !steps[1].Started.Equal(now) || !steps[1].Finished.IsZero() {
		t.Errorf("intent = %+v", steps[1])
	}
	if !steps[0].Finished.Equal(now) || string(steps[0].Output) != `{"id":"m1"}` {
		t.Errorf("read step = %+v", steps[0])
	}
	// A crash here leaves the intent: a resumed run sees it in doubt.
	res := lines[0]
	res.Status, res.Output, res.Attempts, res.Finished = engine.StepSucceeded, json.RawMessage(`{"id":"c1"}`), 2, now
	finish(t, s, cr, engine.RunSucceeded, res)
	steps, _ = s.Steps(ctx, cr.ID)
	if len(steps) != 2 || steps[1].Status != engine.StepSucceeded || steps[1].Attempts != 2 || string(steps[1].Output) != `{"id":"c1"}` {
		t.Errorf("journal after the result = %+v", steps)
	}
	if steps, err := s.Steps(ctx, 999999); err != nil || len(steps) != 0 {
		t.Errorf("journal of an unknown run = %v, %v; want empty", steps, err)
	}
}

func testEchoChains(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	now := time.Now()
	// Recipe A's run writes member/1 in state f1.
	advance(t, s, "A", ev("a1", "ka"))
	a := claim(t, s, "w", 1, now, "A")[0]
	// Seen before the write is recorded: only the claim can tell.
	early := advance(t, s, "A", echoOf("early", "f1"))
	finish(t, s, a, engine.RunSucceeded, engine.StepRecord{RunID: a.ID, StepID: "w", Action: "m.update", Status: engine.StepSucceeded, Attempts: 1,
		Wrote: []engine.Echo{{Connector: "members", Subject: "member/1", Fingerprint: "f1"}}})
	if early[0].Status != engine.RunQueued {
		t.Fatalf("early echo: %s, want queued", early[0].Status)
	}
	got := claim(t, s, "w", 10, now, "A")
	if len(got) != 1 || !got[0].Echo {
		t.Fatalf("early echo claimed as %+v, want Echo", got)
	}
	finish(t, s, got[0], engine.RunSuppressed)
	// Known at arrival: suppressed for A; not for B (another recipe),
	// nor through another connector, nor in another state.
	enq := advance(t, s, "A", echoOf("a-f1", "f1"), echoOf("a-f2", "f2"))
	if enq[0].Status != engine.RunSuppressed || enq[1].Status != engine.RunQueued {
		t.Errorf("recipe A: %+v, want f1 suppressed, f2 queued", enq)
	}
	viaOther := echoOf("a-other", "f1")
	viaOther.Connector = "other"
	if enq := advance(t, s, "A", viaOther); enq[0].Status != engine.RunQueued {
		t.Errorf("the same state through another connector: %s, want queued", enq[0].Status)
	}
	enq = advance(t, s, "B", echoOf("b-f1", "f1"))
	if enq[0].Status != engine.RunQueued {
		t.Fatalf("recipe B: %s, want queued (A's write starts B)", enq[0].Status)
	}
	// B's run inherits A in its chain; what B writes is then an echo for
	// A and for B, not for C.
	var b *engine.ClaimedRun
	for _, r := range claim(t, s, "w", 10, now, "A", "B") {
		if r.EventID == "b-f1" {
			b = r
		} else {
			finish(t, s, r, engine.RunSucceeded)
		}
	}
	if b == nil || b.Echo {
		t.Fatalf("B's run = %+v, want claimed, not an echo", b)
	}
	finish(t, s, b, engine.RunSucceeded, engine.StepRecord{RunID: b.ID, StepID: "w", Action: "m.update", Status: engine.StepSucceeded, Attempts: 1,
		Wrote: []engine.Echo{{Connector: "members", Subject: "member/1", Fingerprint: "f3"}}})
	for recipe, want := range map[string]string{"A": engine.RunSuppressed, "B": engine.RunSuppressed, "C": engine.RunQueued} {
		if enq := advance(t, s, recipe, echoOf(recipe+"-f3", "f3")); enq[0].Status != want {
			t.Errorf("B's write seen by %s: %s, want %s", recipe, enq[0].Status, want)
		}
	}
	// Every state written is kept: A's f1 is still an echo for A.
	if enq := advance(t, s, "A", echoOf("a-f1-again", "f1")); enq[0].Status != engine.RunSuppressed {
		t.Errorf("A's older write: %s, want suppressed", enq[0].Status)
	}
	// Without a fingerprint, never an echo.
	if enq := advance(t, s, "A", echoOf("nofp", "")); enq[0].Status != engine.RunQueued {
		t.Errorf("an event without fingerprint: %s, want queued", enq[0].Status)
	}
}

func testDeadLetters(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	advance(t, s, "r", ev("1", "a"), ev("2", "b"), ev("3", "c"))
	now := time.Now()
	runs := claim(t, s, "w", 3, now)
	one := engine.StepRecord{RunID: runs[0].ID, Index: 0, StepID: "one", Action: "c.one", Status: engine.StepSucceeded, Output: json.RawMessage(`{"id":1}`), Attempts: 1, Started: now, Finished: now}
	two := engine.StepRecord{RunID: runs[0].ID, Index: 1, StepID: "two", Action: "c.two", Status: engine.StepFailed, Error: "boom", Output: json.RawMessage(`{"status":422}`), Attempts: 3, Started: now, Finished: now}
	if err := s.Record(ctx, runs[0].Lease(), []engine.StepRecord{one, two}, &engine.Completion{RunID: runs[0].ID, Status: engine.RunDead, Error: "step two failed", Finished: now}); err != nil {
		t.Fatal(err)
	}
	doubt := engine.StepRecord{RunID: runs[1].ID, Index: 0, StepID: "create", Action: "c.create", Status: engine.StepInDoubt, Error: "no look-up", Attempts: 1, Started: now, Finished: now}
	if err := s.Record(ctx, runs[1].Lease(), []engine.StepRecord{doubt}, &engine.Completion{RunID: runs[1].ID, Status: engine.RunDead, Error: "in doubt", Finished: now}); err != nil {
		t.Fatal(err)
	}
	finish(t, s, runs[2], engine.RunSucceeded)
	d := run(t, s, runs[0].ID)
	if d.Status != engine.RunDead || d.Error != "step two failed" || d.FailedStep != "two" || len(d.Steps) != 2 || d.Steps[1].Attempts != 3 || string(d.Steps[1].Output) != `{"status":422}` {
		t.Errorf("dead run = %+v", d)
	}
	dead, err := s.ListRuns(ctx, engine.RunFilter{Status: engine.RunDead})
	if err != nil || len(dead) != 2 {
		t.Fatalf("dead letters = %+v, %v; want 2", dead, err)
	}
	if err := s.Replay(ctx, runs[2].ID); err == nil || errors.Is(err, engine.ErrNoRun) {
		t.Errorf("replaying a succeeded run: %v, want a refusal", err)
	}
	if err := s.Replay(ctx, 999999); !errors.Is(err, engine.ErrNoRun) {
		t.Errorf("replaying an unknown run: %v, want ErrNoRun", err)
	}
	if err := s.Replay(ctx, runs[0].ID); err != nil {
		t.Fatal(err)
	}
	d = run(t, s, runs[0].ID)
	if d.Status != engine.RunQueued || d.Error != "" || d.Finished != nil || len(d.Steps) != 1 || d.Steps[0].StepID != "one" {
		t.Errorf("replayed run = %+v, want queued, the failed step forgotten, the step before it kept", d)
	}
	if n, err := s.ReplayAll(ctx); err != nil || n != 1 {
		t.Fatalf("ReplayAll = %d, %v; want 1", n, err)
	}
	d = run(t, s, runs[1].ID)
	if d.Status != engine.RunQueued || len(d.Steps) != 1 || d.Steps[0].Status != engine.StepInDoubt {
		t.Errorf("replayed in-doubt run = %+v, want queued with the in-doubt step kept (it is settled again)", d)
	}
	again := claim(t, s, "w2", 10, now)
	if len(again) != 2 || again[0].Attempts != 2 {
		t.Errorf("claim after replay = %s (attempts %d)", eventIDs(again), again[0].Attempts)
	}
	if n, err := s.ReplayAll(ctx); err != nil || n != 0 {
		t.Errorf("ReplayAll with no dead letters = %d, %v", n, err)
	}
}

func testInspector(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	for i := 1; i <= 5; i++ {
		advance(t, s, "r", ev(fmt.Sprint(i), fmt.Sprint("k", i)))
	}
	advance(t, s, "other", ev("x", "kx"))
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	advance(t, s, "r", ev("6", "k6"))
	all, err := s.ListRuns(ctx, engine.RunFilter{})
	if err != nil || len(all) != 7 {
		t.Fatalf("all runs = %d, %v", len(all), err)
	}
	if !sort.SliceIsSorted(all, func(i, j int) bool { return all[i].ID > all[j].ID }) {
		t.Errorf("runs are not newest first: %+v", all)
	}
	cases := []struct {
		name string
		f    engine.RunFilter
		want int
	}{
		{"recipe", engine.RunFilter{Recipe: "other"}, 1},
		{"status", engine.RunFilter{Status: engine.RunQueued}, 7},
		{"status none", engine.RunFilter{Status: engine.RunDead}, 0},
		{"subject", engine.RunFilter{Subject: "subject/3"}, 1},
		{"since", engine.RunFilter{Since: mid}, 1},
		{"until", engine.RunFilter{Until: mid}, 6},
		{"limit", engine.RunFilter{Limit: 2}, 2},
		{"recipe and subject", engine.RunFilter{Recipe: "other", Subject: "subject/3"}, 0},
	}
	for _, c := range cases {
		got, err := s.ListRuns(ctx, c.f)
		if err != nil || len(got) != c.want {
			t.Errorf("%s: %d runs, %v; want %d", c.name, len(got), err, c.want)
		}
	}
	// Paging by ID: three pages of 3, 3 and 1 cover everything once.
	var seen []int64
	before := int64(0)
	for page := 0; page < 4; page++ {
		got, err := s.ListRuns(ctx, engine.RunFilter{Limit: 3, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		for _, r := range got {
			seen = append(seen, r.ID)
		}
		before = got[len(got)-1].ID
	}
	if len(seen) != 7 {
		t.Errorf("pages gave %v, want the 7 runs", seen)
	}
	if _, err := s.ListRuns(ctx, engine.RunFilter{Status: "bogus"}); err == nil {
		t.Error("an unknown status was accepted")
	}
	if _, err := s.GetRun(ctx, 999999); !errors.Is(err, engine.ErrNoRun) {
		t.Errorf("GetRun of an unknown run: %v, want ErrNoRun", err)
	}
	d := run(t, s, all[0].ID)
	if d.EventID != "6" || string(d.Event) != `{"id":"6"}` || d.Subject != "subject/6" || d.OrderingKey != "k6" || d.Created.IsZero() {
		t.Errorf("run detail = %+v", d)
	}
}

func testLeadPoll(t *testing.T, open func(t *testing.T) engine.Store) {
	s, other := open(t), open(t)
	now := time.Now()
	lead := func(st engine.Store, recipe, owner string, until time.Time) bool {
		t.Helper()
		ok, err := st.LeadPoll(ctx, recipe, owner, until)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !lead(s, "r", "w1", now.Add(time.Minute)) {
		t.Fatal("the first runner did not get the lead")
	}
	if lead(other, "r", "w2", now.Add(time.Minute)) {
		t.Fatal("a second runner got the lead while the first holds it")
	}
	if !lead(other, "r2", "w2", now.Add(time.Minute)) {
		t.Error("the lead of another recipe was refused")
	}
	if !lead(s, "r", "w1", now.Add(time.Minute)) {
		t.Error("the holder could not renew its lead")
	}
	// The holder's lease ends: another takes over, and the old holder is
	// refused until the new one's ends.
	if !lead(s, "gone", "w1", now.Add(-time.Second)) {
		t.Fatal("lead of recipe gone refused")
	}
	if !lead(other, "gone", "w2", now.Add(time.Minute)) {
		t.Error("no take-over after the lead ended")
	}
	if lead(s, "gone", "w1", now.Add(time.Minute)) {
		t.Error("the old holder got the lead back while the new one holds it")
	}
}

func testJoin(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	if _, err := s.Join(ctx, engine.RunnerInfo{Owner: "alive", Host: "h", PID: 1}); err != nil {
		t.Fatal(err)
	}
	advance(t, s, "r", ev("1", "a"), ev("2", "b"))
	now := time.Now()
	claim(t, s, "alive", 1, now)
	if ok, err := s.LeadPoll(ctx, "r", "alive", now.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("lead: %v, %v", ok, err)
	}
	other := open(t)
	if _, err := other.Join(ctx, engine.RunnerInfo{Owner: "alive", Host: "h2", PID: 2}); err == nil {
		t.Error("a second live runner joined under the same owner")
	}
	n, err := other.Join(ctx, engine.RunnerInfo{Owner: "second", Host: "h2", PID: 2})
	if err != nil || n != 0 {
		t.Fatalf("join beside a live runner = %d, %v; want 0 runs released", n, err)
	}
	if rl, ok := other.(engine.RunnerLister); ok {
		rs, err := rl.Runners(ctx)
		if err != nil || len(rs) != 2 {
			t.Fatalf("runners = %+v, %v; want 2", rs, err)
		}
		for _, r := range rs {
			if r.Owner == "alive" && (r.Runs != 1 || !slices.Equal(r.Polling, []string{"r"}) || r.Host != "h" || r.PID != 1) {
				t.Errorf("runner alive = %+v, want 1 run, polling r", r)
			}
		}
	}
	// The first runner's process dies: its handle is gone. The next runner
	// to join resumes its run at once and frees its poller.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	third := open(t)
	n, err = third.Join(ctx, engine.RunnerInfo{Owner: "third", Host: "h3", PID: 3})
	if err != nil || n != 1 {
		t.Fatalf("join after a runner died = %d, %v; want its 1 run released", n, err)
	}
	if got := claim(t, third, "third", 10, now); eventIDs(got) != "[1 2]" || got[0].Attempts != 2 {
		t.Errorf("claim after the release = %s (attempts %d), want [1 2], run 1 resumed", eventIDs(got), got[0].Attempts)
	}
	if ok, _ := third.LeadPoll(ctx, "r", "third", now.Add(time.Minute)); !ok {
		t.Error("the dead runner's poller was not freed")
	}
	// Leave: the owner name is free again.
	if err := other.Leave(ctx, "second"); err != nil {
		t.Fatal(err)
	}
	if _, err := third.Join(ctx, engine.RunnerInfo{Owner: "second"}); err != nil {
		t.Errorf("joining under a name that left: %v", err)
	}
}

func testBacklog(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	sk := ev("s", "k9")
	sk.Skipped = true
	advance(t, s, "r", ev("1", "a"), ev("2", "b"), ev("3", "c"), sk)
	advance(t, s, "other", ev("x", "kx"))
	cr := claim(t, s, "w", 2, time.Now())
	finish(t, s, cr[0], engine.RunSucceeded)
	for _, c := range []struct {
		recipes []string
		want    int
	}{{[]string{"r"}, 2}, {[]string{"r", "other"}, 3}, {nil, 0}} {
		if n, err := s.Backlog(ctx, c.recipes); err != nil || n != c.want {
			t.Errorf("Backlog(%v) = %d, %v; want %d", c.recipes, n, err, c.want)
		}
	}
	if qs, ok := s.(engine.QueueStatser); ok {
		st, err := qs.QueueStats(ctx)
		if err != nil || st.Queued != 2 || st.Running != 1 || st.Dead != 0 || st.OldestQueued.IsZero() {
			t.Errorf("QueueStats = %+v, %v; want 2 queued (the oldest dated), 1 running", st, err)
		}
	}
}

// testConcurrentClaimers: N claimers, each with its own handle (as
// separate processes have), drain one queue of runs on few keys. No run
// is claimed twice under one lease, and runs of one key never overlap and
// go in arrival order.
func testConcurrentClaimers(t *testing.T, open func(t *testing.T) engine.Store) {
	const runs, keys, claimers = 120, 8, 4
	s := open(t)
	var evs []engine.NewEvent
	for i := 0; i < runs; i++ {
		evs = append(evs, ev(fmt.Sprintf("e%03d", i), fmt.Sprint("k", i%keys)))
	}
	advance(t, s, "r", evs...)
	var mu sync.Mutex
	active := map[string]string{} // key → event in flight
	lastDone := map[string]string{}
	executed := map[string]int{}
	var failures []string
	var wg sync.WaitGroup
	for c := 0; c < claimers; c++ {
		h := open(t)
		owner := fmt.Sprint("claimer-", c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			idle := 0
			for idle < 20 {
				got, err := h.Claim(ctx, engine.ClaimRequest{Owner: owner, Recipes: []string{"r"}, Limit: 3, Now: time.Now(), Lease: time.Minute})
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					return
				}
				if len(got) == 0 {
					idle++
					time.Sleep(2 * time.Millisecond)
					continue
				}
				idle = 0
				for _, cr := range got {
					mu.Lock()
					if other, busy := active[cr.OrderingKey]; busy {
						failures = append(failures, fmt.Sprintf("%s claimed while %s of key %s runs", cr.EventID, other, cr.OrderingKey))
					}
					if last := lastDone[cr.OrderingKey]; last > cr.EventID {
						failures = append(failures, fmt.Sprintf("%s ran after %s of key %s", cr.EventID, last, cr.OrderingKey))
					}
					active[cr.OrderingKey] = cr.EventID
					executed[cr.EventID]++
					mu.Unlock()
				}
				for _, cr := range got {
					mu.Lock()
					delete(active, cr.OrderingKey)
					lastDone[cr.OrderingKey] = cr.EventID
					mu.Unlock()
					if err := h.Record(ctx, cr.Lease(), nil, &engine.Completion{RunID: cr.ID, Status: engine.RunSucceeded, Finished: time.Now()}); err != nil {
						mu.Lock()
						failures = append(failures, err.Error())
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if len(executed) != runs {
		t.Errorf("%d runs executed, want %d", len(executed), runs)
	}
	for id, n := range executed {
		if n != 1 {
			t.Errorf("%s executed %d times", id, n)
		}
	}
}

// testStateCopy: a StateCopier's export, imported into a fresh store,
// gives the same cursors and subject states, and writes that are echoes
// for every recipe.
func testStateCopy(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	src, ok := s.(engine.StateCopier)
	if !ok {
		t.Skip("the store does not copy state (engine.StateCopier is optional)")
	}
	cur := "page-7"
	if _, err := s.Advance(ctx, "r", engine.Advance{Cursor: &cur, States: []engine.SubjectState{{Subject: "m1", State: "active"}},
		Events: []engine.NewEvent{ev("1", "a")}}); err != nil {
		t.Fatal(err)
	}
	cr := claim(t, s, "w", 1, time.Now())[0]
	finish(t, s, cr, engine.RunSucceeded, engine.StepRecord{RunID: cr.ID, StepID: "w", Action: "m.update", Status: engine.StepSucceeded, Attempts: 1,
		Finished: time.Now(), Wrote: []engine.Echo{{Connector: "members", Subject: "member/1", Fingerprint: "f1"}}})
	st, err := src.ExportState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Cursors) != 1 || len(st.Subjects) != 1 || len(st.Writes) != 1 {
		t.Fatalf("exported %+v", st)
	}
	t.Run("into", func(t *testing.T) {
		dst := open(t)
		if err := dst.(engine.StateCopier).ImportState(ctx, st); err != nil {
			t.Fatal(err)
		}
		if c, _ := dst.Cursor(ctx, "r"); c != "page-7" {
			t.Errorf("cursor = %q", c)
		}
		if m, _ := dst.PriorStates(ctx, "r", []string{"m1"}); m["m1"] != "active" {
			t.Errorf("states = %v", m)
		}
		e := ev("echo", "z")
		e.Connector, e.Subject, e.Fingerprint = "members", "member/1", "f1"
		if enq := advance(t, dst, "any-recipe", e); enq[0].Status != engine.RunSuppressed {
			t.Errorf("a copied write seen again: %s, want suppressed", enq[0].Status)
		}
		if err := dst.(engine.StateCopier).ImportState(ctx, st); err != nil {
			t.Errorf("importing twice: %v", err)
		}
	})
}

// testMeta: engine.MetaStore, when the store has it: versions, CAS,
// deletion keeps the version, prefix listing, and a second handle (another
// runner) agrees.
func testMeta(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	m, ok := s.(engine.MetaStore)
	if !ok {
		t.Skip("the store keeps no meta values (engine.MetaStore is optional)")
	}
	other := open(t).(engine.MetaStore)
	if v, ver, err := m.GetMeta(ctx, "token/a"); err != nil || v != nil || ver != 0 {
		t.Fatalf("unwritten: %q %d %v", v, ver, err)
	}
	if ok, err := m.SwapMeta(ctx, "token/a", 0, []byte("one")); err != nil || !ok {
		t.Fatalf("first write: %v %v", ok, err)
	}
	if ok, _ := other.SwapMeta(ctx, "token/a", 0, []byte("racer")); ok {
		t.Error("a second first write won")
	}
	if ok, _ := other.SwapMeta(ctx, "token/a", 1, []byte("two")); !ok {
		t.Error("a write at the current version lost")
	}
	if ok, _ := m.SwapMeta(ctx, "token/a", 1, []byte("stale")); ok {
		t.Error("a write at a stale version won")
	}
	if v, ver, _ := m.GetMeta(ctx, "token/a"); string(v) != "two" || ver != 2 {
		t.Errorf("value %q version %d, want two at 2", v, ver)
	}
	m.SwapMeta(ctx, "token/b%_", 0, []byte("x"))
	m.SwapMeta(ctx, "tokens", 0, []byte("y"))
	m.SwapMeta(ctx, "identity/c", 0, []byte("z"))
	if ok, _ := m.SwapMeta(ctx, "token/a", 2, nil); !ok {
		t.Error("delete lost")
	}
	if v, ver, _ := m.GetMeta(ctx, "token/a"); v != nil || ver != 3 {
		t.Errorf("deleted: %q at %d, want nil at 3", v, ver)
	}
	list, err := other.ListMeta(ctx, "token/")
	if err != nil || len(list) != 1 || list[0].Key != "token/b%_" || string(list[0].Value) != "x" {
		t.Errorf("ListMeta(token/) = %+v, %v; want only token/b%%_", list, err)
	}
}
