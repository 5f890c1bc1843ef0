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

// The console's read queries (internal/console/stats), one query each,
// in the shapes of engine/sqlitestore/console.go; the suite
// internal/console/stats/statstest checks both stores alike.

var (
	_ stats.RunPager     = (*Store)(nil)
	_ stats.Activity     = (*Store)(nil)
	_ stats.RecipeLister = (*Store)(nil)
)

// RunRecipes lists the recipes with runs: one index seek per recipe
// (runs_by_recipe), not a scan of the runs.
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
	var where []string
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if q.Recipe != "" {
		arg("r.recipe = $%d", q.Recipe)
	}
	switch q.Status {
	case "":
	case engine.RunQueued, engine.RunRunning, engine.RunSucceeded, engine.RunSkipped, engine.RunSuppressed, engine.RunDead:
		where = append(where, "r.status = '"+q.Status+"'") // a literal: the partial indexes apply
	default:
		return nil, fmt.Errorf("paging runs: unknown status %q", q.Status)
	}
	if q.Subject != "" {
		arg("e.subject = $%d", q.Subject)
	}
	if q.Before > 0 {
		arg("r.id < $%d", q.Before)
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	sqlText := `SELECT ` + runColumns + ` FROM runs r JOIN events e ON e.id = r.event`
	if len(where) > 0 {
		sqlText += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, q.Limit)
	sqlText += fmt.Sprintf(" ORDER BY r.id DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, sqlText, args...)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("paging runs: %w", err)
	}
	return out, nil
}

// RunActivity counts runs per recipe, status and time bucket.
func (s *Store) RunActivity(ctx context.Context, since time.Time, bucket time.Duration) ([]stats.RunBucket, error) {
	if bucket <= 0 {
		return nil, fmt.Errorf("run activity: bucket must be positive, got %s", bucket)
	}
	from := since.UnixNano()
	first, err := s.firstRunSince(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("run activity: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT recipe, status, (created - $1) / $2 AS b, count(*)
		FROM runs WHERE id >= $3 AND created >= $1 GROUP BY recipe, status, b ORDER BY b, recipe, status`, from, int64(bucket), first)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("run activity: %w", err)
	}
	return out, nil
}

// StepLatency summarises step durations per action.
func (s *Store) StepLatency(ctx context.Context, since time.Time) ([]stats.Latency, error) {
	first, err := s.firstRunSince(ctx, since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("step latency: %w", err)
	}
	// A busy period is sampled: the steps of its newest runs.
	var last int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM runs`).Scan(&last); err != nil {
		return nil, fmt.Errorf("step latency: %w", err)
	}
	first = max(first, last-stats.LatencySample+1)
	// sum() of BIGINT is NUMERIC in Postgres: cast back.
	rows, err := s.pool.Query(ctx, `SELECT action, `+stats.LatencyBucketSQL()+` AS k, count(*), sum(finished - started)::bigint, max(finished - started), sum(attempts - 1)::bigint
		FROM steps WHERE run >= $1 AND started >= $2 AND finished IS NOT NULL AND finished >= started AND status != 'skipped'
		GROUP BY action, k ORDER BY action, k`, first, since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("step latency: %w", err)
	}
	defer rows.Close()
	var out []stats.Latency
	var total int64
	closeAction := func() {
		if len(out) > 0 {
			l := &out[len(out)-1]
			l.Mean = time.Duration(total / int64(l.Count))
		}
	}
	for rows.Next() {
		var action string
		var k, n int
		var sum, longest, retries int64
		if err := rows.Scan(&action, &k, &n, &sum, &longest, &retries); err != nil {
			return nil, fmt.Errorf("step latency: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Action != action {
			closeAction()
			out = append(out, stats.Latency{Action: action, Buckets: make([]int, len(stats.LatencyBounds)+1)})
			total = 0
		}
		l := &out[len(out)-1]
		l.Count += n
		l.Buckets[k] += n
		l.Attempts += int(retries)
		total += sum
		l.Max = max(l.Max, time.Duration(longest))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("step latency: %w", err)
	}
	closeAction()
	return out, nil
}

// firstRunSince finds, by binary search over the run ids, the first run
// created at or after from: runs are numbered in the order they are
// created, so the aggregates read only the runs of their period (the
// runs table has no index on created). Runs created in one transaction
// by several runners may interleave by a few ids; a run near the
// period's start may then be left out of it.
func (s *Store) firstRunSince(ctx context.Context, from int64) (int64, error) {
	var lo, hi int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM runs`).Scan(&lo, &hi); err != nil {
		return 0, err
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		var created int64
		if err := s.pool.QueryRow(ctx, `SELECT created FROM runs WHERE id >= $1 ORDER BY id LIMIT 1`, mid).Scan(&created); err != nil {
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
