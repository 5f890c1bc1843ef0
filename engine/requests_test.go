package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// countingServer answers 200 to everything and counts the requests by
// the first path segment after /r/ (the recipe that sent them, as the
// test's connector names it in the path), or "other".
type countingServer struct {
	mu sync.Mutex
	by map[string]int64
}

func (c *countingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	who := "other"
	if rest, ok := strings.CutPrefix(r.URL.Path, "/r/"); ok {
		who, _, _ = strings.Cut(rest, "/")
	}
	c.mu.Lock()
	c.by[who]++
	c.mu.Unlock()
	w.Write([]byte(`{}`))
}

func (c *countingServer) count(who string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.by[who]
}

// requestingSpec is a service whose trigger and action send requests
// through the connection's client (which the engine instruments): a poll
// sends one request per page and yields the events of input "events" over
// input "pages" pages; the action sends input "requests" requests. Each
// request names its recipe in the path (from the input "recipe"), so that
// the server can count what each recipe sent. Opening the connection sends
// one request outside any recipe.
func requestingSpec() *connectors.Spec {
	get := func(ctx context.Context, cfg connectors.ConnectionConfig, path string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.BaseURL+path, nil)
		if err != nil {
			return err
		}
		res, err := cfg.HTTPClient.Do(req)
		if err != nil {
			return err
		}
		return res.Body.Close()
	}
	obj := json.RawMessage(`{"type":"object"}`)
	return &connectors.Spec{Name: "counted", Title: "Counted", Summary: "counts requests", Auth: []connectors.AuthKind{connectors.AuthNone},
		Open: func(cfg connectors.ConnectionConfig) (connectors.Conn, error) {
			return cfg, get(context.Background(), cfg, "/open")
		},
		Actions: []*connectors.ActionSpec{{
			Operation:  connectors.Operation{Name: "call", Summary: "n requests", Input: obj, Output: obj},
			Idempotent: true,
			Run: func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, error) {
				cfg := conn.(connectors.ConnectionConfig)
				n, _ := in["requests"].(float64)
				for i := 0; i < int(n); i++ {
					if err := get(ctx, cfg, fmt.Sprintf("/r/%s/call", in["recipe"])); err != nil {
						return nil, err
					}
				}
				return &connectors.Result{Output: map[string]any{}}, nil
			},
		}},
		Triggers: []*connectors.TriggerSpec{{
			Operation: connectors.Operation{Name: "items", Summary: "pages of events", Input: obj, Output: obj},
			Poll: func(ctx context.Context, conn connectors.Conn, req connectors.PollRequest) (*connectors.PollResult, error) {
				cfg := conn.(connectors.ConnectionConfig)
				if err := get(ctx, cfg, fmt.Sprintf("/r/%s/poll", req.Params["recipe"])); err != nil {
					return nil, err
				}
				pages, _ := req.Params["pages"].(float64)
				events, _ := req.Params["events"].(float64)
				var page int
				fmt.Sscan(req.Cursor, &page)
				if page >= int(pages) {
					return &connectors.PollResult{Cursor: req.Cursor}, nil
				}
				res := &connectors.PollResult{Cursor: fmt.Sprint(page + 1), More: page+1 < int(pages)}
				for i := page; i < int(events); i += int(pages) {
					id := fmt.Sprintf("%s-%d", req.Params["recipe"], i)
					res.Events = append(res.Events, connectors.Event{ID: id, Subject: id, Data: map[string]any{}})
				}
				return res, nil
			},
		}},
	}
}

// TestRequestsCountedPerRecipe: two recipes share one connection; each
// recipe's summary counts exactly the requests its polls and runs sent,
// as the server saw them, and the connection's opening request is counted
// apart.
func TestRequestsCountedPerRecipe(t *testing.T) {
	srv := &countingServer{by: map[string]int64{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	conns := map[string]engine.Connection{"svc": {Spec: requestingSpec(), Config: connectors.ConnectionConfig{BaseURL: ts.URL, Auth: connectors.Auth{Type: connectors.AuthNone}}}}
	recipe := func(name string, pages, events, perRun float64) *recipes.Recipe {
		return &recipes.Recipe{File: name + ".yaml", Version: 1, Name: name,
			Trigger: &recipes.Trigger{Connection: "svc", Operation: "items", Mode: "poll", Start: connectors.StartBeginning, Interval: time.Hour,
				With: mustTemplate(t, map[string]any{"recipe": name, "pages": pages, "events": events})},
			Steps: []*recipes.Step{{ID: "call", Connection: "svc", Operation: "call",
				With: mustTemplate(t, map[string]any{"recipe": name, "requests": perRun})}}}
	}
	e, err := engine.New(engine.Options{Store: openStore(t, tempDB(t)), Concurrency: 4, Owner: "t",
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Off})})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, r := range []*recipes.Recipe{recipe("one", 2, 6, 1), recipe("two", 3, 9, 2)} {
		if err := e.Add(r, conns); err != nil {
			t.Fatal(err)
		}
	}
	sum := runOnce(t, e)
	want := map[string]struct {
		requests int64
		perEvent float64
	}{
		"one": {2 + 6*1, 8.0 / 6},  // two pages, one request per run
		"two": {3 + 9*2, 21.0 / 9}, // three pages, two per run
	}
	for _, r := range sum.Recipes {
		w := want[r.Recipe]
		if r.Requests != w.requests || r.Requests != srv.count(r.Recipe) {
			t.Errorf("%s: summary counts %d requests, the server saw %d, want %d", r.Recipe, r.Requests, srv.count(r.Recipe), w.requests)
		}
		if r.RequestsPerEvent != w.perEvent {
			t.Errorf("%s: %.3f requests per event, want %.3f", r.Recipe, r.RequestsPerEvent, w.perEvent)
		}
	}
	if sum.OtherRequests != 1 || srv.count("other") != 1 {
		t.Errorf("other requests: summary %d, server %d, want 1 (the connection's opening)", sum.OtherRequests, srv.count("other"))
	}
	if total := srv.count("one") + srv.count("two") + srv.count("other"); sum.Requests != total {
		t.Errorf("summary counts %d requests in all, the server saw %d", sum.Requests, total)
	}
}
