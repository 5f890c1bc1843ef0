package engine

import "time"

// SetOncePollBackoffForTest shortens the one-shot poll retry wait and
// returns the function that restores it.
func SetOncePollBackoffForTest(d time.Duration) (restore func()) {
	old := oncePollBackoff
	oncePollBackoff = d
	return func() { oncePollBackoff = old }
}
