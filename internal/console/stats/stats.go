// Package stats declares the read queries the console asks of a store
// beyond engine.Inspector. They are optional: a store that implements
// them answers in one query each; for one that does not, the console
// falls back on engine.Inspector (slower on large stores). Both stores
// implement them (engine/sqlitestore/console.go, engine/pgstore/console.go).
package stats

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// RunQuery selects a page of runs, newest first; zero fields match all.
type RunQuery struct {
	Recipe  string
	Status  string
	Subject string
	// Before keyset-pages: only runs with a smaller ID.
	Before int64
	Limit  int
}

// RunPager lists runs by page.
type RunPager interface {
	PageRuns(ctx context.Context, q RunQuery) ([]engine.RunInfo, error)
}

// RunBucket counts one recipe's runs of one status created in one time
// bucket.
type RunBucket struct {
	Recipe string
	Status string
	Start  time.Time
	Count  int
}

// Latency is one action's step durations: how many, the mean, the
// longest, and counts per upper bound of LatencyBounds (the last counts
// the rest).
type Latency struct {
	Action   string
	Count    int
	Mean     time.Duration
	Max      time.Duration
	Buckets  []int
	Attempts int // attempts beyond the first, summed
}

// LatencySample bounds the runs whose steps StepLatency reads: enough
// for the quantiles, and the query's cost stays bounded.
const LatencySample = 20000

// LatencyBounds are the upper bounds of Latency.Buckets.
var LatencyBounds = []time.Duration{time.Millisecond, 5 * time.Millisecond, 25 * time.Millisecond, 100 * time.Millisecond,
	500 * time.Millisecond, 2 * time.Second, 10 * time.Second}

// LatencyBucketSQL is the SQL expression (a CASE, the same in SQLite and
// Postgres) that gives a step's index in LatencyBounds from its finished
// and started columns, in nanoseconds; len(LatencyBounds) above the last.
func LatencyBucketSQL() string {
	var b strings.Builder
	b.WriteString("CASE")
	for i, bound := range LatencyBounds {
		fmt.Fprintf(&b, " WHEN finished - started <= %d THEN %d", int64(bound), i)
	}
	fmt.Fprintf(&b, " ELSE %d END", len(LatencyBounds))
	return b.String()
}

// Quantile estimates a quantile from the buckets (the bucket's upper
// bound; the maximum for the last).
func (l Latency) Quantile(q float64) time.Duration {
	if l.Count == 0 {
		return 0
	}
	want := int(float64(l.Count)*q + 0.5)
	seen := 0
	for i, n := range l.Buckets {
		seen += n
		if seen >= want && n > 0 {
			if i < len(LatencyBounds) {
				return min(LatencyBounds[i], l.Max)
			}
			return l.Max
		}
	}
	return l.Max
}

// Activity answers the console's aggregate queries.
type Activity interface {
	// RunActivity counts runs created since, per recipe, status and
	// bucket (bucket starts aligned to since).
	RunActivity(ctx context.Context, since time.Time, bucket time.Duration) ([]RunBucket, error)
	// StepLatency summarises the durations of steps started since, per
	// action; in a busy period, of the steps of its newest LatencySample
	// runs.
	StepLatency(ctx context.Context, since time.Time) ([]Latency, error)
}

// RecipeLister names the recipes that have runs, for the filters.
type RecipeLister interface {
	RunRecipes(ctx context.Context) ([]string, error)
}
