package sandbox

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// loadConn is a minimal keep-alive HTTP/1.1 client: it writes one
// prepared request and reads one answer, so that the load generator costs
// far less CPU than net/http's client and the server is what is measured.
type loadConn struct {
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

func dialLoad(b *testing.B, addr, method, path string, header http.Header) *loadConn {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, addr)
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&sb, "%s: %s\r\n", k, v)
		}
	}
	sb.WriteString("\r\n")
	return &loadConn{conn: c, br: bufio.NewReaderSize(c, 16<<10), req: []byte(sb.String())}
}

func (c *loadConn) roundTrip() (int, error) {
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, err
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, err
}

// benchServe measures requests per second of one simple request over
// loopback with keep-alive, from 4 connections per core.
func benchServe(b *testing.B, s *Server, method, path string, header http.Header, wantStatus int) {
	base, err := s.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	addr := strings.TrimPrefix(base, "http://")
	// Fail early, with the answer, when the request is not what we think.
	probe := dialLoad(b, addr, method, path, header)
	if status, err := probe.roundTrip(); err != nil || status != wantStatus {
		b.Fatalf("%s %s: status %d, err %v; want %d", method, path, status, err, wantStatus)
	}
	probe.conn.Close()
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c := dialLoad(b, addr, method, path, header)
		defer c.conn.Close()
		for pb.Next() {
			if status, err := c.roundTrip(); err != nil || status != wantStatus {
				b.Errorf("status %d, err %v", status, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "cores")
}

// BenchmarkServeTestService measures the combined server's own overhead
// (routing, counters, fault check) around a trivial service.
func BenchmarkServeTestService(b *testing.B) {
	s, err := New(Options{Members: 100, Services: []Factory{newItemService("alpha")}})
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, s, "GET", "/alpha/items/42", nil, http.StatusOK)
}

// BenchmarkServeSimpleGET measures the combined sandbox serving one
// user by id from the Memberships sandbox, with auth checked and rate
// limits off: the target is at least 20,000 requests per second on 2
// cores, load generator included.
func BenchmarkServeSimpleGET(b *testing.B) {
	for _, tc := range []struct {
		service, path string
		header        http.Header
	}{
		{"memberships", "/users/{first}", http.Header{"Authorization": {"Bearer " + DemoAuth("memberships").Token}, "Version": {"2021-07-28"}}},
		{"accredible", "/v1/issuer/groups/100001", http.Header{"Authorization": {"Token token=" + DemoAuth("accredible").Key}}},
		{"accelevents", "/rest/events/annual-conference-2026/staff/ticketing/settings", http.Header{"Authorization": {"Bearer " + DemoAuth("accelevents").Key}}},
	} {
		b.Run(tc.service, func(b *testing.B) {
			s, err := New(Options{Members: 10000, Seed: 1, RateLimit: &sandboxkit.Limit{}})
			if err != nil {
				b.Fatal(err)
			}
			path := tc.path
			if strings.Contains(path, "{first}") {
				path = strings.Replace(path, "{first}", firstUserID(b, s), 1)
			}
			benchServe(b, s, "GET", "/"+tc.service+path, tc.header, http.StatusOK)
		})
	}
}

// BenchmarkSeedMillion seeds 1,000,000 members in every service and
// reports the live heap they take (target: under 2 GB in total).
func BenchmarkSeedMillion(b *testing.B) {
	const members = 1_000_000
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		s, err := New(Options{Members: members, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(heap/(1<<20), "heap-MB")
		b.ReportMetric(heap/members, "B/member")
		b.ReportMetric(float64(after.Sys)/(1<<20), "sys-MB")
		if got := s.Stats().Services["memberships"].Objects["users"]; got != members {
			b.Fatalf("seeded %d users", got)
		}
		runtime.KeepAlive(s)
		s.Close()
	}
}

// firstUserID finds a seeded user's id through the API.
func firstUserID(b *testing.B, s *Server) string {
	req := httptest.NewRequest("GET", "/memberships/users/search?companyId=mfSandboxCompany0001&limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+DemoAuth("memberships").Token)
	req.Header.Set("Version", "2021-07-28")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var out struct{ Users []struct{ ID string } }
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Users) == 0 {
		b.Fatalf("searching users: %d %s", rec.Code, rec.Body.String())
	}
	return out.Users[0].ID
}
