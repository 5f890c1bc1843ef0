package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// begin freezes the recipe set and takes back the runs this owner held
// when it last stopped without finishing them (a crash).
func (e *Engine) begin(ctx context.Context) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errors.New("engine: already running")
	}
	e.started = true
	e.mu.Unlock()
	if len(e.recipes) == 0 {
		return errors.New("engine: no recipes")
	}
	e.mu.Lock()
	joined := e.joined
	e.mu.Unlock()
	if !joined {
		// Joining first: a live runner under this name refuses it, so
		// that its runs are not taken from it below.
		host, _ := os.Hostname()
		n, err := e.store.Join(ctx, RunnerInfo{Owner: e.opts.Owner, Host: host, PID: os.Getpid(), Started: e.now()})
		if err != nil {
			e.end()
			return err
		}
		e.mu.Lock()
		e.joined = true
		e.mu.Unlock()
		if n > 0 {
			e.log.Info("resuming runs of runners that died", "runs", n)
		}
	}
	n, err := e.store.ReleaseOwner(ctx, e.opts.Owner)
	if err != nil {
		e.end()
		return err
	}
	e.watch.start(e.now())
	if n > 0 {
		e.log.Info("resuming runs left unfinished by the previous run", "runs", n, "owner", e.opts.Owner)
	}
	return nil
}

func (e *Engine) end() {
	e.mu.Lock()
	e.started = false
	e.mu.Unlock()
}

// RunOnce polls every polling trigger until it has no more, runs every
// queued run (earlier ones included), and returns the summary. A schedule
// that is due fires once (fireIfDue); webhooks are not fed. When ctx ends it stops as Run does.
func (e *Engine) RunOnce(ctx context.Context) (*Summary, error) {
	return e.RunOncePolling(ctx, nil)
}

// RunOncePolling is RunOnce polling only the recipes poll accepts (nil:
// all); every queued run is still run. A later pass of `run --once` uses
// it to poll only the triggers that another recipe's writes may have
// given news.
//
// A trigger that another runner of the store polled while this one waited
// for it, in a pass that began after RunOncePolling was called and ended
// caught up, is not polled again: that pass enqueued what was there.
func (e *Engine) RunOncePolling(ctx context.Context, poll func(recipe string) bool) (*Summary, error) {
	since := e.now()
	if err := e.checkSpool(); err != nil {
		return nil, err
	}
	if err := e.begin(ctx); err != nil {
		return nil, err
	}
	defer e.end()
	// Deliveries the spool kept are stored first, and run in this pass.
	e.replaySpoolFirst(ctx)
	spoolCtx, stopSpool := context.WithCancel(ctx)
	spoolDone := make(chan struct{})
	go func() { defer close(spoolDone); e.spoolLoop(spoolCtx) }()
	defer func() { stopSpool(); <-spoolDone }()
	var feeding atomic.Int32
	var pollErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range e.recipeNames() {
		rt := e.recipes[name]
		var feed func() error
		switch {
		case rt.polls() && poll != nil && !poll(name):
			continue
		case rt.polls():
			feed = func() error { return e.pollLoop(ctx, rt, true, since) }
		case rt.mode == "schedule":
			feed = func() error { return e.fireIfDue(ctx, rt) }
		default:
			continue
		}
		feeding.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { feeding.Add(-1); e.wake() }()
			if err := feed(); err != nil {
				mu.Lock()
				pollErr = errors.Join(pollErr, err)
				mu.Unlock()
			}
		}()
	}
	stopAlerts := e.feedAlerts(ctx)
	err := e.dispatch(ctx, ctx.Done(), true, func() bool { return feeding.Load() > 0 })
	wg.Wait()
	stopAlerts()
	// What this pass dead-lettered (or left retrying) is fed now, and its
	// alerts run before the pass ends: a one-shot runner started by cron
	// must not hold them until its next start. Alert recipes are never
	// sources of alerts, so one round suffices; three bound it anyway.
	for round := 0; round < 3 && err == nil && ctx.Err() == nil; round++ {
		if e.watch.flush(ctx) == 0 {
			break
		}
		err = e.dispatch(ctx, ctx.Done(), true, func() bool { return false })
	}
	return e.Summary(), errors.Join(pollErr, err)
}

// Run feeds every trigger and runs runs until ctx ends; then it stops
// taking events, gives runs in flight the grace period to finish (the
// rest resume from their journal on the next start) and returns.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.checkSpool(); err != nil {
		return err
	}
	if err := e.begin(ctx); err != nil {
		return err
	}
	defer e.end()
	e.stopping.Store(false)
	// Deliveries the spool kept (a store outage, a crash) are stored
	// before the triggers start; the replayer then stores what the spool
	// takes while the store refuses.
	e.replaySpoolFirst(ctx)
	spoolDone := make(chan struct{})
	go func() { defer close(spoolDone); e.spoolLoop(ctx) }()
	defer func() { <-spoolDone }()
	var wg sync.WaitGroup
	for _, name := range e.recipeNames() {
		rt := e.recipes[name]
		switch {
		case rt.polls():
			wg.Add(1)
			go func() { defer wg.Done(); e.pollLoop(ctx, rt, false, time.Time{}) }()
		case rt.mode == "schedule":
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := e.scheduleLoop(ctx, rt); err != nil {
					e.log.Error("schedule stopped", "recipe", rt.r.Name, "error", err)
				}
			}()
		}
	}
	stopAlerts := e.feedAlerts(ctx)
	defer stopAlerts()
	stop := make(chan struct{})
	go func() {
		<-ctx.Done()
		e.stopping.Store(true)
		wg.Wait() // triggers finish their current transaction
		close(stop)
	}()
	err := e.dispatch(ctx, stop, false, nil)
	<-stop
	return err
}

type recipeStats struct {
	events, duplicates, polls, total atomic.Int64
	// requests counts the HTTP requests of the recipe's polls and runs
	// (retries and settlement look-ups included).
	requests                                        atomic.Int64
	succeeded, skipped, suppressed, dead, abandoned atomic.Int64
	// writes counts the successful calls of each writing action
	// (connection.operation) that changed something; unchanged those
	// that found the service already as asked.
	writes, unchanged map[string]*atomic.Int64
}

func (s *recipeStats) count(status string) {
	switch status {
	case RunSucceeded:
		s.succeeded.Add(1)
	case RunSkipped:
		s.skipped.Add(1)
	case RunSuppressed:
		s.suppressed.Add(1)
	case RunDead:
		s.dead.Add(1)
	}
}

// Summary is what a runner did since it started.
type Summary struct {
	Recipes []RecipeSummary `json:"recipes"`
	// Runs is the number of runs this runner brought to an outcome, and
	// P50 and P99 their execution time (from claim to outcome, store
	// writes included), to about 19 %.
	Runs int64         `json:"runs"`
	P50  time.Duration `json:"p50_ns"`
	P99  time.Duration `json:"p99_ns"`
	// Requests counts every HTTP request sent to a service: the recipes'
	// and OtherRequests, those no recipe sent (the connections' checks at
	// start, a token fetched outside a call).
	Requests      int64 `json:"requests"`
	OtherRequests int64 `json:"other_requests"`
}

// RecipeSummary counts one recipe's events and runs.
type RecipeSummary struct {
	Recipe     string `json:"recipe"`
	Events     int64  `json:"events"`     // new events seen
	Duplicates int64  `json:"duplicates"` // events seen before, dropped
	Total      int64  `json:"total,omitempty"`
	Succeeded  int64  `json:"succeeded"`
	Skipped    int64  `json:"skipped"`
	Suppressed int64  `json:"suppressed"`
	Dead       int64  `json:"dead"`
	// Abandoned runs stopped without an outcome (shutdown, store failure)
	// and resume from their journal.
	Abandoned int64 `json:"abandoned,omitempty"`
	// Writes counts the successful calls of each writing action
	// (connection.operation) that changed something; in a dry run, the
	// planned ones.
	Writes map[string]int64 `json:"writes"`
	// Unchanged counts the calls of actions that report no-ops
	// (ActionSpec.ReportsUnchanged) which found nothing to change.
	Unchanged map[string]int64 `json:"unchanged"`
	// Requests counts the HTTP requests the recipe's polls and runs sent
	// (retries, settlement look-ups and OAuth token fetches included),
	// and RequestsPerEvent is Requests over Events: for a recipe whose
	// trigger sees each member once, the requests per member.
	Requests         int64   `json:"requests"`
	RequestsPerEvent float64 `json:"requests_per_event"`
}

// Done is the number of runs with an outcome.
func (r RecipeSummary) Done() int64 { return r.Succeeded + r.Skipped + r.Suppressed + r.Dead }

// Summary returns the counts so far.
func (e *Engine) Summary() *Summary {
	s := &Summary{Runs: e.latency.count.Load(), P50: e.latency.quantile(0.5), P99: e.latency.quantile(0.99), OtherRequests: e.otherRequests.Load()}
	s.Requests = s.OtherRequests
	for _, name := range e.recipeNames() {
		st := e.stats[name]
		rs := RecipeSummary{Recipe: name, Events: st.events.Load(), Duplicates: st.duplicates.Load(), Total: st.total.Load(),
			Succeeded: st.succeeded.Load(), Skipped: st.skipped.Load(), Suppressed: st.suppressed.Load(),
			Dead: st.dead.Load(), Abandoned: st.abandoned.Load(), Writes: map[string]int64{}, Unchanged: map[string]int64{}}
		for k, v := range st.writes {
			rs.Writes[k] = v.Load()
		}
		rs.Requests = st.requests.Load()
		if rs.Events > 0 {
			rs.RequestsPerEvent = float64(rs.Requests) / float64(rs.Events)
		}
		s.Requests += rs.Requests
		for k, v := range st.unchanged {
			if n := v.Load(); n > 0 {
				rs.Unchanged[k] = n
			}
		}
		s.Recipes = append(s.Recipes, rs)
	}
	return s
}

// Dead is the number of runs dead-lettered, all recipes together.
func (s *Summary) Dead() int64 {
	var n int64
	for _, r := range s.Recipes {
		n += r.Dead
	}
	return n
}

// WriteText prints the summary as a table.
func (s *Summary) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECIPE\tEVENTS\tSUCCEEDED\tSKIPPED\tSUPPRESSED\tDEAD\tREQUESTS\tPER EVENT\tWRITES")
	for _, r := range s.Recipes {
		keys := make([]string, 0, len(r.Writes))
		for k := range r.Writes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var writes []string
		for _, k := range keys {
			w := fmt.Sprintf("%s=%d", k, r.Writes[k])
			if n := r.Unchanged[k]; n > 0 {
				w += fmt.Sprintf(" (+%d unchanged)", n)
			}
			writes = append(writes, w)
		}
		ws := strings.Join(writes, " ")
		if ws == "" {
			ws = "-"
		}
		perEvent := "-"
		if r.Events > 0 {
			perEvent = fmt.Sprintf("%.3f", r.RequestsPerEvent)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", r.Recipe, r.Events, r.Succeeded, r.Skipped, r.Suppressed, r.Dead, r.Requests, perEvent, ws)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if s.Runs > 0 {
		if _, err := fmt.Fprintf(w, "%d run(s), execution time p50 %s, p99 %s\n", s.Runs, twoDigits(s.P50), twoDigits(s.P99)); err != nil {
			return err
		}
	}
	if s.Requests > 0 {
		_, err := fmt.Fprintf(w, "%d API request(s): %d by the recipes, %d by the checks at start\n", s.Requests, s.Requests-s.OtherRequests, s.OtherRequests)
		return err
	}
	return nil
}

// Progress is a backfill's progress for one recipe.
type Progress struct {
	Recipe string
	Events int64 // events enqueued so far
	Done   int64 // runs finished so far
	Total  int64 // records the source reports; 0 when unknown
	At     time.Time
}

// Progress returns each recipe's progress.
func (e *Engine) Progress() []Progress {
	var out []Progress
	now := e.now()
	for _, r := range e.Summary().Recipes {
		out = append(out, Progress{Recipe: r.Recipe, Events: r.Events, Done: r.Done(), Total: r.Total, At: now})
	}
	return out
}

// feedAlerts feeds due alerts to the alert recipes every AlertEvery until
// stopped.
func (e *Engine) feedAlerts(ctx context.Context) (stop func()) {
	if !e.watch.listening() {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(e.opts.AlertEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				e.watch.flush(ctx)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// twoDigits rounds d to two significant digits: the histogram knows a
// run's time to about 19 %, and 2.097152s would claim more.
func twoDigits(d time.Duration) time.Duration {
	unit := time.Duration(1)
	for d/unit >= 100 {
		unit *= 10
	}
	return d.Round(unit)
}
