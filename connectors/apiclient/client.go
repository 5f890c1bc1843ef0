// Package apiclient is the HTTP runtime the connectors share: timeouts,
// authentication (API key, bearer, OAuth 2.0), one rate limiter per
// connection, in-doubt detection for writes that must not be re-sent,
// typed API errors, secret redaction and dry runs.
//
// The client has no retry policy of its own. It sends a request once (and
// once more after a 401, with a fresh OAuth token); a failure that is safe
// to re-send is re-sent only when the caller's policy in the context
// (connectors.WithRetry: the engine's step policy) says so, after the
// policy's wait. So one failing request costs at most the step's
// attempts, never attempts × attempts.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/jsondec"
	"github.com/memberflow/memberflow/internal/jsonenc"
)

// Config configures a Client. Connectors fill in the service's defaults;
// the recipe's connection supplies the rest.
type Config struct {
	Service        string // the connector's name, used in errors and logs
	ConnectionName string // the recipe's name for the connection
	BaseURL        string
	Auth           connectors.Auth
	// APIKeyHeader and APIKeyScheme are the service's defaults for api_key
	// auth ("Authorization", "Token token=%s").
	APIKeyHeader, APIKeyScheme string
	// TokenURL is the service's OAuth token endpoint.
	TokenURL string
	// TokenParams are sent with a client-credentials token request
	// besides the standard ones (a service's own, such as the level of
	// token wanted). The refresh grant of golang.org/x/oauth2 sends none:
	// CheckToken covers it.
	TokenParams url.Values
	// CheckToken vets each token the service issues by the fields of its
	// answer (field("userType")). An error says the token contradicts the
	// connection's configuration: every request then fails with it, is
	// not retried, and no other token is fetched (each would spend a
	// refresh token to the same end). The token is kept (and saved), so
	// that a rotated refresh token is not lost.
	CheckToken func(field func(name string) any) error
	// Tokens keeps OAuth tokens across processes and restarts; nil keeps
	// them in memory.
	Tokens connectors.TokenStore
	// Header is sent with every request (an API version header).
	Header http.Header
	// RateLimit is the service's documented limit: never more than
	// Requests in any window of Per. Zero is unlimited.
	RateLimit connectors.RateLimit
	// EndpointLimits are stricter limits on some paths.
	EndpointLimits []EndpointLimit
	// LimitsPerAddress says the service counts its limits per caller IP
	// address, not per account: every connection of the process to the
	// base URL, whatever its credentials, shares one limiter.
	LimitsPerAddress bool
	// RateLimitPeriod is how long a bare 429 (no Retry-After) pauses the
	// connection: the service's counting period (for example 30 s).
	// Default: RateLimit.Per, else a second; at most a minute.
	RateLimitPeriod time.Duration
	// RateLimitHeaders makes the client read the X-RateLimit-*
	// headers (burst and daily) and pause before the service would
	// answer 429.
	RateLimitHeaders bool
	Timeout          time.Duration // per request; default 30 s
	// ParseError overrides the generic error-body parser.
	ParseError func(status int, header http.Header, body []byte) *connectors.APIError
	HTTPClient *http.Client
	Logger     hclog.Logger
	DryRun     func(connectors.PlannedWrite)
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
	// runs and is never in doubt.
	ReadOnly bool
	// Idempotent marks a write that can be re-sent safely. GET, HEAD, PUT
	// and DELETE are idempotent by default.
	Idempotent bool
	// Anonymous sends the request without the connection's credentials
	// and default headers: an OAuth token endpoint documents neither.
	Anonymous bool
	// Changes marks a GET that changes the service (a check-in some API
	// is GET …/checkin/true): a dry run plans it instead of sending it.
	Changes bool
}

func (r *Request) safe() bool {
	if r.Changes {
		return false
	}
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
	limiter *limiter
	redact  *Redactor
	log     hclog.Logger
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error
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
	if base.Scheme != "http" && base.Scheme != "https" {
		return nil, fmt.Errorf("%s: base URL %q: want http:// or https://", cfg.Service, cfg.BaseURL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
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
	c.limiter = sharedLimiter(cfg, func() time.Time { return c.now() }, func(ctx context.Context, d time.Duration) error { return c.sleep(ctx, d) })
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

// Limiter returns the connection's token bucket, nil when unlimited.
func (c *Client) Limiter() *rate.Limiter { return c.limiter.main }

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
		if err := decode(resp.Body, out); err != nil {
			return resp, fmt.Errorf("%s %s %s: decoding the answer: %w", c.cfg.Service, req.Method, req.Path, err)
		}
	}
	return resp, nil
}

// decoders share object keys between answers (most answers of a
// connection repeat them).
var decoders = sync.Pool{New: func() any { return new(jsondec.Decoder) }}

// decode is json.Unmarshal(body, out), in one pass without reflection
// when out is a nil map[string]any or a nil any (the values are
// encoding/json's: internal/jsondec).
func decode(body []byte, out any) error {
	var err error
	switch p := out.(type) {
	case *any:
		if *p != nil {
			break // Unmarshal decodes into what it holds
		}
		d := decoders.Get().(*jsondec.Decoder)
		*p, err = d.Value(body)
		decoders.Put(d)
		return err
	case *map[string]any:
		if *p != nil {
			break // Unmarshal adds to it
		}
		d := decoders.Get().(*jsondec.Decoder)
		*p, err = d.Object(body)
		decoders.Put(d)
		return err
	}
	return json.Unmarshal(body, out)
}

// Do performs the request with rate limiting and authentication, once
// (and once more after a 401, with a fresh OAuth token), re-sent only as
// the context's connectors.RetryFunc allows. A non-2xx answer
// is an *connectors.APIError; a 429 or 503, which the service did not
// apply, is Retryable. A write that is not idempotent and failed after it
// may have reached the service returns an error matching
// connectors.ErrInDoubt.
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
		b, err := jsonenc.Marshal(req.Body)
		if err != nil {
			return nil, fmt.Errorf("%s %s %s: encoding the body: %w", c.cfg.Service, req.Method, req.Path, err)
		}
		body = b
		if contentType == "" {
			contentType = "application/json"
		}
	}
	reauthorized := false
	retry := connectors.RetryFrom(ctx)
	for failed := 1; ; failed++ {
		if err := c.limiter.wait(ctx, &req); err != nil {
			return nil, c.wrap(req, err)
		}
		if !req.safe() {
			// As late as can be: the run may have been taken over while
			// this process waited, or was frozen (connectors.SendCheck).
			if err := connectors.CheckSend(ctx); err != nil {
				return nil, c.wrap(req, err)
			}
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
			failed--
			continue
		}
		if sent && !req.idempotent() && mayHaveApplied(err, api) {
			// The service may have applied the write: settle, never re-send.
			return nil, &connectors.InDoubtError{Method: req.Method, Path: c.redact.String(req.Path), Err: c.wrap(req, err)}
		}
		err = c.wrap(req, err)
		if retry == nil || !connectors.Retryable(err) || ctx.Err() != nil {
			return nil, err
		}
		// The caller's policy decides (and waits); the runtime only sends
		// again, so that the request is not started over with the action.
		c.log.Debug("retrying", "method", req.Method, "path", c.redact.String(req.Path), "failed", failed, "error", c.redact.String(err.Error()))
		if !retry(ctx, failed, err) {
			return nil, &connectors.RetriesSpentError{Attempts: failed, Err: err}
		}
	}
}

// mayHaveApplied reports whether a failed request may still have taken
// effect: a transport failure after sending, or a 5xx other than 503. A
// 4xx is a refusal; a 429 or a 503 says the service did not take the
// request (HTTP's meaning of 503, and no API here documents otherwise).
func mayHaveApplied(err error, api *connectors.APIError) bool {
	if api == nil {
		return true
	}
	return api.Status >= 500 && api.Status != http.StatusServiceUnavailable
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
			return nil, tokenFailure(err), false
		}
	}
	start := c.now()
	res, err := c.http.Do(hr)
	if err != nil {
		return nil, &transportError{err: err}, !notSent(err)
	}
	defer res.Body.Close()
	data, err := readBody(res)
	if err != nil {
		return nil, &transportError{err: err}, true
	}
	c.log.Trace("request", "method", req.Method, "path", c.redact.String(req.Path), "status", res.StatusCode, "took", c.now().Sub(start))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		var api *connectors.APIError
		if c.cfg.ParseError != nil {
			api = c.cfg.ParseError(res.StatusCode, res.Header, data)
		} else {
			api = ParseError(c.cfg.Service, res.StatusCode, res.Header, data)
		}
		api.Message = c.redact.String(api.Message)
		if pause := c.limiter.done(res.Header, res.StatusCode, api.RetryAfter); pause > api.RetryAfter {
			// The caller's retry waits at least as long as the connection.
			api.RetryAfter = pause
		}
		return nil, api, true
	}
	c.limiter.done(res.Header, res.StatusCode, 0)
	return &Response{Status: res.StatusCode, Header: res.Header, Body: data}, nil, true
}

// maxBody is the most of an answer read.
const maxBody = 64 << 20

// bodyBuffers hold answers of unannounced length while they are read.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer is the largest read buffer kept for the next answer.
const maxPooledBuffer = 1 << 20

// readBody reads an answer's body, at most maxBody bytes, into one
// buffer of the announced length when there is one, else into a pooled
// buffer then copied out at its length: io.ReadAll would grow a buffer
// from 512 bytes, copying a page of records a dozen times.
func readBody(res *http.Response) ([]byte, error) {
	r := io.LimitReader(res.Body, maxBody)
	n := res.ContentLength
	if n <= 0 || n > maxBody {
		buf := bodyBuffers.Get().(*bytes.Buffer)
		buf.Reset()
		_, err := buf.ReadFrom(r)
		data := append([]byte{}, buf.Bytes()...)
		if buf.Cap() <= maxPooledBuffer {
			bodyBuffers.Put(buf)
		}
		return data, err
	}
	buf := make([]byte, 0, n+1) // +1: room to see the end without growing
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // more than announced: grow
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// transportError is a failure below HTTP: connection refused, reset,
// timed out. It is temporary.
type transportError struct{ err error }

func (e *transportError) Error() string   { return e.err.Error() }
func (e *transportError) Unwrap() error   { return e.err }
func (e *transportError) Temporary() bool { return true }

// tokenError is a failure to get an OAuth token; the request was not
// sent. It is temporary unless the token endpoint turned the credentials
// down (a 4xx other than 429): asking again will not change its mind.
type tokenError struct {
	err       error
	temporary bool
}

func (e *tokenError) Error() string   { return e.err.Error() }
func (e *tokenError) Unwrap() error   { return e.err }
func (e *tokenError) Temporary() bool { return e.temporary }

func tokenFailure(err error) error {
	var vetoed *tokenCheckError
	if errors.Is(err, connectors.ErrSavedTokenUnreadable) || errors.As(err, &vetoed) {
		return &tokenError{err: err}
	}
	var refused *oauth2.RetrieveError
	if errors.As(err, &refused) && refused.Response != nil {
		s := refused.Response.StatusCode
		return &tokenError{err: err, temporary: s >= 500 || s == http.StatusTooManyRequests}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &tokenError{err: err, temporary: true}
}

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
