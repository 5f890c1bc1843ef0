package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// The engine's own events: the triggers of the built-in memberflow
// connector, fed to alert recipes (see watch).
const (
	CauseRunFailed      = "run_failed"
	CauseStepRetrying   = "step_retrying"
	CauseTriggerFailing = "trigger_failing"
	CauseAuthFailing    = "auth_failing"
	CauseRateLimited    = "rate_limited"
	CauseRecovered      = "recovered"
)

// Defaults of the alert triggers' parameters.
const (
	defaultAlertWindow   = 15 * time.Minute
	defaultRetryAttempts = 3
	defaultFailingFor    = 5 * time.Minute
	defaultLimitedFor    = time.Minute
	maxAlertRunIDs       = 10
)

// alertParams are an alert recipe's trigger parameters, parsed once.
type alertParams struct {
	cause    string
	window   time.Duration
	recipes  map[string]bool // nil: every recipe that is not an alert
	attempts int             // step_retrying
	forDur   time.Duration   // trigger_failing, rate_limited
	causes   map[string]bool // recovered: nil is all
}

func parseAlertParams(cause string, p map[string]any) (alertParams, error) {
	ap := alertParams{cause: cause, window: defaultAlertWindow, attempts: defaultRetryAttempts}
	switch cause {
	case CauseTriggerFailing:
		ap.forDur = defaultFailingFor
	case CauseRateLimited:
		ap.forDur = defaultLimitedFor
	}
	dur := func(key string, into *time.Duration) error {
		v, ok := p[key]
		if !ok {
			return nil
		}
		s, _ := v.(string)
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("trigger: with.%s: %v is not a positive duration (e.g. 15m)", key, v)
		}
		*into = d
		return nil
	}
	if err := dur("window", &ap.window); err != nil {
		return ap, err
	}
	if err := dur("for", &ap.forDur); err != nil {
		return ap, err
	}
	names := func(key string) (map[string]bool, error) {
		v, ok := p[key]
		if !ok {
			return nil, nil
		}
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("trigger: with.%s must be a list of names", key)
		}
		m := map[string]bool{}
		for _, x := range list {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("trigger: with.%s: %v is not a name", key, x)
			}
			m[s] = true
		}
		return m, nil
	}
	var err error
	if ap.recipes, err = names("recipes"); err != nil {
		return ap, err
	}
	if ap.causes, err = names("causes"); err != nil {
		return ap, err
	}
	if v, ok := p["attempts"]; ok {
		switch n := v.(type) {
		case int:
			ap.attempts = n
		case int64:
			ap.attempts = int(n)
		case float64:
			ap.attempts = int(n)
		default:
			return ap, fmt.Errorf("trigger: with.attempts: %v is not a number", v)
		}
		if ap.attempts < 1 {
			return ap, fmt.Errorf("trigger: with.attempts must be at least 1, got %d", ap.attempts)
		}
	}
	return ap, nil
}

// watch keeps the health of triggers and connections and turns what goes
// wrong into incidents, which it feeds to alert recipes (recipes whose
// trigger is the memberflow connector's) through the normal enqueue path:
// the events are durable like any other, and their IDs carry the cause,
// the source and the alert window, so that the store's deduplication makes
// the throttle (one alert per source and cause per window) survive a
// restart.
type watch struct {
	e *Engine

	mu        sync.Mutex
	incidents map[string]*incident // by cause + source
	cleared   []*incident          // waiting for their recovered event
	triggers  map[string]*triggerHealth
	started   time.Time

	// Derived from the alert recipes when the engine starts.
	alerts      []*recipeRT
	minAttempts int           // smallest step_retrying threshold; 0: nobody listens
	quiet       time.Duration // how long without a failure clears run and step incidents
	limitQuiet  time.Duration // how long without a 429 clears a rate-limit incident
}

// triggerHealth is what readiness and the poll-lag gauge read.
type triggerHealth struct {
	mode         string
	interval     time.Duration
	pace         time.Duration // the source's asked wait when longer than interval
	lastPoll     time.Time
	lastSuccess  time.Time
	caughtUp     time.Time // start of the last poll that left nothing behind
	failingSince time.Time
	failures     int
	lastErr      string
}

// incident is one thing going wrong, from its first occurrence until it
// clears.
type incident struct {
	cause, source                               string
	recipe, connection, connector, step, action string
	trigger                                     string
	since, last                                 time.Time
	total, attempts, status                     int
	runs                                        []runRef
	err                                         string
	open                                        bool // auth and trigger incidents: still failing
	sent                                        map[string]*alertSent
	clearedAt                                   time.Time
}

type runRef struct {
	seq int
	id  int64
}

type alertSent struct {
	window time.Time
	total  int
}

func newWatch(e *Engine) *watch {
	return &watch{e: e, incidents: map[string]*incident{}, triggers: map[string]*triggerHealth{}}
}

// start derives the thresholds from the alert recipes and resets trigger
// health.
func (w *watch) start(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.started = now
	w.alerts = w.alerts[:0]
	w.minAttempts, w.quiet, w.limitQuiet = 0, defaultAlertWindow, defaultLimitedFor
	var maxWindow time.Duration
	for _, name := range w.e.recipeNames() {
		rt := w.e.recipes[name]
		switch rt.mode {
		case "engine":
			w.alerts = append(w.alerts, rt)
			ap := rt.alert
			maxWindow = max(maxWindow, ap.window)
			if ap.cause == CauseStepRetrying && (w.minAttempts == 0 || ap.attempts < w.minAttempts) {
				w.minAttempts = ap.attempts
			}
			if ap.cause == CauseRateLimited {
				w.limitQuiet = ap.forDur
			}
		case "poll", "webhook":
			if _, ok := w.triggers[name]; !ok {
				w.triggers[name] = &triggerHealth{mode: rt.mode, interval: rt.interval}
			}
		}
	}
	if maxWindow > 0 {
		w.quiet = maxWindow
	}
}

func (w *watch) listening() bool { return len(w.alerts) > 0 }

// runDead records a dead letter of a recipe that is not an alert.
func (w *watch) runDead(rt *recipeRT, runID int64, step, action, errMsg string, now time.Time) {
	if rt == nil || rt.mode == "engine" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	inc := w.incident(CauseRunFailed, rt.r.Name, now)
	inc.recipe, inc.step, inc.action, inc.err = rt.r.Name, step, action, errMsg
	inc.add(runID, now)
}

// stepRetrying records a step about to be tried again after attempts.
func (w *watch) stepRetrying(rt *recipeRT, st *stepRT, runID int64, attempts int, errMsg string, now time.Time) {
	if rt.mode == "engine" || w.minAttempts == 0 || attempts < w.minAttempts {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	inc := w.incident(CauseStepRetrying, rt.r.Name+"/"+st.s.ID, now)
	inc.recipe, inc.step, inc.action, inc.err = rt.r.Name, st.s.ID, st.name, errMsg
	inc.attempts = max(inc.attempts, attempts)
	inc.add(runID, now)
}

// paced records the wait the source asked after a pass (0: the
// interval), so that readiness does not take a slowed poll for a stuck one.
func (w *watch) paced(rt *recipeRT, wait time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if th := w.triggers[rt.r.Name]; th != nil {
		th.pace = wait
	}
}

// polled records one poll (or one webhook delivery's persistence).
func (w *watch) polled(rt *recipeRT, began time.Time, ok, more bool, errMsg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	th := w.triggers[rt.r.Name]
	if th == nil {
		th = &triggerHealth{mode: rt.mode, interval: rt.interval}
		w.triggers[rt.r.Name] = th
	}
	th.lastPoll = began
	if ok {
		th.lastSuccess, th.failures, th.lastErr, th.failingSince = began, 0, "", time.Time{}
		if !more {
			th.caughtUp = began
		}
		if inc := w.incidents[CauseTriggerFailing+"\x00"+rt.r.Name]; inc != nil {
			w.clear(inc, began)
		}
		return
	}
	th.failures++
	th.lastErr = errMsg
	if th.failingSince.IsZero() {
		th.failingSince = began
	}
	inc := w.incident(CauseTriggerFailing, rt.r.Name, th.failingSince)
	inc.recipe, inc.err, inc.open = rt.r.Name, errMsg, true
	inc.trigger = rt.r.Trigger.Connection + "." + rt.r.Trigger.Operation
	inc.total, inc.last = th.failures, began
}

// httpAnswer is called for every HTTP attempt of a connection: 401 opens
// an auth incident, 429 a rate-limit one; a 2xx closes the auth incident.
// The common case (a 2xx on a healthy connection) takes no lock.
func (w *watch) httpAnswer(oc *openConn, status int) {
	if oc == nil || !oc.watched {
		return
	}
	switch {
	case status >= 200 && status < 300:
		if !oc.authFailing.Load() {
			return
		}
		now := w.e.now()
		w.mu.Lock()
		oc.authFailing.Store(false)
		if inc := w.incidents[CauseAuthFailing+"\x00"+oc.name]; inc != nil {
			w.clear(inc, now)
		}
		w.mu.Unlock()
	case status == 401:
		now := w.e.now()
		w.mu.Lock()
		oc.authFailing.Store(true)
		inc := w.incident(CauseAuthFailing, oc.name, now)
		inc.connection, inc.connector, inc.status, inc.open = oc.name, oc.connector, status, true
		inc.err = fmt.Sprintf("%s answered HTTP %d: the credentials of connection %q are refused", oc.connector, status, oc.name)
		inc.total++
		inc.last = now
		w.mu.Unlock()
	case status == 429:
		now := w.e.now()
		w.mu.Lock()
		inc := w.incident(CauseRateLimited, oc.name, now)
		inc.connection, inc.connector, inc.status = oc.name, oc.connector, status
		inc.err = fmt.Sprintf("%s answered HTTP 429 Too Many Requests", oc.connector)
		inc.total++
		inc.last = now
		w.mu.Unlock()
	}
}

// paused is a client-side rate-limit wait; it is memberflow pacing itself,
// not the service refusing, so it is only measured (see Observer).
func (w *watch) paused(string, time.Duration) {}

func (w *watch) incident(cause, source string, now time.Time) *incident {
	key := cause + "\x00" + source
	inc := w.incidents[key]
	if inc == nil {
		inc = &incident{cause: cause, source: source, since: now, sent: map[string]*alertSent{}}
		w.incidents[key] = inc
	}
	return inc
}

func (inc *incident) add(runID int64, now time.Time) {
	inc.total++
	inc.last = now
	if runID != 0 {
		inc.runs = append(inc.runs, runRef{seq: inc.total, id: runID})
		if len(inc.runs) > 2*maxAlertRunIDs {
			inc.runs = append(inc.runs[:0], inc.runs[len(inc.runs)-maxAlertRunIDs:]...)
		}
	}
}

// clear ends an incident; if an alert was sent for it, a recovered event
// follows at the next flush.
func (w *watch) clear(inc *incident, now time.Time) {
	delete(w.incidents, inc.cause+"\x00"+inc.source)
	if len(inc.sent) > 0 {
		inc.clearedAt, inc.open = now, false
		w.cleared = append(w.cleared, inc)
	}
}

// ready reports whether an incident is worth an alert for ap now.
func (inc *incident) ready(ap alertParams, now time.Time) bool {
	switch inc.cause {
	case CauseStepRetrying:
		return inc.attempts >= ap.attempts
	case CauseTriggerFailing:
		return inc.open && now.Sub(inc.since) >= ap.forDur
	case CauseAuthFailing:
		return inc.open
	case CauseRateLimited:
		return inc.last.Sub(inc.since) >= ap.forDur && now.Sub(inc.last) < ap.forDur
	}
	return true
}

// matches reports whether an alert recipe watches the incident's source.
func (w *watch) matches(ap alertParams, inc *incident) bool {
	if ap.recipes == nil {
		return true
	}
	if inc.recipe != "" {
		return ap.recipes[inc.recipe]
	}
	for _, rt := range w.e.recipes {
		if ap.recipes[rt.r.Name] && rt.uses(inc.connection) {
			return true
		}
	}
	return false
}

// pendingAlert is an event to feed to one alert recipe, and what to
// remember once it is stored.
type pendingAlert struct {
	rt     *recipeRT
	ev     connectors.Event
	inc    *incident
	window time.Time
	total  int
}

// flush feeds due alerts to the alert recipes; it is called every second
// while the engine runs, and once more when a one-shot pass ends.
// flush feeds the alerts that are due and returns how many runs it
// queued.
func (w *watch) flush(ctx context.Context) (queued int) {
	if !w.listening() {
		return 0
	}
	now := w.e.now()
	w.mu.Lock()
	// Run and step incidents clear after a quiet period, rate limits after
	// a while without a 429.
	for _, inc := range w.incidents {
		switch inc.cause {
		case CauseRunFailed, CauseStepRetrying:
			if now.Sub(inc.last) >= w.quiet {
				w.clear(inc, now)
			}
		case CauseRateLimited:
			if now.Sub(inc.last) >= w.limitQuiet {
				w.clear(inc, now)
			}
		}
	}
	var due []pendingAlert
	keys := make([]string, 0, len(w.incidents))
	for k := range w.incidents {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, rt := range w.alerts {
		ap := rt.alert
		win := now.Truncate(ap.window)
		if ap.cause == CauseRecovered {
			for _, inc := range w.cleared {
				if (ap.causes == nil || ap.causes[inc.cause]) && w.matches(ap, inc) {
					due = append(due, pendingAlert{rt: rt, inc: inc, window: win,
						ev: alertEvent(ap, inc, "recovered/"+inc.cause+"/"+inc.source, win, inc.total, now)})
				}
			}
			continue
		}
		for _, k := range keys {
			inc := w.incidents[k]
			if inc.cause != ap.cause || !w.matches(ap, inc) || !inc.ready(ap, now) {
				continue
			}
			sent := inc.sent[rt.r.Name]
			if sent != nil && (sent.window.Equal(win) || sent.total >= inc.total) {
				continue // already alerted in this window, or nothing new
			}
			prev := 0
			if sent != nil {
				prev = sent.total
			}
			ev := alertEvent(ap, inc, inc.cause+"/"+inc.source, win, inc.total-prev, now)
			var ids []any
			for _, r := range inc.runs {
				if r.seq > prev && len(ids) < maxAlertRunIDs {
					ids = append(ids, r.id)
				}
			}
			ev.Data["run_ids"] = ids
			due = append(due, pendingAlert{rt: rt, inc: inc, window: win, total: inc.total, ev: ev})
		}
	}
	w.cleared = w.cleared[:0]
	w.mu.Unlock()

	byRecipe := map[*recipeRT][]pendingAlert{}
	var order []*recipeRT
	for _, p := range due {
		if _, ok := byRecipe[p.rt]; !ok {
			order = append(order, p.rt)
		}
		byRecipe[p.rt] = append(byRecipe[p.rt], p)
	}
	for _, rt := range order {
		batch := byRecipe[rt]
		evs := make([]connectors.Event, len(batch))
		for i, p := range batch {
			evs[i] = p.ev
		}
		enq, err := w.e.enqueueDetailed(ctx, rt, evs)
		if err != nil {
			w.e.log.Error("feeding an alert failed; it is tried again", "recipe", rt.r.Name, "error", err)
			continue
		}
		w.mu.Lock()
		for i, p := range batch {
			if p.rt.alert.cause != CauseRecovered {
				p.inc.sent[rt.r.Name] = &alertSent{window: p.window, total: p.total}
			}
			dup := i < len(enq) && enq[i].RunID == 0 && enq[i].Status == "" // a skipped event has no run either
			w.e.obs.AlertFed(rt.r.Name, p.inc.cause, dup)
			if i < len(enq) && enq[i].RunID != 0 {
				queued++
			}
		}
		w.mu.Unlock()
	}
	return queued
}

// alertEvent builds the event data the memberflow connector's triggers
// declare (connectors/memberflow).
func alertEvent(ap alertParams, inc *incident, key string, win time.Time, count int, now time.Time) connectors.Event {
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	cause := inc.cause
	data := map[string]any{
		"cause":           cause,
		"recipe":          inc.recipe,
		"connection":      inc.connection,
		"connector":       inc.connector,
		"step":            inc.step,
		"action":          inc.action,
		"trigger":         inc.trigger,
		"count":           count,
		"run_ids":         []any{},
		"error":           inc.err,
		"status":          inc.status,
		"attempts":        inc.attempts,
		"since":           stamp(inc.since),
		"last":            stamp(inc.last),
		"window_start":    stamp(win),
		"window_seconds":  int(ap.window / time.Second),
		"failing_seconds": int(now.Sub(inc.since) / time.Second),
	}
	if ap.cause == CauseRecovered {
		data["cause"] = CauseRecovered
		data["recovered_cause"] = cause
		data["failing_seconds"] = int(inc.clearedAt.Sub(inc.since) / time.Second)
	}
	data["message"] = alertMessage(data)
	return connectors.Event{
		ID:      key + "/" + stamp(win),
		Subject: "memberflow/" + key,
		Time:    now,
		Data:    data,
	}
}

func alertMessage(d map[string]any) string {
	who := d["recipe"].(string)
	if c := d["connection"].(string); c != "" {
		who = "connection " + c
	}
	var b strings.Builder
	switch d["cause"] {
	case CauseRunFailed:
		fmt.Fprintf(&b, "%d run(s) of %s dead-lettered", d["count"], who)
		if s := d["step"].(string); s != "" {
			fmt.Fprintf(&b, " at step %q", s)
		}
	case CauseStepRetrying:
		fmt.Fprintf(&b, "step %q of %s retried %d times", d["step"], who, d["attempts"])
	case CauseTriggerFailing:
		fmt.Fprintf(&b, "the trigger of %s has failed for %ds", who, d["failing_seconds"])
	case CauseAuthFailing:
		fmt.Fprintf(&b, "%s: the service refuses the credentials", who)
	case CauseRateLimited:
		fmt.Fprintf(&b, "%s is rate-limited (%d answers 429)", who, d["count"])
	case CauseRecovered:
		fmt.Fprintf(&b, "%s recovered from %s after %ds", who, d["recovered_cause"], d["failing_seconds"])
	}
	// The error is a field of its own: notifications show it apart.
	return b.String()
}

// uses reports whether the recipe uses the named connection.
func (rt *recipeRT) uses(conn string) bool {
	if rt.trigConn != nil && rt.trigConn.name == conn {
		return true
	}
	for _, st := range rt.steps {
		if st.conn.name == conn {
			return true
		}
	}
	return false
}

// openConnState is the part of an open connection the watch keeps.
type openConnState struct {
	// watched: a recipe that is not an alert uses the connection, so its
	// failures are incidents (an alert's own notification failing is not).
	watched     bool
	authFailing atomic.Bool
}
