package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// TestTwoRunnersShareOneStore: two runners (two processes' worth: each its
// own store handle and owner name) work one backfill from the same store,
// SQLite and Postgres. Each event runs once, on one of them.
func TestTwoRunnersShareOneStore(t *testing.T) {
	for kind, open := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) { testTwoRunners(t, open) })
	}
}

func testTwoRunners(t *testing.T, open func(t *testing.T) engine.Store) {
	svc := newFakeService(40, everyOther)
	var engines []*engine.Engine
	for _, owner := range []string{"runner-a", "runner-b"} {
		store := open(t)
		engines = append(engines, newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)},
			func(o *engine.Options) { o.Owner = owner; o.Concurrency = 3 }))
	}
	sums := startOnce(t, engines...)()
	// A run queued by one runner while the other was draining is finished
	// by a last pass.
	store := open(t)
	runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Owner = "runner-last" }))
	assertExactlyOnce(t, svc)
	assertAllDone(t, store)
	if svc.creates != 20 {
		t.Errorf("%d certificates for 20 eligible members", svc.creates)
	}
	var total int64
	for _, s := range sums {
		total += recipeSummary(t, s, "issue").Succeeded
	}
	if total == 0 {
		t.Error("the runners ran nothing")
	}
}

// TestARunnerThatLostItsLeaseStopsActing: a runner's lease on a run is
// taken over while its write hangs. At its next renewal it learns the run
// is no longer its own and cancels the call; it writes nothing more for
// the run, which stays with the new holder, its journal as it was.
func TestARunnerThatLostItsLeaseStopsActing(t *testing.T) {
	path := tempDB(t)
	store := openStore(t, path)
	defer store.Close()
	svc := newFakeService(1, oneActive)
	svc.block = make(chan struct{}) // the create hangs until cancelled
	svc.entered = make(chan string, 1)
	e := newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Lease = 300 * time.Millisecond })
	stop := running(t, e)
	<-svc.entered // the intent is journaled, the call is in flight

	thief := openStore(t, path)
	defer thief.Close()
	taken, err := thief.Claim(context.Background(), engine.ClaimRequest{Owner: "thief", Recipes: []string{"issue"}, Limit: 1,
		Now: time.Now().Add(time.Hour), Lease: 2 * time.Hour})
	if err != nil || len(taken) != 1 {
		t.Fatalf("take-over: %v, %v", taken, err)
	}
	// Within a renewal (a third of a lease) the runner drops the run.
	deadline := time.Now().Add(3 * time.Second)
	for e.Summary().Recipes[0].Abandoned == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the runner did not stop working on the run it lost")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	d, err := thief.GetRun(context.Background(), taken[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != engine.RunRunning || len(d.Steps) != 1 || d.Steps[0].Status != engine.StepStarted {
		t.Errorf("after the loser stopped: %s with steps %+v; want running (the thief's) with the intent only", d.Status, d.Steps)
	}
	if svc.creates != 0 {
		t.Errorf("%d certificate(s) created by the runner that lost its lease", svc.creates)
	}
	// The new holder finishes it; the old one's lease is refused.
	if err := thief.Record(context.Background(), taken[0].Lease(), nil, &engine.Completion{RunID: taken[0].ID, Status: engine.RunSucceeded, Finished: time.Now()}); err != nil {
		t.Fatal(err)
	}
	stale := engine.Lease{RunID: taken[0].ID, Token: taken[0].Token - 1}
	if err := store.Record(context.Background(), stale, nil, &engine.Completion{RunID: taken[0].ID, Status: engine.RunDead}); !errors.Is(err, engine.ErrLeaseLost) {
		t.Errorf("the old lease: %v, want ErrLeaseLost", err)
	}
}
