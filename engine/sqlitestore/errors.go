package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"modernc.org/sqlite"
)

// Storage failures an operator must act on, each matched by errors.Is on
// what Open and the writes return. docs/runner.md says what to do after
// each.
var (
	// ErrNoDirectory: the store's directory does not exist.
	ErrNoDirectory = errors.New("the store's directory does not exist")
	// ErrReadOnly: the file or its directory cannot be written (a
	// read-only file system, permissions).
	ErrReadOnly = errors.New("the store cannot be written")
	// ErrDiskFull: the file system has no room for the store's writes.
	ErrDiskFull = errors.New("the disk holding the store is full")
	// ErrCorrupt: the file is damaged or is not a memberflow store.
	ErrCorrupt = errors.New("the store is damaged")
	// ErrLocked: another process held a write transaction on the file
	// for longer than the busy timeout (a sqlite3 shell left in BEGIN, a
	// copy tool, a stuck process).
	ErrLocked = errors.New("another process holds the store's write lock")
	// ErrLogDeleted: the store's write-ahead log (its -wal file) was
	// deleted or replaced while this process had it open. Commits would
	// go on into a file no other process sees and a crash would lose
	// them: the store copies what was committed into the database file
	// and refuses every write until it is opened again.
	ErrLogDeleted = errors.New("the store's write-ahead log was deleted while in use")
)

// SQLite's primary result codes (https://sqlite.org/rescode.html).
const (
	sqlitePerm     = 3
	sqliteReadOnly = 8
	sqliteIOErr    = 10
	sqliteBusy     = 5
	sqliteCorrupt  = 11
	sqliteFull     = 13
	sqliteCantOpen = 14
	sqliteNotADB   = 26
)

// kindOf maps an SQLite result code (primary or extended) to the storage
// failure it reports, nil for the others.
func kindOf(code int) error {
	switch code & 0xff {
	case sqliteReadOnly, sqlitePerm:
		return ErrReadOnly
	case sqliteCorrupt, sqliteNotADB:
		return ErrCorrupt
	case sqliteFull:
		return ErrDiskFull
	case sqliteBusy:
		return ErrLocked
	}
	return nil
}

// storageError carries one of the kinds above with the driver's error.
type storageError struct {
	kind error
	err  error
}

func (e *storageError) Error() string        { return e.kind.Error() + ": " + e.err.Error() }
func (e *storageError) Unwrap() []error      { return []error{e.kind, e.err} }
func (e *storageError) Is(target error) bool { return target == e.kind }

// classify wraps err with the storage failure it reports, if any: by the
// SQLite code, else by the system error under it (ENOSPC, EROFS).
func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, k := range []error{ErrNoDirectory, ErrReadOnly, ErrDiskFull, ErrCorrupt, ErrLocked, ErrLogDeleted} {
		if errors.Is(err, k) {
			return err
		}
	}
	var kind error
	var se *sqlite.Error
	if errors.As(err, &se) {
		kind = kindOf(se.Code())
	}
	switch {
	case kind != nil:
	case errors.Is(err, syscall.ENOSPC):
		kind = ErrDiskFull
	case errors.Is(err, syscall.EROFS), errors.Is(err, fs.ErrPermission):
		kind = ErrReadOnly
	case se != nil && se.Code()&0xff == sqliteIOErr && strings.Contains(strings.ToLower(se.Error()), "disk is full"):
		kind = ErrDiskFull
	default:
		return err
	}
	return &storageError{kind: kind, err: err}
}

// checkPlace tells the failures an open would report vaguely ("unable to
// open database file") apart before SQLite tries: a missing directory, a
// directory or file that cannot be written. Nothing is created.
func checkPlace(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return &storageError{kind: ErrNoDirectory, err: fmt.Errorf("%s: %w", dir, err)}
	}
	if err != nil {
		return classify(err)
	}
	if !st.IsDir() {
		return &storageError{kind: ErrNoDirectory, err: fmt.Errorf("%s is not a directory", dir)}
	}
	// WAL needs the -wal and -shm files beside the store: the directory
	// must be writable even when the file exists.
	probe, err := os.CreateTemp(dir, ".memberflow-probe-*")
	if err != nil {
		return classify(fmt.Errorf("writing in %s: %w", dir, err))
	}
	name := probe.Name()
	probe.Close()
	os.Remove(name)
	if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return classify(fmt.Errorf("opening %s for writing: %w", path, err))
	}
	return nil
}

// failing reports whether err is a failure of the storage itself (the
// file, its disk, its lock), as opposed to a write refused for what it
// holds: the failures that make every write fail until someone acts.
func failing(err error) bool {
	if err == nil {
		return false
	}
	for _, k := range []error{ErrReadOnly, ErrDiskFull, ErrCorrupt, ErrLocked, ErrLogDeleted} {
		if errors.Is(err, k) {
			return true
		}
	}
	var se *sqlite.Error
	return errors.As(err, &se) && (se.Code()&0xff == sqliteIOErr || se.Code()&0xff == sqliteCantOpen)
}

// isBusy is SQLITE_BUSY: another connection held a lock SQLite would not
// wait for (a switch to WAL, or a lock upgrade it refuses to avoid a
// deadlock), so the busy timeout did not apply.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqliteBusy
}

// quickCheck runs PRAGMA quick_check, which reads every page (not the
// index contents): damage anywhere in the file is found before anything
// is written.
func quickCheck(db *sql.DB) error {
	rows, err := db.QueryContext(context.Background(), `PRAGMA quick_check(10)`)
	if err != nil {
		return classify(err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return classify(err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return classify(err)
	}
	if len(problems) > 0 {
		return &storageError{kind: ErrCorrupt, err: fmt.Errorf("quick_check: %s", strings.Join(problems, "; "))}
	}
	return nil
}

// IntegrityCheck runs PRAGMA integrity_check, which also compares every
// index with its table and checks row order and NOT NULL: damage that
// quick_check (run at every open) misses, such as a copy torn by cp
// while a runner wrote. It reads the whole file, so it is an operator's
// command (memberflow store check), not part of opening. It returns the
// problems found, at most limit; none when the store is sound.
func (s *Store) IntegrityCheck(ctx context.Context, limit int) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, fmt.Sprintf(`PRAGMA integrity_check(%d)`, max(limit, 1)))
	if err != nil {
		return nil, fmt.Errorf("integrity_check: %w", classify(err))
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, fmt.Errorf("integrity_check: %w", classify(err))
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("integrity_check: %w", classify(err))
	}
	return problems, nil
}
