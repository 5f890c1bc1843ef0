package reconcile_test

import (
	"os"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/internal/reconcile"
)

// docs/reconcile.md's table has a row for every rule, so a rule added in
// code is documented for the people who alert on its name.
func TestDocsListEveryRule(t *testing.T) {
	b, err := os.ReadFile("../../docs/reconcile.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range reconcile.RuleIDs() {
		if !strings.Contains(string(b), "\n| `"+id+"` |") {
			t.Errorf("docs/reconcile.md has no row for the rule %s", id)
		}
	}
}
