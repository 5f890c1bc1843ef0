package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

var errCrashed = errors.New("crashed")

// crashingStore dies at its at-th write: before applying it, or after
// applying it and before the runner hears back. Dead, it refuses all.
type crashingStore struct {
	engine.Store
	mu          sync.Mutex
	writes, at  int
	after, dead bool
	// pages counts only the page commits (Advance) towards at; other
	// writes still fail once it has died.
	pages bool
	// crashOn, when set, picks the crash point instead of at: the first
	// journal write whose steps it accepts.
	crashOn func(steps []engine.StepRecord) bool
}

func (c *crashingStore) write(fn func() error) error { return c.writeOf(false, nil, fn) }

func (c *crashingStore) writeOf(page bool, steps []engine.StepRecord, fn func() error) error {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return errCrashed
	}
	var crash bool
	switch {
	case c.crashOn != nil:
		crash = len(steps) > 0 && c.crashOn(steps)
	case c.pages && !page:
		c.mu.Unlock()
		return fn()
	default:
		c.writes++
		crash = c.writes == c.at
	}
	if crash && !c.after {
		c.dead = true
		c.mu.Unlock()
		return errCrashed
	}
	c.mu.Unlock()
	err := fn()
	if crash {
		c.mu.Lock()
		c.dead = true
		c.mu.Unlock()
		return errCrashed
	}
	return err
}

func (c *crashingStore) alive() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return errCrashed
	}
	return nil
}

func (c *crashingStore) Advance(ctx context.Context, recipe string, adv engine.Advance) (out []engine.Enqueued, err error) {
	err = c.writeOf(true, nil, func() error { out, err = c.Store.Advance(ctx, recipe, adv); return err })
	return out, err
}

func (c *crashingStore) Claim(ctx context.Context, req engine.ClaimRequest) (out []*engine.ClaimedRun, err error) {
	err = c.write(func() error { out, err = c.Store.Claim(ctx, req); return err })
	return out, err
}

func (c *crashingStore) Record(ctx context.Context, lease engine.Lease, steps []engine.StepRecord, fin *engine.Completion) error {
	return c.writeOf(false, steps, func() error { return c.Store.Record(ctx, lease, steps, fin) })
}

func (c *crashingStore) Cursor(ctx context.Context, recipe string) (string, error) {
	if err := c.alive(); err != nil {
		return "", err
	}
	return c.Store.Cursor(ctx, recipe)
}

func (c *crashingStore) Steps(ctx context.Context, run int64) ([]engine.StepRecord, error) {
	if err := c.alive(); err != nil {
		return nil, err
	}
	return c.Store.Steps(ctx, run)
}

// TestPipelineCrashResumesWithNothingLostOrTwice kills the file job's
// runner at write points spread over a run, inside poll pages and between
// them (before a write applies, and after it applies but before the runner
// hears), then resumes on the same store and files with a fresh runner.
// Every kept member is written exactly once, every line is accounted for.
func TestPipelineCrashResumesWithNothingLostOrTwice(t *testing.T) {
	const lines, batch = 300, 100
	opts := PipelineOptions{Lines: lines, Batch: batch, Concurrency: 4, Logger: hclog.NewNullLogger(), Registry: connectors.Default}
	setup := func(t *testing.T) (dir string, expected int) {
		dir = t.TempDir()
		f, err := os.Create(filepath.Join(dir, "members.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if expected, err = GenerateMembers(f, lines, 3); err != nil {
			t.Fatal(err)
		}
		return dir, expected
	}
	run := func(t *testing.T, dir string, store engine.Store) error {
		eng, err := pipelineEngine(opts, dir, store)
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err = eng.RunOnce(ctx)
		return err
	}
	open := func(t *testing.T, path string) *sqlitestore.Store {
		s, err := sqlitestore.Open(path, sqlitestore.Options{CheckpointEvery: -1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// A clean pass counts the write points.
	dir, _ := setup(t)
	probe := &crashingStore{Store: open(t, filepath.Join(dir, "s.db"))}
	if err := run(t, dir, probe); err != nil {
		t.Fatal(err)
	}
	probe.Store.Close()
	n := probe.writes
	if n < 20 {
		t.Fatalf("only %d writes in a clean pass", n)
	}
	points := []int{1, 2, 3, n / 2, n - 1, n}
	for k := 4; k < n; k += n / 10 {
		points = append(points, k)
	}
	for _, after := range []bool{false, true} {
		for _, k := range points {
			t.Run(fmt.Sprintf("crash %s write %d of %d", map[bool]string{false: "before", true: "after"}[after], k, n), func(t *testing.T) {
				dir, expected := setup(t)
				path := filepath.Join(dir, "s.db")
				cs := &crashingStore{Store: open(t, path), at: k, after: after}
				run(t, dir, cs) // fails: the store died
				cs.Store.Close()
				resumed := open(t, path)
				defer resumed.Close()
				if err := run(t, dir, resumed); err != nil {
					t.Fatalf("resuming: %v", err)
				}
				written, dups, err := countCredentials(filepath.Join(dir, "credentials.jsonl"))
				if err != nil {
					t.Fatal(err)
				}
				if written != expected || dups != 0 {
					t.Fatalf("%d credentials written (%d twice), want %d once each", written, dups, expected)
				}
			})
		}
	}
}

// TestPipelineCrashAtEachPageCommit kills the runner at each page's
// commit, before it applies and after it applies but before the runner
// hears back. The poller reads a page while the page before commits: a
// crash there loses the page read ahead, and the resumed runner reads it
// again from the last committed cursor, writing every kept member once.
func TestPipelineCrashAtEachPageCommit(t *testing.T) {
	const lines, batch = 300, 40
	opts := PipelineOptions{Lines: lines, Batch: batch, Concurrency: 4, Logger: hclog.NewNullLogger(), Registry: connectors.Default}
	pages := (lines + batch - 1) / batch
	for _, after := range []bool{false, true} {
		for k := 1; k <= pages; k++ {
			t.Run(fmt.Sprintf("crash %s page commit %d of %d", map[bool]string{false: "before", true: "after"}[after], k, pages), func(t *testing.T) {
				dir := t.TempDir()
				f, err := os.Create(filepath.Join(dir, "members.jsonl"))
				if err != nil {
					t.Fatal(err)
				}
				expected, err := GenerateMembers(f, lines, 5)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(dir, "s.db")
				run := func(store engine.Store) error {
					eng, err := pipelineEngine(opts, dir, store)
					if err != nil {
						t.Fatal(err)
					}
					defer eng.Close()
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					_, err = eng.RunOnce(ctx)
					return err
				}
				s, err := sqlitestore.Open(path, sqlitestore.Options{CheckpointEvery: -1})
				if err != nil {
					t.Fatal(err)
				}
				cs := &crashingStore{Store: s, at: k, after: after, pages: true}
				if err := run(cs); err == nil {
					t.Fatalf("the run went through a crash at page commit %d", k)
				}
				s.Close()
				resumed, err := sqlitestore.Open(path, sqlitestore.Options{CheckpointEvery: -1})
				if err != nil {
					t.Fatal(err)
				}
				defer resumed.Close()
				if err := run(resumed); err != nil {
					t.Fatalf("resuming: %v", err)
				}
				written, dups, err := countCredentials(filepath.Join(dir, "credentials.jsonl"))
				if err != nil {
					t.Fatal(err)
				}
				if written != expected || dups != 0 {
					t.Fatalf("%d credentials written (%d twice), want %d once each", written, dups, expected)
				}
			})
		}
	}
}
