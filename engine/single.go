package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// Deliver persists events for a recipe as if its trigger had found them
// (deduplicated by ID, ordered by subject) and queues a run for each new
// one; it returns how many were new. Nothing runs until Drain, RunOnce or
// Run. Offline recipe tests (engine/recipetest) feed fixtures this way,
// without polling the trigger's service.
func (e *Engine) Deliver(ctx context.Context, recipe string, events ...connectors.Event) (int, error) {
	e.mu.Lock()
	rt := e.recipes[recipe]
	e.mu.Unlock()
	if rt == nil {
		return 0, fmt.Errorf("deliver: no recipe %q is loaded", recipe)
	}
	return e.enqueue(ctx, rt, nil, nil, events)
}

// Drain runs every queued run to an outcome without feeding any trigger
// (no poll, no schedule, no webhook), then returns the summary.
func (e *Engine) Drain(ctx context.Context) (*Summary, error) {
	if err := e.begin(ctx); err != nil {
		return nil, err
	}
	defer e.end()
	err := e.dispatch(ctx, ctx.Done(), true, func() bool { return false })
	return e.Summary(), err
}

// Poll polls every polling (or hybrid) trigger until it is caught up,
// fires the schedules that are due, and queues what it finds, running
// nothing; Drain then runs it. Unlike RunOnce, where
// triggers poll while runs already write, every trigger sees the services
// as they were before this pass wrote anything: a record one recipe
// writes early in a pass is not first seen by another recipe's trigger in
// the state memberflow left it in, which echo suppression (keyed by
// connector, subject and fingerprint, for all recipes) would drop.
//
// Nothing drains while Poll runs, so it fails rather than waits when the
// queue reaches Options.HighWater: size HighWater for one pass.
func (e *Engine) Poll(ctx context.Context) error {
	since := e.now()
	if err := e.begin(ctx); err != nil {
		return err
	}
	defer e.end()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var full atomic.Bool
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if e.pending.Load() >= int64(e.opts.HighWater) {
					full.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, name := range e.recipeNames() {
		rt := e.recipes[name]
		var feed func() error
		switch {
		case rt.polls(): // polling and hybrid triggers
			feed = func() error { return e.pollLoop(pctx, rt, true, since) }
		case rt.mode == "schedule":
			feed = func() error { return e.fireIfDue(pctx, rt) }
		default:
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := feed(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(done)
	if full.Load() {
		errs = append(errs, fmt.Errorf("poll: the queue reached the high-water mark (%d runs): raise Options.HighWater or use RunOnce", e.opts.HighWater))
	}
	return errors.Join(errs...)
}
