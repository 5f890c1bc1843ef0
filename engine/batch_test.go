package engine_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// batchRecipe is issueRecipe with create_cert's batch form, and pages
// big enough that many runs are ready at once.
func batchRecipe(t testing.TB) *recipes.Recipe {
	r := issueRecipe(t)
	r.Name = "issue-batch"
	r.Trigger.With = mustTemplate(t, map[string]any{"page_size": 50})
	r.Steps[0].Operation = "create_cert_batch"
	return r
}

// holdUntilQueued makes the first batch call, unless it carries more
// than n inputs already (a page's runs go in one call), wait until n more
// calls queue behind it (or a few seconds pass), so that the next call is
// a batch of several.
func holdUntilQueued(svc *fakeService, e **engine.Engine, n int) {
	svc.batchHold = func(ctx context.Context, size int) {
		if size > n {
			return
		}
		deadline := time.Now().Add(2 * time.Second)
		for (*e).QueuedBatchCalls() < n && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
	}
}

func runsByMember(t *testing.T, s engine.Store, recipe string) map[string]engine.RunInfo {
	t.Helper()
	runs, err := s.ListRuns(context.Background(), engine.RunFilter{Recipe: recipe, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]engine.RunInfo{}
	for _, r := range runs {
		m, _, _ := strings.Cut(r.EventID, "@")
		if _, seen := out[m]; !seen || r.Status == engine.RunDead {
			out[m] = r
		}
	}
	return out
}

// The batch tests run more workers than runs: however many runs the
// first (held) call takes, the rest can queue behind it.
func TestBatchCallsMapResultsToTheirRuns(t *testing.T) {
	for _, mode := range runModes {
		t.Run(mode.name, func(t *testing.T) {
			store := openStore(t, tempDB(t))
			defer store.Close()
			svc := newFakeService(20, everyOther) // 10 eligible
			var e *engine.Engine
			holdUntilQueued(svc, &e, 5)
			e = newEngine(t, mode.wrap(store), svc, []*recipes.Recipe{batchRecipe(t)}, concurrency(16))
			sum := runOnce(t, e)
			sizes := svc.batchSizes()
			total := 0
			for _, n := range sizes {
				total += n
			}
			if total != 10 || slices.Max(sizes) < 5 {
				t.Errorf("batch sizes %v: want 10 calls in all, one batch of 5 or more", sizes)
			}
			if mode.name == "pages" && !slices.Equal(sizes, []int{10}) {
				// The page's 10 runs are at the step together.
				t.Errorf("batch sizes %v: want one call for the page's 10 runs", sizes)
			}
			if svc.count("create_cert") != 0 {
				t.Errorf("%d calls went to Run, want all through the batch form", svc.count("create_cert"))
			}
			// Each member carries the certificate made for its own input: a
			// result handed to the wrong run would link another member's.
			assertExactlyOnce(t, svc)
			assertAllDone(t, store)
			if rs := recipeSummary(t, sum, "issue-batch"); rs.Succeeded != 10 {
				t.Errorf("summary %+v, want 10 succeeded", rs)
			}
		})
	}
}

func TestBatchItemErrorStaysWithItsRun(t *testing.T) {
	for _, mode := range runModes {
		t.Run(mode.name, func(t *testing.T) {
			store := openStore(t, tempDB(t))
			defer store.Close()
			svc := newFakeService(20, everyOther)
			svc.itemPermanent["m003"] = true
			svc.itemRetryable["m005"] = 2
			var e *engine.Engine
			holdUntilQueued(svc, &e, 5)
			e = newEngine(t, mode.wrap(store), svc, []*recipes.Recipe{batchRecipe(t)}, concurrency(16))
			runOnce(t, e)
			runs := runsByMember(t, store, "issue-batch")
			for id, r := range runs {
				m := svc.members[id]
				switch {
				case id == "m003":
					if r.Status != engine.RunDead || !strings.Contains(r.Error, "recipient m003 is invalid") {
						t.Errorf("m003's run is %s (%q), want dead with its own item's error", r.Status, r.Error)
					}
				case m.Status == "active" && r.Status != engine.RunSucceeded:
					t.Errorf("%s's run is %s: %s", id, r.Status, r.Error)
				}
			}
			if c := svc.certsFor("m003"); len(c) != 0 {
				t.Errorf("m003 got %v", c)
			}
			for _, id := range []string{"m001", "m005", "m019"} {
				if c := svc.certsFor(id); len(c) != 1 || svc.members[id].Cert != c[0] {
					t.Errorf("%s: certificates %v, carries %q", id, c, svc.members[id].Cert)
				}
			}
			if svc.creates != 9 {
				t.Errorf("%d created, want 9", svc.creates)
			}
			if dead := recipeDead(t, store); dead != 1 {
				t.Errorf("%d dead letters, want 1 (m003)", dead)
			}
		})
	}
}

func recipeDead(t *testing.T, s engine.Store) int {
	t.Helper()
	runs, err := s.ListRuns(context.Background(), engine.RunFilter{Status: engine.RunDead, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return len(runs)
}

func TestBatchInDoubtSettlesEachItem(t *testing.T) {
	for _, mode := range runModes {
		t.Run(mode.name, func(t *testing.T) {
			store := openStore(t, tempDB(t))
			defer store.Close()
			svc := newFakeService(20, everyOther)
			svc.batchInDoubtMulti = true
			var e *engine.Engine
			holdUntilQueued(svc, &e, 4)
			e = newEngine(t, mode.wrap(store), svc, []*recipes.Recipe{batchRecipe(t)}, concurrency(16))
			runOnce(t, e)
			if svc.inDoubtSize < 2 {
				t.Fatalf("batch sizes %v: no call of several inputs", svc.batchSizes())
			}
			// Every item of the in-doubt call was looked up once, none re-sent.
			if got := svc.count("settle"); got != svc.inDoubtSize {
				t.Errorf("%d settle look-ups, want %d (one per item of the in-doubt call)", got, svc.inDoubtSize)
			}
			if svc.creates != 10 {
				t.Errorf("%d created, want 10", svc.creates)
			}
			assertExactlyOnce(t, svc)
			assertAllDone(t, store)
		})
	}
}

// TestCrashInsideABatch kills the runner at every durable write of a
// backfill whose certificates are issued in batches: among them, after a
// batch call landed and before its items' outcomes are journaled. The
// fresh runner settles every item: each eligible member ends with exactly
// one certificate.
//
// Eight workers for six eligible members: however many runs the first
// call takes, three more can queue behind it.
func TestCrashInsideABatch(t *testing.T) {
	const members, eligible = 12, 6
	// The crash points: the writes of a clean pass, in each mode.
	writes := map[bool]int{}
	for _, queue := range []bool{false, true} {
		probe := &crashStore{Store: openStore(t, tempDB(t)), queue: queue}
		psvc := newFakeService(members, everyOther)
		var pe *engine.Engine
		holdUntilQueued(psvc, &pe, 3)
		pe = newEngine(t, probe, psvc, []*recipes.Recipe{batchRecipe(t)}, concurrency(8))
		runOnce(t, pe)
		probe.Store.Close()
		if slices.Max(psvc.batchSizes()) < 3 {
			t.Fatalf("no batch of 3 in a clean pass (queue %v): %v", queue, psvc.batchSizes())
		}
		writes[queue] = probe.writes
	}
	var inBatch atomic.Int32
	t.Cleanup(func() {
		if inBatch.Load() == 0 {
			t.Error("no crash fell between a batch call and its outcomes")
		}
	})
	for _, queue := range []bool{false, true} {
		for _, after := range []bool{false, true} {
			for k := 1; k <= writes[queue]+2; k++ {
				name := fmt.Sprintf("%s crash %s write %d", map[bool]string{false: "pages", true: "queue"}[queue], map[bool]string{false: "before", true: "after"}[after], k)
				crashed, resumed := batchRecipe(t), batchRecipe(t)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					path := tempDB(t)
					svc := newFakeService(members, everyOther)
					cs := &crashStore{Store: openStore(t, path), at: k, after: after, queue: queue}
					var e *engine.Engine
					holdUntilQueued(svc, &e, 3)
					e = newEngine(t, cs, svc, []*recipes.Recipe{crashed}, concurrency(8))
					cs.onCrash = func() { svc.mu.Lock(); svc.batchHold = nil; svc.mu.Unlock() }
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					e.RunOnce(ctx)
					cancel()
					e.Close()
					cs.Store.Close()
					svc.mu.Lock()
					svc.batchHold = nil
					if cs.dead && svc.creates > 0 && strings.Contains(cs.points[len(cs.points)-1], "issue:succeeded") {
						inBatch.Add(1) // the batch landed; its outcomes were not all journaled
					}
					svc.mu.Unlock()

					store := openStore(t, path)
					defer store.Close()
					runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{resumed}, concurrency(4)))
					assertExactlyOnce(t, svc)
					assertAllDone(t, store)
					if svc.creates != eligible {
						t.Errorf("%d certificates created, want %d (crashed at %q)", svc.creates, eligible, cs.points[len(cs.points)-1])
					}
				})
			}
		}
	}
}

// TestPageCallsKeepToConcurrency: a page's runs call an action without a
// batch form side by side, never more at once than --concurrency (the
// workers' slots), and all of them end.
func TestPageCallsKeepToConcurrency(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(40, everyOther) // 20 eligible, one page
	svc.createDelay = 5 * time.Millisecond
	r := issueRecipe(t)
	r.Trigger.With = mustTemplate(t, map[string]any{"page_size": 40})
	sum := runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{r}, concurrency(3)))
	if svc.mostAtOnce > 3 || svc.mostAtOnce < 2 {
		t.Errorf("%d creates at once, want 2 or 3 (side by side, at most --concurrency)", svc.mostAtOnce)
	}
	if rs := recipeSummary(t, sum, "issue"); rs.Succeeded != 20 {
		t.Errorf("summary %+v, want 20 succeeded", rs)
	}
	assertExactlyOnce(t, svc)
	assertAllDone(t, store)
}

// slowOutcomeStore keeps each batch of outcomes a while after it has
// committed them, before their writers learn it.
type slowOutcomeStore struct {
	engine.Store
	after time.Duration
}

func (s slowOutcomeStore) RecordMany(ctx context.Context, writes []engine.JournalWrite) []error {
	errs := s.Store.(engine.BatchJournal).RecordMany(ctx, writes)
	for _, w := range writes {
		if w.Fin != nil {
			time.Sleep(s.after)
			break
		}
	}
	return errs
}

// TestPageOutcomesAreNotJudgedLost: a lease renewal that comes while a
// page's outcomes are being written does not report its runs as lost (it
// did: the store no longer held them as running, and the renewal knew
// them as in flight).
func TestPageOutcomesAreNotJudgedLost(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	var logs strings.Builder
	svc := newFakeService(40, everyOther)
	r := issueRecipe(t)
	r.Trigger.With = mustTemplate(t, map[string]any{"page_size": 20})
	// Renewals every 100 ms; each page's outcomes take 250 ms to be told,
	// so renewals come while they are. (A lease is counted from when its
	// renewal was asked: with a shorter one, a renewal slowed by the race
	// detector on a busy machine ends most of a lease by itself.)
	// Three times slower under the race detector, where a renewal on a
	// loaded machine came later than a 300 ms lease allows.
	scale := time.Duration(1)
	if raceDetector {
		scale = 3
	}
	e := newEngine(t, slowOutcomeStore{store, scale * 250 * time.Millisecond}, svc, []*recipes.Recipe{r}, func(o *engine.Options) {
		o.Lease = scale * 300 * time.Millisecond
		o.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &lockedWriter{w: &logs}})
	})
	sum := runOnce(t, e)
	if rs := recipeSummary(t, sum, "issue"); rs.Succeeded != 20 || rs.Abandoned != 0 {
		t.Errorf("summary %+v, want 20 succeeded, none abandoned", rs)
	}
	if strings.Contains(logs.String(), "lost the lease") {
		t.Errorf("runs whose outcome was written were reported lost:\n%s", logs.String())
	}
	assertExactlyOnce(t, svc)
	assertAllDone(t, store)
}

// lockedWriter serialises the writes of concurrent loggers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestPageBatchesCarryAcrossPages: a page cuts its batch calls at Max and
// leaves the remainder to go with the next page's, so that a backfill
// makes the fewest calls the batch form allows (the paper's count), not a
// short call per page; the last page takes all that is left.
func TestPageBatchesCarryAcrossPages(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(140, everyOther) // 7 pages of 20 members, 10 eligible each
	r := batchRecipe(t)
	r.Trigger.With = mustTemplate(t, map[string]any{"page_size": 20})
	sum := runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{r}, concurrency(4)))
	// 70 at 30 a call: 30, 30, 10 — where a call per page sent 7 of 10.
	// The calls run side by side, so their order varies (the last page's
	// 10 may land before the second 30): the sizes are what counts.
	sizes := svc.batchSizes()
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{10, 30, 30}) {
		t.Errorf("batch sizes %v, want 10, 30 and 30", sizes)
	}
	if rs := recipeSummary(t, sum, "issue-batch"); rs.Succeeded != 70 {
		t.Errorf("summary %+v, want 70 succeeded", rs)
	}
	assertExactlyOnce(t, svc)
	assertAllDone(t, store)
}

// TestRunLeavesNoRunWaitingForAPageThatIsNotComing: in a runner that runs
// until stopped, a page whose runs reach a batch step after the poll's
// last page has gone by (here: the last page makes no run, and the first
// page's runs are slowed by a step before) does not leave them waiting for
// the next poll, an interval away: the poller drains its pages before it
// waits.
func TestRunLeavesNoRunWaitingForAPageThatIsNotComing(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(20, func(i int) bool { return i <= 10 && i%2 == 1 }) // 5 eligible, all on the first page
	svc.createDelay = 20 * time.Millisecond
	r := issueRecipe(t)
	r.Trigger.With = mustTemplate(t, map[string]any{"page_size": 10})
	r.Trigger.Interval = time.Hour
	// The slow create first, then a step with a batch form (Max 30: the
	// first page's 5 runs are short of a call, so they are carried).
	r.Steps = []*recipes.Step{r.Steps[0], {ID: "again", Connection: "certs", Operation: "create_cert_batch",
		With: mustTemplate(t, map[string]any{"member": "${{ trigger.id }}", "course": "again"})}}
	e := newEngine(t, store, svc, []*recipes.Recipe{r}, concurrency(2))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		runs, err := store.ListRuns(context.Background(), engine.RunFilter{Status: engine.RunSucceeded, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d of 5 runs succeeded after 5 s: the rest wait for a page that is not coming", len(runs))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
