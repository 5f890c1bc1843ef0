package pgstore_test

import (
	"context"
	"testing"

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
