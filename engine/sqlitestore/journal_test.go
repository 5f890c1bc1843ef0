package sqlitestore_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/engine/storetest"
)

// TestRecordManyFailingHalfWayWritesNothingOfTheWrite fails a batch's
// write after its steps were written and before its outcome: the batch
// is rolled back and the write fails alone, with nothing of it kept.
func TestRecordManyFailingHalfWayWritesNothingOfTheWrite(t *testing.T) {
	s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "memberflow.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hits := 0
	s.FailAt(func(point string, fin *engine.Completion) error {
		if point == "fin" && fin.Error == "poison" {
			hits++
			return errors.New("the disk is full (a fault of the test)")
		}
		return nil
	})
	storetest.PartialWrite(t, s, func(w *engine.JournalWrite) { w.Fin.Error = "poison" })
	if hits < 2 {
		t.Errorf("the fault was met %d times; want the batch's and the write's own attempt", hits)
	}
}
