package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/internal/bench"
)

// runnerRow is one line of the runner-count table.
type runnerRow struct {
	Store    string        `json:"store"`
	Runners  int           `json:"runners"`
	Members  int64         `json:"members"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	PerSec   float64       `json:"members_per_second"`
	Runner   time.Duration `json:"runner_cpu_ns"`
	Database time.Duration `json:"database_cpu_ns"`
	// PerCPU is members per CPU second of the runners and, for Postgres,
	// the database server (SQLite's work is in the runner's process).
	PerCPU     float64 `json:"members_per_cpu_second"`
	Duplicates int     `json:"duplicates"`
	Dead       int64   `json:"dead"`
	// Requests is what the sandbox received, in all and per member, and
	// ScanPages the pages of the members' scan (the trigger's requests):
	// one scan is one page per 100 members, whatever the runners.
	Requests          int64   `json:"requests"`
	RequestsPerMember float64 `json:"requests_per_member"`
	ScanPages         int64   `json:"scan_pages"`
}

// runRunnerTable is `bench --store postgres://… --runners N`: the backfill
// on SQLite with one runner, then on Postgres with 1 to N runners sharing
// the database, each on the sandbox reset to the same seed.
func runRunnerTable(ctx context.Context, o benchOptions, spec storeSpec, base string, io stdio, log hclog.Logger) int {
	var rows []runnerRow
	type config struct {
		pg      bool
		runners int
	}
	configs := []config{{false, 1}}
	for n := 1; n <= o.runners; n++ {
		configs = append(configs, config{true, n})
	}
	for _, c := range configs {
		if err := resetSandbox(ctx, base); err != nil {
			fmt.Fprintf(io.err, "memberflow bench: %v\n", err)
			return exitFail
		}
		opts := bench.Options{SandboxURL: base, Concurrency: o.concurrency, Logger: log, Runners: c.runners}
		name := "sqlite"
		var drop func()
		var stopSampling func() time.Duration
		if c.pg {
			name = "postgres"
			schema := fmt.Sprintf("memberflow_bench_%d_%d", os.Getpid(), c.runners)
			opts.StoreName = name
			opts.OpenStore = func(ctx context.Context) (engine.Store, error) {
				return pgstore.Open(ctx, spec.target, pgstore.Options{Logger: log, Schema: schema, MaxConns: 4 + o.concurrency, ApplicationName: schema})
			}
			drop = func() { dropSchema(spec.target, schema) }
			stopSampling = sampleBackends(spec.target, schema)
		}
		fmt.Fprintf(io.err, "memberflow bench: %s, %d runner(s) of %d workers...\n", name, c.runners, o.concurrency)
		res, err := bench.Run(ctx, opts)
		var db time.Duration
		if stopSampling != nil {
			db = stopSampling()
		}
		if drop != nil {
			drop()
		}
		if err != nil {
			fmt.Fprintf(io.err, "memberflow %v\n", err)
			return exitFail
		}
		row := runnerRow{Store: name, Runners: c.runners, Members: res.Members, Elapsed: res.Elapsed, PerSec: res.MembersPerSec,
			Runner: res.RunnerCPU, Duplicates: res.Duplicates + res.NewDuplicates, Dead: res.Dead,
			RequestsPerMember: res.RequestsPerMember, ScanPages: res.ScanPages}
		for _, n := range res.Requests {
			row.Requests += n
		}
		cpu := res.RunnerCPU
		if c.pg {
			row.Database = db
			cpu += db
		}
		if cpu > 0 {
			row.PerCPU = float64(res.Members) / cpu.Seconds()
		}
		rows = append(rows, row)
		if err := res.Check(); err != nil {
			fmt.Fprintf(io.err, "memberflow %v\n", err)
			return exitFail
		}
	}
	if o.format == "json" {
		if err := writeJSON(io.out, rows); err != nil {
			return exitFail
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STORE\tRUNNERS\tMEMBERS\tELAPSED\tMEMBERS/S\tRUNNER CPU\tDATABASE CPU\tMEMBERS/CPU-S\tREQUESTS\tREQ/MEMBER\tSCAN PAGES\tDUPLICATES\tDEAD\t")
	for _, r := range rows {
		db := "-"
		if r.Store == "postgres" {
			db = r.Database.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.0f\t%s\t%s\t%.0f\t%d\t%.3f\t%d\t%d\t%d\t\n", r.Store, r.Runners, r.Members, r.Elapsed.Round(100*time.Millisecond),
			r.PerSec, r.Runner.Round(100*time.Millisecond), db, r.PerCPU, r.Requests, r.RequestsPerMember, r.ScanPages, r.Duplicates, r.Dead)
	}
	tw.Flush()
	fmt.Fprintln(io.out, "REQUESTS are what the sandbox received (all runners); SCAN PAGES those of the members' scan, the trigger's polls.")
	fmt.Fprintln(io.out, "MEMBERS/CPU-S counts the runners' CPU and, for Postgres, that of the database sessions serving them (SQLite works inside the runner).")
	return exitOK
}

// resetSandbox seeds the sandbox again with its own options.
func resetSandbox(ctx context.Context, base string) error { return bench.ResetSandbox(ctx, base) }

func dropSchema(dsn, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return
	}
	defer c.Close(ctx)
	c.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
}

// sampleBackends follows the CPU time of the database sessions named
// app (the benchmark's runners' connections; the server's shared writers
// are not counted) until the returned function is called, which gives
// their total. Sessions are sampled every 100 ms, so the last tenth of a
// second of a session that ends is missed.
func sampleBackends(dsn, app string) (stop func() time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan time.Duration, 1)
	go func() {
		seen := map[int]time.Duration{}
		total := func() time.Duration {
			var t time.Duration
			for _, d := range seen {
				t += d
			}
			return t
		}
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			done <- 0
			return
		}
		defer conn.Close(context.Background())
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app)
			if err == nil {
				pids, _ := pgx.CollectRows(rows, pgx.RowTo[int32])
				for _, pid := range pids {
					if cpu, err := bench.ProcCPU(int(pid)); err == nil && cpu > seen[int(pid)] {
						seen[int(pid)] = cpu
					}
				}
			}
			select {
			case <-ctx.Done():
				done <- total()
				return
			case <-t.C:
			}
		}
	}()
	return func() time.Duration { cancel(); return <-done }
}
