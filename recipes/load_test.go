package recipes

import (
	"testing"
)

func TestLoadValidExample(t *testing.T) {
	r, diags := LoadFile("testdata/valid/issue-certificate.yaml", Options{Registry: testRegistry()})
	if len(diags) > 0 {
		t.Fatalf("diagnostics:\n%v", diags)
	}
	if r == nil {
		t.Fatal("no recipe")
	}
	if got := len(r.Steps); got != 3 {
		t.Fatalf("steps = %d", got)
	}
}
