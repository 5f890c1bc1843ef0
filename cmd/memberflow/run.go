package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/internal/ops"
	"github.com/memberflow/memberflow/recipes"
)

func init() {
	register(&command{
		name:    "run",
		summary: "run recipes: triggers, durable queue, step journal, retries, dead letters",
		usage:   "[--store PATH] [--once] [--sandbox | --sandbox-url URL] [--http ADDR] [--spool DIR] [--concurrency N] [--dry-run] PATH...",
		help: `Loads the recipes (files or folders) and runs them with a durable store
(SQLite, --store). Polling triggers are polled, webhook triggers are served
on --http, schedules fire; each event becomes one run whose steps are
journaled, so that a run stopped at any point resumes without repeating a
write. See docs/runner.md.

--once polls every trigger until it is caught up (hybrid webhook triggers
too), fires the schedules that are due, and runs every queued run, in
passes until a pass finds nothing new (what one recipe writes can start
another), then prints a summary (writes that changed something, no-op
upserts apart) and a line to read at a glance, and exits: 0 when no run
was dead-lettered, 1 otherwise.

Every secret the recipes need is checked first: all missing ones are
listed at once, before anything is created.
Without --once, memberflow runs until SIGINT or SIGTERM, then stops taking
events and gives runs in flight 30 s to finish (a run only waiting to retry
is given back at once; the rest resume from their journal at the next
start). A second SIGINT or SIGTERM ends the process at once.

--dry-run reads but does not write: each planned write is printed to stdout
as a JSON line {connection, method, path, body}; the store is not changed
(a copy is used). A planned write's answer is a placeholder, so inputs are
not held to their action's schema in a dry run (a real run checks them
before each call).

--http ADDR serves the webhook triggers, Prometheus metrics at /metrics,
/healthz (the process lives) and /readyz (the store answers, every trigger
polled successfully within 3 intervals, no connection's credentials
refused; 503 with the failing checks otherwise). See docs/operations.md.

--spool DIR keeps the webhook deliveries the store refuses (a Postgres
failover, a full disk) in DIR: each is written and fsynced there before
it is answered 200, and stored, in order, once the store takes writes
again (first thing at the next start, after a crash). Without it, such a
delivery is answered 503 and is lost if its sender stops retrying before
the store is back. DIR must be on a persistent volume and belong to this
runner alone. --spool-max-bytes and --spool-max-age bound it: past
either, deliveries are answered 503 and /readyz fails its spool check.
While the spool has room, a failing store does not make /readyz fail
(the runner still takes deliveries). See docs/runner.md.

--sandbox starts the in-process sandbox of all three services; every
connection then uses its service's sandbox URL, demo credentials and demo
account (company, location, event).
--sandbox-url does the same with a sandbox already running.

--http also serves the console at /console/ (see memberflow console --help):
on a loopback address as is, on any other only with --console-token (or
--console-token-secret, --console-basic-auth-secret); without one the
console is not served there, and the webhooks still are.

An oauth2 connection's rotating refresh token is kept in the store,
encrypted with the secret MEMBERFLOW_STORE_KEY (--store-key names
another): at least 32 random characters. The store records the account
each connection reaches; a run whose connections reach another stops
(memberflow store --help). Storage errors say what to do. See
docs/runner.md.

Exit status: 0 ok (also after SIGINT or SIGTERM), 1 when a run was
dead-lettered (--once) or the runner failed, 2 for usage errors and
recipes that do not load.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			o := runOptions{}
			fs.StringVar(&o.store, "store", "memberflow.db", storeFlagHelp)
			fs.BoolVar(&o.once, "once", false, "poll until caught up, drain the queue, print a summary and exit")
			fs.BoolVar(&o.sandbox, "sandbox", false, "start the in-process sandbox and point every connection at it")
			fs.StringVar(&o.sandboxURL, "sandbox-url", "", "point every connection at the sandbox running at `URL`")
			fs.IntVar(&o.sandboxMembers, "sandbox-members", 100, "members seeded in the --sandbox")
			fs.Int64Var(&o.sandboxSeed, "sandbox-seed", 1, "seed of the --sandbox data")
			fs.BoolVar(&o.sandboxNoLimits, "sandbox-no-rate-limits", false, "turn the --sandbox services' documented rate limits off (backfill benchmarks)")
			fs.BoolVar(&o.sandboxUndocumented, "sandbox-allow-undocumented", false, "let the --sandbox services accept request parameters the real APIs do not document (connections with incrementalSearch)")
			fs.StringVar(&o.http, "http", "", "serve webhook triggers, /metrics, /healthz and /readyz on `ADDR` (host:port)")
			fs.StringVar(&o.spool, "spool", "", "keep webhook deliveries the store refuses in `DIR` (fsynced, stored once the store is back): a persistent directory of this runner's own")
			fs.Int64Var(&o.spoolMaxBytes, "spool-max-bytes", 1<<30, "the most the --spool directory may hold, in `bytes`; past it deliveries are refused (503)")
			fs.DurationVar(&o.spoolMaxAge, "spool-max-age", 24*time.Hour, "the longest a delivery may wait in the --spool; past it deliveries are refused (503)")
			fs.IntVar(&o.concurrency, "concurrency", 8, "runs executed at once (for the runs of a polled page: calls sent at once)")
			fs.BoolVar(&o.dryRun, "dry-run", false, "do the reads, print the planned writes as JSON lines, change nothing")
			fs.StringVar(&o.secrets, "secrets", "", "secrets `file` (KEY=value lines); the environment wins")
			fs.StringVar(&o.storeKey, "store-key", "MEMBERFLOW_STORE_KEY", "the secret (by `name`, from the environment or --secrets) that OAuth tokens are encrypted with in the store")
			var conns stringList
			fs.Var(&conns, "connections", "shared connections `file` replacing the recipes' connections_file (repeatable)")
			fs.StringVar(&o.owner, "owner", "", "this runner's name in the store's leases (default: host, process ID and a random suffix, unique)")
			fs.StringVar(&o.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error, off")
			fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
			fs.StringVar(&o.format, "format", "text", "--once summary format: text (a table per recipe, with its API requests and requests per event, then one line) or json")
			o.console.flags(fs, "console-read-only")
			return func(ctx context.Context, args []string, io stdio) int {
				o.connections = conns
				o.paths = args
				return runRun(ctx, o, io)
			}
		},
	})
}

type runOptions struct {
	store, sandboxURL, http, secrets, owner, logLevel, logFormat string
	storeKey, format, spool                                      string
	spoolMaxBytes                                                int64
	spoolMaxAge                                                  time.Duration
	once, sandbox, sandboxNoLimits, dryRun                       bool
	sandboxUndocumented                                          bool
	sandboxMembers, concurrency                                  int
	sandboxSeed                                                  int64
	connections, paths                                           []string
	console                                                      consoleAccess
}

func (o runOptions) check() error {
	switch {
	case len(o.paths) == 0:
		return errors.New("name at least one recipe file or folder (memberflow run --help)")
	case o.sandbox && o.sandboxURL != "":
		return errors.New("--sandbox and --sandbox-url exclude each other")
	case o.concurrency <= 0:
		return fmt.Errorf("--concurrency must be at least 1, got %d", o.concurrency)
	case o.logFormat != "text" && o.logFormat != "json":
		return fmt.Errorf("--log-format must be text or json, got %q", o.logFormat)
	case o.format != "text" && o.format != "json":
		return fmt.Errorf("--format must be text or json, got %q", o.format)
	case hclog.LevelFromString(o.logLevel) == hclog.NoLevel:
		return fmt.Errorf("--log-level must be trace, debug, info, warn, error or off, got %q", o.logLevel)
	case o.sandbox && o.sandboxMembers < 0:
		return fmt.Errorf("--sandbox-members must not be negative, got %d", o.sandboxMembers)
	case o.spoolMaxBytes <= 0:
		return fmt.Errorf("--spool-max-bytes must be positive, got %d", o.spoolMaxBytes)
	case o.spoolMaxAge <= 0:
		return fmt.Errorf("--spool-max-age must be positive, got %s", o.spoolMaxAge)
	case o.spool != "" && o.dryRun:
		return errors.New("--spool and --dry-run exclude each other: a dry run stores nothing")
	}
	if o.http != "" {
		if _, _, err := net.SplitHostPort(o.http); err != nil {
			return fmt.Errorf("--http %q: %v", o.http, err)
		}
	}
	return nil
}

func newLogger(level, format string, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "memberflow", Level: hclog.LevelFromString(level), JSONFormat: format == "json", Output: w})
}

func runRun(ctx context.Context, o runOptions, io stdio) int {
	if err := o.check(); err != nil {
		fmt.Fprintf(io.err, "memberflow run: %v\n", err)
		return exitUsage
	}
	log := newLogger(o.logLevel, o.logFormat, io.err)

	rs, diags := recipes.Load(recipes.Options{Registry: connectors.Default, Connections: o.connections, Logger: log.Named("recipes")}, o.paths...)
	if diags.HasErrors() || diags.HasIOErrors() {
		diags.WriteText(io.err)
		fmt.Fprintf(io.err, "memberflow run: the recipes do not load (memberflow validate shows the same)\n")
		return exitUsage
	}
	if len(rs) == 0 {
		fmt.Fprintln(io.err, "memberflow run: no recipe found in", strings.Join(o.paths, " "))
		return exitUsage
	}

	secrets, err := recipes.NewEnvSecrets(o.secrets)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow run: %v\n", err)
		return exitUsage
	}
	// Every missing secret at once, before anything (a store file, a
	// sandbox) is made; a sandbox brings its own credentials.
	if !o.sandbox && o.sandboxURL == "" {
		if missing := recipes.MissingSecrets(rs, secrets); len(missing) > 0 {
			writeMissingSecrets(io.err, missing, o.secrets)
			return exitUsage
		}
	}

	target, closeSandbox, err := startSandbox(ctx, o, log)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow run: %v\n", err)
		if errors.As(err, new(usageError)) {
			return exitUsage
		}
		return exitFail
	}
	defer closeSandbox()

	var storeKey []byte
	var secretValues []string
	if v, ok := secrets.Lookup(o.storeKey); ok && v != "" {
		storeKey = []byte(v)
		secretValues = append(secretValues, v)
	}
	// Every connection is resolved first, before the store is made: the
	// planned writes of a dry run are printed with every connection's
	// secrets redacted, and a refresh token needs a store key.
	planned := &plannedWriter{enc: json.NewEncoder(io.out)}
	resolved := make([]map[string]engine.Connection, len(rs))
	for i, r := range rs {
		conns, err := resolveConnections(r, secrets, target, o.dryRun, planned.write, log)
		for name, c := range conns {
			if c.Config.Auth.Type == connectors.AuthOAuth2 && c.Config.Auth.RefreshToken != "" && len(storeKey) == 0 && err == nil {
				err = fmt.Errorf("connection %q uses an OAuth refresh token, which the service replaces at each refresh: set the secret %s to a random key of at least %d characters (openssl rand -base64 32), with which memberflow keeps the newest token in the store, encrypted (docs/runner.md)", name, o.storeKey, engine.MinStoreKey)
			}
		}
		if err != nil {
			fmt.Fprintf(io.err, "memberflow run: %s: %v\n", r.File, err)
			return exitUsage
		}
		for _, c := range conns {
			secretValues = append(secretValues, c.Config.Auth.Secrets()...)
			if c.Config.Webhook.Secret != "" {
				secretValues = append(secretValues, c.Config.Webhook.Secret)
			}
		}
		resolved[i] = conns
	}
	planned.redact = apiclient.NewRedactor(secretValues...)

	spec, err := parseStore(o.store, secrets)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow run: %v\n", err)
		return exitUsage
	}
	store, cleanup, err := storeForRun(ctx, o, spec, log)
	if err != nil {
		reportStoreError(io, "run", spec.shown, err)
		return exitFail
	}
	defer cleanup()
	var meta engine.MetaStore // the store's own, except in a dry run
	if o.dryRun && spec.exists() {
		// The service rotates a refresh token even in a dry run: the new
		// one goes to the real store, not to the copy thrown away.
		real, err := spec.open(ctx, 1, log)
		if err != nil {
			reportStoreError(io, "run", spec.shown, err)
			return exitFail
		}
		defer real.Close()
		meta, _ = real.(engine.MetaStore)
	}

	// Metrics are kept when something can read them: the --http listener.
	var metrics *ops.Metrics
	var observer engine.Observer
	if o.http != "" {
		metrics = ops.NewMetrics()
		observer = metrics
	}
	if len(storeKey) > 0 {
		// One token chain for the engine and the console's reconciler.
		tokenMeta := meta
		if tokenMeta == nil {
			m, ok := store.(engine.MetaStore)
			if !ok {
				fmt.Fprintf(io.err, "memberflow run: the store %s cannot keep OAuth tokens\n", spec.shown)
				return exitUsage
			}
			tokenMeta = m
		}
		if err := attachTokens(resolved, tokenMeta, storeKey, "run"); err != nil {
			fmt.Fprintf(io.err, "memberflow run: %v\n", err)
			return exitUsage
		}
	}
	var spool *engine.Spool
	if o.spool != "" {
		if spool, err = engine.OpenSpool(o.spool, engine.SpoolOptions{MaxBytes: o.spoolMaxBytes, MaxAge: o.spoolMaxAge, Logger: log}); err != nil {
			fmt.Fprintf(io.err, "memberflow run: --spool: %v\n", err)
			return exitFail
		}
		defer spool.Close()
	}
	eng, err := engine.New(engine.Options{Store: store, Meta: meta, StoreKey: storeKey, Logger: log, Concurrency: o.concurrency, Owner: o.owner, Observer: observer,
		LoadVersion: loadVersion(o.connections, log), PlannedWrites: o.dryRun, Spool: spool})
	if err != nil {
		fmt.Fprintf(io.err, "memberflow run: %v\n", err)
		return exitFail
	}
	defer eng.Close()
	var consoleHandler http.Handler
	if o.http != "" {
		if consoleHandler, err = runConsoleHandler(o, rs, store, resolved, secrets, apiclient.NewRedactor(secretValues...).String, log); err != nil {
			fmt.Fprintf(io.err, "memberflow run: %v\n", err)
			return exitUsage
		}
	}
	gitRevisions(rs)
	for i, r := range rs {
		if err := eng.Add(r, resolved[i]); err != nil {
			fmt.Fprintf(io.err, "memberflow run: %s: %v\n", r.File, err)
			return exitUsage
		}
	}

	if err := eng.CheckIdentities(ctx); err != nil {
		if ctx.Err() != nil {
			// SIGINT or SIGTERM while asking the services (a service
			// down keeps this retrying): a stop, not a failure.
			fmt.Fprintln(io.err, "memberflow run: stopped before the runner started (while asking the services which accounts they reach); nothing ran")
			return exitOK
		}
		reportStoreError(io, "run", spec.shown, err)
		return exitFail
	}

	if o.http != "" {
		metrics.Attach(eng, store)
		stopHTTP, err := serveHTTP(o.http, httpHandler(eng, metrics, consoleHandler), eng, log)
		if err != nil {
			fmt.Fprintf(io.err, "memberflow run: %v\n", err)
			return exitFail
		}
		defer stopHTTP()
	}

	stopProgress := startProgress(eng, io.err)
	if o.once {
		sum, passes, err := runOnceUntilQuiet(func(poll func(string) bool) (*engine.Summary, error) {
			if ctx.Err() != nil {
				return nil, nil // stopped by a signal: no further pass
			}
			return eng.RunOncePolling(ctx, poll)
		}, rs)
		stopProgress()
		if sum != nil {
			if o.format == "json" {
				writeSummaryJSON(io.out, sum, rs, passes, o.dryRun)
			} else {
				sum.WriteText(io.out)
				fmt.Fprintln(io.out)
				writeGlance(io.out, sum, rs, o.dryRun)
			}
			log.Debug("caught up", "passes", passes)
		}
		if ctx.Err() != nil {
			// SIGINT or SIGTERM: the engine has given back the runs it had
			// claimed and not finished; make sure none is left held.
			n, rerr := eng.Release(context.WithoutCancel(ctx))
			if rerr != nil {
				reportStoreError(io, "run", spec.shown, rerr)
				return exitFail
			}
			fmt.Fprintf(io.err, "memberflow run: stopped by a signal; unfinished runs are back in the queue (%d released now) and resume on the next start\n", n)
			return exitOK
		}
		if err != nil {
			reportStoreError(io, "run", spec.shown, err)
			return exitFail
		}
		warnQueuedElsewhere(ctx, store, rs, spec.shown, io)
		if n := sum.Dead(); n > 0 {
			fmt.Fprintf(io.err, "memberflow run: %d run(s) dead-lettered: memberflow dlq list --store %s\n", n, spec.shown)
			return exitFail
		}
		return exitOK
	}
	log.Info("running; stop with Ctrl-C", "recipes", len(rs), "store", spec.shown, "concurrency", o.concurrency, "owner", eng.Owner())
	err = eng.Run(ctx)
	stopProgress()
	eng.Summary().WriteText(io.err)
	if err != nil {
		reportStoreError(io, "run", spec.shown, err)
		return exitFail
	}
	return exitOK
}

// warnQueuedElsewhere says when the store holds queued runs of recipes
// this run did not load (a dead letter replayed for a recipe run from
// another folder, say): no pass runs them, and nothing else would tell.
func warnQueuedElsewhere(ctx context.Context, store engine.Store, rs []*recipes.Recipe, shown string, io stdio) {
	loaded := map[string]bool{}
	for _, r := range rs {
		loaded[r.Name] = true
		if r.ID != "" {
			loaded[r.ID] = true
		}
	}
	queued, err := store.ListRuns(ctx, engine.RunFilter{Status: string(engine.RunQueued), Limit: 10000})
	if err != nil {
		return // the summary above stands; this is a courtesy
	}
	counts := map[string]int{}
	for _, q := range queued {
		if !loaded[q.Recipe] {
			counts[q.Recipe]++
		}
	}
	if len(counts) == 0 {
		return
	}
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	total := 0
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s (%d)", n, counts[n])
		total += counts[n]
	}
	fmt.Fprintf(io.err, "memberflow run: %d queued run(s) in %s belong to recipes this run did not load: %s; they run when a runner of this store loads them\n",
		total, shown, strings.Join(parts, ", "))
}

// loadVersion compiles an earlier version of a recipe, kept in the store,
// for a replayed run: the same loader options as the loaded version (a
// connections file given with --connections replaces its own).
func loadVersion(connections []string, log hclog.Logger) func(*recipes.Recipe, []byte) (*recipes.Recipe, error) {
	return func(current *recipes.Recipe, source []byte) (*recipes.Recipe, error) {
		r, diags := recipes.LoadBytes(current.File, source, recipes.Options{Registry: connectors.Default, Connections: connections, Logger: log.Named("recipes")})
		if diags.HasErrors() || r == nil {
			return nil, fmt.Errorf("%s", strings.TrimSpace(diags.Error()))
		}
		return r, nil
	}
}

// storeForRun opens the store to use. A dry run works on a scratch
// SQLite copy, so that its cursors and journal never reach the real
// store: a SQLite store is snapshotted, a Postgres one's trigger state is
// copied.
func storeForRun(ctx context.Context, o runOptions, spec storeSpec, log hclog.Logger) (engine.Store, func(), error) {
	if !o.dryRun {
		s, err := spec.open(ctx, o.concurrency, log)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	dir, err := os.MkdirTemp("", "memberflow-dry-run-")
	if err != nil {
		return nil, nil, err
	}
	removeDir := func() { os.RemoveAll(dir) }
	copyPath := filepath.Join(dir, "memberflow.db")
	if spec.exists() {
		real, err := spec.open(ctx, 1, log)
		if err != nil {
			removeDir()
			return nil, nil, err
		}
		err = snapshot(ctx, real, copyPath)
		real.Close()
		if err != nil {
			removeDir()
			return nil, nil, fmt.Errorf("copying the store for the dry run: %w", err)
		}
	}
	s, err := sqlitestore.Open(copyPath, sqlitestore.Options{Logger: log})
	if err != nil {
		removeDir()
		return nil, nil, err
	}
	return s, func() { s.Close(); removeDir() }, nil
}

func snapshot(ctx context.Context, real engine.Store, path string) error {
	if sn, ok := real.(engine.Snapshotter); ok {
		return sn.Snapshot(ctx, path)
	}
	src, ok := real.(engine.StateCopier)
	if !ok {
		return errors.New("the store can neither snapshot nor copy its state")
	}
	st, err := src.ExportState(ctx)
	if err != nil {
		return err
	}
	dst, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		return err
	}
	defer dst.Close()
	return dst.ImportState(ctx, st)
}

// sandboxTarget rewrites connections to a sandbox: the URL of a
// connector's service and its demo credentials.
type sandboxTarget interface {
	URL(connector string) string
	Auth(connector string) connectors.Auth
	Webhook(connector string) connectors.Webhook
	// Options are the sandbox account's settings (company, location,
	// event), which replace the production ones.
	Options(connector string) map[string]any
	// Place names the service in the store's record of the connection's
	// account when its URL changes at every start; "" keeps the URL.
	Place(connector string) string
}

// placeholderSecrets answers every secret: with a sandbox, credentials
// are replaced by the demo ones, so the real secrets are not needed.
type placeholderSecrets struct{ recipes.SecretSource }

func (p placeholderSecrets) Lookup(name string) (string, bool) {
	if v, ok := p.SecretSource.Lookup(name); ok && v != "" {
		return v, true
	}
	return "sandbox-placeholder", true
}

func resolveConnections(r *recipes.Recipe, secrets recipes.SecretSource, target sandboxTarget, dryRun bool, planned func(connectors.PlannedWrite), log hclog.Logger) (map[string]engine.Connection, error) {
	if target != nil {
		secrets = placeholderSecrets{secrets}
	}
	out := map[string]engine.Connection{}
	// Only the connections the recipe uses: a shared file may define
	// others, whose secrets this run does not need.
	for _, name := range r.UsedConnections() {
		c := r.Connections[name]
		spec, ok := connectors.Default.Lookup(c.Connector)
		if !ok {
			return nil, fmt.Errorf("connection %q: unknown connector %q%s", name, c.Connector, didYouMean(c.Connector, connectors.Default.Names()))
		}
		cfg, err := r.ResolveConnection(name, secrets)
		if err != nil {
			return nil, err
		}
		if target != nil {
			smtp := strings.HasPrefix(cfg.BaseURL, "smtp://")
			cfg.BaseURL = target.URL(c.Connector)
			if st, ok := target.(interface{ SMTP() string }); ok && smtp && st.SMTP() != "" {
				// Email notifications go to the sink's SMTP server, a
				// local relay without TLS.
				cfg.BaseURL = st.SMTP()
				opts := map[string]any{"tls": "none"}
				if from, ok := cfg.Options["from"]; ok {
					opts["from"] = from
				}
				cfg.Options = opts
			}
			cfg.Auth = target.Auth(c.Connector)
			if wh := target.Webhook(c.Connector); wh.Secret != "" || wh.PublicKey != "" {
				cfg.Webhook = wh
			}
			if opts := target.Options(c.Connector); len(opts) > 0 {
				merged := make(map[string]any, len(cfg.Options)+len(opts))
				for k, v := range cfg.Options {
					merged[k] = v
				}
				for k, v := range opts {
					merged[k] = v
				}
				cfg.Options = merged
			}
		}
		if dryRun {
			cfg.DryRun = planned
		}
		cfg.Logger = log.Named(name)
		conn := engine.Connection{Spec: spec, Config: cfg}
		if target != nil {
			conn.Place = target.Place(c.Connector)
		}
		out[name] = conn
	}
	return out, nil
}

// writeMissingSecrets reports every missing secret with the recipes and
// connections that need it.
func writeMissingSecrets(w io.Writer, missing []recipes.MissingSecret, file string) {
	from := "the environment"
	if file != "" {
		from += " or " + file
	}
	fmt.Fprintf(w, "memberflow run: %d secret(s) not set (looked up in %s):\n", len(missing), from)
	for _, m := range missing {
		fmt.Fprintf(w, "  %s  needed by %s\n", m.Name, strings.Join(m.NeededBy, ", "))
	}
	fmt.Fprintln(w, "Set them in the environment or a --secrets file (KEY=value lines); --sandbox needs none.")
}

// plannedWriter prints planned writes as JSON lines, one at a time, with
// secrets redacted.
type plannedWriter struct {
	mu     sync.Mutex
	enc    *json.Encoder
	redact *apiclient.Redactor
}

func (p *plannedWriter) write(w connectors.PlannedWrite) {
	b, err := json.Marshal(w)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"connection": w.Connection, "method": w.Method, "path": w.Path, "error": err.Error()})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.enc.Encode(json.RawMessage(p.redact.String(string(b))))
}

// httpHandler is what --http serves: /metrics, /healthz and /readyz, the
// console under /console/ when there is one, and every other path to the
// webhook triggers.
func httpHandler(eng *engine.Engine, metrics *ops.Metrics, console http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	ops.Mount(mux, metrics, ops.EngineChecker{Engine: eng})
	if console != nil {
		mux.Handle("/console/", console)
	}
	mux.Handle("/", eng.WebhookHandler())
	return mux
}

func serveHTTP(addr string, h http.Handler, eng *engine.Engine, log hclog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http: %w", err)
	}
	log.Info("listening", "metrics", "http://"+ln.Addr().String()+"/metrics", "ready", "http://"+ln.Addr().String()+"/readyz", "console", "http://"+ln.Addr().String()+"/console/")
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		ErrorLog: log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	paths := eng.WebhookPaths()
	names := make([]string, 0, len(paths))
	for n := range paths {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		log.Info("webhook", "recipe", n, "url", "http://"+ln.Addr().String()+paths[n])
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("the --http listener stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// startProgress prints a progress line on a terminal while events are
// processed: runs done of the events seen (and of the source's total,
// when it says), and the rate.
func startProgress(eng *engine.Engine, w io.Writer) (stop func()) {
	if !isTerminal(w) {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		printed := false
		for {
			select {
			case <-done:
				if printed {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case <-t.C:
				if line := progressLine(eng.Progress(), time.Since(start)); line != "" {
					fmt.Fprint(w, "\r\033[K"+line)
					printed = true
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func progressLine(ps []engine.Progress, elapsed time.Duration) string {
	var parts []string
	for _, p := range ps {
		if p.Events == 0 {
			continue
		}
		rate := float64(p.Done) / elapsed.Seconds()
		of := fmt.Sprintf("%d", p.Events)
		if p.Total > 0 {
			of = fmt.Sprintf("%d (source: %d)", p.Events, p.Total)
		}
		parts = append(parts, fmt.Sprintf("%s: %d of %s done, %.0f/s", p.Recipe, p.Done, of, rate))
	}
	return strings.Join(parts, " | ")
}
