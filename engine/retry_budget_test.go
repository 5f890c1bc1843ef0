package engine_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// TestOneFailingStepSendsItsAttemptsOnly counts the requests one step
// makes against a service that answers every request 503: the step's
// policy (8 attempts by default) is the only retry, so 8 requests, not
// the 32 (4 HTTP-client tries × 8 engine attempts) it used to send.
func TestOneFailingStepSendsItsAttemptsOnly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		method   string
		attempts int
	}{
		{"POST, default policy", http.MethodPost, 8},
		{"GET, default policy", http.MethodGet, 8},
		{"PUT, 3 attempts", http.MethodPut, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.WriteHeader(http.StatusServiceUnavailable)
			}))
			defer srv.Close()
			spec := &connectors.Spec{
				Name: "flaky", Title: "Flaky", Summary: "answers 503", Auth: []connectors.AuthKind{connectors.AuthNone},
				Open: func(cfg connectors.ConnectionConfig) (connectors.Conn, error) {
					return apiclient.New(apiclient.Config{Service: "flaky", BaseURL: srv.URL})
				},
				Actions: []*connectors.ActionSpec{{
					Operation: connectors.Operation{Name: "write", Summary: "one request", Input: json.RawMessage(`{"type":"object"}`), Output: json.RawMessage(`{}`)},
					Run: func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, error) {
						_, err := conn.(*apiclient.Client).Do(ctx, apiclient.Request{Method: tc.method, Path: "/things", Body: map[string]any{"a": 1}})
						return nil, err
					},
					Settle: func(context.Context, connectors.Conn, map[string]any) (*connectors.Result, bool, error) {
						return nil, false, nil
					},
				}},
				Triggers: []*connectors.TriggerSpec{{
					Operation: connectors.Operation{Name: "tick", Summary: "one event", Input: json.RawMessage(`{"type":"object"}`), Output: json.RawMessage(`{"type":"object"}`)},
					Poll: func(_ context.Context, _ connectors.Conn, req connectors.PollRequest) (*connectors.PollResult, error) {
						if req.Cursor != "" {
							return &connectors.PollResult{Cursor: req.Cursor}, nil
						}
						return &connectors.PollResult{Cursor: "1", Events: []connectors.Event{{ID: "e1", Subject: "s1", Data: map[string]any{}}}}, nil
					},
				}},
			}
			conns := map[string]engine.Connection{"svc": {Spec: spec, Config: connectors.ConnectionConfig{Auth: connectors.Auth{Type: connectors.AuthNone}}}}
			r := &recipes.Recipe{File: "flaky.yaml", Version: 1, Name: "flaky",
				Trigger: &recipes.Trigger{Connection: "svc", Operation: "tick", Mode: "poll", Start: connectors.StartBeginning, Interval: time.Hour, With: mustTemplate(t, map[string]any{})},
				Steps:   []*recipes.Step{{ID: "write", Connection: "svc", Operation: "write", With: mustTemplate(t, map[string]any{})}},
			}
			policy := recipes.RetryPolicy{Attempts: tc.attempts, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
			if tc.attempts == 8 {
				policy.Attempts = 0 // the engine's default
			}
			e, err := engine.New(engine.Options{Store: openStore(t, tempDB(t)), Concurrency: 1, Owner: "t",
				Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Off}), Retry: policy})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.Close() })
			if err := e.Add(r, conns); err != nil {
				t.Fatal(err)
			}
			sum := runOnce(t, e)
			if got := recipeSummary(t, sum, "flaky"); got.Dead != 1 {
				t.Fatalf("summary %+v, want the run dead-lettered", got)
			}
			if got := hits.Load(); got != int64(tc.attempts) {
				t.Fatalf("the service saw %d requests for one failing step, want %d (the step's attempts)", got, tc.attempts)
			}
		})
	}
}
