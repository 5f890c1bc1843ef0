package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// A backup taken while a runner writes holds every commit, those still in
// the write-ahead log included (a cp of the file misses them: docs/deploy.md
// told operators to copy the file while it runs), and opens as a store.
func TestStoreBackupHoldsTheCommitsStillInTheLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.db")
	// A runner's store that never checkpoints: its commits stay in the log.
	s, err := sqlitestore.Open(path, sqlitestore.Options{CheckpointEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var events []engine.NewEvent
	for i := 0; i < 50; i++ {
		id := fmt.Sprint("u", i)
		events = append(events, engine.NewEvent{ID: id, Subject: "user/" + id, OrderingKey: id, Connector: "c", Data: json.RawMessage(`{}`)})
	}
	if _, err := s.Advance(context.Background(), "certify", engine.Advance{Events: events}); err != nil {
		t.Fatal(err)
	}

	to := filepath.Join(dir, "backup.db")
	code, out, errs := cli(t, "store", "backup", "--store", path, "--to", to)
	if code != exitOK || !strings.Contains(out, "backed up to "+to) {
		t.Fatalf("store backup: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(to + "-wal"); err == nil {
		if st, _ := os.Stat(to + "-wal"); st.Size() > 0 {
			t.Fatalf("the backup has a log of its own (%d bytes): it is not one file", st.Size())
		}
	}
	code, out, errs = cli(t, "runs", "list", "--store", to, "--format", "json")
	var runs []engine.RunInfo
	if code != exitOK || json.Unmarshal([]byte(out), &runs) != nil {
		t.Fatalf("runs list of the backup: exit %d\n%s%s", code, out, errs)
	}
	if len(runs) != len(events) {
		t.Fatalf("the backup holds %d runs, want the %d committed", len(runs), len(events))
	}

	// An existing file is never overwritten, and --to is required.
	if code, _, errs := cli(t, "store", "backup", "--store", path, "--to", to); code != exitFail || !strings.Contains(errs, "exists") {
		t.Errorf("backup onto an existing file: exit %d, %s", code, errs)
	}
	if code, _, errs := cli(t, "store", "backup", "--store", path); code != exitUsage {
		t.Errorf("backup without --to: exit %d, want usage (%s)", code, errs)
	}
}

// store check finds damage that the check at every open lets through: an
// index that no longer matches its table (as a copy torn by cp can leave
// it), and says so with exit status 1.
func TestStoreCheckFindsWhatTheOpenLetsThrough(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := sqlitestore.Open(path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var events []engine.NewEvent
	for i := 0; i < 20; i++ {
		id := fmt.Sprint("u", i)
		events = append(events, engine.NewEvent{ID: id, Subject: "user/" + id, OrderingKey: "key-" + id, Connector: "c", Data: json.RawMessage(`{}`)})
	}
	if _, err := s.Advance(context.Background(), "certify", engine.Advance{Events: events}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := cli(t, "store", "check", "--store", path); code != exitOK || !strings.Contains(out, "ok") {
		t.Fatalf("check of a sound store: exit %d\n%s%s", code, out, errs)
	}

	// The index of runs by recipe now claims to be by ordering key: its
	// entries no longer match the table, its pages are intact.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`PRAGMA writable_schema=ON`,
		`UPDATE sqlite_schema SET sql = 'CREATE INDEX runs_by_recipe ON runs(okey, id)' WHERE name = 'runs_by_recipe'`,
		`PRAGMA writable_schema=OFF`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	if code, out, errs := cli(t, "runs", "list", "--store", path); code != exitOK {
		t.Fatalf("the damage is one the open does not see, yet runs list failed: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := cli(t, "store", "check", "--store", path)
	if code != exitFail || !strings.Contains(out, "runs_by_recipe") || !strings.Contains(errs, "damaged") {
		t.Fatalf("check of a damaged store: exit %d, want 1 naming the index\n%s%s", code, out, errs)
	}
}
