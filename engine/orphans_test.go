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
	mu   sync.Mutex
	lost []int64 // the runs of the lost answer
}

func (s *lostAnswerStore) lose(ids []int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost != nil || len(ids) == 0 {
		return false
	}
	s.lost = ids
	return true
}

func (s *lostAnswerStore) lostRuns() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
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

// lateAnswerStore delays the answer of the first claim that takes runs
// (by Claim or by an Advance that claims its page's runs) by delay,
// after its commit: a slow network, a stalled connection pool.
type lateAnswerStore struct {
	engine.Store
	delay time.Duration
	once  sync.Once
	late  []int64 // the runs of the late answer
}

func (s *lateAnswerStore) hold(ids []int64) {
	if len(ids) > 0 {
		s.once.Do(func() { s.late = ids; time.Sleep(s.delay) })
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
