package engine

import (
	"context"
	"sync"
	"time"
)

// pollBalance spreads the polling of a store's triggers over its live
// runners. A polled page's runs run on the runner that polls it (page
// claims, pages.go), so a runner that leads most triggers also does most
// of the work: two runners started a moment apart split 13 triggers 12
// to 1, because whoever asks first takes every lead that is free. A
// runner that polls at least two triggers more than another live runner
// hands leads over, one trigger loop at a time, until the counts differ
// by at most one. It never takes a lead from anyone: it lets go of its
// own, waits a lease for another runner to take it, and polls it again
// if none did (that runner does not load the recipe), after which it
// keeps that trigger.
//
// Balancing needs the store to list runners (RunnerLister); without it,
// and for one-shot runners, leads are kept as before.
type pollBalance struct {
	e      *Engine
	lister RunnerLister

	mu sync.Mutex
	// read is when the runners were last listed; handOvers is how many
	// leads this runner may still hand over by that listing.
	read      time.Time
	handOvers int
	// kept are the triggers handed over that no other runner took: this
	// runner keeps them.
	kept map[string]bool
}

func newPollBalance(e *Engine) *pollBalance {
	b := &pollBalance{e: e, kept: map[string]bool{}}
	b.lister, _ = e.store.(RunnerLister)
	return b
}

// handOver reports whether this runner should give up the lead of
// recipe's trigger now. Each true is one lead of the excess the last
// listing of runners found.
func (b *pollBalance) handOver(ctx context.Context, recipe string) bool {
	if b.lister == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kept[recipe] {
		return false
	}
	if now := b.e.now(); b.read.IsZero() || now.Sub(b.read) >= b.e.opts.Lease/3 {
		runners, err := b.lister.Runners(ctx)
		if err != nil {
			// Balancing can wait: the lead is kept.
			b.e.log.Debug("listing the runners to balance polling failed", "error", err)
			return false
		}
		b.read, b.handOvers = now, leadsInExcess(runners, b.e.opts.Owner, b.e.opts.Lease)
	}
	if b.handOvers <= 0 {
		return false
	}
	b.handOvers--
	return true
}

// keep records that recipe's lead, handed over, came back untaken.
func (b *pollBalance) keep(recipe string) {
	if b.lister == nil {
		return
	}
	b.mu.Lock()
	b.kept[recipe] = true
	b.mu.Unlock()
}

// leadsInExcess is how many poll leads owner should hand over: as many as
// bring it down to its fair share, when a live runner polls at least two
// fewer than it. A runner is live when its process is not known gone and
// it renewed within a lease of the latest renewal listed (the store's
// clock, whatever this machine's).
func leadsInExcess(runners []RunnerInfo, owner string, lease time.Duration) int {
	var latest time.Time
	for _, r := range runners {
		if !r.Gone && r.Seen.After(latest) {
			latest = r.Seen
		}
	}
	mine, others, total, live := -1, -1, 0, 0
	for _, r := range runners {
		if r.Gone || latest.Sub(r.Seen) > lease {
			continue
		}
		live++
		total += len(r.Polling)
		if r.Owner == owner {
			mine = len(r.Polling)
		} else if others < 0 || len(r.Polling) < others {
			others = len(r.Polling)
		}
	}
	if mine < 0 || others < 0 || mine-others < 2 {
		return 0
	}
	fair := (total + live - 1) / live
	return max(mine-fair, 1)
}
