package sandbox

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// BenchmarkGetUser is the simple request the sandbox must serve at least
// 20,000 times a second on two cores: GET /users/{id}, served in-process
// (the handler cost, without the loopback TCP the benchmark would
// otherwise mostly measure).
func BenchmarkGetUser(b *testing.B) {
	s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
	s.Seed(sandboxkit.Seed{Members: 10000, Seed: 1, Now: anchor})
	ids := make([]string, 0, 1000)
	for i := 0; i < 1000; i++ {
		ids = append(ids, s.st.users[i*10].id.String())
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, "/users/"+ids[i%len(ids)], nil)
			req.Header.Set("Version", APIVersion)
			req.Header.Set("Authorization", "Bearer "+DemoKey)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			i++
		}
	})
}

// BenchmarkGetUserHTTP is the same over a real loopback connection.
func BenchmarkGetUserHTTP(b *testing.B) {
	s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
	s.Seed(sandboxkit.Seed{Members: 10000, Seed: 1, Now: anchor})
	srv := httptest.NewServer(s)
	defer srv.Close()
	id := s.st.users[0].id.String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/users/"+id, nil)
			req.Header.Set("Version", APIVersion)
			req.Header.Set("Authorization", "Bearer "+DemoKey)
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 4096)
			for {
				if _, err := res.Body.Read(buf); err != nil {
					break
				}
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Fatalf("status %d", res.StatusCode)
			}
		}
	})
}

// BenchmarkSeedMillion seeds 1,000,000 members and reports the live heap
// per member.
func BenchmarkSeedMillion(b *testing.B) {
	const members = 1_000_000
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := New(sandboxkit.Options{})
		s.Seed(sandboxkit.Seed{Members: members, Seed: 1, Now: anchor})
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/members, "heap-B/member")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
		runtime.KeepAlive(s)
	}
}

// BenchmarkSearchPageAt300k is one poller page (sort by last change,
// oldest first, updatedAfter the cursor) over 300,000 members, with the
// cursor at a tenth, half and nine tenths of the change log: the page's
// count covers every change after the cursor, so a count that walks them
// makes a whole poll pass quadratic.
func BenchmarkSearchPageAt300k(b *testing.B) {
	s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
	s.Seed(sandboxkit.Seed{Members: 300_000, Seed: 1, Now: anchor})
	for _, c := range []struct {
		name, path, sort string
		log              []logEntry
	}{
		{"users", "/users/search?companyId=" + DemoCompanyID + "&", "dateUpdated", s.st.userLog},
		{"payments", "/payments?", "updatedAt", s.st.paymentLog},
	} {
		for _, pct := range []int{10, 50, 90} {
			after := formatTime(c.log[len(c.log)*pct/100].at)
			path := c.path + "sort=" + c.sort + "&order=asc&limit=100&updatedAfter=" + after
			b.Run(fmt.Sprintf("%s/cursor=%d%%", c.name, pct), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req := httptest.NewRequest(http.MethodGet, path, nil)
					req.Header.Set("Version", APIVersion)
					req.Header.Set("Authorization", "Bearer "+DemoKey)
					rec := httptest.NewRecorder()
					s.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
		}
	}
}
