package pgstore_test

import (
	"context"
	"sync"
	"testing"

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
