package engine

import "context"

// Release puts back in the queue every run this runner's owner still
// holds, and returns how many. A runner stopped by a signal calls it after
// Run or RunOnce returned, so that no run waits for its lease to end.
func (e *Engine) Release(ctx context.Context) (int, error) {
	return e.store.ReleaseOwner(ctx, e.opts.Owner)
}
