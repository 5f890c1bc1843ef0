package all

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

// operationCount matches a connector README's count of its operations,
// "(38 actions, 4 triggers)".
var operationCount = regexp.MustCompile(`(\d+) actions?, (\d+) triggers?`)

// readmeOwedTriggers are triggers a README does not name yet, each
// "connector/trigger"; an entry whose README names the trigger fails the
// test, so the list only shrinks.
var readmeOwedTriggers = map[string]bool{}

// TestREADMEsKeepUpWithTheSpecs holds each connector's hand-written
// README to its spec: every trigger is named (in backticks), and a count
// of the operations it gives is the spec's. The generated reference
// (docs/connectors) cannot drift; these pages can.
func TestREADMEsKeepUpWithTheSpecs(t *testing.T) {
	for _, s := range connectors.Default.List() {
		t.Run(s.Name, func(t *testing.T) {
			path := filepath.Join(packageDir(t, s), "README.md")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, tr := range s.Triggers {
				named := regexp.MustCompile("`" + regexp.QuoteMeta(tr.Name) + "`").Match(data)
				switch owed := readmeOwedTriggers[s.Name+"/"+tr.Name]; {
				case !named && !owed:
					t.Errorf("%s does not name the trigger `%s`", path, tr.Name)
				case named && owed:
					t.Errorf("%s names `%s` now: remove it from readmeOwedTriggers", path, tr.Name)
				}
			}
			for _, m := range operationCount.FindAllSubmatch(data, -1) {
				actions, _ := strconv.Atoi(string(m[1]))
				triggers, _ := strconv.Atoi(string(m[2]))
				if actions != len(s.Actions) || triggers != len(s.Triggers) {
					t.Errorf("%s says %q; the connector has %d actions, %d triggers", path, m[0], len(s.Actions), len(s.Triggers))
				}
			}
		})
	}
}
