//go:build race

package engine_test

// raceEnabled: the race detector makes the embedded SQLite about twenty
// times slower; the longest matrices sample their cases under it.
const raceEnabled = true
