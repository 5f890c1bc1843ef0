package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/recipes"
)

// validateRegistry is a one-connector registry, so that these tests do
// not depend on the real connectors.
func validateRegistry(t *testing.T) *connectors.Registry {
	t.Helper()
	reg := connectors.NewRegistry()
	reg.MustRegister(&connectors.Spec{
		Name: "crm",
		Auth: []connectors.AuthKind{connectors.AuthBearer},
		Open: func(cfg connectors.ConnectionConfig) (connectors.Conn, error) { return cfg, nil },
		Actions: []*connectors.ActionSpec{{
			Operation: connectors.Operation{Name: "get_user", Summary: "get a user",
				Input:  json.RawMessage(`{"type":"object","required":["userId"],"properties":{"userId":{"type":"string"}}}`),
				Output: json.RawMessage(`{"type":"object","properties":{"email":{"type":"string"}}}`)},
			Run: func(context.Context, connectors.Conn, map[string]any) (*connectors.Result, error) { return nil, nil },
		}},
	})
	return reg
}

const validRecipe = `version: 1
name: NAME
connections:
  crm: { connector: crm, auth: { type: bearer, token: "${{ secret.T }}" } }
trigger: { schedule: "@hourly" }
steps:
  - id: u
    uses: crm.get_user
    with: { userId: "${{ trigger.scheduled_time }}" }
`

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestValidateCommand(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"ok/a.yaml":        strings.Replace(validRecipe, "NAME", "a", 1),
		"ok/b.yml":         strings.Replace(validRecipe, "NAME", "b", 1),
		"ok/a.test.yaml":   "this is: [not loaded",
		"bad/typo.yaml":    strings.Replace(strings.Replace(validRecipe, "NAME", "c", 1), "steps.u", "steps.x", 1) + "when: steps\n",
		"warn/w.yaml":      strings.Replace(strings.Replace(validRecipe, "NAME", "w", 1), `"${{ secret.T }}"`, "literal-token", 1),
		"syntax/bad.yaml":  "version: 1\nname: [oops\n",
		"bad/second.yaml":  strings.Replace(strings.Replace(validRecipe, "NAME", "d", 1), "userId: ", "userid: ", 1),
		"notes/readme.txt": "not yaml",
	})
	p := func(s string) string { return filepath.Join(dir, s) }
	cases := []struct {
		name     string
		format   string
		paths    []string
		wantCode int
		wantOut  []string // substrings of stdout
	}{
		{name: "valid folder", format: "text", paths: []string{p("ok")}, wantCode: exitOK},
		{name: "warnings are allowed", format: "text", paths: []string{p("warn")}, wantCode: exitOK,
			wantOut: []string{"w.yaml:4:55: warning: connection \"crm\": auth.token is written as a literal"}},
		{name: "errors exit 1", format: "text", paths: []string{p("bad/second.yaml")}, wantCode: exitFail,
			wantOut: []string{"second.yaml:9:11: error: step \"u\" (crm.get_user) with: missing required key \"userId\"", "    with: { userid:"}},
		{name: "syntax error with caret", format: "text", paths: []string{p("syntax")}, wantCode: exitFail,
			wantOut: []string{"bad.yaml:2:7: error: YAML syntax: did not find expected ',' or ']'\n    name: [oops\n          ^\n"}},
		{name: "json", format: "json", paths: []string{p("bad/second.yaml")}, wantCode: exitFail,
			wantOut: []string{`"line": 9`, `"column": 11`, `"severity": "error"`}},
		{name: "missing path exits 2", format: "text", paths: []string{p("nope")}, wantCode: exitUsage,
			wantOut: []string{"cannot read"}},
		{name: "bad format exits 2", format: "yaml", paths: []string{p("ok")}, wantCode: exitUsage},
		{name: "no paths exits 2", format: "text", wantCode: exitUsage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runValidate(recipes.Options{Registry: validateRegistry(t)}, tc.format, tc.paths, stdio{out: &out, err: &errOut})
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out.String(), errOut.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			if tc.format == "json" {
				var list []map[string]any
				if err := json.Unmarshal(out.Bytes(), &list); err != nil {
					t.Errorf("not a JSON array: %v\n%s", err, out.String())
				}
			}
		})
	}
}

func TestValidateThroughCLI(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"help", []string{"validate", "--help"}, exitOK, "Usage: memberflow validate"},
		{"unknown flag", []string{"validate", "--formt", "json", "x"}, exitUsage, ""},
		{"schema", []string{"schema"}, exitOK, `"$schema": "https://json-schema.org/draft/2020-12/schema"`},
		{"schema takes no args", []string{"schema", "x"}, exitUsage, ""},
		{"completion needs a shell", []string{"completion"}, exitUsage, ""},
		{"completion unknown shell", []string{"completion", "tcsh"}, exitUsage, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runCLI(tc.args, stdio{out: &out, err: &errOut})
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.wantCode, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("stdout lacks %q:\n%s", tc.wantOut, out.String())
			}
		})
	}
}

// TestValidateExamples is `memberflow validate examples/` with the real
// connectors, with the production and the sandbox connections.
func TestValidateExamples(t *testing.T) {
	for _, args := range [][]string{
		{"validate", "../../examples"},
		{"validate", "--connections", "../../examples/connections.sandbox.yaml", "../../examples"},
		{"validate", "--format", "json", "../../examples"},
	} {
		t.Run(strings.Join(args[1:], " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := runCLI(args, stdio{out: &out, err: &errOut}); code != exitOK {
				t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
			}
			if args[1] == "--format" {
				if strings.TrimSpace(out.String()) != "[]" {
					t.Errorf("json output %q, want []", out.String())
				}
				return
			}
			if out.Len() != 0 || !strings.Contains(errOut.String(), "recipe(s) valid") {
				t.Errorf("stdout %q, stderr %q", out.String(), errOut.String())
			}
		})
	}
}

// A folder with nothing to check is a usage error, not a pass: a wrong
// path in a CI step must not check nothing and succeed.
func TestAnEmptyFolderIsNotAPass(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"validate", empty}, "no recipe file (*.yaml, *.yml) in the folder " + empty},
		{[]string{"test", empty}, "no test file (*.test.yaml, *.test.yml) in " + empty},
		{[]string{"test", "--run", "no-such-case", "../../examples/accredible"}, `no test case matches --run "no-such-case"`},
	} {
		code, out, errs := cli(t, tc.args...)
		if code != exitUsage || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%v: exit %d, want %d saying %q:\n%s%s", tc.args, code, exitUsage, tc.want, out, errs)
		}
	}
}
