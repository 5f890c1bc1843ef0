package console_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// testStores are the stores the console's store-dependent tests and
// benchmarks run against. Postgres is reached as engine/pgstore's tests
// reach it (MEMBERFLOW_TEST_POSTGRES, a schema per test; unreachable
// fails under CI and skips otherwise).
//
// analyze, when not nil, brings the query planner's statistics up to
// date after a bulk load, as a production database's autovacuum does
// within a minute (it is off on the development machines): without
// statistics Postgres guesses that any filter keeps 0.5% of the rows and
// walks all runs newest first for a page of one subject's.
var testStores = []struct {
	name string
	open func(tb testing.TB) (s engine.Store, analyze func(testing.TB))
}{
	{"sqlite", func(tb testing.TB) (engine.Store, func(testing.TB)) {
		s, err := sqlitestore.Open(filepath.Join(tb.TempDir(), "s.db"), sqlitestore.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		return s, nil
	}},
	{"postgres", func(tb testing.TB) (engine.Store, func(testing.TB)) {
		dsn, schema := pgstore.TestSchema(tb)
		s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: schema})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		analyze := func(tb testing.TB) {
			ctx := context.Background()
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				tb.Fatal(err)
			}
			defer c.Close(ctx)
			if _, err := c.Exec(ctx, `ANALYZE `+pgx.Identifier{schema, "runs"}.Sanitize()+`, `+pgx.Identifier{schema, "events"}.Sanitize()+
				`, `+pgx.Identifier{schema, "steps"}.Sanitize()); err != nil {
				tb.Fatal(err)
			}
		}
		return s, analyze
	}},
}

// eachStore runs fn on a store of each kind holding 120 runs.
func eachStore(t *testing.T, fn func(t *testing.T, s engine.Store)) {
	for _, st := range testStores {
		t.Run(st.name, func(t *testing.T) {
			s, _ := st.open(t)
			fillStore(t, s, 120)
			fn(t, s)
		})
	}
}
