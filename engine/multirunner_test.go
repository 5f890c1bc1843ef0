package engine_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
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

// freezeStore calls freeze once, right after the first write that
// journals a step's intent: the moment a runner is about to send that
// write.
type freezeStore struct {
	engine.Store
	once   sync.Once
	freeze func()
}

func (f *freezeStore) Record(ctx context.Context, l engine.Lease, steps []engine.StepRecord, fin *engine.Completion) error {
	err := f.Store.Record(ctx, l, steps, fin)
	for _, s := range steps {
		if err == nil && s.Status == engine.StepStarted {
			f.once.Do(f.freeze)
		}
	}
	return err
}

// A runner frozen past its leases (SIGSTOP, a paused VM) between a write's
// intent and the write wakes with every goroutine at once: the call about
// to go out must not be sent before the renewal learns that another runner
// took the run over, which would send the same write (the services take
// no fencing token).
func TestARunnerFrozenPastItsLeasesDoesNotSendTheWrite(t *testing.T) {
	path := tempDB(t)
	store := openStore(t, path)
	defer store.Close()
	thief := openStore(t, path)
	defer thief.Close()
	var frozen atomic.Int64 // how long the runner's process was frozen
	clock := func() time.Time { return time.Now().Add(time.Duration(frozen.Load())) }
	taken := make(chan []*engine.ClaimedRun, 1)
	fs := &freezeStore{Store: queueStore{store}, freeze: func() {
		frozen.Store(int64(50 * time.Minute)) // of a lease of an hour
		runs, err := thief.Claim(context.Background(), engine.ClaimRequest{Owner: "thief", Recipes: []string{"issue"}, Limit: 1,
			Now: clock().Add(time.Hour), Lease: time.Hour})
		if err != nil {
			t.Errorf("take-over: %v", err)
		}
		taken <- runs
	}}
	svc := newFakeService(1, oneActive)
	e := newEngine(t, fs, svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Lease = time.Hour; o.Now = clock })
	stop := running(t, e)
	if runs := <-taken; len(runs) != 1 {
		t.Fatalf("the thief took %d runs, want the frozen runner's one", len(runs))
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.Summary().Recipes[0].Abandoned == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the frozen runner did not drop the run another runner took")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertNothingEnding(t, e)
	if n := svc.count("create_cert"); n != 0 {
		t.Errorf("the frozen runner sent %d create(s) for a run another runner holds", n)
	}
}

// failFirstClaim fails the first claim, as a store that drops its
// connections for a moment does.
type failFirstClaim struct {
	engine.Store
	failed atomic.Bool
}

func (f *failFirstClaim) Claim(ctx context.Context, req engine.ClaimRequest) ([]*engine.ClaimedRun, error) {
	if f.failed.CompareAndSwap(false, true) {
		return nil, errors.New("claiming runs: unexpected EOF")
	}
	return f.Store.Claim(ctx, req)
}

// A claim that failed once, hours before a stop, is not the stop's
// error: `memberflow run` exited 1 at SIGTERM after any blip of its
// store, however long it had worked since.
func TestAClaimThatFailedAndRecoveredIsNoErrorAtStop(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(1, oneActive)
	fs := &failFirstClaim{Store: queueStore{store}}
	e := newEngine(t, fs, svc, []*recipes.Recipe{issueRecipe(t)})
	stop := running(t, e)
	deadline := time.Now().Add(10 * time.Second)
	for svc.count("set_cert") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the run did not finish after the claim failed once")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !fs.failed.Load() {
		t.Fatal("no claim failed: the test proves nothing")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v at a stop, long after the store answered again", err)
	}
}
