package console_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// testStores are the stores the console's store-dependent tests and
// benchmarks run against. Postgres is reached as engine/pgstore's tests
// reach it (MEMBERFLOW_TEST_POSTGRES, a schema per test; unreachable
// fails under CI and skips otherwise).
var testStores = []struct {
	name string
	open func(tb testing.TB) engine.Store
}{
	{"sqlite", func(tb testing.TB) engine.Store {
		s, err := sqlitestore.Open(filepath.Join(tb.TempDir(), "s.db"), sqlitestore.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(tb testing.TB) engine.Store {
		dsn, schema := pgstore.TestSchema(tb)
		s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: schema})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		return s
	}},
}

// eachStore runs fn on a store of each kind holding 120 runs.
func eachStore(t *testing.T, fn func(t *testing.T, s engine.Store)) {
	for _, st := range testStores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			fillStore(t, s, 120)
			fn(t, s)
		})
	}
}
