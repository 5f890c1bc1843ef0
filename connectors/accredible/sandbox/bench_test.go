package sandbox

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// fill stores n credentials straight into the store, as a large account
// would have them.
func fill(s *Server, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range n {
		s.creds.insert(credential{groupID: seedGroups[i%3].id, name: seedGroups[i%3].course,
			recipientName: fmt.Sprintf("Member %07d", i), recipientEmail: fmt.Sprintf("member%07d@example.org", i),
			recipientID: fmt.Sprint(i), issuedOn: "2026-01-15", approve: true, complete: true},
			t0.Add(time.Duration(i)*time.Millisecond))
	}
}

// BenchmarkGetCredential serves a simple GET through the whole handler
// (auth, rate-limit window, router, render) from parallel clients.
func BenchmarkGetCredential(b *testing.B) {
	s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
	s.Seed(sandboxkit.Seed{Seed: 1})
	fill(s, 10_000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/v1/credentials/%d", firstCredentialID+i%10_000), nil)
			r.Header.Set("Authorization", "Token token="+DemoKey)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
			i++
		}
	})
}

// BenchmarkGetGroupHTTP is a simple GET over a real loopback connection.
func BenchmarkGetGroupHTTP(b *testing.B) {
	s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
	s.Seed(sandboxkit.Seed{Seed: 1})
	srv := httptest.NewServer(s)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/issuer/groups/100001", nil)
			req.Header.Set("Authorization", "Token token="+DemoKey)
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Fatalf("status %d", res.StatusCode)
			}
		}
	})
}

// BenchmarkStoreCredentials stores 1,000,000 credentials (one per member)
// and reports the heap each one costs with its indexes.
func BenchmarkStoreCredentials(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := New(sandboxkit.Options{})
		s.Seed(sandboxkit.Seed{Seed: 1})
		fill(s, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/credential")
		runtime.KeepAlive(s)
	}
}

// BenchmarkSearch100k runs the common searches at 100,000 credentials.
func BenchmarkSearch100k(b *testing.B) {
	s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
	s.Seed(sandboxkit.Seed{Seed: 1})
	fill(s, 100_000)
	cases := []struct {
		name string
		body map[string]any
	}{
		{"email_and_group", map[string]any{"query": map[string]any{"recipient_email": "member0050000@example.org", "group.id": "100003"}}},
		{"recipient_ids_in", map[string]any{"query": map[string]any{"recipient_id[in]": []any{"1", "2", "3"}}}},
		{"backfill_page_50000", map[string]any{"query": map[string]any{"updated_at[gte]": formatStamp(t0.UnixMilli())}, "sort": map[string]any{"updated_at": "asc"}, "page": map[string]any{"cursor": encodeCursor(50_000), "size": 100}}},
		{"poll_updated_since", map[string]any{"query": map[string]any{"updated_at[gte]": formatStamp(t0.Add(99_900 * time.Millisecond).UnixMilli())}, "sort": map[string]any{"updated_at": "asc"}, "page": map[string]any{"size": 100}}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if w := call(b, s, http.MethodPost, "/v2/credentials/search", tc.body); w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
