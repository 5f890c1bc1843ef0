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
		summary: "measure the runner end to end: a backfill against the sandbox",
		usage:   "[--members N] [--concurrency N] [--store PATH] [--seed S] [--sandbox-url URL] [--metrics] [--format text|json] [--cpuprofile FILE] [--memprofile FILE]",
		help: `Starts the sandbox in a separate process (memberflow sandbox, rate limits
off) with --members members, then backfills them all with a built-in recipe:
each eligible member is issued one certificate (accredible.upsert_credential)
and the certificate is written back onto the member (members.update_user),
through the durable SQLite store. Prints members/s, runs/s, the runs' p50 and
p99 execution time, the runner's peak resident memory (the sandbox's is not
counted) and the sandbox's duplicate certificates, which must be 0.

--metrics keeps the Prometheus metrics that run --http serves, gathered
every 5 seconds; compare paired runs with and without it for their cost.

--sandbox-url uses a sandbox already running instead (--members is then
the sandbox's own). See docs/benchmarks.md.

Exit status: 0 when the figures are consistent (a certificate and an update
per eligible member, every member processed, no duplicate, no dead letter),
1 otherwise, 2 for usage errors.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			o := benchOptions{}
			fs.IntVar(&o.members, "members", 100000, "members seeded in the sandbox")
			fs.IntVar(&o.concurrency, "concurrency", 32, "runs executed at once")
			fs.StringVar(&o.store, "store", "", "durable store `path` (a fresh file; default a temporary one, removed after)")
			fs.Int64Var(&o.seed, "seed", 1, "seed of the sandbox data")
			fs.StringVar(&o.sandboxURL, "sandbox-url", "", "use the sandbox running at `URL` instead of starting one")
			fs.StringVar(&o.format, "format", "text", "output format: text or json")
			fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the backfill to `file` (go tool pprof)")
			fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile taken at the end of the backfill to `file`")
			fs.StringVar(&o.logLevel, "log-level", "warn", "runner log level: trace, debug, info, warn, error, off")
			fs.BoolVar(&o.metrics, "metrics", false, "keep the Prometheus metrics of run --http, gathered every 5 s (paired runs measure their overhead)")
			return func(ctx context.Context, args []string, io stdio) int {
				return runBench(ctx, o, args, io)
			}
		},
	})
}

type benchOptions struct {
	members, concurrency                                        int
	seed                                                        int64
	metrics                                                     bool
	store, sandboxURL, format, cpuProfile, memProfile, logLevel string
}

func (o benchOptions) check(args []string) error {
	switch {
	case len(args) > 0:
		return fmt.Errorf("unexpected arguments %q: the benchmark's recipe is built in", args)
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

	opts := bench.Options{SandboxURL: base, Concurrency: o.concurrency, Store: o.store, Logger: log, SandboxCPU: cpu, Metrics: o.metrics}
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
