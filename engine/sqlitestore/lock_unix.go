//go:build unix

package sqlitestore

import (
	"errors"
	"os"
	"syscall"
)

type liveLock struct {
	path string
	f    *os.File
}

// tryLock takes an exclusive lock on path without waiting; held is false
// when another open file holds it.
func tryLock(path string) (*liveLock, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
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
	return &liveLock{path: path, f: f}, true, nil
}

func (l *liveLock) unlock() { l.f.Close() }

// proofOfLife: a free lock proves its runner died.
const proofOfLife = true
