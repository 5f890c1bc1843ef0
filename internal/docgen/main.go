// Command docgen writes docs/connectors/<name>.md for every registered
// connector from its spec, so the reference cannot drift from the code.
//
//	go run ./internal/docgen          # regenerate
//	go run ./internal/docgen -check   # exit 1 when a committed doc is stale
//
// The test in this package fails when a committed doc is stale.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	_ "github.com/memberflow/memberflow/connectors/all"
)

func main() {
	dir := flag.String("dir", "docs/connectors", "directory of the generated docs")
	check := flag.Bool("check", false, "only report stale docs; exit 1 when any is")
	flag.Parse()
	changes, err := Sync(connectors.Default, *dir, !*check)
	if err != nil {
		fmt.Fprintf(os.Stderr, "docgen: %v\n", err)
		os.Exit(1)
	}
	for _, c := range changes {
		fmt.Println(c)
	}
	if *check && len(changes) > 0 {
		fmt.Fprintln(os.Stderr, "docgen: the docs are stale; run `go run ./internal/docgen`")
		os.Exit(1)
	}
}

// Sync compares dir with what the registry's specs render to. With write
// set it brings dir up to date; either way it returns what differs
// ("wrote x.md", "stale x.md", "removed y.md"). Only files carrying the
// generated header are ever removed.
func Sync(reg *connectors.Registry, dir string, write bool) ([]string, error) {
	want := map[string][]byte{}
	for _, s := range reg.List() {
		doc, err := Render(s)
		if err != nil {
			return nil, err
		}
		want[s.Name+".md"] = doc
	}
	sched, err := RenderSchedule()
	if err != nil {
		return nil, err
	}
	want["schedule.md"] = sched
	if write {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	var changes []string
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(dir, name)
		have, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return changes, err
		}
		if bytes.Equal(have, want[name]) {
			continue
		}
		if !write {
			changes = append(changes, "stale "+path)
			continue
		}
		if err := os.WriteFile(path, want[name], 0o644); err != nil {
			return changes, err
		}
		changes = append(changes, "wrote "+path)
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return changes, err
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".md") || want[e.Name()] != nil {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil || !bytes.HasPrefix(data, []byte(Header)) {
			continue // written by hand: not ours to remove
		}
		if !write {
			changes = append(changes, "stale "+path+" (no such connector)")
			continue
		}
		if err := os.Remove(path); err != nil {
			return changes, err
		}
		changes = append(changes, "removed "+path)
	}
	return changes, nil
}
