package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/recipes"
)

func init() {
	register(&command{
		name:    "version",
		summary: "print memberflow's module version and VCS revision",
		usage:   "",
		help: `Prints the module version (a tag, or "(devel)" for a build from a work tree)
and the VCS revision the binary was built from, with "+dirty" when the work
tree had uncommitted changes, then the store schema versions it writes. Two
memberflows with the same schema versions can run beside each other on one
store; a newer schema needs every runner stopped for the upgrade
(docs/deploy.md, "Upgrading"). "memberflow --version" prints the same.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			return func(_ context.Context, args []string, io stdio) int {
				if len(args) > 0 {
					fmt.Fprintf(io.err, "memberflow version: takes no arguments, got %q\n", args)
					return exitUsage
				}
				fmt.Fprintln(io.out, versionLine(debug.ReadBuildInfo()))
				fmt.Fprintln(io.out, schemaLine())
				return exitOK
			}
		},
	})
}

// versionLine describes a build: "memberflow v1.2.0 (rev 1a2b3c4d5e6f, 2026-11-25T10:00:00Z, go1.23)".
// go build stamps vcs.* settings when it builds inside a git work tree;
// `go run` and tests do not, and then the revision says "unknown".
func versionLine(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "memberflow (unknown version: no build information)"
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, when, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		rev = "unknown"
	} else if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "+dirty"
	}
	out := fmt.Sprintf("memberflow %s (rev %s", version, rev)
	if when != "" {
		out += ", " + when
	}
	return out + ", " + bi.GoVersion + ")"
}

// schemaLine names the store schemas this memberflow writes.
func schemaLine() string {
	return fmt.Sprintf("store schema: SQLite version %d, Postgres version %d", sqlitestore.SchemaVersion(), pgstore.SchemaVersion())
}

// gitRevision is the commit that last changed the file, with "+dirty"
// when the work tree's copy differs from it; "" outside a git work tree
// (or without git). A run records it beside the recipe's hash.
func gitRevision(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	dir, file := filepath.Split(abs)
	if !underGit(dir) {
		return "" // no process started for a file in no repository
	}
	git := func(args ...string) (string, bool) {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err == nil
	}
	rev, ok := git("log", "-1", "--format=%H", "--", file)
	if !ok || rev == "" {
		return ""
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if status, ok := git("status", "--porcelain", "--", file); ok && status != "" {
		rev += "+dirty"
	}
	return rev
}

// underGit says whether git could find a repository for dir: a .git
// (the directory, or the file of a worktree or submodule) in dir or
// above it, or GIT_DIR set.
func underGit(dir string) bool {
	if os.Getenv("GIT_DIR") != "" {
		return true
	}
	d, err := filepath.Abs(dir)
	if err != nil {
		return true // let git decide
	}
	for {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return true
		}
		parent := filepath.Dir(d)
		if parent == d {
			return false
		}
		d = parent
	}
}

// gitRevisions sets each recipe's Revision, asking git about a few files
// at once: two git processes a recipe, one after another, made the start
// of a runner of many recipes wait seconds.
func gitRevisions(rs []*recipes.Recipe) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, r := range rs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r.Revision = gitRevision(r.File)
		}()
	}
	wg.Wait()
}
