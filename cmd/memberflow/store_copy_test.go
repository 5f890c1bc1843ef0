package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// copyRecipe reads members.jsonl and appends each record's id to out.jsonl.
const copyRecipe = `version: 1
name: copyjob
connections:
  files: { connector: file }
trigger:
  uses: files.records
  with: { path: members.jsonl, key: id }
steps:
  - uses: files.append
    with: { path: out.jsonl, record: { id: "${{ trigger.id }}" } }
`

// TestStoreCopy: `store copy` moves the cursors, so a runner on the
// destination starts where the source stopped; it refuses while the
// source has runs not finished (their events are behind the cursor it
// would move: the destination would never run them) and says how to
// finish them; it names the dead letters that stay behind.
func TestStoreCopy(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("copyjob.yaml", copyRecipe)
	write("members.jsonl", "{\"id\":\"a\"}\n{\"id\":\"b\"}\n")
	src, dst := filepath.Join(dir, "src.db"), filepath.Join(dir, "dst.db")
	if code, out, errs := cli(t, "run", "--once", "--store", src, "--log-level", "off", "copyjob.yaml"); code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}

	// A run left queued in the source, as a runner stopped before it ran.
	store, err := sqlitestore.Open(src, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Advance(context.Background(), "copyjob", engine.Advance{
		Events: []engine.NewEvent{{ID: "left-behind", Subject: "record/z", Connector: "file", Data: json.RawMessage(`{"id":"z"}`)}},
	}); err != nil {
		t.Fatal(err)
	}
	store.Close()

	code, out, errs := cli(t, "store", "copy", "--from", src, "--to", dst)
	if code != exitFail || !strings.Contains(errs, "1 run(s) not finished (1 queued, 0 running)") ||
		!strings.Contains(errs, "memberflow run --once --store "+src) {
		t.Fatalf("copy with a queued run: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("a refused copy made the destination: %v", err)
	}

	// Finished in the source, the copy goes through.
	if code, out, errs := cli(t, "run", "--once", "--store", src, "--log-level", "off", "copyjob.yaml"); code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = cli(t, "store", "copy", "--from", src, "--to", dst)
	if code != exitOK || !strings.Contains(out, "copied 1 cursor(s)") || strings.Contains(out, "dead letter") {
		t.Fatalf("copy: exit %d\n%s%s", code, out, errs)
	}
	lines, err := os.ReadFile("out.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if string(lines) != "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"z\"}\n" {
		t.Fatalf("out.jsonl:\n%s", lines)
	}

	// The destination starts where the source stopped: a record appended
	// is the only one it reads.
	write("members.jsonl", "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n")
	if code, out, errs := cli(t, "run", "--once", "--store", dst, "--log-level", "off", "copyjob.yaml"); code != exitOK ||
		!strings.Contains(out, "1 record read") {
		t.Fatalf("run on the copy: exit %d\n%s%s", code, out, errs)
	}

	// Dead letters stay behind, and the copy says so: the source reads
	// the appended record with a recipe whose append fails.
	write("failing.yaml", strings.Replace(copyRecipe, "path: out.jsonl", "path: members.jsonl/no", 1))
	if code, out, errs := cli(t, "run", "--once", "--store", src, "--log-level", "off", "failing.yaml"); code != exitFail {
		t.Fatalf("a run meant to fail: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = cli(t, "store", "copy", "--from", src, "--to", filepath.Join(dir, "dst2.db"))
	if code != exitOK || !strings.Contains(out, "1 dead letter(s) stay in "+src) {
		t.Fatalf("copy with a dead letter: exit %d\n%s%s", code, out, errs)
	}

	// A store of its own is never overwritten: not the source itself, not
	// one with dead letters, not one that records another account. A
	// copy into a destination an earlier copy filled goes through again.
	if code, out, errs := cli(t, "store", "copy", "--from", src, "--to", "./src.db"); code != exitUsage || !strings.Contains(errs, "the same store") {
		t.Fatalf("copy onto itself: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := cli(t, "store", "copy", "--from", dst, "--to", src); code != exitFail || !strings.Contains(errs, "1 dead letter(s) of its own; nothing was copied") {
		t.Fatalf("copy onto a store with a dead letter: exit %d\n%s%s", code, out, errs)
	}
	other := filepath.Join(dir, "other.db")
	os3, err := sqlitestore.Open(other, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := json.Marshal(engine.ConnectionIdentity{Connection: "members", Connector: "memberships"})
	if _, err := os3.SwapMeta(context.Background(), "identity/members", 0, id); err != nil {
		t.Fatal(err)
	}
	os3.Close()
	if code, out, errs := cli(t, "store", "copy", "--from", dst, "--to", other); code != exitFail || !strings.Contains(errs, `already records accounts the source does not: "members"`) {
		t.Fatalf("copy onto a store of another account: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := cli(t, "store", "copy", "--from", src, "--to", filepath.Join(dir, "dst2.db")); code != exitOK {
		t.Fatalf("the same copy again: exit %d\n%s%s", code, out, errs)
	}
}

// Queued runs of a recipe this run did not load are named: no pass runs
// them (a dead letter replayed for a recipe run from another folder).
func TestRunOnceNamesRunsQueuedForRecipesNotLoaded(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("copyjob.yaml", []byte(copyRecipe), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("members.jsonl", []byte("{\"id\":\"a\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "m.db")
	store, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Advance(context.Background(), "elsewhere", engine.Advance{
		Events: []engine.NewEvent{{ID: "e1", Subject: "record/e1", Connector: "file", Data: json.RawMessage(`{"id":"e1"}`)}},
	}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	code, out, errs := cli(t, "run", "--once", "--store", path, "--log-level", "off", "copyjob.yaml")
	if code != exitOK || !strings.Contains(errs, "1 queued run(s) in "+path+" belong to recipes this run did not load: elsewhere (1)") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}
