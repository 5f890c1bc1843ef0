package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// errAnswerLost is the error of a claim whose commit went through but
// whose answer never reached the runner (the connection dropped during
// the COMMIT).
var errAnswerLost = errors.New("connection dropped during the commit: the answer was lost")

// lostAnswerStore commits the first claim that takes runs — by Claim or
// by an Advance that claims its page's runs — and then answers an error,
// as if the connection had dropped during its COMMIT: the runs are
// claimed in the store (running, owned by the runner, leased) but the
// runner never learns of them. Everything else goes to the real store.
type lostAnswerStore struct {
	engine.Store
	mu     sync.Mutex
	lost   []int64   // the runs of the lost answer
	lostAt time.Time // when it was lost, its claim committed
}

func (s *lostAnswerStore) lose(ids []int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost != nil || len(ids) == 0 {
		return false
	}
	s.lost, s.lostAt = ids, time.Now()
	return true
}

func (s *lostAnswerStore) lostRuns() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

func (s *lostAnswerStore) lostWhen() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lostAt
}

func (s *lostAnswerStore) Claim(ctx context.Context, req engine.ClaimRequest) ([]*engine.ClaimedRun, error) {
	runs, err := s.Store.Claim(ctx, req)
	var ids []int64
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	if err == nil && s.lose(ids) {
		return nil, fmt.Errorf("claiming runs: %w", errAnswerLost)
	}
	return runs, err
}

func (s *lostAnswerStore) Advance(ctx context.Context, recipe string, adv engine.Advance) ([]engine.Enqueued, error) {
	enq, err := s.Store.Advance(ctx, recipe, adv)
	var ids []int64
	for _, q := range enq {
		if q.Run != nil {
			ids = append(ids, q.Run.ID)
		}
	}
	if err == nil && s.lose(ids) {
		return nil, fmt.Errorf("advancing the trigger of recipe %q: %w", recipe, errAnswerLost)
	}
	return enq, err
}

// TestARunWhoseClaimAnswerWasLostIsRun: the answer to a claim is lost
// after its commit (by Claim from the queue, or by the Advance that
// claims a polled page's runs), so the runs are leased to a runner that
// does not know them. The runner's renewals kept every run it owned in
// the store alive, so those runs stayed running, worked on by nobody,
// for the rest of the runner's life (and every later run of their
// members queued behind them). A renewal must keep alive only the runs
// the runner works on: the lost runs' leases end and they are claimed
// again and run, once. SQLite and Postgres, with page runs and from the
// queue.
func TestARunWhoseClaimAnswerWasLostIsRun(t *testing.T) {
	for _, mode := range runModes {
		// A fresh store for each mode.
		for kind, open := range storeKinds(t) {
			t.Run(kind+"/"+mode.name, func(t *testing.T) {
				store := open(t)
				lossy := &lostAnswerStore{Store: mode.wrap(store)}
				svc := newFakeService(3, oneActive)
				const lease = 600 * time.Millisecond
				e := newEngine(t, lossy, svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Lease = lease })
				stop := running(t, e)
				if !waitUntil(10*time.Second, func() bool { return lossy.lostRuns() != nil }) {
					stop()
					t.Fatal("no claim took runs")
				}
				lost := lossy.lostRuns()
				// The leases end within one lease of the last renewal that
				// kept them; a claim then takes them (the expiry runs at
				// most once a second). Generous for a loaded machine: on
				// the old code they stayed running for good.
				done := func() bool {
					for _, id := range lost {
						if runStatus(t, store, id) != engine.RunSucceeded {
							return false
						}
					}
					return allRun(store, 3)
				}
				const patience = 20*lease + 6*time.Second
				ok := waitUntil(patience, done)
				if err := stop(); err != nil && !errors.Is(err, errAnswerLost) {
					t.Fatal(err)
				}
				assertNothingEnding(t, e)
				if !ok {
					for _, id := range lost {
						t.Errorf("run %d, whose claim's answer was lost, is %s after %s (%d lease lengths) while its runner lived: stuck", id, runStatus(t, store, id), patience, int(patience/lease))
					}
				}
				assertExactlyOnce(t, svc)
				assertAllDone(t, store)
				if svc.creates != 3 {
					t.Errorf("%d certificates for 3 eligible members", svc.creates)
				}
			})
		}
	}
}

// TestARunWhoseClaimAnswerWasLostIsRunWithinARenewal: the runs of a
// claim whose answer was lost are leased to a live runner that does not
// know them. They waited for their lease to end (a minute by default)
// before a claim took them. The runner's next renewal does not name them
// while no claim of its own is in flight that could have leased them, so
// the store puts them back in the queue then: they are claimed again and
// run within about one renewal (a third of a lease; here up to a tenth
// more, the margin for the store's clock) of the loss, not a lease.
// SQLite and Postgres, with page runs and from the queue.
func TestARunWhoseClaimAnswerWasLostIsRunWithinARenewal(t *testing.T) {
	// Long enough that a renewal (a third of it) stands clear of the
	// scheduling noise of a loaded machine.
	const lease = 4 * time.Second
	for _, mode := range runModes {
		for kind, open := range storeKinds(t) {
			t.Run(kind+"/"+mode.name, func(t *testing.T) {
				store := open(t)
				lossy := &lostAnswerStore{Store: mode.wrap(store)}
				svc := newFakeService(3, oneActive)
				e := newEngine(t, lossy, svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Lease = lease })
				stop := running(t, e)
				if !waitUntil(10*time.Second, func() bool { return lossy.lostRuns() != nil }) {
					stop()
					t.Fatal("no claim took runs")
				}
				lost, at := lossy.lostRuns(), lossy.lostWhen()
				done := func() bool {
					for _, id := range lost {
						if runStatus(t, store, id) != engine.RunSucceeded {
							return false
						}
					}
					return true
				}
				ok := waitUntil(3*lease, done)
				took := time.Since(at)
				if err := stop(); err != nil && !errors.Is(err, errAnswerLost) {
					t.Fatal(err)
				}
				assertNothingEnding(t, e)
				if !ok {
					t.Fatalf("the runs %v of the lost claim did not run within %s", lost, 3*lease)
				}
				t.Logf("the lost claim's runs ran %s after the loss", took.Round(time.Millisecond))
				// A renewal comes every third of a lease; the lease ends
				// after a whole one.
				if limit := lease * 3 / 4; took >= limit {
					t.Errorf("the runs %v of the lost claim ran %s after it was lost; want within about a renewal (%s), well under %s (a lease: they waited for it to end)",
						lost, took.Round(time.Millisecond), lease/3, limit)
				}
				if !waitUntil(10*time.Second, func() bool { return allRun(store, 3) }) {
					t.Error("the other runs did not all run")
				}
				assertExactlyOnce(t, svc)
				if svc.creates != 3 {
					t.Errorf("%d certificates for 3 eligible members", svc.creates)
				}
			})
		}
	}
}

// lateAnswerStore delays the answer of the first claim that takes runs
// (by Claim or by an Advance that claims its page's runs) by delay,
// after its commit: a slow network, a stalled connection pool.
type lateAnswerStore struct {
	engine.Store
	delay time.Duration
	once  sync.Once
	late  []int64 // the runs of the late answer
	// holding, when set, is closed once the late answer is held; held,
	// when set, is called with its runs as the answer is about to go.
	holding chan struct{}
	held    func(ids []int64)
}

func (s *lateAnswerStore) hold(ids []int64) {
	if len(ids) > 0 {
		s.once.Do(func() {
			s.late = ids
			if s.holding != nil {
				close(s.holding)
			}
			time.Sleep(s.delay)
			if s.held != nil {
				s.held(ids)
			}
		})
	}
}

func (s *lateAnswerStore) Claim(ctx context.Context, req engine.ClaimRequest) ([]*engine.ClaimedRun, error) {
	runs, err := s.Store.Claim(ctx, req)
	var ids []int64
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	s.hold(ids)
	return runs, err
}

func (s *lateAnswerStore) Advance(ctx context.Context, recipe string, adv engine.Advance) ([]engine.Enqueued, error) {
	enq, err := s.Store.Advance(ctx, recipe, adv)
	var ids []int64
	for _, q := range enq {
		if q.Run != nil {
			ids = append(ids, q.Run.ID)
		}
	}
	s.hold(ids)
	return enq, err
}

// TestARunWhoseClaimAnsweredLateSendsNothingUnderIt: renewals renew only
// the runs the runner knows, so a run whose claim's answer is on its way
// is not renewed meanwhile: its lease counts from the moment the claim
// was asked for. A claim answered after most of its lease is not worked
// on (another runner may take its runs any moment): its runs are given
// back, then claimed again, and run once.
func TestARunWhoseClaimAnsweredLateSendsNothingUnderIt(t *testing.T) {
	for _, mode := range runModes {
		for kind, open := range storeKinds(t) {
			t.Run(kind+"/"+mode.name, func(t *testing.T) {
				store := open(t)
				const lease = 600 * time.Millisecond
				late := &lateAnswerStore{Store: mode.wrap(store), delay: lease - lease/6}
				svc := newFakeService(2, oneActive)
				e := newEngine(t, late, svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Lease = lease })
				stop := running(t, e)
				ok := waitUntil(20*time.Second, func() bool { return allRun(store, 2) })
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				assertNothingEnding(t, e)
				if !ok {
					runs, err := store.ListRuns(context.Background(), engine.RunFilter{Recipe: "issue"})
					t.Fatalf("the runs were not all run: %+v, %v", runs, err)
				}
				if n := e.Summary().Recipes[0].Abandoned; n < int64(len(late.late)) {
					t.Errorf("%d run(s) abandoned; want the %d of the late claim, given back rather than worked on", n, len(late.late))
				}
				for _, id := range late.late {
					if d := runStatus(t, store, id); d != engine.RunSucceeded {
						t.Errorf("run %d of the late claim is %s", id, d)
					}
				}
				assertExactlyOnce(t, svc)
				assertAllDone(t, store)
			})
		}
	}
}

// TestARunWhoseClaimAnswerIsOnItsWayIsNotTakenFromIt: renewals put back
// in the queue the runs their runner holds and does not name, and the
// runs of a claim whose answer is on its way are exactly such runs. While
// a claim's answer is held past a renewal (renewals come every second,
// the answer after 1.7 s, before the 2 s after which its runner gives
// such runs back), its runs stay the runner's: still running under their
// first claim when the answer goes, while a second runner claims all
// along. Had a renewal released them, the second runner would take them
// and both would send their writes. Each certificate is issued once.
// SQLite and Postgres, with page runs and from the queue.
func TestARunWhoseClaimAnswerIsOnItsWayIsNotTakenFromIt(t *testing.T) {
	const lease = 3 * time.Second
	for _, mode := range runModes {
		for kind, open := range storeKinds(t) {
			t.Run(kind+"/"+mode.name, func(t *testing.T) {
				store := open(t)
				late := &lateAnswerStore{Store: mode.wrap(store), delay: lease/2 + lease/15, holding: make(chan struct{})}
				late.held = func(ids []int64) {
					for _, id := range ids {
						d, err := store.GetRun(context.Background(), id)
						if err != nil {
							t.Errorf("run %d: %v", id, err)
						} else if d.Status != engine.RunRunning || d.Attempts != 1 {
							t.Errorf("run %d of the claim whose answer is on its way is %s after %d claim(s); want running under its first claim: a renewal released it", id, d.Status, d.Attempts)
						}
					}
				}
				svc := newFakeService(3, oneActive)
				first := newEngine(t, late, svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Lease, o.Owner = lease, "first" })
				stopFirst := running(t, first)
				select {
				case <-late.holding:
				case <-time.After(10 * time.Second):
					stopFirst()
					t.Fatal("no claim took runs")
				}
				second := newEngine(t, mode.wrap(open(t)), svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Lease, o.Owner = lease, "second" })
				stopSecond := running(t, second)
				// Until the first runner has had the answer and ended the
				// late claim's runs, one way or the other (run, or given
				// back when the answer came too late for a renewal).
				ok := waitUntil(20*time.Second, func() bool {
					s := first.Summary().Recipes[0]
					return allRun(store, 3) && s.Succeeded+s.Abandoned >= int64(len(late.late))
				})
				for _, stop := range []func() error{stopSecond, stopFirst} {
					if err := stop(); err != nil {
						t.Error(err)
					}
				}
				assertNothingEnding(t, first)
				assertNothingEnding(t, second)
				if !ok {
					runs, err := store.ListRuns(context.Background(), engine.RunFilter{Recipe: "issue"})
					t.Fatalf("the runs were not all run: %+v, %v", runs, err)
				}
				assertExactlyOnce(t, svc)
				if svc.creates != 3 {
					t.Errorf("%d certificates for 3 eligible members", svc.creates)
				}
			})
		}
	}
}

// heldOutcomeStore holds the first outcome written (a run's Completion
// other than a give-back) for delay before writing it: a slow commit.
type heldOutcomeStore struct {
	engine.Store
	delay time.Duration
	once  sync.Once
}

func (s *heldOutcomeStore) Record(ctx context.Context, lease engine.Lease, steps []engine.StepRecord, fin *engine.Completion) error {
	if fin != nil && fin.Status != engine.RunQueued {
		s.once.Do(func() { time.Sleep(s.delay) })
	}
	return s.Store.Record(ctx, lease, steps, fin)
}

// TestARunWhoseOutcomeIsBeingWrittenIsNotReleased: a page's runs stop
// being named by the renewals while their outcomes are written (a
// renewal that named a run whose outcome committed would report it
// lost). A renewal must not take such a run for one its runner does not
// know and put it back in the queue: the outcome would be refused and
// the run, abandoned, run again. Its outcome's write outlasts a
// renewal here; every run succeeds once, none abandoned.
func TestARunWhoseOutcomeIsBeingWrittenIsNotReleased(t *testing.T) {
	const lease = 600 * time.Millisecond
	for kind, open := range storeKinds(t) {
		t.Run(kind, func(t *testing.T) {
			store := open(t)
			slow := &heldOutcomeStore{Store: store, delay: lease / 2}
			svc := newFakeService(3, oneActive)
			e := newEngine(t, slow, svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Lease = lease })
			stop := running(t, e)
			ok := waitUntil(20*time.Second, func() bool { return allRun(store, 3) })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			assertNothingEnding(t, e)
			if !ok {
				runs, err := store.ListRuns(context.Background(), engine.RunFilter{Recipe: "issue"})
				t.Fatalf("the runs were not all run: %+v, %v", runs, err)
			}
			if n := e.Summary().Recipes[0].Abandoned; n != 0 {
				t.Errorf("%d run(s) abandoned; want none: a run whose outcome was being written was released", n)
			}
			assertExactlyOnce(t, svc)
			assertAllDone(t, store)
		})
	}
}

// allRun reports whether every run of the recipe issue finished and
// succeeded ones number n: the members' updates come back as suppressed
// echoes.
func allRun(store engine.Store, n int) bool {
	runs, err := store.ListRuns(context.Background(), engine.RunFilter{Recipe: "issue"})
	if err != nil {
		return false
	}
	succeeded := 0
	for _, r := range runs {
		switch r.Status {
		case engine.RunSucceeded:
			succeeded++
		case engine.RunSuppressed:
		default:
			return false
		}
	}
	return succeeded == n
}
