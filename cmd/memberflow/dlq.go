package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/memberflow/memberflow/engine"
)

func init() {
	register(&command{
		name:    "dlq",
		summary: "dead letters: list, show, replay",
		usage:   "list [--recipe R] [--format text|json] | show ID | replay [--latest] ID | replay --all [--latest]",
		help: `A run is dead-lettered when a step fails for good (a permanent error, or
retries spent) or an in-doubt write cannot be settled. "dlq show ID" prints
its context: the event, the failed step's request, the service's response
and the error, with secrets redacted.

"dlq replay" puts runs back in the queue; the next "memberflow run" runs
them from the failed step (steps that succeeded are not run again), with
the recipe version that failed (the store keeps each version that ran);
--latest runs the version loaded now instead. The failed attempt stays in
the audit (memberflow runs show ID). An in-doubt write that failed to
settle is settled again; one whose action has no look-up is sent again:
check the service first.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			store := fs.String("store", "memberflow.db", storeFlagHelp)
			recipe := fs.String("recipe", "", "only dead letters of this recipe")
			format := fs.String("format", "text", "output format: text or json")
			all := fs.Bool("all", false, "with replay: replay every dead letter")
			latest := fs.Bool("latest", false, "with replay: run the loaded recipe version, not the version that failed")
			limit := fs.Int("limit", 100, "at most this many dead letters")
			return func(ctx context.Context, args []string, io stdio) int {
				return inspect(ctx, "dlq", *store, *format, io, func(s engine.Store) error {
					switch {
					case len(args) == 1 && args[0] == "list":
						runs, err := s.ListRuns(ctx, engine.RunFilter{Recipe: *recipe, Status: engine.RunDead, Limit: *limit})
						if err != nil {
							return err
						}
						return writeRuns(io.out, *format, runs)
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
						if d.Status != engine.RunDead {
							return usageError{fmt.Errorf("run %d is %s, not a dead letter (memberflow runs show %d)", id, d.Status, id)}
						}
						return writeRun(io.out, *format, d)
					case len(args) == 1 && args[0] == "replay" && *all:
						var dead []engine.RunInfo
						if *latest {
							var err error
							if dead, err = s.ListRuns(ctx, engine.RunFilter{Status: engine.RunDead, Limit: 1 << 30}); err != nil {
								return err
							}
						}
						n, err := s.ReplayAll(ctx)
						if err != nil {
							return err
						}
						for _, r := range dead {
							if err := unpin(ctx, s, r.ID); err != nil {
								return err
							}
						}
						fmt.Fprintf(io.out, "%d run(s) queued again; memberflow run runs them\n", n)
						return nil
					case len(args) == 2 && args[0] == "replay" && !*all:
						id, err := runID(args[1])
						if err != nil {
							return err
						}
						if err := s.Replay(ctx, id); err != nil {
							if errors.Is(err, engine.ErrNoRun) {
								return err
							}
							return usageError{err}
						}
						// The failed attempt is kept with its version first.
						if *latest {
							if err := unpin(ctx, s, id); err != nil {
								return err
							}
						}
						fmt.Fprintf(io.out, "run %d queued again; memberflow run runs it\n", id)
						return nil
					}
					return usageError{errors.New(`want "list", "show ID", "replay ID" or "replay --all" (memberflow dlq --help)`)}
				})
			}
		},
	})
}

// unpin makes a replayed run run the loaded recipe version (--latest). A
// store that keeps no versions always runs the loaded one.
func unpin(ctx context.Context, s engine.Store, run int64) error {
	if vs, ok := s.(engine.Versions); ok {
		return vs.Unpin(ctx, run)
	}
	return nil
}
