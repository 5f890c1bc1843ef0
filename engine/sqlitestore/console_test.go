package sqlitestore_test

import (
	"path/filepath"
	"testing"

	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/internal/console/stats/statstest"
)

func TestConsoleQueries(t *testing.T) {
	statstest.Run(t, func(t *testing.T) statstest.Store {
		s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "c.db"), sqlitestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
