package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/engine/sqlitestore"
)

func TestHelpIsPrintedOnce(t *testing.T) {
	for _, args := range [][]string{{"validate", "--help"}, {"run", "-h"}, {"help", "connectors"}} {
		var out, errOut bytes.Buffer
		code := runCLI(args, stdio{in: strings.NewReader(""), out: &out, err: &errOut})
		if code != exitOK {
			t.Errorf("%v: exit %d", args, code)
		}
		if n := strings.Count(out.String()+errOut.String(), "Usage:"); n != 1 {
			t.Errorf("%v: usage printed %d times:\n%s%s", args, n, out.String(), errOut.String())
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errOut bytes.Buffer
		if code := runCLI(args, stdio{in: strings.NewReader(""), out: &out, err: &errOut}); code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		if !strings.HasPrefix(out.String(), "memberflow ") || !strings.Contains(out.String(), "(rev ") {
			t.Errorf("%v: %q, want the module version and the revision", args, out.String())
		}
		// The schemas, which tell whether an upgrade needs every runner
		// stopped (docs/deploy.md).
		want := fmt.Sprintf("store schema: SQLite version %d, Postgres version %d\n", sqlitestore.SchemaVersion(), pgstore.SchemaVersion())
		if !strings.HasSuffix(out.String(), want) || sqlitestore.SchemaVersion() < 8 || pgstore.SchemaVersion() < 3 {
			t.Errorf("%v: %q, want it to end with %q", args, out.String(), want)
		}
	}
}

func TestVersionLine(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.23.4", Main: debug.Module{Path: "github.com/memberflow/memberflow", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-25T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionLine(bi, true), "memberflow v1.4.0 (rev 0123456789ab+dirty, 2026-11-25T10:00:00Z, go1.23.4)"; got != want {
		t.Errorf("versionLine = %q, want %q", got, want)
	}
	bi.Settings, bi.Main.Version = nil, ""
	if got, want := versionLine(bi, true), "memberflow (devel) (rev unknown, go1.23.4)"; got != want {
		t.Errorf("versionLine without VCS = %q, want %q", got, want)
	}
}

// TestBinaryVersionHasRevision builds the binary inside the work tree:
// go build stamps the git revision, which --version must show.
func TestBinaryVersionHasRevision(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git work tree: %v", err)
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !st.IsDir() {
		// The go command looks for a .git directory: a linked worktree
		// (where .git is a file) gets no VCS stamp.
		t.Skip("a linked git worktree: go build does not stamp its revision")
	}
	bin := filepath.Join(t.TempDir(), "memberflow")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if rev := strings.TrimSpace(string(head))[:12]; !strings.Contains(string(out), rev) {
		t.Errorf("--version = %q, want revision %s", out, rev)
	}
}
