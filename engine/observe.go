package engine

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

// Observer is told what the engine does, for metrics. Its methods are
// called on hot paths (every run, step attempt and HTTP request): they
// must be cheap and never block. Label values passed are bounded: recipe,
// step and action names come from the recipes, connector and operation
// names from the connectors' specs, never a member or record id.
type Observer interface {
	// EventsSeen counts what one poll, webhook delivery or engine feed
	// brought: new events and duplicates dropped.
	EventsSeen(recipe string, fresh, duplicates int)
	// RunFinished is one run's outcome (succeeded, skipped, suppressed,
	// dead); took is zero for a run decided when its event arrived.
	RunFinished(recipe, outcome string, took time.Duration)
	// StepAttempt is one call of a step's action (a settlement look-up
	// included): outcome is succeeded, retry, failed or in_doubt.
	StepAttempt(recipe, step, action, outcome string, took time.Duration)
	// PollFinished is one poll of a trigger.
	PollFinished(recipe string, ok bool, took time.Duration)
	// WebhookDelivery is one delivery to a webhook trigger: accepted,
	// duplicate, spooled, unauthorized, bad_request, too_large or
	// unavailable.
	WebhookDelivery(recipe, outcome string)
	// HTTPRequest is one HTTP attempt to a service; status is 0 when no
	// answer came (a transport error). operation is the connector
	// operation whose route the request matched, "oauth_token" or "other".
	HTTPRequest(connector, operation string, status int, took time.Duration)
	// RateLimitPause is a wait before a request, for the connection's
	// token bucket or a pause the service's rate-limit headers asked for.
	RateLimitPause(connector string, waited time.Duration)
	// StoreWrite is one durable write through the store (advance: a
	// trigger's cursor and events; record: journal lines and outcomes),
	// commit included.
	StoreWrite(op string, took time.Duration)
	// AlertFed is one engine event handed to an alert recipe (cause:
	// run_failed, ..., recovered); duplicate is true when the window had
	// already alerted.
	AlertFed(recipe, cause string, duplicate bool)
}

// nopObserver is the observer of an engine nobody watches.
type nopObserver struct{}

func (nopObserver) EventsSeen(string, int, int)                               {}
func (nopObserver) RunFinished(string, string, time.Duration)                 {}
func (nopObserver) StepAttempt(string, string, string, string, time.Duration) {}
func (nopObserver) PollFinished(string, bool, time.Duration)                  {}
func (nopObserver) WebhookDelivery(string, string)                            {}
func (nopObserver) HTTPRequest(string, string, int, time.Duration)            {}
func (nopObserver) RateLimitPause(string, time.Duration)                      {}
func (nopObserver) StoreWrite(string, time.Duration)                          {}
func (nopObserver) AlertFed(string, string, bool)                             {}

var _ Observer = nopObserver{}

// QueueStats is the store's queue at one moment, for metrics.
type QueueStats struct {
	Queued  int64
	Running int64
	// Dead counts dead letters not yet replayed.
	Dead int64
	// OldestQueued is when the oldest queued run was created; zero when
	// none is queued.
	OldestQueued time.Time
}

// QueueStatser is implemented by stores that count their queue cheaply
// (indexed); metrics find it by type assertion, as database/sql finds a
// driver's extra abilities.
type QueueStatser interface {
	QueueStats(ctx context.Context) (QueueStats, error)
}

// WriterStats counts the work of a store's one writer since it opened.
type WriterStats struct {
	// Busy is the time spent in transactions, commits included.
	Busy time.Duration
	// Commits counts the transactions; Writes the callers' writes
	// (advances, journal writes, claims) they carried together.
	Commits, Writes int64
}

// Syncer is implemented by stores whose commits are not each flushed to
// disk (SQLite with synchronous=NORMAL): Sync makes every commit so far
// survive a power loss. The engine calls it before acknowledging a
// webhook delivery.
type Syncer interface {
	Sync(ctx context.Context) error
}

// WriteHealth is implemented by stores whose reads may answer while
// their writes fail (SQLite: a full disk, a file made read-only or
// locked by another process): WriteError is the storage failure of the
// last commit, nil once one succeeds. Readiness fails while it is set.
type WriteHealth interface {
	WriteError() error
}

// WriterStatser is implemented by stores that write through one writer
// (SQLite's committer): a writer busy nearly all the time is the store's
// ceiling, where more workers or recipes only wait longer.
type WriterStatser interface {
	WriterStats() WriterStats
}

// instrumentedTransport reports every HTTP attempt of one connection to
// the observer and to the engine's watch (401s, 429s, successes).
type instrumentedTransport struct {
	base      http.RoundTripper
	connector string
	oc        *openConn
	routes    map[routeShape][]opRoute
	basePath  string
	e         *Engine
}

// routeShape indexes routes by what a request shows at once: its method
// and its number of path segments.
type routeShape struct {
	method   string
	segments int
}

// opRoute is an operation's request: a method and an OpenAPI path
// template, split in segments ({id} matches any one).
type opRoute struct {
	method, name string
	segments     []string
}

func routesOf(spec *connectors.Spec) map[routeShape][]opRoute {
	out := map[routeShape][]opRoute{}
	add := func(op *connectors.Operation) {
		if op.HTTP == nil || op.HTTP.Path == "" {
			return
		}
		r := opRoute{method: op.HTTP.Method, name: op.Name, segments: strings.Split(strings.Trim(op.HTTP.Path, "/"), "/")}
		k := routeShape{r.method, len(r.segments)}
		out[k] = append(out[k], r)
	}
	for _, a := range spec.Actions {
		add(&a.Operation)
	}
	for _, t := range spec.Triggers {
		add(&t.Operation)
	}
	return out
}

// operation names the request by the first route it matches; requests no
// operation declares (a token endpoint, a look-up inside a composite
// action) are "oauth_token" or "other", so that labels stay bounded.
func (t *instrumentedTransport) operation(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, t.basePath)
	if strings.HasSuffix(p, "/oauth/token") || strings.HasSuffix(p, "/token") {
		return "oauth_token"
	}
	segs := strings.Split(strings.Trim(p, "/"), "/")
	// The route with the fewest parameters wins: /credentials/search
	// before /credentials/{id}.
	best, bestParams := "other", len(segs)+1
	for _, rt := range t.routes[routeShape{r.Method, len(segs)}] {
		params := 0
		for i, s := range rt.segments {
			if s == segs[i] {
				continue
			}
			if !(strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}")) {
				params = len(segs) + 1
				break
			}
			params++
		}
		if params < bestParams {
			best, bestParams = rt.name, params
		}
	}
	return best
}

func (t *instrumentedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := t.base.RoundTrip(r)
	took := time.Since(start)
	status := 0
	if err == nil {
		status = res.StatusCode
	}
	// Every attempt counts against the service's rate limit: it is
	// charged to the recipe whose poll or run sent it, or to the
	// engine's own checks (at start, a token refresh outside a call).
	if n, ok := r.Context().Value(requestCounterKey{}).(*atomic.Int64); ok {
		n.Add(1)
	} else {
		t.e.otherRequests.Add(1)
	}
	if t.e.observed {
		// Naming the operation is for metrics only.
		t.e.obs.HTTPRequest(t.connector, t.operation(r), status, took)
	}
	t.e.watch.httpAnswer(t.oc, status)
	return res, err
}

// instrument wraps a connection's HTTP client so that every attempt is
// observed. A connection without a client gets the runtime's default
// transport, wrapped.
func (e *Engine) instrument(cfg *connectors.ConnectionConfig, spec *connectors.Spec, oc *openConn) {
	base := http.RoundTripper(apiclient.DefaultTransport())
	client := &http.Client{}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		client = &c
		if c.Transport != nil {
			base = c.Transport
		} else {
			base = http.DefaultTransport
		}
	}
	baseURL := cfg.BaseURL
	if baseURL == "" {
		baseURL = spec.BaseURL
	}
	basePath := ""
	if i := strings.Index(baseURL, "://"); i >= 0 {
		rest := baseURL[i+3:]
		if j := strings.Index(rest, "/"); j >= 0 {
			basePath = strings.TrimRight(rest[j:], "/")
		}
	}
	client.Transport = &instrumentedTransport{base: base, connector: spec.Name, oc: oc, routes: routesOf(spec), basePath: basePath, e: e}
	cfg.HTTPClient = client
}

// requestCounterKey carries, in a call's context, the counter of the
// recipe its HTTP requests are charged to.
type requestCounterKey struct{}

// callContext is the context of a recipe's calls to a connection (a
// poll, a step, a settlement look-up): its HTTP requests are counted to
// the recipe and its rate-limit waits reported.
func (e *Engine) callContext(ctx context.Context, recipe, connector string) context.Context {
	if st := e.stats[recipe]; st != nil {
		ctx = context.WithValue(ctx, requestCounterKey{}, &st.requests)
	}
	return e.withPauseHook(ctx, connector)
}

// withPauseHook reports the rate-limit waits of the calls made with ctx.
func (e *Engine) withPauseHook(ctx context.Context, connector string) context.Context {
	return apiclient.WithWaitHook(ctx, func(waited time.Duration) {
		e.obs.RateLimitPause(connector, waited)
		e.watch.paused(connector, waited)
	})
}

// timedStore measures the durable writes.
func (e *Engine) advance(ctx context.Context, recipe string, adv Advance) ([]Enqueued, error) {
	start := time.Now()
	enq, err := e.store.Advance(ctx, recipe, adv)
	e.obs.StoreWrite("advance", time.Since(start))
	return enq, err
}
