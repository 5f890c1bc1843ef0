package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/memberflow/memberflow/connectors"
)

// deliveryBatcher persists a burst of one webhook recipe's deliveries as
// one batch: the deliveries that arrive while an Advance is in flight are
// enqueued together by the next one, one store transaction for all of
// them, as a group commit does. A lone delivery is persisted at once, so
// batching adds no latency; a burst costs one transaction per round, not
// one per delivery.
type deliveryBatcher struct {
	e  *Engine
	rt *recipeRT

	mu      sync.Mutex
	waiting []*delivery
	busy    bool // a goroutine is persisting a batch
}

// delivery is one webhook delivery waiting to be persisted.
type delivery struct {
	events []connectors.Event
	done   chan struct{}
	// Set before done is closed.
	fresh int
	err   error
}

// persist enqueues a delivery's events and returns how many were new. It
// returns after they are durable (or the batch failed), or with ctx's
// error when the caller gives up first: the batch may still commit, and
// the sender's next delivery is then a duplicate, dropped.
func (b *deliveryBatcher) persist(ctx context.Context, events []connectors.Event) (int, error) {
	for _, ev := range events {
		if ev.ID == "" {
			// Refused alone, not with the batch it would have joined.
			return 0, fmt.Errorf("recipe %q: the trigger produced an event without an ID (subject %q)", b.rt.r.Name, ev.Subject)
		}
	}
	d := &delivery{events: events, done: make(chan struct{})}
	b.mu.Lock()
	b.waiting = append(b.waiting, d)
	lead := !b.busy
	b.busy = true
	b.mu.Unlock()
	if lead {
		// This goroutine persists batches until none is waiting; its own
		// delivery is in the first.
		b.drain(context.WithoutCancel(ctx))
	}
	select {
	case <-d.done:
		return d.fresh, d.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// maxDeliveryBatch bounds the events of one batch, so that a long burst
// still commits in steps.
const maxDeliveryBatch = 1000

func (b *deliveryBatcher) drain(ctx context.Context) {
	for {
		b.mu.Lock()
		var batch []*delivery
		n := 0
		for len(b.waiting) > 0 && (len(batch) == 0 || n+len(b.waiting[0].events) <= maxDeliveryBatch) {
			n += len(b.waiting[0].events)
			batch = append(batch, b.waiting[0])
			b.waiting = b.waiting[1:]
		}
		if len(batch) == 0 {
			b.busy = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.persistBatch(ctx, batch, n)
	}
}

// persistBatch enqueues the deliveries' events, in arrival order, with
// one Advance, and hands each delivery its share of the outcome.
func (b *deliveryBatcher) persistBatch(ctx context.Context, batch []*delivery, n int) {
	events := make([]connectors.Event, 0, n)
	for _, d := range batch {
		events = append(events, d.events...)
	}
	_, enq, err := b.e.enqueueFull(ctx, b.rt, nil, nil, events, nil)
	if s, ok := b.e.store.(Syncer); ok && err == nil {
		// A 200 tells the sender never to deliver again: what it
		// acknowledges must survive a power loss too, not only a crash of
		// the process (a poll would read it again; a delivery, never).
		if serr := s.Sync(ctx); serr != nil {
			err = fmt.Errorf("making the delivery durable: %w", serr)
		}
	}
	at := 0
	for _, d := range batch {
		if err != nil {
			d.err = err
		} else {
			for _, q := range enq[at : at+len(d.events)] {
				if q.RunID != 0 || q.Status != "" {
					d.fresh++
				}
			}
		}
		at += len(d.events)
		close(d.done)
	}
}
