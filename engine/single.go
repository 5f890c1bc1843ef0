package engine

import (
	"context"
	"fmt"

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
