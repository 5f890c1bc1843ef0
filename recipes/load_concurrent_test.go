package recipes_test

import (
	"sync"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	_ "github.com/memberflow/memberflow/connectors/all"
	"github.com/memberflow/memberflow/recipes"
)

// Two loads at once (a runner and its console) share expr's base
// configurations: run with -race, this fails without exprMu.
func TestLoadConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, diags := recipes.Load(recipes.Options{Registry: connectors.Default}, "../examples")
			if diags.HasErrors() {
				t.Error(diags)
			}
		}()
	}
	wg.Wait()
}
