package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/files"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

// appendsDone accepts a journal write that records an append as done
// once a batch of several appends has landed: crashing there leaves the
// batch's lines in the file and their outcomes unrecorded (or, after,
// only this one's).
func appendsDone(landed *atomic.Int32) func([]engine.StepRecord) bool {
	return func(steps []engine.StepRecord) bool {
		if landed.Load() < 2 {
			return false
		}
		for _, s := range steps {
			if s.Status == engine.StepSucceeded && s.Action == "files.append" {
				return true
			}
		}
		return false
	}
}

// slowFirstAppend is the file connector whose first batch write waits a
// moment, so that the next calls queue into a batch of several; it
// records the largest batch written.
func slowFirstAppend(landed *atomic.Int32) *connectors.Registry {
	spec := files.Spec()
	a := spec.Action("append")
	run, runOne := a.Batch.Run, a.Run
	var first atomic.Bool
	// The first call, which goes alone (by Run), holds the others back.
	a.Run = func(ctx context.Context, conn connectors.Conn, input map[string]any) (*connectors.Result, error) {
		if !first.Swap(true) {
			time.Sleep(100 * time.Millisecond)
		}
		return runOne(ctx, conn, input)
	}
	a.Batch = &connectors.BatchForm{Max: a.Batch.Max, Run: func(ctx context.Context, conn connectors.Conn, inputs []map[string]any) ([]connectors.ItemResult, error) {
		if !first.Swap(true) {
			time.Sleep(100 * time.Millisecond)
		}
		res, err := run(ctx, conn, inputs)
		if n := int32(len(inputs)); err == nil && n > landed.Load() {
			landed.Store(n)
		}
		return res, err
	}}
	reg := connectors.NewRegistry()
	if err := reg.Register(spec); err != nil {
		panic(err)
	}
	return reg
}

// TestPipelineCrashInsideABatch kills the file job's runner after a batch
// of appends landed in one write and before their outcomes are journaled
// (and, in the second case, after the first of them is). The next runner
// settles each in-doubt append by finding its line: every kept member is
// written exactly once.
func TestPipelineCrashInsideABatch(t *testing.T) {
	const lines = 300
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("after=%v", after), func(t *testing.T) {
			dir := t.TempDir()
			f, err := os.Create(filepath.Join(dir, "members.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			expected, err := GenerateMembers(f, lines, 3)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			var landed atomic.Int32
			opts := PipelineOptions{Lines: lines, Batch: 100, Concurrency: 8, Logger: hclog.NewNullLogger(), Registry: slowFirstAppend(&landed)}
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
			path := filepath.Join(dir, "s.db")
			s, err := sqlitestore.Open(path, sqlitestore.Options{CheckpointEvery: -1})
			if err != nil {
				t.Fatal(err)
			}
			cs := &crashingStore{Store: s, after: after, crashOn: appendsDone(&landed)}
			run(cs) // fails: the store died
			s.Close()
			if !cs.dead {
				t.Fatalf("no batch of several appends before the end (largest %d)", landed.Load())
			}
			before, _, err := countCredentials(filepath.Join(dir, "credentials.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
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
				t.Fatalf("%d credentials written (%d twice), want %d once each (%d were written at the crash)", written, dups, expected, before)
			}
			t.Logf("crashed with %d of %d written, largest batch %d", before, expected, landed.Load())
		})
	}
}
