package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// itemService is a small service sandbox for testing the combined server
// on its own: items with ids, a create, a mutation kind and webhook URLs.
type itemService struct {
	name   string
	router *sandboxkit.Router
	opts   sandboxkit.Options

	mu       sync.Mutex
	items    []string
	hooks    []string
	seedSeen sandboxkit.Seed
}

func newItemService(name string) Factory {
	return func(opts sandboxkit.Options) sandboxkit.Service {
		s := &itemService{name: name, router: sandboxkit.NewRouter(), opts: opts}
		s.router.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
			i, err := strconv.Atoi(r.PathValue("id"))
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil || i < 0 || i >= len(s.items) {
				sandboxkit.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "Not found"})
				return
			}
			sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"id": i, "name": s.items[i]})
		})
		s.router.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) {
			var in struct{ Name string }
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" {
				sandboxkit.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": map[string]any{"name": []string{"can't be blank"}}})
				return
			}
			s.mu.Lock()
			s.items = append(s.items, in.Name)
			id := len(s.items) - 1
			s.mu.Unlock()
			sandboxkit.WriteJSON(w, http.StatusCreated, map[string]any{"id": id, "name": in.Name})
		})
		s.router.HandleFunc("POST /_sandbox/webhooks", func(w http.ResponseWriter, r *http.Request) {
			var in struct{ URL string }
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.URL == "" {
				sandboxkit.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "url is required"})
				return
			}
			s.mu.Lock()
			s.hooks = append(s.hooks, in.URL)
			s.mu.Unlock()
			sandboxkit.WriteJSON(w, http.StatusOK, map[string]string{"registered": in.URL})
		})
		return s
	}
}

func (s *itemService) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }
func (s *itemService) Pattern(r *http.Request) string                   { return s.router.Pattern(r) }
func (s *itemService) Name() string                                     { return s.name }

func (s *itemService) Seed(cfg sandboxkit.Seed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seedSeen = cfg
	s.items = s.items[:0]
	for i := 0; i < cfg.Members; i++ {
		s.items = append(s.items, fmt.Sprintf("item-%d-%d", cfg.Seed, i))
	}
}

func (s *itemService) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items, s.hooks = nil, nil
}

func (s *itemService) Stats() sandboxkit.ServiceStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen, dups := map[string]bool{}, 0
	for _, it := range s.items {
		if seen[it] {
			dups++
		}
		seen[it] = true
	}
	return sandboxkit.ServiceStats{Objects: map[string]int{"items": len(s.items)}, Duplicates: map[string]int{"items": dups}}
}

func (s *itemService) Mutate(m sandboxkit.Mutation) (map[string]any, error) {
	if m.Kind != "rename" {
		return nil, fmt.Errorf("unknown kind %q; kinds: rename", m.Kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(m.Count, len(s.items))
	for i := 0; i < n; i++ {
		s.items[i] += "-renamed"
	}
	return map[string]any{"renamed": n}, nil
}

func newTestServer(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	if opts.Services == nil {
		opts.Services = []Factory{newItemService("alpha"), newItemService("beta")}
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(data)
}

func TestRouting(t *testing.T) {
	_, ts := newTestServer(t, Options{Members: 3, Seed: 7})
	tests := []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"prefix stripped", "GET", "/alpha/items/2", "", 200, `"name":"item-7-2"`},
		{"second service", "GET", "/beta/items/0", "", 200, `"item-7-0"`},
		{"service's own 404", "GET", "/alpha/items/99", "", 404, `Not found`},
		{"service's own validation", "POST", "/alpha/items", `{}`, 422, `can't be blank`},
		{"unknown service", "GET", "/gamma/items/1", "", 404, `no service at \"/gamma\"; the sandbox serves /alpha, /beta`},
		{"index", "GET", "/", "", 200, `"alpha": "http://`},
		{"unknown admin endpoint", "GET", "/_sandbox/nope", "", 404, `no sandbox endpoint GET /_sandbox/nope`},
		{"admin method", "GET", "/_sandbox/reset", "", 404, `no sandbox endpoint`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(t, tc.method, ts.URL+tc.path, tc.body)
			if status != tc.status || !strings.Contains(body, tc.contains) {
				t.Fatalf("got %d %s, want %d containing %s", status, body, tc.status, tc.contains)
			}
		})
	}
}

func TestSeedUsesOptions(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s, _ := newTestServer(t, Options{Members: 4, Seed: 9, Now: func() time.Time { return at }})
	got := s.byName["alpha"].svc.(*itemService).seedSeen
	if got.Members != 4 || got.Seed != 9 || !got.Now.Equal(at) || got.People != nil {
		t.Fatalf("seed = %+v, want 4 members, seed 9, now %v and no people source", got, at)
	}
}

func TestStats(t *testing.T) {
	s, ts := newTestServer(t, Options{Members: 2})
	do(t, "GET", ts.URL+"/alpha/items/0", "")
	do(t, "GET", ts.URL+"/alpha/items/1", "")
	do(t, "GET", ts.URL+"/alpha/items/9", "")
	do(t, "POST", ts.URL+"/beta/items", `{"name":"item-0-0"}`) // a duplicate of a seeded item
	do(t, "DELETE", ts.URL+"/beta/items/0", "")

	status, body := do(t, "GET", ts.URL+"/_sandbox/stats", "")
	if status != 200 {
		t.Fatalf("stats: %d %s", status, body)
	}
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	alpha, beta := st.Services["alpha"], st.Services["beta"]
	checks := []struct {
		name      string
		got, want int64
	}{
		{"alpha GET route", alpha.Requests["GET /items/{id}"], 3},
		{"alpha 200", alpha.Responses["200"], 2},
		{"alpha 404", alpha.Responses["404"], 1},
		{"beta POST route", beta.Requests["POST /items"], 1},
		{"beta unrouted", beta.Requests["DELETE (no route)"], 1},
		{"beta 201", beta.Responses["201"], 1},
		{"beta 405", beta.Responses["405"], 1},
		{"beta objects", int64(beta.Objects["items"]), 3},
		{"beta duplicates", int64(beta.Duplicates["items"]), 1},
		{"total objects", int64(st.Totals.Objects), 5},
		{"total duplicates", int64(st.Totals.Duplicates), 1},
		{"total requests", st.Totals.Requests, 5},
		{"total 200", st.Totals.Responses["200"], 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if got := s.Stats().Totals.Requests; got != 5 {
		t.Errorf("stats requests counted themselves: %d", got)
	}
}

func TestReset(t *testing.T) {
	s, ts := newTestServer(t, Options{Members: 2, Seed: 3})
	do(t, "POST", ts.URL+"/alpha/items", `{"name":"extra"}`)
	do(t, "POST", ts.URL+"/_sandbox/mutate", `{"service":"alpha","kind":"rename","count":1}`)
	if n := s.Stats().Services["alpha"].Objects["items"]; n != 3 {
		t.Fatalf("before reset: %d items", n)
	}
	status, body := do(t, "POST", ts.URL+"/_sandbox/reset", "")
	if status != 200 {
		t.Fatalf("reset: %d %s", status, body)
	}
	st := s.Stats()
	if n := st.Services["alpha"].Objects["items"]; n != 2 {
		t.Errorf("after reset: %d items, want the 2 seeded", n)
	}
	if st.Totals.Requests != 0 || len(st.Totals.Responses) != 0 {
		t.Errorf("counters not reset: %+v", st.Totals)
	}
	if _, body := do(t, "GET", ts.URL+"/alpha/items/0", ""); !strings.Contains(body, `"item-3-0"`) {
		t.Errorf("reseeded item 0 = %s, want the original name", body)
	}
}

func TestMutate(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		status   int
		contains []string
	}{
		{"one", `{"service":"alpha","kind":"rename","count":2}`, 200, []string{`"renamed": 2`}},
		{"count defaults to one", `{"service":"alpha","kind":"rename"}`, 200, []string{`"renamed": 1`}},
		{"list", `[{"service":"alpha","kind":"rename","count":1},{"service":"beta","kind":"rename","count":3}]`, 200, []string{`"service": "beta"`, `"renamed": 3`}},
		{"unknown service with hint", `{"service":"alphaa","kind":"rename"}`, 400, []string{`mutation 0: unknown service \"alphaa\"; did you mean \"alpha\"?`}},
		{"unknown kind from the service", `[{"service":"alpha","kind":"rename"},{"service":"beta","kind":"explode"}]`, 400, []string{`mutation 1 (beta.explode): unknown kind \"explode\"; kinds: rename`, `"applied"`, `"renamed": 1`}},
		{"negative count", `{"service":"alpha","kind":"rename","count":-1}`, 400, []string{`count must not be negative`}},
		{"no kind", `{"service":"alpha"}`, 400, []string{`kind is empty`}},
		{"unknown field", `{"service":"alpha","knd":"rename"}`, 400, []string{`unknown field \"knd\"`}},
		{"empty body", ``, 400, []string{`body is empty`}},
		{"trailing data", `{"service":"alpha","kind":"rename"} {}`, 400, []string{`unexpected data`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := newTestServer(t, Options{Members: 5})
			status, body := do(t, "POST", ts.URL+"/_sandbox/mutate", tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			for _, c := range tc.contains {
				if !strings.Contains(body, c) {
					t.Errorf("body %s does not contain %s", body, c)
				}
			}
		})
	}
}

func TestWebhookRegistration(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		status     int
		alpha, bet int
		contains   string
	}{
		{"one service", `{"service":"beta","url":"http://127.0.0.1:9/hook"}`, 200, 0, 1, `"registered": [`},
		{"every service", `{"url":"https://example.test/hook"}`, 200, 1, 1, `"beta"`},
		{"relative url", `{"service":"beta","url":"/hook"}`, 400, 0, 0, `must be an absolute http or https URL`},
		{"unknown service", `{"service":"gamma","url":"http://x/hook"}`, 400, 0, 0, `unknown service \"gamma\"`},
		{"bad json", `{"service":`, 400, 0, 0, `decoding the registration`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newTestServer(t, Options{})
			status, body := do(t, "POST", ts.URL+"/_sandbox/webhooks", tc.body)
			if status != tc.status || !strings.Contains(body, tc.contains) {
				t.Fatalf("got %d %s, want %d containing %s", status, body, tc.status, tc.contains)
			}
			if got := len(s.byName["alpha"].svc.(*itemService).hooks); got != tc.alpha {
				t.Errorf("alpha hooks = %d, want %d", got, tc.alpha)
			}
			if got := len(s.byName["beta"].svc.(*itemService).hooks); got != tc.bet {
				t.Errorf("beta hooks = %d, want %d", got, tc.bet)
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	item := newItemService("alpha")
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"negative members", Options{Members: -1}, "members must not be negative"},
		{"fail rate above one", Options{Faults: sandboxkit.Faults{FailRate: 1.5}}, "fail rate must be between 0 and 1, got 1.5"},
		{"negative drop rate", Options{Faults: sandboxkit.Faults{DropRate: -0.1}}, "drop rate must be between 0 and 1"},
		{"rates add above one", Options{Faults: sandboxkit.Faults{FailRate: 0.6, DropRate: 0.6}}, "add up to more than 1"},
		{"negative latency", Options{Faults: sandboxkit.Faults{Latency: -time.Second}}, "latency must not be negative"},
		{"negative rate limit", Options{RateLimit: &sandboxkit.Limit{Requests: -1}}, "rate limit must not be negative"},
		{"mounted twice", Options{Services: []Factory{item, item}}, `service "alpha" is mounted twice`},
		{"bad name", Options{Services: []Factory{newItemService("a/b")}}, `service name "a/b" cannot be a path prefix`},
		{"reserved name", Options{Services: []Factory{newItemService("_sandbox")}}, `cannot be a path prefix`},
		{"no services", Options{Services: []Factory{}}, "no services to mount"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Services == nil {
				tc.opts.Services = []Factory{item}
			}
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestOptionsReachServices(t *testing.T) {
	limit := &sandboxkit.Limit{}
	s, _ := newTestServer(t, Options{RateLimit: limit, Faults: sandboxkit.Faults{FailRate: 0.5}})
	got := s.byName["alpha"].svc.(*itemService).opts
	if got.RateLimit != limit {
		t.Errorf("rate limit not passed through: %v", got.RateLimit)
	}
	if got.Faults.Enabled() {
		t.Errorf("faults passed to the service too; they would apply twice: %+v", got.Faults)
	}
	if got.Logger == nil || got.Now == nil {
		t.Errorf("logger or clock missing: %+v", got)
	}
}

func TestStartURLClose(t *testing.T) {
	s, err := New(Options{Members: 2, Services: []Factory{newItemService("alpha")}})
	if err != nil {
		t.Fatal(err)
	}
	if s.URL("alpha") != "" {
		t.Fatalf("URL before Start = %q", s.URL("alpha"))
	}
	base, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") || s.URL("alpha") != base+"/alpha" {
		t.Fatalf("base %q, URL %q", base, s.URL("alpha"))
	}
	if _, err := s.Start("127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "already serving") {
		t.Fatalf("second Start: %v", err)
	}
	if status, body := do(t, "GET", s.URL("alpha")+"/items/1", ""); status != 200 || !strings.Contains(body, "item-0-1") {
		t.Fatalf("GET: %d %s", status, body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(s.URL("alpha") + "/items/1"); err == nil {
		t.Fatal("still serving after Close")
	}
}

func TestStartBadAddress(t *testing.T) {
	s, err := New(Options{Services: []Factory{newItemService("alpha")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start("127.0.0.1:not-a-port"); err == nil || !strings.Contains(err.Error(), "listening on 127.0.0.1:not-a-port") {
		t.Fatalf("err = %v", err)
	}
}

// hooklessService has no webhook endpoint, like Accredible.
type hooklessService struct{ *itemService }

func (hooklessService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sandboxkit.WriteJSON(w, http.StatusNotFound, map[string]string{"errors": "Doesn't exist"})
}

func TestWebhookRegistrationSkipsServicesWithoutWebhooks(t *testing.T) {
	hookless := func(o sandboxkit.Options) sandboxkit.Service {
		return hooklessService{newItemService("gamma")(o).(*itemService)}
	}
	_, ts := newTestServer(t, Options{Services: []Factory{newItemService("alpha"), hookless}})
	status, body := do(t, "POST", ts.URL+"/_sandbox/webhooks", `{"url":"http://127.0.0.1:9/h"}`)
	if status != 200 || !strings.Contains(body, `"alpha"`) || strings.Contains(body, `"gamma"`) {
		t.Fatalf("every service: %d %s", status, body)
	}
	status, body = do(t, "POST", ts.URL+"/_sandbox/webhooks", `{"service":"gamma","url":"http://127.0.0.1:9/h"}`)
	if status != 400 || !strings.Contains(body, "gamma does not deliver webhooks (its registration endpoint answered HTTP 404); poll it instead") {
		t.Fatalf("hookless service: %d %s", status, body)
	}
}
