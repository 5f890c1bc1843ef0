package engine

// AddConnectionForTest opens one connection as Add does for a recipe's.
func (e *Engine) AddConnectionForTest(name string, c Connection) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err := e.open(name, c)
	return err
}
