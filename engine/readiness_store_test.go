package engine_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// TestNotReadyWhileTheStoreCannotWrite: a SQLite store whose reads
// answer but whose writes fail (here another process holds its write
// lock, as a sqlite3 shell left in BEGIN IMMEDIATE would; a full disk is
// alike) makes /readyz fail its store check, naming the store and the
// cause; it is ready again after the next write succeeds.
func TestNotReadyWhileTheStoreCannotWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	store, err := sqlitestore.Open(path, sqlitestore.Options{BusyTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, err := engine.New(engine.Options{Store: store, Owner: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	storeCheck := func() engine.Check {
		for _, c := range e.Checks(context.Background()) {
			if c.Name == "store" {
				return c
			}
		}
		t.Fatal("no store check")
		return engine.Check{}
	}
	if c := storeCheck(); !c.OK {
		t.Fatalf("store check before any failure: %+v", c)
	}

	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := store.Advance(ctx, "r", engine.Advance{Cursor: ptr("1")}); err == nil {
		t.Fatal("a write under another process's lock succeeded")
	}
	c := storeCheck()
	if c.OK || !strings.Contains(c.Error, "writes fail") || !strings.Contains(c.Error, path) ||
		!strings.Contains(c.Error, sqlitestore.ErrLocked.Error()) {
		t.Fatalf("store check while writes fail: %+v", c)
	}
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Advance(ctx, "r", engine.Advance{Cursor: ptr("1")}); err != nil {
		t.Fatalf("after the lock was released: %v", err)
	}
	if c := storeCheck(); !c.OK {
		t.Fatalf("store check after a write succeeded: %+v", c)
	}
}

func ptr(s string) *string { return &s }
