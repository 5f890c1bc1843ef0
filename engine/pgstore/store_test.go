package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/engine/storetest"
)

func TestConformance(t *testing.T) {
	type db struct{ dsn, schema string }
	var mu sync.Mutex
	dbs := map[string]db{}
	storetest.Run(t, func(t *testing.T) engine.Store {
		mu.Lock()
		d, ok := dbs[t.Name()]
		mu.Unlock()
		if !ok {
			d.dsn, d.schema = pgstore.TestSchema(t)
			mu.Lock()
			dbs[t.Name()] = d
			mu.Unlock()
		}
		s, err := pgstore.Open(context.Background(), d.dsn, pgstore.Options{Schema: d.schema, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestAdvanceClaimJournalsIntents: Postgres journals the intent of every
// run it claims with the page (the storetest rule also accepts a store
// that leaves it to the engine), and only theirs.
func TestAdvanceClaimJournalsIntents(t *testing.T) {
	ctx := context.Background()
	dsn, schema := pgstore.TestSchema(t)
	s, err := pgstore.Open(ctx, dsn, pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	event := func(id, key string, intent bool) engine.NewEvent {
		e := engine.NewEvent{ID: id, Subject: "member/" + id, OrderingKey: key, Connector: "c", Time: now, Data: json.RawMessage(`{}`)}
		if intent {
			e.Intent = &engine.StepRecord{Index: 2, StepID: "issue-" + id, Action: "certs.create", Status: engine.StepStarted,
				Input: json.RawMessage(`{"id":"` + id + `"}`), Started: now}
		}
		return e
	}
	evs := []engine.NewEvent{event("a", "k1", true), event("b", "k2", false), event("c", "k1", true), event("d", "k3", true)}
	enq, err := s.Advance(ctx, "r", engine.Advance{Events: evs, Claim: &engine.ClaimRequest{Owner: "w", Now: now, Lease: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		status    string
		journaled bool
	}{{engine.RunRunning, true}, {engine.RunRunning, false}, {engine.RunQueued, false}, {engine.RunRunning, true}} {
		q := enq[i]
		if q.Status != want.status || q.Journaled != want.journaled {
			t.Errorf("event %s: status %s, journaled %v; want %s, %v", q.EventID, q.Status, q.Journaled, want.status, want.journaled)
		}
		steps, err := s.Steps(ctx, q.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if !want.journaled {
			if len(steps) != 0 {
				t.Errorf("event %s: journal %+v, want none", q.EventID, steps)
			}
			continue
		}
		in := evs[i].Intent
		if len(steps) != 1 || steps[0].RunID != q.RunID || steps[0].Index != in.Index || steps[0].StepID != in.StepID ||
			steps[0].Status != engine.StepStarted || string(steps[0].Input) != string(in.Input) || !steps[0].Started.Equal(now) {
			t.Errorf("event %s: journal %+v, want its intent %+v under run %d", q.EventID, steps, in, q.RunID)
		}
	}
}

// TestASmallPoolStillJoins: the store keeps connections of its own out of
// the pool (LISTEN, each joined runner's proof of life) and Join needs one
// more to look for dead runners; a pool asked for fewer than that is
// raised, instead of Join waiting forever (it did with 2: LISTEN and the
// proof of life held both, and Join waited for a third to probe the
// runner of the pass before, which had died).
func TestASmallPoolStillJoins(t *testing.T) {
	dsn, schema := pgstore.TestSchema(t)
	for _, n := range []int{1, 2, 3} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := pgstore.Open(ctx, dsn, pgstore.Options{Schema: schema, MaxConns: n})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		// Each pass's runner is gone when the next joins.
		if _, err := s.Advance(ctx, "r", engine.Advance{Events: []engine.NewEvent{{ID: "e", Subject: "s", Connector: "c", Data: json.RawMessage(`{}`)}}}); err != nil {
			t.Fatalf("MaxConns %d: %v", n, err)
		}
		if _, err := s.Join(ctx, engine.RunnerInfo{Owner: fmt.Sprint("runner-", n), Host: "h", PID: 1}); err != nil {
			t.Fatalf("MaxConns %d: joining: %v", n, err)
		}
		if _, err := s.Claim(ctx, engine.ClaimRequest{Owner: fmt.Sprint("runner-", n), Recipes: []string{"r"}, Limit: 1, Now: time.Now(), Lease: time.Minute}); err != nil {
			t.Fatalf("MaxConns %d: claiming: %v", n, err)
		}
		s.Close()
		cancel()
	}
}
