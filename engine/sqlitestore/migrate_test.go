package sqlitestore_test

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// Runners started together on a store that does not exist yet all
// migrate it: each must find the migrations done by whichever came first,
// not apply one twice ("duplicate column name", seen when the chaos test
// started two runners at once).
func TestRunnersOpeningANewStoreTogetherMigrateItOnce(t *testing.T) {
	for round := 0; round < 10; round++ {
		path := filepath.Join(t.TempDir(), "new.db")
		const runners = 4
		var wg sync.WaitGroup
		errs := make(chan error, runners)
		for i := 0; i < runners; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := sqlitestore.Open(path, sqlitestore.Options{})
				if err != nil {
					errs <- err
					return
				}
				s.Close()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}
