package accredible_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/accredible"
	"github.com/memberflow/memberflow/connectors/accredible/sandbox"
	"github.com/memberflow/memberflow/connectors/files"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/internal/sandboxkit"
	"github.com/memberflow/memberflow/recipes"
)

const crashRecipe = `
version: 1
name: issue-from-file
connections:
  members: { connector: file }
  certs:
    connector: accredible
    auth: { type: api_key, key: "%s" }
    base_url: "%s"
    rate_limit: off
trigger:
  uses: members.records
  with: { path: members.jsonl, key: id }
  start: beginning
steps:
  - id: certificate
    uses: certs.upsert_credential
    with:
      group_id: 100001
      reference: crash-${{ trigger.id }}
      recipient: { id: "${{ trigger.id }}", name: "${{ trigger.name }}", email: "${{ trigger.email }}" }
      issued_on: "2026-03-01"
`

// bulkWatch slows the first look-up, so that the next runs' calls queue
// into one batch, and records the largest bulk create answered.
type bulkWatch struct {
	base    http.RoundTripper
	first   atomic.Bool
	largest atomic.Int32
}

func (b *bulkWatch) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/v2/credentials/search") && !b.first.Swap(true) {
		time.Sleep(150 * time.Millisecond)
	}
	var n int32
	if strings.HasSuffix(r.URL.Path, "/v2/credentials/bulk_create") {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req struct {
			Credentials []any `json:"credentials"`
		}
		_ = json.Unmarshal(body, &req)
		n = int32(len(req.Credentials))
	}
	res, err := b.base.RoundTrip(r)
	if err == nil && n > b.largest.Load() {
		b.largest.Store(n)
	}
	return res, err
}

// crashAfterBulk dies at the first journal write that records an upsert
// as done once a bulk create of several credentials was answered: the
// credentials exist, their runs' outcomes are not journaled.
type crashAfterBulk struct {
	engine.Store
	watch *bulkWatch
	after bool
	mu    sync.Mutex
	dead  bool
	hit   bool
}

var errCrashed = fmt.Errorf("simulated crash")

func (c *crashAfterBulk) alive() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return errCrashed
	}
	return nil
}

func (c *crashAfterBulk) Record(ctx context.Context, lease engine.Lease, steps []engine.StepRecord, fin *engine.Completion) error {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return errCrashed
	}
	crash := false
	for _, s := range steps {
		crash = crash || (s.Status == engine.StepSucceeded && c.watch.largest.Load() >= 2)
	}
	if crash && !c.after {
		c.dead, c.hit = true, true
		c.mu.Unlock()
		return errCrashed
	}
	c.mu.Unlock()
	err := c.Store.Record(ctx, lease, steps, fin)
	if crash {
		c.mu.Lock()
		c.dead, c.hit = true, true
		c.mu.Unlock()
		return errCrashed
	}
	return err
}

func (c *crashAfterBulk) Claim(ctx context.Context, req engine.ClaimRequest) ([]*engine.ClaimedRun, error) {
	if err := c.alive(); err != nil {
		return nil, err
	}
	return c.Store.Claim(ctx, req)
}

func (c *crashAfterBulk) Advance(ctx context.Context, recipe string, adv engine.Advance) ([]engine.Enqueued, error) {
	if err := c.alive(); err != nil {
		return nil, err
	}
	return c.Store.Advance(ctx, recipe, adv)
}

// TestCrashBetweenBulkCreateAndJournal: a runner issuing certificates in
// batches dies after a bulk create landed and before its runs' outcomes
// are journaled (or after the first one is). The next runner settles each
// in-doubt upsert by its look-up: every member has exactly one
// credential, none is created twice, every run succeeds.
func TestCrashBetweenBulkCreateAndJournal(t *testing.T) {
	const members = 40
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("after=%v", after), func(t *testing.T) {
			sb := sandbox.New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
			sb.Seed(sandboxkit.Seed{Seed: 1, Now: time.Now()})
			srv := httptest.NewServer(sb)
			defer srv.Close()
			seeded := sb.Stats()

			dir := t.TempDir()
			var lines []string
			for i := 1; i <= members; i++ {
				lines = append(lines, fmt.Sprintf(`{"id":"C%03d","name":"Crash Member %d","email":"crash%d@example.org"}`, i, i, i))
			}
			if err := os.WriteFile(filepath.Join(dir, "members.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			reg := connectors.NewRegistry()
			for _, s := range []*connectors.Spec{files.Spec(), accredible.Spec()} {
				if err := reg.Register(s); err != nil {
					t.Fatal(err)
				}
			}
			watch := &bulkWatch{base: http.DefaultTransport}
			run := func(store engine.Store) (*engine.Summary, error) {
				r, diags := recipes.LoadBytes("crash.yaml", []byte(fmt.Sprintf(crashRecipe, sandbox.DemoKey, srv.URL)), recipes.Options{Registry: reg})
				if diags.HasErrors() {
					var b strings.Builder
					diags.WriteText(&b)
					t.Fatal(b.String())
				}
				e, err := engine.New(engine.Options{Store: store, Concurrency: 8, Logger: hclog.NewNullLogger(), Owner: "crash-test",
					Retry: recipes.RetryPolicy{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				conns := map[string]engine.Connection{}
				for name, c := range r.Connections {
					spec, _ := reg.Lookup(c.Connector)
					cfg := connectors.ConnectionConfig{Name: name, Options: map[string]any{"baseDir": dir}, RateLimit: &connectors.RateLimit{}}
					if c.Connector == "accredible" {
						cfg = connectors.ConnectionConfig{Name: name, BaseURL: srv.URL, RateLimit: &connectors.RateLimit{},
							Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: sandbox.DemoKey}, HTTPClient: &http.Client{Transport: watch}}
					}
					conns[name] = engine.Connection{Spec: spec, Config: cfg}
				}
				if err := e.Add(r, conns); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				return e.RunOnce(ctx)
			}
			path := filepath.Join(dir, "s.db")
			s, err := sqlitestore.Open(path, sqlitestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			cs := &crashAfterBulk{Store: s, watch: watch, after: after}
			run(cs) // fails: the store died
			s.Close()
			if !cs.hit {
				t.Fatalf("no bulk create of several credentials before the end (largest %d)", watch.largest.Load())
			}
			atCrash := sb.Stats().Objects["credentials"] - seeded.Objects["credentials"]

			resumed, err := sqlitestore.Open(path, sqlitestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer resumed.Close()
			if _, err := run(resumed); err != nil {
				t.Fatalf("resuming: %v", err)
			}
			runs, err := resumed.ListRuns(context.Background(), engine.RunFilter{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range runs {
				if r.Status != engine.RunSucceeded {
					t.Errorf("run %d (%s) is %s: %s", r.ID, r.EventID, r.Status, r.Error)
				}
			}
			st := sb.Stats()
			if got := st.Objects["credentials"] - seeded.Objects["credentials"]; got != members || st.Duplicates["credentials"] != seeded.Duplicates["credentials"] {
				t.Errorf("%d credentials created (%d at the crash), %d duplicates; want %d, none", got, atCrash, st.Duplicates["credentials"]-seeded.Duplicates["credentials"], members)
			}
			t.Logf("crashed with %d of %d created; largest bulk create %d", atCrash, members, watch.largest.Load())
		})
	}
}
