package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// fakeClock is a settable engine clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestRunOnceFiresDueSchedules: a one-shot run fires a schedule that never
// fired, not again before its next tick, and once (coalesced, stamped with
// the latest tick that passed) after several ticks were missed.
func TestRunOnceFiresDueSchedules(t *testing.T) {
	store := openStore(t, tempDB(t))
	defer store.Close()
	svc := newFakeService(0, oneActive)
	clock := &fakeClock{now: time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)}
	r := &recipes.Recipe{File: "hourly.yaml", Name: "hourly",
		Trigger: &recipes.Trigger{Schedule: "@hourly"},
		Steps: []*recipes.Step{{ID: "record", Connection: "members", Operation: "record",
			With: mustTemplate(t, map[string]any{"member": "${{ trigger.recipe }}", "seq": 1})}}}
	e := newEngine(t, store, svc, []*recipes.Recipe{r}, func(o *engine.Options) { o.Now = clock.Now })

	steps := []struct {
		name    string
		advance time.Duration
		want    int64  // runs succeeded so far
		stamp   string // the last event's scheduled time
	}{
		{"never fired: due now", 0, 1, "2026-11-22T10:30:00Z"},
		{"fired this hour: not due", 20 * time.Minute, 1, "2026-11-22T10:30:00Z"},
		{"three ticks passed: one run at the latest", 3 * time.Hour, 2, "2026-11-22T13:00:00Z"},
		{"same again: not due", 0, 2, "2026-11-22T13:00:00Z"},
	}
	for _, st := range steps {
		clock.Add(st.advance)
		sum := runOnce(t, e)
		if got := recipeSummary(t, sum, "hourly").Succeeded; got != st.want {
			t.Fatalf("%s: %d runs succeeded, want %d", st.name, got, st.want)
		}
		cur, err := store.Cursor(context.Background(), "hourly")
		if err != nil || cur != st.stamp {
			t.Fatalf("%s: schedule cursor %q (%v), want %s", st.name, cur, err, st.stamp)
		}
	}
	runs, err := store.ListRuns(context.Background(), engine.RunFilter{Recipe: "hourly"})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, run := range runs {
		ids[run.EventID] = true
	}
	for _, want := range []string{"hourly@2026-11-22T10:30:00Z", "hourly@2026-11-22T13:00:00Z"} {
		if !ids[want] {
			t.Errorf("no run for event %s; runs: %v", want, ids)
		}
	}
}
