package pgstore_test

import (
	"context"
	"testing"

	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/internal/console/stats/statstest"
)

func TestConsoleQueries(t *testing.T) {
	statstest.Run(t, func(t *testing.T) statstest.Store {
		dsn, schema := pgstore.TestSchema(t)
		s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
