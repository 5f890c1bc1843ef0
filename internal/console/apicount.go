package console

import (
	"net/http"
	"sort"
	"sync"
	"time"
)

// APICounter counts the API requests of each connector, and its 429
// answers, per minute for the last day. Connections send through it by
// wrapping their HTTP client (Client).
type APICounter struct {
	mu     sync.Mutex
	now    func() time.Time
	series map[string]*minuteSeries
}

const counterMinutes = 24 * 60

type minuteSeries struct {
	minute      [counterMinutes]int64 // the minute each slot holds, unix minutes
	calls, r429 [counterMinutes]int
	totalCalls  int64
	total429    int64
}

// NewAPICounter makes an empty counter.
func NewAPICounter() *APICounter {
	return &APICounter{now: time.Now, series: map[string]*minuteSeries{}}
}

// Client returns an HTTP client that counts connector's requests and
// sends them with base (nil: a default client).
func (c *APICounter) Client(connector string, base *http.Client) *http.Client {
	out := &http.Client{}
	if base != nil {
		*out = *base
	}
	rt := out.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	out.Transport = &countingTransport{c: c, connector: connector, next: rt}
	return out
}

type countingTransport struct {
	c         *APICounter
	connector string
	next      http.RoundTripper
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(r)
	t.c.add(t.connector, err == nil && res.StatusCode == http.StatusTooManyRequests)
	return res, err
}

func (c *APICounter) add(connector string, limited bool) {
	m := c.now().Unix() / 60
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.series[connector]
	if s == nil {
		s = &minuteSeries{}
		c.series[connector] = s
	}
	i := m % counterMinutes
	if s.minute[i] != m {
		s.minute[i], s.calls[i], s.r429[i] = m, 0, 0
	}
	s.calls[i]++
	s.totalCalls++
	if limited {
		s.r429[i]++
		s.total429++
	}
}

// APISeries is one connector's counts per bucket.
type APISeries struct {
	Connector        string
	Calls, Limited   []int // per bucket
	TotalCalls       int64 // since the process started
	TotalLimited     int64
	BucketsStartedAt time.Time
}

// Series returns each connector's counts in n buckets of width ending
// now.
func (c *APICounter) Series(n int, width time.Duration) []APISeries {
	if c == nil {
		return nil
	}
	now := c.now()
	start := now.Add(-time.Duration(n) * width)
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []APISeries
	for name, s := range c.series {
		as := APISeries{Connector: name, Calls: make([]int, n), Limited: make([]int, n), TotalCalls: s.totalCalls, TotalLimited: s.total429, BucketsStartedAt: start}
		for i := range s.minute {
			if s.calls[i] == 0 {
				continue
			}
			at := time.Unix(s.minute[i]*60, 0)
			if at.Before(start.Truncate(time.Minute)) || at.After(now) {
				continue
			}
			b := int(at.Sub(start) / width)
			b = max(0, min(n-1, b))
			as.Calls[b] += s.calls[i]
			as.Limited[b] += s.r429[i]
		}
		out = append(out, as)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Connector < out[j].Connector })
	return out
}
