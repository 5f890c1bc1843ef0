package engine

// LeaseBookkeepingForTest counts what the renewals keep besides the runs
// in flight: the runs still ending here (not named, not to be released)
// and the claims in flight. Both are empty once Run or RunOnce returned;
// one left over would hold back every later release for good.
func (e *Engine) LeaseBookkeepingForTest() (ending, claiming int) {
	e.inflightMu.Lock()
	defer e.inflightMu.Unlock()
	return len(e.ending), len(e.claiming)
}
