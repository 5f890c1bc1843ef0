package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// glance returns the at-a-glance line of a one-shot run's output.
func glance(t *testing.T, out string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "members seen") && !strings.Contains(last, "member changes seen") {
		t.Fatalf("no at-a-glance line in:\n%s", out)
	}
	return last
}

// TestSummaryCountsChangesNotCalls: a fresh store against a sandbox the
// recipe already synced runs every event again, and every upsert finds
// its certificate as it should be: nothing is issued, and the summary
// says so.
func TestSummaryCountsChangesNotCalls(t *testing.T) {
	base := startTestSandbox(t, 40)
	run := func() string {
		store := filepath.Join(t.TempDir(), "mf.db")
		code, out, errs := cli(t, "run", "--once", "--sandbox-url", base, "--store", store, "--connections", sandboxConnFile, "--log-level", "off", certRecipe)
		if code != exitOK {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		return out
	}
	first := run()
	if !strings.Contains(glance(t, first), "certificates issued") {
		t.Fatalf("the first run issued nothing:\n%s", first)
	}
	again := run()
	if g := glance(t, again); strings.Contains(g, "certificates issued") || strings.Contains(g, "members updated") {
		t.Errorf("a run that changed nothing claims changes: %s\n%s", g, again)
	}
	if !strings.Contains(again, "accredible.upsert_credential=0 (+") {
		t.Errorf("the table does not count the unchanged upserts apart:\n%s", again)
	}
}

// TestDemoSummaryIsIdenticalOnFreshStores runs the demo (every example
// recipe against a fresh sandbox) five times on fresh stores: identical
// inputs, identical summary line. The five run at once, as processes of
// their own: the demo waits mostly on the APIs' documented rate limits,
// and five runners sharing the CPU vary the timing the line must not
// depend on.
func TestDemoSummaryIsIdenticalOnFreshStores(t *testing.T) {
	if testing.Short() {
		t.Skip("five demo runs")
	}
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	outs := make([]string, 5)
	errs := make([]error, len(outs))
	var wg sync.WaitGroup
	for i := range outs {
		// The files connection writes under ./out: each run in its own folder.
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "run", "--once", "--sandbox", "--sandbox-members", "20", "--sandbox-no-rate-limits",
			"--store", filepath.Join(dir, "mf.db"), "--log-level", "off", examples)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), runAsCLIEnv+"=1")
		wg.Go(func() {
			out, err := cmd.Output()
			outs[i] = string(out)
			if err != nil {
				errs[i] = fmt.Errorf("%w\n%s", err, out)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	first := glance(t, outs[0])
	for i, out := range outs[1:] {
		if g := glance(t, out); g != first {
			t.Fatalf("run %d's summary differs:\n  %s\nfirst run's:\n  %s\nits table:\n%s\nthe first run's:\n%s", i+2, g, first, out, outs[0])
		}
	}
}
