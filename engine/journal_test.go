package engine_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// batchCrashStore is a crashStore whose journal writes come in batches
// (engine.BatchJournal): a batch is one write point. A crash before it
// loses every write of the batch; a crash after it keeps them all, and
// none of their writers learns it.
type batchCrashStore struct {
	*crashStore
	// hold keeps each batch in flight a little, so that the writes of
	// the other workers queue up behind it and the next batches are
	// bigger than one write.
	hold time.Duration
}

var _ engine.BatchJournal = batchCrashStore{}

func (c batchCrashStore) RecordMany(ctx context.Context, writes []engine.JournalWrite) []error {
	var errs []error
	err := c.write(fmt.Sprintf("record-many %d", len(writes)), func() error {
		time.Sleep(c.hold)
		errs = c.Store.(engine.BatchJournal).RecordMany(ctx, writes)
		return nil
	})
	if err != nil {
		errs = make([]error, len(writes))
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// TestCrashAndResumeAtEveryJournalBatch kills the runner at each durable
// write of a backfill whose journal writes are batched, before the write
// and after it, then resumes on the same store file: whatever the batch
// the crash hit, every eligible member ends with exactly one certificate
// and no run is left unfinished.
func TestCrashAndResumeAtEveryJournalBatch(t *testing.T) {
	const members = 16 // the odd ones are eligible
	const eligible = 8
	const workers = 4
	hold := 3 * time.Millisecond
	// Pages of 4 members: the 2 eligible runs of a page are claimed with
	// it and write their intents and outcomes as one batch each.
	recipe := func() *recipes.Recipe {
		r := issueRecipe(t)
		r.Trigger.With = mustTemplate(t, map[string]any{"page_size": 4})
		return r
	}
	probe := batchCrashStore{crashStore: &crashStore{Store: openStore(t, tempDB(t))}, hold: hold}
	runOnce(t, newEngine(t, probe, newFakeService(members, everyOther), []*recipes.Recipe{recipe()}, concurrency(workers)))
	probe.Store.Close()
	n := probe.writes
	if n < 10 {
		t.Fatalf("only %d writes in a clean pass: %v", n, probe.points)
	}
	t.Logf("a clean pass: %d writes: %v", n, probe.points)
	// Crashing at a batch of several writes is the case under test: count
	// the crashes that hit one.
	var bigBatchCrashes atomic.Int64
	t.Run("crashes", func(t *testing.T) {
		for _, after := range []bool{false, true} {
			for k := 1; k <= n; k++ {
				name := fmt.Sprintf("crash %s write %d", map[bool]string{false: "before", true: "after"}[after], k)
				t.Run(name, func(t *testing.T) {
					crashed, resumed := recipe(), recipe()
					t.Parallel()
					path := tempDB(t)
					svc := newFakeService(members, everyOther)
					cs := batchCrashStore{crashStore: &crashStore{Store: openStore(t, path), at: k, after: after}, hold: hold}
					e := newEngine(t, cs, svc, []*recipes.Recipe{crashed}, concurrency(workers))
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					e.RunOnce(ctx) // fails: the store died
					cancel()
					e.Close()
					cs.Store.Close()
					if cs.dead {
						var batch int
						if _, err := fmt.Sscanf(cs.points[k-1], "record-many %d", &batch); err == nil && batch > 1 {
							bigBatchCrashes.Add(1)
						}
					} else {
						// Batches vary with timing: this pass needed fewer writes.
						t.Logf("the pass made %d writes; nothing to crash at %d", cs.writes, k)
					}

					store := openStore(t, path)
					defer store.Close()
					runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{resumed}, concurrency(workers)))
					assertExactlyOnce(t, svc)
					assertAllDone(t, store)
					if svc.creates != eligible {
						// A crash between a create and its journal line is
						// settled by the look-up, never by a second create.
						t.Errorf("%d certificates created, want %d (crashed at %q)", svc.creates, eligible, cs.points[min(k, len(cs.points))-1])
					}
				})
			}
		}
	})
	if bigBatchCrashes.Load() == 0 {
		t.Errorf("no crash hit a batch of more than one journal write: the test did not test batches (%v)", probe.points)
	}
}
