// Package examples holds the example recipes; this test keeps them honest:
// every recipe validates without a warning, has offline tests that pass,
// including a case its condition rejects, and is listed in README.md.
package examples_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	_ "github.com/memberflow/memberflow/connectors/all"
	"github.com/memberflow/memberflow/engine/recipetest"
	"github.com/memberflow/memberflow/recipes"
)

func TestExamplesValidate(t *testing.T) {
	for _, conns := range [][]string{nil, {"connections.sandbox.yaml"}} {
		rs, diags := recipes.Load(recipes.Options{Registry: connectors.Default, Connections: conns}, ".")
		if len(diags) > 0 {
			t.Errorf("connections %v: diagnostics:\n%v", conns, diags)
		}
		if len(rs) != 17 {
			t.Errorf("connections %v: %d recipes loaded, want 17", conns, len(rs))
		}
	}
}

func TestExamplesPassTheirTests(t *testing.T) {
	rep := recipetest.Run(context.Background(), recipetest.Options{Registry: connectors.Default}, ".")
	var out bytes.Buffer
	rep.WriteText(&out, false)
	if !rep.OK() {
		t.Fatalf("recipe tests failed:\n%s", out.String())
	}
	if u := rep.Untested(); len(u) > 0 {
		t.Errorf("recipes without tests: %v", u)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Suites {
		rejected := false
		for _, c := range s.Cases {
			if c.Outcome == "skipped" {
				rejected = true
			}
		}
		if !rejected {
			t.Errorf("%s: no case where the recipe's condition rejects the event", s.Recipe)
		}
		if rel := filepath.ToSlash(s.Recipe); !strings.Contains(string(readme), rel) {
			t.Errorf("README.md does not describe %s", rel)
		}
	}
}
