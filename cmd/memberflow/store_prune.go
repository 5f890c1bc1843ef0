package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// prune is `memberflow store prune`.
func prune(ctx context.Context, s engine.Pruner, olderThan string, vacuum bool, format string, io stdio) error {
	age, err := parseAge(olderThan)
	if err != nil {
		return usageError{fmt.Errorf("--older-than: %w", err)}
	}
	res, err := s.Prune(ctx, engine.Prune{Before: time.Now().Add(-age), Vacuum: vacuum})
	if err != nil {
		return err
	}
	if format == "json" {
		return writeJSON(io.out, res)
	}
	tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "runs removed\t%d\n", res.Runs)
	fmt.Fprintf(tw, "journal steps removed\t%d\n", res.Steps)
	fmt.Fprintf(tw, "events cleared (IDs kept)\t%d\n", res.Events)
	fmt.Fprintf(tw, "skip pages removed\t%d\n", res.SkipPages)
	note := ""
	if !vacuum && res.Runs+res.Steps+res.Events+res.SkipPages > 0 {
		note = " (the store reuses the space freed; --vacuum gives it back to the disk)"
	}
	fmt.Fprintf(tw, "store size\t%s → %s%s\n", megabytes(res.BytesBefore), megabytes(res.BytesAfter), note)
	return tw.Flush()
}

// parseAge reads a duration, with d for days.
func parseAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("required (30d, 12h, 90m)")
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n float64
		n, err = strconv.ParseFloat(days, 64)
		d = time.Duration(n * float64(24*time.Hour))
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not an age such as 30d, 12h or 90m", s)
	}
	return d, nil
}

func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

// backup is `memberflow store backup`: a consistent copy of a SQLite
// store (VACUUM INTO reads one snapshot, the write-ahead log included),
// taken while runners write.
func backup(ctx context.Context, s engine.Store, to string, io stdio) error {
	if to == "" {
		return usageError{errors.New("backup: --to FILE names the copy (a new file)")}
	}
	snap, ok := s.(engine.Snapshotter)
	if !ok {
		return errors.New("backup: this store is not a file: back up a Postgres store with the database's own tools (pg_dump, replicas)")
	}
	if _, err := os.Stat(to); err == nil {
		return fmt.Errorf("backup: %s exists: give --to a new file", to)
	}
	if err := snap.Snapshot(ctx, to); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	st, err := os.Stat(to)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(io.out, "backed up to %s (%s): to restore it, stop every runner of the store, delete the store's -wal and -shm files, and put the copy in its place\n", to, megabytes(st.Size()))
	return nil
}

// integrityChecker is a store that can check itself whole (SQLite).
type integrityChecker interface {
	IntegrityCheck(ctx context.Context, limit int) ([]string, error)
}

// checkStore is `memberflow store check`.
func checkStore(ctx context.Context, s engine.Store, io stdio) error {
	c, ok := s.(integrityChecker)
	if !ok {
		return errors.New("check: this store is not a file: check a Postgres database with its own tools (pg_amcheck)")
	}
	problems, err := c.IntegrityCheck(ctx, 20)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if len(problems) == 0 {
		fmt.Fprintln(io.out, "ok: every table and index checked")
		return nil
	}
	for _, p := range problems {
		fmt.Fprintln(io.out, p)
	}
	return fmt.Errorf("check: the store is damaged (%d problem(s) above, at most 20 shown): stop its runners, delete its -wal and -shm files and restore a good copy (docs/deploy.md, \"Backups\")", len(problems))
}
