package pgstore_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/engine/storetest"
)

// TestRecordManyFailingHalfWayWritesNothingOfTheWrite sends a batch one
// of whose writes the database refuses at its outcome (a NUL byte, which
// a Postgres text never holds), after the write's steps: the batch's
// transaction is rolled back and that write alone fails, with nothing of
// it kept.
func TestRecordManyFailingHalfWayWritesNothingOfTheWrite(t *testing.T) {
	dsn, schema := pgstore.TestSchema(t)
	s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: schema, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.PartialWrite(t, s, func(w *engine.JournalWrite) { w.Fin.Error = "poison\x00" })
}

// TestRecordManyGiveBackWakesTheOtherRunners: a batch that gives a run
// back tells the runners listening on the store at its commit (the run is
// claimable at once); a batch that gives none back tells nobody.
func TestRecordManyGiveBackWakesTheOtherRunners(t *testing.T) {
	ctx := context.Background()
	dsn, schema := pgstore.TestSchema(t)
	open := func() *pgstore.Store {
		s, err := pgstore.Open(ctx, dsn, pgstore.Options{Schema: schema, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s, other := open(), open()
	now := time.Now()
	var evs []engine.NewEvent
	for _, id := range []string{"a", "b", "c"} {
		evs = append(evs, engine.NewEvent{ID: id, Subject: "member/" + id, OrderingKey: id, Connector: "c", Time: now, Data: json.RawMessage(`{}`)})
	}
	enq, err := s.Advance(ctx, "r", engine.Advance{Events: evs, Claim: &engine.ClaimRequest{Owner: "w", Now: now, Lease: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	var leases []engine.Lease
	for _, q := range enq {
		if q.Run == nil {
			t.Fatalf("event %s was not claimed with its page", q.EventID)
		}
		leases = append(leases, q.Run.Lease())
	}
	woken := func(within time.Duration) bool {
		select {
		case <-other.Wakeups():
			return true
		case <-time.After(within):
			return false
		}
	}
	for woken(300 * time.Millisecond) { // the wake-ups of the setup
	}
	step := func(l engine.Lease) []engine.StepRecord {
		return []engine.StepRecord{{RunID: l.RunID, StepID: "s", Action: "c.get", Status: engine.StepSucceeded, Attempts: 1}}
	}
	for i, err := range s.RecordMany(ctx, []engine.JournalWrite{
		{Lease: leases[0], Steps: step(leases[0])},
		{Lease: leases[1], Steps: step(leases[1]), Fin: &engine.Completion{RunID: leases[1].RunID, Status: engine.RunSucceeded, Finished: now}},
	}) {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if woken(300 * time.Millisecond) {
		t.Error("a batch that gave no run back woke the other runners")
	}
	for i, err := range s.RecordMany(ctx, []engine.JournalWrite{
		{Lease: leases[0], Steps: step(leases[0])},
		{Lease: leases[2], Fin: &engine.Completion{RunID: leases[2].RunID, Status: engine.RunQueued}},
	}) {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if !woken(5 * time.Second) {
		t.Error("a batch that gave a run back did not wake the other runners")
	}
}
