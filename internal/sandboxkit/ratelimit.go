package sandboxkit

import (
	"sync"
	"time"
)

// Window is a fixed-window request counter, the way the real services
// count (100 per 10 s, 2,000 per 5 min).
type Window struct {
	Limit  int
	Length time.Duration
	Now    func() time.Time // nil: time.Now

	mu    sync.Mutex
	start time.Time
	used  int
}

// Take counts one request. It reports whether the request is allowed, how
// many remain in the window, and when the window resets.
func (w *Window) Take() (ok bool, remaining int, reset time.Time) {
	if w == nil || w.Limit <= 0 || w.Length <= 0 {
		return true, -1, time.Time{}
	}
	now := time.Now()
	if w.Now != nil {
		now = w.Now()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.start) >= w.Length {
		w.start, w.used = now, 0
	}
	reset = w.start.Add(w.Length)
	if w.used >= w.Limit {
		return false, 0, reset
	}
	w.used++
	return true, w.Limit - w.used, reset
}
