package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

func init() {
	register(&command{
		name:    "runs",
		summary: "list runs and show a run's audit: event, condition, steps",
		usage:   "list [--recipe R] [--status S] [--limit N] [--format text|json] | show ID [--format text|json] | skipped [--recipe R] [--limit N] [--format text|json]",
		help: `"runs list" lists runs, newest first. "runs show ID" prints a run's audit:
its trigger event, the outcome of the recipe's condition with the values it
read, and each step's request, result, error, attempts and timings.

An event the recipe's condition rejects makes no run: it is counted on the
page of events it came with. "runs skipped" lists those pages, newest first:
how many events each skipped and, for a sample of them, the values the
condition read.

Statuses: queued, running, succeeded, skipped, suppressed, dead.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			store := fs.String("store", "memberflow.db", "durable store `path`")
			recipe := fs.String("recipe", "", "only runs of this recipe")
			status := fs.String("status", "", "only runs with this status")
			limit := fs.Int("limit", 100, "at most this many runs")
			format := fs.String("format", "text", "output format: text or json")
			return func(ctx context.Context, args []string, io stdio) int {
				return inspect(ctx, "runs", *store, *format, io, func(s *sqlitestore.Store) error {
					switch {
					case len(args) == 1 && args[0] == "list":
						if *status != "" && !validStatus(*status) {
							return usageError{fmt.Errorf("--status %q: want one of %s", *status, strings.Join(runStatuses, ", "))}
						}
						runs, err := s.ListRuns(ctx, engine.RunFilter{Recipe: *recipe, Status: *status, Limit: *limit})
						if err != nil {
							return err
						}
						return writeRuns(io.out, *format, runs)
					case len(args) == 1 && args[0] == "skipped":
						pages, err := s.ListSkips(ctx, engine.RunFilter{Recipe: *recipe, Limit: *limit})
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

// inspect opens an existing store for the runs and dlq commands and runs
// fn on it.
func inspect(ctx context.Context, cmd, path, format string, io stdio, fn func(*sqlitestore.Store) error) int {
	if format != "text" && format != "json" {
		fmt.Fprintf(io.err, "memberflow %s: --format must be text or json, got %q\n", cmd, format)
		return exitUsage
	}
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(io.err, "memberflow %s: no store at %s (memberflow run creates it; --store names another)\n", cmd, path)
		return exitUsage
	}
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
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
func withVersion(ctx context.Context, s *sqlitestore.Store, d *engine.RunDetail) error {
	hash, err := s.RunVersion(ctx, d.ID)
	if err != nil {
		return err
	}
	if hash != "" {
		if d.Version, err = s.LoadVersion(ctx, d.Recipe, hash); errors.Is(err, engine.ErrNoVersion) {
			d.Version, err = &engine.RecipeVersion{Recipe: d.Recipe, Hash: hash}, nil
		}
		if err != nil {
			return err
		}
	}
	d.PastAttempts, err = s.Attempts(ctx, d.ID)
	return err
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
