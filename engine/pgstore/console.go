package pgstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/console/stats"
)

// The console's read queries (internal/console/stats), as in sqlitestore.

var (
	_ stats.RunPager     = (*Store)(nil)
	_ stats.Activity     = (*Store)(nil)
	_ stats.RecipeLister = (*Store)(nil)
)

// RunRecipes lists the recipes with runs, skipping through the recipe
// index rather than scanning the runs.
func (s *Store) RunRecipes(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE r(name) AS (
		SELECT min(recipe) FROM runs
		UNION ALL
		SELECT (SELECT min(recipe) FROM runs WHERE recipe > r.name) FROM r WHERE r.name IS NOT NULL)
		SELECT name FROM r WHERE name IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("listing recipes: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing recipes: %w", err)
	}
	return names, nil
}

// PageRuns lists a page of runs, newest first, keyset-paged by ID.
func (s *Store) PageRuns(ctx context.Context, q stats.RunQuery) ([]engine.RunInfo, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	runs, err := s.ListRuns(ctx, engine.RunFilter{Recipe: q.Recipe, Status: q.Status, Subject: q.Subject, Before: q.Before, Limit: q.Limit})
	if err != nil {
		return nil, fmt.Errorf("paging runs: %w", err)
	}
	return runs, nil
}

// RunActivity counts runs per recipe, status and time bucket.
func (s *Store) RunActivity(ctx context.Context, since time.Time, bucket time.Duration) ([]stats.RunBucket, error) {
	if bucket <= 0 {
		return nil, fmt.Errorf("run activity: bucket must be positive, got %s", bucket)
	}
	from := since.UnixNano()
	rows, err := s.pool.Query(ctx, `SELECT recipe, status, (created - $1) / $2 AS b, count(*)
		FROM runs WHERE created >= $1 GROUP BY recipe, status, b ORDER BY b, recipe, status`, from, int64(bucket))
	if err != nil {
		return nil, fmt.Errorf("run activity: %w", err)
	}
	defer rows.Close()
	var out []stats.RunBucket
	for rows.Next() {
		var b stats.RunBucket
		var n, count int64
		if err := rows.Scan(&b.Recipe, &b.Status, &n, &count); err != nil {
			return nil, fmt.Errorf("run activity: %w", err)
		}
		b.Count = int(count)
		b.Start = since.Add(time.Duration(n) * bucket).UTC()
		out = append(out, b)
	}
	return out, rows.Err()
}

// StepLatency summarises step durations per action, over the steps of
// the newest stats.LatencySample runs of the period.
func (s *Store) StepLatency(ctx context.Context, since time.Time) ([]stats.Latency, error) {
	var cases strings.Builder
	cases.WriteString("CASE")
	for i, b := range stats.LatencyBounds {
		fmt.Fprintf(&cases, " WHEN finished - started <= %d THEN %d", int64(b), i)
	}
	fmt.Fprintf(&cases, " ELSE %d END", len(stats.LatencyBounds))
	var last int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM runs`).Scan(&last); err != nil {
		return nil, fmt.Errorf("step latency: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT action, `+cases.String()+` AS k, count(*), sum(finished - started), max(finished - started), sum(attempts - 1)
		FROM steps WHERE run >= $1 AND started >= $2 AND finished IS NOT NULL AND finished >= started AND status != 'skipped'
		GROUP BY action, k ORDER BY action, k`, last-stats.LatencySample+1, since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("step latency: %w", err)
	}
	defer rows.Close()
	var out []stats.Latency
	var total int64
	for rows.Next() {
		var action string
		var k int32
		var n, sum, max, retries int64
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
		l.Count += int(n)
		l.Buckets[k] += int(n)
		l.Attempts += int(retries)
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
