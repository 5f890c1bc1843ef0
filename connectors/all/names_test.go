package all

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// otherNames are names of a service that no declaration carries: the
// Memberships API is GoHighLevel's. Everything else comes from the
// registries.
var otherNames = map[string][]string{"memberships": {"GoHighLevel", "GHL"}}

// TestNoServiceNamedOutsideItsFolder holds issue 15's rule that a
// connector is one folder: no Go source outside a service's own folder
// names the service. The services are the registered connectors that
// have a simulator (sandboxkit.Register) and their own connectors/<name>/
// folder; a service's names are its connector name, the words of its
// Spec.Title and otherNames. Matched as whole words, without case (as
// grep -wi), "payment-missing-in-<name>" included.
//
// Scope: every non-test .go file of the module, build-tagged ones and
// testdata included, except those under a service's connectors/<name>/,
// connectors/all (which imports them all), docs/ and examples/. Tests
// are out of scope: a test that drives the example recipes, or checks a
// generic part against a real service, legitimately names the
// connectors it uses; so are the example recipes and the docs.
func TestNoServiceNamedOutsideItsFolder(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var names, own []string
	for _, reg := range sandboxkit.Registered() {
		folder := filepath.Join(root, "connectors", reg.Name)
		if st, err := os.Stat(folder); err != nil || !st.IsDir() {
			continue // a test's simulator, with no folder of its own
		}
		own = append(own, filepath.Join("connectors", reg.Name)+string(filepath.Separator))
		names = append(names, reg.Name)
		if spec, ok := connectors.Default.Lookup(reg.Name); ok {
			for _, w := range strings.Fields(spec.Title) {
				if len(w) > 3 && !strings.EqualFold(w, "api") {
					names = append(names, w)
				}
			}
		}
		names = append(names, otherNames[reg.Name]...)
	}
	if len(own) < 3 {
		t.Fatalf("found %d services with a folder (%v): the rule would check little", len(own), own)
	}
	seen := map[string]bool{}
	var quoted []string
	for _, n := range names {
		if !seen[strings.ToLower(n)] {
			seen[strings.ToLower(n)] = true
			quoted = append(quoted, regexp.QuoteMeta(strings.ToLower(n)))
		}
	}
	sort.Strings(quoted)
	named := regexp.MustCompile(`(?i)\b(` + strings.Join(quoted, "|") + `)\b`)
	skip := append(own, "connectors"+string(filepath.Separator)+"all"+string(filepath.Separator), "docs"+string(filepath.Separator), "examples"+string(filepath.Separator))

	var offenders []string
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			for _, s := range skip {
				if rel+string(filepath.Separator) == s {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		checked++
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for line := 1; sc.Scan(); line++ {
			if m := named.FindString(sc.Text()); m != "" {
				offenders = append(offenders, rel+":"+strconv.Itoa(line)+": names "+m+": "+strings.TrimSpace(sc.Text()))
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked %d files under %s: the walk missed the tree", checked, root)
	}
	if len(offenders) > 0 {
		t.Errorf("%d line(s) outside a service's folder name it (names: %s); say it by role, or move it into the connector's folder:\n%s",
			len(offenders), strings.Join(quoted, ", "), strings.Join(offenders, "\n"))
	}
}
