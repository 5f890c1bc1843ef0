package sqlitestore

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// TestKindOfCodes: SQLite's result codes, primary and extended, map to
// the failure the operator acts on; the others are left alone.
func TestKindOfCodes(t *testing.T) {
	for _, tc := range []struct {
		code int
		want error
	}{
		{13, ErrDiskFull},       // SQLITE_FULL
		{8, ErrReadOnly},        // SQLITE_READONLY
		{8 | 6<<8, ErrReadOnly}, // SQLITE_READONLY_DIRECTORY
		{3, ErrReadOnly},        // SQLITE_PERM
		{11, ErrCorrupt},        // SQLITE_CORRUPT
		{11 | 1<<8, ErrCorrupt}, // SQLITE_CORRUPT_VTAB
		{26, ErrCorrupt},        // SQLITE_NOTADB
		{5, ErrLocked},          // SQLITE_BUSY: the busy timeout ran out
		{19, nil},               // SQLITE_CONSTRAINT: a bug, not storage
		{10 | 3<<8, nil},        // SQLITE_IOERR_WRITE without ENOSPC
		{14, nil},               // SQLITE_CANTOPEN: told apart before opening
	} {
		if got := kindOf(tc.code); got != tc.want {
			t.Errorf("kindOf(%d) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

// TestClassifySystemErrors: without an SQLite code, the system error
// under a failure decides.
func TestClassifySystemErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{fmt.Errorf("write: %w", syscall.ENOSPC), ErrDiskFull},
		{fmt.Errorf("open: %w", syscall.EROFS), ErrReadOnly},
		{fmt.Errorf("open: %w", syscall.EACCES), ErrReadOnly},
	} {
		got := classify(tc.err)
		if !errors.Is(got, tc.want) || !errors.Is(got, errors.Unwrap(tc.err)) {
			t.Errorf("classify(%v) = %v, want %v wrapping the cause", tc.err, got, tc.want)
		}
	}
	plain := errors.New("something else")
	if got := classify(plain); got != plain {
		t.Errorf("classify(%v) = %v, want it unchanged", plain, got)
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
}
