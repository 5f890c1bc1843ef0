package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/reconcile"
	"github.com/memberflow/memberflow/recipes"
)

func init() {
	register(&command{
		name:    "reconcile",
		summary: "compare the connected systems record by record; report drift, enqueue its fixes",
		usage:   "[--sandbox-url URL] [--format text|json] [--fix [--dry-run]] [--store PATH|URL] PATH...",
		help: `Reads every member, payment, credential, attendee and paid order through the
recipes' connections (paged, within each connection's rate limit) and
checks the integrity rules the loaded recipes imply: an eligible member
without a valid credential, a lapsed member's credential not expired, a
member's certificate fields disagreeing with the credential, a member without
an attendee, an attendee whose email or name differs, duplicate attendees,
registrations of no member, payments missing or doubled in the other
system, or mirrored there with another amount or currency (to the
currency's minor unit). Each drift is reported with its rule, its records
and the recipe whose run would fix it. docs/reconcile.md lists the rules and what each
takes from the recipes; the connectors declare which of their records and
operations the rules bind to (docs/architecture.md).

--fix enqueues, in the store, the run each fixing recipe would make for
the drifting record (its own trigger event); the next "memberflow run"
runs them. --fix --dry-run prints those runs without enqueuing them.

Exit status: 0 no drift, 1 drift found (or the systems could not be read),
2 usage errors and recipes that do not load.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			o := reconcileOptions{}
			fs.StringVar(&o.store, "store", "memberflow.db", "the store the fixes are enqueued in: a SQLite file `path`, a postgres://… URL, or secret.NAME")
			fs.StringVar(&o.sandboxURL, "sandbox-url", "", "read the sandbox running at `URL` instead of the connections' services")
			fs.StringVar(&o.format, "format", "text", "output format: text or json")
			fs.BoolVar(&o.fix, "fix", false, "enqueue the runs that fix the drift")
			fs.BoolVar(&o.dryRun, "dry-run", false, "with --fix: print the runs, enqueue nothing")
			fs.StringVar(&o.secrets, "secrets", "", "secrets `file` (KEY=value lines); the environment wins")
			var conns stringList
			fs.Var(&conns, "connections", "shared connections `file` replacing the recipes' connections_file (repeatable)")
			fs.StringVar(&o.logLevel, "log-level", "warn", "log level: trace, debug, info, warn, error, off")
			return func(ctx context.Context, args []string, io stdio) int {
				o.connections, o.paths = conns, args
				return runReconcile(ctx, o, io)
			}
		},
	})
}

type reconcileOptions struct {
	store, sandboxURL, format, secrets, logLevel string
	fix, dryRun                                  bool
	connections, paths                           []string
}

func runReconcile(ctx context.Context, o reconcileOptions, io stdio) int {
	switch {
	case len(o.paths) == 0:
		fmt.Fprintln(io.err, "memberflow reconcile: name the recipes (files or folders): their connections are read and their rules checked")
		return exitUsage
	case o.format != "text" && o.format != "json":
		fmt.Fprintf(io.err, "memberflow reconcile: --format must be text or json, got %q\n", o.format)
		return exitUsage
	case o.dryRun && !o.fix:
		fmt.Fprintln(io.err, "memberflow reconcile: --dry-run goes with --fix")
		return exitUsage
	case hclog.LevelFromString(o.logLevel) == hclog.NoLevel:
		fmt.Fprintf(io.err, "memberflow reconcile: --log-level must be trace, debug, info, warn, error or off, got %q\n", o.logLevel)
		return exitUsage
	}
	log := newLogger(o.logLevel, "text", io.err)
	rs, conns, code := loadForReading(ctx, "reconcile", runOptions{paths: o.paths, connections: o.connections, secrets: o.secrets, sandboxURL: o.sandboxURL}, log, io)
	if code != exitOK {
		return code
	}
	closeTokens, code := readerTokens("reconcile", o.store, o.secrets, conns, io)
	if code != exitOK {
		return code
	}
	defer closeTokens()
	rc, err := reconcile.New(reconcile.Options{Recipes: rs, Connections: conns, Logger: log})
	if err != nil {
		fmt.Fprintf(io.err, "memberflow reconcile: %v\n", err)
		return exitFail
	}
	defer rc.Close()
	rep, _, err := rc.Run(ctx)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow reconcile: %v\n", err)
		return exitFail
	}
	var plans []reconcile.Planned
	if o.fix && len(rep.Findings) > 0 {
		var store engine.TriggerStore
		if !o.dryRun {
			secrets, err := recipes.NewEnvSecrets(o.secrets)
			if err != nil {
				fmt.Fprintf(io.err, "memberflow reconcile: %v\n", err)
				return exitUsage
			}
			spec, err := parseStore(o.store, secrets)
			if err != nil {
				fmt.Fprintf(io.err, "memberflow reconcile: %v\n", err)
				return exitUsage
			}
			if !spec.exists() {
				fmt.Fprintf(io.err, "memberflow reconcile: no store at %s: the fixes go in the store the runner uses (--store)\n", spec.shown)
				return exitUsage
			}
			s, err := spec.open(ctx, 1, log)
			if err != nil {
				fmt.Fprintf(io.err, "memberflow reconcile: %v\n", err)
				return exitFail
			}
			defer s.Close()
			store = s
		}
		if plans, err = reconcile.Fix(ctx, store, rep, o.dryRun); err != nil {
			fmt.Fprintf(io.err, "memberflow reconcile: %v\n", err)
			return exitFail
		}
	}
	if o.format == "json" {
		out := struct {
			*reconcile.Report
			Fixes []reconcile.Planned `json:"fixes,omitempty"`
		}{rep, plans}
		enc := json.NewEncoder(io.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(io.err, "memberflow reconcile: %v\n", err)
			return exitFail
		}
	} else {
		rep.WriteText(io.out)
		writeFixes(io, plans, o)
	}
	if len(rep.Findings) > 0 {
		return exitFail
	}
	return exitOK
}

func writeFixes(io stdio, plans []reconcile.Planned, o reconcileOptions) {
	if !o.fix {
		return
	}
	if len(plans) == 0 {
		fmt.Fprintln(io.out, "no run to enqueue: no loaded recipe fixes this drift")
		return
	}
	fmt.Fprintln(io.out)
	for _, p := range plans {
		if o.dryRun {
			fmt.Fprintf(io.out, "would enqueue  %s  %s  (%s)\n", p.Recipe, p.Subject, p.Rule)
		} else {
			fmt.Fprintf(io.out, "enqueued run %d  %s  %s  (%s)\n", p.RunID, p.Recipe, p.Subject, p.Rule)
		}
	}
	if o.dryRun {
		fmt.Fprintf(io.out, "%d run(s) planned; without --dry-run they are enqueued\n", len(plans))
	} else {
		fmt.Fprintf(io.out, "%d run(s) enqueued; memberflow run --once --store %s runs them\n", len(plans), o.store)
	}
}

// loadForReading loads recipes and resolves their connections for a
// command that reads the services (reconcile, console): against the
// sandbox at --sandbox-url or the connections' own services.
func loadForReading(ctx context.Context, cmd string, o runOptions, log hclog.Logger, io stdio) ([]*recipes.Recipe, map[string]map[string]engine.Connection, int) {
	rs, diags := recipes.Load(recipes.Options{Registry: connectors.Default, Connections: o.connections, Logger: log.Named("recipes")}, o.paths...)
	if diags.HasErrors() || diags.HasIOErrors() {
		diags.WriteText(io.err)
		fmt.Fprintf(io.err, "memberflow %s: the recipes do not load (memberflow validate shows the same)\n", cmd)
		return nil, nil, exitUsage
	}
	if len(rs) == 0 {
		fmt.Fprintf(io.err, "memberflow %s: no recipe found in %s\n", cmd, strings.Join(o.paths, " "))
		return nil, nil, exitUsage
	}
	target, _, err := startSandbox(ctx, runOptions{sandboxURL: o.sandboxURL}, log)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow %s: %v\n", cmd, err)
		if errors.As(err, new(usageError)) {
			return nil, nil, exitUsage
		}
		return nil, nil, exitFail
	}
	secrets, err := recipes.NewEnvSecrets(o.secrets)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow %s: %v\n", cmd, err)
		return nil, nil, exitUsage
	}
	conns := map[string]map[string]engine.Connection{}
	for _, r := range rs {
		c, err := resolveConnections(r, secrets, target, false, nil, log)
		if err != nil {
			fmt.Fprintf(io.err, "memberflow %s: %s: %v\n", cmd, r.File, err)
			return nil, nil, exitUsage
		}
		conns[r.Name] = c
	}
	return rs, conns, exitOK
}
