package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// TestTwoRunnersShareOneStore: two runners (two processes' worth: each its
// own store handle, committer and owner name) work one backfill from the
// same file. Each event runs once, on one of them.
func TestTwoRunnersShareOneStore(t *testing.T) {
	path := tempDB(t)
	svc := newFakeService(40, everyOther)
	var engines []*engine.Engine
	for _, owner := range []string{"runner-a", "runner-b"} {
		store := openStore(t, path)
		t.Cleanup(func() { store.Close() })
		engines = append(engines, newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)},
			func(o *engine.Options) { o.Owner = owner; o.Concurrency = 3 }))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	sums := make([]*engine.Summary, len(engines))
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if sums[i], err = e.RunOnce(ctx); err != nil {
				t.Errorf("runner %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	// A run queued by one runner while the other was draining is finished
	// by a last pass.
	store := openStore(t, path)
	defer store.Close()
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
