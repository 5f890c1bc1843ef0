package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/recipes"
)

// blockingBatch is a batch form whose calls wait for release; it records
// each call's inputs and whether the call's context was cancelled.
type blockingBatch struct {
	mu        sync.Mutex
	calls     [][]string
	cancelled []bool
	entered   chan struct{}
	release   chan struct{}
}

func (b *blockingBatch) run(ctx context.Context, _ connectors.Conn, inputs []map[string]any) ([]connectors.ItemResult, error) {
	var ids []string
	for _, in := range inputs {
		ids = append(ids, in["id"].(string))
	}
	b.mu.Lock()
	b.calls = append(b.calls, ids)
	b.mu.Unlock()
	b.entered <- struct{}{}
	<-b.release
	b.mu.Lock()
	b.cancelled = append(b.cancelled, ctx.Err() != nil)
	b.mu.Unlock()
	out := make([]connectors.ItemResult, len(inputs))
	for i, id := range ids {
		out[i].Result = &connectors.Result{Output: "done " + id}
	}
	return out, nil
}

// runOne is the single form: a lone call goes through Run.
func (b *blockingBatch) runOne(ctx context.Context, c connectors.Conn, input map[string]any) (*connectors.Result, error) {
	out, err := b.run(ctx, c, []map[string]any{input})
	if err != nil {
		return nil, err
	}
	return out[0].Result, out[0].Err
}

func testBatcher(t *testing.T, bb *blockingBatch, max int) *batcher {
	t.Helper()
	e := &Engine{obs: nopObserver{}, log: hclog.NewNullLogger()}
	rt := &recipeRT{r: &recipes.Recipe{Name: "r"}}
	st := &stepRT{s: &recipes.Step{ID: "s"}, name: "c.a", conn: &openConn{},
		action: &connectors.ActionSpec{Run: bb.runOne, Batch: &connectors.BatchForm{Max: max, Run: bb.run}},
		retry:  recipes.RetryPolicy{Attempts: 1, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}}
	return e.batcherOf(rt, st)
}

type callResult struct {
	id  string
	res *connectors.Result
	err error
}

func TestCancelledWaiterLeavesTheBatch(t *testing.T) {
	bb := &blockingBatch{entered: make(chan struct{}, 10), release: make(chan struct{})}
	b := testBatcher(t, bb, 3)
	results := make(chan callResult, 10)
	submit := func(ctx context.Context, id string) {
		go func() {
			res, err := b.submit(ctx, map[string]any{"id": id})
			results <- callResult{id, res, err}
		}()
	}
	waitQueued := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			b.mu.Lock()
			q := 0
			for _, it := range b.queue {
				if it.state == itemQueued {
					q++
				}
			}
			b.mu.Unlock()
			if q == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d queued, want %d", q, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// a is sent alone and held in flight; b, c, d, e, f queue behind it.
	ctxA, cancelA := context.WithCancel(context.Background())
	submit(ctxA, "a")
	<-bb.entered
	ctxC, cancelC := context.WithCancel(context.Background())
	submit(context.Background(), "b")
	waitQueued(1)
	submit(ctxC, "c")
	waitQueued(2)
	for _, id := range []string{"d", "e", "f"} {
		submit(context.Background(), id)
		waitQueued(3 + int(id[0]-'d'))
	}
	// a's run loses its lease while its call is in flight; c's while it
	// is still queued. Both stop waiting at once.
	cancelA()
	cancelC()
	for range 2 {
		r := <-results
		if (r.id != "a" && r.id != "c") || !errors.Is(r.err, context.Canceled) {
			t.Fatalf("%s: %v, %v; want a and c cancelled first", r.id, r.res, r.err)
		}
	}
	// The in-flight call was not cancelled for the others (it had only a,
	// so it may be); the queued ones go out without c, 3 per call.
	close(bb.release)
	got := map[string]string{}
	for range 4 {
		r := <-results
		if r.err != nil {
			t.Fatalf("%s: %v", r.id, r.err)
		}
		got[r.id] = r.res.Output.(string)
	}
	for _, id := range []string{"b", "d", "e", "f"} {
		if got[id] != "done "+id {
			t.Errorf("%s got %q", id, got[id])
		}
	}
	bb.mu.Lock()
	defer bb.mu.Unlock()
	want := [][]string{{"a"}, {"b", "d", "e"}, {"f"}}
	if len(bb.calls) != len(want) {
		t.Fatalf("calls %v, want %v", bb.calls, want)
	}
	for i := range want {
		if len(bb.calls[i]) != len(want[i]) {
			t.Fatalf("calls %v, want %v", bb.calls, want)
		}
		for j := range want[i] {
			if bb.calls[i][j] != want[i][j] {
				t.Fatalf("calls %v, want %v", bb.calls, want)
			}
		}
	}
	if bb.cancelled[1] || bb.cancelled[2] {
		t.Errorf("a call was cancelled while runs still waited on it: %v", bb.cancelled)
	}
}

// TestCancelledWaiterDoesNotCancelOthersInFlight: one run of a call in
// flight stops waiting; the call's context stays live for the others,
// who get their results.
func TestCancelledWaiterDoesNotCancelOthersInFlight(t *testing.T) {
	bb := &blockingBatch{entered: make(chan struct{}, 10), release: make(chan struct{})}
	b := testBatcher(t, bb, 5)
	results := make(chan callResult, 10)
	first, cancelFirst := context.WithCancel(context.Background())
	go func() { res, err := b.submit(first, map[string]any{"id": "x"}); results <- callResult{"x", res, err} }()
	<-bb.entered // x alone in flight
	ctxs := map[string]context.CancelFunc{}
	for _, id := range []string{"p", "q", "r"} {
		ctx, cancel := context.WithCancel(context.Background())
		ctxs[id] = cancel
		go func() { res, err := b.submit(ctx, map[string]any{"id": id}); results <- callResult{id, res, err} }()
	}
	for {
		b.mu.Lock()
		n := len(b.queue)
		b.mu.Unlock()
		if n == 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancelFirst()
	if r := <-results; r.id != "x" || r.err == nil {
		t.Fatalf("x: %v", r.err)
	}
	bb.release <- struct{}{} // x's call ends (cancelled: nobody waits)
	<-bb.entered             // p, q, r in flight
	ctxs["p"]()              // the call's first run: its context must not be the call's
	if r := <-results; r.id != "p" || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("%s: %v; want p cancelled", r.id, r.err)
	}
	close(bb.release)
	for range 2 {
		r := <-results
		if r.err != nil || r.res.Output != "done "+r.id {
			t.Errorf("%s: %v %v", r.id, r.res, r.err)
		}
	}
	bb.mu.Lock()
	defer bb.mu.Unlock()
	if !bb.cancelled[0] || bb.cancelled[1] {
		t.Errorf("cancelled = %v: want the abandoned call cancelled, the shared one live", bb.cancelled)
	}
	for _, c := range ctxs {
		c()
	}
}
