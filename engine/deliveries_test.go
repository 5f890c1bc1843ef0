package engine_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// slowAdvance counts Advance calls and makes each take a while, as a
// store under load does, so that deliveries pile up behind one.
type slowAdvance struct {
	engine.Store
	calls  atomic.Int32
	events atomic.Int32
}

func (s *slowAdvance) Advance(ctx context.Context, recipe string, adv engine.Advance) ([]engine.Enqueued, error) {
	s.calls.Add(1)
	s.events.Add(int32(len(adv.Events)))
	time.Sleep(20 * time.Millisecond)
	return s.Store.Advance(ctx, recipe, adv)
}

// TestWebhookBurstIsOneBatch: deliveries arriving while one is being
// persisted are persisted together, one Advance (one transaction) for the
// lot, and each is still answered with its own counts after it is durable.
func TestWebhookBurstIsOneBatch(t *testing.T) {
	base := openStore(t, tempDB(t))
	defer base.Close()
	store := &slowAdvance{Store: base}
	svc := newFakeService(0, oneActive)
	e := newEngine(t, store, svc, []*recipes.Recipe{recordRecipe(t)})
	srv := httptest.NewServer(e.WebhookHandler())
	defer srv.Close()
	url := srv.URL + "/hooks/members"

	const deliveries = 60
	var wg sync.WaitGroup
	var accepted, duplicates atomic.Int32
	for i := range deliveries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every third delivery repeats the one before it: a sender's
			// retry, in the same burst.
			id := fmt.Sprintf("d%d", i-i%3/2)
			code, out := deliver(t, url, id, map[string]any{"id": fmt.Sprintf("m%d", i), "seq": 1}, "")
			if code != 200 {
				t.Errorf("delivery %s answered %d %v", id, code, out)
				return
			}
			accepted.Add(int32(out["accepted"].(float64)))
			duplicates.Add(int32(out["duplicates"].(float64)))
		}()
	}
	wg.Wait()
	unique := map[string]bool{}
	for i := range deliveries {
		unique[fmt.Sprintf("d%d", i-i%3/2)] = true
	}
	if int(accepted.Load()) != len(unique) || int(duplicates.Load()) != deliveries-len(unique) {
		t.Errorf("answers: %d accepted, %d duplicates; want %d and %d", accepted.Load(), duplicates.Load(), len(unique), deliveries-len(unique))
	}
	if store.events.Load() != deliveries {
		t.Errorf("%d events reached the store, want %d", store.events.Load(), deliveries)
	}
	if n := store.calls.Load(); n >= deliveries/3 {
		t.Errorf("%d Advance calls for a burst of %d deliveries: they were not batched", n, deliveries)
	}
	// Durable before the answers: every new event has its queued run.
	runs, err := base.ListRuns(context.Background(), engine.RunFilter{Limit: 1000})
	if err != nil || len(runs) != len(unique) {
		t.Fatalf("%d runs in the store after the answers (%v), want %d", len(runs), err, len(unique))
	}
	t.Logf("%d deliveries persisted by %d Advance calls", deliveries, store.calls.Load())
}
