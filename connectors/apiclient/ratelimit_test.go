package apiclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// TestTokenBucketKeepsUnderItsRate drives the client's limiter with
// synthetic times (rate.Limiter's *N methods take the time as an
// argument): a caller trying far more often than allowed gets, in any
// window, at most the burst plus the documented rate.
func TestTokenBucketKeepsUnderItsRate(t *testing.T) {
	tests := []struct {
		name  string
		limit connectors.RateLimit
	}{
		{"memberships 100 per 10s", connectors.RateLimit{Requests: 100, Per: 10 * time.Second}},
		{"accredible 2000 per 5 min", connectors.RateLimit{Requests: 2000, Per: 5 * time.Minute}},
		{"accelevents 50 per s, burst 2", connectors.RateLimit{Requests: 50, Per: time.Second, Burst: 2}},
		{"accredible v1 search 100 per 60 s", connectors.RateLimit{Requests: 100, Per: time.Minute, Burst: 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A base URL of its own: the limiter is shared per account.
			c, _ := testClient(t, Config{BaseURL: fmt.Sprintf("http://bucket-%d.test", time.Now().UnixNano()), RateLimit: tc.limit})
			lim := c.Limiter()
			if lim == nil {
				t.Fatal("no limiter")
			}
			burst := lim.Burst()
			if tc.limit.Burst > 0 && burst != tc.limit.Burst {
				t.Fatalf("burst %d, want %d", burst, tc.limit.Burst)
			}
			// The bucket refills at what the window leaves after a burst
			// (less a margin for requests arriving bunched).
			perSecond := float64(lim.Limit())
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			// Try every millisecond for three periods.
			span := 3 * tc.limit.Per
			var allowed []time.Duration
			for at := time.Duration(0); at < span; at += time.Millisecond {
				if lim.AllowN(start.Add(at), 1) {
					allowed = append(allowed, at)
				}
			}
			// Sliding windows of one period, at any alignment: never more
			// than the documented limit (one token of rounding).
			max := tc.limit.Requests + 1
			j := 0
			for i := range allowed {
				for allowed[i]-allowed[j] >= tc.limit.Per {
					j++
				}
				if n := i - j + 1; n > max {
					t.Fatalf("%d requests within one period ending at %s; at most %d allowed", n, allowed[i], max)
				}
			}
			// After the burst, the long-run rate is at least 90% of the
			// documented one.
			if perSecond < 0.9*float64(tc.limit.Requests)/tc.limit.Per.Seconds() {
				t.Fatalf("refill %.2f/s uses under 90%% of the documented rate", perSecond)
			}
			steady := float64(len(allowed)-burst) / span.Seconds()
			if steady > perSecond*1.01 || steady < perSecond*0.95 {
				t.Fatalf("steady rate %.2f/s, want %.2f/s", steady, perSecond)
			}
		})
	}
}

func TestUnlimitedHasNoLimiter(t *testing.T) {
	for _, rl := range []connectors.RateLimit{{}, {Requests: 10}, {Per: time.Second}} {
		c, _ := testClient(t, Config{BaseURL: "http://x", RateLimit: rl})
		if c.Limiter() != nil {
			t.Fatalf("%+v: limiter set", rl)
		}
	}
}

func TestDoWaitsForAToken(t *testing.T) {
	srv := newScript(t)
	c, _ := testClient(t, Config{BaseURL: srv.URL, RateLimit: connectors.RateLimit{Requests: 1, Per: time.Hour}})
	if _, err := c.Do(context.Background(), Request{Method: "GET", Path: "/a"}); err != nil {
		t.Fatal(err)
	}
	// The bucket is empty for an hour: the call must give up at its
	// context's deadline without reaching the server.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Do(ctx, Request{Method: "GET", Path: "/b"})
	if err == nil || !strings.Contains(err.Error(), "svc GET /b") {
		t.Fatalf("err = %v", err)
	}
	if srv.hits.Load() != 1 {
		t.Fatalf("server saw %d requests; the limiter let one through", srv.hits.Load())
	}
	if errors.Is(err, connectors.ErrInDoubt) {
		t.Fatal("a request never sent reported in doubt")
	}
}

// BenchmarkLimiterWait measures the real limiter over wall time: the
// reported req/s must not exceed the configured 500/s.
func BenchmarkLimiterWait(b *testing.B) {
	c, err := New(Config{Service: "svc", BaseURL: "http://x", RateLimit: connectors.RateLimit{Requests: 500, Per: time.Second, Burst: 1}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := c.limiter.wait(ctx, &Request{Method: "GET", Path: "/x"}); err != nil {
			b.Fatal(err)
		}
	}
	rate := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(rate, "req/s")
	if b.N > 100 && rate > 500*1.02 {
		b.Fatalf("limiter let %.0f req/s through, configured 500", rate)
	}
}

// TestRecipesShareTheAccountsLimiter: two connections to one account
// (two recipes) share one limiter, so a 429 one of them met holds the
// other's requests too; another account is not held.
func TestRecipesShareTheAccountsLimiter(t *testing.T) {
	srv := newScript(t, step{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "5"}})
	auth := connectors.Auth{Type: connectors.AuthAPIKey, Key: "k1"}
	// The shared limiter waits with the first client's sleep: rec.
	a, rec := testClient(t, Config{BaseURL: srv.URL, Auth: auth})
	b, _ := testClient(t, Config{BaseURL: srv.URL, Auth: auth})
	other, recOther := testClient(t, Config{BaseURL: srv.URL, Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: "k2"}})
	if a.limiter != b.limiter || a.limiter == other.limiter {
		t.Fatal("one account's connections must share one limiter, and only they")
	}
	a.Do(context.Background(), Request{Method: "GET", Path: "/a"})
	b.Do(context.Background(), Request{Method: "GET", Path: "/b"})
	if len(rec.delays) != 1 || rec.delays[0] < 4*time.Second {
		t.Fatalf("the second connection waited %v, want the 5 s the first one was told", rec.delays)
	}
	other.Do(context.Background(), Request{Method: "GET", Path: "/c"})
	if len(recOther.delays) != 0 {
		t.Fatalf("another account waited %v", recOther.delays)
	}

	// A service that counts per caller address: other keys, one limiter.
	perAddr := Config{BaseURL: srv.URL, Auth: auth, LimitsPerAddress: true}
	x, _ := testClient(t, perAddr)
	perAddr.Auth = connectors.Auth{Type: connectors.AuthAPIKey, Key: "k2"}
	y, _ := testClient(t, perAddr)
	if x.limiter != y.limiter || x.limiter == a.limiter {
		t.Fatal("connections with other keys to a service that limits per address must share one limiter of their own")
	}
}

// TestAPauseHoldsQueuedRequests: a request already waiting for a token
// when the connection is told to pause is held until the pause ends too.
func TestAPauseHoldsQueuedRequests(t *testing.T) {
	var mu sync.Mutex
	var arrived []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived = append(arrived, time.Now())
		first := len(arrived) == 1
		mu.Unlock()
		if first {
			time.Sleep(50 * time.Millisecond) // the second request queues meanwhile
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	// One token now, the next in about 150 ms.
	c, err := New(Config{Service: "svc", BaseURL: srv.URL, RateLimit: connectors.RateLimit{Requests: 2, Per: 100 * time.Millisecond, Burst: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.Do(context.Background(), Request{Method: "GET", Path: "/a"}) }()
	time.Sleep(10 * time.Millisecond)
	go func() { defer wg.Done(); c.Do(context.Background(), Request{Method: "GET", Path: "/b"}) }()
	wg.Wait()
	if len(arrived) != 2 {
		t.Fatalf("%d requests arrived, want 2", len(arrived))
	}
	if gap := arrived[1].Sub(arrived[0]); gap < time.Second {
		t.Fatalf("the queued request arrived %s after the one answered 429 (Retry-After 1 s); the pause did not hold it", gap)
	}
}
