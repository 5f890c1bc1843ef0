package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestReconcileAfterTheDemo: no drift after the demo; drift injected
// through /_sandbox/mutate is reported (exit 1); --fix --dry-run plans,
// --fix enqueues, run --once runs the fixes; no drift again; the console
// shows the fixes' runs. On a SQLite store and on Postgres.
func TestReconcileAfterTheDemo(t *testing.T) { eachStoreKind(t, testReconcileAfterTheDemo) }

func testReconcileAfterTheDemo(t *testing.T, st testStore) {
	base := startTestSandbox(t, 60)
	examples, _ := filepath.Abs("../../examples")
	conns, _ := filepath.Abs(sandboxConnFile)
	t.Chdir(t.TempDir()) // the files connection writes ./out
	store := st.direct
	common := []string{"--sandbox-url", base, "--store", st.store, "--connections", conns, "--log-level", "off", examples}
	if st.secrets != "" {
		common = append([]string{"--secrets", st.secrets}, common...)
	}
	run := append([]string{"run", "--once"}, common...)
	if code, out, errs := cli(t, run...); code != exitOK {
		t.Fatalf("the demo: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := cli(t, append([]string{"reconcile"}, common...)...)
	if code != exitOK || !strings.Contains(out, "\n0 drift · read ") {
		t.Fatalf("after the demo: exit %d\n%s%s", code, out, errs)
	}

	body, _ := json.Marshal(map[string]any{"service": "memberships", "kind": "become_eligible", "count": 2})
	res, err := http.Post(base+"/_sandbox/mutate", "application/json", bytes.NewReader(body))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("mutate: %v %v", err, res)
	}
	res.Body.Close()
	code, out, errs = cli(t, append([]string{"reconcile", "--format", "json"}, common...)...)
	var rep struct {
		Findings []struct {
			Rule, Recipe string
			Records      []string
		}
	}
	if code != exitFail || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Findings) != 2 {
		t.Fatalf("after the mutation: exit %d, %d findings\n%s%s", code, len(rep.Findings), out, errs)
	}
	for _, f := range rep.Findings {
		if f.Rule != "eligible-without-credential" || f.Recipe != "issue-certificate-on-eligibility" {
			t.Errorf("finding %+v", f)
		}
	}
	code, out, _ = cli(t, append([]string{"reconcile", "--fix", "--dry-run"}, common...)...)
	if code != exitFail || strings.Count(out, "would enqueue  issue-certificate-on-eligibility") != 2 {
		t.Fatalf("--fix --dry-run: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, "runs", "list", "--store", store, "--status", "queued")
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("a dry run enqueued runs:\n%s", out)
	}
	code, out, _ = cli(t, append([]string{"reconcile", "--fix"}, common...)...)
	if code != exitFail || strings.Count(out, "enqueued run ") != 2 {
		t.Fatalf("--fix: exit %d\n%s", code, out)
	}
	if code, out, errs := cli(t, run...); code != exitOK {
		t.Fatalf("run after --fix: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = cli(t, append([]string{"reconcile"}, common...)...)
	if code != exitOK {
		t.Fatalf("after the fixes: exit %d\n%s%s", code, out, errs)
	}

	// The console reads the same store, named the same way.
	page := consolePage(t, consoleOptions{store: st.store, secrets: st.secrets, logLevel: "off"},
		"runs?recipe=issue-certificate-on-eligibility&status=succeeded", "dead")
	if n := strings.Count(page[0], `href="/console/runs/`); n < 2 {
		t.Errorf("the console lists %d succeeded runs of issue-certificate-on-eligibility, want the fixes' 2 at least:\n%s", n, page[0])
	}
}

func TestReconcileUsage(t *testing.T) {
	for _, args := range [][]string{
		{"reconcile"},
		{"reconcile", "--format", "yaml", "../../examples"},
		{"reconcile", "--dry-run", "../../examples"},
	} {
		if code, _, errs := cli(t, args...); code != exitUsage || errs == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}
