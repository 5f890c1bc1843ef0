package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/internal/ops"
	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
	"github.com/memberflow/memberflow/recipes"
)

// opsRig is what `memberflow run --sandbox-url URL --http ADDR` builds,
// in process, so that a test can read /metrics and /readyz while the
// engine runs and after it stops. Steps retry quickly: the test is about
// what operators see, not about backoff.
type opsRig struct {
	sb      *sandbox.Server
	eng     *engine.Engine
	store   *sqlitestore.Store
	metrics *ops.Metrics
	http    *httptest.Server
}

func newOpsRig(t *testing.T, sb *sandbox.Server, paths ...string) *opsRig {
	return newOpsRigWith(t, sb, 8, paths...)
}

// newOpsRigWith is newOpsRig with the steps' attempts.
func newOpsRigWith(t *testing.T, sb *sandbox.Server, attempts int, paths ...string) *opsRig {
	t.Helper()
	base := sb.BaseURL()
	log := hclog.NewNullLogger()
	target := newSandboxAt(context.Background(), base, log)
	target.smtpURL = sb.SMTPURL()
	rs, diags := recipes.Load(recipes.Options{Registry: connectors.Default, Connections: []string{sandboxConnFile}}, paths...)
	if diags.HasErrors() {
		t.Fatalf("recipes: %v", diags)
	}
	secrets, err := recipes.NewEnvSecrets("")
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "mf.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rig := &opsRig{sb: sb, store: store, metrics: ops.NewMetrics()}
	rig.eng, err = engine.New(engine.Options{Store: store, Logger: log, Observer: rig.metrics, Concurrency: 8, Owner: "ops-test",
		AlertEvery: 20 * time.Millisecond, Retry: recipes.RetryPolicy{Attempts: attempts, Backoff: 2 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rig.eng.Close() })
	for _, r := range rs {
		conns, err := resolveConnections(r, secrets, target, false, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		if err := rig.eng.Add(r, conns); err != nil {
			t.Fatal(err)
		}
	}
	rig.metrics.Attach(rig.eng, store)
	rig.http = httptest.NewServer(httpHandler(rig.eng, rig.metrics, nil))
	t.Cleanup(rig.http.Close)
	return rig
}

func newSandbox(t *testing.T, members int, faults sandboxkit.Faults) *sandbox.Server {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{Members: members, Seed: 7, RateLimit: &sandboxkit.Limit{}, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb
}

func (r *opsRig) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	res, err := http.Get(r.http.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, body
}

// scrape parses /metrics.
func (r *opsRig) scrape(t *testing.T) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	status, body := r.get(t, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d: %s", status, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return body, fams
}

// value sums the samples of a family whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		}
	}
	return sum
}

// promtoolCheck lints an exposition with promtool (Debian's prometheus
// package; .ci/run installs it). Missing, it fails the test in CI and
// skips the lint elsewhere.
func promtoolCheck(t *testing.T, exposition []byte) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed (apt-get install prometheus): /metrics cannot be linted")
		}
		t.Log("promtool is not installed: skipping the lint of /metrics (apt-get install prometheus)")
		return
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

type notification struct {
	Kind string         `json:"kind"`
	Body map[string]any `json:"body"`
}

func notifications(t *testing.T, base, kind string) []notification {
	t.Helper()
	res, err := http.Get(base + "/_sandbox/notifications?kind=" + kind)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v struct {
		Notifications []notification `json:"notifications"`
	}
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.Notifications
}

// slackField reads a field block ("*Recipe*\nname") of a Slack message.
func slackField(n notification, label string) string {
	raw, _ := json.Marshal(n.Body)
	s := string(raw)
	key := `*` + label + `*\n`
	i := strings.Index(s, key)
	if i < 0 {
		return ""
	}
	rest := s[i+len(key):]
	return rest[:strings.IndexByte(rest, '"')]
}

// TestFaultDemoAlertsOnceAndMetricsMatchTheSummary is the demo with
// --fail-rate 0.3: every example recipe, the alert recipes included,
// against a sandbox failing three requests in ten. Dead letters reach the
// sandbox's sink as one Slack message per recipe and window; /metrics
// counts exactly what the run summary says, and passes promtool.
func TestFaultDemoAlertsOnceAndMetricsMatchTheSummary(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault demo: a few seconds")
	}
	sb := newSandbox(t, 100, sandboxkit.Faults{FailRate: 0.3})
	// Three attempts a step: at three failures in ten, some requests fail
	// three times and their runs are dead-lettered (eight would retry them
	// all), and many fail twice, which the retries alert reports.
	rig := newOpsRigWith(t, sb, 3, "../../examples")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	begin := time.Now()
	// Passes until one sees nothing new, as run --once does; a poll whose
	// retries were spent (three failures running: about one poll in 40
	// here) is polled again by the next pass rather than ending the demo.
	var sum *engine.Summary
	seen := int64(-1)
	for pass := 1; pass <= 12; pass++ {
		s, err := rig.eng.RunOnce(ctx)
		if err != nil && !connectors.Retryable(err) && !errors.Is(err, connectors.ErrRetriesSpent) {
			t.Fatalf("the demo, pass %d: %v", pass, err)
		}
		sum = s
		var events int64
		for _, r := range s.Recipes {
			events += r.Events
		}
		if err == nil && events == seen {
			break
		}
		seen = events
	}
	end := time.Now()
	windows := 1
	if !begin.Truncate(15 * time.Minute).Equal(end.Truncate(15 * time.Minute)) {
		windows = 2 // the run crossed a window's end: a second alert is allowed
	}

	// Alerts: per recipe and cause, one per window. Dead letters are
	// rare under the step policy's retries; steps needing a third attempt
	// are not (each attempt fails three times in ten).
	hourWindows := 1
	if !begin.Truncate(time.Hour).Equal(end.Truncate(time.Hour)) {
		hourWindows = 2
	}
	slack := notifications(t, sb.BaseURL(), "slack")
	type key struct{ recipe, cause string }
	perKey := map[key]int{}
	alerted := map[key]int{}
	for _, n := range slack {
		k := key{slackField(n, "Recipe"), slackField(n, "Cause")}
		perKey[k]++
		var c int
		json.Unmarshal([]byte(slackField(n, "Count")), &c)
		alerted[k] += c
	}
	var dead int64
	for _, r := range sum.Recipes {
		dead += r.Dead
		k := key{r.Recipe, "run_failed"}
		got := perKey[k]
		switch {
		case r.Dead == 0 && got != 0:
			t.Errorf("%s: %d run_failed alerts without a dead letter", r.Recipe, got)
		case r.Dead > 0 && (got < 1 || got > windows):
			t.Errorf("%s: %d dead letters made %d Slack alerts, want 1 per 15-minute window (%d)", r.Recipe, r.Dead, got, windows)
		case r.Dead > 0 && (alerted[k] < 1 || int64(alerted[k]) > r.Dead):
			t.Errorf("%s: the alerts count %d dead letters of %d", r.Recipe, alerted[k], r.Dead)
		}
		delete(perKey, k)
	}
	retrying := 0
	for k, n := range perKey {
		if k.cause != "step_retrying" {
			t.Errorf("unexpected alerts %v: %d", k, n)
			continue
		}
		retrying += n
	}
	if retrying == 0 {
		t.Error("no step_retrying alert although a third of the requests failed")
	}
	if dead == 0 {
		t.Error("no run was dead-lettered: the run_failed alert is untested")
	}
	// One per step and hour: the steps of a recipe bound its alerts.
	steps := map[string]int{}
	rs, _ := recipes.Load(recipes.Options{Registry: connectors.Default, Connections: []string{sandboxConnFile}}, "../../examples")
	for _, r := range rs {
		steps[r.Name] = len(r.Steps)
	}
	for k, n := range perKey {
		if k.cause == "step_retrying" && n > steps[k.recipe]*hourWindows {
			t.Errorf("%s: %d step_retrying alerts for %d steps in %d window(s)", k.recipe, n, steps[k.recipe], hourWindows)
		}
	}
	if n := len(notifications(t, sb.BaseURL(), "email")); n != 0 {
		t.Errorf("%d emails: nothing refused the credentials", n)
	}
	t.Logf("%d dead letters; Slack alerts: %d (%d about retries), in %s", dead, len(slack), retrying, end.Sub(begin).Round(time.Millisecond))

	// /metrics: the counters are the summary's, exactly.
	exposition, fams := rig.scrape(t)
	for _, r := range sum.Recipes {
		for outcome, want := range map[string]int64{"succeeded": r.Succeeded, "skipped": r.Skipped, "suppressed": r.Suppressed, "dead": r.Dead} {
			if got := value(fams, "memberflow_runs_total", map[string]string{"recipe": r.Recipe, "outcome": outcome}); got != float64(want) {
				t.Errorf("memberflow_runs_total{recipe=%q,outcome=%q} = %v, the summary says %d", r.Recipe, outcome, got, want)
			}
		}
		if got := value(fams, "memberflow_events_total", map[string]string{"recipe": r.Recipe}); got != float64(r.Events) {
			t.Errorf("memberflow_events_total{recipe=%q} = %v, the summary says %d", r.Recipe, got, r.Events)
		}
		if got := value(fams, "memberflow_events_duplicate_total", map[string]string{"recipe": r.Recipe}); got != float64(r.Duplicates) {
			t.Errorf("memberflow_events_duplicate_total{recipe=%q} = %v, the summary says %d", r.Recipe, got, r.Duplicates)
		}
		if got := value(fams, "memberflow_echoes_suppressed_total", map[string]string{"recipe": r.Recipe}); got != float64(r.Suppressed) {
			t.Errorf("memberflow_echoes_suppressed_total{recipe=%q} = %v, the summary says %d", r.Recipe, got, r.Suppressed)
		}
	}
	if got := value(fams, "memberflow_dead_letters_open", nil); got != float64(dead) {
		t.Errorf("memberflow_dead_letters_open = %v, want %d", got, dead)
	}
	if got := value(fams, "memberflow_queue_depth", nil); got != 0 {
		t.Errorf("memberflow_queue_depth = %v after the demo drained", got)
	}
	// The SQLite store's one writer: busy for some of the demo, and
	// several writes to a commit at times, never fewer than one.
	commits, writes := value(fams, "memberflow_store_commits_total", nil), value(fams, "memberflow_store_writes_total", nil)
	if busy := value(fams, "memberflow_store_writer_busy_seconds_total", nil); busy <= 0 || commits == 0 || writes < commits {
		t.Errorf("store writer: busy %vs, %v commits of %v writes; want some time, a write or more a commit", busy, commits, writes)
	}
	if value(fams, "memberflow_http_requests_total", map[string]string{"code": "5xx"}) == 0 || value(fams, "memberflow_step_retries_total", nil) == 0 {
		t.Error("no 5xx and no retry counted against a sandbox failing 30% of requests")
	}
	// Every alert fed is an event of an alert recipe; those their
	// conditions let through are the sink's messages.
	var fed, posted int64
	for _, r := range sum.Recipes {
		if strings.HasSuffix(r.Recipe, "-to-slack") {
			fed += r.Events
			posted += r.Succeeded
		}
	}
	if got := value(fams, "memberflow_alerts_total", map[string]string{"outcome": "fed"}); got != float64(fed) {
		t.Errorf("memberflow_alerts_total{outcome=fed} = %v, the alert recipes saw %d events", got, fed)
	}
	if posted != int64(len(slack)) {
		t.Errorf("the Slack alert recipes succeeded %d times, the sink has %d messages", posted, len(slack))
	}
	// No member id in any label: labels are bounded.
	for name, f := range fams {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if strings.Contains(l.GetValue(), "user/") || strings.Contains(l.GetValue(), "@") {
					t.Errorf("%s has an unbounded label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
	promtoolCheck(t, exposition)
}

// TestReadyzFollowsRevokedCredentials: the sandbox refuses Accredible's
// key; /readyz turns 503 naming the connection, the example alert sends
// one email (to the sandbox's in-process SMTP server), and restoring the
// key makes the runner ready again.
func TestReadyzFollowsRevokedCredentials(t *testing.T) {
	sb := newSandbox(t, 20, sandboxkit.Faults{})
	dir := t.TempDir()
	// The example push recipe, polling every 100 ms, beside the example
	// alert recipe.
	src, err := os.ReadFile("../../examples/accredible/push-certificate-to-member.yaml")
	if err != nil {
		t.Fatal(err)
	}
	recipe := strings.Replace(string(src), "  start: beginning\n", "  start: beginning\n  interval: 100ms\n", 1)
	if recipe == string(src) {
		t.Fatal("the push recipe changed: cannot set its interval")
	}
	os.WriteFile(filepath.Join(dir, "push.yaml"), []byte(recipe), 0o600)
	rig := newOpsRig(t, sb, filepath.Join(dir, "push.yaml"), "../../examples/operations/accredible-auth-to-email.yaml")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rig.eng.Run(ctx) }()
	defer func() { cancel(); <-done }()

	readyz := func() (int, ops.Health) {
		status, body := rig.get(t, "/readyz")
		var h ops.Health
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatalf("/readyz body %s: %v", body, err)
		}
		return status, h
	}
	waitFor(t, "ready", func() bool { s, _ := readyz(); return s == http.StatusOK })
	if status, body := rig.get(t, "/healthz"); status != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("/healthz: %d %s", status, body)
	}

	if err := sb.SetRevoked("accredible", true); err != nil {
		t.Fatal(err)
	}
	var h ops.Health
	waitFor(t, "unready", func() bool {
		var s int
		s, h = readyz()
		return s == http.StatusServiceUnavailable
	})
	if h.Status != "unready" || len(h.Failing) == 0 || h.Failing[0] != "auth:accredible" {
		t.Errorf("/readyz %+v, want failing auth:accredible", h)
	}
	for _, c := range h.Checks {
		if c.Name == "auth:accredible" && !strings.Contains(c.Error, "HTTP 401") {
			t.Errorf("check %+v does not say why", c)
		}
	}
	waitFor(t, "the email", func() bool { return len(notifications(t, sb.BaseURL(), "email")) == 1 })
	mail := notifications(t, sb.BaseURL(), "email")[0]
	if subj, _ := mail.Body["subject"].(string); subj != "memberflow: Accredible refuses the credentials of connection accredible" {
		t.Errorf("email %+v", mail.Body)
	}
	_, fams := rig.scrape(t)
	if got := value(fams, "memberflow_connection_auth_failing", map[string]string{"connection": "accredible"}); got != 1 {
		t.Errorf("memberflow_connection_auth_failing{connection=accredible} = %v, want 1", got)
	}

	if err := sb.SetRevoked("accredible", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready again", func() bool { s, _ := readyz(); return s == http.StatusOK })
	time.Sleep(200 * time.Millisecond)
	if n := len(notifications(t, sb.BaseURL(), "email")); n != 1 {
		t.Errorf("%d emails, want 1: one per cause and window", n)
	}
	_, fams = rig.scrape(t)
	if got := value(fams, "memberflow_connection_auth_failing", map[string]string{"connection": "accredible"}); got != 0 {
		t.Errorf("memberflow_connection_auth_failing{connection=accredible} = %v after the restore", got)
	}
	if value(fams, "memberflow_http_requests_total", map[string]string{"connector": "accredible", "operation": "list_credentials", "code": "4xx"}) == 0 &&
		value(fams, "memberflow_http_requests_total", map[string]string{"connector": "accredible", "code": "4xx"}) == 0 {
		t.Error("no 4xx counted for accredible while its key was refused")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
