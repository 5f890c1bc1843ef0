package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// A poll pass is the polls of a trigger from a cursor where a pass starts
// (the empty cursor, or the one a pass ended caught up at) to the poll
// that says there is no more. A pass covers everything that was there
// when its first poll began: a scan reads every record after that moment,
// a change feed every change up to it. A one-shot runner (RunOnce) that
// learns that another runner's pass, begun after this runner's own start,
// ended caught up has nothing of its own to poll: it ends its poll loop
// as caught up without a request (pollLoop).
//
// What the runners of a store know of a trigger's passes is kept in the
// store's MetaStore, when it has one, under caughtUpPrefix + recipe.
const caughtUpPrefix = "caught-up/"

// caughtUp is the value under a recipe's caught-up key. Each field is a
// fact about a pass that ended caught up; a later pass replaces them.
type caughtUp struct {
	// Started is when the latest pass known to have ended caught up began
	// (its first poll, before its request), by the poller's clock; zero
	// when no pass is known whole (its poller took the lead mid-pass).
	Started time.Time `json:"started,omitzero"`
	// Owner is the runner that polled that pass.
	Owner string `json:"owner,omitempty"`
	// Cursor is the cursor the latest pass that ended caught up left: a
	// poll from it starts a pass.
	Cursor string `json:"cursor"`
}

// covers reports whether the pass c records began after since, by now.
// Both are wall-clock times of the runners' clocks (runners of one store
// agree on time, as their leases already require). A pass begun at the
// very instant since is not counted (a coarse or frozen clock), nor one
// that began after now: a clock that went back since the pass began
// cannot tell what began first.
func (c *caughtUp) covers(since, now time.Time) bool {
	return c != nil && !c.Started.IsZero() && c.Started.After(since) && !c.Started.After(now)
}

// caughtUps is the MetaStore that keeps the caught-up passes: the
// runner's own store's (never Options.Meta: a dry run's copy must not
// tell the real store's runners that it polled), nil without one.
func (e *Engine) caughtUps() MetaStore {
	m, _ := e.store.(MetaStore)
	return m
}

// readCaughtUp returns what the store knows of the recipe's passes; nil
// when nothing.
func readCaughtUp(ctx context.Context, m MetaStore, recipe string) (*caughtUp, int64, error) {
	raw, version, err := m.GetMeta(ctx, caughtUpPrefix+recipe)
	if err != nil || raw == nil {
		return nil, version, err
	}
	var c caughtUp
	if err := json.Unmarshal(raw, &c); err != nil {
		// Unreadable (written by another version): known as nothing, and
		// replaced by the next pass.
		return nil, version, nil
	}
	return &c, version, nil
}

// markCaughtUp records that a pass of the recipe's trigger ended caught up
// at cursor; started is when the pass began, zero when unknown (then the
// start recorded before, still true of an earlier pass, is kept).
func markCaughtUp(ctx context.Context, m MetaStore, recipe, owner string, started time.Time, cursor string) error {
	started = started.Round(0).UTC()
	for range 5 {
		old, version, err := readCaughtUp(ctx, m, recipe)
		if err != nil {
			return err
		}
		next := caughtUp{Started: started, Owner: owner, Cursor: cursor}
		if started.IsZero() && old != nil {
			next.Started, next.Owner = old.Started, old.Owner
		}
		raw, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if ok, err := m.SwapMeta(ctx, caughtUpPrefix+recipe, version, raw); err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("recipe %q: recording the caught-up poll: the value kept changing", recipe)
}
