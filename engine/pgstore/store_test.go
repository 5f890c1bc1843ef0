package pgstore_test

import (
	"context"
	"encoding/json"
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
