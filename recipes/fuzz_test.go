package recipes

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds the loader arbitrary bytes: it must never panic, and
// every diagnostic must have a position inside the file.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid", "testdata/warnings"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("k: |2-\n   x\n"))
	f.Add([]byte("k: \"\\u12\"\n"))
	reg := testRegistry()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, diags := LoadBytes("fuzz.yaml", data, Options{Registry: reg})
		if r != nil && diags.HasErrors() {
			t.Fatalf("a recipe with errors was returned:\n%v", diags)
		}
		// YAML breaks lines at \n, \r\n and a lone \r.
		lines := 1
		for i, c := range data {
			if c == '\n' || (c == '\r' && (i+1 == len(data) || data[i+1] != '\n')) {
				lines++
			}
		}
		for _, d := range diags {
			if d.Subject == nil {
				continue
			}
			p := d.Subject.Start
			if p.Line < 1 || p.Line > lines || p.Column < 1 {
				t.Fatalf("diagnostic outside the file (%d lines): %v", lines, d)
			}
		}
		_ = diags.Error()
	})
}
