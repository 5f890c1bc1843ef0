// Package engine runs compiled recipes: it feeds triggers (polls, webhooks,
// schedules) into a durable queue, runs each event's steps on a worker pool
// with a step journal, settles in-doubt writes, retries, dead-letters and
// suppresses the echoes of its own writes.
//
// Lifecycle, in order: [New] with a [Store]; [Engine.Add] each recipe with
// its connections (opened here, no I/O); then either [Engine.RunOnce]
// (poll until caught up, drain the queue, return a summary) or
// [Engine.Run] (until the context ends, then a graceful stop), with
// [Engine.WebhookHandler] served by the caller; finally [Engine.Close].
//
// The engine never imports a concrete connector: it sees only the SDK.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
	"github.com/memberflow/memberflow/recipes"
)

// ErrNoRun is returned for a run ID the store does not know.
var ErrNoRun = errors.New("no such run")

// Options configure an Engine.
type Options struct {
	Store  RunnerStore
	Logger hclog.Logger
	// Concurrency is the number of runs executed at once; default 8.
	Concurrency int
	// Owner names this runner in the store's leases; default unique to
	// this process (host, process ID and a random suffix), so that
	// runners sharing a store never take each other's runs. An operator
	// who names a runner gets its previous self's runs back at once on
	// start; two live runners with one name are refused.
	Owner string
	// Lease is how long a claimed run stays this runner's without a
	// renewal; default one minute. It is renewed every third of it.
	Lease time.Duration
	// Grace is how long a stop waits for runs in flight before cancelling
	// them; default 30 s.
	Grace time.Duration
	// Retry is the policy of steps whose recipe sets none; default 5
	// attempts, 500 ms doubling with jitter, at most 30 s apart.
	Retry recipes.RetryPolicy
	// HighWater bounds the runs this runner's triggers have queued and
	// not yet finished; pollers wait above it, which keeps memory flat
	// during a backfill. Default 64 × Concurrency.
	HighWater int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// StoreKey is the operator's secret that OAuth tokens are encrypted
	// with in the store (at least MinStoreKey bytes). Without it, an
	// oauth2 connection with a refresh token is refused: the service
	// rotates the token, and a restart would be left with a dead one.
	StoreKey []byte
	// Meta keeps tokens and connection identities; default the Store,
	// when it implements MetaStore. A dry run sets the real store here,
	// so that a token the service rotated is not lost with the copy.
	Meta MetaStore
	// Observer is told what happens, for metrics; default none.
	Observer Observer
	// AlertEvery is how often due alerts are fed to alert recipes (the
	// memberflow connector's triggers); default one second.
	AlertEvery time.Duration
	// LoadVersion compiles an earlier version of a loaded recipe from its
	// source (the store keeps each version that ran, when it implements
	// Versions), so that a replayed run runs the version that failed.
	// Nil: such a run is dead-lettered, saying to replay it with the
	// loaded version (--latest).
	LoadVersion func(current *recipes.Recipe, source []byte) (*recipes.Recipe, error)
	// Spool keeps the webhook deliveries the store refuses (an outage, a
	// full disk), fsynced, until the store takes them (spool.go); nil:
	// such a delivery is answered 503 and its sender must retry. The
	// caller opens it (OpenSpool) and closes it after the engine.
	Spool *Spool
	// PlannedWrites says that writes are planned, not made (a dry run):
	// their answers are placeholders, so a later step's input computed
	// from one is not held to the action's input schema.
	PlannedWrites bool
}

// Connection is a recipe connection ready to open.
type Connection struct {
	Spec   *connectors.Spec
	Config connectors.ConnectionConfig
	// Place, when set, names where the connection points in the store's
	// record of its identity, instead of its base URL: for a service
	// whose address changes at every start (the in-process sandbox).
	Place string
}

// Engine runs recipes. Create it with New.
type Engine struct {
	opts    Options
	store   RunnerStore
	log     hclog.Logger
	now     func() time.Time
	recipes map[string]*recipeRT
	// vcache holds earlier recipe versions compiled for replayed runs.
	vcache  versionCache
	order   []string // recipe names in Add order
	conns   map[string]*openConn
	secrets []string
	redact  *apiclient.Redactor
	meta    MetaStore   // nil: the store keeps no tokens or identities
	vault   *tokenVault // nil without a store key
	// vaultsUsed holds the vaults the connections keep their tokens in:
	// the engine's own, or one the caller attached (TokenStores).
	vaultsUsed []*tokenVault

	cache   eventCache
	pending atomic.Int64 // runs enqueued here and not finished here
	// slots holds one token per run or call in flight, Concurrency in all:
	// the workers' runs and the calls of page runs (pages.go).
	slots  chan struct{}
	wakeCh chan struct{}
	room   chan struct{} // signalled when pending drops

	stopping atomic.Bool // webhooks refuse deliveries
	// spool keeps the deliveries the store refuses; nil: none.
	spool     *Spool
	spoolKick chan struct{}
	// waitsEnded is set when dispatch stops: runs waiting to retry are
	// abandoned rather than waited for (retryWait).
	waitsEnded atomic.Bool
	latency    histogram // execution time of runs with an outcome
	obs        Observer
	observed   bool // an Observer was given: HTTP requests are named for it
	// journal batches the journal writes of concurrent runs; nil when the
	// store writes one at a time (journal.go).
	journal *journalWriter
	watch   *watch

	// otherRequests counts the HTTP requests no recipe sent: the checks
	// at start, a token fetched outside a call.
	otherRequests atomic.Int64

	mu      sync.Mutex
	started bool
	joined  bool
	stats   map[string]*recipeStats

	// inflight cancels the runs this runner works on, by run ID, when
	// their lease is lost.
	inflightMu sync.Mutex
	inflight   map[int64]inflightRun
	// ending are the runs no longer named by the renewals that this
	// runner may still act on (dropped, their work not yet stopped; or
	// their outcome being written), by their leased time: until they are
	// forgotten, renewals do not let the store release runs leased from
	// then on (renewal). Under inflightMu.
	ending map[*atomic.Int64]struct{}
	// claiming are the claims in flight (Claim, or an Advance that claims
	// a page's runs) by a sequence number, each with its Now: their runs
	// are not tracked yet, and the renewals do not let the store release
	// runs leased from then on (claimBegin). Under inflightMu.
	claiming map[uint64]time.Time
	claimSeq uint64
	// giveBacks are the runs abandoned while their lease may still be
	// this runner's (the store failed, or the leases could not be
	// renewed), by run ID: given back to the queue as soon as the store
	// answers again (giveBack). Under inflightMu.
	giveBacks map[int64]Lease
	// renewNow asks the renewals for one at once (leaseHeld).
	renewNow chan struct{}
	// balance spreads the triggers' poll leads over the live runners.
	balance *pollBalance

	// batchers gather the calls of steps whose action has a batch form,
	// by batchKey.
	batchers sync.Map
}

// UniqueOwner is a runner name no other process has: host, process ID
// and a random suffix.
func UniqueOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "memberflow"
	}
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Owner is this runner's name in the store's leases.
func (e *Engine) Owner() string { return e.opts.Owner }

type openConn struct {
	name, connector string
	conn            connectors.Conn
	openConnState
	baseURL, place string
}

// New makes an engine. It does no I/O.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("engine: no store")
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.Owner == "" {
		opts.Owner = UniqueOwner()
	}
	if opts.Lease <= 0 {
		opts.Lease = time.Minute
	}
	if opts.Grace <= 0 {
		opts.Grace = 30 * time.Second
	}
	if opts.Retry.Attempts <= 0 {
		// Eight: with none of the APIs offering an idempotency key, a
		// create that fails ambiguously is settled and sent again, and
		// each send counts; a service failing three calls in ten should
		// not dead-letter a run (five left about one create in 400).
		opts.Retry.Attempts = defaultAttempts
	}
	if opts.Retry.Backoff <= 0 {
		opts.Retry.Backoff = 500 * time.Millisecond
	}
	if opts.Retry.MaxBackoff <= 0 {
		opts.Retry.MaxBackoff = 30 * time.Second
	}
	if opts.HighWater <= 0 {
		opts.HighWater = 64 * opts.Concurrency
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Meta == nil {
		opts.Meta, _ = opts.Store.(MetaStore)
	}
	var vault *tokenVault
	if len(opts.StoreKey) > 0 {
		if len(opts.StoreKey) < MinStoreKey {
			return nil, fmt.Errorf("engine: the store key is %d bytes; it must be a random secret of at least %d (openssl rand -base64 32)", len(opts.StoreKey), MinStoreKey)
		}
		if opts.Meta != nil {
			vault = newTokenVault(opts.Meta, opts.StoreKey, opts.Owner)
		}
	}
	observed := opts.Observer != nil
	if !observed {
		opts.Observer = nopObserver{}
	}
	if opts.AlertEvery <= 0 {
		opts.AlertEvery = time.Second
	}
	e := &Engine{
		meta:     opts.Meta,
		vault:    vault,
		opts:     opts,
		store:    opts.Store,
		log:      opts.Logger.Named("engine"),
		now:      opts.Now,
		recipes:  map[string]*recipeRT{},
		conns:    map[string]*openConn{},
		redact:   apiclient.NewRedactor(),
		cache:    eventCache{m: map[eventKey]map[string]any{}, max: 4 * opts.HighWater},
		wakeCh:   make(chan struct{}, 1),
		slots:    make(chan struct{}, opts.Concurrency),
		room:     make(chan struct{}, 1),
		stats:    map[string]*recipeStats{},
		obs:      opts.Observer,
		inflight: map[int64]inflightRun{}, giveBacks: map[int64]Lease{}, renewNow: make(chan struct{}, 1),
		spool: opts.Spool, spoolKick: make(chan struct{}, 1),
		ending: map[*atomic.Int64]struct{}{}, claiming: map[uint64]time.Time{},
	}
	e.observed = observed
	e.watch = newWatch(e)
	e.balance = newPollBalance(e)
	e.journal = newJournalWriter(opts.Store)
	return e, nil
}

// Add compiles a recipe's runtime: it opens the recipe's connections
// (connections with one name and one configuration are shared, with one
// token bucket), finds its trigger and actions, and evaluates the trigger's
// parameters. Add must be called before Run or RunOnce.
func (e *Engine) Add(r *recipes.Recipe, conns map[string]Connection) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return fmt.Errorf("recipe %q: the engine is already running", r.Name)
	}
	if r.ID != "" && r.ID != r.Name {
		// The store knows the recipe by its id: a renamed recipe keeps
		// its cursors, memory and runs. The engine then names it by id.
		cp := *r
		cp.Name = r.ID
		r = &cp
	}
	if _, dup := e.recipes[r.Name]; dup {
		return fmt.Errorf("recipe %q (%s): a recipe with this name is already loaded", r.Name, r.File)
	}
	rt, err := e.compile(r, conns)
	if err != nil {
		return fmt.Errorf("recipe %q (%s): %w", r.Name, r.File, err)
	}
	if rt.mode == "webhook" {
		for _, other := range e.recipes {
			if other.mode == "webhook" && other.hookPath == rt.hookPath {
				return fmt.Errorf("recipe %q (%s): trigger: webhook path %q is already the path of recipe %q", r.Name, r.File, rt.hookPath, other.r.Name)
			}
		}
	}
	if err := e.saveVersion(rt, conns); err != nil {
		return fmt.Errorf("recipe %q (%s): %w", r.Name, r.File, err)
	}
	e.recipes[r.Name] = rt
	e.order = append(e.order, r.Name)
	e.stats[r.Name] = &recipeStats{writes: map[string]*atomic.Int64{}, unchanged: map[string]*atomic.Int64{}}
	for _, st := range rt.steps {
		if !st.action.ReadOnly {
			e.stats[r.Name].writes[st.name] = &atomic.Int64{}
			e.stats[r.Name].unchanged[st.name] = &atomic.Int64{}
		}
	}
	e.redact = apiclient.NewRedactor(e.secrets...)
	return nil
}

func (e *Engine) open(name string, c Connection) (*openConn, error) {
	if c.Spec == nil {
		return nil, fmt.Errorf("connection %q: no connector spec", name)
	}
	cfg := c.Config
	cfg.Name = name
	key := fmt.Sprintf("%s|%s|%s|%v|%v", name, c.Spec.Name, cfg.BaseURL, cfg.Auth, cfg.Webhook)
	if oc, ok := e.conns[key]; ok {
		return oc, nil
	}
	if cfg.Logger == nil {
		cfg.Logger = e.opts.Logger.Named("conn").Named(name)
	}
	if cfg.Auth.Type == connectors.AuthOAuth2 && cfg.Tokens == nil {
		switch {
		case e.vault != nil:
			cfg.Tokens = e.vault.tokens(cfg.BaseURL, cfg.Auth)
		case e.meta != nil && cfg.Auth.RefreshToken != "":
			return nil, fmt.Errorf("connection %q (%s): its OAuth refresh token is rotated by the service at each refresh, and the newest must be kept in the store, encrypted: give the runner a store key (MEMBERFLOW_STORE_KEY, see docs/runner.md)", name, c.Spec.Name)
		}
	}
	if ct, ok := cfg.Tokens.(*connTokens); ok && !slices.Contains(e.vaultsUsed, ct.v) {
		e.vaultsUsed = append(e.vaultsUsed, ct.v)
	}
	oc := &openConn{name: name, connector: c.Spec.Name, baseURL: first(cfg.BaseURL, c.Spec.BaseURL), place: c.Place}
	e.instrument(&cfg, c.Spec, oc)
	conn, err := c.Spec.Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("connection %q (%s): %w", name, c.Spec.Name, err)
	}
	oc.conn = conn
	e.conns[key] = oc
	e.secrets = append(e.secrets, cfg.Auth.Secrets()...)
	if cfg.Webhook.Secret != "" {
		e.secrets = append(e.secrets, cfg.Webhook.Secret)
	}
	return oc, nil
}

// Close leaves the store's runners and closes the connections that
// implement io.Closer.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	if e.joined {
		e.joined = false
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := e.store.Leave(ctx, e.opts.Owner); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	for _, oc := range e.conns {
		if c, ok := oc.conn.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing connection %q: %w", oc.name, err))
			}
		}
	}
	e.conns = map[string]*openConn{}
	return errors.Join(errs...)
}

func (e *Engine) recipeNames() []string {
	names := make([]string, len(e.order))
	copy(names, e.order)
	sort.Strings(names)
	return names
}

// wake tells the dispatcher that runs may be claimable.
func (e *Engine) wake() {
	select {
	case e.wakeCh <- struct{}{}:
	default:
	}
}

func (e *Engine) finishedPending() {
	if e.pending.Add(-1) < 0 {
		e.pending.Store(0) // runs enqueued by an earlier process
	}
	select {
	case e.room <- struct{}{}:
	default:
	}
}

// eventCache keeps the decoded data of events enqueued by this process
// until their run takes it, so that a run does not parse its event's JSON
// again. A run resumed after a restart decodes it from the store.
type eventCache struct {
	mu  sync.Mutex
	m   map[eventKey]map[string]any
	max int
}

// eventKey names an event of a recipe in the cache (a struct rather
// than a joined string: no allocation per look-up).
type eventKey struct{ recipe, event string }

func (c *eventCache) put(key eventKey, data map[string]any) {
	c.mu.Lock()
	if len(c.m) < c.max {
		c.m[key] = data
	}
	c.mu.Unlock()
}

func (c *eventCache) drop(key eventKey) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

func (c *eventCache) take(key eventKey) (map[string]any, bool) {
	c.mu.Lock()
	d, ok := c.m[key]
	delete(c.m, key)
	c.mu.Unlock()
	return d, ok
}

// histogram counts durations in buckets a quarter of a power of two wide
// (about 19 % apart), from 1 µs to about 70 minutes, lock-free.
type histogram struct {
	buckets [130]atomic.Int64
	count   atomic.Int64
}

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	b := int(math.Ceil(4 * math.Log2(us)))
	return min(b, 129)
}

func (h *histogram) observe(d time.Duration) {
	h.buckets[bucketOf(d)].Add(1)
	h.count.Add(1)
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			return time.Duration(math.Exp2(float64(i)/4) * float64(time.Microsecond))
		}
	}
	return time.Duration(math.Exp2(129.0/4) * float64(time.Microsecond))
}
