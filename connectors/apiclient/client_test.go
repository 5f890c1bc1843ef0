package apiclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
)

// script is a server that answers each request with the next step:
// a status and body, or "drop" to close the connection unanswered.
type script struct {
	*httptest.Server
	mu    sync.Mutex
	steps []step
	hits  atomic.Int64
	paths []string
}

type step struct {
	status int
	body   string
	header map[string]string
	drop   bool
}

func newScript(t *testing.T, steps ...step) *script {
	s := &script{steps: steps}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.paths = append(s.paths, r.Method+" "+r.URL.RequestURI())
		st := step{status: 200, body: `{"ok":true}`}
		if len(s.steps) > 0 {
			st, s.steps = s.steps[0], s.steps[1:]
		}
		s.mu.Unlock()
		if st.drop {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			conn.Close()
			return
		}
		for k, v := range st.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st.status)
		io.WriteString(w, st.body)
	}))
	t.Cleanup(s.Close)
	return s
}

// recorder replaces Client.sleep: it records each delay instead of
// waiting it out.
type recorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (r *recorder) sleep(_ context.Context, d time.Duration) error {
	r.mu.Lock()
	r.delays = append(r.delays, d)
	r.mu.Unlock()
	return nil
}

func testClient(t *testing.T, cfg Config) (*Client, *recorder) {
	t.Helper()
	if cfg.Service == "" {
		cfg.Service = "svc"
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	c.sleep = rec.sleep
	return c, rec
}

// TestOneRequestPerCall: the client sends each request once and says
// what the failure means; the engine's step policy retries. A 429 or 503
// (not applied) is retryable, a write that may have landed is in doubt.
func TestOneRequestPerCall(t *testing.T) {
	s500 := step{status: 500, body: `{"statusCode":500,"message":"Internal server error"}`}
	s503 := step{status: 503, body: `{"error":"Service Unavailable"}`}
	s429 := step{status: 429, body: ``}
	ok := step{status: 200, body: `{"ok":true}`}
	drop := step{drop: true}
	tests := []struct {
		name      string
		method    string
		idem      bool
		steps     []step
		wantErr   string
		retryable bool
		inDoubt   bool
	}{
		{"GET ok", "GET", false, []step{ok}, "", false, false},
		{"GET 429", "GET", false, []step{s429, ok}, "HTTP 429", true, false},
		{"GET 500", "GET", false, []step{s500, ok}, "HTTP 500", true, false},
		{"GET 503", "GET", false, []step{s503, ok}, "HTTP 503", true, false},
		{"GET connection dropped", "GET", false, []step{drop, ok}, "svc GET /things", true, false},
		{"GET 400", "GET", false, []step{{status: 400, body: `{"statusCode":400,"message":"Bad Request"}`}}, "HTTP 400: Bad Request", false, false},
		{"GET 404", "GET", false, []step{{status: 404, body: `{"error":"Not found"}`}}, "HTTP 404: Not found", false, false},
		{"POST 429: not applied", "POST", false, []step{s429, ok}, "HTTP 429", true, false},
		{"POST 503: not applied", "POST", false, []step{s503, ok}, "HTTP 503", true, false},
		{"POST 500 in doubt", "POST", false, []step{s500, ok}, "write in doubt", false, true},
		{"POST dropped in doubt", "POST", false, []step{drop, ok}, "write in doubt", false, true},
		{"POST marked idempotent: not in doubt", "POST", true, []step{drop, ok}, "svc POST /things", true, false},
		{"PUT dropped: not in doubt", "PUT", false, []step{drop, ok}, "svc PUT /things", true, false},
		{"DELETE 500: not in doubt", "DELETE", false, []step{s500, ok}, "HTTP 500", true, false},
		{"POST 422 refused", "POST", false, []step{{status: 422, body: `{"errors":{"group_id":["can't be blank"]}}`}}, "HTTP 422: group_id can't be blank", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScript(t, tc.steps...)
			c, _ := testClient(t, Config{BaseURL: srv.URL})
			_, err := c.Do(context.Background(), Request{Method: tc.method, Path: "/things", Body: map[string]any{"a": 1}, Idempotent: tc.idem})
			if tc.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if got := errors.Is(err, connectors.ErrInDoubt); got != tc.inDoubt {
				t.Fatalf("in doubt = %v, want %v (%v)", got, tc.inDoubt, err)
			}
			if got := connectors.Retryable(err); got != tc.retryable {
				t.Fatalf("retryable = %v, want %v (%v)", got, tc.retryable, err)
			}
			if got := srv.hits.Load(); got != 1 {
				t.Fatalf("server saw %d requests, want 1: the client retries nothing", got)
			}
		})
	}
}

// TestA429PausesTheWholeConnection: after a 429, every request of the
// connection waits out the pause before it is sent: Retry-After when the
// service gives one, else the service's counting period.
func TestA429PausesTheWholeConnection(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string
		period time.Duration
		want   time.Duration
	}{
		{"Retry-After", map[string]string{"Retry-After": "7"}, 30 * time.Second, 7 * time.Second},
		{"bare 429: one counting period", nil, 30 * time.Second, 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScript(t, step{status: 429, header: tc.header}, step{status: 200, body: `{}`})
			clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			c, rec := testClient(t, Config{BaseURL: srv.URL, RateLimitPeriod: tc.period})
			c.now = clock.now
			_, err := c.Do(context.Background(), Request{Method: "GET", Path: "/a"})
			var api *connectors.APIError
			if !errors.As(err, &api) || api.RetryAfter != tc.want {
				t.Fatalf("err = %v; want a 429 saying to wait %s", err, tc.want)
			}
			if _, err := c.Do(context.Background(), Request{Method: "GET", Path: "/b"}); err != nil {
				t.Fatal(err)
			}
			if len(rec.delays) != 1 || rec.delays[0] != tc.want {
				t.Fatalf("the next request waited %v, want %s", rec.delays, tc.want)
			}
		})
	}
}

// flakyDialer fails the first n dials the way a refused connection does.
func flakyDialer(n int) (*http.Client, *atomic.Int64) {
	var dials atomic.Int64
	d := &net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) <= int64(n) {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
		}
		return d.DialContext(ctx, network, addr)
	}}
	return &http.Client{Transport: tr}, &dials
}

func TestDialFailureIsNeverInDoubt(t *testing.T) {
	srv := newScript(t)
	hc, dials := flakyDialer(1)
	c, _ := testClient(t, Config{BaseURL: srv.URL, HTTPClient: hc})
	_, err := c.Do(context.Background(), Request{Method: "POST", Path: "/v1/credentials", Body: map[string]any{"x": 1}})
	if err == nil || errors.Is(err, connectors.ErrInDoubt) || !connectors.Retryable(err) {
		t.Fatalf("err = %v; want a retryable failure that is not in doubt (nothing was sent)", err)
	}
	if dials.Load() != 1 || srv.hits.Load() != 0 {
		t.Fatalf("dials %d, hits %d; want 1, 0", dials.Load(), srv.hits.Load())
	}
}

func TestCancelledWriteIsInDoubt(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
	}))
	defer srv.Close()
	defer close(release)
	c, _ := testClient(t, Config{BaseURL: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	_, err := c.Do(ctx, Request{Method: "POST", Path: "/payments", Body: map[string]any{"amount": 10}})
	if !errors.Is(err, connectors.ErrInDoubt) {
		t.Fatalf("a POST cancelled after it reached the service: err = %v, want in doubt", err)
	}
}

func TestPerAttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	c, _ := testClient(t, Config{BaseURL: srv.URL, Timeout: 20 * time.Millisecond})
	_, err := c.Do(context.Background(), Request{Method: "GET", Path: "/slow"})
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") || !connectors.Retryable(err) {
		t.Fatalf("err = %v; want a retryable timeout", err)
	}
	_, err = c.Do(context.Background(), Request{Method: "POST", Path: "/slow"})
	if !errors.Is(err, connectors.ErrInDoubt) {
		t.Fatalf("a timed-out POST: err = %v, want in doubt", err)
	}
}

func TestRateLimitHeadersPauseTheConnection(t *testing.T) {
	headers := func(remaining string) map[string]string {
		return map[string]string{"X-RateLimit-Remaining": remaining, "X-RateLimit-Interval-Milliseconds": "10000", "X-RateLimit-Max": "100"}
	}
	tests := []struct {
		name      string
		enabled   bool
		remaining string
		wantPause bool
	}{
		{"window nearly spent", true, "1", true},
		{"window spent", true, "0", true},
		{"plenty left", true, "50", false},
		{"service without the headers", false, "0", false},
		{"malformed header", true, "many", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScript(t, step{status: 200, body: `{}`, header: headers(tc.remaining)}, step{status: 200, body: `{}`})
			clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			c, rec := testClient(t, Config{BaseURL: srv.URL, RateLimitHeaders: tc.enabled})
			c.now = clock.now
			for i := 0; i < 2; i++ {
				if _, err := c.Do(context.Background(), Request{Method: "GET", Path: "/users/"}); err != nil {
					t.Fatal(err)
				}
			}
			if !tc.wantPause {
				if len(rec.delays) != 0 {
					t.Fatalf("paused %v", rec.delays)
				}
				return
			}
			if len(rec.delays) != 1 || rec.delays[0] != 10*time.Second {
				t.Fatalf("pauses %v, want one of 10s before the next request", rec.delays)
			}
			// Once the window has passed, no more pause.
			clock.advance(11 * time.Second)
			c.Do(context.Background(), Request{Method: "GET", Path: "/users/"})
			if len(rec.delays) != 1 {
				t.Fatalf("paused again after the window: %v", rec.delays)
			}
		})
	}
}

func TestDryRun(t *testing.T) {
	srv := newScript(t)
	var planned []connectors.PlannedWrite
	c, _ := testClient(t, Config{BaseURL: srv.URL, ConnectionName: "certs", Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: "dry-key-123"},
		DryRun: func(w connectors.PlannedWrite) { planned = append(planned, w) }})
	reqs := []Request{
		{Method: "GET", Path: "/v1/credentials/1"},
		{Method: "POST", Path: "/v2/credentials/search", Body: map[string]any{"query": map[string]any{}}, ReadOnly: true},
		{Method: "POST", Path: "/v1/credentials", Body: map[string]any{"credential": map[string]any{"group_id": 7}}},
		{Method: "PUT", Path: "/v1/credentials/1", Body: map[string]any{"credential": map[string]any{"name": "n"}}},
		{Method: "DELETE", Path: "/v1/credentials/1"},
		{Method: "GET", Path: "/checkin/true", Changes: true}, // a GET that writes
	}
	for _, r := range reqs {
		res, err := c.Do(context.Background(), r)
		if err != nil || res.Status != 200 {
			t.Fatalf("%s %s: %v", r.Method, r.Path, err)
		}
	}
	if got := strings.Join(srv.paths, ","); got != "GET /v1/credentials/1,POST /v2/credentials/search" {
		t.Fatalf("sent %s; only reads should be sent", got)
	}
	var got []string
	for _, p := range planned {
		got = append(got, p.Connection+" "+p.Method+" "+p.Path)
	}
	want := "certs POST /v1/credentials,certs PUT /v1/credentials/1,certs DELETE /v1/credentials/1,certs GET /checkin/true"
	if strings.Join(got, ",") != want {
		t.Fatalf("planned %v, want %s", got, want)
	}
	if fmt.Sprint(planned[0].Body) != "map[credential:map[group_id:7]]" {
		t.Fatalf("planned body %v", planned[0].Body)
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	const key = "sk-live-0123456789"
	// A service that echoes the credentials back in its error, as some do.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		fmt.Fprintf(w, `{"success":false,"data":"bad header %s"}`, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	var logs bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Trace})
	c, _ := testClient(t, Config{BaseURL: srv.URL, Logger: logger, APIKeyScheme: "Token token=%s", Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: key}})

	_, err := c.Do(context.Background(), Request{Method: "GET", Path: "/v1/credentials/" + key})
	if err == nil {
		t.Fatal("no error")
	}
	var api *connectors.APIError
	if !errors.As(err, &api) || !strings.Contains(api.Message, "bad header Token token="+Redacted) {
		t.Fatalf("err = %v, want the echoed key redacted", err)
	}
	// A transport error quotes the URL, which here carries the key.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	c2, _ := testClient(t, Config{BaseURL: dead.URL, Logger: logger, Auth: connectors.Auth{Type: connectors.AuthBearer, Token: key}})
	_, err2 := c2.Do(context.Background(), Request{Method: "GET", Path: "/users/", Query: map[string][]string{"token": {key}}})
	if err2 == nil || !strings.Contains(err2.Error(), Redacted) {
		t.Fatalf("err = %v, want the URL's key redacted", err2)
	}
	for what, s := range map[string]string{"error": err.Error(), "transport error": err2.Error(), "logs": logs.String()} {
		if strings.Contains(s, key) {
			t.Errorf("secret in %s: %s", what, s)
		}
	}
	if !strings.Contains(logs.String(), "request") {
		t.Fatalf("expected a request log line, got:\n%s", logs.String())
	}
}

func TestRedactor(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"one secret", []string{"abcd1234"}, "key abcd1234 used", "key [REDACTED] used"},
		{"several, every occurrence", []string{"abcd1234", "zzzz9999"}, "abcd1234/zzzz9999/abcd1234", "[REDACTED]/[REDACTED]/[REDACTED]"},
		{"short secrets ignored", []string{"ab"}, "about", "about"},
		{"no secrets", nil, "plain", "plain"},
		{"secrets, none present", []string{"abcd1234"}, "abcd123 abc", "abcd123 abc"},
		{"the second secret only", []string{"abcd1234", "zzzz9999"}, `{"k":"zzzz9999"}`, `{"k":"[REDACTED]"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRedactor(tc.secrets...)
			if got := r.String(tc.in); got != tc.want {
				t.Fatalf("String: got %q, want %q", got, tc.want)
			}
			if got := r.Bytes([]byte(tc.in)); string(got) != tc.want {
				t.Fatalf("Bytes: got %q, want %q", got, tc.want)
			}
		})
	}
	var nilRedactor *Redactor
	if nilRedactor.String("x") != "x" || string(nilRedactor.Bytes([]byte("x"))) != "x" {
		t.Fatal("nil redactor changed its input")
	}
}

func TestJSONDecodes(t *testing.T) {
	srv := newScript(t, step{status: 200, body: `{"users":[{"id":"u1"}],"count":1}`}, step{status: 200, body: `not json`}, step{status: 204})
	c, _ := testClient(t, Config{BaseURL: srv.URL + "/base/"})
	var out struct {
		Users []struct{ ID string }
		Count int
	}
	if _, err := c.JSON(context.Background(), Request{Method: "GET", Path: "users/search"}, &out); err != nil || out.Count != 1 || out.Users[0].ID != "u1" {
		t.Fatalf("decoded %+v, err %v", out, err)
	}
	if srv.paths[0] != "GET /base/users/search" {
		t.Fatalf("path %s", srv.paths[0])
	}
	if _, err := c.JSON(context.Background(), Request{Method: "GET", Path: "/x"}, &out); err == nil || !strings.Contains(err.Error(), "svc GET /x: decoding the answer") {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.JSON(context.Background(), Request{Method: "DELETE", Path: "/x"}, &out); err != nil {
		t.Fatalf("an empty answer: %v", err)
	}
}

func TestErrorsKeepTheirCause(t *testing.T) {
	c, _ := testClient(t, Config{BaseURL: "http://127.0.0.1:1"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Do(ctx, Request{Method: "GET", Path: "/x"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want it to match context.Canceled", err)
	}
}

// A write is not sent once the caller's send check refuses it (the
// engine's leases may have ended): nothing reaches the service, the error
// is the check's and not in doubt. Reads are not held to it, and a retry
// is checked again before it goes out.
func TestSendCheckHoldsWrites(t *testing.T) {
	errExpired := errors.New("leases not renewed")
	var refuse atomic.Bool
	check := connectors.WithSendCheck(context.Background(), func() error {
		if refuse.Load() {
			return errExpired
		}
		return nil
	})
	srv := newScript(t)
	c, _ := testClient(t, Config{BaseURL: srv.URL})

	refuse.Store(true)
	_, err := c.Do(check, Request{Method: "POST", Path: "/v1/credentials", Body: map[string]any{"x": 1}})
	if !errors.Is(err, errExpired) || errors.Is(err, connectors.ErrInDoubt) || srv.hits.Load() != 0 {
		t.Fatalf("refused write: err %v, %d request(s) sent; want the check's error, none sent", err, srv.hits.Load())
	}
	if _, err := c.Do(check, Request{Method: "GET", Path: "/v1/credentials/1"}); err != nil || srv.hits.Load() != 1 {
		t.Fatalf("a read under a refusing check: %v, %d request(s); want it sent", err, srv.hits.Load())
	}

	// The first attempt goes out and is answered 503; the check refuses
	// the retry.
	refuse.Store(false)
	retried := connectors.WithRetry(check, func(ctx context.Context, failed int, err error) bool {
		refuse.Store(true)
		return true
	})
	srv.mu.Lock()
	srv.steps = []step{{status: 503, body: `{"message":"busy"}`}, {status: 200, body: `{"ok":true}`}}
	srv.mu.Unlock()
	_, err = c.Do(retried, Request{Method: "PUT", Path: "/v1/credentials/1", Body: map[string]any{"x": 2}})
	if !errors.Is(err, errExpired) || srv.hits.Load() != 2 {
		t.Fatalf("retry under a refusing check: err %v, %d request(s) in all; want the check's error and no resend", err, srv.hits.Load())
	}
}
