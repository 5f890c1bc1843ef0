package sqlitestore

import (
	"database/sql"
	"errors"
	"os"
	"testing"
	"time"
)

// lockedAsMigrating holds path's write lock, as a migration does, and
// with migrating the migration lock too, until the returned func runs.
func lockedAsMigrating(t *testing.T, path string, migrating bool) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	var l *liveLock
	if migrating {
		s := &Store{path: path}
		if err := os.MkdirAll(s.lockDir(), 0o755); err != nil {
			t.Fatal(err)
		}
		var held bool
		if l, held, err = tryLock(s.migrationLockPath()); err != nil || !held {
			t.Fatalf("taking the migration lock: held %v, %v", held, err)
		}
	}
	return func() {
		db.Exec(`COMMIT`)
		db.Close()
		if l != nil {
			l.unlock()
		}
	}
}

// An open that finds another memberflow migrating the store waits for
// the migration, past its own busy timeout; one that finds the store
// locked by anything else gives up at its busy timeout, as before.
func TestOpenWaitsForAnotherMigrationPastItsBusyTimeout(t *testing.T) {
	if !proofOfLife {
		t.Skip("no file locks on this system")
	}
	const busy = 200 * time.Millisecond
	const migration = 1500 * time.Millisecond

	path := oldStore(t, "schema-v7.sql")
	release := lockedAsMigrating(t, path, true)
	time.AfterFunc(migration, release)
	start := time.Now()
	s, err := Open(path, Options{BusyTimeout: busy})
	if err != nil {
		t.Fatalf("Open during another migration, after %s: %v", time.Since(start), err)
	}
	s.Close()
	if took := time.Since(start); took < migration-100*time.Millisecond {
		t.Errorf("Open returned after %s, before the migration holding the store ended (%s)", took, migration)
	}

	other := oldStore(t, "schema-v7.sql")
	release = lockedAsMigrating(t, other, false)
	defer release()
	start = time.Now()
	if _, err := Open(other, Options{BusyTimeout: busy}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a store another process holds locked = %v, want ErrLocked", err)
	}
	if took := time.Since(start); took > migration {
		t.Errorf("Open of a store locked by no migration gave up after %s, want about its busy timeout (%s)", took, busy)
	}
}
