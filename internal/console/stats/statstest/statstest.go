// Package statstest checks a store's console queries (the stats
// interfaces) against what was written through engine.Store, so that
// every store that implements them answers alike. A store's test calls
// Run:
//
//	func TestConsoleQueries(t *testing.T) {
//		statstest.Run(t, func(t *testing.T) statstest.Store { ... })
//	}
//
// open returns a new, empty store for the test t, closed by open's own
// t.Cleanup.
package statstest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/console/stats"
)

// Store is what the suite reads and writes.
type Store interface {
	engine.Store
	stats.RunPager
	stats.Activity
	stats.RecipeLister
}

// Run writes 30 runs of three recipes, every fifth dead, two steps each,
// and checks each query against them.
func Run(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	s := open(t)
	before := time.Now().Add(-time.Second)
	recipes := []string{"c-recipe", "a-recipe", "b-recipe"}
	for i := 0; i < 30; i++ {
		r := recipes[i%3]
		if _, err := s.Advance(ctx, r, engine.Advance{Events: []engine.NewEvent{{ID: fmt.Sprint(i), Subject: fmt.Sprintf("user/%d", i%4), Connector: "x", Data: json.RawMessage(`{}`)}}}); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := s.Claim(ctx, engine.ClaimRequest{Owner: "t", Recipes: recipes, Limit: 100, Now: time.Now(), Lease: time.Minute})
	if err != nil || len(claimed) != 30 {
		t.Fatalf("claimed %d: %v", len(claimed), err)
	}
	// Run IDs are the store's: the dead ones and their subjects are
	// remembered as written, not derived from the IDs.
	deadOf := map[string]int{}
	first := claimed[0].ID
	for _, c := range claimed {
		t0 := time.Now()
		status := engine.RunSucceeded
		if (c.ID-first)%5 == 0 {
			status = engine.RunDead
			deadOf[c.Subject]++
		}
		steps := []engine.StepRecord{
			{RunID: c.ID, Index: 0, StepID: "a", Action: "x.fast", Status: engine.StepSucceeded, Attempts: 1, Started: t0, Finished: t0.Add(500 * time.Microsecond)},
			{RunID: c.ID, Index: 1, StepID: "b", Action: "x.slow", Status: engine.StepSucceeded, Attempts: 2, Started: t0, Finished: t0.Add(300 * time.Millisecond)},
		}
		if err := s.Record(ctx, c.Lease(), steps, &engine.Completion{RunID: c.ID, Status: status, Finished: t0}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("RunRecipes", func(t *testing.T) {
		names, err := s.RunRecipes(ctx)
		if err != nil || !slices.Equal(names, []string{"a-recipe", "b-recipe", "c-recipe"}) {
			t.Errorf("RunRecipes: %v %v", names, err)
		}
	})

	t.Run("RunActivity", func(t *testing.T) {
		buckets, err := s.RunActivity(ctx, before, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		perRecipe := map[string]int{}
		for _, b := range buckets {
			counts[b.Status] += b.Count
			perRecipe[b.Recipe] += b.Count
			if !b.Start.Equal(before) || b.Start.Location() != time.UTC {
				t.Errorf("bucket starts at %s, want %s", b.Start, before.UTC())
			}
		}
		if counts[engine.RunSucceeded] != 24 || counts[engine.RunDead] != 6 {
			t.Errorf("RunActivity counts %v", counts)
		}
		for _, r := range recipes {
			if perRecipe[r] != 10 {
				t.Errorf("RunActivity counts %d runs of %s, want 10", perRecipe[r], r)
			}
		}
		// Buckets of a second split the runs by their creation time.
		fine, err := s.RunActivity(ctx, before, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, b := range fine {
			total += b.Count
			if b.Start.Before(before) || b.Start.Sub(before)%time.Second != 0 {
				t.Errorf("a bucket of a second starts at %s (since %s)", b.Start, before)
			}
		}
		if total != 30 {
			t.Errorf("buckets of a second count %d runs, want 30", total)
		}
		if later, err := s.RunActivity(ctx, time.Now().Add(time.Hour), time.Minute); err != nil || len(later) != 0 {
			t.Errorf("runs counted in the future: %v %v", later, err)
		}
		if _, err := s.RunActivity(ctx, before, 0); err == nil {
			t.Error("a zero bucket is accepted")
		}
	})

	t.Run("StepLatency", func(t *testing.T) {
		lat, err := s.StepLatency(ctx, before)
		if err != nil || len(lat) != 2 {
			t.Fatalf("StepLatency: %+v %v", lat, err)
		}
		fast, slow := lat[0], lat[1]
		if fast.Action != "x.fast" || fast.Count != 30 || fast.Quantile(0.5) != 500*time.Microsecond || fast.Attempts != 0 || fast.Mean != 500*time.Microsecond {
			t.Errorf("fast: %+v p50 %s", fast, fast.Quantile(0.5))
		}
		if slow.Action != "x.slow" || slow.Count != 30 || slow.Quantile(0.95) != 300*time.Millisecond || slow.Attempts != 30 || slow.Mean != 300*time.Millisecond || slow.Max != 300*time.Millisecond {
			t.Errorf("slow: %+v p95 %s", slow, slow.Quantile(0.95))
		}
		if len(slow.Buckets) != len(stats.LatencyBounds)+1 || slow.Buckets[4] != 30 {
			t.Errorf("slow buckets %v: want all 30 under %s", slow.Buckets, stats.LatencyBounds[4])
		}
		if later, err := s.StepLatency(ctx, time.Now().Add(time.Hour)); err != nil || len(later) != 0 {
			t.Errorf("steps counted in the future: %v %v", later, err)
		}
	})

	t.Run("PageRuns", func(t *testing.T) {
		// Keyset paging visits every run once, newest first.
		var seen []int64
		var before int64
		for {
			page, err := s.PageRuns(ctx, stats.RunQuery{Before: before, Limit: 7})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				seen = append(seen, r.ID)
			}
			if len(page) < 7 {
				break
			}
			before = page[len(page)-1].ID
		}
		if len(seen) != 30 || !slices.IsSortedFunc(seen, func(a, b int64) int { return int(b - a) }) {
			t.Errorf("paging saw %v", seen)
		}
		for _, subject := range []string{"user/0", "user/1", "user/2", "user/3"} {
			dead, err := s.PageRuns(ctx, stats.RunQuery{Status: engine.RunDead, Subject: subject})
			if err != nil {
				t.Fatal(err)
			}
			if len(dead) != deadOf[subject] {
				t.Errorf("dead runs of %s: %d, want %d", subject, len(dead), deadOf[subject])
			}
			for _, r := range dead {
				if r.Status != engine.RunDead || r.Subject != subject {
					t.Errorf("filtered page has %+v", r)
				}
			}
		}
		all, err := s.PageRuns(ctx, stats.RunQuery{Subject: "user/1", Limit: 100})
		if err != nil || len(all) != 8 {
			t.Errorf("runs of user/1: %d, want 8: %v", len(all), err)
		}
		if byRecipe, err := s.PageRuns(ctx, stats.RunQuery{Recipe: "b-recipe", Limit: 100}); err != nil || len(byRecipe) != 10 {
			t.Errorf("runs of b-recipe: %d, want 10: %v", len(byRecipe), err)
		}
		if none, err := s.PageRuns(ctx, stats.RunQuery{Recipe: "b-recipe", Subject: "user/9"}); err != nil || len(none) != 0 {
			t.Errorf("runs of an unknown subject: %v %v", none, err)
		}
		if _, err := s.PageRuns(ctx, stats.RunQuery{Status: "nope"}); err == nil {
			t.Error("an unknown status is accepted")
		}
	})
}
