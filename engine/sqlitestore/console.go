package sqlitestore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/console/stats"
)

// The console's read queries (internal/console/stats), one query each.
// To port to another store: the same three methods.

// subjectIndexMigration lets the runs of one subject be found without
// reading every run: its events by subject, their runs by event (the
// Postgres store had both from its first migration).
const subjectIndexMigration = `CREATE INDEX events_subject ON events(subject);
CREATE INDEX runs_by_event ON runs(event);`

var (
	_ stats.RunPager     = (*Store)(nil)
	_ stats.Activity     = (*Store)(nil)
	_ stats.RecipeLister = (*Store)(nil)
)

// RunRecipes lists the recipes with runs: one index seek per recipe
// (runs_by_recipe), not a scan of the runs.
func (s *Store) RunRecipes(ctx context.Context) ([]string, error) {
	if err := s.writeOutPages(ctx); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `WITH RECURSIVE r(name) AS (
		SELECT min(recipe) FROM runs
		UNION ALL
		SELECT (SELECT min(recipe) FROM runs WHERE recipe > r.name) FROM r WHERE r.name IS NOT NULL)
		SELECT name FROM r WHERE name IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("listing recipes: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("listing recipes: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// PageRuns lists a page of runs, newest first, keyset-paged by ID.
func (s *Store) PageRuns(ctx context.Context, q stats.RunQuery) ([]engine.RunInfo, error) {
	if err := s.writeOutPages(ctx); err != nil {
		return nil, err
	}
	sqlText, args, err := pageRunsQuery(q)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, fmt.Errorf("paging runs: %w", err)
	}
	defer rows.Close()
	var out []engine.RunInfo
	for rows.Next() {
		ri, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("paging runs: %w", err)
		}
		out = append(out, *ri)
	}
	return out, rows.Err()
}

// pageRunsQuery is PageRuns's SQL.
func pageRunsQuery(q stats.RunQuery) (string, []any, error) {
	var where []string
	var args []any
	if q.Recipe != "" {
		where = append(where, "r.recipe = ?")
		args = append(args, q.Recipe)
	}
	switch q.Status {
	case "":
	case engine.RunQueued, engine.RunRunning, engine.RunSucceeded, engine.RunSkipped, engine.RunSuppressed, engine.RunDead:
		where = append(where, "r.status = '"+q.Status+"'") // a literal: the partial indexes apply
	default:
		return "", nil, fmt.Errorf("paging runs: unknown status %q", q.Status)
	}
	if q.Subject != "" {
		where = append(where, "e.subject = ?")
		args = append(args, q.Subject)
	}
	if q.Before > 0 {
		where = append(where, "r.id < ?")
		args = append(args, q.Before)
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	from := ` FROM runs r JOIN events e ON e.id = r.event`
	if q.Subject != "" {
		// A subject has few runs: read them through its events
		// (events_subject, runs_by_event) and sort them, rather than
		// walk a recipe's or all runs newest first looking for its own.
		// CROSS JOIN fixes that order of the tables in SQLite.
		from = ` FROM events e CROSS JOIN runs r ON r.event = e.id`
	}
	sqlText := `SELECT ` + runColumns + from
	if len(where) > 0 {
		sqlText += " WHERE " + strings.Join(where, " AND ")
	}
	sqlText += " ORDER BY r.id DESC LIMIT ?"
	return sqlText, append(args, q.Limit), nil
}

// RunActivity counts runs per recipe, status and time bucket.
func (s *Store) RunActivity(ctx context.Context, since time.Time, bucket time.Duration) ([]stats.RunBucket, error) {
	if err := s.writeOutPages(ctx); err != nil {
		return nil, err
	}
	if bucket <= 0 {
		return nil, fmt.Errorf("run activity: bucket must be positive, got %s", bucket)
	}
	from := since.UnixNano()
	first, err := s.firstRunSince(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("run activity: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT recipe, status, (created - ?) / ? AS b, count(*)
		FROM runs WHERE id >= ? AND created >= ? GROUP BY recipe, status, b ORDER BY b, recipe, status`, from, int64(bucket), first, from)
	if err != nil {
		return nil, fmt.Errorf("run activity: %w", err)
	}
	defer rows.Close()
	var out []stats.RunBucket
	for rows.Next() {
		var b stats.RunBucket
		var n int64
		if err := rows.Scan(&b.Recipe, &b.Status, &n, &b.Count); err != nil {
			return nil, fmt.Errorf("run activity: %w", err)
		}
		b.Start = since.Add(time.Duration(n) * bucket).UTC()
		out = append(out, b)
	}
	return out, rows.Err()
}

// StepLatency summarises step durations per action.
func (s *Store) StepLatency(ctx context.Context, since time.Time) ([]stats.Latency, error) {
	if err := s.writeOutPages(ctx); err != nil {
		return nil, err
	}
	first, err := s.firstRunSince(ctx, since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("step latency: %w", err)
	}
	// A busy period is sampled: the steps of its newest runs.
	var last int64
	if err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM runs`).Scan(&last); err != nil {
		return nil, fmt.Errorf("step latency: %w", err)
	}
	first = max(first, last-stats.LatencySample+1)
	rows, err := s.r.QueryContext(ctx, `SELECT action, `+stats.LatencyBucketSQL()+` AS k, count(*), sum(finished - started), max(finished - started), sum(attempts - 1)
		FROM steps WHERE run >= ? AND started >= ? AND finished IS NOT NULL AND finished >= started AND status != 'skipped'
		GROUP BY action, k ORDER BY action, k`, first, since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("step latency: %w", err)
	}
	defer rows.Close()
	var out []stats.Latency
	var total int64
	for rows.Next() {
		var action string
		var k, n, retries int
		var sum, max int64
		if err := rows.Scan(&action, &k, &n, &sum, &max, &retries); err != nil {
			return nil, fmt.Errorf("step latency: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Action != action {
			if len(out) > 0 {
				l := &out[len(out)-1]
				l.Mean = time.Duration(total / int64(l.Count))
			}
			out = append(out, stats.Latency{Action: action, Buckets: make([]int, len(stats.LatencyBounds)+1)})
			total = 0
		}
		l := &out[len(out)-1]
		l.Count += n
		l.Buckets[k] += n
		l.Attempts += retries
		total += sum
		if d := time.Duration(max); d > l.Max {
			l.Max = d
		}
	}
	if len(out) > 0 {
		l := &out[len(out)-1]
		l.Mean = time.Duration(total / int64(l.Count))
	}
	return out, rows.Err()
}

// firstRunSince finds, by binary search over the run ids, the first run
// created at or after from: runs are numbered in the order they are
// created, so the aggregates read only the runs of their period (the
// runs table has no index on created). After a clock step back, a few
// runs near the period's start may be left out of it.
func (s *Store) firstRunSince(ctx context.Context, from int64) (int64, error) {
	var lo, hi int64
	if err := s.r.QueryRowContext(ctx, `SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM runs`).Scan(&lo, &hi); err != nil {
		return 0, err
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		var created int64
		if err := s.r.QueryRowContext(ctx, `SELECT created FROM runs WHERE id >= ? ORDER BY id LIMIT 1`, mid).Scan(&created); err != nil {
			return 0, err
		}
		if created >= from {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}
