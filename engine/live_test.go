package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// recordRecipe runs `record` for each pushed delivery.
func recordRecipe(t testing.TB) *recipes.Recipe {
	return &recipes.Recipe{
		File: "record.yaml", Version: 1, Name: "record",
		Trigger: &recipes.Trigger{Connection: "members", Operation: "member_updated", Mode: "webhook", WebhookPath: "/hooks/members"},
		Steps: []*recipes.Step{{ID: "record", Connection: "members", Operation: "record",
			With: mustTemplate(t, map[string]any{"member": "${{ trigger.id }}", "seq": "${{ trigger.seq }}"})}},
	}
}

// running starts e.Run and returns a stop function that waits for it.
func running(t testing.TB, e *engine.Engine) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after its context ended")
			return nil
		}
	}
}

func deliver(t testing.TB, url, id string, m map[string]any, sig string) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"id": id, "member": m})
	if sig == "" {
		sig = sign(body)
	}
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("X-Fake-Signature", sig)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestPerSubjectOrdering(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(0, oneActive)
	e := newEngine(t, store, svc, []*recipes.Recipe{recordRecipe(t)}, concurrency(8))
	srv := httptest.NewServer(e.WebhookHandler())
	defer srv.Close()
	stop := running(t, e)
	const subjects, updates = 6, 8
	// Updates arrive interleaved across members, each member's in order.
	for seq := 1; seq <= updates; seq++ {
		for m := 0; m < subjects; m++ {
			id := fmt.Sprintf("m%d", m)
			if code, _ := deliver(t, srv.URL+"/hooks/members", fmt.Sprintf("%s-%d", id, seq), map[string]any{"id": id, "seq": seq}, ""); code != 200 {
				t.Fatalf("delivery answered %d", code)
			}
		}
	}
	waitFor(t, "every run", func() bool { return recipeSummary(t, e.Summary(), "record").Succeeded == subjects*updates })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if svc.overlap {
		t.Error("two runs of one member ran at once")
	}
	for m := 0; m < subjects; m++ {
		id := fmt.Sprintf("m%d", m)
		got := svc.log[id]
		for i, seq := range got {
			if seq != i+1 {
				t.Errorf("member %s ran in order %v, want 1..%d", id, got, updates)
				break
			}
		}
	}
}

func TestWebhookDeliveries(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(0, oneActive)
	e := newEngine(t, store, svc, []*recipes.Recipe{recordRecipe(t)})
	srv := httptest.NewServer(e.WebhookHandler())
	defer srv.Close()
	url := srv.URL + "/hooks/members"
	m := map[string]any{"id": "m1", "seq": 1}

	code, out := deliver(t, url, "d1", m, "")
	if code != 200 || out["accepted"] != 1.0 {
		t.Fatalf("first delivery: %d %v", code, out)
	}
	// Persisted before the answer: the run is in the store now.
	runs, err := store.ListRuns(context.Background(), engine.RunFilter{})
	if err != nil || len(runs) != 1 || runs[0].Status != engine.RunQueued {
		t.Fatalf("after the 200: runs %+v, %v", runs, err)
	}
	code, out = deliver(t, url, "d1", m, "")
	if code != 200 || out["accepted"] != 0.0 || out["duplicates"] != 1.0 {
		t.Errorf("repeated delivery: %d %v, want 200 with the duplicate dropped", code, out)
	}
	if code, out := deliver(t, url, "d2", m, "00ff"); code != 401 || !strings.Contains(fmt.Sprint(out["error"]), "signature") {
		t.Errorf("bad signature: %d %v, want 401", code, out)
	}
	req, _ := http.NewRequest("POST", url, strings.NewReader("{not json"))
	req.Header.Set("X-Fake-Signature", sign([]byte("{not json")))
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 400 {
		t.Errorf("bad body: %v %v, want 400", res.StatusCode, err)
	}
	big := bytes.Repeat([]byte("x"), engine.MaxWebhookBody+1)
	req, _ = http.NewRequest("POST", url, bytes.NewReader(big))
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 413 {
		t.Errorf("oversized body: %v %v, want 413", res.StatusCode, err)
	}
	if res, err := http.Get(url); err != nil || res.StatusCode != 405 {
		t.Errorf("GET: %v %v, want 405", res.StatusCode, err)
	}
	runs, _ = store.ListRuns(context.Background(), engine.RunFilter{})
	if len(runs) != 1 {
		t.Errorf("%d runs after the refused deliveries, want 1", len(runs))
	}
	sum := runOnce(t, e)
	if r := recipeSummary(t, sum, "record"); r.Succeeded != 1 || r.Duplicates != 1 {
		t.Errorf("summary %+v, want 1 run and 1 duplicate", r)
	}
	if svc.count("record") != 1 {
		t.Errorf("record ran %d times, want 1", svc.count("record"))
	}
}

// TestEchoSuppressionInTwoWaySync: a recipe reacts to every change of an
// active member by issuing a certificate and writing it back. Without
// echo suppression the write-back is a change, which would issue again,
// forever.
func TestEchoSuppressionInTwoWaySync(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(3, oneActive)
	r := issueRecipe(t)
	r.When = mustExpr(t, `trigger.status == "active"`)
	e := newEngine(t, store, svc, []*recipes.Recipe{r})
	stop := running(t, e)
	waitFor(t, "the echoes", func() bool {
		s := recipeSummary(t, e.Summary(), "issue")
		return s.Succeeded == 3 && s.Suppressed == 3
	})
	// A few more polls find nothing new.
	polls := svc.count("poll")
	waitFor(t, "more polls", func() bool { return svc.count("poll") > polls+4 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, svc)
	if s := recipeSummary(t, e.Summary(), "issue"); s.Succeeded != 3 || s.Events != 6 {
		t.Errorf("summary %+v", s)
	}
	// A real change by someone else afterwards is not an echo.
	svc.mu.Lock()
	svc.members["m001"].Cert = ""
	svc.members["m001"].Version++
	svc.mu.Unlock()
	// The runner stopped somewhere in a pass over the members; a --once
	// polls from there to the end of the pass, so two cover all of them.
	runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{r}))
	runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{r}))
	if got := len(svc.certsFor("m001")); got != 2 {
		t.Errorf("after an outside change m001 has %d certificates, want a new one (2)", got)
	}
}

func TestGracefulShutdownFinishesInFlightRuns(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(1, oneActive)
	svc.block = make(chan struct{})
	svc.entered = make(chan string, 1)
	e := newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)})
	stop := running(t, e)
	<-svc.entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case <-stopped:
		t.Fatal("Run returned with a run in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(svc.block)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	d, err := store.GetRun(context.Background(), 1)
	if err != nil || d.Status != engine.RunSucceeded {
		t.Fatalf("the in-flight run is %v (%v), want succeeded", d.Status, err)
	}
	assertExactlyOnce(t, svc)
}

func TestShutdownAfterGraceLeavesRunsToResume(t *testing.T) {
	path := tempDB(t)
	store := openStore(t, path)
	svc := newFakeService(1, oneActive)
	svc.block = make(chan struct{}) // never released: the call hangs
	svc.entered = make(chan string, 1)
	e := newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)}, func(o *engine.Options) { o.Grace = 20 * time.Millisecond })
	stop := running(t, e)
	<-svc.entered
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := recipeSummary(t, e.Summary(), "issue"); s.Abandoned != 1 {
		t.Errorf("summary %+v, want the run abandoned", s)
	}
	e.Close()
	store.Close()

	store = openStore(t, path)
	defer store.Close()
	svc.mu.Lock()
	svc.block, svc.entered = nil, nil
	svc.mu.Unlock()
	runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)}))
	assertExactlyOnce(t, svc)
	assertAllDone(t, store)
	// The intent was journaled: the resumed run settled before sending.
	if svc.count("settle") != 1 {
		t.Errorf("settle called %d times, want 1", svc.count("settle"))
	}
}

func TestScheduleEnqueuesOneEventPerTick(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(0, oneActive)
	r := &recipes.Recipe{File: "tick.yaml", Name: "tick",
		Trigger: &recipes.Trigger{Schedule: "@every 1s"},
		Steps: []*recipes.Step{{ID: "record", Connection: "members", Operation: "record",
			With: mustTemplate(t, map[string]any{"member": "${{ trigger.recipe }}", "seq": 1})}}}
	e := newEngine(t, store, svc, []*recipes.Recipe{r})
	stop := running(t, e)
	// cron's @every rounds to whole seconds.
	waitFor(t, "two ticks", func() bool { return recipeSummary(t, e.Summary(), "tick").Succeeded >= 2 })
	stop()
	runs, _ := store.ListRuns(context.Background(), engine.RunFilter{Recipe: "tick"})
	seen := map[string]bool{}
	for _, run := range runs {
		if !strings.HasPrefix(run.EventID, "tick@") || seen[run.EventID] {
			t.Errorf("event id %q: want tick@<time>, unique", run.EventID)
		}
		seen[run.EventID] = true
	}
	cur, err := store.Cursor(context.Background(), "tick")
	if err != nil || cur == "" {
		t.Errorf("schedule cursor %q, %v", cur, err)
	}
}

func TestAddRejectsBadRecipes(t *testing.T) {
	svc := newFakeService(0, oneActive)
	tests := []struct {
		name   string
		mutate func(r *recipes.Recipe)
		want   string
	}{
		{"unknown connection", func(r *recipes.Recipe) { r.Steps[0].Connection = "nope" },
			`recipe "issue" (issue.yaml): step "issue" (nope.create_cert): connection "nope" is not provided`},
		{"unknown action", func(r *recipes.Recipe) { r.Steps[1].Operation = "set" },
			`recipe "issue" (issue.yaml): step "link" (members.set): connector "fake" has no action "set"`},
		{"bad schedule", func(r *recipes.Recipe) { r.Trigger = &recipes.Trigger{Schedule: "every day"} },
			`recipe "issue" (issue.yaml): trigger: schedule "every day"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := openStore(t, tempDB(t))
			defer store.Close()
			e, _ := engine.New(engine.Options{Store: store})
			r := issueRecipe(t)
			tc.mutate(r)
			err := e.Add(r, connections(svc))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Add: %v\nwant: %s", err, tc.want)
			}
		})
	}
	t.Run("webhook path taken", func(t *testing.T) {
		store := openStore(t, tempDB(t))
		defer store.Close()
		e, _ := engine.New(engine.Options{Store: store})
		if err := e.Add(recordRecipe(t), connections(svc)); err != nil {
			t.Fatal(err)
		}
		r := recordRecipe(t)
		r.Name = "record-again"
		want := `recipe "record-again" (record.yaml): trigger: webhook path "/hooks/members" is already the path of recipe "record"`
		if err := e.Add(r, connections(svc)); err == nil || err.Error() != want {
			t.Errorf("Add: %v\nwant: %s", err, want)
		}
	})
}

// A run that only waits to retry a step (here an hour's backoff) does not
// hold a stop for the grace period (here an hour too): it is given back
// at once and resumes from its journal, with nothing sent twice. Page
// runs and runs from the queue alike.
func TestStopDoesNotWaitForRunsWaitingToRetry(t *testing.T) {
	hour := &recipes.RetryPolicy{Attempts: 4, Backoff: time.Hour, MaxBackoff: time.Hour}
	tests := []struct {
		name   string
		recipe func() *recipes.Recipe
	}{
		{"page run", func() *recipes.Recipe {
			r := issueRecipe(t)
			r.Steps[0].Retry = hour
			return r
		}},
		{"queued run", func() *recipes.Recipe {
			return &recipes.Recipe{File: "tick.yaml", Name: "tick", Trigger: &recipes.Trigger{Schedule: "@every 1s"},
				Steps: []*recipes.Step{{ID: "issue", Connection: "certs", Operation: "create_cert", Retry: hour,
					With: mustTemplate(t, map[string]any{"member": "m001", "course": "go-101"})}}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tempDB(t)
			store := openStore(t, path)
			svc := newFakeService(1, oneActive)
			svc.createRetryable = 1000
			e := newEngine(t, store, svc, []*recipes.Recipe{tc.recipe()}, func(o *engine.Options) { o.Grace = time.Hour })
			stop := running(t, e)
			waitFor(t, "a failed create", func() bool { return svc.count("create_cert") >= 1 })
			time.Sleep(20 * time.Millisecond) // into the wait
			if err := stop(); err != nil {    // fails the test after 15 s
				t.Fatal(err)
			}
			var abandoned int64
			for _, s := range e.Summary().Recipes {
				abandoned += s.Abandoned
			}
			if abandoned != 1 {
				t.Fatalf("summary %+v, want the waiting run abandoned", e.Summary().Recipes)
			}
			e.Close()
			store.Close()

			store = openStore(t, path)
			defer store.Close()
			svc.mu.Lock()
			svc.createRetryable = 0
			svc.mu.Unlock()
			runOnce(t, newEngine(t, store, svc, []*recipes.Recipe{tc.recipe()}))
			// Every run ended, each with one certificate (a schedule may
			// have fired again meanwhile).
			assertAllDone(t, store)
			runs, err := store.ListRuns(context.Background(), engine.RunFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			succeeded := 0
			for _, r := range runs {
				if r.Status == engine.RunSucceeded {
					succeeded++
				}
			}
			if succeeded == 0 || svc.creates != succeeded {
				t.Fatalf("%d certificates for %d runs succeeded, want one each", svc.creates, succeeded)
			}
		})
	}
}

// A flood of refused deliveries is counted, not logged line by line:
// anyone who can reach the endpoint could otherwise fill the log.
func TestRefusedDeliveriesDoNotFloodTheLog(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	var buf bytes.Buffer
	logs := &lockedWriter{w: &buf}
	e := newEngine(t, store, newFakeService(0, oneActive), []*recipes.Recipe{recordRecipe(t)}, func(o *engine.Options) {
		o.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: logs})
	})
	srv := httptest.NewServer(e.WebhookHandler())
	defer srv.Close()
	for i := range 200 {
		if code, _ := deliver(t, srv.URL+"/hooks/members", fmt.Sprintf("d%d", i), map[string]any{"id": "m1", "seq": i}, "00ff"); code != 401 {
			t.Fatalf("delivery %d: %d, want 401", i, code)
		}
	}
	logs.mu.Lock()
	out := buf.String()
	logs.mu.Unlock()
	if n := strings.Count(out, "delivery refused"); n < 1 || n > 2 {
		t.Fatalf("%d log lines for 200 refusals, want 1 (or 2 across a boundary):\n%s", n, out)
	}
}

// syncCounting is a store whose Sync is counted, and fails when told.
type syncCounting struct {
	engine.Store
	mu    sync.Mutex
	syncs int
	fail  bool
}

func (s *syncCounting) Sync(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	if s.fail {
		return errors.New("disk gone")
	}
	return nil
}

// A delivery is acknowledged only once the store says it survives a power
// loss (Sync); a store that cannot say so gets the delivery sent again.
func TestADeliveryIsDurableBeforeItsAnswer(t *testing.T) {
	base := openStore(t, tempDB(t))
	defer base.Close()
	store := &syncCounting{Store: base}
	e := newEngine(t, store, newFakeService(0, oneActive), []*recipes.Recipe{recordRecipe(t)})
	srv := httptest.NewServer(e.WebhookHandler())
	defer srv.Close()
	url := srv.URL + "/hooks/members"
	if code, out := deliver(t, url, "d1", map[string]any{"id": "m1", "seq": 1}, ""); code != 200 || store.syncs != 1 {
		t.Fatalf("delivery: %d %v after %d syncs, want 200 after 1", code, out, store.syncs)
	}
	store.mu.Lock()
	store.fail = true
	store.mu.Unlock()
	if code, _ := deliver(t, url, "d2", map[string]any{"id": "m2", "seq": 1}, ""); code != http.StatusServiceUnavailable {
		t.Fatalf("a delivery the store could not make durable: %d, want 503 (deliver again)", code)
	}
}

// The SQLite store's Sync flushes its log, whether or not one is there.
func TestSQLiteSync(t *testing.T) {
	s := openStore(t, tempDB(t))
	defer s.Close()
	if err := s.(engine.Syncer).Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// After a pass the poller waits the longer of the trigger's interval and
// the pace the source asks (PollResult.MinInterval): a source whose
// scans spend a daily quota slows its polls down.
func TestPollsKeepToThePaceTheSourceAsks(t *testing.T) {
	for _, tc := range []struct {
		name string
		pace time.Duration
		many bool
	}{
		{"no pace: every 20 ms", 0, true},
		{"an hour's pace", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := openStore(t, tempDB(t))
			defer store.Close()
			svc := newFakeService(2, everyOther) // one page: each poll is a pass
			svc.passPace = tc.pace
			e := newEngine(t, store, svc, []*recipes.Recipe{issueRecipe(t)})
			stop := running(t, e)
			time.Sleep(400 * time.Millisecond)
			// Readiness counts intervals of the pace, not of the interval:
			// a slowed poll is not a stuck one.
			if st := e.Status(); len(st.Triggers) != 1 || st.Triggers[0].Pace != tc.pace {
				t.Errorf("status %+v, want the pace %s", st.Triggers, tc.pace)
			}
			stop()
			if n := svc.count("poll"); (n > 3) != tc.many {
				t.Fatalf("%d polls in 400 ms at a 20 ms interval, want many: %v", n, tc.many)
			}
		})
	}
}
