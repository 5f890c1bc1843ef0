//go:build !unix

package engine

// spoolLock cannot hold a directory here: one runner per spool is the
// operator's to keep.
type spoolLock struct{}

func lockSpool(string) (*spoolLock, bool, error) { return &spoolLock{}, true, nil }

func (l *spoolLock) unlock() {}
