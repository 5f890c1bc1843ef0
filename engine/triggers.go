package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/jsondec"
	"github.com/memberflow/memberflow/internal/jsonenc"
	"github.com/memberflow/memberflow/recipes"
)

// MaxWebhookBody is the largest webhook delivery accepted.
const MaxWebhookBody = 1 << 20

// priorState is a recipe's per-subject memory, as triggers see it.
type priorState struct {
	store TriggerStore
	name  string
	// committing are the states of the pages still being committed (nil:
	// none), newer than the store's.
	committing map[string]string
}

func (p priorState) Lookup(ctx context.Context, subjects []string) (map[string]string, error) {
	states, err := p.store.PriorStates(ctx, p.name, subjects)
	if err != nil {
		return nil, &priorError{err}
	}
	if len(p.committing) == 0 {
		return states, nil
	}
	for _, s := range subjects {
		if st, ok := p.committing[s]; ok {
			states[s] = st
		}
	}
	return states, nil
}

func cacheKey(recipe, eventID string) eventKey { return eventKey{recipe, eventID} }

// enqueue persists events (with the cursor and states of the poll that
// found them, in one transaction) and queues a run for each new one.
func (e *Engine) enqueue(ctx context.Context, rt *recipeRT, cursor *string, states []connectors.Record, events []connectors.Event) (fresh int, err error) {
	fresh, _, err = e.enqueueFull(ctx, rt, cursor, states, events, nil)
	return fresh, err
}

// enqueuePage enqueues a polled page that prepareEvents evaluated,
// claiming its new runs for this runner in the same transaction, and
// starts them as a page (pages.go).
func (e *Engine) enqueuePage(ctx context.Context, rt *recipeRT, pages *pageSet, p *preparedPage, last bool) error {
	_, _, err := e.commitPrepared(ctx, rt, p, &pageOf{pages, last})
	return err
}

// pageOf is a polled page's place: the page set that runs its runs, and
// whether it is the poll's last page.
type pageOf struct {
	set  *pageSet
	last bool
}

// enqueueDetailed enqueues events without a cursor and says what became
// of each (the alert feed needs to know a duplicate).
func (e *Engine) enqueueDetailed(ctx context.Context, rt *recipeRT, events []connectors.Event) ([]Enqueued, error) {
	_, enq, err := e.enqueueFull(ctx, rt, nil, nil, events, nil)
	return enq, err
}

func (e *Engine) enqueueFull(ctx context.Context, rt *recipeRT, cursor *string, states []connectors.Record, events []connectors.Event, page *pageOf) (fresh int, enq []Enqueued, err error) {
	p, err := e.prepareEvents(rt, cursor, states, events, page != nil)
	if err != nil {
		return 0, nil, err
	}
	return e.commitPrepared(ctx, rt, p, page)
}

// preparedPage is a page of events evaluated for its Advance: the
// conditions decided, the events encoded and, for a polled page, the
// intents of the runs' first writes built. Evaluating needs nothing of
// the store, so a poller evaluates a page while the page before commits.
type preparedPage struct {
	adv    Advance
	firsts []*firstStep // by event, for a page run here
	recipe string       // whose events: with an event's ID, its cache key
}

// drop forgets the cache entry of the page's event i, if it has one (an
// event skipped at prepare has none).
func (p *preparedPage) drop(cache *eventCache, i int) {
	if ev := &p.adv.Events[i]; !ev.Skipped {
		cache.drop(cacheKey(p.recipe, ev.ID))
	}
}

// dropPrepared forgets what p put in the event cache, for a page not
// committed.
func (e *Engine) dropPrepared(p *preparedPage) {
	if p == nil {
		return
	}
	for i := range p.adv.Events {
		p.drop(&e.cache, i)
	}
}

// prepareEvents evaluates a page for its Advance; paged says its runs
// are claimed with it, their first write's intent journaled with the
// claim (pages.go).
func (e *Engine) prepareEvents(rt *recipeRT, cursor *string, states []connectors.Record, events []connectors.Event, paged bool) (*preparedPage, error) {
	p := &preparedPage{adv: Advance{Cursor: cursor}, recipe: rt.r.Name}
	adv := &p.adv
	if paged {
		p.firsts = make([]*firstStep, len(events))
	}
	for _, s := range states {
		adv.States = append(adv.States, SubjectState{Subject: s.Subject, State: s.State})
	}
	connector := ""
	if rt.trigConn != nil {
		connector = rt.trigConn.connector
	}
	adv.Events = make([]NewEvent, 0, len(events))
	sampled := 0
	// One environment for the page: expressions read it and keep nothing.
	env := recipes.Env{"vars": rt.r.Vars}
	var fenv recipes.Env      // the first steps' (firstIntent)
	var dec *jsondec.Decoder  // of undecoded events
	var fields map[string]any // the fields of one undecoded event its condition reads
	for i := range events {
		ev := &events[i]
		if ev.ID == "" {
			e.dropPrepared(p)
			return nil, fmt.Errorf("recipe %q: the trigger produced an event without an ID (subject %q)", rt.r.Name, ev.Subject)
		}
		// The key is shared by all recipes: runs about one subject never
		// overlap, even of two recipes, so that the run that wrote a record
		// has stored its echo before the echo's run is claimed.
		key := ev.Subject
		// The condition reads only the event and vars: decided here, an
		// event it rejects is only counted (the first SkipSample of a page keep the
		// values the condition read, for the audit), costing no event row,
		// no run, no claim and no outcome write. An error is left to the
		// run, which dead-letters it with its context.
		if ev.Undecoded {
			// The trigger left the record to decode: first only what the
			// condition reads (into a map reused from event to event),
			// then the whole record for an event that runs.
			if dec == nil {
				dec, fields = new(jsondec.Decoder), map[string]any{}
			}
			if len(ev.Fields) > 0 && len(ev.Fields) == len(rt.whenFields) {
				// Decoded by the trigger as it checked the record
				// (PollRequest.Fields): not read again. Every field the
				// map can hold is set, or deleted when the record lacks it.
				for f, v := range ev.Fields {
					if v != connectors.NoField {
						fields[rt.whenFields[f]] = v
					} else {
						delete(fields, rt.whenFields[f])
					}
				}
				ev.Data = fields
			} else {
				for _, k := range rt.whenFields {
					delete(fields, k) // all it can hold
				}
				data, partial, err := dec.SharedFields(ev.Raw, rt.whenFields, fields)
				if err != nil {
					e.dropPrepared(p)
					return nil, fmt.Errorf("recipe %q: event %q: decoding its record: %w", rt.r.Name, ev.ID, err)
				}
				ev.Data, ev.Undecoded = data, false // a whole record (the fast path gave up)
				if partial {
					ev.Data, ev.Undecoded = fields, true
				}
			}
		}
		if w := rt.r.When; w != nil {
			env["trigger"] = ev.Data
			if ok, err := w.EvalBool(env); err == nil && !ok {
				var values json.RawMessage
				if sampled < SkipSample {
					values = conditionValues(rt.condReads, env)
					sampled++
				}
				skip := NewEvent{ID: ev.ID, Subject: ev.Subject, Fingerprint: ev.Fingerprint,
					Connector: connector, OrderingKey: key, Time: ev.Time, Skipped: true, Values: values}
				if len(ev.Raw) > 0 {
					// Its JSON as read is all an echo needs, at no cost (no
					// closure to encode it): the decoded record goes now
					// rather than with the page, most of which is skipped
					// events.
					skip.Data, ev.Data = ev.Raw, nil
				} else {
					skip.Encode = func() (json.RawMessage, error) { return eventData(*ev) }
				}
				adv.Events = append(adv.Events, skip)
				continue
			}
		}
		if ev.Undecoded {
			// It runs (or its condition failed, which its run reports):
			// the whole record. (The map of fields goes on to the next.)
			data, err := dec.SharedObject(ev.Raw)
			if err != nil {
				e.dropPrepared(p)
				return nil, fmt.Errorf("recipe %q: event %q: decoding its record: %w", rt.r.Name, ev.ID, err)
			}
			ev.Data, ev.Undecoded = data, false
		}
		// order_by only for the events that run. One it fails on, or that
		// it gives no key, is ordered by its subject (the default) and
		// said so: an error must not stop the trigger for every event.
		if ob := rt.r.Trigger.OrderBy; ob != nil {
			env["trigger"] = ev.Data
			v, err := ob.Eval(env)
			switch {
			case err != nil:
				e.log.Warn("order_by failed on an event; it is ordered by its subject", "recipe", rt.r.Name, "event", ev.ID, "subject", ev.Subject, "error", e.redact.String(err.Error()))
			case v == nil || v == "":
				e.log.Warn("order_by gave no key for an event; it is ordered by its subject", "recipe", rt.r.Name, "event", ev.ID, "subject", ev.Subject)
			default:
				key = recipes.PlainString(v)
			}
		}
		data, err := eventData(*ev)
		if err != nil {
			e.dropPrepared(p)
			return nil, fmt.Errorf("recipe %q: event %q: encoding its data: %w", rt.r.Name, ev.ID, err)
		}
		ne := NewEvent{ID: ev.ID, Subject: ev.Subject, Fingerprint: ev.Fingerprint, Connector: connector,
			OrderingKey: key, Time: ev.Time, Data: data}
		if paged {
			if fenv == nil {
				fenv = firstEnv(rt)
			}
			if p.firsts[i] = e.firstIntent(rt, fenv, ev.Data); p.firsts[i] != nil {
				ne.Intent = &p.firsts[i].rec
			}
		}
		adv.Events = append(adv.Events, ne)
		e.cache.put(cacheKey(rt.r.Name, ev.ID), ev.Data)
	}
	return p, nil
}

// commitPrepared advances the recipe's trigger by a prepared page and
// queues, or with page claims and starts, the runs of its new events.
func (e *Engine) commitPrepared(ctx context.Context, rt *recipeRT, p *preparedPage, page *pageOf) (fresh int, enq []Enqueued, err error) {
	adv := p.adv
	claimed := func() {}
	if page != nil {
		// In flight until its runs are tracked, or the advance failed.
		adv.Claim, claimed = page.set.claim()
		defer claimed()
	}
	enq, err = e.advance(ctx, rt.r.Name, adv)
	if err != nil {
		e.dropPrepared(p)
		return 0, nil, err
	}
	st := e.stats[rt.r.Name]
	queued := 0
	for i, q := range enq {
		switch {
		case q.RunID == 0 && q.Status == "":
			p.drop(&e.cache, i)
			st.duplicates.Add(1)
			continue
		case q.Status == RunQueued:
			queued++
		case q.Run != nil: // claimed with the page: run by the poller's runner
			e.pending.Add(1)
		default: // skipped (counted, with no run) or suppressed
			p.drop(&e.cache, i)
			st.count(q.Status)
			e.obs.RunFinished(rt.r.Name, q.Status, 0)
		}
		fresh++
	}
	st.events.Add(int64(fresh))
	e.obs.EventsSeen(rt.r.Name, fresh, len(enq)-fresh)
	e.pending.Add(int64(queued))
	if queued > 0 {
		e.wake()
	}
	if page != nil {
		var runs []pageClaim
		for i, q := range enq {
			if q.Run != nil {
				c := pageClaim{cr: q.Run, asked: adv.Claim.Now}
				if q.Journaled {
					c.first = p.firsts[i]
				}
				runs = append(runs, c)
			}
		}
		page.set.track(runs)
		claimed() // tracked: the renewals name them from now on
		page.set.start(runs, page.last)
	}
	return fresh, enq, nil
}

// encodeAdvance has a store that can encode a prepared page's Advance
// ahead of its commit do so.
func (e *Engine) encodeAdvance(rt *recipeRT, p *preparedPage) {
	if enc, ok := e.store.(AdvanceEncoder); ok {
		enc.EncodeAdvance(rt.r.Name, &p.adv) // on error Advance encodes again, and says why
	}
}

// eventData is the event's data as JSON: as the trigger read it, when it
// kept it, else encoded.
func eventData(ev connectors.Event) (json.RawMessage, error) {
	if len(ev.Raw) > 0 {
		return ev.Raw, nil
	}
	return jsonenc.Marshal(ev.Data)
}

// waitForRoom holds a trigger while too many of its runs wait. Other
// runners may finish the runs this one enqueued: after a second of
// waiting, the store's backlog (all runners) corrects the count.
func (e *Engine) waitForRoom(ctx context.Context) error {
	waited := time.Duration(0)
	for e.pending.Load() >= int64(e.opts.HighWater) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.room:
		case <-time.After(100 * time.Millisecond):
			waited += 100 * time.Millisecond
		}
		if waited >= time.Second {
			waited = 0
			n, err := e.store.Backlog(ctx, e.recipeNames())
			if err != nil {
				return err
			}
			if int64(n) < e.pending.Load() {
				e.pending.Store(int64(n))
			}
		}
	}
	return nil
}

// maxPagesCommitting is how many polled pages may be committing while
// the next is read. With one, the poller waited for the store about half
// of a file job: a page's advance queued behind the journal of the runs
// before it, and was encoded only once the page before had committed.
// (maxPagesInFlight bounds the pages running, after their commit.)
const maxPagesCommitting = 2

// committingPages are the polled pages whose enqueue (the store's commit of
// their events with their cursor) runs while the next page is read,
// oldest first. Each commits only once the one before it has, and not
// at all when it failed: the store's cursor moves page by page.
type committingPages struct {
	pages []*committingPage
}

// committingPage is one polled page being committed.
type committingPage struct {
	done   chan struct{} // closed when err is set
	err    error         // its enqueue's, or that a page before it failed
	cursor string        // the cursor after the page
	// states are the subject states the page writes: the next pages'
	// look-ups see them before they are committed.
	states map[string]string
}

// busy says whether a page is committing.
func (p *committingPages) busy() bool { return p != nil && len(p.pages) > 0 }

// cursor is the cursor after the newest page committing.
func (p *committingPages) cursor() string { return p.pages[len(p.pages)-1].cursor }

// states are the subject states of the pages committing, the newest
// page's where two write one subject; nil with none. One page's are
// its own map (read only), not a copy.
func (p *committingPages) states() map[string]string {
	var merged map[string]string
	copied := false
	for _, pg := range p.pages {
		switch {
		case len(pg.states) == 0:
		case merged == nil:
			merged = pg.states
		default:
			if !copied {
				merged, copied = maps.Clone(merged), true
			}
			maps.Copy(merged, pg.states)
		}
	}
	return merged
}

// wait returns the pages' first enqueue error, once; nil without a page.
func (p *committingPages) wait() error {
	if p == nil {
		return nil
	}
	var first error
	for len(p.pages) > 0 {
		if err := p.waitOldest(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// waitOldest waits for the oldest page committing and forgets it.
func (p *committingPages) waitOldest() error {
	pg := p.pages[0]
	<-pg.done
	p.pages[0] = nil
	p.pages = p.pages[1:]
	return pg.err
}

// start commits a page after the pages committing: encode is called at
// once, enqueue once they have committed, with the error of the first
// that failed (then it commits nothing and returns an error).
func (p *committingPages) start(cursor string, states []connectors.Record, encode func(), enqueue func(failedBefore error) error) {
	var before *committingPage
	if len(p.pages) > 0 {
		before = p.pages[len(p.pages)-1]
	}
	pg := &committingPage{done: make(chan struct{}), cursor: cursor}
	if len(states) > 0 {
		pg.states = make(map[string]string, len(states))
		for _, st := range states {
			pg.states[st.Subject] = st.State
		}
	}
	p.pages = append(p.pages, pg)
	go func() {
		encode()
		var failed error
		if before != nil {
			<-before.done
			failed = before.err
		}
		pg.err = enqueue(failed)
		close(pg.done)
	}()
}

// polled is what a poll tells its loop besides whether there is more.
type polled struct {
	began       time.Time     // when the poll began, before its request
	cursor      string        // the cursor after its page
	minInterval time.Duration // what the source asked to wait (PollResult.MinInterval)
}

// pollOnce fetches one page and enqueues it. With pages committing (the
// previous ones), it reads on from the newest one's cursor and commits
// this page only once they are committed: pages commit in order, each
// with its own cursor, so a crash leaves the store at a page's end. A
// page that says there is more is committed while the next
// one is read; the last one is committed before pollOnce returns. It
// tells at when it began and the cursor after its page.
func (e *Engine) pollOnce(ctx context.Context, rt *recipeRT, committing *committingPages, pages *pageSet, at *polled) (more bool, err error) {
	if err := e.waitForRoom(ctx); err != nil {
		return false, errors.Join(err, committing.wait())
	}
	name := rt.r.Name
	var cursor string
	if committing.busy() {
		cursor = committing.cursor()
	} else if cursor, err = e.store.Cursor(ctx, name); err != nil {
		return false, err
	}
	start := rt.r.Trigger.Start
	if start == "" {
		start = connectors.StartNow
	}
	began, clock := e.now(), time.Now()
	at.began = began
	defer func() {
		e.obs.PollFinished(name, err == nil, time.Since(clock))
		if ctx.Err() == nil {
			msg := ""
			if err != nil {
				msg = e.redact.String(err.Error())
			}
			e.watch.polled(rt, began, err == nil, more, msg)
		}
	}()
	// A poll's requests are retried where they fail, by the steps' policy,
	// as a step's are: a poll of many pages is not started over. A poll
	// loses nothing by waiting, so it tries at least the default attempts
	// even when the steps' policy gives up sooner.
	policy := e.opts.Retry
	policy.Attempts = max(policy.Attempts, defaultAttempts)
	pollCtx := connectors.WithRetry(e.callContext(ctx, name, rt.trigConn.connector), func(ctx context.Context, failed int, err error) bool {
		return failed < policy.Attempts && e.sleep(ctx, policyDelay(policy, failed, err)) == nil
	})
	res, err := rt.trigger.Poll(pollCtx, rt.trigConn.conn, connectors.PollRequest{
		Params: rt.params, Cursor: cursor, Start: start, Prior: priorState{store: e.store, name: name, committing: committing.states()}, Now: began, Recipe: name,
		DecodeLater: rt.whenFields != nil, Fields: rt.whenFields,
	})
	if res != nil {
		at.minInterval = res.MinInterval
	}
	// The page is evaluated while the pages before commit (the store's
	// single writer is then never idle for it); it is committed after
	// them.
	var next string
	var prep *preparedPage
	var perr error
	if err == nil && res != nil {
		next = res.Cursor
		at.cursor = next
		prep, perr = e.prepareEvents(rt, &next, res.States, res.Events, true)
	}
	// A page that fails, and the last page, wait for all the pages
	// committing; another waits only for room among them.
	var werr error
	if err != nil || res == nil || perr != nil || !res.More {
		werr = committing.wait()
	} else if len(committing.pages) >= maxPagesCommitting {
		if werr = committing.waitOldest(); werr != nil {
			committing.wait()
		}
	}
	if werr != nil {
		e.dropPrepared(prep)
		return false, fmt.Errorf("recipe %q: %w", name, werr)
	}
	if err != nil {
		return false, fmt.Errorf("recipe %q: polling %s.%s: %w", name, rt.r.Trigger.Connection, rt.r.Trigger.Operation, err)
	}
	if res == nil {
		return false, fmt.Errorf("recipe %q: polling %s.%s: no result and no error", name, rt.r.Trigger.Connection, rt.r.Trigger.Operation)
	}
	if perr != nil {
		return false, perr
	}
	st := e.stats[name]
	if res.Total > 0 {
		st.total.Store(int64(res.Total))
	}
	st.polls.Add(1)
	// The next page is read while this one commits; its look-ups of
	// subject states see this page's (committing). The last page is
	// committed before pollOnce returns.
	if res.More {
		committing.start(next, res.States, func() { e.encodeAdvance(rt, prep) }, func(failedBefore error) error {
			if failedBefore != nil {
				e.dropPrepared(prep)
				return failedBefore
			}
			return e.enqueuePage(ctx, rt, pages, prep, false)
		})
		return true, nil
	}
	if err := e.enqueuePage(ctx, rt, pages, prep, !res.More); err != nil {
		return false, fmt.Errorf("recipe %q: %w", name, err)
	}
	return res.More, nil
}

// pollLoop polls a recipe's trigger: again at once while there is more,
// then every interval. With once, it returns when the trigger is caught
// up; since is then when the one-shot run began (RunOnce), and a pass of
// another runner that began after it and ended caught up makes it return
// without polling (caughtup.go).
func (e *Engine) pollLoop(ctx context.Context, rt *recipeRT, once bool, since time.Time) error {
	failures := 0
	var lastStretch time.Duration // the source's last MinInterval above the interval, for the log
	var ledUntil time.Time
	// The pages committing while the next is read; the loop ends with none.
	committing := &committingPages{}
	// The runs of the pages it claimed, which it runs: the loop ends
	// when they have ended (or, on a stop, after the grace period).
	pages := e.newPageSet(ctx, rt)
	defer pages.wait(ctx)
	defer committing.wait()
	if once {
		// A one-shot runner gives the trigger up when it is caught up, so
		// that another one-shot runner waiting for it polls (cheaply) and
		// ends caught up too.
		defer func() {
			if !ledUntil.IsZero() {
				e.store.LeadPoll(context.WithoutCancel(ctx), rt.r.Name, e.opts.Owner, e.now().Add(-time.Millisecond))
			}
		}()
	}
	// The passes are shared through the store's MetaStore (nil: none).
	// passStart is when the pass under way began, zero when this runner
	// did not poll it from its start; atStart says the next poll starts
	// a pass; polledAny that this loop has polled.
	marks := e.caughtUps()
	var passStart time.Time
	atStart, polledAny := false, false
	// handedOver is set while a lead this runner handed over (balance.go)
	// is waiting for another runner to take it.
	handedOver := false
	for {
		// A runner polls only while it leads the recipe's poller: one
		// poller per trigger among the runners of a store; the others run
		// what it finds. A runner that runs until stopped tries again
		// every third of a lease (it takes over within a lease when the
		// leader dies); a one-shot runner waits for the lead, running runs
		// meanwhile, and then polls until caught up, unless another
		// runner's pass begun after it has ended caught up meanwhile.
		if e.now().After(ledUntil.Add(-2 * e.opts.Lease / 3)) {
			// The lead is renewed with this runner's pages committed: a
			// runner that loses it leaves nothing in flight.
			if err := committing.wait(); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				e.log.Warn("committing a polled page failed; polling it again", "recipe", rt.r.Name, "error", e.redact.String(err.Error()))
			}
			if !once && !ledUntil.IsZero() && e.balance.handOver(ctx, rt.r.Name) {
				// This runner polls more triggers than another live one:
				// it lets this one go, with its pages ended, and leaves it
				// a lease to be taken.
				pages.drain(ctx)
				if _, err := e.store.LeadPoll(ctx, rt.r.Name, e.opts.Owner, e.now().Add(-time.Millisecond)); err == nil {
					e.log.Info("handing the trigger's polling over to a runner that polls fewer triggers", "recipe", rt.r.Name)
					ledUntil, passStart, atStart, handedOver = time.Time{}, time.Time{}, false, true
					if e.sleep(ctx, e.opts.Lease) != nil {
						return nil
					}
					continue
				} else if ctx.Err() != nil {
					return nil
				}
			}
			until := e.now().Add(e.opts.Lease)
			lead, err := e.store.LeadPoll(ctx, rt.r.Name, e.opts.Owner, until)
			if ctx.Err() != nil {
				return nil
			}
			taken := lead && err == nil && ledUntil.IsZero()
			if lead && err == nil {
				ledUntil = until
			}
			if taken && handedOver {
				// Nobody took it in a lease: the other runners do not poll
				// this trigger, so this one keeps it.
				e.log.Info("no other runner took the trigger's polling; polling it again", "recipe", rt.r.Name)
				e.balance.keep(rt.r.Name)
			}
			if err == nil {
				handedOver = false
			}
			// Read after the election: a leader records its pass before it
			// gives the lead up, so a runner that takes the lead over from
			// a one-shot leader sees that leader's pass.
			var mark *caughtUp
			if marks != nil && (taken || (once && !polledAny && !lead)) {
				var rerr error
				if mark, _, rerr = readCaughtUp(ctx, marks, rt.r.Name); rerr != nil {
					if ctx.Err() != nil {
						return nil
					}
					e.log.Warn("reading the trigger's last caught-up poll failed", "recipe", rt.r.Name, "error", rerr)
				}
				if once && !polledAny && mark.covers(since, e.now()) {
					e.log.Debug("caught up: another runner polled the trigger after this run began", "recipe", rt.r.Name,
						"poller", mark.Owner, "its poll began", mark.Started)
					return nil
				}
			}
			if err != nil || !lead {
				if err != nil {
					e.log.Warn("electing the poller failed; retrying", "recipe", rt.r.Name, "error", err)
				}
				pages.drain(ctx)
				ledUntil, passStart, atStart = time.Time{}, time.Time{}, false
				wait := min(rt.interval, e.opts.Lease/3)
				if once {
					wait = min(wait, 100*time.Millisecond)
				}
				if e.sleep(ctx, wait) != nil {
					return nil
				}
				continue
			}
			if taken {
				e.log.Debug("polling: this runner leads the trigger", "recipe", rt.r.Name)
				// Whether its first poll starts a pass: the empty cursor, or
				// the one the last pass that ended caught up left.
				if marks != nil {
					cursor, err := e.store.Cursor(ctx, rt.r.Name)
					atStart = err == nil && (cursor == "" || (mark != nil && cursor == mark.Cursor))
				}
			}
		}
		var at polled
		more, err := e.pollOnce(ctx, rt, committing, pages, &at)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// A poll that fails commits nothing of its page: a pass that
			// was to start with it starts with the next.
			pages.drain(ctx)
			if once {
				// A poll is a read, retried by the steps' policy (the
				// service's client retries nothing): a one-shot run gives up
				// on the trigger only when a step would give up.
				failures++
				if failures >= e.opts.Retry.Attempts || !connectors.Retryable(err) {
					return err
				}
				e.log.Warn("poll failed; retrying", "recipe", rt.r.Name, "attempt", failures, "error", e.redact.String(err.Error()))
				if e.sleep(ctx, policyDelay(e.opts.Retry, failures, err)) != nil {
					return nil
				}
				continue
			}
			failures++
			wait := min(rt.interval, time.Duration(failures)*5*time.Second)
			e.log.Error("poll failed; retrying", "recipe", rt.r.Name, "in", wait, "error", e.redact.String(err.Error()))
			if e.sleep(ctx, wait) != nil {
				return nil
			}
			continue
		}
		failures = 0
		polledAny = true
		if atStart {
			passStart, atStart = at.began, false
		}
		if more {
			continue
		}
		// Caught up: the pass is recorded (before a one-shot runner gives
		// the lead up), and the next poll starts a pass.
		if marks != nil {
			if err := markCaughtUp(ctx, marks, rt.r.Name, e.opts.Owner, passStart, at.cursor); err != nil && ctx.Err() == nil {
				e.log.Warn("recording the caught-up poll failed", "recipe", rt.r.Name, "error", err)
			}
		}
		passStart, atStart = time.Time{}, true
		if once {
			return nil
		}
		// Caught up: the pages end, and nothing waits for the next poll.
		pages.drain(ctx)
		wait := rt.interval
		if at.minInterval > wait {
			// The source's quota allows no more: said when it changes.
			if at.minInterval != lastStretch {
				e.log.Info("polling less often than the trigger's interval, to stay within the service's documented limits", "recipe", rt.r.Name, "interval", rt.interval, "every", at.minInterval)
			}
			wait = at.minInterval
		}
		lastStretch = at.minInterval
		e.watch.paced(rt, at.minInterval)
		if e.sleep(ctx, wait) != nil {
			return nil
		}
	}
}

// scheduleLoop enqueues one event per cron tick. The last tick is the
// recipe's cursor; a tick missed while no runner was up is run once on
// start (missed ticks are coalesced).
func (e *Engine) scheduleLoop(ctx context.Context, rt *recipeRT) error {
	name := rt.r.Name
	last, err := e.store.Cursor(ctx, name)
	if err != nil {
		return err
	}
	now := e.now()
	next := rt.schedule.Next(now)
	if last != "" {
		t, err := time.Parse(time.RFC3339Nano, last)
		if err != nil {
			return fmt.Errorf("recipe %q: the schedule cursor %q is not a time: %w", name, last, err)
		}
		if missed := rt.schedule.Next(t); missed.Before(now) {
			next = missed
		}
	}
	for {
		if d := next.Sub(e.now()); d > 0 {
			if e.sleep(ctx, d) != nil {
				return nil
			}
		}
		if err := e.fireSchedule(ctx, rt, next); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e.log.Error("scheduling failed; retrying", "recipe", name, "error", err)
			if e.sleep(ctx, 5*time.Second) != nil {
				return nil
			}
			continue
		}
		after := next
		if n := e.now(); n.After(after) {
			after = n
		}
		next = rt.schedule.Next(after)
	}
}

// maxCoalescedTicks bounds the walk to the latest passed tick of a
// schedule that has not fired for a long time.
const maxCoalescedTicks = 1 << 20

// fireIfDue fires a schedule in a one-shot run when it is due: it never
// fired, or the tick after its last fire has passed. Missed ticks are
// coalesced into one, stamped with the latest tick that passed (now, for
// a first fire), so that the next one-shot run is due at the next tick.
func (e *Engine) fireIfDue(ctx context.Context, rt *recipeRT) error {
	last, err := e.store.Cursor(ctx, rt.r.Name)
	if err != nil {
		return err
	}
	now := e.now()
	at := now
	if last != "" {
		t, err := time.Parse(time.RFC3339Nano, last)
		if err != nil {
			return fmt.Errorf("recipe %q: the schedule cursor %q is not a time: %w", rt.r.Name, last, err)
		}
		at = rt.schedule.Next(t)
		if at.After(now) {
			return nil // not due
		}
		for i := 0; i < maxCoalescedTicks; i++ {
			n := rt.schedule.Next(at)
			if n.After(now) || n.IsZero() {
				break
			}
			at = n
		}
	}
	return e.fireSchedule(ctx, rt, at)
}

func (e *Engine) fireSchedule(ctx context.Context, rt *recipeRT, at time.Time) error {
	ev := connectors.ScheduleEvent(rt.r.Name, at)
	stamp := ev.Data["scheduled_time"].(string)
	_, err := e.enqueue(ctx, rt, &stamp, nil, []connectors.Event{ev})
	return err
}

// WebhookHandler serves the webhook triggers of the loaded recipes, one
// path each (POST). A delivery is verified, parsed and persisted before
// the 2xx; a repeated delivery is acknowledged and dropped.
func (e *Engine) WebhookHandler() http.Handler {
	mux := http.NewServeMux()
	for _, name := range e.recipeNames() {
		rt := e.recipes[name]
		if rt.mode != "webhook" {
			continue
		}
		mux.Handle("POST "+rt.hookPath, e.webhook(rt))
	}
	return mux
}

// WebhookPaths lists the listener paths by recipe.
func (e *Engine) WebhookPaths() map[string]string {
	out := map[string]string{}
	for name, rt := range e.recipes {
		if rt.mode == "webhook" {
			out[name] = rt.hookPath
		}
	}
	return out
}

func (e *Engine) webhook(rt *recipeRT) http.Handler {
	log := e.log.Named("webhook").With("recipe", rt.r.Name)
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	// Refusals are counted by the metrics; the log says one in
	// refusalLogEvery, with how many it left out, so that anyone able to
	// reach the endpoint cannot flood the log.
	var lastLogged, unlogged atomic.Int64
	refuse := func(w http.ResponseWriter, status int, msg string) {
		now := time.Now().UnixNano()
		if last := lastLogged.Load(); now-last >= int64(refusalLogEvery) && lastLogged.CompareAndSwap(last, now) {
			log.Warn("delivery refused", "status", status, "reason", msg, "refused_unlogged_before", unlogged.Swap(0))
		} else {
			unlogged.Add(1)
			log.Debug("delivery refused", "status", status, "reason", msg)
		}
		e.obs.WebhookDelivery(rt.r.Name, webhookOutcome(status))
		reply(w, status, map[string]string{"error": msg})
	}
	deliveries := &deliveryBatcher{e: e, rt: rt}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.stopping.Load() {
			refuse(w, http.StatusServiceUnavailable, "memberflow is stopping; deliver again later")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				refuse(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", MaxWebhookBody))
				return
			}
			// The cause (a timeout, a cut connection) names our sockets:
			// logged at debug, not told the sender.
			log.Debug("reading a delivery's body failed", "error", err)
			refuse(w, http.StatusBadRequest, "the body could not be read (cut short or too slow)")
			return
		}
		hook := rt.trigger.Webhook
		if err := hook.Verify(rt.trigConn.conn, r.Header, body, e.now()); err != nil {
			refuse(w, http.StatusUnauthorized, e.redact.String(err.Error()))
			return
		}
		began := e.now()
		events, err := hook.Parse(r.Context(), rt.trigConn.conn, body, connectors.WebhookRequest{Params: rt.params, Prior: priorState{store: e.store, name: rt.r.Name}})
		var storeErr *priorError
		if errors.As(err, &storeErr) {
			// Parsing needed the store (a subject's remembered state), which
			// failed: the delivery is sound. Its verified body is spooled,
			// parsed at replay; without a spool, the sender retries.
			if e.spool != nil {
				_, serr := e.spool.append([]spoolRecord{{Recipe: rt.r.Name, Received: began, Body: body}}, false)
				if serr == nil {
					e.kickSpool()
					e.watch.polled(rt, began, true, false, "")
					e.obs.WebhookDelivery(rt.r.Name, "spooled")
					reply(w, http.StatusOK, map[string]int{"spooled": 1})
					return
				}
				err = errors.Join(err, fmt.Errorf("spooling the delivery: %w", serr))
			}
			log.Error("parsing a delivery failed: the store did not answer", "error", e.redact.String(err.Error()))
			e.watch.polled(rt, began, false, false, e.redact.String(err.Error()))
			e.obs.WebhookDelivery(rt.r.Name, "unavailable")
			reply(w, http.StatusServiceUnavailable, map[string]string{"error": "the delivery could not be stored; deliver again"})
			return
		}
		if err != nil {
			refuse(w, http.StatusBadRequest, e.redact.String(err.Error()))
			return
		}
		fresh, spooled, err := deliveries.persist(r.Context(), events)
		if err != nil {
			log.Error("persisting a delivery failed", "error", e.redact.String(err.Error()))
			e.watch.polled(rt, began, false, false, e.redact.String(err.Error()))
			e.obs.WebhookDelivery(rt.r.Name, "unavailable")
			msg := "the delivery could not be stored; deliver again"
			if errors.Is(err, ErrSpoolFull) {
				msg = "the delivery could not be stored and the runner's delivery spool is full; deliver again"
			}
			reply(w, http.StatusServiceUnavailable, map[string]string{"error": msg})
			return
		}
		e.watch.polled(rt, began, true, false, "")
		if spooled {
			// Durable in the spool (fsynced): stored when the store takes
			// writes again. Duplicates are dropped then.
			e.obs.WebhookDelivery(rt.r.Name, "spooled")
			reply(w, http.StatusOK, map[string]int{"spooled": len(events)})
			return
		}
		outcome := "accepted"
		if fresh == 0 && len(events) > 0 {
			outcome = "duplicate"
		}
		e.obs.WebhookDelivery(rt.r.Name, outcome)
		reply(w, http.StatusOK, map[string]int{"accepted": fresh, "duplicates": len(events) - fresh})
	})
}

// refusalLogEvery is the least time between two logged refusals of one
// webhook trigger.
const refusalLogEvery = 10 * time.Second

// webhookOutcome names a refused delivery for metrics.
func webhookOutcome(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "bad_request"
}
