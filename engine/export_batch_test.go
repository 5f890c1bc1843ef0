package engine

// QueuedBatchCalls counts the calls waiting in the engine's batchers, not
// yet sent.
func (e *Engine) QueuedBatchCalls() int {
	n := 0
	e.batchers.Range(func(_, v any) bool {
		b := v.(*batcher)
		b.mu.Lock()
		for _, it := range b.queue {
			if it.state == itemQueued {
				n++
			}
		}
		b.mu.Unlock()
		return true
	})
	return n
}
