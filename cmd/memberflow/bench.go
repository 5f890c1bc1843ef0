package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/internal/bench"
)

func init() {
	register(&command{
		name:    "bench",
		summary: "measure the runner end to end: a backfill against the sandbox, or a file job",
		usage:   "[--members N] [--concurrency N] [--store PATH | --store postgres://… --runners N] [--seed S] [--sandbox-url URL] [--metrics] [--ceiling] [--format text|json] [--cpuprofile FILE] [--memprofile FILE]\n       memberflow bench --pipeline [--lines N] [--batch N] [--dir DIR] [--concurrency N] [--store PATH] [--seed S] [--format text|json] [--cpuprofile FILE] [--memprofile FILE]",
		help: `Starts the sandbox in a separate process (memberflow sandbox, rate limits
off) with --members members, then backfills them all with a built-in recipe:
each eligible member is issued one certificate (an upsert, never a duplicate)
and the certificate is written back onto the member (the recipe is
internal/bench/recipe.yaml),
through the durable SQLite store. Prints members/s, runs/s, the runs' p50 and
p99 execution time, the runner's peak resident memory (the sandbox's is not
counted), how busy the store's one writer was, and the sandbox's duplicate
certificates, which must be 0.

--metrics keeps the Prometheus metrics that run --http serves, gathered
every 5 seconds; compare paired runs with and without it for their cost.

--store postgres://… --runners N runs the backfill on SQLite with one
runner, then on Postgres (a scratch schema, dropped after) with 1 to N
runners sharing the database, the sandbox reset before each, and prints a
table: members/s and members per CPU second (the runners' CPU plus that
of the database sessions serving them, when the server runs on this
machine), and the requests the sandbox received, per member and the
scan's pages.

--sandbox-url uses a sandbox already running instead (--members is then
the sandbox's own).

--ceiling has the sandbox record the engine's requests, then resets it
(the same seed) and replays them with a minimal HTTP client: exactly the
same requests, as many at once as the engine's workers, no engine, store or
expressions. Prints its members/s beside the engine's and the ratio; the
two must have sent the same requests by route.

--pipeline runs the file job instead, with no service: it generates --lines
member JSON lines, then reads them (file.records), keeps the eligible
members with a score of at least 70, maps each to a certificate service's credential
and appends it as a JSON line (file.append), through the durable store.
Prints events/s, CPU time per event, peak RSS, the store's size and how
busy its one writer was. See
docs/benchmarks.md, which also shows Redpanda Connect's equivalent.

Exit status: 0 when the figures are consistent (a certificate and an update
per eligible member, every member processed, no duplicate, no dead letter;
for --pipeline every kept member written once), 1 otherwise, 2 for usage
errors.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			o := benchOptions{}
			fs.IntVar(&o.members, "members", 100000, "members seeded in the sandbox")
			fs.IntVar(&o.concurrency, "concurrency", 32, "runs executed at once")
			fs.StringVar(&o.store, "store", "", "durable store `path` (a fresh file; default a temporary one, removed after), or a postgres:// URL (with --runners)")
			fs.IntVar(&o.runners, "runners", 0, "with a postgres:// --store: backfill on SQLite with one runner, then on Postgres with 1 to `N` runners, and print the table")
			fs.Int64Var(&o.seed, "seed", 1, "seed of the sandbox data")
			fs.StringVar(&o.sandboxURL, "sandbox-url", "", "use the sandbox running at `URL` instead of starting one")
			fs.StringVar(&o.format, "format", "text", "output format: text or json")
			fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the backfill to `file` (go tool pprof)")
			fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile taken at the end of the backfill to `file`")
			fs.StringVar(&o.logLevel, "log-level", "warn", "runner log level: trace, debug, info, warn, error, off")
			fs.BoolVar(&o.metrics, "metrics", false, "keep the Prometheus metrics of run --http, gathered every 5 s (paired runs measure their overhead)")
			fs.BoolVar(&o.ceiling, "ceiling", false, "record the backfill's requests, reset the sandbox and replay them with a minimal client (no engine) for the ratio")
			fs.BoolVar(&o.pipeline, "pipeline", false, "run the file job (member lines to credential lines) instead of the sandbox backfill")
			fs.IntVar(&o.lines, "lines", 100000, "--pipeline: member lines generated")
			fs.IntVar(&o.batch, "batch", 1000, "--pipeline: records per poll of the file trigger")
			fs.StringVar(&o.dir, "dir", "", "--pipeline: folder for the input and output `DIR` (default a temporary one, removed after)")
			return func(ctx context.Context, args []string, io stdio) int {
				if o.pipeline {
					return runPipelineBench(ctx, o, args, io)
				}
				return runBench(ctx, o, args, io)
			}
		},
	})
}

type benchOptions struct {
	members, concurrency, runners                               int
	seed                                                        int64
	metrics, ceiling                                            bool
	store, sandboxURL, format, cpuProfile, memProfile, logLevel string

	pipeline     bool
	lines, batch int
	dir          string
}

func (o benchOptions) check(args []string) error {
	switch {
	case len(args) > 0:
		return fmt.Errorf("unexpected arguments %q: the benchmark's recipe is built in", args)
	case o.ceiling && (o.pipeline || o.runners > 0):
		return fmt.Errorf("--ceiling compares the sandbox backfill: not with --pipeline or --runners")
	case o.pipeline && o.sandboxURL != "":
		return fmt.Errorf("--pipeline reads a file: --sandbox-url does not apply")
	case o.pipeline && o.lines < 1:
		return fmt.Errorf("--lines must be at least 1, got %d", o.lines)
	case o.pipeline && (o.batch < 1 || o.batch > 10000):
		return fmt.Errorf("--batch must be 1 to 10000, got %d", o.batch)
	case o.members < 1:
		return fmt.Errorf("--members must be at least 1, got %d", o.members)
	case o.concurrency < 1:
		return fmt.Errorf("--concurrency must be at least 1, got %d", o.concurrency)
	case o.format != "text" && o.format != "json":
		return fmt.Errorf("--format must be text or json, got %q", o.format)
	}
	if hclog.LevelFromString(o.logLevel) == hclog.NoLevel {
		return fmt.Errorf("--log-level must be trace, debug, info, warn, error or off, got %q", o.logLevel)
	}
	return nil
}

func runBench(ctx context.Context, o benchOptions, args []string, io stdio) int {
	if err := o.check(args); err != nil {
		fmt.Fprintf(io.err, "memberflow bench: %v\n", err)
		return exitUsage
	}
	log := newLogger(o.logLevel, "text", io.err)

	base := strings.TrimRight(o.sandboxURL, "/")
	var cpu func() (time.Duration, error)
	if base == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(io.err, "memberflow bench: finding this program to start the sandbox with: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(io.err, "memberflow bench: starting the sandbox with %d members...\n", o.members)
		sb, err := bench.StartSandbox(ctx, bench.SandboxSpec{Executable: exe, Members: o.members, Seed: o.seed})
		if err != nil {
			fmt.Fprintf(io.err, "memberflow %v\n", err)
			return exitFail
		}
		defer sb.Close()
		base = sb.URL
		cpu = sb.CPU
	}

	if spec, err := parseStore(o.store, nil); o.store != "" && err == nil && spec.postgres {
		if o.runners < 1 {
			o.runners = 3
		}
		return runRunnerTable(ctx, o, spec, base, io, log)
	}
	if o.runners > 0 {
		fmt.Fprintln(io.err, "memberflow bench: --runners needs --store postgres://…")
		return exitUsage
	}
	opts := bench.Options{SandboxURL: base, Concurrency: o.concurrency, Store: o.store, Logger: log, SandboxCPU: cpu, Metrics: o.metrics, Record: o.ceiling}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintf(io.err, "memberflow bench: --cpuprofile: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		opts.CPUProfile = f
	}
	if o.memProfile != "" {
		f, err := os.Create(o.memProfile)
		if err != nil {
			fmt.Fprintf(io.err, "memberflow bench: --memprofile: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		opts.MemProfile = f
	}
	fmt.Fprintf(io.err, "memberflow bench: backfilling from %s with %d workers...\n", base, o.concurrency)
	res, err := bench.Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow %v\n", err)
		return exitFail
	}
	if o.ceiling {
		fmt.Fprintf(io.err, "memberflow bench: resetting the sandbox; the minimal client replays the engine's %d requests, %d at once...\n", len(res.Recorded), o.concurrency)
		c, err := bench.RunCeiling(ctx, bench.CeilingOptions{SandboxURL: base, Concurrency: o.concurrency, SandboxCPU: cpu, Backfill: res})
		if err != nil {
			fmt.Fprintf(io.err, "memberflow %v\n", err)
			return exitFail
		}
		res.AddCeiling(c)
	}
	if o.format == "json" {
		err = res.WriteJSON(io.out)
	} else {
		err = res.WriteText(io.out)
	}
	if err != nil {
		fmt.Fprintf(io.err, "memberflow bench: %v\n", err)
		return exitFail
	}
	if err := res.Check(); err != nil {
		fmt.Fprintf(io.err, "memberflow %v\n", err)
		return exitFail
	}
	return exitOK
}

// profiles opens the --cpuprofile and --memprofile files; close closes them.
func (o benchOptions) profiles() (cpu, mem *os.File, close func(), err error) {
	close = func() {
		for _, f := range []*os.File{cpu, mem} {
			if f != nil {
				f.Close()
			}
		}
	}
	if o.cpuProfile != "" {
		if cpu, err = os.Create(o.cpuProfile); err != nil {
			return nil, nil, close, fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	if o.memProfile != "" {
		if mem, err = os.Create(o.memProfile); err != nil {
			return nil, nil, close, fmt.Errorf("--memprofile: %w", err)
		}
	}
	return cpu, mem, close, nil
}

func runPipelineBench(ctx context.Context, o benchOptions, args []string, io stdio) int {
	if err := o.check(args); err != nil {
		fmt.Fprintf(io.err, "memberflow bench: %v\n", err)
		return exitUsage
	}
	cpu, mem, closeProfiles, err := o.profiles()
	defer closeProfiles()
	if err != nil {
		fmt.Fprintf(io.err, "memberflow bench: %v\n", err)
		return exitUsage
	}
	opts := bench.PipelineOptions{Lines: o.lines, Seed: uint64(o.seed), Batch: o.batch, Concurrency: o.concurrency,
		Dir: o.dir, Store: o.store, Logger: newLogger(o.logLevel, "text", io.err)}
	if cpu != nil {
		opts.CPUProfile = cpu
	}
	if mem != nil {
		opts.MemProfile = mem
	}
	fmt.Fprintf(io.err, "memberflow bench: the file job over %d member lines, batch %d, %d workers...\n", o.lines, o.batch, o.concurrency)
	res, err := bench.RunPipeline(ctx, opts)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow %v\n", err)
		return exitFail
	}
	if o.format == "json" {
		err = res.WriteJSON(io.out)
	} else {
		err = res.WriteText(io.out)
	}
	if err != nil {
		fmt.Fprintf(io.err, "memberflow bench: %v\n", err)
		return exitFail
	}
	if err := res.Check(); err != nil {
		fmt.Fprintf(io.err, "memberflow %v\n", err)
		return exitFail
	}
	return exitOK
}
