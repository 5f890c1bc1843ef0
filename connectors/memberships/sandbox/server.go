// Package sandbox is a faithful in-memory Memberships API: GoHighLevel's
// Users API v2 and OAuth 2.0 token endpoint, with memberflow's membership
// fields and payments (see ../openapi.json and ../README.md).
//
// It behaves like the real service where the documents say how: the
// `Version: 2021-07-28` header is required, `Authorization: Bearer` takes a
// private integration token ([DemoKey] for the location, [DemoAgencyKey] for
// the agency) or an access token from POST /oauth/token; a route the
// document secures with Agency-Access only refuses a location token with
// 401, as GoHighLevel does, error bodies are GoHighLevel's
// (`{"statusCode":..,"message":..}`, 422 with a message list), creates
// answer 201, search pages with skip/limit, and every answer carries the
// X-RateLimit-* headers of a 100-per-10-seconds burst window and a
// 200,000-per-day window. Every change to a user or payment is pushed as a
// webhook signed with RSA-SHA256 in `x-wh-signature`, to the URLs
// registered with POST /_sandbox/webhooks; the public key is served at
// GET /webhooks/public-key.
package sandbox

import (
	"crypto/rsa"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// Public demo credentials the sandbox accepts. They are not secrets: they
// are printed in the README so that anyone can call the sandbox with curl.
const (
	// DemoKey is a private integration token of the demo location: a
	// location-level (Sub-Account) token, what the connector's README
	// documents and the examples use.
	DemoKey = "pit-memberflow-sandbox-demo"
	// DemoAgencyKey is a private integration token of the demo company:
	// agency-level, for the routes GoHighLevel documents as Agency-Access
	// only (POST /users/search/filter-by-email).
	DemoAgencyKey = "pit-memberflow-sandbox-agency-demo"
	// DemoClientID and DemoClientSecret are the demo OAuth app.
	DemoClientID     = "memberflow-sandbox-client"
	DemoClientSecret = "memberflow-sandbox-demo-secret"
	// DemoAuthCode is accepted once per token request by the
	// authorization_code grant (the sandbox has no consent screen).
	DemoAuthCode = "memberflow-sandbox-demo-code"
	// DemoLocationID and DemoCompanyID are the location (sub-account)
	// the examples' connections name and its company; the company has
	// other locations (Locations).
	DemoLocationID = "mfSandboxLocation001"
	DemoCompanyID  = "mfSandboxCompany0001"
	// InstallerUserID is the user who "installed" the demo app.
	InstallerUserID = "mfSandboxInstaller01"
	// APIVersion is the only Version header value the API accepts.
	APIVersion = "2021-07-28"
	// DefaultTokenLifetime is GoHighLevel's access-token lifetime.
	DefaultTokenLifetime = 86399 * time.Second
)

// The documented limits: per app and location, 100 requests per 10 s, and
// 200,000 a day.
const (
	burstLimit  = 100
	burstWindow = 10 * time.Second
	dailyLimit  = 200000
)

// Server is the Memberships sandbox. It is safe for concurrent use.
type Server struct {
	opts sandboxkit.Options
	log  hclog.Logger
	now  func() time.Time

	mu sync.RWMutex
	st *store // the demo location's: payments, Mutate, Person and Stats
	// locs are every location's stores, in the order of Locations:
	// locs[0] is st.
	locs []*store
	rng  *rand.Rand // ids and mutations; under mu
	seed sandboxkit.Seed

	key   atomic.Pointer[signingKey]
	oauth *tokens

	burst, daily atomic.Pointer[sandboxkit.Window]
	hooks        *sandboxkit.Deliverer
	hookSeq      atomic.Uint64
	injector     *sandboxkit.Injector

	mux     *http.ServeMux
	handler http.Handler
}

var _ sandboxkit.Service = (*Server)(nil)

// New returns an empty sandbox (call Seed to fill it). It does no I/O.
// Faults in opts are injected by the sandbox itself, for standalone use;
// the combined sandbox injects its own and passes none.
func New(opts sandboxkit.Options) *Server {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{
		opts:  opts,
		log:   opts.Logger.Named("memberships"),
		now:   now,
		oauth: newTokens(),
		hooks: &sandboxkit.Deliverer{Client: opts.WebhookClient, Log: opts.Logger.Named("memberships.webhooks")},
	}
	s.resetState(sandboxkit.Seed{Now: now()})
	s.routes()
	s.handler = s.mux
	if opts.Faults.Enabled() {
		s.injector = sandboxkit.NewInjector(opts.Faults)
		s.handler = s.injector.Wrap(s.mux, s.WriteFailure)
	}
	return s
}

// Name is the path prefix in the combined sandbox.
func (s *Server) Name() string { return "memberships" }

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Path) > 10 && r.URL.Path[:10] == "/_sandbox/" {
		s.mux.ServeHTTP(w, r) // never faulted
		return
	}
	s.handler.ServeHTTP(w, r)
}

// WriteFailure writes the service's 500 body, for injected faults.
func (s *Server) WriteFailure(w http.ResponseWriter) {
	writeError(w, http.StatusInternalServerError, "Internal server error")
}

// SetTokenLifetime changes the expires_in of access tokens issued from now
// on (GoHighLevel's is 86399 s), so that tests can watch a token expire.
func (s *Server) SetTokenLifetime(d time.Duration) { s.oauth.lifetime.Store(int64(d)) }

// PublicKeyPEM returns the PEM public key webhooks are signed with.
func (s *Server) PublicKeyPEM() string { return string(s.signingKey().publicPEM) }

// PrivateKey returns the webhook signing key, for tests that sign their
// own deliveries.
func (s *Server) PrivateKey() *rsa.PrivateKey { return s.signingKey().private }

// signingKey returns the seed's key pair, derived on first use: finding
// the primes takes a moment that a sandbox nobody asks for webhooks from
// should not pay. It must not be called with mu held.
func (s *Server) signingKey() *signingKey {
	s.mu.RLock()
	seed := s.seed.Seed
	s.mu.RUnlock()
	if k := s.key.Load(); k != nil && k.seed == seed {
		return k
	}
	k := keyForSeed(seed)
	s.key.Store(k)
	return k
}

// RegisterWebhook adds a URL that receives every delivery.
func (s *Server) RegisterWebhook(url string) { s.hooks.Register(url) }

// Webhooks returns the deliverer, so that tests can wait for deliveries.
func (s *Server) Webhooks() *sandboxkit.Deliverer { return s.hooks }

// Reset empties all state and counters. Registered webhook URLs are kept:
// they are configuration, not data.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetState(sandboxkit.Seed{Now: s.now()})
}

// resetState replaces the store and rate windows; mu is held (or the
// server is not shared yet).
func (s *Server) resetState(seed sandboxkit.Seed) {
	s.locs = make([]*store, len(Locations))
	for i, l := range Locations {
		s.locs[i] = newStore(l.ID)
	}
	s.st = s.locs[0]
	s.seed = seed
	s.rng = rand.New(rand.NewPCG(uint64(seed.Seed), 0x6d656d62)) // "memb"
	s.oauth.reset()
	burst := &sandboxkit.Window{Limit: burstLimit, Length: burstWindow, Now: s.opts.Now}
	daily := &sandboxkit.Window{Limit: dailyLimit, Length: day, Now: s.opts.Now}
	if rl := s.opts.RateLimit; rl != nil {
		burst = &sandboxkit.Window{Limit: rl.Requests, Length: rl.Per, Now: s.opts.Now}
		if rl.Requests <= 0 || rl.Per <= 0 {
			burst, daily = nil, nil
		}
	}
	s.burst.Store(burst)
	s.daily.Store(daily)
}

// Stats reports the demo location's live users and payments, and
// duplicates: extra users sharing an email in one location (a person may
// be a user of two locations), extra payments sharing an externalRef.
func (s *Server) Stats() sandboxkit.ServiceStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.st
	dupUsers := 0
	for _, l := range s.locs {
		dupUsers += duplicates(l.userByEmail, l.users)
	}
	dupPays := duplicates(st.paymentByRe, st.payments)
	return sandboxkit.ServiceStats{
		Objects:    map[string]int{"users": st.liveUsers, "payments": st.livePays},
		Duplicates: map[string]int{"users": dupUsers, "payments": dupPays},
	}
}

// routes registers every endpoint. Patterns are GoHighLevel's paths.
func (s *Server) routes() {
	m := http.NewServeMux()
	api := func(pattern string, h http.HandlerFunc) { m.HandleFunc(pattern, s.guard(h)) }
	api("GET /users/{$}", s.listUsers)
	api("POST /users/{$}", s.createUser)
	api("GET /users/search", s.searchUsers)
	api("POST /users/search/filter-by-email", s.filterByEmail)
	api("GET /users/{userId}", s.getUser)
	api("PUT /users/{userId}", s.updateUser)
	api("DELETE /users/{userId}", s.deleteUser)
	api("POST /payments", s.createPayment)
	api("GET /payments", s.listPayments)
	api("GET /payments/{paymentId}", s.getPayment)
	api("PUT /payments/{paymentId}", s.updatePayment)
	api("DELETE /payments/{paymentId}", s.deletePayment)
	api("POST /oauth/locationToken", s.locationToken)
	api("GET /oauth/installedLocations", s.installedLocations)
	api("GET /locations/{locationId}", s.getLocation)
	// The token endpoint takes client credentials in the form, and no
	// Version header (GoHighLevel's document lists none).
	m.HandleFunc("POST /oauth/token", s.token)
	m.HandleFunc("GET /webhooks/public-key", s.publicKey)
	m.HandleFunc("POST /_sandbox/webhooks", s.registerWebhook)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.authorize(r); !ok {
			writeJSON(w, http.StatusUnauthorized, errorBody{StatusCode: 401, Message: "Invalid token: access token is invalid", Error: "Unauthorized"})
			return
		}
		// NestJS's answer for an unknown route.
		writeJSON(w, http.StatusNotFound, errorBody{StatusCode: 404, Message: "Cannot " + r.Method + " " + r.URL.Path, Error: "Not Found"})
	})
	s.mux = m
}

// guard checks the bearer token, the Version header and the rate limit,
// in that order (a request without credentials learns nothing else, as
// with the real API), and sets the X-RateLimit-* headers on the answer.
func (s *Server) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := s.authorize(r)
		if !ok {
			writeJSON(w, http.StatusUnauthorized, errorBody{StatusCode: 401, Message: "Invalid token: access token is invalid", Error: "Unauthorized"})
			return
		}
		if r.Header.Get("Version") == "" {
			writeError(w, http.StatusBadRequest, "version header was not found")
			return
		}
		if v := r.Header.Get("Version"); v != APIVersion {
			writeError(w, http.StatusBadRequest, "version header is invalid")
			return
		}
		if !s.takeRate(w) {
			writeError(w, http.StatusTooManyRequests, "Too Many Requests")
			return
		}
		h(w, r.WithContext(withToken(r.Context(), tok)))
	}
}

// takeRate counts the request in both windows and writes the headers.
func (s *Server) takeRate(w http.ResponseWriter) bool {
	burst, daily := s.burst.Load(), s.daily.Load()
	if burst == nil {
		return true
	}
	ok, remaining, _ := burst.Take()
	dok, dremaining, dmax := true, dailyLimit, dailyLimit
	if daily != nil {
		dok, dremaining, _ = daily.Take()
		dmax = daily.Limit
	}
	h := w.Header()
	h["X-Ratelimit-Limit-Daily"] = []string{strconv.Itoa(dmax)}
	h["X-Ratelimit-Daily-Remaining"] = []string{strconv.Itoa(dremaining)}
	h["X-Ratelimit-Interval-Milliseconds"] = []string{strconv.FormatInt(burst.Length.Milliseconds(), 10)}
	h["X-Ratelimit-Max"] = []string{strconv.Itoa(burst.Limit)}
	h["X-Ratelimit-Remaining"] = []string{strconv.Itoa(remaining)}
	return ok && dok
}

func (s *Server) registerWebhook(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL string `json:"url"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.URL == "" {
		writeError(w, http.StatusBadRequest, `expected {"url": "http://..."}`)
		return
	}
	s.hooks.Register(req.URL)
	writeJSON(w, http.StatusCreated, map[string]any{"url": req.URL, "urls": s.hooks.URLs()})
}

func (s *Server) publicKey(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(s.signingKey().publicPEM)
}

// Wire helpers.

type errorBody struct {
	StatusCode int    `json:"statusCode"`
	Message    any    `json:"message"`
	Error      string `json:"error,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{StatusCode: status, Message: msg})
}

// writeInvalid is GoHighLevel's 422: one message per invalid field.
func writeInvalid(w http.ResponseWriter, msgs []string) {
	writeJSON(w, http.StatusUnprocessableEntity, errorBody{StatusCode: 422, Message: msgs, Error: "Unprocessable Entity"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"statusCode":500,"message":"Internal server error"}`)
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/json; charset=utf-8"}
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
