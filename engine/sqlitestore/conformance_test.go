package sqlitestore_test

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/engine/storetest"
)

func TestConformance(t *testing.T) { conformance(t, sqlitestore.Options{}) }

// TestConformanceMergingStates runs the suite with the subject states'
// log merged every few states, so that its answers cross merges.
func TestConformanceMergingStates(t *testing.T) {
	conformance(t, sqlitestore.Options{MergeStates: 3})
}

func conformance(t *testing.T, opts sqlitestore.Options) {
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
		s, err := sqlitestore.Open(p, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
