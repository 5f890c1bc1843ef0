package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/recipes"
)

// Page runs. The runner that polls a page claims the page's new runs in
// the advance's transaction (Advance.Claim) and runs them itself, step by
// step across the page rather than run by run: a step's calls for the
// whole page go out together (an action's batch form takes up to its Max
// inputs per call, so batches are as full as the page allows; other
// actions are called side by side), and the page's journal writes share
// one store call per step that needs an intent and one for the outcomes.
// No claim, no worker hand-off and no wait in a batcher per run.
//
// Each run keeps the run path's guarantees: an intent is durable before
// its write is sent, an outcome is written with the run's lease. A run
// whose call does not simply succeed (in doubt, or failed in a way a
// retry may mend) goes on alone by the run path (exec.go) from that step,
// exactly as a resumed run would: its intent is durable, so a write in
// doubt is settled, never sent twice.

// maxPagesInFlight bounds the pages of one trigger running at once: the
// next page is read, committed and started while the one before waits on
// its calls. Two run as fast as four or sixteen (the file job, the
// backfill benchmark) in less memory.
const maxPagesInFlight = 2

// pageSet runs the pages one poller claimed, and waits for them.
type pageSet struct {
	e   *Engine
	rt  *recipeRT
	ctx context.Context // the runs' parent: ends when the grace after a stop is over
	end context.CancelFunc
	sem chan struct{}

	// running counts the page goroutines (pages, and runs that left a
	// page); ended is closed, and replaced, each time one ends.
	mu      sync.Mutex
	running int
	ended   chan struct{}

	// carry holds, by step index, the runs a page left at a batch step
	// for the next page's call: a page cuts its batches at Max, and the
	// remainder goes with the next page's calls rather than as a call of
	// its own, so that a backfill sends as few batch calls as the paper
	// counts. The last page of a poll carries nothing, and takes all.
	carryMu sync.Mutex
	carry   map[int][]*pageRun
}

// carryOver leaves runs at step index for the next page.
func (ps *pageSet) carryOver(index int, runs []*pageRun) {
	ps.carryMu.Lock()
	defer ps.carryMu.Unlock()
	if ps.carry == nil {
		ps.carry = map[int][]*pageRun{}
	}
	ps.carry[index] = append(ps.carry[index], runs...)
}

// takeCarried returns the runs an earlier page left at step index.
func (ps *pageSet) takeCarried(index int) []*pageRun {
	ps.carryMu.Lock()
	defer ps.carryMu.Unlock()
	runs := ps.carry[index]
	delete(ps.carry, index)
	return runs
}

// flush runs the runs left for a next page now, as a last page.
func (ps *pageSet) flush() {
	if ps.carrying() {
		ps.start(nil, true)
	}
}

// drain returns once every page has ended and no run waits for a next
// page (true), or when ctx ends (false): the poller calls it before it
// waits (a poll caught up, failed, or the lead lost), since a page still
// running may leave runs for a page that is not coming.
func (ps *pageSet) drain(ctx context.Context) bool {
	for {
		if !ps.idle(ctx) {
			return false
		}
		if !ps.carrying() {
			return true
		}
		ps.flush()
	}
}

// carrying reports whether runs wait for a next page.
func (ps *pageSet) carrying() bool {
	ps.carryMu.Lock()
	defer ps.carryMu.Unlock()
	return len(ps.carry) > 0
}

func (e *Engine) newPageSet(ctx context.Context, rt *recipeRT) *pageSet {
	pctx, end := context.WithCancel(context.WithoutCancel(ctx))
	return &pageSet{e: e, rt: rt, ctx: pctx, end: end, sem: make(chan struct{}, maxPagesInFlight), ended: make(chan struct{})}
}

// begin and done bracket a page goroutine.
func (ps *pageSet) begin() {
	ps.mu.Lock()
	ps.running++
	ps.mu.Unlock()
}

func (ps *pageSet) done() {
	ps.mu.Lock()
	ps.running--
	close(ps.ended)
	ps.ended = make(chan struct{})
	ps.mu.Unlock()
}

// idle waits until no page goroutine runs; false when ctx ends first.
func (ps *pageSet) idle(ctx context.Context) bool {
	for {
		ps.mu.Lock()
		if ps.running == 0 {
			ps.mu.Unlock()
			return true
		}
		ended := ps.ended
		ps.mu.Unlock()
		select {
		case <-ended:
		case <-ctx.Done():
			return false
		}
	}
}

// pageClaim is a run claimed with its page, and its first write when its
// intent was journaled with the claim.
type pageClaim struct {
	cr    *ClaimedRun
	first *firstStep
	// asked is the claim's Now: the run is leased from then.
	asked time.Time
}

// firstStep is the first step of a run, evaluated at enqueue when it is a
// write with an intent: its input, and the intent's journal line.
type firstStep struct {
	input map[string]any
	rec   StepRecord
}

// firstIntent evaluates the recipe's first step for an event, when that
// step is a write whose intent is journaled before the call: its intent
// can then be journaled with the run's claim, in the page's transaction.
// Nil when the step is not such a write, its when is false or an
// expression fails: the page run decides then, as the run path does.
// env is the page's environment of first steps (firstEnv), reused from
// event to event: expressions read it and keep nothing.
func (e *Engine) firstIntent(rt *recipeRT, env recipes.Env, data map[string]any) *firstStep {
	if len(rt.steps) == 0 || !rt.steps[0].intent {
		return nil
	}
	st := rt.steps[0]
	env["trigger"] = data
	if st.s.When != nil {
		if ok, err := st.s.When.EvalBool(env); err != nil || !ok {
			return nil
		}
	}
	input, err := st.stepInput(env)
	if err != nil {
		return nil
	}
	return &firstStep{input: input, rec: StepRecord{Index: st.index, StepID: st.s.ID, Action: st.name,
		Status: StepStarted, Input: e.redactJSON(input), Started: e.now()}}
}

// firstEnv is an environment for firstIntent: the first step reads only
// the event and vars, and no step's output.
func firstEnv(rt *recipeRT) recipes.Env {
	return recipes.Env{"trigger": nil, "steps": map[string]any{}, "vars": rt.r.Vars}
}

// claim is the Advance.Claim of a page polled by this runner. The claim
// is in flight (claimBegin) until done is called: once its runs are
// tracked (track), or the advance failed.
func (ps *pageSet) claim() (req *ClaimRequest, done func()) {
	e := ps.e
	asked, done := e.claimBegin()
	return &ClaimRequest{Owner: e.opts.Owner, Now: asked, Lease: e.opts.Lease}, done
}

// track makes the claimed runs of a page runs this runner works on.
func (ps *pageSet) track(runs []pageClaim) {
	for _, c := range runs {
		ps.e.track(ps.ctx, c.cr, c.asked)
	}
}

// start runs the claimed runs of a page (tracked), once fewer than
// maxPagesInFlight pages run (the poller waits meanwhile).
func (ps *pageSet) start(runs []pageClaim, last bool) {
	if len(runs) == 0 && !(last && ps.carrying()) {
		return
	}
	e := ps.e
	if len(runs) > 0 {
		e.claimedLate(runs[0].asked)
	}
	ps.sem <- struct{}{}
	ps.begin()
	go func() {
		defer func() { <-ps.sem; ps.done() }()
		e.runPage(ps, runs, last)
	}()
}

// wait returns once every page run has an outcome or was abandoned. When
// ctx has ended (a stop), runs get the grace period, then are cancelled:
// they resume from their journal.
func (ps *pageSet) wait(ctx context.Context) {
	defer ps.end()
	if ctx.Err() == nil {
		ps.drain(context.Background())
		return
	}
	ps.e.endRetryWaits() // runs only waiting to retry need no grace
	grace, cancel := context.WithTimeout(context.Background(), ps.e.opts.Grace)
	defer cancel()
	if !ps.drain(grace) {
		ps.e.log.Warn("grace period over: cancelling page runs in flight; they resume from their journal", "recipe", ps.rt.r.Name)
		ps.end()
		ps.drain(context.Background())
	}
}

// pageRun is one run of a page.
type pageRun struct {
	rs     *runState
	began  time.Time
	cond   *bool
	values []byte
	// first is the first step's input and intent, journaled with the
	// claim; nil once used, or when it was not.
	first *firstStep
	// the current step's input and journal line, and whether its intent
	// is durable already
	input     map[string]any
	rec       StepRecord
	journaled bool
}

// pageEnd is a run of the page that has its outcome, to be written.
type pageEnd struct {
	pr     *pageRun
	status string
	err    error
}

// runPage runs the page's runs to their outcomes.
func (e *Engine) runPage(ps *pageSet, runs []pageClaim, last bool) {
	rt := ps.rt
	stats := e.stats[rt.r.Name]
	var live []*pageRun
	var ends []pageEnd
	// A page's runs and their states in two allocations, not two each.
	prs, rss := make([]pageRun, len(runs)), make([]runState, len(runs))
	for i, c := range runs {
		cr := c.cr
		rss[i] = runState{rt: rt, cr: cr, steps: map[string]any{}, stats: stats}
		prs[i] = pageRun{rs: &rss[i], began: time.Now(), first: c.first}
		pr := &prs[i]
		data, ok := e.cache.take(cacheKey(rt.r.Name, cr.EventID))
		if !ok {
			if err := json.Unmarshal(cr.Data, &data); err != nil {
				ends = append(ends, pageEnd{pr, RunDead, fmt.Errorf("recipe %q: event %q: decoding its data: %w", rt.r.Name, cr.EventID, err)})
				continue
			}
		}
		pr.rs.env = recipes.Env{"trigger": data, "steps": pr.rs.steps, "vars": rt.r.Vars}
		if cr.Echo {
			ends = append(ends, pageEnd{pr: pr, status: RunSuppressed})
			continue
		}
		if w := rt.r.When; w != nil {
			// Decided at enqueue already; evaluated again for the values
			// the audit keeps, as the run path does.
			ok, err := w.EvalBool(pr.rs.env)
			pr.values = conditionValues(rt.condReads, pr.rs.env)
			if err != nil {
				ends = append(ends, pageEnd{pr, RunDead, fmt.Errorf("recipe %q: when: %w", rt.r.Name, err)})
				continue
			}
			pr.cond = &ok
			if !ok {
				ends = append(ends, pageEnd{pr: pr, status: RunSkipped})
				continue
			}
		}
		live = append(live, pr)
	}
	for _, st := range rt.steps {
		live = e.pageStep(ps, st, live, &ends, last)
	}
	for _, pr := range live {
		ends = append(ends, pageEnd{pr: pr, status: RunSucceeded})
	}
	e.endPage(ends)
}

// pageStep runs one step for the page's live runs and returns those that
// go on to the next step. A run that ends is added to ends; one that
// leaves the page goes on by the run path.
func (e *Engine) pageStep(ps *pageSet, st *stepRT, live []*pageRun, ends *[]pageEnd, last bool) []*pageRun {
	rt := ps.rt
	next := live[:0:0]
	// failed ends a run whose step failed for good (its line in pr.rec),
	// unless the step says to continue.
	failed := func(pr *pageRun, err error) {
		pr.rs.pending = append(pr.rs.pending, pr.rec)
		if st.s.OnError == "continue" {
			e.log.Warn("step failed; continuing", "run", pr.rs.cr.ID, "error", err)
			pr.rs.steps[st.s.ID] = nil
			next = append(next, pr)
			return
		}
		*ends = append(*ends, pageEnd{pr, RunDead, err})
	}
	var callers []*pageRun
	for _, pr := range live {
		rs, cr := pr.rs, pr.rs.cr
		if cr.ctx.Err() != nil {
			e.concluded(cr.ctx, cr, "", fmt.Errorf("%w: %w", errAbandoned, context.Cause(cr.ctx)), pr.began)
			continue
		}
		if f := pr.first; f != nil && f.rec.Index == st.index {
			// Evaluated at enqueue, its intent journaled with the claim.
			pr.first = nil
			pr.input, pr.rec = f.input, f.rec
			pr.rec.RunID = cr.ID
			pr.journaled = true
			callers = append(callers, pr)
			continue
		}
		pr.journaled = false
		if st.s.When != nil {
			ok, err := st.s.When.EvalBool(rs.env)
			if err != nil {
				*ends = append(*ends, pageEnd{pr, RunDead, fmt.Errorf("recipe %q: step %q (%s): when: %w", rt.r.Name, st.s.ID, st.name, err)})
				continue
			}
			if !ok {
				now := e.now()
				rs.pending = append(rs.pending, StepRecord{RunID: cr.ID, Index: st.index, StepID: st.s.ID, Action: st.name, Status: StepSkipped, Started: now, Finished: now})
				rs.steps[st.s.ID] = nil
				next = append(next, pr)
				continue
			}
		}
		pr.rec = StepRecord{RunID: cr.ID, Index: st.index, StepID: st.s.ID, Action: st.name, Started: e.now()}
		input, err := st.stepInput(rs.env)
		if err != nil {
			pr.rec.Status, pr.rec.Error, pr.rec.Finished = StepFailed, e.redact.String(err.Error()), e.now()
			failed(pr, fmt.Errorf("recipe %q: step %q (%s): with: %w", rt.r.Name, st.s.ID, st.name, err))
			continue
		}
		pr.input = input
		pr.rec.Input = e.redactJSON(input)
		callers = append(callers, pr)
	}
	if st.intent && len(callers) > 0 {
		// The results of earlier steps and this write's intent, durable
		// before the write is sent: one store call for the page.
		var writes []JournalWrite
		var writers []*pageRun
		for _, pr := range callers {
			if pr.journaled {
				continue
			}
			intent := pr.rec
			intent.Status = StepStarted
			writes = append(writes, JournalWrite{Lease: pr.rs.cr.Lease(), Steps: append(pr.rs.pending, intent)})
			writers = append(writers, pr)
		}
		if len(writes) > 0 {
			errs := e.recordMany(ps.ctx, writes)
			failed := map[*pageRun]bool{}
			for i, pr := range writers {
				if errs[i] != nil {
					failed[pr] = true
					e.concluded(pr.rs.cr.ctx, pr.rs.cr, "", fmt.Errorf("%w: %w", errAbandoned, errs[i]), pr.began)
					continue
				}
				pr.rs.pending = pr.rs.pending[:0]
			}
			if len(failed) > 0 {
				sent := callers[:0]
				for _, pr := range callers {
					if !failed[pr] {
						sent = append(sent, pr)
					}
				}
				callers = sent
			}
		}
	}
	if b := st.action.Batch; b != nil {
		// The runs an earlier page left here go with this page's calls;
		// a remainder short of a full call waits for the next page.
		callers = append(ps.takeCarried(st.index), callers...)
		if n := len(callers) % max(1, b.Max); !last && n > 0 {
			ps.carryOver(st.index, callers[len(callers)-n:])
			callers = callers[:len(callers)-n]
		}
	}
	results := e.callPage(ps, st, callers)
	for i, pr := range callers {
		rs, cr, res := pr.rs, pr.rs.cr, results[i]
		pr.rec.Attempts = 1
		if res.err == nil {
			e.obs.StepAttempt(rt.r.Name, st.s.ID, st.name, "succeeded", res.took)
			rs.steps[st.s.ID] = e.stepSucceeded(rs, st, &pr.rec, res.res)
			rs.pending = append(rs.pending, pr.rec)
			next = append(next, pr)
			continue
		}
		if cr.ctx.Err() != nil {
			e.obs.StepAttempt(rt.r.Name, st.s.ID, st.name, "failed", res.took)
			e.concluded(cr.ctx, cr, "", fmt.Errorf("%w: %w", errAbandoned, res.err), pr.began)
			continue
		}
		if !errors.Is(res.err, connectors.ErrInDoubt) && !connectors.Retryable(res.err) {
			// Failed for good, as the run path would decide at once.
			e.obs.StepAttempt(rt.r.Name, st.s.ID, st.name, "failed", res.took)
			failed(pr, e.stepFailed(rs, st, &pr.rec, res.err))
			continue
		}
		e.obs.StepAttempt(rt.r.Name, st.s.ID, st.name, "retry", res.took)
		e.leavePage(ps, pr, st)
	}
	return next
}

// leavePage hands a run whose call may be mended to the run path, from
// the step that failed: with its intent durable, the write is settled
// before anything is sent again.
func (e *Engine) leavePage(ps *pageSet, pr *pageRun, st *stepRT) {
	var journal []StepRecord
	if st.intent {
		journal = make([]StepRecord, st.index+1)
		journal[st.index] = pr.rec
		journal[st.index].Status = StepStarted
	}
	ps.begin()
	go func() {
		defer ps.done()
		cr := pr.rs.cr
		// A run of the run path holds a worker's slot.
		select {
		case e.slots <- struct{}{}:
		case <-cr.ctx.Done():
			e.concluded(cr.ctx, cr, "", fmt.Errorf("%w: %w", errAbandoned, context.Cause(cr.ctx)), pr.began)
			return
		}
		defer func() { <-e.slots }()
		status, err := e.stepsFrom(cr.ctx, pr.rs, st.index, journal, pr.cond, pr.values)
		e.concluded(cr.ctx, cr, status, err, pr.began)
	}()
}

// pageCall is one run's call of a page step.
type pageCall struct {
	res  *connectors.Result
	err  error
	took time.Duration
}

// callPage calls the step's action for each caller: by its batch form,
// up to Max inputs a call, when it has one and more than one run calls;
// else one call each. Calls go out side by side, each holding one of the
// engine's Concurrency slots.
func (e *Engine) callPage(ps *pageSet, st *stepRT, callers []*pageRun) []pageCall {
	out := make([]pageCall, len(callers))
	if len(callers) == 0 {
		return out
	}
	var wg sync.WaitGroup
	run := func(fn func()) {
		e.slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-e.slots; wg.Done() }()
			fn()
		}()
	}
	timeout := func(pr *pageRun) (context.Context, context.CancelFunc) {
		ctx := pr.rs.cr.ctx
		if st.retry.Timeout > 0 {
			return context.WithTimeout(ctx, st.retry.Timeout)
		}
		return context.WithCancel(ctx)
	}
	if b := st.action.Batch; b != nil && len(callers) > 1 {
		bt := e.batcherOf(ps.rt, st)
		for lo := 0; lo < len(callers); lo += bt.max {
			hi := min(lo+bt.max, len(callers))
			run(func() {
				// send reads a batch's values (retries, send check, request
				// counts) from its first item's context, and only the end
				// of the others'. Without a step timeout a run's own
				// context ends when it would: no context of its own per
				// item (each costs a cancel context registered with the
				// run's, and a done channel).
				items := make([]batchItem, hi-lo)
				ptrs := make([]*batchItem, hi-lo)
				var cancels []context.CancelFunc
				if st.retry.Timeout > 0 {
					cancels = make([]context.CancelFunc, hi-lo)
				}
				for i, pr := range callers[lo:hi] {
					ctx := pr.rs.cr.ctx
					if cancels != nil {
						ctx, cancels[i] = context.WithTimeout(ctx, st.retry.Timeout)
					}
					if i == 0 {
						ctx = e.stepCallContext(ctx, pr.rs, st)
					}
					items[i] = batchItem{ctx: ctx, input: pr.input, state: itemSent}
					ptrs[i] = &items[i]
				}
				t0 := time.Now()
				bt.send(ptrs)
				took := time.Since(t0)
				for i := range items {
					out[lo+i] = pageCall{res: items[i].res, err: items[i].err, took: took}
					if cancels != nil {
						cancels[i]()
					}
				}
			})
		}
	} else {
		for i, pr := range callers {
			run(func() {
				ctx, cancel := timeout(pr)
				defer cancel()
				t0 := time.Now()
				callCtx := e.stepCallContext(ctx, pr.rs, st)
				if err := e.sendCheck(callCtx, st); err != nil {
					out[i] = pageCall{err: err}
					return
				}
				res, err := st.action.Run(callCtx, st.conn.conn, pr.input)
				out[i] = pageCall{res: res, err: err, took: time.Since(t0)}
			})
		}
	}
	wg.Wait()
	return out
}

// endPage writes the outcomes of the page's runs that ended, with their
// pending journal lines, in one store call, and counts them.
func (e *Engine) endPage(ends []pageEnd) {
	if len(ends) == 0 {
		return
	}
	writes := make([]JournalWrite, len(ends))
	fins := make([]*Completion, len(ends))
	for i, end := range ends {
		rs := end.pr.rs
		// Nothing is left to stop: a lease renewal must not judge a run
		// whose outcome the store may have committed (it would report it
		// lost); a lease truly lost meanwhile refuses the write. Nor must
		// it release the run before then: it is forgotten once written.
		e.unname(rs.cr)
		fins[i] = e.completion(rs, end.status, end.err, end.pr.cond, end.pr.values)
		writes[i] = JournalWrite{Lease: rs.cr.Lease(), Steps: rs.pending, Fin: fins[i]}
	}
	errs := e.recordMany(context.Background(), writes)
	for i, end := range ends {
		cr := end.pr.rs.cr
		if errs[i] != nil {
			e.concluded(cr.ctx, cr, "", fmt.Errorf("%w: %w", errAbandoned, errs[i]), end.pr.began)
			continue
		}
		e.ended(end.pr.rs, fins[i])
		e.concluded(cr.ctx, cr, end.status, nil, end.pr.began)
	}
}

// recordMany writes the journal writes of many runs: in one store call
// when the store is a BatchJournal, else one Record each. It returns one
// error per write.
func (e *Engine) recordMany(ctx context.Context, writes []JournalWrite) []error {
	start := time.Now()
	defer func() { e.obs.StoreWrite("record", time.Since(start)) }()
	if bj, ok := e.store.(BatchJournal); ok {
		errs := bj.RecordMany(context.WithoutCancel(ctx), writes)
		if len(errs) == len(writes) {
			return errs
		}
		err := fmt.Errorf("the store answered %d results for %d journal writes", len(errs), len(writes))
		errs = make([]error, len(writes))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	errs := make([]error, len(writes))
	for i, w := range writes {
		errs[i] = e.store.Record(context.WithoutCancel(ctx), w.Lease, w.Steps, w.Fin)
	}
	return errs
}
