package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTestCommand(t *testing.T) {
	// A copy of an example whose test expects the wrong group: the command
	// must fail with the expectation's file:line.
	dir := t.TempDir()
	copyFile := func(from, to string) {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "accredible"), 0o755)
	copyFile("../../examples/connections.yaml", filepath.Join(dir, "connections.yaml"))
	copyFile("../../examples/accredible/certificate-for-new-members.yaml", filepath.Join(dir, "accredible", "c.yaml"))
	test, err := os.ReadFile("../../examples/accredible/certificate-for-new-members.test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Replace(string(test), "              group_id: 100001\n", "              group_id: 100002\n", 1)
	if wrong == string(test) {
		t.Fatal("the example's test changed: update this test")
	}
	os.WriteFile(filepath.Join(dir, "accredible", "c.test.yaml"), []byte(wrong), 0o644)

	cases := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{name: "the examples pass", args: []string{"test", "../../examples"}, code: exitOK, contains: []string{"ok: ", " passed, 0 failed"}},
		{name: "a failing expectation", args: []string{"test", dir}, code: exitFail,
			contains: []string{"FAIL  ", "c.test.yaml:", "credential.group_id (", "want 100002, got 100001", "FAIL: 2 passed, 1 failed"}},
		{name: "one case by name", args: []string{"test", "--run", "condition rejects", "../../examples/accredible"}, code: exitOK, contains: []string{"ok: 6 passed"}},
		{name: "json", args: []string{"test", "--format", "json", dir}, code: exitFail, contains: []string{`"ok": false`, `"failed": 1`}},
		{name: "no path", args: []string{"test"}, code: exitUsage},
		{name: "bad format", args: []string{"test", "--format", "xml", dir}, code: exitUsage},
		{name: "bad filter", args: []string{"test", "--run", "(", dir}, code: exitUsage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runCLI(tc.args, stdio{out: &out, err: &errOut})
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out.String(), errOut.String())
			}
			for _, s := range tc.contains {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
}
