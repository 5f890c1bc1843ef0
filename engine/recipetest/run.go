package recipetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/recipes"
)

// testSecrets stands in for every secret: tests never see real ones.
type testSecrets struct{}

func (testSecrets) Lookup(name string) (string, bool) {
	return "test-secret-" + strings.ToLower(name), true
}

// instantRetries copies the recipe with its retry delays cut to a
// millisecond, so that a canned 503 then 200 does not make a test slow.
func instantRetries(r *recipes.Recipe) *recipes.Recipe {
	cp := *r
	cp.Steps = make([]*recipes.Step, len(r.Steps))
	for i, s := range r.Steps {
		st := *s
		if s.Retry != nil {
			p := *s.Retry
			p.Backoff, p.MaxBackoff = time.Millisecond, time.Millisecond
			st.Retry = &p
		}
		cp.Steps[i] = &st
	}
	return &cp
}

// runCase runs one case through a fresh engine and store.
func runCase(ctx context.Context, opts Options, log hclog.Logger, r *recipes.Recipe, c *Case) (res CaseResult) {
	start := time.Now()
	res = CaseResult{Recipe: r.File, Name: c.Name, Pos: c.Pos}
	fail := func(pos recipes.Pos, format string, args ...any) {
		res.Failures = append(res.Failures, Failure{Pos: pos, Message: fmt.Sprintf(format, args...)})
	}
	defer func() { res.Duration = time.Since(start) }()

	dir, err := os.MkdirTemp("", "memberflow-test-")
	if err != nil {
		fail(c.Pos, "making a temporary folder: %v", err)
		return res
	}
	defer os.RemoveAll(dir)
	// Local-file connections write under the case's own folder, never
	// into the recipe's.
	filesDir := filepath.Join(dir, "files")

	svc := newCannedService(c.Responses)
	conns := map[string]engine.Connection{}
	for name, rc := range r.Connections {
		spec, ok := opts.Registry.Lookup(rc.Connector)
		if !ok {
			fail(rc.Pos, "connection %q: unknown connector %q", name, rc.Connector)
			return res
		}
		cfg, err := rc.Resolve(testSecrets{})
		if err != nil {
			fail(rc.Pos, "%v", err)
			return res
		}
		base := cfg.BaseURL
		if base == "" {
			base = spec.BaseURL
			cfg.BaseURL = base
		}
		if strings.HasPrefix(base, "smtp://") {
			sink, opts, err := svc.startSMTP(name, cfg.Options)
			if err != nil {
				fail(rc.Pos, "connection %q: starting an SMTP server for the test: %v", name, err)
				return res
			}
			defer sink.Close()
			cfg.BaseURL, cfg.Options = sink.URL(), opts
		}
		cfg.HTTPClient = &http.Client{Transport: svc.transport(name, base, spec)}
		cfg.RateLimit = &connectors.RateLimit{} // off: nothing is sent
		if hasOption(spec, "baseDir") {
			opts := map[string]any{}
			for k, v := range cfg.Options {
				opts[k] = v
			}
			opts["baseDir"] = filepath.Join(filesDir, name)
			cfg.Options = opts
		}
		conns[name] = engine.Connection{Spec: spec, Config: cfg}
	}
	if tr := r.Trigger; tr != nil && tr.Connection != "" {
		if conn, ok := conns[tr.Connection]; ok {
			if ts := conn.Spec.Trigger(tr.Operation); ts != nil {
				for _, msg := range eventProblems(ts.Operation.Output, c.Event) {
					fail(c.Pos, "%s (%s.%s)", msg, tr.Connection, tr.Operation)
				}
			}
		}
	}
	for _, cr := range c.Responses {
		if _, ok := conns[cr.Connection]; !ok {
			fail(cr.Pos, "response for connection %q: the recipe has no such connection (it has %s)", cr.Connection, strings.Join(sortedKeys(conns), ", "))
		}
	}
	for _, er := range c.Expect.Requests {
		if _, ok := conns[er.Connection]; er.Connection != "" && !ok {
			fail(er.Pos, "expected request on connection %q: the recipe has no such connection (it has %s)", er.Connection, strings.Join(sortedKeys(conns), ", "))
		}
	}
	if len(res.Failures) > 0 {
		return res
	}

	store, err := sqlitestore.Open(filepath.Join(dir, "state.db"), sqlitestore.Options{Logger: log})
	if err != nil {
		fail(c.Pos, "opening a temporary store: %v", err)
		return res
	}
	defer store.Close()
	eng, err := engine.New(engine.Options{
		Store: store, Logger: log, Concurrency: 1, Owner: "recipetest",
		Retry: recipes.RetryPolicy{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: time.Millisecond},
	})
	if err != nil {
		fail(c.Pos, "%v", err)
		return res
	}
	defer eng.Close()
	if err := eng.Add(instantRetries(r), conns); err != nil {
		fail(c.Pos, "%v", err)
		return res
	}
	ev := connectors.Event{ID: c.EventID, Subject: c.Subject, Time: time.Now(), Data: c.Event}
	if _, err := eng.Deliver(ctx, r.Name, ev); err != nil {
		fail(c.Pos, "delivering the event: %v", err)
		return res
	}
	if _, err := eng.Drain(ctx); err != nil {
		fail(c.Pos, "running the recipe: %v", err)
		return res
	}
	run, err := caseRun(ctx, store, r.Name)
	if err != nil {
		fail(c.Pos, "%v", err)
		return res
	}
	res.Outcome = run.Status
	res.Requests = svc.exchanges()
	check(&res, c, run, svc)
	checkFiles(&res, c, filesDir)
	return res
}

// caseRun is the audit of the case's one event: its run, or, for an event
// the condition skipped (counted, not run), a run made of its skip sample.
func caseRun(ctx context.Context, store *sqlitestore.Store, recipe string) (*engine.RunDetail, error) {
	runs, err := store.ListRuns(ctx, engine.RunFilter{Recipe: recipe})
	if err != nil {
		return nil, fmt.Errorf("reading the runs: %w", err)
	}
	if len(runs) == 1 {
		run, err := store.GetRun(ctx, runs[0].ID)
		if err != nil {
			return nil, fmt.Errorf("reading the run: %w", err)
		}
		return run, nil
	}
	pages, err := store.ListSkips(ctx, engine.RunFilter{Recipe: recipe})
	if err != nil {
		return nil, fmt.Errorf("reading the skipped events: %w", err)
	}
	if len(runs) == 0 && len(pages) == 1 && pages[0].Count == 1 {
		no := false
		d := &engine.RunDetail{RunInfo: engine.RunInfo{Recipe: recipe, Status: engine.RunSkipped}, Condition: &no}
		if len(pages[0].Sample) == 1 {
			d.EventID, d.Values = pages[0].Sample[0].EventID, pages[0].Sample[0].Values
		}
		return d, nil
	}
	return nil, fmt.Errorf("the event made %d runs and %d skip pages, want one run or one skip", len(runs), len(pages))
}

// hasOption reports whether a connector takes a connection option.
func hasOption(spec *connectors.Spec, name string) bool {
	var sch struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if json.Unmarshal(spec.Options, &sch) != nil {
		return false
	}
	_, ok := sch.Properties[name]
	return ok
}

// checkFiles compares the files local connections wrote (under
// filesDir/<connection>/) with the expected ones; with no_other_writes, a
// file the case does not expect is a failure.
func checkFiles(res *CaseResult, c *Case, filesDir string) {
	fail := func(pos recipes.Pos, format string, args ...any) {
		res.Failures = append(res.Failures, Failure{Pos: pos, Message: fmt.Sprintf(format, args...)})
	}
	written := map[string]string{} // path relative to its connection folder → full path
	conns, _ := os.ReadDir(filesDir)
	for _, conn := range conns {
		root := filepath.Join(filesDir, conn.Name())
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(root, path)
				written[filepath.ToSlash(rel)] = path
			}
			return nil
		})
	}
	expected := map[string]bool{}
	for _, ef := range c.Expect.Files {
		key := filepath.ToSlash(filepath.Clean(ef.Path))
		expected[key] = true
		full, ok := written[key]
		if !ok {
			fail(ef.Pos, "file %s was not written", ef.Path)
			continue
		}
		data, err := os.ReadFile(full)
		if err != nil {
			fail(ef.Pos, "reading %s: %v", ef.Path, err)
			continue
		}
		var lines []any
		for i, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
			var v any
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				fail(ef.Pos, "file %s: line %d is not JSON: %v", ef.Path, i+1, err)
				v = l
			}
			lines = append(lines, v)
		}
		var diffs []Difference
		subset(ef.File, ef.Lines, lines, true, "", &diffs)
		if len(diffs) > 0 {
			var b strings.Builder
			fmt.Fprintf(&b, "file %s does not contain the expected lines:", ef.Path)
			for _, d := range diffs {
				b.WriteString("\n    " + strings.Replace(d.String(), "(body)", "(lines)", 1))
			}
			fail(ef.Pos, "%s", b.String())
		}
	}
	if c.Expect.NoOtherWrites {
		for _, rel := range sortedKeys(written) {
			if !expected[rel] {
				fail(c.Expect.NoOtherWritesPos, "no_other_writes: file %s was written and the case does not expect it", rel)
			}
		}
	}
}

// check compares the run with the case's expectations.
func check(res *CaseResult, c *Case, run *engine.RunDetail, svc *cannedService) {
	fail := func(pos recipes.Pos, format string, args ...any) {
		res.Failures = append(res.Failures, Failure{Pos: pos, Message: fmt.Sprintf(format, args...)})
	}
	sent := res.Requests
	for _, x := range sent {
		if x.Canned == nil {
			body := ""
			if x.Body != nil {
				body = "\n    body: " + compact(x.Body)
			}
			fail(c.Pos, "unexpected request %s: no canned response matches it%s\n%s", x, body, indent(svc.describe(), "    "))
		}
	}
	for _, u := range svc.unused() {
		fail(u.Pos, "canned response %s was never requested (mark it `repeat: true` if it is optional)", u)
	}

	e := c.Expect
	if run.Status != e.Outcome {
		msg := fmt.Sprintf("outcome: want %s, got %s", e.Outcome, run.Status)
		if run.Error != "" {
			msg += "\n    error: " + run.Error
		}
		if run.Condition != nil && !*run.Condition && len(run.Values) > 0 {
			msg += "\n    the condition was false with " + string(run.Values)
		}
		fail(e.OutcomePos, "%s", msg)
	}
	if e.Error != "" && !strings.Contains(run.Error, e.Error) {
		fail(e.ErrorPos, "error: want it to contain %q, got %q", e.Error, run.Error)
	}

	next := 0 // expected requests match in order
	for _, want := range e.Requests {
		matched, failure := matchRequest(want, sent, next)
		if failure != "" {
			fail(want.Pos, "%s", failure)
			continue
		}
		sent[matched].expected = true
		next = matched + 1
	}
	if e.NoOtherWrites {
		for _, x := range sent {
			if x.Write && !x.expected && !repeatsExpected(x, sent) {
				body := ""
				if x.Body != nil {
					body = "\n" + pretty(x.Body, "      ")
				}
				fail(e.NoOtherWritesPos, "no_other_writes: %s was sent and no expected request matches it%s", x, body)
			}
		}
	}
}

// matchRequest finds the first request from index next on that matches
// want, or says why none does.
func matchRequest(want *ExpectedRequest, sent []*Exchange, next int) (int, string) {
	same := func(x *Exchange) bool {
		return x.Method == want.Method && pathMatches(want.Path, x.Path) && queryMatches(want.Query, x.Query) &&
			(want.Connection == "" || want.Connection == x.Connection)
	}
	var closest *Exchange
	var closestDiffs []Difference
	for i := next; i < len(sent); i++ {
		x := sent[i]
		if !same(x) {
			continue
		}
		if want.Body == nil {
			return i, ""
		}
		var diffs []Difference
		subset(want.File, want.Body, x.Body, x.Body != nil, "", &diffs)
		if len(diffs) == 0 {
			return i, ""
		}
		if closest == nil || len(diffs) < len(closestDiffs) {
			closest, closestDiffs = x, diffs
		}
	}
	var b strings.Builder
	switch {
	case closest != nil:
		fmt.Fprintf(&b, "%s: the body does not contain the expected subset:", closest)
		for _, d := range closestDiffs {
			b.WriteString("\n    " + d.String())
		}
		b.WriteString("\n    actual body:\n" + pretty(closest.Body, "      "))
	default:
		earlier := false
		for i := 0; i < next && i < len(sent); i++ {
			if same(sent[i]) {
				earlier = true
			}
		}
		if earlier {
			fmt.Fprintf(&b, "%s was sent, but before the previous expected request (expected requests match in order)", want)
		} else {
			fmt.Fprintf(&b, "%s was not sent", want)
		}
		if len(sent) == 0 {
			b.WriteString("; no request was sent")
		} else {
			b.WriteString("; sent:")
			for i, x := range sent {
				fmt.Fprintf(&b, "\n    %d. %s", i+1, x)
			}
		}
	}
	return -1, b.String()
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// repeatsExpected: a retry of an expected write is that write, not another.
func repeatsExpected(x *Exchange, sent []*Exchange) bool {
	for _, y := range sent {
		if y.expected && y.Connection == x.Connection && y.Method == x.Method && y.Path == x.Path && reflect.DeepEqual(y.Body, x.Body) {
			return true
		}
	}
	return false
}
