package engine

import (
	"context"
	"errors"
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
	// spooled says the delivery is in the spool (fsynced), not yet in
	// the store.
	spooled bool
}

// persist enqueues a delivery's events and returns how many were new. It
// returns after they are durable (or the batch failed), or with ctx's
// error when the caller gives up first: the batch may still commit, and
// the sender's next delivery is then a duplicate, dropped. spooled says
// they are durable in the spool instead, to be stored when the store
// takes writes again.
func (b *deliveryBatcher) persist(ctx context.Context, events []connectors.Event) (fresh int, spooled bool, err error) {
	for _, ev := range events {
		if ev.ID == "" {
			// Refused alone, not with the batch it would have joined.
			return 0, false, fmt.Errorf("recipe %q: the trigger produced an event without an ID (subject %q)", b.rt.r.Name, ev.Subject)
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
		return d.fresh, d.spooled, d.err
	case <-ctx.Done():
		return 0, false, ctx.Err()
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
// one Advance, and hands each delivery its share of the outcome. With a
// spool, a batch the store refuses is spooled instead, and while
// deliveries wait in the spool a batch goes behind them: a subject's
// deliveries reach the store in the order they were acknowledged.
func (b *deliveryBatcher) persistBatch(ctx context.Context, batch []*delivery, n int) {
	events := make([]connectors.Event, 0, n)
	for _, d := range batch {
		events = append(events, d.events...)
	}
	sp := b.e.spool
	var recs []spoolRecord
	if sp != nil && sp.pending() {
		// Encoded only when the spool is in use: a healthy store's
		// deliveries pay nothing for it.
		var err error
		if recs, err = spoolRecords(b.rt.r.Name, b.e.now(), batch); err != nil {
			b.answer(batch, nil, err)
			return
		}
		if ok, err := sp.append(recs, true); ok || err != nil {
			b.spooled(batch, err)
			return
		}
	}
	p, err := b.e.prepareEvents(b.rt, nil, nil, events, false)
	if err != nil {
		b.answer(batch, nil, err)
		return
	}
	_, enq, err := b.e.commitPrepared(ctx, b.rt, p, nil)
	if s, ok := b.e.store.(Syncer); ok && err == nil {
		// A 200 tells the sender never to deliver again: what it
		// acknowledges must survive a power loss too, not only a crash of
		// the process (a poll would read it again; a delivery, never).
		if serr := s.Sync(ctx); serr != nil {
			err = fmt.Errorf("making the delivery durable: %w", serr)
		}
	}
	if err != nil && sp != nil {
		// The store refuses (or could not flush) the batch: the spool
		// keeps it. Were the batch committed after all (a commit whose
		// answer was lost), its replay is a duplicate, dropped.
		var serr error
		if recs == nil {
			recs, serr = spoolRecords(b.rt.r.Name, b.e.now(), batch)
		}
		if serr == nil {
			_, serr = sp.append(recs, false)
		}
		if serr == nil {
			b.e.log.Debug("the store refused webhook deliveries; spooled", "recipe", b.rt.r.Name, "deliveries", len(batch), "error", b.e.redact.String(err.Error()))
			b.spooled(batch, nil)
			return
		}
		err = errors.Join(err, fmt.Errorf("spooling the delivery: %w", serr))
	}
	b.answer(batch, enq, err)
}

// spooled answers the deliveries of a batch the spool took (err nil) or
// refused.
func (b *deliveryBatcher) spooled(batch []*delivery, err error) {
	for _, d := range batch {
		d.err, d.spooled = err, err == nil
		close(d.done)
	}
	if err == nil {
		b.e.kickSpool()
	}
}

// answer hands each delivery of a batch its share of the store's outcome.
func (b *deliveryBatcher) answer(batch []*delivery, enq []Enqueued, err error) {
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
