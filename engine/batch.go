package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// BatchObserver is implemented by observers that also count batch calls
// (the engine finds it by type assertion, so that an Observer without it
// still works). BatchCall is one call of an action's batch form: size
// inputs sent at once, took the time the call took.
type BatchObserver interface {
	BatchCall(recipe, step, action string, size int, took time.Duration)
}

// Batching works like a group commit: the calls a step's runs make at one
// moment go to the action's batch form as one call. Each run keeps its
// own control flow in step (journal, intent flushed before the call,
// retries, settlement per item); only the call itself goes through the
// step's batcher. A batcher that is free sends what is queued at once, up
// to the action's Max per call; while a call is in flight the next calls
// queue, so that batches grow with the load and no timer delays a lone
// call.

// batchKey names a batcher: one per recipe step and connection (a replay
// under an earlier recipe version has its own).
type batchKey struct {
	recipe, step string
	action       *connectors.ActionSpec
	conn         *openConn
}

type batcher struct {
	e     *Engine
	rt    *recipeRT
	st    *stepRT
	max   int
	mu    sync.Mutex
	queue []*batchItem
	busy  bool // a drain goroutine is sending
}

// batchItem is one run's call waiting in a batcher.
type batchItem struct {
	ctx   context.Context
	input map[string]any
	done  chan struct{} // closed once res and err are set; nil when sent by a page

	res   *connectors.Result
	err   error
	state itemState // guarded by the batcher's mu
}

type itemState int

const (
	itemQueued itemState = iota
	itemSent
	itemLeft // its run stopped waiting before it was sent
)

// call performs the step's action for one run: through the step's batcher
// when the action has a batch form, else by Run.
func (e *Engine) call(ctx context.Context, rt *recipeRT, st *stepRT, input map[string]any) (*connectors.Result, error) {
	if st.action.Batch == nil {
		if err := e.sendCheck(ctx, st); err != nil {
			return nil, err
		}
		return st.action.Run(ctx, st.conn.conn, input)
	}
	return e.batcherOf(rt, st).submit(ctx, input)
}

// sendCheck checks, before a write's action is called, that it may still
// be sent (connectors.SendCheck): actions that do not go through the HTTP
// runtime (a file, an email) are held to it too.
func (e *Engine) sendCheck(ctx context.Context, st *stepRT) error {
	if st.action.ReadOnly {
		return nil
	}
	if err := connectors.CheckSend(ctx); err != nil {
		return fmt.Errorf("%s: %w", st.name, err)
	}
	return nil
}

func (e *Engine) batcherOf(rt *recipeRT, st *stepRT) *batcher {
	k := batchKey{recipe: rt.r.Name, step: st.s.ID, action: st.action, conn: st.conn}
	if b, ok := e.batchers.Load(k); ok {
		return b.(*batcher)
	}
	b, _ := e.batchers.LoadOrStore(k, &batcher{e: e, rt: rt, st: st, max: max(1, st.action.Batch.Max)})
	return b.(*batcher)
}

// submit queues one input and waits for its result. A run whose context
// ends stops waiting at once: before its input was sent, the input is
// left out of the next call; after, the call goes on for the others and
// the run's step settles the write when the run resumes.
func (b *batcher) submit(ctx context.Context, input map[string]any) (*connectors.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	it := &batchItem{ctx: ctx, input: input, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, it)
	start := !b.busy
	b.busy = true
	b.mu.Unlock()
	if start {
		go b.drain()
	}
	select {
	case <-it.done:
		return it.res, it.err
	case <-ctx.Done():
		b.mu.Lock()
		if it.state == itemQueued {
			it.state = itemLeft
		}
		b.mu.Unlock()
		return nil, ctx.Err()
	}
}

// drain sends the queue, Max inputs per call, until it is empty.
func (b *batcher) drain() {
	for {
		b.mu.Lock()
		items := make([]*batchItem, 0, min(len(b.queue), b.max))
		n := 0
		for ; n < len(b.queue) && len(items) < b.max; n++ {
			it := b.queue[n]
			if it.state == itemLeft {
				continue
			}
			it.state = itemSent
			items = append(items, it)
		}
		clear(b.queue[:n])
		b.queue = b.queue[n:]
		if len(items) == 0 {
			b.queue = nil
			b.busy = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.send(items)
	}
}

// send makes one call of the batch form and hands each run its result.
// The call's context ends only when every run in it has stopped waiting:
// one run losing its lease does not cancel the others' write.
func (b *batcher) send(items []*batchItem) {
	e, st := b.e, b.st
	ctx, cancel := context.WithCancel(context.WithoutCancel(items[0].ctx))
	var waiting atomic.Int64
	waiting.Store(int64(len(items)))
	stops := make([]func() bool, len(items))
	for i, it := range items {
		stops[i] = context.AfterFunc(it.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
	}
	// The step's policy decides each request's retries, as for Run; the
	// retrying alert names the call's first run.
	ctx = connectors.WithRetry(ctx, func(ctx context.Context, failed int, err error) bool {
		if failed >= st.retry.Attempts {
			return false
		}
		e.obs.StepAttempt(b.rt.r.Name, st.s.ID, st.name, "retry", 0)
		return e.sleep(ctx, policyDelay(st.retry, failed, err)) == nil
	})
	inputs := make([]map[string]any, len(items))
	for i, it := range items {
		inputs[i] = it.input
	}
	t0 := time.Now()
	var results []connectors.ItemResult
	err := e.sendCheck(ctx, st)
	switch {
	case err != nil:
	case len(items) == 1:
		// A lone call is the action's single form: the service's plain
		// request, as a run without batching sends it.
		res, rerr := st.action.Run(ctx, st.conn.conn, inputs[0])
		results = []connectors.ItemResult{{Result: res, Err: rerr}}
	default:
		results, err = st.action.Batch.Run(ctx, st.conn.conn, inputs)
	}
	took := time.Since(t0)
	for _, stop := range stops {
		stop()
	}
	cancel()
	if err == nil && len(results) != len(items) {
		// The call went out: what it did to each input is unknown.
		err = fmt.Errorf("%w: the batch form of %s answered %d results for %d inputs", connectors.ErrInDoubt, st.name, len(results), len(items))
	}
	if bo, ok := e.obs.(BatchObserver); ok {
		bo.BatchCall(b.rt.r.Name, st.s.ID, st.name, len(items), took)
	}
	for i, it := range items {
		if err != nil {
			it.err = err
		} else {
			it.res, it.err = results[i].Result, results[i].Err
		}
		if it.done != nil { // nil for a page's items: the page waits on send
			close(it.done)
		}
	}
}
