// Package bench measures the recipe runner end to end (memberflow bench):
// a backfill of every member of a sandbox, one certificate issued and
// written back onto the member per eligible member, through the durable
// SQLite store. The sandbox runs in another process (see StartSandbox), so
// that the runner's resident memory is measured alone.
//
// Lifecycle, in order: StartSandbox (or a sandbox already running), Run,
// then Result.Check and Result.WriteText or JSON; finally Sandbox.Close.
package bench

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/internal/ops"
	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/recipes"
)

//go:embed recipe.yaml
var recipeYAML []byte

// RecipeYAML returns the benchmark's recipe.
func RecipeYAML() []byte { return append([]byte(nil), recipeYAML...) }

// roles are the parts the benchmark's recipe plays, read from it rather
// than named here: the service its trigger reads the members from, the
// service its first step issues certificates at, and the two writes as the
// engine's summary names them (connection.operation).
type roles struct {
	memberService, certificateService string
	certificateWrite, memberWrite     string
}

func rolesOf(r *recipes.Recipe) (roles, error) {
	if r.Trigger == nil || len(r.Steps) < 2 {
		return roles{}, errors.New("bench: the recipe needs a trigger and two steps (issue, write back)")
	}
	connector := func(conn string) string {
		if c, ok := r.Connections[conn]; ok {
			return c.Connector
		}
		return conn
	}
	issue, push := r.Steps[0], r.Steps[1]
	return roles{memberService: connector(r.Trigger.Connection), certificateService: connector(issue.Connection),
		certificateWrite: issue.Connection + "." + issue.Operation, memberWrite: push.Connection + "." + push.Operation}, nil
}

// Options configure one benchmark run.
type Options struct {
	// SandboxURL is the base URL of a running sandbox (memberflow sandbox).
	SandboxURL string
	// Concurrency is the runner's worker count; default 32.
	Concurrency int
	// Store is the SQLite file; empty means a file in a temporary folder,
	// removed afterwards. An existing file is refused: a backfill needs a
	// fresh store.
	Store string
	// CPUProfile, when set, receives a CPU profile of the backfill alone.
	CPUProfile io.Writer
	// MemProfile, when set, receives a heap profile taken at the end of
	// the backfill, before the store and engine close (what stays live).
	MemProfile io.Writer
	// Logger receives the runner's logs; nil discards them.
	Logger hclog.Logger
	// Registry resolves the recipe's connectors; nil means connectors.Default.
	Registry *connectors.Registry
	// SandboxCPU, when set, reads the sandbox process's CPU time so far,
	// so that the result says where the machine's CPU went.
	SandboxCPU func() (time.Duration, error)
	// Metrics runs the backfill with the Prometheus metrics of `run
	// --http` on, gathered every MetricsEvery (default 5 s) as a scraper
	// would: paired runs with and without measure their overhead.
	Metrics      bool
	MetricsEvery time.Duration
	// OpenStore opens one handle on the store (nil: the SQLite file of
	// Store); each runner opens its own, as separate processes would.
	OpenStore func(ctx context.Context) (engine.Store, error)
	// StoreName is what the result calls an OpenStore store.
	StoreName string
	// Runners is how many runners share the store and the backfill,
	// each with Concurrency workers; default 1.
	Runners int
	// Record has the sandbox record every request of the backfill
	// (Result.Recorded), for the ceiling to replay.
	Record bool
}

// Result is what one benchmark run measured. Durations are in
// nanoseconds in JSON.
type Result struct {
	SandboxURL  string `json:"sandbox_url"`
	Concurrency int    `json:"concurrency"`
	Store       string `json:"store"`
	Runners     int    `json:"runners"`

	// SandboxMembers is the number of members the sandbox holds, and
	// Members the members the runner processed (one run each; echoes of
	// its own write-backs are counted apart, as Suppressed).
	SandboxMembers int   `json:"sandbox_members"`
	Members        int64 `json:"members"`
	Eligible       int64 `json:"eligible"`
	Skipped        int64 `json:"skipped"`
	Suppressed     int64 `json:"suppressed"`
	Dead           int64 `json:"dead"`
	Abandoned      int64 `json:"abandoned"`
	// Certificates and MemberUpdates are the engine's successful writes;
	// CredentialsCreated is what the sandbox stored (its count after
	// minus before).
	Certificates       int64 `json:"certificates"`
	MemberUpdates      int64 `json:"member_updates"`
	CredentialsCreated int   `json:"credentials_created"`
	// Duplicates is the sandbox's count of credentials sharing a group and
	// a recipient: a certificate issued twice. It must be 0.
	Duplicates int `json:"duplicates"`
	// NewDuplicates is the change of the sandbox's duplicates over all
	// services during the backfill (attendees, payments, ...). Must be 0.
	NewDuplicates int `json:"new_duplicates_all_services"`

	Runs          int64         `json:"runs"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	MembersPerSec float64       `json:"members_per_second"`
	RunsPerSec    float64       `json:"runs_per_second"`
	P50           time.Duration `json:"p50_ns"`
	P99           time.Duration `json:"p99_ns"`
	// PeakRSS is the runner process's peak resident memory (VmHWM), bytes.
	PeakRSS int64 `json:"peak_rss_bytes"`
	// Writer is the store's one writer's work (SQLite), nil otherwise.
	Writer *WriterFigures `json:"writer,omitempty"`
	// ScanPages counts the trigger's requests: the reads (GET) of the
	// service the members are read from. The recipe's writes there are
	// not reads, so one scan is one page per 100 members, whatever the
	// runners.
	ScanPages int64 `json:"scan_pages"`
	// RunnerCPU and SandboxCPU are the CPU time (user and system) each
	// process used during the backfill; SandboxCPU is 0 when unknown (a
	// sandbox not started by the benchmark).
	RunnerCPU  time.Duration `json:"runner_cpu_ns"`
	SandboxCPU time.Duration `json:"sandbox_cpu_ns,omitempty"`
	// Backlog is the mean number of events enqueued and not yet finished,
	// sampled during the backfill, and Starved the share of samples with
	// fewer waiting than there are workers: a starved pool means the
	// poller, not the workers, sets the pace.
	Backlog float64 `json:"backlog_mean"`
	// MembersPerCPUSecond is members over the CPU time of runner and
	// sandbox together: what the load of other jobs on a shared machine
	// does not change. Two idle cores would run 2 × this per second.
	MembersPerCPUSecond float64 `json:"members_per_cpu_second,omitempty"`
	Starved             float64 `json:"starved_share"`
	// Metrics is true when the Prometheus metrics were on, and Scrapes
	// how many times they were gathered.
	Metrics bool `json:"metrics"`
	Scrapes int  `json:"scrapes,omitempty"`
	// Requests counts the requests the sandbox received during the
	// backfill, by "service METHOD /route", and RequestsPerMember is
	// their sum over the members.
	Requests          map[string]int64 `json:"requests"`
	RequestsPerMember float64          `json:"requests_per_member"`
	// Recipes is each recipe's requests as the engine counted them (its
	// polls and runs, the checks at start left out), over the events it
	// saw.
	Recipes []RecipeRequests `json:"recipes"`
	// Ceiling is the minimal client's run on the same sandbox, reset
	// (bench --ceiling), and CeilingShare the engine's members/s over it.
	Ceiling      *CeilingResult `json:"ceiling,omitempty"`
	CeilingShare float64        `json:"ceiling_share,omitempty"`

	// Recorded are the backfill's requests as the sandbox received them
	// (with Options.Record), and RecordLost those it did not keep.
	Recorded   []sandbox.Recorded `json:"-"`
	RecordLost int                `json:"-"`
	// services are the member and certificate services' names, whose
	// requests Requests counts.
	services [2]string
}

// RecipeRequests is one recipe's requests as the engine counted them.
type RecipeRequests struct {
	Recipe           string  `json:"recipe"`
	Events           int64   `json:"events"`
	Requests         int64   `json:"requests"`
	RequestsPerEvent float64 `json:"requests_per_event"`
}

// AddCeiling sets the minimal client's figures beside the engine's.
func (r *Result) AddCeiling(c *CeilingResult) {
	r.Ceiling = c
	if c != nil && c.MembersPerSec > 0 {
		r.CeilingShare = r.MembersPerSec / c.MembersPerSec
	}
}

// Run backfills every member of the sandbox at opts.SandboxURL with the
// benchmark recipe and measures it.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.SandboxURL == "" {
		return nil, errors.New("bench: no sandbox URL")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 32
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Registry == nil {
		opts.Registry = connectors.Default
	}
	log := opts.Logger.Named("bench")
	base := strings.TrimRight(opts.SandboxURL, "/")

	storePath, cleanup, err := prepareStore(opts.Store)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	r, diags := recipes.LoadBytes("bench-recipe.yaml", recipeYAML, recipes.Options{Registry: opts.Registry, Logger: log})
	if diags.HasErrors() || r == nil {
		var b strings.Builder
		diags.WriteText(&b)
		return nil, fmt.Errorf("bench: the embedded recipe does not load:\n%s", b.String())
	}
	conns, err := sandboxConnections(r, base, opts.Registry)
	if err != nil {
		return nil, err
	}

	parts, err := rolesOf(r)
	if err != nil {
		return nil, err
	}
	before, err := FetchStats(ctx, base, parts.memberService, parts.certificateService)
	if err != nil {
		return nil, err
	}
	var recorded *sandbox.RecordingAnswer
	if opts.Record {
		if err := startRecording(ctx, base); err != nil {
			return nil, err
		}
		defer func() {
			if recorded == nil { // the backfill failed: stop keeping requests
				stopRecording(context.WithoutCancel(ctx), base)
			}
		}()
	}

	if opts.Runners <= 0 {
		opts.Runners = 1
	}
	open := opts.OpenStore
	if open == nil {
		open = func(context.Context) (engine.Store, error) {
			return sqlitestore.Open(storePath, sqlitestore.Options{Logger: opts.Logger})
		}
	}
	var metrics *ops.Metrics
	var observer engine.Observer
	if opts.Metrics {
		metrics = ops.NewMetrics()
		observer = metrics
	}
	engines := make([]*engine.Engine, opts.Runners)
	stores := make([]engine.Store, opts.Runners)
	for i := range engines {
		st, err := open(ctx)
		if err != nil {
			return nil, fmt.Errorf("bench: opening the store: %w", err)
		}
		defer st.Close()
		stores[i] = st
		owner := "memberflow-bench"
		if opts.Runners > 1 {
			owner = fmt.Sprintf("memberflow-bench-%d", i+1)
		}
		var obs engine.Observer
		if i == 0 {
			obs = observer // the metrics of one runner
		}
		e, err := engine.New(engine.Options{Store: st, Logger: opts.Logger, Concurrency: opts.Concurrency, Owner: owner, Observer: obs})
		if err != nil {
			return nil, err
		}
		defer e.Close()
		if err := e.Add(r, conns); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		engines[i] = e
	}
	eng, store := engines[0], stores[0]
	stopScraping := func() int { return 0 }
	if metrics != nil {
		metrics.Attach(eng, store)
		every := opts.MetricsEvery
		if every <= 0 {
			every = 5 * time.Second
		}
		stopScraping = scrape(metrics, every, log)
	}

	log.Info("backfill starting", "sandbox", base, "members", before.Users, "concurrency", opts.Concurrency, "store", storePath)
	if opts.CPUProfile != nil {
		if err := pprof.StartCPUProfile(opts.CPUProfile); err != nil {
			return nil, fmt.Errorf("bench: starting the CPU profile: %w", err)
		}
	}
	ws, _ := stores[0].(engine.WriterStatser)
	var w0 engine.WriterStats
	if ws != nil && opts.Runners == 1 {
		w0 = ws.WriterStats()
	}
	cpu0, sbCPU0 := processCPU(), sandboxCPU(opts.SandboxCPU, log)
	start := time.Now()
	stopSampling := sampleBacklog(eng, opts.Concurrency)
	sum, runErr := runAll(ctx, engines)
	elapsed := time.Since(start)
	scrapes := stopScraping()
	backlog, starved := stopSampling()
	cpu1, sbCPU1 := processCPU(), sandboxCPU(opts.SandboxCPU, log)
	// Read before the recording (with Record) is fetched into this
	// process: the peak is the backfill's.
	peakRSS, peakErr := PeakRSS()
	if opts.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if opts.MemProfile != nil {
		runtime.GC() // the profile shows what is live, not garbage
		if err := pprof.WriteHeapProfile(opts.MemProfile); err != nil {
			log.Warn("writing the heap profile failed", "error", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench: interrupted after %s: no figures (%w)", elapsed.Round(time.Millisecond), err)
	}
	if runErr != nil {
		return nil, fmt.Errorf("bench: the backfill failed: %w", runErr)
	}

	if opts.Record {
		if recorded, err = stopRecording(ctx, base); err != nil {
			return nil, err
		}
	}
	after, err := FetchStats(ctx, base, parts.memberService, parts.certificateService)
	if err != nil {
		return nil, err
	}
	res := &Result{SandboxURL: base, Concurrency: opts.Concurrency, Store: storePath, Runners: opts.Runners,
		SandboxMembers: after.Users, Runs: sum.Runs, Backlog: backlog, Starved: starved, Elapsed: elapsed, P50: sum.P50, P99: sum.P99,
		Duplicates: after.CredentialDuplicates, NewDuplicates: after.Duplicates - before.Duplicates,
		CredentialsCreated: after.Credentials - before.Credentials, Metrics: opts.Metrics, Scrapes: scrapes,
		Requests: after.requestsSince(before), services: [2]string{parts.memberService, parts.certificateService}}
	if recorded != nil {
		res.Recorded, res.RecordLost = recorded.Requests, recorded.Lost
	}
	if opts.Store == "" {
		res.Store = "" // a temporary file, gone now
	}
	if opts.OpenStore != nil {
		res.Store = opts.StoreName
	}
	for _, rs := range sum.Recipes {
		res.Recipes = append(res.Recipes, RecipeRequests{Recipe: rs.Recipe, Events: rs.Events, Requests: rs.Requests, RequestsPerEvent: rs.RequestsPerEvent})
		res.Eligible += rs.Succeeded
		res.Skipped += rs.Skipped
		res.Suppressed += rs.Suppressed
		res.Dead += rs.Dead
		res.Abandoned += rs.Abandoned
		res.Certificates += rs.Writes[parts.certificateWrite]
		res.MemberUpdates += rs.Writes[parts.memberWrite]
	}
	res.Members = res.Eligible + res.Skipped + res.Dead
	res.RequestsPerMember = perMember(res.Requests, res.Members)
	for route, n := range res.Requests {
		if strings.HasPrefix(route, parts.memberService+" GET ") {
			res.ScanPages += n
		}
	}
	res.RunnerCPU = cpu1 - cpu0
	if ws != nil && opts.Runners == 1 {
		f := writerFigures(w0, ws.WriterStats(), res.Elapsed)
		res.Writer = &f
	}
	if sbCPU0 >= 0 && sbCPU1 >= 0 {
		res.SandboxCPU = sbCPU1 - sbCPU0
	}
	if cpu := (res.RunnerCPU + res.SandboxCPU).Seconds(); cpu > 0 && res.SandboxCPU > 0 {
		res.MembersPerCPUSecond = float64(res.Members) / cpu
	}
	if s := elapsed.Seconds(); s > 0 {
		res.MembersPerSec = float64(res.Members) / s
		res.RunsPerSec = float64(res.Runs) / s
	}
	res.PeakRSS = peakRSS
	if peakErr != nil {
		log.Warn("peak RSS not available", "error", peakErr)
	}
	return res, nil
}

// runAll runs a one-shot backfill on every engine at once (the runners
// share the store: each event runs on one of them) and adds up their
// summaries. A runner that finds nothing left to claim while another still
// polls ends early; a last pass of the first runner then runs what is
// left. That pass polls nothing: every runner's pass ended caught up, and
// the bench's trigger is a scan, whose poll reads every member again (200
// pages for 20,000), which made a bench of two runners scan three times.
func runAll(ctx context.Context, engines []*engine.Engine) (*engine.Summary, error) {
	sums := make([]*engine.Summary, len(engines))
	errs := make([]error, len(engines))
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[i], errs[i] = e.RunOnce(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(engines) > 1 {
		if _, err := engines[0].RunOncePolling(ctx, func(string) bool { return false }); err != nil {
			return nil, err
		}
		// Summary counts since the engine started: the first engine's now
		// includes its last pass.
		sums[0] = engines[0].Summary()
	}
	total := &engine.Summary{}
	byRecipe := map[string]*engine.RecipeSummary{}
	for _, s := range sums {
		total.Runs += s.Runs
		total.P50, total.P99 = max(total.P50, s.P50), max(total.P99, s.P99)
		for _, r := range s.Recipes {
			t, ok := byRecipe[r.Recipe]
			if !ok {
				t = &engine.RecipeSummary{Recipe: r.Recipe, Writes: map[string]int64{}}
				byRecipe[r.Recipe] = t
			}
			t.Events += r.Events
			t.Requests += r.Requests
			t.Succeeded += r.Succeeded
			t.Skipped += r.Skipped
			t.Suppressed += r.Suppressed
			t.Dead += r.Dead
			t.Abandoned += r.Abandoned
			for k, v := range r.Writes {
				t.Writes[k] += v
			}
		}
	}
	for _, t := range byRecipe {
		if t.Events > 0 {
			t.RequestsPerEvent = float64(t.Requests) / float64(t.Events)
		}
		total.Recipes = append(total.Recipes, *t)
	}
	sort.Slice(total.Recipes, func(i, j int) bool { return total.Recipes[i].Recipe < total.Recipes[j].Recipe })
	return total, nil
}

// sampleBacklog samples the engine's backlog every 100 ms until the
// returned function is called, which gives the mean backlog and the share
// of samples below workers.
func sampleBacklog(eng *engine.Engine, workers int) (stop func() (mean, starved float64)) {
	done := make(chan struct{})
	var sum, low, n float64
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				var waiting int64
				for _, p := range eng.Progress() {
					waiting += p.Events - p.Done
				}
				sum += float64(waiting)
				if waiting < int64(workers) {
					low++
				}
				n++
			}
		}
	}()
	return func() (float64, float64) {
		close(done)
		<-finished
		if n == 0 {
			return 0, 0
		}
		return sum / n, low / n
	}
}

func sandboxCPU(read func() (time.Duration, error), log hclog.Logger) time.Duration {
	if read == nil {
		return -1
	}
	d, err := read()
	if err != nil {
		log.Warn("the sandbox's CPU time is not available", "error", err)
		return -1
	}
	return d
}

// prepareStore returns the store path to use and how to clean up after.
func prepareStore(path string) (string, func(), error) {
	if path != "" {
		if _, err := os.Stat(path); err == nil {
			return "", nil, fmt.Errorf("bench: --store %s exists: the backfill needs a fresh store; remove it or name another file", path)
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", nil, fmt.Errorf("bench: --store %s: %w", path, err)
		}
		return path, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "memberflow-bench-")
	if err != nil {
		return "", nil, fmt.Errorf("bench: a temporary store: %w", err)
	}
	return filepath.Join(dir, "bench.db"), func() { os.RemoveAll(dir) }, nil
}

// sandboxConnections points every connection of r at the sandbox, with its
// demo credentials and account, and rate limits off.
func sandboxConnections(r *recipes.Recipe, base string, reg *connectors.Registry) (map[string]engine.Connection, error) {
	out := map[string]engine.Connection{}
	for name, c := range r.Connections {
		spec, ok := reg.Lookup(c.Connector)
		if !ok {
			return nil, fmt.Errorf("bench: connection %q: unknown connector %q", name, c.Connector)
		}
		out[name] = engine.Connection{Spec: spec, Config: connectors.ConnectionConfig{
			Name:      name,
			BaseURL:   base + "/" + c.Connector,
			Auth:      sandbox.DemoAuth(c.Connector),
			Options:   sandbox.DemoOptions(c.Connector),
			RateLimit: &connectors.RateLimit{},
		}}
	}
	return out, nil
}

// Check returns what is inconsistent in the figures, or nil: every
// eligible member got exactly one certificate and one update, every
// member was processed, nothing was dead-lettered or duplicated.
func (r *Result) Check() error {
	var errs []error
	if r.Members != int64(r.SandboxMembers) {
		errs = append(errs, fmt.Errorf("%d members processed, the sandbox holds %d", r.Members, r.SandboxMembers))
	}
	if r.Certificates != r.Eligible {
		errs = append(errs, fmt.Errorf("%d certificates issued for %d eligible members", r.Certificates, r.Eligible))
	}
	if r.MemberUpdates != r.Eligible {
		errs = append(errs, fmt.Errorf("%d members updated for %d eligible members", r.MemberUpdates, r.Eligible))
	}
	if r.Dead > 0 {
		errs = append(errs, fmt.Errorf("%d run(s) dead-lettered", r.Dead))
	}
	if r.Abandoned > 0 {
		errs = append(errs, fmt.Errorf("%d run(s) abandoned", r.Abandoned))
	}
	if r.Duplicates != 0 {
		errs = append(errs, fmt.Errorf("the sandbox counts %d duplicate certificate(s)", r.Duplicates))
	}
	if r.NewDuplicates != 0 {
		errs = append(errs, fmt.Errorf("the sandbox's duplicates over all services changed by %d", r.NewDuplicates))
	}
	if c := r.Ceiling; c != nil {
		if c.Lost > 0 {
			errs = append(errs, fmt.Errorf("the recording did not keep %d of the engine's requests: the ceiling replayed fewer", c.Lost))
		}
		if !maps.Equal(c.Requests, r.Requests) {
			errs = append(errs, fmt.Errorf("the ceiling sent other requests than the engine: %v, the engine %v", c.Requests, r.Requests))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: inconsistent figures: %w", err)
	}
	return nil
}

// scrape gathers the metrics every interval, as Prometheus would, until
// stopped; it returns how many scrapes were made.
func scrape(m *ops.Metrics, every time.Duration, log hclog.Logger) (stop func() int) {
	done := make(chan struct{})
	n := make(chan int)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		count := 0
		for {
			select {
			case <-done:
				n <- count
				return
			case <-t.C:
				if _, err := m.Registry().Gather(); err != nil {
					log.Warn("gathering the metrics failed", "error", err)
				}
				count++
			}
		}
	}()
	return func() int { close(done); return <-n }
}
