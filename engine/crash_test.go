package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/recipes"
)

// crashPlaces are the stores the crash test kills: each makes a new place
// for one pass (a file, a schema) and returns how to open a handle on it,
// again after the crash.
var crashPlaces = []struct {
	name string
	make func(t *testing.T) func() engine.Store
}{
	{"sqlite", func(t *testing.T) func() engine.Store {
		path := tempDB(t)
		return func() engine.Store { return openStore(t, path) }
	}},
	{"postgres", func(t *testing.T) func() engine.Store {
		dsn, schema := pgstore.TestSchema(t)
		return func() engine.Store {
			s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: schema, MaxConns: 4})
			if err != nil {
				t.Fatalf("opening the store: %v", err)
			}
			return s
		}
	}},
}

// TestCrashAndResumeAtEveryWrite kills the runner at every durable write
// of a backfill (before it is applied, and after it is applied but before
// the runner learns it), then starts a fresh runner on the same store
// (file or schema). Whatever the crash point, every eligible member ends
// with exactly one certificate, no event is lost and no run is left
// unfinished.
func TestCrashAndResumeAtEveryWrite(t *testing.T) {
	faults := []struct {
		name  string
		apply func(*fakeService)
	}{
		{"clean", func(*fakeService) {}},
		// Every create takes effect, then answers in doubt: the runner
		// must settle, never re-send.
		{"in doubt after the write", func(s *fakeService) { s.createInDoubt = 1000 }},
		// The first create is lost on the way: settling finds nothing and
		// the runner sends it again.
		{"in doubt, write lost", func(s *fakeService) { s.createLostReq = 1 }},
	}
	const members = 5 // m001, m003, m005 are eligible
	eligible := 3
	combo := 0
	for _, place := range crashPlaces {
		for _, mode := range []string{"pages", "queue"} {
			queue := mode == "queue"
			for _, fault := range faults {
				combo++
				// A clean pass counts the write points.
				probe := &crashStore{Store: place.make(t)(), queue: queue}
				psvc := newFakeService(members, everyOther)
				fault.apply(psvc)
				runOnce(t, newEngine(t, probe, psvc, []*recipes.Recipe{issueRecipe(t)}, concurrency(1)))
				probe.Store.Close()
				n := probe.writes
				// From the queue: claims, then per run an intent and an outcome;
				// with the page: the claim and the intent are one write.
				if least := map[string]int{"pages": 8, "queue": 10}[mode]; n < least {
					t.Fatalf("%s %s: only %d writes in a clean pass: %v", mode, fault.name, n, probe.points)
				}
				for _, after := range []bool{false, true} {
					for k := 1; k <= n; k++ {
						if !crashPointSampled(k, n, combo) {
							continue
						}
						name := fmt.Sprintf("%s/%s/%s/crash %s write %d of %d", place.name, mode, fault.name, map[bool]string{false: "before", true: "after"}[after], k, n)
						t.Run(name, func(t *testing.T) {
							// Compiled before the subtests go parallel: compiling
							// expressions concurrently races inside recipes (shared
							// expr configuration); running them does not.
							crashed, resumed := issueRecipe(t), issueRecipe(t)
							t.Parallel()
							open := place.make(t)
							svc := newFakeService(members, everyOther)
							fault.apply(svc)
							cs := &crashStore{Store: open(), at: k, after: after, queue: queue}
							e := newEngine(t, cs, svc, []*recipes.Recipe{crashed}, concurrency(1))
							ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
							e.RunOnce(ctx) // fails: the store died
							cancel()
							e.Close()
							if !cs.dead {
								// How many claims find nothing varies with timing;
								// the other writes must all have happened.
								if nonClaims(cs.points) != nonClaims(probe.points) {
									t.Fatalf("the store did not crash at write %d (%d writes: %v)", k, cs.writes, cs.points)
								}
								t.Logf("the pass made %d writes; nothing to crash at %d", cs.writes, k)
							}
							cs.Store.Close()

							store := open()
							defer store.Close()
							runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{resumed}, concurrency(1)))
							assertExactlyOnce(t, svc)
							assertAllDone(t, store)
							if svc.creates != eligible {
								t.Errorf("%d certificates created, want %d (crashed at %q)", svc.creates, eligible, cs.points[min(k, len(cs.points))-1])
							}
						})
					}
				}
			}
		}
	}
}

// crashPointSampled says whether the crash test kills the store at write
// k of n. Every write is a crash point, except with -short: the race
// detector's CI step runs the engine with -short, after the main step ran
// every point, and there the first, the last and every third write are
// enough to race the resume paths. The third shifts with combo, so the
// sampled points differ between modes and faults.
func crashPointSampled(k, n, combo int) bool {
	return !testing.Short() || k == 1 || k == n || k%3 == combo%3
}

func concurrency(n int) engineOpt { return func(o *engine.Options) { o.Concurrency = n } }

func nonClaims(points []string) int {
	n := 0
	for _, p := range points {
		if p != "claim" {
			n++
		}
	}
	return n
}
