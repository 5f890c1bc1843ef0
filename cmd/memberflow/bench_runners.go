package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
		if c.pg {
			name = "postgres"
			schema := fmt.Sprintf("memberflow_bench_%d_%d", os.Getpid(), c.runners)
			opts.StoreName = name
			opts.OpenStore = func(ctx context.Context) (engine.Store, error) {
				return pgstore.Open(ctx, spec.target, pgstore.Options{Logger: log, Schema: schema, MaxConns: 4 + 2*o.concurrency})
			}
			drop = func() { dropSchema(spec.target, schema) }
		}
		fmt.Fprintf(io.err, "memberflow bench: %s, %d runner(s) of %d workers...\n", name, c.runners, o.concurrency)
		db0 := postgresCPU()
		res, err := bench.Run(ctx, opts)
		db := postgresCPU() - db0
		if drop != nil {
			drop()
		}
		if err != nil {
			fmt.Fprintf(io.err, "memberflow %v\n", err)
			return exitFail
		}
		row := runnerRow{Store: name, Runners: c.runners, Members: res.Members, Elapsed: res.Elapsed, PerSec: res.MembersPerSec,
			Runner: res.RunnerCPU, Duplicates: res.Duplicates + res.NewDuplicates, Dead: res.Dead}
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
	fmt.Fprintln(tw, "STORE\tRUNNERS\tMEMBERS\tELAPSED\tMEMBERS/S\tRUNNER CPU\tDATABASE CPU\tMEMBERS/CPU-S\tDUPLICATES\tDEAD\t")
	for _, r := range rows {
		db := "-"
		if r.Store == "postgres" {
			db = r.Database.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.0f\t%s\t%s\t%.0f\t%d\t%d\t\n", r.Store, r.Runners, r.Members, r.Elapsed.Round(100*time.Millisecond),
			r.PerSec, r.Runner.Round(100*time.Millisecond), db, r.PerCPU, r.Duplicates, r.Dead)
	}
	tw.Flush()
	fmt.Fprintln(io.out, "MEMBERS/CPU-S counts the runners' CPU and, for Postgres, the database server's (SQLite works inside the runner).")
	return exitOK
}

// resetSandbox seeds the sandbox again with its own options.
func resetSandbox(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/_sandbox/reset", nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("resetting the sandbox: %w", err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("resetting the sandbox: HTTP %d", res.StatusCode)
	}
	return nil
}

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

// postgresCPU adds up the CPU time of this machine's postgres processes
// (server, backends, writers): the database's share of a benchmark when it
// runs on the same machine. 0 when there is no /proc.
func postgresCPU() time.Duration {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var total time.Duration
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		if cpu, err := bench.ProcCPU(pid); err == nil {
			total += cpu
		}
	}
	return total
}
