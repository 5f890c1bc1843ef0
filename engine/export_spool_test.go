package engine

// SetCrashPoint makes the spool ask f at each of its crash points
// (before-write, torn-write, before-sync, after-sync, before-remove);
// true kills it there, as if the process had died: everything it does
// afterwards fails.
func (s *Spool) SetCrashPoint(f func(point string) bool) {
	s.mu.Lock()
	s.crash = f
	s.mu.Unlock()
}

// Dead says whether a crash point killed the spool.
func (s *Spool) Dead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}
