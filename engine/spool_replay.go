package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// priorError is a failure of the store under a webhook trigger's look-up
// of remembered states while it parses a delivery: the store's, not the
// delivery's, so the delivery is answered 503 (or spooled), never 400.
type priorError struct{ err error }

func (p *priorError) Error() string { return p.err.Error() }
func (p *priorError) Unwrap() error { return p.err }

// SpoolStats says what the engine's delivery spool holds; ok is false
// without one.
func (e *Engine) SpoolStats() (st SpoolStats, ok bool) {
	if e.spool == nil {
		return SpoolStats{}, false
	}
	return e.spool.Stats(), true
}

// kickSpool wakes the spool's replayer.
func (e *Engine) kickSpool() {
	select {
	case e.spoolKick <- struct{}{}:
	default:
	}
}

// spoolRecords are the deliveries' records as the spool keeps them.
func spoolRecords(recipe string, received time.Time, batch []*delivery) ([]spoolRecord, error) {
	recs := make([]spoolRecord, 0, len(batch))
	for _, d := range batch {
		r := spoolRecord{Recipe: recipe, Received: received, Events: make([]spoolEvent, len(d.events))}
		for i, ev := range d.events {
			data, err := eventData(ev)
			if err != nil {
				return nil, fmt.Errorf("recipe %q: event %q: encoding its data: %w", recipe, ev.ID, err)
			}
			r.Events[i] = spoolEvent{ID: ev.ID, Subject: ev.Subject, Fingerprint: ev.Fingerprint, Time: ev.Time, Data: data}
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// checkSpool refuses to start with deliveries spooled for a recipe this
// runner does not load: they could be stored by nobody, and the spool's
// files would never be removed.
func (e *Engine) checkSpool() error {
	if e.spool == nil {
		return nil
	}
	var missing []string
	for name, n := range e.spool.spooledRecipes() {
		if rt, ok := e.recipes[name]; !ok || rt.trigger == nil {
			missing = append(missing, fmt.Sprintf("%q (%d)", name, n))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return fmt.Errorf("the delivery spool %s holds webhook deliveries of recipes this runner does not load: %s; load them (they are stored first), or start a runner that does with this --spool directory",
		e.spool.Dir(), strings.Join(missing, ", "))
}

// replaySpoolFirst stores what the spool holds before the runner takes
// other work; a store that refuses leaves it to the replayer (spoolLoop).
func (e *Engine) replaySpoolFirst(ctx context.Context) {
	if e.spool == nil || !e.spool.pending() {
		return
	}
	if n, err := e.replaySpool(ctx); err != nil {
		if ctx.Err() == nil {
			e.log.Warn("storing the spooled webhook deliveries failed; trying again", "stored", n, "spool", e.spool.Dir(), "error", e.redact.String(err.Error()))
		}
	} else {
		e.log.Info("stored the webhook deliveries the spool held", "deliveries", n, "spool", e.spool.Dir())
	}
}

// spoolLoop replays the spool into the store whenever it holds
// deliveries, until ctx ends: at once when a delivery is spooled, then
// with a growing pause (250 ms to 2 s) while the store refuses.
func (e *Engine) spoolLoop(ctx context.Context) {
	if e.spool == nil {
		return
	}
	const first, most = 250 * time.Millisecond, 2 * time.Second
	wait, failing := first, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.spoolKick:
		case <-time.After(wait):
		}
		if !e.spool.pending() {
			wait = time.Second
			continue
		}
		n, err := e.replaySpool(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !failing {
				e.log.Warn("the store refuses the spooled webhook deliveries; they stay in the spool and are tried again", "spool", e.spool.Dir(), "error", e.redact.String(err.Error()))
			}
			failing = true
			// A pause that kicks do not cut: every delivery spooled during
			// an outage must not be an attempt at the store.
			if e.sleep(ctx, wait) != nil {
				return
			}
			wait = min(2*wait, most)
			continue
		}
		if failing || n > 0 {
			e.log.Info("stored the spooled webhook deliveries", "deliveries", n, "spool", e.spool.Dir())
		}
		failing, wait = false, first
	}
}

// replaySpool stores the spool's deliveries, oldest first, and removes
// each file once its every delivery is committed (and, on a store that
// syncs, flushed to disk). It returns how many deliveries it stored
// (duplicates included); it stops at the first failure.
func (e *Engine) replaySpool(ctx context.Context) (int, error) {
	sp := e.spool
	sp.replayMu.Lock()
	defer sp.replayMu.Unlock()
	stored := 0
	for {
		segs, err := sp.sealed()
		if err != nil || len(segs) == 0 {
			return stored, err
		}
		for _, seg := range segs {
			n, err := e.replaySegment(ctx, seg)
			stored += n
			if err != nil {
				return stored, err
			}
			if err := sp.remove(seg); err != nil {
				return stored, err
			}
		}
	}
}

// replaySegment stores a sealed segment's records from where this
// process's last replay of it stopped: consecutive deliveries of one
// recipe together, up to maxDeliveryBatch events a transaction.
func (e *Engine) replaySegment(ctx context.Context, seg *spoolSeg) (int, error) {
	data, err := os.ReadFile(seg.path)
	if err != nil {
		return 0, fmt.Errorf("delivery spool: reading %s: %w", seg.path, err)
	}
	recs, _, perr := parseSpool(data)
	if perr != nil && errors.Is(perr, errNotSpool) {
		return 0, fmt.Errorf("delivery spool: %s: %w", seg.path, perr)
	}
	// A torn last record was never acknowledged: it is dropped (OpenSpool
	// logged it for the files an earlier runner left).
	e.spool.mu.Lock()
	from := seg.done
	e.spool.mu.Unlock()
	stored := 0
	for i := from; i < len(recs); {
		r := recs[i]
		rt := e.recipes[r.Recipe]
		if rt == nil || rt.trigger == nil {
			return stored, fmt.Errorf("delivery spool: %s holds a delivery of recipe %q, which this runner does not load", seg.path, r.Recipe)
		}
		var events []connectors.Event
		j := i
		if len(r.Body) > 0 {
			evs, err := e.parseSpooled(ctx, rt, r.Body)
			var pe *priorError
			switch {
			case errors.As(err, &pe):
				return stored, err
			case err != nil:
				// Verified when it came, refused now: nobody can be told. It
				// is left out, loudly.
				e.log.Error("a spooled webhook delivery does not parse; it is dropped", "recipe", r.Recipe, "received", r.Received, "error", e.redact.String(err.Error()))
			}
			events, j = evs, i+1
		} else {
			for ; j < len(recs) && recs[j].Recipe == r.Recipe && len(recs[j].Body) == 0 &&
				(j == i || len(events)+len(recs[j].Events) <= maxDeliveryBatch); j++ {
				for _, se := range recs[j].Events {
					ev := connectors.Event{ID: se.ID, Subject: se.Subject, Fingerprint: se.Fingerprint, Time: se.Time, Raw: se.Data}
					if err := json.Unmarshal(se.Data, &ev.Data); err != nil {
						return stored, fmt.Errorf("delivery spool: %s: event %q of recipe %q: decoding its data: %w", seg.path, se.ID, r.Recipe, err)
					}
					events = append(events, ev)
				}
			}
		}
		if len(events) > 0 {
			if _, _, err := e.enqueueFull(ctx, rt, nil, nil, events, nil); err != nil {
				return stored, fmt.Errorf("recipe %q: storing spooled deliveries: %w", r.Recipe, err)
			}
			if s, ok := e.store.(Syncer); ok {
				// The file is removed once this is durable: a power loss must
				// not lose what both the spool and the sender let go.
				if err := s.Sync(ctx); err != nil {
					return stored, fmt.Errorf("recipe %q: making the spooled deliveries durable: %w", r.Recipe, err)
				}
			}
		}
		stored += j - i
		i = j
		e.spool.committed(seg, i)
	}
	return stored, nil
}

// parseSpooled parses a spooled body, as the webhook would have.
func (e *Engine) parseSpooled(ctx context.Context, rt *recipeRT, body []byte) ([]connectors.Event, error) {
	if rt.trigger.Webhook == nil {
		return nil, fmt.Errorf("recipe %q: its trigger no longer takes webhooks", rt.r.Name)
	}
	return rt.trigger.Webhook.Parse(ctx, rt.trigConn.conn, body, connectors.WebhookRequest{Params: rt.params, Prior: priorState{store: e.store, name: rt.r.Name}})
}
