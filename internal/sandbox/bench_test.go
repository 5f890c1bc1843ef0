package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
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
