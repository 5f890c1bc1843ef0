package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docCommand finds a command written in the docs, "memberflow run ..." or a
// code span starting with a command name ("`run --once`"), up to the end
// of the code span, a comment, a pipe or the line.
var docCommand = regexp.MustCompile("(?:memberflow |`)([a-z]+) ([^`\n|#;)&]*)")

// docFlagName finds the flags in a command's arguments.
var docFlagName = regexp.MustCompile(`(?:^|[\s\[|])--?([a-z][a-z0-9-]*)`)

// commandFlags lists the flags each command declares.
func commandFlags(t *testing.T) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for name, c := range commands {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		c.flags(fs)
		set := map[string]bool{"help": true, "h": true}
		fs.VisitAll(func(f *flag.Flag) { set[f.Name] = true })
		out[name] = set
	}
	return out
}

// TestDocumentedFlagsExist holds the usage lines and the docs to the
// flags the commands have: every --flag written after a command, in its
// usage line or in README.md, docs/ and the READMEs of connectors/ and
// examples/, is one of that command's flags.
func TestDocumentedFlagsExist(t *testing.T) {
	flags := commandFlags(t)
	for name, c := range commands {
		for _, m := range docFlagName.FindAllStringSubmatch(c.usage, -1) {
			if !flags[name][m[1]] {
				t.Errorf("memberflow %s --help: the usage line names --%s, which %s does not have", name, m[1], name)
			}
		}
	}
	root := filepath.Join("..", "..")
	var files []string
	for _, pattern := range []string{"README.md", "docs/*.md", "docs/connectors/*.md", "connectors/*/README.md", "examples/README.md"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d docs: is the test rooted at the repository?", len(files))
	}
	checked := 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, path)
		for i, line := range strings.Split(string(data), "\n") {
			for _, m := range docCommand.FindAllStringSubmatch(line, -1) {
				set, ok := flags[m[1]]
				if !ok {
					continue
				}
				for _, f := range docFlagName.FindAllStringSubmatch(m[2], -1) {
					checked++
					if !set[f[1]] {
						t.Errorf("%s:%d: memberflow %s --%s: %s has no such flag", rel, i+1, m[1], f[1], m[1])
					}
				}
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d documented flags checked: has the docs' form changed?", checked)
	}
}
