package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"
)

// table prints rows of a name and a figure.
type table struct{ *tabwriter.Writer }

func newTable(w io.Writer) table { return table{tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)} }

func (t table) row(name, format string, args ...any) {
	fmt.Fprintf(t, "%s\t"+format+"\n", append([]any{name}, args...)...)
}

// WriteText prints the figures as a table.
func (r *Result) WriteText(w io.Writer) error {
	tw := newTable(w)
	row := tw.row
	row("members processed", "%d (sandbox: %d)", r.Members, r.SandboxMembers)
	row("eligible", "%d", r.Eligible)
	row("certificates issued", "%d (sandbox: %d new)", r.Certificates, r.CredentialsCreated)
	row("members updated", "%d", r.MemberUpdates)
	row("not eligible (skipped)", "%d", r.Skipped)
	row("echoes suppressed", "%d", r.Suppressed)
	row("dead-lettered", "%d", r.Dead)
	row("elapsed", "%s", r.Elapsed.Round(time.Millisecond))
	row("members/s", "%.0f", r.MembersPerSec)
	row("runs/s", "%.0f (%d runs)", r.RunsPerSec, r.Runs)
	row("run latency", "p50 %s, p99 %s", r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))
	row("queue backlog", "%.0f events on average; below %d workers %.0f%% of the time", r.Backlog, r.Concurrency, 100*r.Starved)
	row("peak RSS (runner)", "%.1f MB", float64(r.PeakRSS)/(1<<20))
	if r.SandboxCPU > 0 {
		row("CPU time", "runner %s, sandbox %s (%.0f%% of %d cores)", r.RunnerCPU.Round(100*time.Millisecond), r.SandboxCPU.Round(100*time.Millisecond),
			100*(r.RunnerCPU+r.SandboxCPU).Seconds()/(r.Elapsed.Seconds()*float64(runtime.NumCPU())), runtime.NumCPU())
		row("members per CPU-second", "%.0f (runner and sandbox together)", r.MembersPerCPUSecond)
	} else {
		row("CPU time", "runner %s", r.RunnerCPU.Round(100*time.Millisecond))
	}
	row("sandbox duplicates", "%d certificates; %d new over all services", r.Duplicates, r.NewDuplicates)
	row("concurrency", "%d", r.Concurrency)
	if r.Metrics {
		row("metrics", "on (Prometheus, %d scrapes)", r.Scrapes)
	}
	return tw.Flush()
}

// WriteJSON prints the figures as one JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
