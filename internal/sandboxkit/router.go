package sandboxkit

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Options are what every service sandbox accepts.
type Options struct {
	Logger hclog.Logger
	// RateLimit overrides the service's documented limit. Nil keeps the
	// documented default; a zero Limit turns limiting off.
	RateLimit *Limit
	// Faults injected into the service's API routes.
	Faults Faults
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// WebhookClient sends webhook deliveries; nil is a default client.
	WebhookClient *http.Client
	// AllowUndocumented accepts the request parameters the real API does
	// not document (an incremental search's "changed since" filter, an
	// undocumented sort key, timestamps in a date filter). Off by default: what the tests prove against the sandbox
	// is then what the real API documents.
	AllowUndocumented bool
}

// Limit is a request budget per window.
type Limit struct {
	Requests int
	Per      time.Duration
}

// Router is an http.ServeMux that counts requests by route pattern and
// responses by status code, for /_sandbox/stats.
type Router struct {
	mux       *http.ServeMux
	mu        sync.Mutex
	requests  map[string]*atomic.Int64
	responses [600]atomic.Int64
}

// NewRouter returns an empty router.
func NewRouter() *Router {
	return &Router{mux: http.NewServeMux(), requests: map[string]*atomic.Int64{}}
}

// HandleFunc registers h for an http.ServeMux pattern ("GET /users/{userId}")
// and counts the requests it serves under that pattern.
func (rt *Router) HandleFunc(pattern string, h http.HandlerFunc) {
	rt.mu.Lock()
	c, ok := rt.requests[pattern]
	if !ok {
		c = new(atomic.Int64)
		rt.requests[pattern] = c
	}
	rt.mu.Unlock()
	rt.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c.Add(1)
		h(w, r)
	})
}

// ServeHTTP routes the request and counts its status code.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	rt.mux.ServeHTTP(sw, r)
	if sw.status > 0 && sw.status < len(rt.responses) {
		rt.responses[sw.status].Add(1)
	}
}

// Pattern returns the route pattern r would be served by, without serving
// it ("" when none matches), so that a request answered by a fault is
// counted under its route too.
func (rt *Router) Pattern(r *http.Request) string {
	_, p := rt.mux.Handler(r)
	return p
}

// CountStatus records a response written outside the router (a fault, a
// rate-limited request).
func (rt *Router) CountStatus(status int) {
	if status > 0 && status < len(rt.responses) {
		rt.responses[status].Add(1)
	}
}

// Counts returns requests by pattern and responses by status code.
func (rt *Router) Counts() (requests, responses map[string]int64) {
	requests, responses = map[string]int64{}, map[string]int64{}
	rt.mu.Lock()
	for p, c := range rt.requests {
		if n := c.Load(); n > 0 {
			requests[p] = n
		}
	}
	rt.mu.Unlock()
	for code := range rt.responses {
		if n := rt.responses[code].Load(); n > 0 {
			responses[strconv.Itoa(code)] = n
		}
	}
	return requests, responses
}

// ResetCounts zeroes every counter.
func (rt *Router) ResetCounts() {
	rt.mu.Lock()
	for _, c := range rt.requests {
		c.Store(0)
	}
	rt.mu.Unlock()
	for i := range rt.responses {
		rt.responses[i].Store(0)
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (fault drops).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteJSON writes v as a JSON answer with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
