// Package sandbox is the combined sandbox: one HTTP server that mounts every
// service sandbox (connectors/<name>/sandbox, registered with
// sandboxkit.Register) under its own path prefix (/<name>), injects deterministic faults
// into their API routes, and serves the inspection endpoints:
//
//	GET  /_sandbox/stats     per service: objects, duplicates, requests by route, responses by status; totals
//	POST /_sandbox/reset     empty every service and seed it again with the same options
//	POST /_sandbox/mutate    {"service":"<name>","kind":"<mutation>","count":5} or a list of those
//	POST /_sandbox/webhooks  {"service":"<name>","url":"http://..."} registers a delivery URL
//	POST /_sandbox/credentials  {"service":"<name>","revoked":true} refuses the demo credentials (false restores)
//	POST /_sandbox/notifications/...  the alert sink (notify.webhook, notify.slack); GET lists, DELETE empties
//	POST /_sandbox/recording  keep every API request from now on (method, target, headers, body)
//	DELETE /_sandbox/recording  stop, and answer the requests kept, in arrival order
//
// Lifecycle: New seeds every service (no network), Start listens (or mount
// Handler in an httptest server), Close shuts the listener down and stops
// the services.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// Options configure the combined sandbox.
type Options struct {
	// Members is the number of seeded members (and the scale of the other
	// services' data).
	Members int
	// Seed makes the data and the fault sequence reproducible.
	Seed int64
	// Faults are injected into every service's API routes, never into
	// /_sandbox/*. A zero Faults.Seed takes Seed.
	Faults sandboxkit.Faults
	// RateLimit overrides every service's documented limit. Nil keeps the
	// documented defaults; a zero Limit turns limiting off.
	RateLimit *sandboxkit.Limit
	Logger    hclog.Logger
	// Now is the clock; nil is time.Now. Seeded dates are anchored at the
	// time New is called, so a reset reproduces the same data.
	Now func() time.Time
	// Services builds the mounted services; nil mounts every registered
	// one (sandboxkit.Registered). Tests mount their own.
	Services []Factory
	// WebhookClient sends the services' webhook deliveries; nil is a
	// default client.
	WebhookClient *http.Client
	// AllowUndocumented lets every service accept the request parameters
	// its real API does not document (see sandboxkit.Options).
	AllowUndocumented bool
}

// Factory builds one service sandbox.
type Factory func(opts sandboxkit.Options) sandboxkit.Service

// Server is the combined sandbox.
type Server struct {
	opts     Options
	log      hclog.Logger
	seed     sandboxkit.Seed
	services []*mounted
	byName   map[string]*mounted
	injector atomic.Pointer[sandboxkit.Injector]
	admin    *http.ServeMux
	// resetMu keeps API requests out while a reset replaces every
	// service's state.
	resetMu sync.RWMutex
	sink    sink
	rec     recording

	mu   sync.Mutex
	srv  *http.Server
	base string
}

// mounted is one service with the counters the combined server keeps.
type mounted struct {
	name      string
	svc       sandboxkit.Service
	routes    sync.Map // pattern -> *atomic.Int64
	responses [600]atomic.Int64
	dropped   atomic.Int64
	revoked   atomic.Bool // requests reach the service without credentials
	// learned holds the route patterns seen on served requests, so that a
	// request answered by a fault, which the service never routes, is
	// counted under its route too.
	learned     *http.ServeMux
	learnedSeen sync.Map // pattern -> struct{}
}

// New builds the services and seeds them. It does no network I/O.
func New(opts Options) (*Server, error) {
	if opts.Members < 0 {
		return nil, fmt.Errorf("sandbox: members must not be negative, got %d", opts.Members)
	}
	if err := checkRate("fail rate", opts.Faults.FailRate); err != nil {
		return nil, err
	}
	if err := checkRate("drop rate", opts.Faults.DropRate); err != nil {
		return nil, err
	}
	if opts.Faults.FailRate+opts.Faults.DropRate > 1 {
		return nil, fmt.Errorf("sandbox: fail rate and drop rate add up to more than 1 (%g)", opts.Faults.FailRate+opts.Faults.DropRate)
	}
	if opts.Faults.Latency < 0 {
		return nil, fmt.Errorf("sandbox: latency must not be negative, got %s", opts.Faults.Latency)
	}
	if rl := opts.RateLimit; rl != nil && (rl.Requests < 0 || rl.Per < 0) {
		return nil, fmt.Errorf("sandbox: rate limit must not be negative, got %d per %s", rl.Requests, rl.Per)
	}
	if opts.Faults.Seed == 0 {
		opts.Faults.Seed = opts.Seed
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	factories := opts.Services
	if factories == nil {
		factories = defaultServices()
	}
	if len(factories) == 0 {
		return nil, errors.New("sandbox: no services to mount")
	}
	s := &Server{
		opts:   opts,
		log:    opts.Logger.Named("sandbox"),
		seed:   sandboxkit.Seed{Members: opts.Members, Seed: opts.Seed, Now: opts.Now()},
		byName: map[string]*mounted{},
	}
	for _, f := range factories {
		svc := f(sandboxkit.Options{
			Logger:            s.log.Named("service"),
			RateLimit:         opts.RateLimit,
			Now:               opts.Now,
			WebhookClient:     opts.WebhookClient,
			AllowUndocumented: opts.AllowUndocumented,
			// Faults are applied here, once, for every service: a service
			// must not inject its own on top.
		})
		name := svc.Name()
		if name == "" || strings.ContainsAny(name, "/ ") || strings.HasPrefix(name, "_") {
			return nil, fmt.Errorf("sandbox: service name %q cannot be a path prefix", name)
		}
		if _, dup := s.byName[name]; dup {
			return nil, fmt.Errorf("sandbox: service %q is mounted twice", name)
		}
		m := &mounted{name: name, svc: svc, learned: http.NewServeMux()}
		s.services = append(s.services, m)
		s.byName[name] = m
	}
	s.injector.Store(sandboxkit.NewInjector(opts.Faults))
	s.seedAll()
	s.admin = http.NewServeMux()
	s.admin.HandleFunc("GET /_sandbox/stats", s.handleStats)
	s.admin.HandleFunc("POST /_sandbox/reset", s.handleReset)
	s.admin.HandleFunc("POST /_sandbox/mutate", s.handleMutate)
	s.admin.HandleFunc("POST /_sandbox/webhooks", s.handleWebhooks)
	s.admin.HandleFunc("POST /_sandbox/credentials", s.handleCredentials)
	s.admin.HandleFunc("GET /_sandbox/smtp", s.handleSMTP)
	s.admin.HandleFunc("POST /_sandbox/notifications/", s.handleNotification)
	s.admin.HandleFunc("POST /_sandbox/notifications", s.handleNotification)
	s.admin.HandleFunc("GET /_sandbox/notifications", s.handleListNotifications)
	s.admin.HandleFunc("DELETE /_sandbox/notifications", s.handleClearNotifications)
	s.admin.HandleFunc("POST /_sandbox/recording", s.handleStartRecording)
	s.admin.HandleFunc("DELETE /_sandbox/recording", s.handleStopRecording)
	s.admin.HandleFunc("/_sandbox/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no sandbox endpoint %s %s; there are GET /_sandbox/stats, POST /_sandbox/reset, POST /_sandbox/mutate, POST /_sandbox/webhooks, POST /_sandbox/credentials, /_sandbox/notifications and /_sandbox/recording", r.Method, r.URL.Path))
	})
	return s, nil
}

func checkRate(what string, f float64) error {
	if f < 0 || f > 1 {
		return fmt.Errorf("sandbox: %s must be between 0 and 1, got %g", what, f)
	}
	return nil
}

func (s *Server) seedAll() {
	// The service holding the members is seeded first; the others' seeded
	// attendees and registrations are its members.
	seed := s.seed
	for _, m := range s.services {
		if src, ok := m.svc.(sandboxkit.PeopleSource); ok {
			m.svc.Seed(s.seed)
			seed.People = src.Person
			break
		}
	}
	for _, m := range s.services {
		start := time.Now()
		if _, ok := m.svc.(sandboxkit.PeopleSource); ok {
			continue
		}
		m.svc.Seed(seed)
		s.log.Debug("seeded", "service", m.name, "members", s.seed.Members, "took", time.Since(start))
	}
}

// Services returns the mounted service names, in mount order.
func (s *Server) Services() []string {
	names := make([]string, len(s.services))
	for i, m := range s.services {
		names[i] = m.name
	}
	return names
}

// Handler serves every service and the inspection endpoints (for
// httptest, or to mount in another server).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves in the
// background. It returns the base URL; each service is under
// baseURL + "/" + name.
func (s *Server) Start(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return "", fmt.Errorf("sandbox: already serving at %s", s.base)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("sandbox: listening on %s: %w", addr, err)
	}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		// Long enough for injected latency on top of a slow answer.
		WriteTimeout:   60*time.Second + s.opts.Faults.Latency,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       s.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	s.base = "http://" + ln.Addr().String()
	if host, _, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		if err := s.startSMTP(host); err != nil {
			s.log.Warn("the alert sink's SMTP server did not start; emails to the sandbox fail", "error", err)
		}
	}
	srv := s.srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serving stopped", "error", err)
		}
	}()
	s.log.Info("listening", "url", s.base)
	return s.base, nil
}

// BaseURL returns the base URL once Start has run, else "".
func (s *Server) BaseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.base
}

// URL returns the base URL of one service ("" before Start).
func (s *Server) URL(service string) string {
	base := s.BaseURL()
	if base == "" {
		return ""
	}
	return base + "/" + service
}

// Close stops the listener (letting requests in flight finish for up to
// five seconds) and the services' background work.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	var errs []error
	if srv != nil {
		// Requests in flight get a moment to finish. Shutdown would wait
		// five seconds for connections a client opened but never used (a
		// transport's spare dial); a simulator need not be that patient.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			if cerr := srv.Close(); cerr != nil {
				errs = append(errs, fmt.Errorf("sandbox: closing: %w", cerr))
			}
		}
		cancel()
	}
	if err := s.closeSMTP(); err != nil {
		errs = append(errs, fmt.Errorf("sandbox: closing the SMTP sink: %w", err))
	}
	for _, m := range s.services {
		if c, ok := m.svc.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("sandbox: closing %s: %w", m.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if strings.HasPrefix(path, "/_sandbox/") {
		s.admin.ServeHTTP(w, r)
		return
	}
	name, rest := splitPrefix(path)
	m := s.byName[name]
	if m == nil {
		if path == "/" {
			s.handleIndex(w, r)
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no service at %q; the sandbox serves %s", "/"+name, strings.Join(s.prefixes(), ", ")))
		return
	}
	if s.rec.on.Load() {
		s.rec.record(r)
	}
	// A shallow copy with the prefix stripped, as http.StripPrefix does,
	// without its extra allocations.
	r2 := new(http.Request)
	*r2 = *r
	u := new(url.URL)
	*u = *r.URL
	u.Path, u.RawPath = rest, ""
	r2.URL = u
	if m.revoked.Load() {
		stripCredentials(r2)
	}
	sw := &statusWriter{ResponseWriter: w}

	s.resetMu.RLock()
	defer s.resetMu.RUnlock()
	if !strings.HasPrefix(rest, "/_sandbox/") {
		inj := s.injector.Load()
		if d := s.opts.Faults.Latency; d > 0 {
			time.Sleep(d)
		}
		switch inj.Next() {
		case sandboxkit.Fail:
			m.matchRoute(r2)
			m.count(r2, http.StatusInternalServerError)
			writeFailure(m, sw)
			return
		case sandboxkit.DropBefore:
			m.matchRoute(r2)
			m.countDrop(r2)
			drop(w)
			return
		case sandboxkit.DropAfter:
			// Applied, then no answer: the ambiguous case.
			rec := &discardWriter{h: http.Header{}}
			m.svc.ServeHTTP(rec, r2)
			m.learn(r2.Pattern)
			m.countDrop(r2)
			drop(w)
			return
		}
	}
	m.svc.ServeHTTP(sw, r2)
	m.learn(r2.Pattern)
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	m.count(r2, status)
}

// splitPrefix splits "/svc/v1/things" into "svc" and "/v1/things".
func splitPrefix(p string) (name, rest string) {
	p = strings.TrimPrefix(p, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, "/"
}

func (s *Server) prefixes() []string {
	out := make([]string, len(s.services))
	for i, m := range s.services {
		out[i] = "/" + m.name
	}
	return out
}

// patterner is implemented by services that can name a request's route
// without serving it (sandboxkit.Router does).
type patterner interface {
	Pattern(r *http.Request) string
}

// matchRoute names the route of a request that is answered by a fault
// instead of the service.
func (m *mounted) matchRoute(r *http.Request) {
	if p, ok := m.svc.(patterner); ok {
		r.Pattern = p.Pattern(r)
		return
	}
	_, r.Pattern = m.learned.Handler(r)
}

// learn remembers a served request's pattern. Catch-all patterns are left
// out: they would claim every request not yet learned.
func (m *mounted) learn(pattern string) {
	if pattern == "" {
		return
	}
	if _, seen := m.learnedSeen.LoadOrStore(pattern, struct{}{}); seen {
		return
	}
	path := pattern
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		path = pattern[i+1:]
	}
	if path == "/" {
		return
	}
	defer func() {
		// The service's own mux accepted the pattern, so ours cannot
		// conflict; never let counting break serving if it does.
		_ = recover()
	}()
	m.learned.HandleFunc(pattern, func(http.ResponseWriter, *http.Request) {})
}

// route names the request by the pattern the service's ServeMux matched
// (ServeMux records it on the request it was given), so that counts do not
// grow with every id.
func route(r *http.Request) string {
	if r.Pattern != "" {
		if strings.ContainsRune(r.Pattern, ' ') {
			return r.Pattern
		}
		return r.Method + " " + r.Pattern
	}
	return r.Method + " (no route)"
}

func (m *mounted) count(r *http.Request, status int) {
	key := route(r)
	c, ok := m.routes.Load(key)
	if !ok {
		c, _ = m.routes.LoadOrStore(key, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(1)
	if status > 0 && status < len(m.responses) {
		m.responses[status].Add(1)
	}
}

func (m *mounted) countDrop(r *http.Request) {
	m.count(r, 0)
	m.dropped.Add(1)
}

func (m *mounted) resetCounts() {
	m.routes.Range(func(k, _ any) bool { m.routes.Delete(k); return true })
	for i := range m.responses {
		m.responses[i].Store(0)
	}
	m.dropped.Store(0)
}

// statusWriter remembers the status code the service wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes streaming answers through.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// discardWriter swallows the answer of a request applied before a drop.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// drop closes the client connection with no answer.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 or a recorder: aborting the handler is the closest thing.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}
