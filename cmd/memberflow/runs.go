package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/memberflow/memberflow/engine"
)

func init() {
	register(&command{
		name:    "runs",
		summary: "list runs and show a run's audit: event, condition, steps",
		usage:   "list [--store PATH|URL] [--recipe R] [--status S] [--subject S] [--since T] [--until T] [--before ID] [--limit N] [--format text|json] | show ID [--format text|json] | skipped [--recipe R] [--limit N] [--format text|json]",
		help: `"runs list" lists runs, newest first. "runs show ID" prints a run's audit:
its trigger event, the outcome of the recipe's condition with the values it
read, and each step's request, result, error, attempts and timings.

An event the recipe's condition rejects makes no run: it is counted on the
page of events it came with. "runs skipped" lists those pages, newest first:
how many events each skipped and, for a sample of them, the values the
condition read.

Statuses: queued, running, succeeded, skipped, suppressed, dead.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			store := fs.String("store", "memberflow.db", storeFlagHelp)
			recipe := fs.String("recipe", "", "only runs of this recipe")
			subject := fs.String("subject", "", "only runs about this subject (e.g. a member id)")
			since := fs.String("since", "", "only runs created at or after this `time` (RFC 3339, or a duration ago such as 2h)")
			until := fs.String("until", "", "only runs created before this `time` (RFC 3339, or a duration ago)")
			before := fs.Int64("before", 0, "only runs with a lower `ID` (the next page: the last ID shown)")
			status := fs.String("status", "", "only runs with this status")
			limit := fs.Int("limit", 100, "at most this many runs")
			format := fs.String("format", "text", "output format: text or json")
			return func(ctx context.Context, args []string, io stdio) int {
				return inspect(ctx, "runs", *store, *format, io, func(s engine.Store) error {
					switch {
					case len(args) == 1 && args[0] == "list":
						if *status != "" && !validStatus(*status) {
							return usageError{fmt.Errorf("--status %q: want one of %s", *status, strings.Join(runStatuses, ", "))}
						}
						f := engine.RunFilter{Recipe: *recipe, Status: *status, Subject: *subject, Before: *before, Limit: *limit}
						var err error
						if f.Since, err = parseWhen("--since", *since); err != nil {
							return err
						}
						if f.Until, err = parseWhen("--until", *until); err != nil {
							return err
						}
						runs, err := s.ListRuns(ctx, f)
						if err != nil {
							return err
						}
						return writeRuns(io.out, *format, runs)
					case len(args) == 1 && args[0] == "skipped":
						sl, ok := s.(engine.SkipLister)
						if !ok {
							return errors.New("this store keeps no skip pages")
						}
						pages, err := sl.ListSkips(ctx, engine.RunFilter{Recipe: *recipe, Limit: *limit})
						if err != nil {
							return err
						}
						return writeSkips(io.out, *format, pages)
					case len(args) == 2 && args[0] == "show":
						id, err := runID(args[1])
						if err != nil {
							return err
						}
						d, err := s.GetRun(ctx, id)
						if err != nil {
							return err
						}
						if err := withVersion(ctx, s, d); err != nil {
							return err
						}
						return writeRun(io.out, *format, d)
					}
					return usageError{errors.New(`want "list", "show ID" or "skipped" (memberflow runs --help)`)}
				})
			}
		},
	})
}

var runStatuses = []string{engine.RunQueued, engine.RunRunning, engine.RunSucceeded, engine.RunSkipped, engine.RunSuppressed, engine.RunDead}

func validStatus(s string) bool {
	for _, v := range runStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ error }

func runID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageError{fmt.Errorf("run ID %q is not a positive number", s)}
	}
	return id, nil
}

// parseWhen reads a --since or --until value: an RFC 3339 time, or a
// duration meaning that long ago.
func parseWhen(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, usageError{fmt.Errorf("%s %q: want an RFC 3339 time (2026-01-31T09:00:00Z) or a duration ago (90m)", flag, v)}
}

// inspect opens an existing store (a SQLite file or Postgres) for the
// runs, dlq, runners and store commands and runs fn on it.
func inspect(ctx context.Context, cmd, store, format string, io stdio, fn func(engine.Store) error) int {
	if format != "text" && format != "json" {
		fmt.Fprintf(io.err, "memberflow %s: --format must be text or json, got %q\n", cmd, format)
		return exitUsage
	}
	spec, err := parseStore(store, nil)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow %s: %v\n", cmd, err)
		return exitUsage
	}
	path := spec.shown
	if !spec.exists() {
		fmt.Fprintf(io.err, "memberflow %s: no store at %s (memberflow run creates it; --store names another)\n", cmd, path)
		return exitUsage
	}
	s, err := spec.open(ctx, 1, hclog.NewNullLogger())
	if err != nil {
		reportStoreError(io, cmd, path, err)
		return exitFail
	}
	defer s.Close()
	if err := fn(s); err != nil {
		reportStoreError(io, cmd, path, err)
		var u usageError
		if errors.As(err, &u) || errors.Is(err, engine.ErrNoRun) {
			return exitUsage
		}
		return exitFail
	}
	return exitOK
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeRuns(w io.Writer, format string, runs []engine.RunInfo) error {
	if format == "json" {
		if runs == nil {
			runs = []engine.RunInfo{}
		}
		return writeJSON(w, runs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECIPE\tSTATUS\tEVENT\tSUBJECT\tATTEMPTS\tCREATED\tERROR")
	for _, r := range runs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Recipe, r.Status, r.EventID, dash(r.Subject), r.Attempts,
			r.Created.Format(time.RFC3339), dash(oneLine(r.Error, 80)))
	}
	return tw.Flush()
}

func writeSkips(w io.Writer, format string, pages []engine.SkipPage) error {
	if format == "json" {
		if pages == nil {
			pages = []engine.SkipPage{}
		}
		return writeJSON(w, pages)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PAGE\tRECIPE\tSKIPPED\tCREATED\tSAMPLE (event: what the condition read)")
	for _, p := range pages {
		sample := make([]string, len(p.Sample))
		for i, e := range p.Sample {
			sample[i] = e.EventID + ": " + string(e.Values)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\n", p.ID, p.Recipe, p.Count, p.Created.Format(time.RFC3339), dash(oneLine(strings.Join(sample, "; "), 160)))
	}
	return tw.Flush()
}

func writeRun(w io.Writer, format string, d *engine.RunDetail) error {
	if format == "json" {
		return writeJSON(w, d)
	}
	fmt.Fprintf(w, "run %d  %s  recipe %s\n", d.ID, d.Status, d.Recipe)
	fmt.Fprintf(w, "event     %s (subject %s)\n", d.EventID, dash(d.Subject))
	fmt.Fprintf(w, "created   %s\n", d.Created.Format(time.RFC3339Nano))
	if d.Finished != nil {
		fmt.Fprintf(w, "finished  %s (%s)\n", d.Finished.Format(time.RFC3339Nano), d.Finished.Sub(d.Created).Round(time.Microsecond))
	}
	fmt.Fprintf(w, "attempts  %d\n", d.Attempts)
	if v := d.Version; v != nil {
		fmt.Fprintf(w, "version   %.12s%s\n", v.Hash, versionWhere(v))
	}
	if d.Error != "" {
		fmt.Fprintf(w, "error     %s\n", d.Error)
	}
	fmt.Fprintf(w, "trigger   %s\n", compactJSON(d.Event))
	if d.Condition != nil {
		fmt.Fprintf(w, "when      %v, reading %s\n", *d.Condition, compactJSON(d.Values))
	}
	for _, s := range d.Steps {
		fmt.Fprintf(w, "step %d %q (%s): %s, %d attempt(s), %s\n", s.Index+1, s.StepID, s.Action, s.Status, s.Attempts, s.Finished.Sub(s.Started).Round(time.Microsecond))
		if len(s.Input) > 0 {
			fmt.Fprintf(w, "  request  %s\n", compactJSON(s.Input))
		}
		if len(s.Output) > 0 {
			label := "result  "
			if s.Status != engine.StepSucceeded {
				label = "response" // what the service answered to the failed call
			}
			fmt.Fprintf(w, "  %s %s\n", label, compactJSON(s.Output))
		}
		if s.Error != "" {
			fmt.Fprintf(w, "  error    %s\n", s.Error)
		}
	}
	writePastAttempts(w, d)
	return nil
}

func writePastAttempts(w io.Writer, d *engine.RunDetail) {
	for _, a := range d.PastAttempts {
		fmt.Fprintf(w, "attempt %d: %s, version %.12s, %s\n", a.N, a.Status, dash(a.Version), a.Finished.Format(time.RFC3339Nano))
		if a.Error != "" {
			fmt.Fprintf(w, "  error    %s\n", a.Error)
		}
		for _, s := range a.Steps {
			fmt.Fprintf(w, "  step %d %q (%s): %s\n", s.Index+1, s.StepID, s.Action, s.Status)
		}
	}
}

// versionWhere says where a recipe version came from: the file and its git
// revision, when known.
func versionWhere(v *engine.RecipeVersion) string {
	var parts []string
	if v.File != "" {
		parts = append(parts, v.File)
	}
	if v.Revision != "" {
		parts = append(parts, "git "+v.Revision)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// withVersion adds what a Versions store knows of a run: the recipe
// version it last ran with and its earlier attempts.
func withVersion(ctx context.Context, store engine.Store, d *engine.RunDetail) error {
	return engine.AddHistory(ctx, store, d)
}

func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "-"
	}
	return string(raw)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
