package sandbox

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGoldenAnswers pins the exact shape of the main answers: a change to
// what the sandbox sends shows up as a diff of a readable file.
func TestGoldenAnswers(t *testing.T) {
	s, clk := newSeeded(t)
	clk.add(90 * 1e9)
	body := issueBody("ada@example.org", "Ada Lovelace", 100001)
	cred := body["credential"].(map[string]any)
	cred["meta_data"] = map[string]any{"memberflow_ref": "M-1/annual-2026"}
	cred["evidence_items"] = []any{map[string]any{"description": "Final grade", "category": "grade", "string_object": "83"}}
	cases := []struct {
		name, method, path string
		body               any
	}{
		{"create_credential", "POST", "/v1/credentials", body},
		{"search_v2", "POST", "/v2/credentials/search", map[string]any{"query": map[string]any{"recipient_email": "ada@example.org"}}},
		{"all_credentials", "GET", "/v1/all_credentials?page_size=1", nil},
		{"bulk_v2_mixed", "POST", "/v2/credentials/bulk_create", map[string]any{"credentials": []any{
			map[string]any{"recipient": map[string]any{"name": "Grace Hopper", "email": "grace@example.org"}, "group_id": 100002},
			map[string]any{"recipient": map[string]any{"name": "", "email": "nameless@example.org"}, "group_id": 100002},
		}}},
		{"get_group", "GET", "/v1/issuer/groups/100003", nil},
		{"unauthorized", "GET", "/v1/issuer/details", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			auth := "Token token=" + DemoKey
			if tc.name == "unauthorized" {
				auth = "Token token=wrong"
			}
			w := callKey(t, s, tc.method, tc.path, tc.body, auth)
			var got bytes.Buffer
			got.WriteString(tc.method + " " + tc.path + "\n")
			got.WriteString(w.Result().Status + "\n")
			got.WriteString("Content-Type: " + w.Header().Get("Content-Type") + "\n\n")
			var v any
			if json.Unmarshal(w.Body.Bytes(), &v) == nil {
				pretty, _ := json.MarshalIndent(v, "", "  ")
				got.Write(pretty)
				got.WriteString("\n")
			} else {
				got.Write(w.Body.Bytes())
			}
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("answer differs from %s (run with -update if intended):\n%s", path, got.String())
			}
		})
	}
}
