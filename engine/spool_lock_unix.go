//go:build unix

package engine

import (
	"errors"
	"os"
	"syscall"
)

// spoolLock holds a spool directory for one runner: a second process
// appending to the same files would interleave its records.
type spoolLock struct{ f *os.File }

func lockSpool(path string) (*spoolLock, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return &spoolLock{f: f}, true, nil
}

func (l *spoolLock) unlock() { l.f.Close() }
