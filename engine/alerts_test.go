package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// clock is a settable time for the alert windows.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)         { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration)     { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func at(hhmm string) time.Time           { t, _ := time.Parse("15:04", hhmm); return t.AddDate(2026, 10, 24) }
func (s *alertSink) count() int          { s.mu.Lock(); defer s.mu.Unlock(); return len(s.got) }
func (s *alertSink) at(i int) alertEvent { s.mu.Lock(); defer s.mu.Unlock(); return s.got[i] }

// alertEvent is what an alert recipe's step was given: the trigger.
type alertEvent struct {
	Cause          string  `json:"cause"`
	RecoveredCause string  `json:"recovered_cause"`
	Recipe         string  `json:"recipe"`
	Step           string  `json:"step"`
	Count          int     `json:"count"`
	RunIDs         []int64 `json:"run_ids"`
	Error          string  `json:"error"`
	Trigger        string  `json:"trigger"`
	Connection     string  `json:"connection"`
	Connector      string  `json:"connector"`
	Status         int     `json:"status"`
	Attempts       int     `json:"attempts"`
	WindowStart    string  `json:"window_start"`
	Message        string  `json:"message"`
}

// alertSink is the alert recipes' notification action: it keeps what it
// is given.
type alertSink struct {
	mu  sync.Mutex
	got []alertEvent
}

func opsSpec(sink *alertSink) *connectors.Spec {
	trig := func(name string) *connectors.TriggerSpec {
		return &connectors.TriggerSpec{Engine: true, Operation: op(name)}
	}
	return &connectors.Spec{
		Name: "ops", Title: "Ops", Auth: []connectors.AuthKind{connectors.AuthNone},
		Open: func(connectors.ConnectionConfig) (connectors.Conn, error) { return sink, nil },
		Triggers: []*connectors.TriggerSpec{trig(engine.CauseRunFailed), trig(engine.CauseStepRetrying),
			trig(engine.CauseTriggerFailing), trig(engine.CauseRateLimited), trig(engine.CauseAuthFailing), trig(engine.CauseRecovered)},
		Actions: []*connectors.ActionSpec{{Operation: op("notify"), Idempotent: true,
			Run: func(_ context.Context, _ connectors.Conn, in map[string]any) (*connectors.Result, error) {
				raw, _ := json.Marshal(in["event"])
				var ev alertEvent
				if err := json.Unmarshal(raw, &ev); err != nil {
					return nil, err
				}
				sink.mu.Lock()
				sink.got = append(sink.got, ev)
				sink.mu.Unlock()
				return &connectors.Result{Output: map[string]any{}}, nil
			}}},
	}
}

func alertRecipe(t testing.TB, name, cause string, with map[string]any) *recipes.Recipe {
	return &recipes.Recipe{File: name + ".yaml", Version: 1, Name: name,
		Trigger: &recipes.Trigger{Connection: "ops", Operation: cause, Mode: "engine", With: mustTemplate(t, with)},
		Steps:   []*recipes.Step{{ID: "tell", Connection: "ops", Operation: "notify", With: mustTemplate(t, map[string]any{"event": "${{ trigger }}"})}},
	}
}

// alertEngine feeds alerts every 5 ms while Run runs; one-shot passes
// (RunOnce) are fed at their end only, with every: 0, so that what a
// pass dead-letters is one alert whatever the machine's speed (and the
// pass runs it before it returns).
func alertEngine(t testing.TB, store engine.Store, svc *fakeService, sink *alertSink, clk *clock, rs ...*recipes.Recipe) *engine.Engine {
	return alertEngineEvery(t, 5*time.Millisecond, store, svc, sink, clk, rs...)
}

func alertEngineEvery(t testing.TB, every time.Duration, store engine.Store, svc *fakeService, sink *alertSink, clk *clock, rs ...*recipes.Recipe) *engine.Engine {
	t.Helper()
	if every == 0 {
		every = time.Hour
	}
	e, err := engine.New(engine.Options{Store: store, Concurrency: 4, Owner: "alerts", Now: clk.Now, AlertEvery: every,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Off}),
		Retry:  recipes.RetryPolicy{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	conns := connections(svc)
	conns["ops"] = engine.Connection{Spec: opsSpec(sink)}
	for _, r := range rs {
		if err := e.Add(r, conns); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func addMembers(svc *fakeService, from, to int) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	for i := from; i <= to; i++ {
		id := fmt.Sprintf("m%03d", i)
		svc.members[id] = &member{ID: id, Status: "active", Version: 1}
	}
}

// TestRunFailedAlertsOncePerWindow: a storm of dead letters is one alert
// per window, with the count and the runs; the next window's alert counts
// what came after; a restarted runner does not alert again in the same
// window (the event id is durable); a quiet window brings one recovered.
func TestRunFailedAlertsOncePerWindow(t *testing.T) {
	svc := newFakeService(6, func(int) bool { return true })
	svc.createPermanent = true
	sink := &alertSink{}
	clk := &clock{t: at("10:01")}
	store := openStore(t, tempDB(t))
	defer store.Close()
	recipesUnderTest := func() []*recipes.Recipe {
		return []*recipes.Recipe{issueRecipe(t),
			alertRecipe(t, "page", engine.CauseRunFailed, map[string]any{"window": "15m"}),
			alertRecipe(t, "all-clear", engine.CauseRecovered, map[string]any{})}
	}
	e := alertEngineEvery(t, 0, store, svc, sink, clk, recipesUnderTest()...)

	sum := runOnce(t, e)
	if d := recipeSummary(t, sum, "issue").Dead; d != 6 {
		t.Fatalf("%d dead letters, want 6", d)
	}
	// The pass that dead-lettered them sent their alert before it ended.
	if n := sink.count(); n != 1 {
		t.Fatalf("%d alerts after a pass with six dead letters, want 1", n)
	}
	first := sink.at(0)
	if first.Cause != "run_failed" || first.Recipe != "issue" || first.Step != "issue" || first.Count != 6 || len(first.RunIDs) != 6 ||
		first.WindowStart != "2026-11-25T10:00:00Z" || first.Message != `6 run(s) of issue dead-lettered at step "issue"` {
		t.Errorf("first alert %+v", first)
	}

	// Three more in the same window: counted, not sent.
	clk.Set(at("10:05"))
	addMembers(svc, 7, 9)
	runOnce(t, e)
	runOnce(t, e)
	if n := sink.count(); n != 1 {
		t.Fatalf("%d alerts, want still 1 within the window", n)
	}
	// The next window sends what accumulated.
	clk.Set(at("10:16"))
	runOnce(t, e)
	runOnce(t, e)
	if n := sink.count(); n != 2 {
		t.Fatalf("%d alerts after the window turned, want 2", n)
	}
	if second := sink.at(1); second.Count != 3 || len(second.RunIDs) != 3 || second.WindowStart != "2026-11-25T10:15:00Z" {
		t.Errorf("second alert %+v", second)
	}

	// A restarted runner, new failures, same window: the stored event id
	// makes it a duplicate.
	e.Close()
	e = alertEngineEvery(t, 0, store, svc, sink, clk, recipesUnderTest()...)
	clk.Set(at("10:20"))
	addMembers(svc, 10, 11)
	if d := recipeSummary(t, runOnce(t, e), "issue").Dead; d != 2 {
		t.Fatalf("%d new dead letters, want 2", d)
	}
	runOnce(t, e)
	if n := sink.count(); n != 2 {
		t.Fatalf("%d alerts after a restart in the same window, want 2", n)
	}

	// Fifteen quiet minutes clear it: one recovered.
	clk.Set(at("10:36"))
	runOnce(t, e)
	runOnce(t, e)
	if n := sink.count(); n != 3 {
		t.Fatalf("%d alerts, want a third: recovered", n)
	}
	if rec := sink.at(2); rec.Cause != "recovered" || rec.RecoveredCause != "run_failed" || rec.Recipe != "issue" {
		t.Errorf("recovered %+v", rec)
	}
	runOnce(t, e)
	if n := sink.count(); n != 3 {
		t.Errorf("%d alerts: recovered was sent more than once", n)
	}
}

// TestStepRetryingAlertsAfterAttempts: retries below the threshold are
// not news; at the threshold they are.
func TestStepRetryingAlertsAfterAttempts(t *testing.T) {
	for _, tc := range []struct {
		attempts int
		want     int
	}{{2, 1}, {3, 0}} {
		t.Run(fmt.Sprintf("attempts=%d", tc.attempts), func(t *testing.T) {
			svc := newFakeService(1, func(int) bool { return true })
			svc.createRetryable = 2 // two 503s, then the create succeeds on the third attempt
			sink := &alertSink{}
			clk := &clock{t: at("09:00")}
			store := openStore(t, tempDB(t))
			defer store.Close()
			e := alertEngineEvery(t, 0, store, svc, sink, clk, issueRecipe(t),
				alertRecipe(t, "slow", engine.CauseStepRetrying, map[string]any{"attempts": tc.attempts}))
			runOnce(t, e)
			runOnce(t, e)
			if n := sink.count(); n != tc.want {
				t.Fatalf("%d alerts, want %d", n, tc.want)
			}
			if tc.want > 0 {
				if ev := sink.at(0); ev.Step != "issue" || ev.Attempts != 2 || ev.Count != 1 || ev.Error == "" {
					t.Errorf("alert %+v", ev)
				}
			}
		})
	}
}

// TestTriggerFailingAlertsAfterForAndRecovers: polls failing for longer
// than `for` make one alert and the runner unready; the next successful
// poll clears both and sends recovered.
func TestTriggerFailingAlertsAfterForAndRecovers(t *testing.T) {
	svc := newFakeService(2, func(int) bool { return true })
	svc.pollFailures = 1 << 30
	sink := &alertSink{}
	clk := &clock{t: at("08:00")}
	store := openStore(t, tempDB(t))
	defer store.Close()
	e := alertEngine(t, store, svc, sink, clk, issueRecipe(t),
		alertRecipe(t, "lag", engine.CauseTriggerFailing, map[string]any{"for": "15m", "window": "1h"}),
		alertRecipe(t, "all-clear", engine.CauseRecovered, map[string]any{"causes": []any{"trigger_failing"}}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "the trigger to fail", func() bool {
		st := e.Status()
		return len(st.Triggers) == 1 && st.Triggers[0].Failures > 0
	})
	clk.Add(10 * time.Minute)
	time.Sleep(50 * time.Millisecond)
	if n := sink.count(); n != 0 {
		t.Fatalf("%d alerts after 10 minutes of a `for: 15m` trigger", n)
	}
	if ready(e) {
		t.Error("ready while the trigger has failed for 10 minutes")
	}
	clk.Add(6 * time.Minute)
	waitFor(t, "the trigger_failing alert", func() bool { return sink.count() == 1 })
	if ev := sink.at(0); ev.Cause != "trigger_failing" || ev.Recipe != "issue" || ev.Trigger != "members.member_updated" || ev.Error == "" {
		t.Errorf("alert %+v", ev)
	}
	svc.mu.Lock()
	svc.pollFailures = 0
	svc.mu.Unlock()
	waitFor(t, "recovered", func() bool { return sink.count() == 2 })
	if ev := sink.at(1); ev.Cause != "recovered" || ev.RecoveredCause != "trigger_failing" {
		t.Errorf("recovered %+v", ev)
	}
	if !ready(e) {
		t.Errorf("not ready after a successful poll: %+v", e.Checks(context.Background()))
	}
	time.Sleep(50 * time.Millisecond)
	if n := sink.count(); n != 2 {
		t.Errorf("%d alerts, want 2", n)
	}
}

func ready(e *engine.Engine) bool {
	for _, c := range e.Checks(context.Background()) {
		if !c.OK {
			return false
		}
	}
	return true
}

// apiSpec is a service reached over HTTP through the connection's client
// (which the engine instruments): its one action GETs the server.
func apiSpec() *connectors.Spec {
	return &connectors.Spec{Name: "api", Auth: []connectors.AuthKind{connectors.AuthNone},
		Open: func(cfg connectors.ConnectionConfig) (connectors.Conn, error) { return cfg, nil },
		Actions: []*connectors.ActionSpec{{Operation: op("call"), Idempotent: true,
			Run: func(ctx context.Context, conn connectors.Conn, _ map[string]any) (*connectors.Result, error) {
				cfg := conn.(connectors.ConnectionConfig)
				req, _ := http.NewRequestWithContext(ctx, "GET", cfg.BaseURL+"/thing", nil)
				res, err := cfg.HTTPClient.Do(req)
				if err != nil {
					return nil, err
				}
				res.Body.Close()
				if res.StatusCode != 200 {
					return nil, &connectors.APIError{Service: "api", Status: res.StatusCode, Retryable: res.StatusCode == 429}
				}
				return &connectors.Result{Output: map[string]any{}}, nil
			}}}}
}

// TestRateLimitedAndAuthFailingFromTheTransport: the service's 429s,
// sustained for `for`, make one rate_limited alert and its quiet end a
// recovered; a 401 makes an auth_failing alert and the connection unready
// until a request is accepted.
func TestRateLimitedAndAuthFailingFromTheTransport(t *testing.T) {
	var status atomic.Int32
	status.Store(429)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) }))
	defer srv.Close()
	svc := newFakeService(1, func(int) bool { return true })
	sink := &alertSink{}
	clk := &clock{t: at("12:00")}
	store := openStore(t, tempDB(t))
	defer store.Close()
	work := &recipes.Recipe{File: "w.yaml", Version: 1, Name: "work",
		Trigger: &recipes.Trigger{Connection: "members", Operation: "member_updated", Mode: "poll", Start: connectors.StartBeginning, Interval: time.Hour},
		Steps: []*recipes.Step{{ID: "call", Connection: "api", Operation: "call", With: mustTemplate(t, map[string]any{}),
			Retry: &recipes.RetryPolicy{Attempts: 2, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}}}}
	e, err := engine.New(engine.Options{Store: store, Concurrency: 2, Owner: "alerts", Now: clk.Now, AlertEvery: time.Hour,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Off})})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	conns := connections(svc)
	conns["ops"] = engine.Connection{Spec: opsSpec(sink)}
	conns["api"] = engine.Connection{Spec: apiSpec(), Config: connectors.ConnectionConfig{BaseURL: srv.URL}}
	for _, r := range []*recipes.Recipe{work,
		alertRecipe(t, "limited", engine.CauseRateLimited, map[string]any{"for": "1m"}),
		alertRecipe(t, "refused", engine.CauseAuthFailing, map[string]any{}),
		alertRecipe(t, "all-clear", engine.CauseRecovered, map[string]any{})} {
		if err := e.Add(r, conns); err != nil {
			t.Fatal(err)
		}
	}
	runOnce(t, e)
	runOnce(t, e)
	if n := sink.count(); n != 0 {
		t.Fatalf("%d alerts after a moment of 429s, want none before `for`", n)
	}
	clk.Set(at("12:01").Add(30 * time.Second))
	addMembers(svc, 2, 2)
	runOnce(t, e) // 429s again, 90 s after the first
	runOnce(t, e)
	if n := sink.count(); n != 1 {
		t.Fatalf("%d alerts after 90 s of 429s, want 1", n)
	}
	if ev := sink.at(0); ev.Cause != "rate_limited" || ev.Connection != "api" || ev.Connector != "api" || ev.Status != 429 || ev.Count < 2 {
		t.Errorf("alert %+v", ev)
	}
	// A minute without a 429: recovered.
	status.Store(200)
	clk.Set(at("12:03"))
	runOnce(t, e)
	runOnce(t, e)
	if n := sink.count(); n != 2 || sink.at(1).Cause != "recovered" || sink.at(1).RecoveredCause != "rate_limited" {
		t.Fatalf("%d alerts, want a recovered second: %+v", n, sink.got)
	}

	// 401: unready and one auth_failing alert; a 200 makes it ready.
	status.Store(401)
	addMembers(svc, 3, 3)
	runOnce(t, e)
	if ready(e) {
		t.Error("ready while the service refuses the connection's credentials")
	}
	runOnce(t, e)
	if n := sink.count(); n != 3 || sink.at(2).Cause != "auth_failing" || sink.at(2).Connection != "api" {
		t.Fatalf("%d alerts, want auth_failing third: %+v", n, sink.got)
	}
	status.Store(200)
	addMembers(svc, 4, 4)
	runOnce(t, e)
	if !ready(e) {
		t.Errorf("not ready after an accepted request: %+v", e.Checks(context.Background()))
	}
}

// A webhook trigger with a fallback poll counts for readiness: when its
// poll keeps failing (and no delivery arrives) the runner is not ready.
func TestHybridTriggerCountsForReadiness(t *testing.T) {
	svc := newFakeService(2, func(int) bool { return true })
	svc.pollFailures = 1 << 30
	clk := &clock{t: at("08:00")}
	store := openStore(t, tempDB(t))
	defer store.Close()
	r := issueRecipe(t)
	r.Trigger.Mode, r.Trigger.FallbackPoll = "webhook", 20*time.Millisecond
	e := alertEngine(t, store, svc, &alertSink{}, clk, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "the fallback poll to fail", func() bool {
		st := e.Status()
		return len(st.Triggers) == 1 && st.Triggers[0].Failures > 0
	})
	clk.Add(time.Minute) // far more than 3 intervals of 20 ms
	var check *engine.Check
	for _, c := range e.Checks(context.Background()) {
		if c.Name == "trigger:issue" {
			check = &c
		}
	}
	if check == nil || check.OK || !strings.Contains(check.Error, "no successful poll or delivery") {
		t.Fatalf("the hybrid trigger's check: %+v", check)
	}
}
