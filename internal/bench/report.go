package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
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
	row("requests per member", "%s", requestsText(r.RequestsPerMember, r.Requests, r.Members))
	for _, rr := range r.Recipes {
		row("recipe requests", "%s: %.3f per event (%d requests over %d events, as the engine counted them)", rr.Recipe, rr.RequestsPerEvent, rr.Requests, rr.Events)
	}
	if c := r.Ceiling; c != nil {
		cpu := "CPU " + c.CPU.Round(100*time.Millisecond).String()
		if c.SandboxCPU > 0 {
			cpu += ", sandbox " + c.SandboxCPU.Round(100*time.Millisecond).String()
		}
		row("ceiling (minimal client)", "%.0f members/s in %s: the engine's %d requests replayed on the sandbox reset, %d at once; %s", c.MembersPerSec, c.Elapsed.Round(time.Millisecond),
			c.Replayed, r.Concurrency, cpu)
		row("ceiling requests per member", "%s", requestsText(c.RequestsPerMember, c.Requests, c.Members))
		row("engine / ceiling", "%.0f%% of the ceiling's members/s (issue 14's target: at least 75%%)", 100*r.CeilingShare)
		if r.Members > 0 && c.Members > 0 {
			row("client CPU per member", "engine %s, ceiling %s (this process only; steadier than members/s on a busy machine)",
				(r.RunnerCPU / time.Duration(r.Members)).Round(time.Microsecond), (c.CPU / time.Duration(c.Members)).Round(time.Microsecond))
		}
	}
	row("run latency", "p50 %s, p99 %s", r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))
	row("queue backlog", "%.0f events on average; below %d workers %.0f%% of the time", r.Backlog, r.Concurrency, 100*r.Starved)
	row("peak RSS (runner)", "%.1f MB", float64(r.PeakRSS)/(1<<20))
	if r.Writer != nil {
		row("store writer", "%s", r.Writer)
	}
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

// requestsText is requests per member, in all and per service.
func requestsText(perMember float64, requests map[string]int64, members int64) string {
	byService := map[string]int64{}
	var total int64
	for k, n := range requests {
		svc, _, _ := strings.Cut(k, " ")
		byService[svc] += n
		total += n
	}
	parts := []string{}
	for _, svc := range slices.Sorted(maps.Keys(byService)) {
		parts = append(parts, fmt.Sprintf("%s %.3f", svc, float64(byService[svc])/float64(max(members, 1))))
	}
	return fmt.Sprintf("%.3f (%s; %d requests)", perMember, strings.Join(parts, ", "), total)
}

// WriteJSON prints the figures as one JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
