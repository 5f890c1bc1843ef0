package files

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// TestAppendBatchWritesOnceWithLineNumbersPerItem: each path's lines go
// out together; each item has its own line number or its own error.
func TestAppendBatchWritesOnceWithLineNumbersPerItem(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir)
	a := Spec().Action("append")
	write(t, dir, "a.jsonl", "{\"old\":1}\n{\"old\":2}\n")
	inputs := []map[string]any{
		{"path": "a.jsonl", "record": map[string]any{"n": 1}},
		{"path": "b/b.jsonl", "record": map[string]any{"n": 2}},
		{"path": "a.jsonl", "record": "not an object"},
		{"path": "a.jsonl", "record": map[string]any{"n": 3}},
		{"path": "", "record": map[string]any{"n": 4}},
		// Half-encoded before it fails: nothing of it reaches the file.
		{"path": "a.jsonl", "record": map[string]any{"a": "x", "z": math.NaN()}},
	}
	res, err := a.Batch.Run(context.Background(), f, inputs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(inputs) {
		t.Fatalf("%d results for %d inputs", len(res), len(inputs))
	}
	wantLine := []any{3, 1, nil, 4, nil, nil}
	for i, r := range res {
		switch {
		case wantLine[i] == nil && r.Err == nil:
			t.Errorf("item %d: no error", i)
		case wantLine[i] != nil && (r.Err != nil || r.Result.Output.(map[string]any)["line"] != wantLine[i]):
			t.Errorf("item %d: %+v %v, want line %v", i, r.Result, r.Err, wantLine[i])
		}
	}
	if res[2].Err == nil || !strings.Contains(res[2].Err.Error(), "record must be an object") {
		t.Errorf("item 2's error: %v", res[2].Err)
	}
	if res[5].Err == nil || !strings.Contains(res[5].Err.Error(), "encoding the record") {
		t.Errorf("item 5's error: %v", res[5].Err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "a.jsonl"))
	if string(got) != "{\"old\":1}\n{\"old\":2}\n{\"n\":1}\n{\"n\":3}\n" {
		t.Errorf("a.jsonl = %q", got)
	}
	// Run continues the count the batch left.
	r, err := a.Run(context.Background(), f, map[string]any{"path": "a.jsonl", "record": map[string]any{"n": 5}})
	if err != nil || r.Output.(map[string]any)["line"] != 5 {
		t.Fatalf("%v %v", r, err)
	}
	// Each item settles to its own line.
	for i, want := range map[int]int{0: 3, 3: 4} {
		s, happened, err := a.Settle(context.Background(), f, inputs[i])
		if err != nil || !happened || s.Output.(map[string]any)["line"] != want {
			t.Errorf("settle item %d: %v %v %v, want line %d", i, s, happened, err, want)
		}
	}
}

func TestAppendBatchDryRunPlansAsRun(t *testing.T) {
	dir := t.TempDir()
	a := Spec().Action("append")
	inputs := []map[string]any{
		{"path": "x.jsonl", "record": map[string]any{"n": 1}},
		{"path": "y.jsonl", "record": map[string]any{"n": 2}},
		{"path": "x.jsonl", "record": map[string]any{"n": 3}},
	}
	plan := func(batch bool) ([]connectors.PlannedWrite, []any) {
		var planned []connectors.PlannedWrite
		c, _ := Open(connectors.ConnectionConfig{Name: "dry", Options: map[string]any{"baseDir": dir}, DryRun: func(p connectors.PlannedWrite) { planned = append(planned, p) }})
		var outs []any
		if batch {
			res, err := a.Batch.Run(context.Background(), c, inputs)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				outs = append(outs, r.Result.Output)
			}
		} else {
			for _, in := range inputs {
				r, err := a.Run(context.Background(), c, in)
				if err != nil {
					t.Fatal(err)
				}
				outs = append(outs, r.Output)
			}
		}
		return planned, outs
	}
	runPlan, runOut := plan(false)
	batchPlan, batchOut := plan(true)
	if !reflect.DeepEqual(runPlan, batchPlan) || !reflect.DeepEqual(runOut, batchOut) {
		t.Errorf("batch planned %v -> %v\nrun planned %v -> %v", batchPlan, batchOut, runPlan, runOut)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a dry run wrote %v", entries)
	}
}

// TestAppendSettlesManyItemsInOneScan: look-ups of one path that wait at
// the same moment share one scan of the file, each answered with its own
// line (or not found).
func TestAppendSettlesManyItemsInOneScan(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir)
	a := Spec().Action("append")
	var lines []string
	for i := 1; i <= 1000; i++ {
		lines = append(lines, fmt.Sprintf(`{"i":%d}`, i))
	}
	write(t, dir, "big.jsonl", strings.Join(lines, "\n")+"\n")
	path := filepath.Join(dir, "big.jsonl")
	// Hold the finder busy so that the look-ups queue, then let it scan.
	fd := f.finder(path)
	fd.mu.Lock()
	fd.busy = true
	fd.mu.Unlock()
	type answer struct {
		i, line  int
		happened bool
		err      error
	}
	answers := make(chan answer, 10)
	want := map[int]int{7: 7, 500: 500, 1000: 1000, 2000: 0}
	for i := range want {
		go func() {
			r, happened, err := a.Settle(context.Background(), f, map[string]any{"path": "big.jsonl", "record": map[string]any{"i": i}})
			line := 0
			if happened {
				line = r.Output.(map[string]any)["line"].(int)
			}
			answers <- answer{i, line, happened, err}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		fd.mu.Lock()
		n := len(fd.queue)
		fd.mu.Unlock()
		if n == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d look-ups queued", n)
		}
		time.Sleep(time.Millisecond)
	}
	go fd.scanLoop(path)
	for range want {
		a := <-answers
		if a.err != nil || a.line != want[a.i] || a.happened != (want[a.i] > 0) {
			t.Errorf("record %d: line %d happened %v (%v), want line %d", a.i, a.line, a.happened, a.err, want[a.i])
		}
	}
	if n := fd.scans.Load(); n != 1 {
		t.Errorf("%d scans for %d look-ups, want 1", n, len(want))
	}
}
