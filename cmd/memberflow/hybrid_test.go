package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
	"github.com/memberflow/memberflow/recipes"
)

// losingTransport loses every fifth registration delivery: the sandbox
// believes it delivered (200), the runner never hears of it.
type losingTransport struct {
	next                      http.RoundTripper
	registrations, lost, done atomic.Int64
}

func (l *losingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	defer l.done.Add(1)
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	var d struct{ Topic string }
	json.Unmarshal(body, &d)
	if d.Topic == "registration.created" && l.registrations.Add(1)%5 == 0 {
		l.lost.Add(1)
		return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("{}")), Request: r, Header: http.Header{}}, nil
	}
	return l.next.RoundTrip(r)
}

// TestHybridTriggerProcessesEveryChangeOnce: registration-to-membership
// takes webhooks and polls to reconcile. With 20% of the deliveries lost,
// every registration still runs, and once.
func TestHybridTriggerProcessesEveryChangeOnce(t *testing.T) {
	lossy := &losingTransport{next: http.DefaultTransport}
	srv, err := sandbox.New(sandbox.Options{Members: 20, Seed: 4, RateLimit: &sandboxkit.Limit{},
		WebhookClient: &http.Client{Transport: lossy, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Off})
	rs, diags := recipes.Load(recipes.Options{Registry: connectors.Default, Connections: []string{sandboxConnFile}},
		"../../examples/accelevents/registration-to-membership.yaml")
	if diags.HasErrors() || len(rs) != 1 {
		t.Fatalf("loading: %v", diags)
	}
	r := rs[0]
	if r.Trigger.Mode != "webhook" || r.Trigger.FallbackPoll == 0 {
		t.Fatalf("the example is not hybrid: %+v", r.Trigger)
	}
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "hybrid.db"), sqlitestore.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	eng, err := engine.New(engine.Options{Store: store, Logger: log, Concurrency: 4, Owner: "hybrid-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	target := newSandboxAt(ctx, base, log)
	conns, err := resolveConnections(r, recipes.SecretMap{}, target, false, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Add(r, conns); err != nil {
		t.Fatal(err)
	}

	// The first one-shot pass backfills what exists (the reconciling poll).
	if _, err := eng.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	before := booked(t, store, r.Name)

	hooks := httptest.NewServer(eng.WebhookHandler())
	defer hooks.Close()
	if _, err := srv.RegisterWebhook("accelevents", hooks.URL+eng.WebhookPaths()[r.Name]); err != nil {
		t.Fatal(err)
	}
	const registrations = 20
	if _, err := srv.Mutate([]sandbox.MutateRequest{{Service: "accelevents", Kind: "register", Count: registrations}}); err != nil {
		t.Fatal(err)
	}
	// Each registration sends registration.created and order.paid.
	waitUntil(t, "every delivery attempted", func() bool { return lossy.done.Load() >= 2*registrations })
	if lossy.lost.Load() != registrations/5 {
		t.Fatalf("%d deliveries lost, want %d", lossy.lost.Load(), registrations/5)
	}
	queued, err := store.ListRuns(ctx, engine.RunFilter{Recipe: r.Name, Status: engine.RunQueued})
	if err != nil {
		t.Fatal(err)
	}
	if len(queued) != registrations-registrations/5 {
		t.Fatalf("%d runs queued by webhooks, want %d", len(queued), registrations-registrations/5)
	}

	// The reconciling poll finds the lost ones and drops what webhooks
	// brought already.
	sum, err := eng.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := booked(t, store, r.Name)
	if got, want := len(after), len(before)+registrations; got != want {
		t.Errorf("%d registrations ran, want %d (%d before, %d new)", got, want, len(before), registrations)
	}
	for subject, n := range after {
		if n != 1 {
			t.Errorf("%s ran %d times, want once", subject, n)
		}
	}
	rsum := sum.Recipes[0]
	if rsum.Duplicates < registrations-registrations/5 {
		t.Errorf("summary %+v: want the webhook-delivered registrations dropped as duplicates by the poll", rsum)
	}
	if rsum.Dead > 0 {
		t.Errorf("summary %+v: runs dead-lettered", rsum)
	}
}

// booked counts runs by subject (attendee) for a recipe.
func booked(t *testing.T, store engine.Store, recipe string) map[string]int {
	t.Helper()
	runs, err := store.ListRuns(context.Background(), engine.RunFilter{Recipe: recipe, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range runs {
		out[r.Subject]++
	}
	return out
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
