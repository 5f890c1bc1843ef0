package sqlitestore_test

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/engine/storetest"
)

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	paths := map[string]string{}
	storetest.Run(t, func(t *testing.T) engine.Store {
		mu.Lock()
		p, ok := paths[t.Name()]
		if !ok {
			p = filepath.Join(t.TempDir(), "memberflow.db")
			paths[t.Name()] = p
		}
		mu.Unlock()
		s, err := sqlitestore.Open(p, sqlitestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
