//go:build race

package engine_test

// raceDetector is set when the tests run under the race detector, which
// slows the runner down many times over on a loaded machine.
const raceDetector = true
