package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// exampleSpec uses every feature the renderer handles.
func exampleSpec() *connectors.Spec {
	obj := func(s string) []byte { return []byte(s) }
	// The renderer never runs operations; this one echoes its input.
	echo := func(_ context.Context, _ connectors.Conn, in map[string]any) (*connectors.Result, error) {
		return &connectors.Result{Output: in}, nil
	}
	return &connectors.Spec{
		Name:        "example",
		Title:       "Example Service",
		Summary:     "A service that exists for this test.",
		Description: "Longer prose,\nkept as written.",
		Auth:        []connectors.AuthKind{connectors.AuthAPIKey, connectors.AuthOAuth2},
		BaseURL:     "https://api.example.test",
		RateLimit:   connectors.RateLimit{Requests: 100, Per: 10 * time.Second, Burst: 20},
		Options:     obj(`{"type":"object","properties":{"locationId":{"type":"string","description":"The location all calls use."}},"required":["locationId"]}`),
		Open:        func(connectors.ConnectionConfig) (connectors.Conn, error) { return nil, nil },
		Triggers: []*connectors.TriggerSpec{{
			Operation: connectors.Operation{
				Name: "thing_changed", Summary: "A thing changed.",
				Input:   obj(`{"type":"object","properties":{"status":{"type":"string","enum":["active","lapsed"],"description":"Only this status."}}}`),
				Output:  obj(`{"type":"object","properties":{"id":{"type":"string","description":"Thing id."}}}`),
				Example: map[string]any{"status": "active"},
				HTTP:    &connectors.HTTPBinding{Method: "GET", Path: "/things"},
			},
			Poll: func(context.Context, connectors.Conn, connectors.PollRequest) (*connectors.PollResult, error) {
				return nil, nil
			},
			Webhook:         &connectors.WebhookSpec{},
			DefaultInterval: time.Minute,
		}},
		Actions: []*connectors.ActionSpec{
			{Operation: connectors.Operation{
				Name: "create_thing", Summary: "Create a thing | carefully.",
				Input: obj(`{"type":"object","required":["thing"],"$defs":{"owner":{"type":"object","properties":{"email":{"type":"string","format":"email","description":"Owner email."}},"required":["email"]}},
					"properties":{"thing":{"type":"object","required":["name"],"properties":{"name":{"type":"string","description":"Name."},"owner":{"$ref":"#/$defs/owner"},"tags":{"type":"array","items":{"type":"string"}},"size":{"type":["integer","null"],"default":1}}}}}`),
				Output:  obj(`{"type":"object","properties":{"id":{"oneOf":[{"type":"string"},{"type":"integer"}]}}}`),
				Example: map[string]any{"thing": map[string]any{"name": "Widget", "tags": []any{"a", "b"}}},
				HTTP:    &connectors.HTTPBinding{Method: "POST", Path: "/things"},
			}, Run: echo, Settle: func(context.Context, connectors.Conn, map[string]any) (*connectors.Result, bool, error) {
				return nil, false, nil
			}},
			{Operation: connectors.Operation{Name: "get_thing", Summary: "Get a thing.", Input: obj(`{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}`), Output: obj(`{"type":"object"}`),
				HTTP: &connectors.HTTPBinding{Method: "GET", Path: "/things/{id}"}}, ReadOnly: true, Run: echo},
			{Operation: connectors.Operation{Name: "put_thing", Summary: "Replace a thing.", Input: obj(`{"type":"object"}`), Output: obj(`{"type":"object"}`)}, Idempotent: true, Run: echo},
			{Operation: connectors.Operation{Name: "poke_thing", Summary: "Poke a thing.", Input: obj(`{"type":"object"}`), Output: obj(`{"type":"object"}`)}, Run: echo},
		},
	}
}

func TestRenderGolden(t *testing.T) {
	got, err := Render(exampleSpec())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "example.md")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/docgen -update)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("rendered doc differs from %s (run go test ./internal/docgen -update and review):\n%s", path, got)
	}
}

func TestRenderRejectsBadSchemas(t *testing.T) {
	s := exampleSpec()
	s.Actions[1].Input = []byte(`{"type":`)
	if _, err := Render(s); err == nil || !strings.Contains(err.Error(), `connector "example": operation "get_thing": input schema`) {
		t.Fatalf("err = %v", err)
	}
}

func TestSync(t *testing.T) {
	reg := connectors.NewRegistry()
	reg.MustRegister(exampleSpec())
	dir := t.TempDir()
	hand := filepath.Join(dir, "README.md")
	os.WriteFile(hand, []byte("# written by hand\n"), 0o644)
	orphan := filepath.Join(dir, "gone.md")
	os.WriteFile(orphan, []byte(Header+"\n# gone\n"), 0o644)

	steps := []struct {
		name  string
		write bool
		want  string
	}{
		{"check finds both", false, "stale " + filepath.Join(dir, "example.md") + ",stale " + filepath.Join(dir, "schedule.md") + ",stale " + orphan + " (no such connector)"},
		{"write fixes both", true, "wrote " + filepath.Join(dir, "example.md") + ",wrote " + filepath.Join(dir, "schedule.md") + ",removed " + orphan},
		{"then nothing is stale", false, ""},
	}
	for _, st := range steps {
		changes, err := Sync(reg, dir, st.write)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(changes, ","); got != st.want {
			t.Fatalf("%s: %q, want %q", st.name, got, st.want)
		}
	}
	if _, err := os.Stat(hand); err != nil {
		t.Fatalf("a hand-written file was removed: %v", err)
	}
}

// TestCommittedDocsAreFresh fails when a connector changed and its doc in
// docs/connectors was not regenerated.
func TestCommittedDocsAreFresh(t *testing.T) {
	changes, err := Sync(connectors.Default, filepath.Join("..", "..", "docs", "connectors"), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) > 0 {
		t.Fatalf("the connector docs are stale:\n  %s\nrun: go run ./internal/docgen", strings.Join(changes, "\n  "))
	}
}
