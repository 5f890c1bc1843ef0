package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

func init() {
	register(&command{
		name:    "sandbox",
		summary: "run the simulated APIs of every connector that has a sandbox",
		usage:   "[--addr 127.0.0.1:8089] [--ready-file FILE] [--members N] [--seed S] [--fail-rate F] [--drop-rate F] [--latency D] [--rate-limit R|off] [--allow-undocumented]",
		help: `Serves every connector's sandbox under /<connector> (` + sandboxPrefixes() + `)
with seeded data, until interrupted. They answer like the real APIs: the same
headers, paths, bodies, pagination, errors and rate limits. Request
parameters the real APIs do not document are refused, unless
--allow-undocumented.

Faults are deterministic for a seed: --fail-rate answers 500, --drop-rate
closes the connection unanswered (half of the time after applying the
request), --latency delays every answer.

--rate-limit overrides every service's documented limit: "off", "N" (per
second) or "N/DURATION" ("100/10s"). Without it each service keeps its own
(` + sandboxLimits() + `).

Inspect and drive it with GET /_sandbox/stats, POST /_sandbox/reset,
POST /_sandbox/mutate and POST /_sandbox/webhooks; POST /_sandbox/recording
keeps every API request until DELETE /_sandbox/recording answers them (the
ceiling of memberflow bench replays them). Alerts (notify.slack,
notify.webhook) land in its sink, GET /_sandbox/notifications, emails at
its SMTP server (GET /_sandbox/smtp says where); POST /_sandbox/credentials
{"service":"NAME","revoked":true} refuses a service's demo credentials
until revoked is false again (docs/operations.md).`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			addr := fs.String("addr", "127.0.0.1:8089", "address to listen on (port 0 picks a free one)")
			members := fs.Int("members", 1000, "number of seeded members")
			seed := fs.Int64("seed", 1, "seed of the demo data and of the fault sequence")
			failRate := fs.Float64("fail-rate", 0, "share of API requests answered 500, 0 to 1")
			dropRate := fs.Float64("drop-rate", 0, "share of API requests whose connection is dropped, 0 to 1")
			latency := fs.Duration("latency", 0, "delay added to every API answer (e.g. 50ms)")
			rateLimit := fs.String("rate-limit", "", `rate limit of every service: "off", "N" per second or "N/DURATION"; empty keeps the documented limits`)
			logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn, error, off")
			allowUndocumented := fs.Bool("allow-undocumented", false, "accept request parameters the real APIs do not document (incremental searches)")
			readyFile := fs.String("ready-file", "", "once listening, write the base URL to this `file` (for scripts and memberflow bench)")
			return func(ctx context.Context, args []string, io stdio) int {
				if len(args) > 0 {
					fmt.Fprintf(io.err, "memberflow sandbox: unexpected arguments %q\n", args)
					return exitUsage
				}
				limit, err := parseSandboxRateLimit(*rateLimit)
				if err != nil {
					fmt.Fprintf(io.err, "memberflow sandbox: --rate-limit: %v\n", err)
					return exitUsage
				}
				level := hclog.LevelFromString(*logLevel)
				if level == hclog.NoLevel {
					fmt.Fprintf(io.err, "memberflow sandbox: --log-level: unknown level %q; use trace, debug, info, warn, error or off\n", *logLevel)
					return exitUsage
				}
				opts := sandbox.Options{
					Members:   *members,
					Seed:      *seed,
					Faults:    sandboxkit.Faults{FailRate: *failRate, DropRate: *dropRate, Latency: *latency},
					RateLimit: limit,
					Logger:    hclog.New(&hclog.LoggerOptions{Name: "memberflow", Level: level, Output: io.err}),

					AllowUndocumented: *allowUndocumented,
				}
				return serveSandboxReady(ctx, *addr, opts, io, *readyFile)
			}
		},
	})
}

// sandboxPrefixes lists the registered sandboxes' mount prefixes.
func sandboxPrefixes() string {
	var out []string
	for _, r := range sandboxkit.Registered() {
		out = append(out, "/"+r.Name)
	}
	return strings.Join(out, ", ")
}

// sandboxLimits describes each registered sandbox's documented limits.
func sandboxLimits() string {
	var out []string
	for _, r := range sandboxkit.Registered() {
		if r.Limits != "" {
			out = append(out, r.Name+" "+r.Limits)
		}
	}
	return strings.Join(out, "; ")
}

// serveSandbox seeds, listens, prints how to call each service, and serves
// until ctx ends.
func serveSandbox(ctx context.Context, addr string, opts sandbox.Options, io stdio) int {
	return serveSandboxReady(ctx, addr, opts, io, "")
}

// serveSandboxReady is serveSandbox that also writes the base URL to
// readyFile (when set) once listening.
func serveSandboxReady(ctx context.Context, addr string, opts sandbox.Options, io stdio, readyFile string) int {
	start := time.Now()
	srv, err := sandbox.New(opts)
	if err != nil {
		// err starts with "sandbox: ".
		fmt.Fprintf(io.err, "memberflow %v\n", err)
		return exitUsage
	}
	seeded := time.Since(start)
	base, err := srv.Start(addr)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow %v\n", err)
		return exitFail
	}
	printSandboxBanner(io.out, srv, base, opts, seeded)
	if readyFile != "" {
		if err := writeReadyFile(readyFile, base); err != nil {
			fmt.Fprintf(io.err, "memberflow sandbox: --ready-file: %v\n", err)
			srv.Close()
			return exitFail
		}
	}
	<-ctx.Done()
	fmt.Fprintln(io.err, "memberflow sandbox: stopping")
	if err := srv.Close(); err != nil {
		fmt.Fprintf(io.err, "memberflow sandbox: %v\n", err)
		return exitFail
	}
	return exitOK
}

func printSandboxBanner(w io.Writer, srv *sandbox.Server, base string, opts sandbox.Options, seeded time.Duration) {
	fmt.Fprintf(w, "memberflow sandbox at %s (seed %d, %d members, seeded in %s)\n", base, opts.Seed, opts.Members, seeded.Round(time.Millisecond))
	if f := opts.Faults; f.Enabled() {
		fmt.Fprintf(w, "faults: fail %.0f%%, drop %.0f%%, latency %s\n", f.FailRate*100, f.DropRate*100, f.Latency)
	}
	switch rl := opts.RateLimit; {
	case rl == nil:
		fmt.Fprintln(w, "rate limits: as documented")
	case rl.Requests == 0:
		fmt.Fprintln(w, "rate limits: off")
	default:
		fmt.Fprintf(w, "rate limits: %d requests per %s on every service\n", rl.Requests, rl.Per)
	}
	for _, name := range srv.Services() {
		url := srv.URL(name)
		fmt.Fprintf(w, "\n%s  %s\n", name, url)
		if r, ok := sandboxkit.Lookup(name); ok && r.Hints != nil {
			for _, line := range r.Hints(url) {
				fmt.Fprintf(w, "  %s\n", line)
			}
		}
	}
	fmt.Fprintf(w, "\ninspect: curl %s/_sandbox/stats\n", base)
	if names := srv.Services(); len(names) > 0 {
		fmt.Fprintf(w, "mutate:  curl -d '{\"service\":\"%s\",\"kind\":\"...\",\"count\":5}' %s/_sandbox/mutate\n", names[0], base)
		fmt.Fprintf(w, "hooks:   curl -d '{\"service\":\"%s\",\"url\":\"http://127.0.0.1:9000/hooks\"}' %s/_sandbox/webhooks\n", names[0], base)
	}
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
	if f, ok := w.(*os.File); ok {
		f.Sync()
	}
}

// parseSandboxRateLimit reads --rate-limit: "" keeps the documented limits (nil),
// "off" turns limiting off, "N" is N per second, "N/DURATION" N per
// DURATION.
func parseSandboxRateLimit(s string) (*sandboxkit.Limit, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return nil, nil
	case "off", "0":
		return &sandboxkit.Limit{}, nil
	}
	count, per, hasPer := strings.Cut(s, "/")
	n, err := strconv.Atoi(count)
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("%q: want off, N or N/DURATION (e.g. 100/10s), with N a positive whole number", s)
	}
	d := time.Second
	if hasPer {
		if d, err = time.ParseDuration(per); err != nil || d <= 0 {
			return nil, fmt.Errorf("%q: %q is not a positive duration (e.g. 10s, 5m)", s, per)
		}
	}
	return &sandboxkit.Limit{Requests: n, Per: d}, nil
}

// writeReadyFile writes the base URL whole (a rename), so that a process
// waiting for the file never reads half of it.
func writeReadyFile(path, base string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(base+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
