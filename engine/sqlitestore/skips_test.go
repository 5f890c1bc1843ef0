package sqlitestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// TestPruneKeepsDeadLettersAndDedup: a prune removes finished runs, their
// journals and their events' data, and old skip pages; dead letters and
// queued runs stay, and a pruned event seen again is still a duplicate.
func TestPruneKeepsDeadLettersAndDedup(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	defer s.Close()
	ctx := context.Background()
	enq, err := s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{
		ev("ok", "a"), ev("dead", "b"), ev("waiting", "c"),
		{ID: "skip", Subject: "d", Skipped: true, Values: json.RawMessage(`{"x":1}`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	claimed := claim(t, s, "w", 2, time.Now())
	if fmt.Sprint(claimed) != fmt.Sprint([]int64{enq[0].RunID, enq[1].RunID}) {
		t.Fatalf("claimed %v", claimed)
	}
	for _, c := range []engine.Completion{{RunID: enq[0].RunID, Status: engine.RunSucceeded}, {RunID: enq[1].RunID, Status: engine.RunDead, Error: "boom"}} {
		steps := []engine.StepRecord{{RunID: c.RunID, StepID: "one", Action: "c.one", Status: engine.StepSucceeded, Input: json.RawMessage(`{}`)}}
		c.Finished = time.Now()
		if err := s.Record(ctx, engine.Lease{RunID: c.RunID, Token: 1}, steps, &c); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing is older than an hour ago: nothing goes.
	res, err := s.Prune(ctx, engine.Prune{Before: time.Now().Add(-time.Hour)})
	if err != nil || res.Runs+res.Steps+res.Events+res.SkipPages != 0 {
		t.Fatalf("prune before anything finished: %+v %v", res, err)
	}
	res, err = s.Prune(ctx, engine.Prune{Before: time.Now().Add(time.Second), Vacuum: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Runs != 1 || res.Steps != 1 || res.Events != 1 || res.SkipPages != 1 || res.BytesAfter <= 0 {
		t.Fatalf("pruned %+v, want the succeeded run, its step and event data, and the skip page", res)
	}
	runs, _ := s.ListRuns(ctx, engine.RunFilter{})
	var statuses []string
	for _, r := range runs {
		statuses = append(statuses, r.Status)
	}
	if fmt.Sprint(statuses) != "[queued dead]" {
		t.Fatalf("runs left: %v, want the queued one and the dead letter", statuses)
	}
	if d, err := s.GetRun(ctx, enq[1].RunID); err != nil || len(d.Steps) != 1 || string(d.Event) != `{"id":"dead"}` {
		t.Fatalf("the dead letter lost its audit: %+v %v", d, err)
	}
	if pages, _ := s.ListSkips(ctx, engine.RunFilter{}); len(pages) != 0 {
		t.Fatalf("skip pages left: %+v", pages)
	}
	again, err := s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{ev("ok", "a")}})
	if err != nil || again[0].RunID != 0 || again[0].Status != "" {
		t.Fatalf("a pruned event seen again: %+v %v, want a duplicate", again, err)
	}
}
