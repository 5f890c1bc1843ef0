package sqlitestore

import "github.com/memberflow/memberflow/engine"

// FailAt makes the store fail a write at a named point ("fin": before a
// run's outcome is written, after its steps) when fail says so.
func (s *Store) FailAt(fail func(point string, fin *engine.Completion) error) { s.fault = fail }

// CheckLog runs the check of the write-ahead log's identity that the
// checkpoint loop runs every period.
func (s *Store) CheckLog() error { return s.checkLog() }
