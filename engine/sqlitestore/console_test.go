package sqlitestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/internal/console/stats"
)

// TestConsoleQueries checks the console's read queries against what was
// written: 30 runs of three recipes, every fifth dead, two steps each.
func TestConsoleQueries(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "c.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
	for _, c := range claimed {
		t0 := time.Now()
		status := engine.RunSucceeded
		if c.ID%5 == 0 {
			status = engine.RunDead
		}
		steps := []engine.StepRecord{
			{RunID: c.ID, Index: 0, StepID: "a", Action: "x.fast", Status: engine.StepSucceeded, Attempts: 1, Started: t0, Finished: t0.Add(500 * time.Microsecond)},
			{RunID: c.ID, Index: 1, StepID: "b", Action: "x.slow", Status: engine.StepSucceeded, Attempts: 2, Started: t0, Finished: t0.Add(300 * time.Millisecond)},
		}
		if err := s.Record(ctx, c.Lease(), steps, &engine.Completion{RunID: c.ID, Status: status, Finished: t0}); err != nil {
			t.Fatal(err)
		}
	}

	names, err := s.RunRecipes(ctx)
	if err != nil || !slices.Equal(names, []string{"a-recipe", "b-recipe", "c-recipe"}) {
		t.Errorf("RunRecipes: %v %v", names, err)
	}

	buckets, err := s.RunActivity(ctx, before, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, b := range buckets {
		counts[b.Status] += b.Count
		if b.Start != before.UTC() {
			t.Errorf("bucket starts at %s, want %s", b.Start, before.UTC())
		}
	}
	if counts[engine.RunSucceeded] != 24 || counts[engine.RunDead] != 6 {
		t.Errorf("RunActivity counts %v", counts)
	}
	if later, _ := s.RunActivity(ctx, time.Now().Add(time.Hour), time.Minute); len(later) != 0 {
		t.Errorf("runs counted in the future: %v", later)
	}

	lat, err := s.StepLatency(ctx, before)
	if err != nil || len(lat) != 2 {
		t.Fatalf("StepLatency: %+v %v", lat, err)
	}
	fast, slow := lat[0], lat[1]
	if fast.Action != "x.fast" || fast.Count != 30 || fast.Quantile(0.5) != 500*time.Microsecond || fast.Attempts != 0 {
		t.Errorf("fast: %+v p50 %s", fast, fast.Quantile(0.5))
	}
	if slow.Count != 30 || slow.Quantile(0.95) != 300*time.Millisecond || slow.Attempts != 30 || slow.Mean != 300*time.Millisecond {
		t.Errorf("slow: %+v p95 %s", slow, slow.Quantile(0.95))
	}

	// Keyset paging visits every run once, newest first.
	var seen []int64
	var before2 int64
	for {
		page, err := s.PageRuns(ctx, stats.RunQuery{Before: before2, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			seen = append(seen, r.ID)
		}
		if len(page) < 7 {
			break
		}
		before2 = page[len(page)-1].ID
	}
	if len(seen) != 30 || !slices.IsSortedFunc(seen, func(a, b int64) int { return int(b - a) }) {
		t.Errorf("paging saw %v", seen)
	}
	// Dead runs are every fifth; their subjects user/(i%4) with i = id-1.
	dead, err := s.PageRuns(ctx, stats.RunQuery{Status: engine.RunDead, Subject: "user/1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 {
		t.Errorf("dead runs of user/1: %d, want 2", len(dead))
	}
	for _, r := range dead {
		if r.Status != engine.RunDead || r.Subject != "user/1" {
			t.Errorf("filtered page has %+v", r)
		}
	}
	if byRecipe, _ := s.PageRuns(ctx, stats.RunQuery{Recipe: "b-recipe", Limit: 100}); len(byRecipe) != 10 {
		t.Errorf("runs of b-recipe: %d, want 10", len(byRecipe))
	}
	if _, err := s.PageRuns(ctx, stats.RunQuery{Status: "nope"}); err == nil {
		t.Error("an unknown status is accepted")
	}
}
