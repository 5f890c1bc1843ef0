// Package apiclient is the HTTP runtime the connectors share: timeouts,
// authentication (API key, bearer, OAuth 2.0), a per-connection token
// bucket, retries with backoff for transient failures, in-doubt detection
// for writes that must not be re-sent, typed API errors, secret redaction
// and dry runs.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/memberflow/memberflow/connectors"
)

// Config configures a Client. Connectors fill in the service's defaults;
// the recipe's connection supplies the rest.
type Config struct {
	Service        string // "accredible", used in errors and logs
	ConnectionName string // the recipe's name for the connection
	BaseURL        string
	Auth           connectors.Auth
	// APIKeyHeader and APIKeyScheme are the service's defaults for api_key
	// auth ("Authorization", "Token token=%s").
	APIKeyHeader, APIKeyScheme string
	// TokenURL is the service's OAuth token endpoint.
	TokenURL string
	// Tokens keeps OAuth tokens across processes and restarts; nil keeps
	// them in memory.
	Tokens connectors.TokenStore
	// Header is sent with every request (GoHighLevel's `Version`).
	Header http.Header
	// RateLimit is the token bucket; zero is unlimited.
	RateLimit connectors.RateLimit
	// RateLimitHeaders makes the client read X-RateLimit-Remaining and
	// X-RateLimit-Interval-Milliseconds and pause before the service
	// would answer 429.
	RateLimitHeaders bool
	Timeout          time.Duration // per attempt; default 30 s
	Retry            RetryPolicy
	// ParseError overrides the generic error-body parser.
	ParseError func(status int, header http.Header, body []byte) *connectors.APIError
	HTTPClient *http.Client
	Logger     hclog.Logger
	DryRun     func(connectors.PlannedWrite)
}

// RetryPolicy bounds retries of transient failures.
type RetryPolicy struct {
	Attempts int           // total attempts, default 4
	Base     time.Duration // first backoff, default 200 ms
	Max      time.Duration // backoff ceiling, default 10 s
}

// Request is one API call.
type Request struct {
	Method string
	Path   string // relative to the base URL, already filled in
	Query  url.Values
	Body   any // JSON-encoded unless RawBody is set
	// RawBody and ContentType send a body as is (form posts).
	RawBody     []byte
	ContentType string
	Header      http.Header
	// ReadOnly marks a POST that only reads (a search): it is sent in dry
	// runs and retried freely.
	ReadOnly bool
	// Idempotent marks a write that can be re-sent safely. GET, HEAD, PUT
	// and DELETE are idempotent by default.
	Idempotent bool
	// Anonymous sends the request without the connection's credentials
	// and default headers: an OAuth token endpoint documents neither.
	Anonymous bool
}

func (r *Request) safe() bool {
	return r.ReadOnly || r.Method == http.MethodGet || r.Method == http.MethodHead
}

func (r *Request) idempotent() bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return r.Idempotent || r.ReadOnly
}

// Response is a successful answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Client calls one service for one connection. It is safe for concurrent
// use.
type Client struct {
	cfg     Config
	base    *url.URL
	http    *http.Client
	auth    authorizer
	limiter *rate.Limiter
	redact  *Redactor
	log     hclog.Logger
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error

	pauseMu    sync.Mutex
	pauseUntil time.Time
}

// New builds a client. It does no I/O.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, fmt.Errorf("%s: base URL is empty", cfg.Service)
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("%s: base URL %q is not an absolute URL", cfg.Service, cfg.BaseURL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Retry.Attempts <= 0 {
		cfg.Retry.Attempts = 4
	}
	if cfg.Retry.Base <= 0 {
		cfg.Retry.Base = 200 * time.Millisecond
	}
	if cfg.Retry.Max <= 0 {
		cfg.Retry.Max = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: defaultTransport}
	}
	c := &Client{
		cfg:    cfg,
		base:   base,
		http:   hc,
		redact: NewRedactor(cfg.Auth.Secrets()...),
		log:    cfg.Logger,
		now:    time.Now,
		sleep:  sleepCtx,
	}
	c.auth, err = newAuthorizer(cfg, func() time.Time { return c.now() })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Service, err)
	}
	if rl := cfg.RateLimit; !rl.Unlimited() {
		burst := rl.Burst
		if burst <= 0 {
			burst = rl.Requests
		}
		c.limiter = rate.NewLimiter(rate.Every(rl.Per/time.Duration(rl.Requests)), burst)
	}
	return c, nil
}

// defaultTransport keeps enough idle connections for a worker pool.
var defaultTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	return t
}()

// Redactor returns the client's redactor, for connectors that build their
// own messages.
func (c *Client) Redactor() *Redactor { return c.redact }

// Limiter returns the token bucket, nil when unlimited.
func (c *Client) Limiter() *rate.Limiter { return c.limiter }

// BaseURL returns the base URL.
func (c *Client) BaseURL() string { return c.base.String() }

// Service returns the service name.
func (c *Client) Service() string { return c.cfg.Service }

// JSON calls the API and decodes a JSON answer into out (when non-nil).
func (c *Client) JSON(ctx context.Context, req Request, out any) (*Response, error) {
	resp, err := c.Do(ctx, req)
	if err != nil {
		return resp, err
	}
	if out != nil && len(bytes.TrimSpace(resp.Body)) > 0 {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return resp, fmt.Errorf("%s %s %s: decoding the answer: %w", c.cfg.Service, req.Method, req.Path, err)
		}
	}
	return resp, nil
}

// Do performs the request with rate limiting, authentication and retries.
// A non-2xx answer is an *connectors.APIError. A write that is not
// idempotent and failed after it may have reached the service returns an
// error matching connectors.ErrInDoubt and is not re-sent.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	if c.cfg.DryRun != nil && !req.safe() {
		c.cfg.DryRun(connectors.PlannedWrite{Connection: c.cfg.ConnectionName, Method: req.Method, Path: c.redact.String(req.Path), Body: redactFields(req.Body)})
		return &Response{Status: http.StatusOK, Header: http.Header{}, Body: []byte("{}")}, nil
	}
	var body []byte
	contentType := req.ContentType
	switch {
	case req.RawBody != nil:
		body = req.RawBody
	case req.Body != nil:
		b, err := json.Marshal(req.Body)
		if err != nil {
			return nil, fmt.Errorf("%s %s %s: encoding the body: %w", c.cfg.Service, req.Method, req.Path, err)
		}
		body = b
		if contentType == "" {
			contentType = "application/json"
		}
	}
	reauthorized := false
	var lastErr error
	for attempt := 1; ; attempt++ {
		if err := c.wait(ctx); err != nil {
			return nil, c.wrap(req, err)
		}
		resp, err, sent := c.once(ctx, req, body, contentType)
		if err == nil {
			return resp, nil
		}
		var api *connectors.APIError
		if errors.As(err, &api) && api.Status == http.StatusUnauthorized && c.cfg.Auth.Type == connectors.AuthOAuth2 && !reauthorized {
			// A token revoked or expired early: one fresh token, one retry.
			reauthorized = true
			c.auth.invalidate()
			attempt--
			continue
		}
		lastErr = err
		if ctx.Err() != nil {
			if sent && api == nil && !req.idempotent() {
				// Cancelled while the service may be applying the write.
				return nil, &connectors.InDoubtError{Method: req.Method, Path: c.redact.String(req.Path), Err: c.wrap(req, err)}
			}
			return nil, c.wrap(req, err)
		}
		transient := connectors.Retryable(err) || (err != nil && api == nil)
		var refused *oauth2.RetrieveError
		if errors.As(err, &refused) && refused.Response != nil && refused.Response.StatusCode < 500 && refused.Response.StatusCode != http.StatusTooManyRequests {
			// The token endpoint turned the credentials down: asking
			// again will not change its mind.
			transient = false
		}
		if !transient {
			return nil, c.wrap(req, err)
		}
		if sent && !req.idempotent() && !(api != nil && (api.Status == http.StatusTooManyRequests || api.Status == http.StatusServiceUnavailable)) {
			// The service may have applied the write: settle, never re-send.
			return nil, &connectors.InDoubtError{Method: req.Method, Path: c.redact.String(req.Path), Err: c.wrap(req, err)}
		}
		if attempt >= c.cfg.Retry.Attempts {
			return nil, c.wrap(req, fmt.Errorf("giving up after %d attempts: %w", attempt, lastErr))
		}
		delay := c.backoff(attempt)
		if api != nil && api.RetryAfter > 0 {
			delay = api.RetryAfter
		}
		c.log.Debug("retrying", "method", req.Method, "path", c.redact.String(req.Path), "attempt", attempt, "delay", delay, "error", c.redact.String(err.Error()))
		if err := c.sleep(ctx, delay); err != nil {
			return nil, c.wrap(req, err)
		}
	}
}

// once sends one attempt. sent reports whether the request may have
// reached the service (false only when it certainly did not).
func (c *Client) once(ctx context.Context, req Request, body []byte, contentType string) (*Response, error, bool) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := *c.base
	u.Path = c.base.Path + "/" + strings.TrimLeft(req.Path, "/")
	if len(req.Query) > 0 {
		u.RawQuery = req.Query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u.String(), rd)
	if err != nil {
		return nil, err, false
	}
	if !req.Anonymous {
		for k, v := range c.cfg.Header {
			hr.Header[k] = v
		}
	}
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	if contentType != "" {
		hr.Header.Set("Content-Type", contentType)
	}
	hr.Header.Set("Accept", "application/json")
	if !req.Anonymous {
		if err := c.auth.authorize(ctx, hr); err != nil {
			return nil, err, false
		}
	}
	start := c.now()
	res, err := c.http.Do(hr)
	if err != nil {
		return nil, &transportError{err: err}, !notSent(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, &transportError{err: err}, true
	}
	c.observeRateHeaders(res.Header)
	c.log.Trace("request", "method", req.Method, "path", c.redact.String(req.Path), "status", res.StatusCode, "took", c.now().Sub(start))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		var api *connectors.APIError
		if c.cfg.ParseError != nil {
			api = c.cfg.ParseError(res.StatusCode, res.Header, data)
		} else {
			api = ParseError(c.cfg.Service, res.StatusCode, res.Header, data)
		}
		api.Message = c.redact.String(api.Message)
		return nil, api, true
	}
	return &Response{Status: res.StatusCode, Header: res.Header, Body: data}, nil, true
}

// transportError is a failure below HTTP: connection refused, reset,
// timed out. It is temporary.
type transportError struct{ err error }

func (e *transportError) Error() string   { return e.err.Error() }
func (e *transportError) Unwrap() error   { return e.err }
func (e *transportError) Temporary() bool { return true }

// notSent reports whether a transport error happened before any byte of
// the request could reach the service (the dial failed).
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return false
}

func (c *Client) wrap(req Request, err error) error {
	var api *connectors.APIError
	if errors.As(err, &api) {
		return err // already says service, status and message
	}
	return &redactedError{msg: c.redact.String(fmt.Sprintf("%s %s %s: %s", c.cfg.Service, req.Method, req.Path, err.Error())), err: err}
}

// redactedError says what happened with the secrets taken out, and keeps
// the cause for errors.Is (context.Canceled, a transport error).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// DefaultTransport is the transport of clients given no HTTPClient, for
// callers that wrap it (the engine's request metrics).
func DefaultTransport() http.RoundTripper { return defaultTransport }

type waitHookKey struct{}

// WithWaitHook returns a context whose calls report each rate-limit wait
// (the token bucket, or a pause the service's headers asked for) to hook:
// the metrics hook of the runner, which sees no client.
func WithWaitHook(ctx context.Context, hook func(waited time.Duration)) context.Context {
	return context.WithValue(ctx, waitHookKey{}, hook)
}

// minReportedWait is the shortest wait reported as a pause: a token
// taken at once is not one.
const minReportedWait = time.Millisecond

// wait takes a token from the bucket, after any pause the service's
// rate-limit headers asked for.
func (c *Client) wait(ctx context.Context) error {
	if hook, ok := ctx.Value(waitHookKey{}).(func(time.Duration)); ok {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d >= minReportedWait {
				hook(d)
			}
		}()
	}
	c.pauseMu.Lock()
	until := c.pauseUntil
	c.pauseMu.Unlock()
	if d := until.Sub(c.now()); d > 0 {
		if err := c.sleep(ctx, d); err != nil {
			return err
		}
	}
	if c.limiter != nil {
		return c.limiter.Wait(ctx)
	}
	return nil
}

// observeRateHeaders pauses the connection when the service reports its
// window nearly spent (GoHighLevel's X-RateLimit-* headers).
func (c *Client) observeRateHeaders(h http.Header) {
	if !c.cfg.RateLimitHeaders {
		return
	}
	remaining, err1 := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	intervalMS, err2 := strconv.Atoi(h.Get("X-RateLimit-Interval-Milliseconds"))
	if err1 != nil || err2 != nil || intervalMS <= 0 {
		return
	}
	if remaining <= 1 {
		c.pauseMu.Lock()
		if u := c.now().Add(time.Duration(intervalMS) * time.Millisecond); u.After(c.pauseUntil) {
			c.pauseUntil = u
			c.log.Debug("rate limit window nearly spent; pausing", "for", time.Duration(intervalMS)*time.Millisecond)
		}
		c.pauseMu.Unlock()
	}
}

// backoff is exponential with full jitter.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.Retry.Base << (attempt - 1)
	if d <= 0 || d > c.cfg.Retry.Max {
		d = c.cfg.Retry.Max
	}
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
