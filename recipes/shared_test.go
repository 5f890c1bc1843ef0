package recipes

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSharedConnectionsFile(t *testing.T) {
	reg := testRegistry()
	cases := []struct {
		name        string
		paths       []string
		connections []string
		wantBaseURL string
		wantLimit   time.Duration // per of certs' rate limit; 0 = off
		wantRecipes int
	}{
		{name: "folder with the production file", paths: []string{"testdata/shared"}, wantRecipes: 2, wantLimit: 5 * time.Minute},
		{name: "one recipe finds its file", paths: []string{"testdata/shared/recipes/welcome.yaml"}, wantRecipes: 1, wantLimit: 5 * time.Minute},
		{name: "sandbox variant replaces it", paths: []string{"testdata/shared/recipes"}, connections: []string{"testdata/shared/connections.sandbox.yaml"},
			wantRecipes: 2, wantBaseURL: "http://127.0.0.1:8081"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, diags := Load(Options{Registry: reg, Connections: tc.connections}, tc.paths...)
			if len(diags) > 0 {
				t.Fatalf("diagnostics:\n%v", diags)
			}
			if len(rs) != tc.wantRecipes {
				t.Fatalf("got %d recipes, want %d", len(rs), tc.wantRecipes)
			}
			for _, r := range rs {
				m := r.Connections["members"]
				if m == nil || m.BaseURL != tc.wantBaseURL {
					t.Fatalf("%s: members connection = %+v, want base URL %q", r.Name, m, tc.wantBaseURL)
				}
				if !strings.HasPrefix(m.Pos.File, filepath.Join("testdata", "shared", "connections")) {
					t.Errorf("members defined at %s, want the shared file", m.Pos.File)
				}
				c := r.Connections["certs"]
				if c.RateLimit == nil || c.RateLimit.Per != tc.wantLimit {
					t.Errorf("certs rate limit = %+v, want per %v", c.RateLimit, tc.wantLimit)
				}
			}
		})
	}
}

func TestSharedConnectionsFileProblems(t *testing.T) {
	_, diags := Load(Options{Registry: testRegistry()}, "testdata/shared-bad")
	var got bytes.Buffer
	if err := diags.WriteText(&got); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "testdata/shared-bad/diagnostics.golden", got.Bytes())
	// Loaded once, though both the folder walk and the recipe reach it.
	if n := strings.Count(got.String(), `unknown key "tokn"`); n != 1 {
		t.Errorf("the connections file's problem is reported %d times, want once", n)
	}
}

func TestMissingConnectionsFile(t *testing.T) {
	_, diags := LoadBytes("dir/r.yaml", []byte(`version: 1
name: r
connections_file: nowhere.yaml
trigger: { schedule: "@hourly" }
steps: [ { uses: members.get_user } ]
`), Options{Registry: testRegistry()})
	want := "dir/r.yaml:3:19: error: connections_file: cannot read dir/nowhere.yaml: no such file or directory"
	if len(diags) == 0 || diags[0].Error() != want {
		t.Fatalf("got\n%v\nwant first\n%s", diags, want)
	}
}

func TestWebhookPathsAreUnique(t *testing.T) {
	dir := t.TempDir()
	doc := `version: 1
name: NAME
connections: { members: { connector: crm, auth: { type: bearer, token: "${{ secret.T }}" }, options: { locationId: loc-1 } } }
trigger: { uses: members.user_created, path: /hooks/users }
steps: [ { uses: members.get_user, with: { userId: "${{ trigger.user.id }}" } } ]
`
	for _, n := range []string{"a", "b"} {
		if err := mkdirWrite(filepath.Join(dir, n+".yaml"), replaceName(doc, n)); err != nil {
			t.Fatal(err)
		}
	}
	rs, diags := Load(Options{Registry: testRegistry()}, dir)
	if len(diags) != 1 || !strings.Contains(diags[0].Summary, `webhook path "/hooks/users" is also used by`) || diags[0].Subject.Start.Line != 4 {
		t.Fatalf("diagnostics: %v", diags)
	}
	// The clash is reported on the second recipe, which is not returned.
	if len(rs) != 1 || rs[0].Name != "a" {
		t.Errorf("recipes: %v", rs)
	}
}

// A webhook path that run --http serves itself is an error: deliveries to
// it would never reach the trigger (a /console/ path got 404s).
func TestWebhookPathsRunServesAreRefused(t *testing.T) {
	for _, path := range []string{"/console/x", "/console", "/metrics", "/healthz", "/readyz"} {
		_, diags := LoadBytes("r.yaml", []byte(`version: 1
name: r
connections: { members: { connector: crm, auth: { type: bearer, token: "${{ secret.T }}" }, options: { locationId: loc-1 } } }
trigger: { uses: members.user_created, path: `+path+` }
steps: [ { uses: members.get_user, with: { userId: "${{ trigger.user.id }}" } } ]
`), Options{Registry: testRegistry()})
		if len(diags) != 1 || !strings.Contains(diags[0].Summary, "is memberflow run --http's own") || diags[0].Subject.Start.Line != 4 {
			t.Errorf("%s: diagnostics %v", path, diags)
		}
	}
}
