package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// Each storage failure at open is reported with what to do, exit 1.
func TestStorageErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	damaged := filepath.Join(dir, "damaged.db")
	s, err := sqlitestore.Open(damaged, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		s.Advance(context.Background(), "r", engine.Advance{Events: []engine.NewEvent{{ID: strings.Repeat("e", 200) + string(rune('A'+i)), Subject: "s", Connector: "c", Data: []byte(`{"pad":"` + strings.Repeat("p", 3000) + `"}`)}}})
	}
	s.Close()
	b, _ := os.ReadFile(damaged)
	mid := len(b) / 4096 / 2 * 4096
	copy(b[mid:mid+4096], bytes.Repeat([]byte{0xEE}, 4096))
	os.WriteFile(damaged, b, 0o600)

	for _, tc := range []struct {
		name  string
		args  []string
		store string
		want  []string
	}{
		{"missing directory", []string{"run", "--once", "--sandbox", "--sandbox-members", "1", "--connections", sandboxConnFile}, filepath.Join(dir, "nosuch", "m.db"),
			[]string{"the store's directory does not exist", "mkdir -p " + filepath.Join(dir, "nosuch")}},
		{"damaged store, run", []string{"run", "--once", "--sandbox", "--sandbox-members", "1", "--connections", sandboxConnFile}, damaged,
			[]string{"the store is damaged", "nothing was written to it", ".recover"}},
		{"damaged store, runs list", []string{"runs", "list"}, damaged,
			[]string{"the store is damaged", "restore your last copy", "-wal and ", "-shm first"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string(nil), tc.args...), "--store", tc.store)
			if tc.args[0] == "run" {
				args = append(args, certRecipe)
			}
			before, _ := os.ReadFile(tc.store)
			code, out, errs := cli(t, args...)
			if code != exitFail {
				t.Fatalf("exit %d, want %d\n%s%s", code, exitFail, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			after, _ := os.ReadFile(tc.store)
			if !bytes.Equal(before, after) {
				t.Error("the store was written to")
			}
		})
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{sqlitestore.ErrDiskFull, "free space on the disk"},
		{sqlitestore.ErrReadOnly, "writable"},
		{sqlitestore.ErrLocked, "fuser /data/m.db"},
		{sqlitestore.ErrLogDeleted, "Restart the runner"},
		{engine.ErrStoreKey, "forget-tokens"},
	} {
		if got := storeAdvice("/data/m.db", tc.err); !strings.Contains(got, tc.want) {
			t.Errorf("advice for %v = %q, want it to say %q", tc.err, got, tc.want)
		}
	}
}

// TestSigtermDuringOnce: SIGTERM to `memberflow run --once` (a real
// process) ends it with status 0, the runs it had claimed back in the
// queue; the next run finishes the work with no duplicate.
func TestSigtermDuringOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process and waits for the sandbox's rate limits")
	}
	// Latency keeps the run going long enough to be stopped in the middle;
	// twenty pages, so that pages are still to come when it is.
	srv, err := sandbox.New(sandbox.Options{Members: 2000, Seed: 3, RateLimit: &sandboxkit.Limit{}, Faults: sandboxkit.Faults{Latency: 15 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	store := filepath.Join(t.TempDir(), "m.db")
	cmd := exec.Command(os.Args[0], "run", "--once", "--sandbox-url", base, "--store", store, "--connections", sandboxConnFile, "--log-level", "info", certRecipe)
	cmd.Env = append(os.Environ(), runAsCLIEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for runs to be under way, then stop.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if n := countRuns(t, store, engine.RunSucceeded); n >= 5 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no run finished in 20 s\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after SIGTERM: %v, want exit status 0\n%s", err, stderr.String())
		}
	case <-time.After(45 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running 45 s after SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "stopped by a signal") {
		t.Errorf("stderr does not say it stopped:\n%s", stderr.String())
	}
	if n := countRuns(t, store, engine.RunRunning); n != 0 {
		t.Errorf("%d run(s) still held after SIGTERM", n)
	}
	// What the signal left (runs queued, or members not yet polled) is
	// done by the next pass.
	before := countRuns(t, store, engine.RunSucceeded)
	if code, out, errs := cli(t, "run", "--once", "--sandbox-url", base, "--store", store, "--connections", sandboxConnFile, "--log-level", "off", certRecipe); code != exitOK {
		t.Fatalf("the next run: exit %d\n%s%s", code, out, errs)
	}
	if after := countRuns(t, store, engine.RunSucceeded); after == before {
		t.Errorf("every run had finished before the signal (%d succeeded, none after): the test proves nothing", before)
	}
	if _, dups := credentials(t, base); dups != 0 {
		t.Errorf("%d duplicate credentials", dups)
	}
	if n := countRuns(t, store, engine.RunQueued); n != 0 {
		t.Errorf("%d run(s) left queued", n)
	}
}

func countRuns(t *testing.T, store, status string) int {
	t.Helper()
	if _, err := os.Stat(store); err != nil {
		return 0
	}
	s, err := sqlitestore.Open(store, sqlitestore.Options{CheckpointEvery: -1})
	if err != nil {
		return 0 // being created
	}
	defer s.Close()
	runs, err := s.ListRuns(context.Background(), engine.RunFilter{Status: status, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return len(runs)
}

// A store setting's password shows nowhere: not in the user part, not in
// the query, not from a secret; settings that are not a store are
// refused, never made into a file name.
func TestStoreSettingsKeepTheirPasswords(t *testing.T) {
	const pw = "sk-SECRET-STORE-PW"
	t.Setenv("MF_TEST_DSN_QUERY", "postgres://127.0.0.1:1/x?password="+pw+"&connect_timeout=1")
	t.Setenv("MF_TEST_DSN_KEYWORDS", "host=127.0.0.1 port=1 dbname=x password="+pw)
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct {
		store, want string
	}{
		{"secret.MF_TEST_DSN_QUERY", "xxxxx"},
		{"postgres://127.0.0.1:1/x?password=" + pw + "&connect_timeout=1", "xxxxx"},
		{"postgres://me:" + pw + "@127.0.0.1:1/x?connect_timeout=1", "xxxxx"},
		{"secret.MF_TEST_DSN_KEYWORDS", "key=value connection string"},
		{"host=127.0.0.1 password=" + pw, "key=value connection string"},
		{"mysql://me:" + pw + "@127.0.0.1/x", "mysql:// is not a store"},
	} {
		t.Run(tc.store[:12], func(t *testing.T) {
			code, out, errs := cli(t, "runs", "list", "--store", tc.store)
			if code == exitOK {
				t.Fatalf("exit 0 for an unreachable or refused store:\n%s%s", out, errs)
			}
			if strings.Contains(out+errs, pw) {
				t.Fatalf("the password is shown:\n%s%s", out, errs)
			}
			if !strings.Contains(errs, tc.want) {
				t.Fatalf("want %q in:\n%s", tc.want, errs)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused setting made files: %v", entries)
	}
}

// SIGINT while the start-up check retries a service that is down is a
// stop, not a failure: status 0, and says that nothing ran.
func TestSigintWhileAskingADownService(t *testing.T) {
	store := filepath.Join(t.TempDir(), "m.db")
	cmd := exec.Command(os.Args[0], "run", "--once", "--sandbox-url", "http://127.0.0.1:1", "--store", store, "--connections", sandboxConnFile, "--log-level", "warn", certRecipe)
	cmd.Env = append(os.Environ(), runAsCLIEnv+"=1")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The first retry's warning says the check is under way.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "retrying") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no retry in 20 s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || !strings.Contains(stderr.String(), "stopped before the runner started") {
		t.Fatalf("after SIGINT: %v, want status 0 saying it stopped\n%s", err, stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
