package recipes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkLoadRecipe loads and validates one recipe (all layers) after
// start-up: the schemas are compiled once per process.
func BenchmarkLoadRecipe(b *testing.B) {
	data, err := os.ReadFile("testdata/valid/issue-certificate.yaml")
	if err != nil {
		b.Fatal(err)
	}
	opts := Options{Registry: testRegistry()}
	if _, diags := LoadBytes("r.yaml", data, opts); len(diags) > 0 {
		b.Fatal(diags)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := LoadBytes("r.yaml", data, opts); r == nil {
			b.Fatal("not loaded")
		}
	}
}

// BenchmarkValidate100 is `memberflow validate` over a folder of 100
// recipes, from reading the files to the diagnostics.
func BenchmarkValidate100(b *testing.B) {
	data, err := os.ReadFile("testdata/valid/issue-certificate.yaml")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	for i := range 100 {
		doc := strings.Replace(string(data), "name: issue-certificate-on-eligibility", fmt.Sprintf("name: recipe-%03d", i), 1)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%03d.yaml", i)), []byte(doc), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	opts := Options{Registry: testRegistry()}
	b.ReportAllocs()
	for b.Loop() {
		rs, diags := Load(opts, dir)
		if len(rs) != 100 || len(diags) > 0 {
			b.Fatalf("%d recipes, %v", len(rs), diags)
		}
	}
}

// BenchmarkEvalPerEvent is the expression work of one event: the
// eligibility condition and the largest step's with block.
func BenchmarkEvalPerEvent(b *testing.B) {
	r, diags := LoadFile("testdata/valid/issue-certificate.yaml", Options{Registry: testRegistry()})
	if len(diags) > 0 {
		b.Fatal(diags)
	}
	env := Env{
		"trigger": map[string]any{"user": map[string]any{"id": "u1", "email": "a@example.com", "eligibilityDate": "2026-01-02"}},
		"vars":    r.Vars,
		"steps":   map[string]any{"user": map[string]any{"id": "u1", "fullName": "Ann Lee", "email": "ANN@EXAMPLE.COM", "eligibilityDate": "2026-01-02"}},
	}
	cond := func(b *testing.B) {
		ok, err := r.When.EvalBool(env)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
	with := func(b *testing.B) {
		if _, err := r.Steps[1].With.EvalMap(env); err != nil {
			b.Fatal(err)
		}
	}
	parts := []struct {
		name string
		f    func(*testing.B)
	}{
		{"condition", cond},
		{"with", with},
		{"both", func(b *testing.B) { cond(b); with(b) }},
	}
	for _, p := range parts {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.f(b)
			}
		})
	}
}
