package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// holdWriteLock opens a second connection to path, as another process
// would (a sqlite3 shell), and holds a write transaction until release.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			db.Close()
		}
	}
	t.Cleanup(release)
	return release
}

// TestOpenUnderAnotherProcesssWriteLock: a store whose write lock another
// connection holds for longer than the busy timeout is refused at open
// with ErrLocked (not an unexplained "database is locked" under
// "migrating"), and opens once the lock is released.
func TestOpenUnderAnotherProcesssWriteLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	open(t, path).Close()
	release := holdWriteLock(t, path)
	_, err := sqlitestore.Open(path, sqlitestore.Options{BusyTimeout: 100 * time.Millisecond})
	if !errors.Is(err, sqlitestore.ErrLocked) {
		t.Fatalf("Open = %v, want ErrLocked", err)
	}
	if strings.Contains(err.Error(), "migrating") {
		t.Errorf("the error speaks of a migration there is none of: %v", err)
	}
	release()
	s, err := sqlitestore.Open(path, sqlitestore.Options{BusyTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("after the lock was released: %v", err)
	}
	s.Close()
}

// TestWriteErrorWhileLocked: while another process holds the write
// lock, writes fail with ErrLocked and WriteError (readiness) says so,
// with the store's path, though reads still answer; once the lock is
// released the next write succeeds and WriteError is nil again.
func TestWriteErrorWhileLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := sqlitestore.Open(path, sqlitestore.Options{BusyTimeout: 100 * time.Millisecond, CheckpointEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Advance(ctx, "r", engine.Advance{Cursor: str("1"), Events: []engine.NewEvent{ev("e1", "k1")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteError(); err != nil {
		t.Fatalf("WriteError after a commit = %v", err)
	}
	release := holdWriteLock(t, path)
	_, err = s.Advance(ctx, "r", engine.Advance{Cursor: str("2"), Events: []engine.NewEvent{ev("e2", "k2")}})
	if !errors.Is(err, sqlitestore.ErrLocked) {
		t.Fatalf("Advance under another's lock = %v, want ErrLocked", err)
	}
	if _, err := s.Cursor(ctx, "r"); err != nil {
		t.Fatalf("reads fail too: %v", err)
	}
	werr := s.WriteError()
	if !errors.Is(werr, sqlitestore.ErrLocked) || !strings.Contains(werr.Error(), path) {
		t.Fatalf("WriteError = %v, want ErrLocked naming %s", werr, path)
	}
	release()
	if _, err := s.Advance(ctx, "r", engine.Advance{Cursor: str("2"), Events: []engine.NewEvent{ev("e2", "k2")}}); err != nil {
		t.Fatalf("after the lock was released: %v", err)
	}
	if err := s.WriteError(); err != nil {
		t.Fatalf("WriteError after a commit succeeded again = %v", err)
	}
}

// TestLogDeletedUnderTheStore: the -wal file deleted while the store is
// open (an operator's mistake). SQLite goes on writing into the deleted
// file, which a crash would lose and no other process sees; the store
// finds it, copies every commit into the database file, and refuses
// writes (ErrLogDeleted) and Sync (so that no webhook delivery is
// acknowledged on it) until it is opened again.
func TestLogDeletedUnderTheStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	// No background checkpoints: every commit below stays in the log.
	s, err := sqlitestore.Open(path, sqlitestore.Options{CheckpointEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		if _, err := s.Advance(ctx, "r", engine.Advance{Cursor: str(fmt.Sprint(i)), Events: []engine.NewEvent{ev(fmt.Sprintf("e%d", i), "k")}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(path + "-wal"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); !errors.Is(err, sqlitestore.ErrLogDeleted) {
		t.Fatalf("Sync after the log was deleted = %v, want ErrLogDeleted", err)
	}
	if _, err := s.Advance(ctx, "r", engine.Advance{Cursor: str("late"), Events: []engine.NewEvent{ev("late", "k")}}); !errors.Is(err, sqlitestore.ErrLogDeleted) {
		t.Fatalf("a write after the log was deleted = %v, want ErrLogDeleted", err)
	}
	if err := s.WriteError(); !errors.Is(err, sqlitestore.ErrLogDeleted) {
		t.Errorf("WriteError = %v, want ErrLogDeleted", err)
	}
	// What survives a kill -9 now is the database file alone: a copy of
	// it, without log or shm, holds every commit.
	cp := filepath.Join(dir, "copy.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c := open(t, cp)
	defer c.Close()
	if cur, err := c.Cursor(ctx, "r"); err != nil || cur != "49" {
		t.Fatalf("the database file alone has cursor %q (%v), want 49: commits were left in the deleted log", cur, err)
	}
}
