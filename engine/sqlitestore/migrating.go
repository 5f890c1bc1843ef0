package sqlitestore

import (
	"os"
	"path/filepath"
)

// A migration of an existing store holds migrating.lock (beside the
// runners' proofs of life) for as long as it runs. Some migrations
// rewrite a table (11: steps), which takes tens of seconds on a large
// store, longer than the busy timeout: another memberflow opening the
// store meanwhile (the runners an operator starts after the first, or
// `memberflow runs`) waits for the migration to end instead of failing
// with the store locked. The lock is the process's: it ends with it, so
// a migration killed midway (rolled back) holds nobody up.
func (s *Store) migrationLockPath() string { return filepath.Join(s.lockDir(), "migrating.lock") }

// holdMigrationLock takes the lock for a migration about to run; nil
// when it cannot (no lock file can be made there: others then wait only
// as long as their busy timeout, as before).
func (s *Store) holdMigrationLock() *liveLock {
	if err := os.MkdirAll(s.lockDir(), 0o755); err != nil {
		return nil
	}
	l, held, err := tryLock(s.migrationLockPath())
	if err != nil || !held {
		return nil
	}
	return l
}

// migrationUnderWay tells whether another process holds the lock of a
// migration of this store.
func (s *Store) migrationUnderWay() bool {
	if _, err := os.Stat(s.migrationLockPath()); err != nil {
		return false // never migrated by a memberflow that takes it
	}
	l, held, err := tryLock(s.migrationLockPath())
	if err != nil {
		return false
	}
	if held {
		l.unlock()
		return false
	}
	return true
}
