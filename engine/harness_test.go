package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/recipes"
)

const (
	certsKey   = "sk-certs-secret-4242"
	membersKey = "sk-members-secret-1717"
)

func mustExpr(t testing.TB, src string) *recipes.Expr {
	t.Helper()
	e, err := recipes.CompileExpr(src, recipes.Pos{File: "test.yaml", Line: 1, Column: 1})
	if err != nil {
		t.Fatalf("compiling %q: %v", src, err)
	}
	return e
}

func mustTemplate(t testing.TB, v any) *recipes.Template {
	t.Helper()
	tp, err := recipes.CompileTemplate(v, recipes.Pos{File: "test.yaml", Line: 1, Column: 1})
	if err != nil {
		t.Fatalf("compiling template %v: %v", v, err)
	}
	return tp
}

// issueRecipe: an active member without a certificate gets one, and the
// certificate's id is written back onto the member.
func issueRecipe(t testing.TB) *recipes.Recipe {
	return &recipes.Recipe{
		File: "issue.yaml", Version: 1, Name: "issue",
		Vars: map[string]any{"course": "go-101"},
		Trigger: &recipes.Trigger{Connection: "members", Operation: "member_updated", Mode: "poll",
			Start: connectors.StartBeginning, Interval: 20 * time.Millisecond,
			With: mustTemplate(t, map[string]any{"page_size": 2})},
		When: mustExpr(t, `trigger.status == "active" && trigger.cert == ""`),
		Steps: []*recipes.Step{
			{ID: "issue", Connection: "certs", Operation: "create_cert",
				With:  mustTemplate(t, map[string]any{"member": "${{ trigger.id }}", "course": "${{ vars.course }}"}),
				Retry: &recipes.RetryPolicy{Attempts: 4, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}},
			{ID: "link", Connection: "members", Operation: "set_cert",
				With: mustTemplate(t, map[string]any{"member": "${{ trigger.id }}", "cert": "${{ steps.issue.id }}"})},
		},
	}
}

func connections(svc *fakeService) map[string]engine.Connection {
	spec := fakeSpec(svc)
	return map[string]engine.Connection{
		"members": {Spec: spec, Config: connectors.ConnectionConfig{
			Auth:    connectors.Auth{Type: connectors.AuthAPIKey, Key: membersKey},
			Webhook: connectors.Webhook{Secret: webhookSecret}}},
		"certs": {Spec: spec, Config: connectors.ConnectionConfig{
			Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: certsKey}}},
	}
}

func openStore(t testing.TB, path string) engine.Store {
	t.Helper()
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	return s
}

// storeKinds opens the stores engine tests run on: each function returns
// a new handle on one store of its kind, per test (a second handle is
// another runner).
func storeKinds(t *testing.T) map[string]func(t *testing.T) engine.Store {
	path := tempDB(t)
	var dsn, schema string
	return map[string]func(t *testing.T) engine.Store{
		"sqlite": func(t *testing.T) engine.Store {
			s := openStore(t, path)
			t.Cleanup(func() { s.Close() })
			return s
		},
		"postgres": func(t *testing.T) engine.Store {
			if schema == "" {
				dsn, schema = pgstore.TestSchema(t)
			}
			s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: schema, MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
}

func tempDB(t testing.TB) string { return filepath.Join(t.TempDir(), "memberflow.db") }

type engineOpt func(*engine.Options)

func newEngine(t testing.TB, store engine.Store, svc *fakeService, rs []*recipes.Recipe, opts ...engineOpt) *engine.Engine {
	t.Helper()
	o := engine.Options{Store: store, Concurrency: 4, Owner: "test-runner",
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Off}),
		Retry:  recipes.RetryPolicy{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond},
		Grace:  5 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	e, err := engine.New(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if err := e.Add(r, connections(svc)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func runOnce(t testing.TB, e *engine.Engine) *engine.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sum, err := e.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	return sum
}

func recipeSummary(t testing.TB, s *engine.Summary, name string) engine.RecipeSummary {
	t.Helper()
	for _, r := range s.Recipes {
		if r.Recipe == name {
			return r
		}
	}
	t.Fatalf("no summary for recipe %q in %+v", name, s)
	return engine.RecipeSummary{}
}

// assertExactlyOnce checks the service: every active member has exactly
// one certificate and carries its id; every other member has none.
func assertExactlyOnce(t testing.TB, svc *fakeService) {
	t.Helper()
	svc.mu.Lock()
	members := map[string]member{}
	for id, m := range svc.members {
		members[id] = *m
	}
	svc.mu.Unlock()
	for id, m := range members {
		certs := svc.certsFor(id)
		switch {
		case m.Status == "active" && len(certs) != 1:
			t.Errorf("member %s: %d certificates %v, want exactly 1", id, len(certs), certs)
		case m.Status == "active" && m.Cert != certs[0]:
			t.Errorf("member %s carries certificate %q, want %q", id, m.Cert, certs[0])
		case m.Status != "active" && len(certs) != 0:
			t.Errorf("member %s is %s but has certificates %v", id, m.Status, certs)
		}
	}
}

// assertNothingEnding checks, once e stopped, that no run is left
// marked as still ending and no claim as in flight: either would keep
// the renewals from releasing anything for the rest of the runner's life.
func assertNothingEnding(t testing.TB, e *engine.Engine) {
	t.Helper()
	if ending, claiming := e.LeaseBookkeepingForTest(); ending != 0 || claiming != 0 {
		t.Errorf("after the stop, %d run(s) still ending and %d claim(s) in flight; want none", ending, claiming)
	}
}

// assertAllDone checks that no run is left queued, running or dead.
func assertAllDone(t testing.TB, s engine.Store) {
	t.Helper()
	runs, err := s.ListRuns(context.Background(), engine.RunFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		switch r.Status {
		case engine.RunSucceeded, engine.RunSkipped, engine.RunSuppressed:
		default:
			t.Errorf("run %d (%s, event %s) is %s: %s", r.ID, r.Recipe, r.EventID, r.Status, r.Error)
		}
	}
}

var errCrashed = errors.New("simulated crash: the process is gone")

// crashStore is a store that dies at a chosen write: with after=false the
// k-th write is not applied, with after=true it is applied but its caller
// never learns it. From then on, every call fails, as if the process had
// been killed.
type crashStore struct {
	engine.Store
	mu     sync.Mutex
	writes int
	at     int
	after  bool
	dead   bool
	points []string // what each write was, for failure messages
	// onCrash, when set, runs as the store dies.
	onCrash func()
	// queue hides Advance.Claim (see queueStore).
	queue bool
}

// queueStore hides Advance.Claim: every run goes through the queue and
// the run path (claims, workers, batchers), as with a store that does not
// claim at advance.
type queueStore struct{ engine.Store }

func (q queueStore) Advance(ctx context.Context, recipe string, adv engine.Advance) ([]engine.Enqueued, error) {
	adv.Claim = nil
	return q.Store.Advance(ctx, recipe, adv)
}

// runModes are the two ways a polled page's runs execute: claimed with
// the page and run across it (pages.go), or one by one from the queue.
var runModes = []struct {
	name string
	wrap func(engine.Store) engine.Store
}{
	{"pages", func(s engine.Store) engine.Store { return s }},
	{"queue", func(s engine.Store) engine.Store { return queueStore{s} }},
}

func (c *crashStore) write(what string, fn func() error) error {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return errCrashed
	}
	c.writes++
	c.points = append(c.points, what)
	crash := c.writes == c.at
	if crash && !c.after {
		c.dead = true
		c.mu.Unlock()
		if c.onCrash != nil {
			c.onCrash()
		}
		return errCrashed
	}
	c.mu.Unlock()
	err := fn()
	if crash {
		c.mu.Lock()
		c.dead = true
		c.mu.Unlock()
		if c.onCrash != nil {
			c.onCrash()
		}
		return errCrashed
	}
	return err
}

func (c *crashStore) read() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return errCrashed
	}
	return nil
}

func (c *crashStore) Advance(ctx context.Context, recipe string, adv engine.Advance) ([]engine.Enqueued, error) {
	if c.queue {
		adv.Claim = nil
	}
	var out []engine.Enqueued
	err := c.write("advance", func() (err error) { out, err = c.Store.Advance(ctx, recipe, adv); return })
	return out, err
}

func (c *crashStore) Claim(ctx context.Context, req engine.ClaimRequest) ([]*engine.ClaimedRun, error) {
	var out []*engine.ClaimedRun
	err := c.write("claim", func() (err error) { out, err = c.Store.Claim(ctx, req); return })
	return out, err
}

func (c *crashStore) Record(ctx context.Context, lease engine.Lease, steps []engine.StepRecord, fin *engine.Completion) error {
	what := "record"
	for _, s := range steps {
		what += " " + s.StepID + ":" + s.Status
	}
	if fin != nil {
		what += " finish:" + fin.Status
	}
	return c.write(what, func() error { return c.Store.Record(ctx, lease, steps, fin) })
}

func (c *crashStore) RenewLeases(ctx context.Context, owner string, until time.Time, runs []int64, releaseBefore time.Time) ([]int64, error) {
	if err := c.read(); err != nil {
		return nil, err
	}
	return c.Store.RenewLeases(ctx, owner, until, runs, releaseBefore)
}

func (c *crashStore) Cursor(ctx context.Context, recipe string) (string, error) {
	if err := c.read(); err != nil {
		return "", err
	}
	return c.Store.Cursor(ctx, recipe)
}

func (c *crashStore) Steps(ctx context.Context, runID int64) ([]engine.StepRecord, error) {
	if err := c.read(); err != nil {
		return nil, err
	}
	return c.Store.Steps(ctx, runID)
}
