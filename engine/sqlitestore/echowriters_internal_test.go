package sqlitestore

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// The writes a store of an older version remembered name no recipe: they
// are still told apart through their runs' rows, and one whose run is
// gone (or none: an imported write) is an echo for every recipe.
func TestEchoesRememberedBeforeNameTheirWriterThroughItsRun(t *testing.T) {
	path := oldStore(t, "schema-v7.sql",
		`INSERT INTO events (id, recipe, event_id, subject, fingerprint, connector, received, data) VALUES (1, 'A', 'a1', 'k1', '', 'fake', 1, '{}')`,
		`INSERT INTO runs (id, event, recipe, okey, status, attempts, created, finished, chain) VALUES (1, 1, 'A', 'k1', 'succeeded', 1, 1, 2, 'Z')`,
		`INSERT INTO echoes (connector, subject, fingerprint, run, written) VALUES ('members', 'member/1', 'f1', 1, 2)`,
		`INSERT INTO echoes (connector, subject, fingerprint, run, written) VALUES ('members', 'member/1', 'imported', NULL, 2)`)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, c := range []struct {
		recipe, fingerprint, want string
	}{
		{"A", "f1", engine.RunSuppressed}, // the writer's recipe
		{"Z", "f1", engine.RunSuppressed}, // in the writer's chain
		{"B", "f1", engine.RunQueued},
		{"B", "imported", engine.RunSuppressed},
	} {
		e := engine.NewEvent{ID: c.recipe + "-" + c.fingerprint, Subject: "member/1", OrderingKey: "k-" + c.recipe + c.fingerprint,
			Connector: "members", Fingerprint: c.fingerprint, Time: time.Unix(1700000000, 0), Data: json.RawMessage(`{}`)}
		enq, err := s.Advance(ctx, c.recipe, engine.Advance{Events: []engine.NewEvent{e}})
		if err != nil {
			t.Fatal(err)
		}
		if enq[0].Status != c.want {
			t.Errorf("state %s seen by %s: %s, want %s", c.fingerprint, c.recipe, enq[0].Status, c.want)
		}
	}
}
