package recipes

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/memberflow/memberflow/connectors"
)

// snippetBase completes a partial recipe snippet of the docs: the
// snippet's top-level keys replace these (its steps come after these),
// so a trigger, a steps or a connections snippet validates in context.
const snippetBase = `version: 1
name: doc-snippet
connections:
  members: { connector: memberships, auth: { type: bearer, token: "${{ secret.T }}" }, options: { locationId: l, companyId: c }, webhook: { public_key: "${{ secret.K }}" } }
  accredible: { connector: accredible, auth: { type: api_key, key: "${{ secret.A }}" } }
  events: { connector: accelevents, auth: { type: api_key, key: "${{ secret.E }}" }, options: { eventUrl: e }, webhook: { secret: "${{ secret.W }}" } }
vars: { groupId: 4821, plans: [gold], prefix: m }
trigger: { uses: members.membership_status_changed, with: { to: eligible } }
steps:
  - id: user
    uses: members.get_user
    with: { userId: u1 }
`

type docSnippet struct {
	line int
	text string
}

// yamlSnippets returns the ```yaml blocks of a Markdown file.
func yamlSnippets(t *testing.T, path string) []docSnippet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docSnippet
	var cur *docSnippet
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```yaml":
			cur = &docSnippet{line: n + 1}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return out
}

// TestDocsRecipeSnippetsValidate loads every YAML snippet of
// docs/recipes.md against the built-in connectors: a whole recipe as it
// is, a shared connections file as one, a part of a recipe inside a
// minimal one. The docs cannot show what the validator refuses.
func TestDocsRecipeSnippetsValidate(t *testing.T) {
	snippets := yamlSnippets(t, "../docs/recipes.md")
	if len(snippets) < 10 {
		t.Fatalf("only %d YAML snippets in docs/recipes.md", len(snippets))
	}
	var base map[string]any
	if err := yaml.Unmarshal([]byte(snippetBase), &base); err != nil {
		t.Fatal(err)
	}
	for _, sn := range snippets {
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(sn.text), &doc); err != nil {
			t.Errorf("docs/recipes.md:%d: the snippet is not YAML: %v", sn.line, err)
			continue
		}
		_, hasTrigger := doc["trigger"]
		_, hasSteps := doc["steps"]
		_, hasConns := doc["connections"]
		var data []byte
		switch {
		case doc["version"] != nil && hasTrigger && hasSteps && doc["connections_file"] == nil:
			data = []byte(sn.text) // a whole recipe
		case doc["version"] != nil && hasConns && !hasTrigger:
			data = []byte(sn.text) // a shared connections file
		default:
			merged := map[string]any{}
			for k, v := range base {
				merged[k] = v
			}
			for k, v := range doc {
				switch k {
				case "steps":
					merged[k] = append(append([]any{}, base["steps"].([]any)...), v.([]any)...)
				case "connections_file":
					// A file beside the docs' recipe: the base's connections
					// stand for it.
				case "connections":
					conns := map[string]any{}
					for n, c := range base["connections"].(map[string]any) {
						conns[n] = c
					}
					for n, c := range v.(map[string]any) {
						conns[n] = c
					}
					merged[k] = conns
				default:
					merged[k] = v
				}
			}
			var err error
			if data, err = yaml.Marshal(merged); err != nil {
				t.Fatal(err)
			}
		}
		_, diags := LoadBytes("snippet.yaml", data, Options{Registry: connectors.Default})
		if diags.HasErrors() {
			var b bytes.Buffer
			diags.WriteText(&b)
			t.Errorf("docs/recipes.md:%d: the snippet does not validate:\n%s\n%s", sn.line, sn.text, b.String())
		}
	}
}
