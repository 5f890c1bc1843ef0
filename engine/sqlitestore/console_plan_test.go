package sqlitestore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/console/stats"
)

// TestSubjectPageUsesIndexes checks the plan of a page of one subject's
// runs: through its events by subject and their runs by event, never a
// walk over all runs (or a recipe's), which takes 100 ms and more with
// 100,000 runs (internal/console's BenchmarkPages).
func TestSubjectPageUsesIndexes(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "p.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, q := range []stats.RunQuery{
		{Subject: "user/42"},
		{Subject: "user/42", Recipe: "r"},
		{Subject: "user/42", Status: engine.RunDead, Before: 100},
	} {
		text, args, err := pageRunsQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+text, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		all := strings.Join(plan, "\n")
		if !strings.Contains(all, "USING INDEX events_subject") || !strings.Contains(all, "USING INDEX runs_by_event") {
			t.Errorf("%+v: plan\n%s\nwant events by subject and runs by event", q, all)
		}
	}
}
