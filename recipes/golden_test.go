package recipes

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestInvalidGolden loads each bad recipe under testdata/invalid and
// compares the text rendering of its diagnostics with NAME.golden.
func TestInvalidGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("only %d invalid cases; want at least 30", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			_, diags := Load(Options{Registry: testRegistry()}, f)
			if !diags.HasErrors() {
				t.Fatalf("no error reported for %s", f)
			}
			var got bytes.Buffer
			if err := diags.WriteText(&got); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, strings.TrimSuffix(f, ".yaml")+".golden", got.Bytes())
		})
	}
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./recipes -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("diagnostics differ from %s:\n--- got\n%s--- want\n%s", path, got, want)
	}
}
