package storetest

import (
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// testQueueStats: a store that counts its queue for metrics
// (engine.QueueStatser) counts queued, running and dead runs and dates
// the oldest queued one. A store without the ability is skipped.
func testQueueStats(t *testing.T, open func(t *testing.T) engine.Store) {
	s := open(t)
	qs, ok := s.(engine.QueueStatser)
	if !ok {
		t.Skip("the store does not count its queue (engine.QueueStatser)")
	}
	stats := func() engine.QueueStats {
		t.Helper()
		st, err := qs.QueueStats(ctx)
		if err != nil {
			t.Fatalf("QueueStats: %v", err)
		}
		return st
	}
	if st := stats(); st != (engine.QueueStats{}) {
		t.Fatalf("an empty store: %+v", st)
	}
	before := time.Now()
	advance(t, s, "r", ev("a", "ka"), ev("b", "kb"), ev("c", "kc"))
	now := time.Now()
	first := claim(t, s, "w1", 1, now)
	if len(first) != 1 {
		t.Fatalf("claimed %d runs, want 1", len(first))
	}
	st := stats()
	if st.Queued != 2 || st.Running != 1 || st.Dead != 0 {
		t.Errorf("after a claim: %+v, want 2 queued, 1 running", st)
	}
	if st.OldestQueued.Before(before.Add(-time.Second)) || st.OldestQueued.After(time.Now().Add(time.Second)) {
		t.Errorf("oldest queued at %s, want about %s", st.OldestQueued, before)
	}
	finish(t, s, first[0], engine.RunDead)
	for _, cr := range claim(t, s, "w1", 2, now) {
		finish(t, s, cr, engine.RunSucceeded)
	}
	if st := stats(); st.Queued != 0 || st.Running != 0 || st.Dead != 1 || !st.OldestQueued.IsZero() {
		t.Errorf("after the outcomes: %+v, want 1 dead and nothing queued", st)
	}
}
