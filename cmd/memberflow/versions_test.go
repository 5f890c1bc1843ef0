package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/recipes"
)

const versionedRecipe = `version: 1
name: NAME
IDLINE
connections_file: CONNS
trigger: { uses: members.user_created, start: beginning }
when: trigger.email != ""
steps:
  - id: member
    uses: members.get_user
    with: { userId: "USERID" }
`

func writeRecipe(t *testing.T, path, name, id, userID string) {
	t.Helper()
	conns, err := filepath.Abs(sandboxConnFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.NewReplacer("NAME", name, "CONNS", conns, "USERID", userID).Replace(versionedRecipe)
	idLine := ""
	if id != "" {
		idLine = "id: " + id
	}
	doc = strings.Replace(doc, "IDLINE", idLine, 1)
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReplayRunsTheVersionThatFailed: a run records the recipe version
// that ran it; a replay runs that version (still failing) unless --latest;
// every attempt stays in the audit. On each store that keeps versions:
// SQLite, and Postgres as engine/pgstore's tests reach it
// (MEMBERFLOW_TEST_POSTGRES, a schema of its own; unreachable fails under
// CI and skips otherwise).
func TestReplayRunsTheVersionThatFailed(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testReplayRunsTheVersionThatFailed(t, filepath.Join(t.TempDir(), "mf.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn, schema := pgstore.TestSchema(t)
		t.Setenv("MEMBERFLOW_PG_SCHEMA", schema) // read by every command's --store
		testReplayRunsTheVersionThatFailed(t, dsn)
	})
}

func testReplayRunsTheVersionThatFailed(t *testing.T, store string) {
	base := startTestSandbox(t, 3)
	recipe := filepath.Join(t.TempDir(), "r.yaml")
	run := func() (int, string) {
		code, out, errs := cli(t, "run", "--once", "--sandbox-url", base, "--store", store, "--log-level", "off", recipe)
		return code, out + errs
	}
	// Version A asks for a member that does not exist: every run dies.
	writeRecipe(t, recipe, "lookup", "", "${{ trigger.id }}-missing")
	if code, out := run(); code != exitFail {
		t.Fatalf("version A: exit %d, want dead letters\n%s", code, out)
	}
	_, out, _ := cli(t, "dlq", "list", "--store", store, "--format", "json")
	var dead []map[string]any
	if err := json.Unmarshal([]byte(out), &dead); err != nil || len(dead) == 0 {
		t.Fatalf("dlq list: %v\n%s", err, out)
	}
	id := jsonNumber(dead[0]["id"])
	show := func() map[string]any {
		t.Helper()
		_, out, errs := cli(t, "runs", "show", id, "--store", store, "--format", "json")
		var d map[string]any
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("runs show: %v\n%s%s", err, out, errs)
		}
		return d
	}
	versionA := versionHash(show())
	if len(versionA) != 64 {
		t.Fatalf("run %s records version %q", id, versionA)
	}

	// Version B fixes the recipe. A plain replay still runs version A.
	writeRecipe(t, recipe, "lookup", "", "${{ trigger.id }}")
	if code, out, errs := cli(t, "dlq", "replay", id, "--store", store); code != exitOK {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errs)
	}
	run()
	d := show()
	if d["status"] != "dead" || versionHash(d) != versionA {
		t.Fatalf("a plain replay ran %v with version %v, want version A dead again", d["status"], d["version"])
	}
	if past, _ := d["past_attempts"].([]any); len(past) != 1 {
		t.Fatalf("past attempts %v, want the first failure kept", d["past_attempts"])
	}
	// --latest runs version B, which succeeds; both failures stay.
	if code, out, errs := cli(t, "dlq", "replay", "--latest", id, "--store", store); code != exitOK {
		t.Fatalf("replay --latest: exit %d\n%s%s", code, out, errs)
	}
	run()
	d = show()
	versionB := versionHash(d)
	if d["status"] != "succeeded" || len(versionB) != 64 || versionB == versionA {
		t.Fatalf("replay --latest: %v with version %v", d["status"], versionB)
	}
	past, _ := d["past_attempts"].([]any)
	if len(past) != 2 || past[0].(map[string]any)["version"] != versionA || past[1].(map[string]any)["version"] != versionA {
		t.Fatalf("past attempts %v, want two failures of version A", past)
	}
	_, text, _ := cli(t, "runs", "show", id, "--store", store)
	if !strings.Contains(text, "version   "+versionB[:12]) || !strings.Contains(text, "attempt 2: dead, version "+versionA[:12]) {
		t.Errorf("runs show does not print the versions:\n%s", text)
	}
}

// TestRenamedRecipeKeepsItsCursorsByID: a recipe renamed with its old
// name as id carries on; renamed without, it starts over.
func TestRenamedRecipeKeepsItsCursorsByID(t *testing.T) {
	base := startTestSandbox(t, 4)
	dir := t.TempDir()
	recipe, store := filepath.Join(dir, "r.yaml"), filepath.Join(dir, "mf.db")
	events := func() string {
		t.Helper()
		code, out, errs := cli(t, "run", "--once", "--sandbox-url", base, "--store", store, "--log-level", "off", recipe)
		if code != exitOK {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		return out
	}
	writeRecipe(t, recipe, "members-lookup", "", "${{ trigger.id }}")
	if out := events(); !strings.Contains(out, "members-lookup  4 ") {
		t.Fatalf("first run:\n%s", out)
	}
	writeRecipe(t, recipe, "member-lookup", "members-lookup", "${{ trigger.id }}")
	if out := events(); !strings.Contains(out, "members-lookup  0 ") {
		t.Errorf("renamed with its id: want nothing new\n%s", out)
	}
	writeRecipe(t, recipe, "member-lookup", "", "${{ trigger.id }}")
	if out := events(); !strings.Contains(out, "member-lookup  4 ") {
		t.Errorf("renamed without an id: want everything again\n%s", out)
	}
}

// versionHash is the hash of the version `runs show --format json` says
// the run last ran with; "" when it says none.
func versionHash(run map[string]any) string {
	v, _ := run["version"].(map[string]any)
	h, _ := v["hash"].(string)
	return h
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestGitRevision(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	if out, err := exec.Command("git", "log", "-1", "--format=%H", "--", "main.go").Output(); err != nil || len(out) == 0 {
		t.Skip("not in a git work tree with history")
	}
	if rev := gitRevision("main.go"); len(rev) < 12 {
		t.Errorf("gitRevision(main.go) = %q, want the commit that last changed it", rev)
	}
	outside := filepath.Join(t.TempDir(), "r.yaml")
	os.WriteFile(outside, []byte("x"), 0o644)
	if rev := gitRevision(outside); rev != "" {
		t.Errorf("gitRevision outside a work tree = %q, want none", rev)
	}
	t.Setenv("GIT_DIR", "") // restored after the test
	os.Unsetenv("GIT_DIR")
	if underGit(filepath.Dir(outside)) {
		t.Errorf("a temporary folder is taken for a git work tree: git would be started for each recipe in it")
	}
	if !underGit(".") {
		t.Errorf("this package's folder is not taken for a git work tree")
	}
	// Several recipes, asked about at once.
	rs := []*recipes.Recipe{{File: "main.go"}, {File: outside}, {File: "version.go"}}
	gitRevisions(rs)
	if len(rs[0].Revision) < 12 || rs[1].Revision != "" || len(rs[2].Revision) < 12 {
		t.Errorf("revisions %q, %q, %q; want main.go's and version.go's, none outside", rs[0].Revision, rs[1].Revision, rs[2].Revision)
	}
}
