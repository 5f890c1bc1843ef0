package recipes

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestDiagnosticsRendering(t *testing.T) {
	_, diags := LoadBytes("r.yaml", []byte("version: 1\nname: r\ntrigger:\n\tuses: x\n"), Options{Registry: testRegistry()})
	if len(diags) != 1 {
		t.Fatalf("got %d diagnostics: %v", len(diags), diags)
	}
	var text bytes.Buffer
	if err := diags.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	want := "r.yaml:4:1: error: YAML syntax: found character that cannot start any token\n    \tuses: x\n    ^\n"
	if text.String() != want {
		t.Errorf("text:\n%q\nwant\n%q", text.String(), want)
	}
	var js bytes.Buffer
	if err := diags.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	wantJSON := map[string]any{"file": "r.yaml", "line": 4.0, "column": 1.0, "severity": "error",
		"message": "YAML syntax: found character that cannot start any token"}
	for k, v := range wantJSON {
		if got[0][k] != v {
			t.Errorf("json %s = %v, want %v", k, got[0][k], v)
		}
	}
	if !diags.HasErrors() || diags.HasIOErrors() || diags.Errs() == nil {
		t.Error("a syntax error is an error, not an I/O error")
	}
}

func TestCaretUnderTabs(t *testing.T) {
	cases := []struct {
		name, line string
		col        int
		want       string
	}{
		{"start", "abc", 1, ""},
		{"middle", "abc", 3, "  "},
		{"tab kept", "\tab", 3, "\t "},
		{"wide rune", "日本x", 3, "  "},
		{"past the end", "ab", 4, "   "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := caretPad(tc.line, tc.col); got != tc.want {
				t.Errorf("caretPad(%q, %d) = %q, want %q", tc.line, tc.col, got, tc.want)
			}
		})
	}
}

func TestWarningsAloneAreNotErrors(t *testing.T) {
	_, diags := Load(Options{Registry: testRegistry()}, "testdata/warnings/literal-token.yaml")
	if len(diags) != 1 || diags[0].Severity != Warning {
		t.Fatalf("want one warning, got %v", diags)
	}
	if diags.HasErrors() || diags.Errs() != nil {
		t.Error("warnings alone must not be errors")
	}
	if bytes.Contains([]byte(diags.Error()), []byte("s3cr3t-value")) {
		t.Error("the warning repeats the secret")
	}
}

func TestEmptyJSONIsAnArray(t *testing.T) {
	var b bytes.Buffer
	if err := Diagnostics(nil).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "[]\n" {
		t.Errorf("got %q", got)
	}
}
