package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors/apiclient"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/console"
	"github.com/memberflow/memberflow/internal/reconcile"
	"github.com/memberflow/memberflow/recipes"
)

func init() {
	register(&command{
		name:    "console",
		summary: "the web console: compliance, activity, runs, dead letters (replay)",
		usage:   "[--addr 127.0.0.1:8080] [--store PATH|URL] [--sandbox-url URL] [--console-token T] [--read-only] [PATH...]",
		help: `Serves the console at http://ADDR/console/ on the store's runs:

  Compliance    members × credential × attendance, filters, CSV export, the
                reconcile findings with their age (needs the recipes: PATH)
  Activity      runs per recipe over time, step latency, API calls and 429s
  Runs          the run history, filters, paging, each run's audit
  Dead letters  failed runs; replay one or all

With recipe paths the compliance page reads the three services through the
recipes' connections (--sandbox-url for a running sandbox), as "memberflow
reconcile" does, at most once a minute. "memberflow run --http ADDR" serves
the same console beside its webhooks.

The console answers on loopback addresses only, unless a token
(--console-token, or the secret named by --console-token-secret) or basic
auth (--console-basic-auth-secret names a secret "user:password") is set.
--read-only hides replays. Pages show run data as "runs show" does (stored
redacted); no secret is ever shown.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			o := consoleOptions{}
			fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen `address` (host:port)")
			fs.StringVar(&o.store, "store", "memberflow.db", storeFlagHelp)
			fs.StringVar(&o.sandboxURL, "sandbox-url", "", "read the sandbox running at `URL` for the compliance page")
			fs.StringVar(&o.secrets, "secrets", "", "secrets `file` (KEY=value lines); the environment wins")
			var conns stringList
			fs.Var(&conns, "connections", "shared connections `file` replacing the recipes' connections_file (repeatable)")
			o.access.flags(fs, "read-only")
			fs.StringVar(&o.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error, off")
			return func(ctx context.Context, args []string, io stdio) int {
				o.connections, o.paths = conns, args
				return runConsole(ctx, o, io)
			}
		},
	})
}

// consoleAccess are the console's access flags, shared with `run --http`.
type consoleAccess struct {
	token, tokenSecret, basicSecret string
	readOnly                        bool
}

func (a *consoleAccess) flags(fs *flag.FlagSet, readOnlyFlag string) {
	fs.StringVar(&a.token, "console-token", "", "require this `token` on the console (needed to bind beyond loopback)")
	fs.StringVar(&a.tokenSecret, "console-token-secret", "", "require the token held by the secret `NAME` (--secrets or the environment)")
	fs.StringVar(&a.basicSecret, "console-basic-auth-secret", "", "require basic auth with the \"user:password\" held by the secret `NAME`")
	fs.BoolVar(&a.readOnly, readOnlyFlag, false, "console: hide and refuse replays")
}

// options resolves the secrets into console options and checks that a
// non-loopback bind is protected.
func (a consoleAccess) options(addr string, secrets recipes.SecretSource) (console.Options, error) {
	o := console.Options{Token: a.token, ReadOnly: a.readOnly}
	if a.tokenSecret != "" {
		v, ok := secrets.Lookup(a.tokenSecret)
		if !ok || v == "" {
			return o, fmt.Errorf("--console-token-secret: secret %s is not set", a.tokenSecret)
		}
		o.Token = v
	}
	if a.basicSecret != "" {
		v, ok := secrets.Lookup(a.basicSecret)
		user, pass, found := strings.Cut(v, ":")
		if !ok || !found || user == "" || pass == "" {
			return o, fmt.Errorf("--console-basic-auth-secret: secret %s must hold user:password", a.basicSecret)
		}
		o.BasicUser, o.BasicPassword = user, pass
	}
	if o.Token == "" && o.BasicUser == "" && !loopback(addr) {
		return o, fmt.Errorf("the console on %s answers beyond this machine: set --console-token (or --console-token-secret, --console-basic-auth-secret), or bind to 127.0.0.1", addr)
	}
	return o, nil
}

// loopback reports whether a listen address only accepts local clients.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type consoleOptions struct {
	addr, store, sandboxURL, secrets, logLevel string
	connections, paths                         []string
	access                                     consoleAccess
}

func runConsole(ctx context.Context, o consoleOptions, io stdio) int {
	if _, _, err := net.SplitHostPort(o.addr); err != nil {
		fmt.Fprintf(io.err, "memberflow console: --addr %q: %v\n", o.addr, err)
		return exitUsage
	}
	if hclog.LevelFromString(o.logLevel) == hclog.NoLevel {
		fmt.Fprintf(io.err, "memberflow console: --log-level must be trace, debug, info, warn, error or off, got %q\n", o.logLevel)
		return exitUsage
	}
	log := newLogger(o.logLevel, "text", io.err)
	secrets, err := recipes.NewEnvSecrets(o.secrets)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow console: %v\n", err)
		return exitUsage
	}
	opts, err := o.access.options(o.addr, secrets)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow console: %v\n", err)
		return exitUsage
	}
	spec, err := parseStore(o.store, secrets)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow console: %v\n", err)
		return exitUsage
	}
	if !spec.exists() {
		fmt.Fprintf(io.err, "memberflow console: no store at %s (memberflow run creates it; --store names another)\n", spec.shown)
		return exitUsage
	}
	store, err := spec.open(ctx, 1, log)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow console: %v\n", err)
		return exitFail
	}
	defer store.Close()
	opts.Store, opts.Logger = store, log
	if len(o.paths) > 0 {
		rs, conns, code := loadForReading(ctx, "console", runOptions{paths: o.paths, connections: o.connections, secrets: o.secrets, sandboxURL: o.sandboxURL}, log, io)
		if code != exitOK {
			return code
		}
		closeTokens, code := readerTokens("console", o.store, o.secrets, conns, io)
		if code != exitOK {
			return code
		}
		defer closeTokens()
		opts.API = console.NewAPICounter()
		opts.Redact = countAndRedact(conns, opts.API)
		rc, err := reconcile.New(reconcile.Options{Recipes: rs, Connections: conns, Logger: log})
		if err != nil {
			fmt.Fprintf(io.err, "memberflow console: %v\n", err)
			return exitFail
		}
		defer rc.Close()
		opts.Compliance = &console.Reconciling{R: rc}
	}
	h, err := console.New(opts)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow console: %v\n", err)
		return exitFail
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow console: %v\n", err)
		return exitFail
	}
	mux := http.NewServeMux()
	mux.Handle(h.Prefix(), h)
	mux.Handle("GET /{$}", http.RedirectHandler(h.Prefix(), http.StatusSeeOther))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		ErrorLog: log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	log.Info("console", "url", "http://"+ln.Addr().String()+h.Prefix(), "read_only", opts.ReadOnly)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(io.err, "memberflow console: %v\n", err)
		return exitFail
	}
	return exitOK
}

// countAndRedact sends every connection's requests through the API
// counter and returns a redactor of every connection's secrets.
func countAndRedact(conns map[string]map[string]engine.Connection, api *console.APICounter) func(string) string {
	var secretValues []string
	for recipe, cs := range conns {
		for name, c := range cs {
			c.Config.HTTPClient = api.Client(c.Spec.Name, c.Config.HTTPClient)
			secretValues = append(secretValues, c.Config.Auth.Secrets()...)
			if c.Config.Webhook.Secret != "" {
				secretValues = append(secretValues, c.Config.Webhook.Secret)
			}
			cs[name] = c
		}
		conns[recipe] = cs
	}
	return apiclient.NewRedactor(secretValues...).String
}

// runConsoleHandler is the console `run --http` serves beside the
// webhooks: the runner's store, its connections' API counts (every
// connection is wrapped before the engine opens it) and, for the
// compliance page, a reconciler over the same recipes. Nil when the
// address is not loopback and no token protects it: the webhooks are
// served, the console is not.
func runConsoleHandler(o runOptions, rs []*recipes.Recipe, store engine.Store, resolved []map[string]engine.Connection, secrets recipes.SecretSource, redact func(string) string, log hclog.Logger) (http.Handler, error) {
	opts, err := o.console.options(o.http, secrets)
	if err != nil {
		log.Warn("the console is not served", "reason", err)
		return nil, nil
	}
	api := console.NewAPICounter()
	conns := map[string]map[string]engine.Connection{}
	for i, r := range rs {
		for name, c := range resolved[i] {
			c.Config.HTTPClient = api.Client(c.Spec.Name, c.Config.HTTPClient)
			resolved[i][name] = c
		}
		conns[r.Name] = resolved[i]
	}
	rc, err := reconcile.New(reconcile.Options{Recipes: rs, Connections: conns, Logger: log})
	if err != nil {
		return nil, err
	}
	opts.Store, opts.API, opts.Redact, opts.Logger = store, api, redact, log
	opts.Compliance = &console.Reconciling{R: rc}
	return console.New(opts)
}
