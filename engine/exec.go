package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/recipes"
)

// errAbandoned ends a run without an outcome: the store failed or the
// runner is stopping. A stopping runner gives the run back at once; else
// it stays claimed until its lease ends (or the same owner restarts).
// Either way it is then resumed from its journal.
var errAbandoned = errors.New("run abandoned")

// errStopped abandons a run that was only waiting to retry a step when
// the runner stopped: nothing of it is in flight, so it need not hold
// the stop for the grace period.
var errStopped = errors.New("the runner stopped while the run waited to retry; it resumes from its journal")

// dispatch claims runs and executes them until stop is closed, or, when
// drain is set, until nothing is claimable, nothing is in flight and
// feeding reports that the triggers are done. In-flight runs get the grace
// period to finish after stop; then their context is cancelled.
func (e *Engine) dispatch(ctx context.Context, stop <-chan struct{}, drain bool, feeding func() bool) error {
	runCtx, cancelRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRuns()
	e.waitsEnded.Store(false)
	n := e.opts.Concurrency
	// The slots are shared with the calls of page runs (pages.go).
	sem := e.slots
	var wg sync.WaitGroup
	names := e.recipeNames()

	renewStop := make(chan struct{})
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		t := time.NewTicker(e.opts.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-renewStop:
				return
			case <-t.C:
			case <-e.renewNow:
			}
			// Only the runs this runner works on are renewed. A run the
			// store says it holds and it does not know (a claim committed
			// whose answer was lost) is put back in the queue by the
			// renewal, and claimed again, by this runner or another, when
			// no claim in flight could have leased it (releaseBefore);
			// else it keeps its lease, and the next renewal frees it.
			// Renewed, a run is leased until asked plus a lease.
			asked, named, releaseBefore := e.renewal()
			ids := make([]int64, 0, len(named))
			for id := range named {
				ids = append(ids, id)
			}
			// Bounded: a store that stops answering (a partition: the
			// socket stays open, nothing comes back) must not hold the
			// renewals, which are what stops this runner acting on runs
			// another runner may take once their lease ends.
			rctx, cancel := context.WithTimeout(runCtx, e.opts.Lease/3)
			held, err := e.store.RenewLeases(rctx, e.opts.Owner, asked.Add(e.opts.Lease), ids, releaseBefore)
			cancel()
			if err != nil {
				e.log.Warn("renewing leases failed", "error", err)
				// A run unrenewed for most of a lease may be taken by
				// another runner any moment: stop acting on it now.
				e.dropStale()
				continue
			}
			e.renewed(named, held, asked)
			e.dropStale()
			e.giveBack(runCtx)
			// Runs the renewal put back in the queue are claimable now.
			e.wake()
		}
	}()
	defer func() { close(renewStop); <-renewDone }()

	// Runs are claimed in batches of up to n, ahead of the free workers,
	// so that a claim (a write) serves many runs; claimed runs wait in
	// ready, leased like the running ones.
	var ready []*ClaimedRun
	var claimErr error
	claim := func(limit int) (int, error) {
		asked, claimed := e.claimBegin()
		runs, err := e.store.Claim(runCtx, ClaimRequest{Owner: e.opts.Owner, Recipes: names, Limit: limit, Now: asked, Lease: e.opts.Lease})
		for _, cr := range runs {
			e.track(runCtx, cr, asked)
		}
		claimed()
		e.claimedLate(asked)
		ready = append(ready, runs...)
		return len(runs), err
	}
	start := func() {
		for len(ready) > 0 && len(sem) < n {
			cr := ready[0]
			ready = ready[1:]
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() {
					e.forget(cr)
					<-sem
					wg.Done()
					e.wake()
				}()
				e.execute(cr.ctx, cr)
			}()
		}
	}
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	// A store that signals new work lets idle runners look less often.
	var storeWake <-chan struct{}
	idleWait := 250 * time.Millisecond
	if w, ok := e.store.(Waker); ok {
		storeWake, idleWait = w.Wakeups(), time.Second
	}
	stopped := false
loop:
	for {
		select {
		case <-stop:
			stopped = true
			break loop
		default:
		}
		start()
		if room := 2*n - len(sem) - len(ready); room >= max(1, n/2) || (room > 0 && len(ready) == 0) {
			got, err := claim(room)
			if err != nil {
				claimErr = err
				e.log.Error("claiming runs failed", "error", err)
				if drain {
					break loop
				}
			} else {
				// A claim that failed and then worked again (the store
				// came back) is no error of the run as a whole.
				claimErr = nil
			}
			if got > 0 {
				continue
			}
			if drain && err == nil && len(sem) == 0 && len(ready) == 0 && !feeding() {
				// Feeding may have enqueued between the claim and now:
				// one more claim decides.
				got, err := claim(room)
				if err != nil {
					claimErr = err
					break loop
				}
				if got == 0 {
					break loop
				}
				continue
			}
		}
		// Nothing to do now: wait for a finished run, an enqueue, or a
		// moment (another runner's work, an expiring lease).
		idle.Reset(idleWait)
		select {
		case <-stop:
			stopped = true
			break loop
		case <-e.wakeCh:
		case <-storeWake:
		case <-idle.C:
		}
	}
	// Claimed runs that never started go back to the queue at once.
	for _, cr := range ready {
		if cr.ctx.Err() == nil {
			if err := e.store.Record(runCtx, cr.Lease(), nil, &Completion{RunID: cr.ID, Status: RunQueued}); err != nil && !errors.Is(err, ErrLeaseLost) {
				e.log.Warn("giving back a claimed run failed; it is taken again when its lease ends", "run", cr.ID, "error", err)
			}
		}
		e.forget(cr)
	}
	if stopped {
		if waiting, busy := e.endRetryWaits(); busy > 0 {
			e.log.Info("stopping: runs in flight get the grace period to finish; the rest resume from their journal at the next start",
				"in_flight", busy, "grace", e.opts.Grace, "waiting_to_retry_given_back", waiting)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(e.opts.Grace):
		e.log.Warn("grace period over: cancelling runs in flight; they resume from their journal", "grace", e.opts.Grace)
		cancelRuns()
		<-done
	}
	return claimErr
}

// errLeaseExpired cancels the runs of a runner that could not renew its
// leases for most of a lease period.
var errLeaseExpired = errors.New("the leases could not be renewed: another runner may take the runs")

// inflightRun is a run this runner works on.
type inflightRun struct {
	cancel  context.CancelCauseFunc
	waiting *atomic.Bool // the run's ClaimedRun.waiting
	leased  *atomic.Int64
}

// track makes cr a run this runner works on: its context (under
// parent) is cancelled when its lease is lost, and the renewals name
// it. asked is the claim's ClaimRequest.Now: the store leased the run
// until asked plus a lease, so its lease counts from then, however late
// the claim's answer came. A run tracked already (an earlier claim of
// it here, whose lease the store has since given to this one) stops.
func (e *Engine) track(parent context.Context, cr *ClaimedRun, asked time.Time) {
	cr.ctx, cr.cancel = context.WithCancelCause(parent)
	flags := new(runFlags) // one allocation for both
	cr.waiting, cr.leased = &flags.waiting, &flags.leased
	cr.leased.Store(asked.UnixNano())
	e.inflightMu.Lock()
	if old, ok := e.inflight[cr.ID]; ok {
		e.log.Warn("a run claimed again here while an earlier claim of it was worked on; stopping the earlier one", "run", cr.ID, "cause", ErrLeaseLost)
		old.cancel(ErrLeaseLost)
		e.ending[old.leased] = struct{}{}
	}
	e.inflight[cr.ID] = inflightRun{cancel: cr.cancel, waiting: cr.waiting, leased: cr.leased}
	e.inflightMu.Unlock()
}

// claimBegin marks a claim in flight and returns its Now: until done is
// called, which is once its runs are tracked (or it failed), renewals
// do not let the store release the runs leased from then on, which this
// runner may be about to work on without having named them.
func (e *Engine) claimBegin() (asked time.Time, done func()) {
	e.inflightMu.Lock()
	defer e.inflightMu.Unlock()
	// Read under the lock: a renewal that does not see this claim in
	// flight was asked at asked or before, and releases nothing leased
	// from then on (renewal).
	asked = e.now()
	e.claimSeq++
	seq := e.claimSeq
	e.claiming[seq] = asked
	var once sync.Once
	return asked, func() {
		once.Do(func() {
			e.inflightMu.Lock()
			delete(e.claiming, seq)
			e.inflightMu.Unlock()
		})
	}
}

// renewal is what a renewal asked now says: when it is asked, the runs
// this runner works on (tracked, by ID, each with its lease), and
// releaseBefore: the store may put back in the queue the runs it holds
// for this runner, unnamed, whose lease ends before then. Those are the
// runs whose claim (or last renewal) was asked before every claim in
// flight, every run still ending here and the renewal itself: a claim
// answered since was tracked before this, and one lost will never be
// worked on. A tenth of a lease is kept as a margin for the store's
// conversion of times to its own clock (Postgres measures its offset
// again every few seconds).
func (e *Engine) renewal() (asked time.Time, named map[int64]*atomic.Int64, releaseBefore time.Time) {
	e.inflightMu.Lock()
	defer e.inflightMu.Unlock()
	asked = e.now()
	named = make(map[int64]*atomic.Int64, len(e.inflight))
	for id, r := range e.inflight {
		named[id] = r.leased
	}
	oldest := asked.UnixNano()
	for _, at := range e.claiming {
		oldest = min(oldest, at.UnixNano())
	}
	for l := range e.ending {
		oldest = min(oldest, l.Load())
	}
	return asked, named, time.Unix(0, oldest).Add(e.opts.Lease - e.opts.Lease/10)
}

// runFlags are the atomics of a tracked run (ClaimedRun.waiting and
// leased).
type runFlags struct {
	waiting atomic.Bool
	leased  atomic.Int64
}

// claimedLate drops the runs of a claim asked for at asked whose answer
// came after most of their lease: nothing renewed them meanwhile (the
// renewals name only the runs the engine knows), and another runner may
// take them any moment. They are given back (concluded).
func (e *Engine) claimedLate(asked time.Time) {
	if e.now().Sub(asked) >= e.opts.Lease-e.opts.Lease/3 {
		e.dropStale()
	}
}

// renewed follows a renewal asked at asked that named the runs named:
// those the store holds are leased from asked on; the others were taken
// from this runner, which stops working on them (unless it claimed one
// again meanwhile: that claim is judged by the next renewal).
func (e *Engine) renewed(named map[int64]*atomic.Int64, held []int64, asked time.Time) {
	for _, id := range held {
		if l := named[id]; l != nil {
			if l.Load() < asked.UnixNano() {
				l.Store(asked.UnixNano())
			}
			delete(named, id)
		}
	}
	e.inflightMu.Lock()
	defer e.inflightMu.Unlock()
	for id, l := range named {
		if r, ok := e.inflight[id]; ok && r.leased == l {
			e.log.Warn("lost the lease of a run; stopping work on it", "run", id, "cause", ErrLeaseLost)
			r.cancel(ErrLeaseLost)
			delete(e.inflight, id)
		}
	}
}

// dropStale cancels every run in flight whose lease was last set (by its
// claim or a renewal) two thirds of a lease ago or more: another runner
// may take it before the next renewal could say so.
func (e *Engine) dropStale() {
	before := e.now().Add(-(e.opts.Lease - e.opts.Lease/3)).UnixNano()
	e.inflightMu.Lock()
	defer e.inflightMu.Unlock()
	for id, r := range e.inflight {
		if r.leased.Load() <= before {
			e.log.Warn("a run's lease was not renewed for most of a lease; stopping work on it", "run", id, "cause", errLeaseExpired)
			r.cancel(errLeaseExpired)
			delete(e.inflight, id)
			// Not named any more, but not released either until its
			// work has stopped (forget).
			e.ending[r.leased] = struct{}{}
		}
	}
}

// endRetryWaits, at a stop, abandons the runs in flight that only wait
// to retry (and, through waitsEnded, those that begin to), and counts
// them and all the runs in flight.
func (e *Engine) endRetryWaits() (waiting, busy int) {
	e.waitsEnded.Store(true)
	e.inflightMu.Lock()
	defer e.inflightMu.Unlock()
	for _, r := range e.inflight {
		if r.waiting != nil && r.waiting.Load() {
			r.cancel(errStopped)
			waiting++
		}
	}
	return waiting, len(e.inflight)
}

// retryWait waits d before retrying a step of cr. A runner that stops
// ends the wait at once and abandons the run: nothing of it is in flight.
func (e *Engine) retryWait(ctx context.Context, cr *ClaimedRun, d time.Duration) error {
	if cr.waiting != nil {
		cr.waiting.Store(true)
		defer cr.waiting.Store(false)
		if e.waitsEnded.Load() {
			cr.cancel(errStopped)
		}
	}
	return e.sleep(ctx, d)
}

// leaseHeld is the send check (connectors.SendCheck) of cr's writes.
// The renewals drop runs whose lease was lost or not renewed, but only
// when they run: a process frozen (SIGSTOP, a paused VM) past its leases
// wakes with every goroutine at once, and a call about to go out would
// be sent before the renewal learns that another runner took the run
// over. So a write is not sent once its run's lease has not been renewed
// for most of a lease: every run in that state is dropped, as the
// renewal would drop it, and resumes from its journal wherever it is
// claimed next.
func (e *Engine) leaseHeld(cr *ClaimedRun) error {
	if cr.leased == nil {
		return nil // not claimed by dispatch or a page: nothing renews it
	}
	if age := e.now().Sub(time.Unix(0, cr.leased.Load())); age >= e.opts.Lease-e.opts.Lease/3 {
		e.dropStale()
		select {
		case e.renewNow <- struct{}{}: // learn at once which runs are still held
		default:
		}
		return fmt.Errorf("not sent: the lease of run %d was last renewed %s ago: %w", cr.ID, age.Round(time.Millisecond), errLeaseExpired)
	}
	return nil
}

// giveBack puts back in the queue the runs abandoned while the store
// failed (giveBacks); one the store still cannot take is tried again
// after the next renewal.
func (e *Engine) giveBack(ctx context.Context) {
	e.inflightMu.Lock()
	leases := make([]Lease, 0, len(e.giveBacks))
	for _, l := range e.giveBacks {
		leases = append(leases, l)
	}
	e.inflightMu.Unlock()
	for _, l := range leases {
		if ctx.Err() != nil {
			return
		}
		if e.giveBackOne(ctx, l) {
			e.inflightMu.Lock()
			delete(e.giveBacks, l.RunID)
			e.inflightMu.Unlock()
		}
	}
}

// giveBackOne puts one run back in the queue under its lease, and
// reports whether that is settled: given back, or refused because the
// lease is no longer held (another runner took the run, or it ended).
// The try is bounded, so that a store that hangs does not hold the
// caller.
func (e *Engine) giveBackOne(ctx context.Context, l Lease) bool {
	tctx, cancel := context.WithTimeout(ctx, e.opts.Lease/3)
	defer cancel()
	err := e.store.Record(tctx, l, nil, &Completion{RunID: l.RunID, Status: RunQueued})
	switch {
	case err == nil:
		e.log.Info("gave a run abandoned while the store failed back to the queue", "run", l.RunID)
		return true
	case errors.Is(err, ErrLeaseLost):
		return true
	}
	return false
}

// forget ends the tracking of a run this runner no longer works on (a
// later claim of the run here is tracked on).
func (e *Engine) forget(cr *ClaimedRun) {
	e.inflightMu.Lock()
	if r, ok := e.inflight[cr.ID]; ok && r.leased == cr.leased {
		delete(e.inflight, cr.ID)
	}
	delete(e.ending, cr.leased)
	e.inflightMu.Unlock()
	if cr.cancel != nil {
		cr.cancel(errRunEnded)
	}
}

// unname stops naming cr in the renewals while its outcome is written,
// without letting them release it: a renewal that named a run whose
// outcome the store committed meanwhile would report it lost, and one
// that released it before its outcome committed would refuse the
// outcome. forget ends it.
func (e *Engine) unname(cr *ClaimedRun) {
	e.inflightMu.Lock()
	defer e.inflightMu.Unlock()
	if r, ok := e.inflight[cr.ID]; ok && r.leased == cr.leased {
		delete(e.inflight, cr.ID)
		e.ending[cr.leased] = struct{}{}
	}
}

// errRunEnded ends the context of a run this runner no longer works on
// (forget): its outcome is written, or being written, or it was
// abandoned.
var errRunEnded = errors.New("the run ended here")

// lost reports whether the run's lease was taken from this runner.
func lost(ctx context.Context, err error) bool {
	return errors.Is(err, ErrLeaseLost) || errors.Is(context.Cause(ctx), ErrLeaseLost) || errors.Is(context.Cause(ctx), errLeaseExpired)
}

// runState is one execution of a run.
type runState struct {
	rt      *recipeRT
	cr      *ClaimedRun
	env     recipes.Env
	steps   map[string]any
	pending []StepRecord // journal lines not yet written
	stats   *recipeStats
}

// execute runs one claimed run to an outcome, or abandons it.
func (e *Engine) execute(ctx context.Context, cr *ClaimedRun) {
	rt := e.recipes[cr.Recipe]
	st := e.stats[cr.Recipe]
	if rt == nil {
		return // claims are filtered by recipe: cannot happen
	}
	began := time.Now()
	var status string
	var err error
	if vrt, verr := e.runtimeFor(ctx, rt, cr); verr != nil {
		status, err = e.finish(ctx, &runState{rt: rt, cr: cr}, RunDead, verr, nil, nil)
	} else {
		status, err = e.runSteps(ctx, vrt, cr, st)
	}
	e.concluded(ctx, cr, status, err, began)
}

// concluded counts a run's outcome (its journal and outcome written), or
// leaves an abandoned run to resume from its journal.
func (e *Engine) concluded(ctx context.Context, cr *ClaimedRun, status string, err error, began time.Time) {
	st := e.stats[cr.Recipe]
	if errors.Is(err, errAbandoned) {
		st.abandoned.Add(1)
		// Judged before forget, which ends the run's context.
		cause := context.Cause(ctx)
		stopping := ctx.Err() != nil && !errors.Is(cause, errLeaseExpired) && !errors.Is(cause, errRunEnded)
		// No longer worked on here: no renewal judges it.
		e.forget(cr)
		switch {
		case errors.Is(err, ErrLeaseLost) || errors.Is(cause, ErrLeaseLost):
			// Another runner has it: nothing more to write.
			e.log.Warn("run taken over by another runner; stopped", "run", cr.ID, "recipe", cr.Recipe)
		case stopping:
			// Stopping: give the run back now rather than at the end of its
			// lease, so that another runner can take it. If the store is
			// gone too, the lease does it.
			e.log.Debug("run abandoned; it resumes from its journal", "run", cr.ID, "recipe", cr.Recipe, "error", err)
			e.store.Record(context.WithoutCancel(ctx), cr.Lease(), nil, &Completion{RunID: cr.ID, Status: RunQueued})
		default:
			// The store failed (a journal write, or the renewals for most
			// of a lease), so the run may still be leased to this runner.
			// The renewals no longer name it, so its lease ends; but it
			// goes back to the queue as soon as the store answers (unless
			// another runner took it meanwhile), not a lease later.
			e.log.Warn("run abandoned because the store failed; it goes back to the queue once the store answers, and resumes from its journal",
				"run", cr.ID, "recipe", cr.Recipe, "error", e.redact.String(err.Error()))
			if !e.giveBackOne(context.WithoutCancel(ctx), cr.Lease()) {
				e.inflightMu.Lock()
				e.giveBacks[cr.ID] = cr.Lease()
				e.inflightMu.Unlock()
			}
		}
		return
	}
	took := time.Since(began)
	e.latency.observe(took)
	st.count(status)
	e.obs.RunFinished(cr.Recipe, status, took)
	e.finishedPending()
}

func (e *Engine) runSteps(ctx context.Context, rt *recipeRT, cr *ClaimedRun, stats *recipeStats) (string, error) {
	data, ok := e.cache.take(cacheKey(cr.Recipe, cr.EventID))
	if !ok {
		if err := json.Unmarshal(cr.Data, &data); err != nil {
			return e.finish(ctx, &runState{cr: cr}, RunDead, fmt.Errorf("recipe %q: event %q: decoding its data: %w", rt.r.Name, cr.EventID, err), nil, nil)
		}
	}
	rs := &runState{rt: rt, cr: cr, steps: map[string]any{}, stats: stats}
	rs.env = recipes.Env{"trigger": data, "steps": rs.steps, "vars": rt.r.Vars}

	var journal []StepRecord
	if cr.Attempts > 1 {
		var err error
		if journal, err = e.store.Steps(ctx, cr.ID); err != nil {
			return "", fmt.Errorf("%w: %v", errAbandoned, err)
		}
	}
	if len(journal) == 0 && cr.Echo {
		return e.finish(ctx, rs, RunSuppressed, nil, nil, nil)
	}
	var cond *bool
	var values []byte
	if w := rt.r.When; w != nil {
		ok, err := w.EvalBool(rs.env)
		values = conditionValues(rt.condReads, rs.env)
		if err != nil {
			return e.finish(ctx, rs, RunDead, fmt.Errorf("recipe %q: when: %w", rt.r.Name, err), nil, values)
		}
		cond = &ok
		if !ok {
			return e.finish(ctx, rs, RunSkipped, nil, cond, values)
		}
	}
	return e.stepsFrom(ctx, rs, 0, journal, cond, values)
}

// stepsFrom runs rs's steps from index from on and finishes the run.
// journal holds the journal's line of each step, by index: a step with a
// line is resumed from it (skipped when done, settled when in doubt).
func (e *Engine) stepsFrom(ctx context.Context, rs *runState, from int, journal []StepRecord, cond *bool, values []byte) (string, error) {
	rt, cr := rs.rt, rs.cr
	for _, st := range rt.steps[from:] {
		var prior *StepRecord
		if st.index < len(journal) {
			prior = &journal[st.index]
			if prior.StepID != st.s.ID {
				return e.finish(ctx, rs, RunDead, fmt.Errorf("recipe %q: step %q: the journal has step %q at this place: the recipe changed while the run was in flight; replay it once the change is intended", rt.r.Name, st.s.ID, prior.StepID), cond, values)
			}
		}
		if prior != nil {
			switch prior.Status {
			case StepSucceeded:
				if err := decodeOutput(prior.Output, st, rs.steps); err != nil {
					return e.finish(ctx, rs, RunDead, err, cond, values)
				}
				continue
			case StepSkipped:
				rs.steps[st.s.ID] = nil
				continue
			case StepFailed:
				if st.s.OnError == "continue" {
					rs.steps[st.s.ID] = nil
					continue
				}
				prior = nil // a replayed failure: run it again
			}
		}
		if prior == nil && st.s.When != nil {
			ok, err := st.s.When.EvalBool(rs.env)
			if err != nil {
				return e.finish(ctx, rs, RunDead, fmt.Errorf("recipe %q: step %q (%s): when: %w", rt.r.Name, st.s.ID, st.name, err), cond, values)
			}
			if !ok {
				now := e.now()
				rs.pending = append(rs.pending, StepRecord{RunID: cr.ID, Index: st.index, StepID: st.s.ID, Action: st.name, Status: StepSkipped, Started: now, Finished: now})
				rs.steps[st.s.ID] = nil
				continue
			}
		}
		rec, out, err := e.step(ctx, rs, st, prior)
		if errors.Is(err, errAbandoned) {
			return "", err
		}
		if err != nil {
			if st.s.OnError == "continue" {
				e.log.Warn("step failed; continuing", "run", cr.ID, "error", err)
				rs.pending = append(rs.pending, rec)
				rs.steps[st.s.ID] = nil
				continue
			}
			rs.pending = append(rs.pending, rec)
			return e.finish(ctx, rs, RunDead, err, cond, values)
		}
		rs.pending = append(rs.pending, rec)
		rs.steps[st.s.ID] = out
	}
	return e.finish(ctx, rs, RunSucceeded, nil, cond, values)
}

func decodeOutput(raw json.RawMessage, st *stepRT, steps map[string]any) error {
	var out any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return fmt.Errorf("step %q (%s): decoding its journaled output: %w", st.s.ID, st.name, err)
		}
	}
	steps[st.s.ID] = out
	return nil
}

// finish writes the pending journal lines and the run's outcome in one
// transaction.
func (e *Engine) finish(ctx context.Context, rs *runState, status string, runErr error, cond *bool, values []byte) (string, error) {
	fin := e.completion(rs, status, runErr, cond, values)
	if ctx.Err() != nil && lost(ctx, nil) {
		return "", fmt.Errorf("%w: %w", errAbandoned, context.Cause(ctx))
	}
	if err := e.record(context.WithoutCancel(ctx), rs.cr.Lease(), rs.pending, fin); err != nil {
		return "", fmt.Errorf("%w: %w", errAbandoned, err)
	}
	e.ended(rs, fin)
	return status, nil
}

// completion is the outcome of a run ending with status; a dead run's
// error is logged, redacted.
func (e *Engine) completion(rs *runState, status string, runErr error, cond *bool, values []byte) *Completion {
	fin := &Completion{RunID: rs.cr.ID, Status: status, Condition: cond, Values: values, Finished: e.now()}
	if rs.rt != nil {
		fin.Version = rs.rt.version
	}
	if runErr != nil {
		fin.Error = e.redact.String(runErr.Error())
		e.log.Error("run dead-lettered", "run", rs.cr.ID, "recipe", rs.cr.Recipe, "event", rs.cr.EventID, "error", fin.Error)
	}
	return fin
}

// ended follows a run's outcome once it is durable: the run is no longer
// this runner's (no renewal judges it), and a dead letter feeds the
// alerts.
func (e *Engine) ended(rs *runState, fin *Completion) {
	e.forget(rs.cr)
	if fin.Status == RunDead {
		var step, action string
		for _, p := range rs.pending {
			if p.Status == StepFailed || p.Status == StepInDoubt {
				step, action = p.StepID, p.Action
			}
		}
		e.watch.runDead(e.recipes[rs.cr.Recipe], rs.cr.ID, step, action, fin.Error, fin.Finished)
	}
	rs.pending = rs.pending[:0]
}

// flush makes the pending journal lines durable before an action call.
func (e *Engine) flush(ctx context.Context, rs *runState, extra ...StepRecord) error {
	recs := append(rs.pending, extra...)
	if len(recs) == 0 {
		return nil
	}
	if ctx.Err() != nil && lost(ctx, nil) {
		return fmt.Errorf("%w: %w", errAbandoned, context.Cause(ctx))
	}
	if err := e.record(context.WithoutCancel(ctx), rs.cr.Lease(), recs, nil); err != nil {
		return fmt.Errorf("%w: %w", errAbandoned, err)
	}
	rs.pending = rs.pending[:0]
	return nil
}

// step executes one step: intent, call, retries, settlement. It returns
// the journal line of the outcome (not yet written) and the output. An
// error means the step failed (the line says how), unless it is
// errAbandoned.
func (e *Engine) step(ctx context.Context, rs *runState, st *stepRT, prior *StepRecord) (StepRecord, any, error) {
	rt, cr := rs.rt, rs.cr
	where := fmt.Sprintf("recipe %q: step %q (%s)", rt.r.Name, st.s.ID, st.name)
	rec := StepRecord{RunID: cr.ID, Index: st.index, StepID: st.s.ID, Action: st.name, Started: e.now()}
	input, err := st.stepInput(rs.env)
	if err != nil {
		rec.Status, rec.Error, rec.Finished = StepFailed, e.redact.String(err.Error()), e.now()
		return rec, nil, fmt.Errorf("%s: with: %w", where, err)
	}
	rec.Input = e.redactJSON(input)
	if prior != nil {
		rec.Attempts = prior.Attempts
		rec.Started = prior.Started
	}
	if st.retry.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, st.retry.Timeout)
		defer cancel()
	}
	callCtx := e.stepCallContext(ctx, rs, st)
	// attempt reports one call; retrying ones feed the step_retrying alert.
	attempt := func(outcome string, took time.Duration, err error) {
		e.obs.StepAttempt(rt.r.Name, st.s.ID, st.name, outcome, took)
		if outcome == "retry" {
			e.watch.stepRetrying(rt, st, cr.ID, rec.Attempts, e.redact.String(err.Error()), e.now())
		}
	}
	fail := func(err error) (StepRecord, any, error) {
		if ctx.Err() != nil && context.Cause(ctx) != context.DeadlineExceeded {
			// Stopping, not failing: leave the journal as it is.
			return rec, nil, fmt.Errorf("%w: %v", errAbandoned, err)
		}
		return rec, nil, e.stepFailed(rs, st, &rec, err)
	}
	succeed := func(res *connectors.Result) (StepRecord, any, error) {
		return rec, e.stepSucceeded(rs, st, &rec, res), nil
	}

	settle := prior != nil && (prior.Status == StepStarted || prior.Status == StepInDoubt)
	if !settle {
		// Results of earlier steps are durable before this one acts; a
		// write's intent is durable before it is sent.
		var intent []StepRecord
		if st.intent {
			rec.Status = StepStarted
			intent = append(intent, rec)
		}
		if err := e.flush(ctx, rs, intent...); err != nil {
			return rec, nil, err
		}
	}
	backoff := st.retry.Backoff
	for {
		if settle {
			t0 := time.Now()
			res, happened, err := e.settle(callCtx, st, input)
			took := time.Since(t0)
			switch {
			case err != nil:
				rec.Status = StepInDoubt
				if errors.Is(err, errNoSettle) {
					// Replaying this run re-sends the write: the operator
					// has checked the service.
					attempt("in_doubt", took, err)
					return fail(err)
				}
				if connectors.Retryable(err) && rec.Attempts < st.retry.Attempts {
					attempt("retry", took, err)
					rec.Attempts++
					if werr := e.retryWait(ctx, cr, retryDelay(err, &backoff, st.retry.MaxBackoff)); werr != nil {
						return fail(err)
					}
					continue
				}
				attempt("in_doubt", took, err)
				r, _, ferr := fail(fmt.Errorf("settling an in-doubt write: %w", err))
				if !errors.Is(ferr, errAbandoned) {
					r.Status = StepInDoubt // a replay settles again
				}
				return r, nil, ferr
			case happened:
				e.log.Debug("in-doubt write settled: it happened", "run", cr.ID, "step", st.s.ID)
				attempt("succeeded", took, nil)
				return succeed(res)
			}
			settle = false
			if rec.Attempts >= st.retry.Attempts {
				return fail(fmt.Errorf("the write was in doubt %d times and did not happen: giving up", rec.Attempts))
			}
			e.log.Debug("in-doubt write settled: it did not happen; sending", "run", cr.ID, "step", st.s.ID)
		}
		rec.Attempts++
		t0 := time.Now()
		res, err := e.call(callCtx, rt, st, input)
		took := time.Since(t0)
		if err == nil {
			attempt("succeeded", took, nil)
			return succeed(res)
		}
		if ctx.Err() != nil {
			attempt("failed", took, err)
			return fail(err)
		}
		inDoubt := errors.Is(err, connectors.ErrInDoubt)
		if inDoubt && (st.action.Settle != nil || !st.action.Idempotent) {
			// Settle at once: a look-up, not a re-send (without a Settle,
			// settle dead-letters the run with the reason).
			attempt("in_doubt", took, err)
			settle = true
			continue
		}
		if !inDoubt && !connectors.Retryable(err) {
			attempt("failed", took, err)
			return fail(err)
		}
		if rec.Attempts >= st.retry.Attempts {
			attempt("failed", took, err)
			return fail(fmt.Errorf("giving up after %d attempts: %w", rec.Attempts, err))
		}
		attempt("retry", took, err)
		e.log.Debug("step failed; retrying", "run", cr.ID, "step", st.s.ID, "attempt", rec.Attempts, "error", e.redact.String(err.Error()))
		if werr := e.retryWait(ctx, cr, retryDelay(err, &backoff, st.retry.MaxBackoff)); werr != nil {
			return fail(err)
		}
		// A write that must not be sent twice may have landed before a
		// later request of the same action failed (an action is often a
		// look-up, a write and a read-back): look before sending again.
		settle = st.intent && st.action.Settle != nil
	}
}

// stepCallContext is the context of a step's calls for one run: its
// requests are counted for the recipe, and the step's policy decides
// each request's retries in the HTTP runtime (a failed request is sent
// again where it failed, not with the whole action, and at most the
// policy's attempts); retries feed the step_retrying alert.
func (e *Engine) stepCallContext(ctx context.Context, rs *runState, st *stepRT) context.Context {
	rt, cr := rs.rt, rs.cr
	callCtx := connectors.WithSendCheck(e.callContext(ctx, rt.r.Name, st.conn.connector), func() error { return e.leaseHeld(cr) })
	return connectors.WithRetry(callCtx, func(ctx context.Context, failed int, err error) bool {
		if failed >= st.retry.Attempts {
			return false
		}
		e.obs.StepAttempt(rt.r.Name, st.s.ID, st.name, "retry", 0)
		// failed requests so far count as the step's attempts for the
		// step_retrying alert.
		e.watch.stepRetrying(rt, st, cr.ID, failed, e.redact.String(err.Error()), e.now())
		return e.retryWait(ctx, cr, policyDelay(st.retry, failed, err)) == nil
	})
}

// stepSucceeded completes rec with a successful call's result, counts the
// write, and returns the step's output.
func (e *Engine) stepSucceeded(rs *runState, st *stepRT, rec *StepRecord, res *connectors.Result) any {
	rec.Status, rec.Finished, rec.Error = StepSucceeded, e.now(), ""
	var out any
	if res != nil {
		out = res.Output
		for _, w := range res.Wrote {
			rec.Wrote = append(rec.Wrote, Echo{Connector: st.conn.connector, Subject: w.Subject, Fingerprint: w.State})
		}
	}
	rec.Output = e.redactJSON(out)
	if !st.action.ReadOnly {
		// A call that found the service already as asked changed
		// nothing: counted apart, so a summary says what changed.
		if st.action.ReportsUnchanged && (res == nil || len(res.Wrote) == 0) {
			rs.stats.unchanged[st.name].Add(1)
		} else {
			rs.stats.writes[st.name].Add(1)
		}
	}
	return out
}

// stepFailed completes rec with the error of a step that gives up and
// returns the step's error.
func (e *Engine) stepFailed(rs *runState, st *stepRT, rec *StepRecord, err error) error {
	rec.Status, rec.Finished = StepFailed, e.now()
	rec.Error = e.redact.String(err.Error())
	var api *connectors.APIError
	if errors.As(err, &api) {
		rec.Output = e.redactJSON(map[string]any{"status": api.Status, "code": api.Code, "message": api.Message})
	}
	return fmt.Errorf("recipe %q: step %q (%s): %w", rs.rt.r.Name, st.s.ID, st.name, err)
}

// defaultAttempts is the step policy's attempts when nothing sets them.
const defaultAttempts = 8

// policyDelay is the wait after a request's failed-th failure: the
// policy's backoff doubled per failure, with jitter, or longer when the
// service said how long to wait.
func policyDelay(p recipes.RetryPolicy, failed int, err error) time.Duration {
	d := p.Backoff
	for i := 1; i < failed && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return retryDelay(err, &d, p.MaxBackoff)
}

// retryDelay is the step's next backoff, or longer when the service said
// how long to wait (Retry-After, or its rate-limit window).
func retryDelay(err error, backoff *time.Duration, max time.Duration) time.Duration {
	d := jitter(backoff, max)
	var api *connectors.APIError
	if errors.As(err, &api) && api.RetryAfter > d {
		d = api.RetryAfter
	}
	return d
}

var errNoSettle = errors.New("the write may have happened and the action has no look-up to settle it: check the service, then replay the run to send it again")

func (e *Engine) settle(ctx context.Context, st *stepRT, input map[string]any) (*connectors.Result, bool, error) {
	if st.action.Settle == nil {
		return nil, false, errNoSettle
	}
	return st.action.Settle(ctx, st.conn.conn, input)
}

// jitter returns the next delay, between half and all of *d, and doubles
// *d up to max.
func jitter(d *time.Duration, max time.Duration) time.Duration {
	cur := *d
	if cur > max {
		cur = max
	}
	*d = min(cur*2, max)
	return cur/2 + rand.N(cur/2+1)
}

func (e *Engine) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
