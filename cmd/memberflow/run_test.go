package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

const (
	certRecipe      = "../../examples/accredible/certificate-for-new-members.yaml"
	sandboxConnFile = "../../examples/connections.sandbox.yaml"
)

func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runCLI(args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func startTestSandbox(t *testing.T, members int) string {
	return startFaultySandbox(t, members, sandboxkit.Faults{})
}

func startFaultySandbox(t *testing.T, members int, faults sandboxkit.Faults) string {
	t.Helper()
	srv, err := sandbox.New(sandbox.Options{Members: members, Seed: 3, RateLimit: &sandboxkit.Limit{}, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return base
}

// credentials reads the Accredible sandbox's credential count and the
// duplicates it noticed.
func credentials(t *testing.T, base string) (count, duplicates int) {
	t.Helper()
	res, err := http.Get(base + "/_sandbox/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st struct {
		Services map[string]struct {
			Objects    map[string]int `json:"objects"`
			Duplicates map[string]int `json:"duplicates"`
		} `json:"services"`
	}
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	a := st.Services["accredible"]
	return a.Objects["credentials"], a.Duplicates["credentials"]
}

func TestRunOnceIssuesOnceAndSecondRunChangesNothing(t *testing.T) {
	base := startTestSandbox(t, 40)
	store := filepath.Join(t.TempDir(), "mf.db")
	args := []string{"run", "--once", "--sandbox-url", base, "--store", store, "--connections", sandboxConnFile, "--log-level", "off", certRecipe}
	code, out, errs := cli(t, args...)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "certificate-for-new-members  40 ") {
		t.Errorf("summary does not count 40 events:\n%s", out)
	}
	first, dups := credentials(t, base)
	if first == 0 || dups != 0 {
		t.Fatalf("after the first run: %d credentials, %d duplicates", first, dups)
	}
	code, out, errs = cli(t, args...)
	if code != exitOK {
		t.Fatalf("second run: exit %d\n%s%s", code, out, errs)
	}
	if again, dups := credentials(t, base); again != first || dups != 0 {
		t.Errorf("the second run changed the service: %d credentials (was %d), %d duplicates", again, first, dups)
	}

	code, out, _ = cli(t, "runs", "list", "--store", store, "--format", "json", "--limit", "1000")
	var runs []map[string]any
	if code != exitOK || json.Unmarshal([]byte(out), &runs) != nil {
		t.Fatalf("runs list: exit %d\n%s", code, out)
	}
	// An event the condition rejects makes no run: it is counted on its page.
	code, out, _ = cli(t, "runs", "skipped", "--store", store, "--format", "json", "--limit", "1000")
	var pages []engine.SkipPage
	if code != exitOK || json.Unmarshal([]byte(out), &pages) != nil {
		t.Fatalf("runs skipped: exit %d\n%s", code, out)
	}
	skipped := 0
	for _, p := range pages {
		skipped += p.Count
	}
	if len(runs)+skipped != 40 || skipped == 0 {
		t.Fatalf("%d runs and %d skipped events, want 40 events with some skipped", len(runs), skipped)
	}
	succeeded := 0
	for _, r := range runs {
		if r["status"] == "succeeded" {
			succeeded++
		}
	}
	if succeeded != first {
		t.Errorf("%d runs succeeded, %d credentials", succeeded, first)
	}
	code, out, _ = cli(t, "runs", "show", "1", "--store", store)
	if code != exitOK || !strings.Contains(out, "run 1 ") || !strings.Contains(out, "when ") {
		t.Errorf("runs show 1: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, "dlq", "list", "--store", store, "--format", "json")
	if code != exitOK || strings.TrimSpace(out) != "[]" {
		t.Errorf("dlq list: exit %d: %s", code, out)
	}
}

func TestRunDryRunPrintsWritesAndChangesNothing(t *testing.T) {
	base := startTestSandbox(t, 20)
	store := filepath.Join(t.TempDir(), "mf.db")
	code, out, errs := cli(t, "run", "--once", "--dry-run", "--sandbox-url", base, "--store", store, "--connections", sandboxConnFile, "--log-level", "off", certRecipe)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	var planned int
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var w struct{ Connection, Method, Path string }
		if err := json.Unmarshal([]byte(line), &w); err != nil || w.Method == "" || w.Path == "" {
			t.Errorf("planned write %q: %v", line, err)
		}
		planned++
	}
	if planned == 0 {
		t.Errorf("no planned write printed:\n%s", out)
	}
	if n, _ := credentials(t, base); n != 0 {
		t.Errorf("a dry run created %d credentials", n)
	}
	if _, err := os.Stat(store); err == nil {
		t.Error("a dry run created the store")
	}
}

func TestRunUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no recipe", []string{"run"}, "name at least one recipe"},
		{"two sandboxes", []string{"run", "--sandbox", "--sandbox-url", "http://x", certRecipe}, "exclude each other"},
		// Settings no retry mends fail at once, not after the start-up
		// check's ~45 s of retries.
		{"sandbox url scheme", []string{"run", "--once", "--sandbox-url", "ftp://x/", "--log-level", "off", certRecipe}, `--sandbox-url "ftp://x/": want the sandbox's http:// address`},
		{"sandbox url relative", []string{"run", "--once", "--sandbox-url", "notaurl", "--log-level", "off", certRecipe}, `--sandbox-url "notaurl"`},
		{"no workers", []string{"run", "--concurrency", "0", certRecipe}, "--concurrency must be at least 1"},
		{"log format", []string{"run", "--log-format", "xml", certRecipe}, "--log-format must be text or json"},
		{"log level", []string{"run", "--log-level", "loud", certRecipe}, "--log-level must be"},
		{"http address", []string{"run", "--http", "8080", certRecipe}, `--http "8080"`},
		{"missing recipe", []string{"run", "--log-level", "off", "does-not-exist.yaml"}, "do not load"},
		{"runs without store", []string{"runs", "list", "--store", "/nonexistent/mf.db"}, "no store at /nonexistent/mf.db"},
		{"runs bad id", []string{"runs", "show", "x", "--store", "STORE"}, `run ID "x" is not a positive number`},
		{"runs unknown id", []string{"runs", "show", "7", "--store", "STORE"}, "run 7: no such run"},
		{"runs bad verb", []string{"runs", "delete", "--store", "STORE"}, `want "list", "show ID" or "skipped"`},
		{"dlq bad verb", []string{"dlq", "purge", "--store", "STORE"}, `want "list", "show ID", "replay ID" or "replay --all"`},
		{"dlq replay nothing", []string{"dlq", "replay", "--store", "STORE"}, `want "list"`},
	}
	store := filepath.Join(t.TempDir(), "mf.db")
	s, err := sqlitestore.Open(store, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i, a := range tc.args {
				if a == "STORE" {
					tc.args[i] = store
				}
			}
			code, _, errs := cli(t, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, errs)
			}
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr %q does not say %q", errs, tc.want)
			}
		})
	}
}

func TestProgressLine(t *testing.T) {
	ps := []engine.Progress{
		{Recipe: "idle"},
		{Recipe: "backfill", Events: 500, Done: 200, Total: 1000},
		{Recipe: "hooks", Events: 3, Done: 3},
	}
	want := "backfill: 200 of 500 (source: 1000) done, 100/s | hooks: 3 of 3 done, 2/s"
	if got := progressLine(ps, 2*time.Second); got != want {
		t.Errorf("progress line:\n got %q\nwant %q", got, want)
	}
}

// TestRunUnderFaultsIssuesExactlyOnce: with answers failing and
// connections dropped (half of them after the service applied the
// request), retries and settlement still issue one certificate per
// eligible member.
func TestRunUnderFaultsIssuesExactlyOnce(t *testing.T) {
	clean := startTestSandbox(t, 60)
	store := filepath.Join(t.TempDir(), "clean.db")
	if code, out, errs := cli(t, "run", "--once", "--sandbox-url", clean, "--store", store, "--connections", sandboxConnFile, "--log-level", "off", certRecipe); code != exitOK {
		t.Fatalf("clean run: exit %d\n%s%s", code, out, errs)
	}
	want, _ := credentials(t, clean)

	faulty := startFaultySandbox(t, 60, sandboxkit.Faults{FailRate: 0.15, DropRate: 0.15})
	store = filepath.Join(t.TempDir(), "faulty.db")
	code, out, errs := cli(t, "run", "--once", "--sandbox-url", faulty, "--store", store, "--connections", sandboxConnFile, "--log-level", "off", certRecipe)
	if code != exitOK {
		// Say what was dead-lettered, so that a rare failure can be read.
		_, dead, _ := cli(t, "dlq", "list", "--store", store, "--format", "json")
		t.Fatalf("faulty run: exit %d\n%s%s\ndead letters: %s", code, out, errs, dead)
	}
	got, dups := credentials(t, faulty)
	if got != want || dups != 0 {
		t.Errorf("under faults: %d credentials, %d duplicates; want %d and none", got, dups, want)
	}
}

func TestPlannedWritesAreRedacted(t *testing.T) {
	var b bytes.Buffer
	p := &plannedWriter{enc: json.NewEncoder(&b), redact: apiclient.NewRedactor("sk-live-123456")}
	p.write(connectors.PlannedWrite{Connection: "certs", Method: "POST", Path: "/v1/credentials",
		Body: map[string]any{"note": "key sk-live-123456"}})
	want := `{"connection":"certs","method":"POST","path":"/v1/credentials","body":{"note":"key [REDACTED]"}}` + "\n"
	if b.String() != want {
		t.Errorf("planned write:\n got %s\nwant %s", b.String(), want)
	}
}

// TestRunListsEveryMissingSecretFirst: every secret the selected recipes
// need is named at once, none they do not need (the Accelevents webhook
// secret for polling recipes, the keys of connections they do not use),
// and nothing is created before.
func TestRunListsEveryMissingSecretFirst(t *testing.T) {
	for _, n := range []string{"MEMBERSHIPS_TOKEN", "ACCREDIBLE_API_KEY", "ACCELEVENTS_API_KEY", "ACCELEVENTS_WEBHOOK_SECRET"} {
		t.Setenv(n, "")
	}
	store := filepath.Join(t.TempDir(), "memberflow.db")
	code, _, stderr := cli(t, "run", "--once", "--store", store, "../../examples/accredible/")
	if code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
	}
	for _, want := range []string{"2 secret(s) not set", "ACCREDIBLE_API_KEY  needed by certificate-for-new-members (accredible),", "MEMBERSHIPS_TOKEN  needed by"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	for _, unwanted := range []string{"ACCELEVENTS_API_KEY", "ACCELEVENTS_WEBHOOK_SECRET"} {
		if strings.Contains(stderr, unwanted) {
			t.Errorf("stderr names %s, which these recipes do not need:\n%s", unwanted, stderr)
		}
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Errorf("the store exists (%v): it was created before the secrets were checked", err)
	}
	t.Setenv("MEMBERSHIPS_TOKEN", "set")
	_, _, stderr = cli(t, "run", "--once", "--store", store, "../../examples/accredible/")
	if !strings.Contains(stderr, "1 secret(s) not set") || strings.Contains(stderr, "MEMBERSHIPS_TOKEN") {
		t.Errorf("with MEMBERSHIPS_TOKEN set:\n%s", stderr)
	}
}
