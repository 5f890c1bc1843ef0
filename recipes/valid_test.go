package recipes

import (
	"path/filepath"
	"testing"
	"time"
)

func TestValidRecipes(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no valid cases: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, diags := LoadFile(f, Options{Registry: testRegistry()})
			if len(diags) > 0 {
				t.Fatalf("diagnostics:\n%v", diags)
			}
			if r == nil || r.Trigger == nil || len(r.Steps) == 0 {
				t.Fatalf("incomplete recipe: %+v", r)
			}
		})
	}
}

func TestCompiledRecipe(t *testing.T) {
	r, diags := LoadFile("testdata/valid/webhook-anchors.yaml", Options{Registry: testRegistry()})
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	tr := r.Trigger
	if tr.Mode != "webhook" || tr.WebhookPath != "/hooks/members/created" || tr.Connection != "members" || tr.Operation != "user_created" {
		t.Errorf("trigger = %+v", tr)
	}
	env := Env{"trigger": map[string]any{"user": map[string]any{"id": "u1", "email": "a@example.com", "planId": 2.0}}, "vars": r.Vars}
	ok, err := r.When.EvalBool(env)
	if err != nil || !ok {
		t.Fatalf("when = %v, %v", ok, err)
	}
	key, err := tr.OrderBy.Eval(env)
	if err != nil || key != "a@example.com" {
		t.Errorf("order_by = %v, %v", key, err)
	}
	with, err := r.Steps[0].With.EvalMap(env)
	if err != nil {
		t.Fatal(err)
	}
	// The merge key brings the defaults; a lone ${{ }} keeps its type.
	if with["certificateStatus"] != "issued" || with["userId"] != "u1" || with["planId"] != 2.0 {
		t.Errorf("with = %#v", with)
	}

	r, diags = LoadFile("testdata/valid/issue-certificate.yaml", Options{Registry: testRegistry()})
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if r.Trigger.Mode != "poll" || r.Trigger.Interval != time.Minute || r.Trigger.Start != "beginning" {
		t.Errorf("trigger = %+v", r.Trigger)
	}
	st := r.Steps[1]
	if st.Retry == nil || st.Retry.Attempts != 5 || st.Retry.Backoff != time.Second || st.Retry.MaxBackoff != 30*time.Second || st.Retry.Timeout != 2*time.Minute {
		t.Errorf("retry = %+v", st.Retry)
	}
	if r.Steps[2].ID != "step3" || r.Steps[2].OnError != "continue" {
		t.Errorf("step 3 = %+v", r.Steps[2])
	}
	env = Env{
		"trigger": map[string]any{"user": map[string]any{"id": "u1"}},
		"vars":    r.Vars,
		"steps":   map[string]any{"user": map[string]any{"id": "u1", "fullName": "Ann Lee", "email": "ANN@EXAMPLE.COM", "eligibilityDate": "2026-01-02"}},
	}
	in, err := st.With.EvalMap(env)
	if err != nil {
		t.Fatal(err)
	}
	rec := in["recipient"].(map[string]any)
	if rec["email"] != "ann@example.com" || rec["id"] != "MF-u1" || in["group_id"] != 4821 || in["issued_on"] != "2026-01-02" {
		t.Errorf("with = %#v", in)
	}
	if len(r.Tests) != 1 || r.Tests[0].Name != "eligible member gets a certificate" {
		t.Errorf("tests = %+v", r.Tests)
	}
	names := r.Connections["members"].SecretNames()
	if len(names) != 1 || names[0] != "CRM_TOKEN" {
		t.Errorf("secret names = %v", names)
	}
}

func TestFolderWalk(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := mkdirWrite(p, content); err != nil {
			t.Fatal(err)
		}
	}
	good := "version: 1\nname: NAME\ntrigger: { schedule: '@hourly' }\nsteps: [ { uses: c.list_groups, with: {} } ]\nconnections: { c: { connector: certs, auth: { type: api_key, key: '${{ secret.K }}' } } }\n"
	write("a.yaml", replaceName(good, "a"))
	write("sub/b.yml", replaceName(good, "b"))
	write("sub/b.test.yaml", "not: [a recipe")
	write("notes.txt", "ignored")
	write(".hidden/c.yaml", "broken: [")
	rs, diags := Load(Options{Registry: testRegistry()}, dir)
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if len(rs) != 2 || rs[0].Name != "a" || rs[1].Name != "b" {
		t.Fatalf("recipes = %v", rs)
	}
	_, diags = Load(Options{Registry: testRegistry()}, filepath.Join(dir, "missing"))
	if !diags.HasIOErrors() {
		t.Errorf("a missing path is an I/O error: %v", diags)
	}
	// Two recipes with one name are reported.
	write("dup/x.yaml", replaceName(good, "same"))
	write("dup/y.yaml", replaceName(good, "same"))
	_, diags = Load(Options{Registry: testRegistry()}, filepath.Join(dir, "dup"))
	if len(diags) != 1 || diags[0].Subject.Start.Line != 2 {
		t.Errorf("duplicate names: %v", diags)
	}
	if !IsTestFile("x/y.TEST.yml") || IsTestFile("x/test.yaml") {
		t.Error("IsTestFile")
	}
}

// TestYAMLValuesNormalised: yaml.v3 decodes an unquoted date as a
// time.Time and a number key as an int; the schema and the expressions
// see what JSON would: the text of the date, and string keys.
func TestYAMLValuesNormalised(t *testing.T) {
	doc := `version: 1
name: normalised
description: 2024-01-02
vars: { since: 2024-01-02, 1: one, on: yes }
connections: { c: { connector: certs, auth: { type: api_key, key: "${{ secret.K }}" } } }
trigger: { schedule: "@daily" }
when: vars.since == "2024-01-02" && vars["1"] == "one"
steps: [ { uses: c.list_groups, with: {} } ]
`
	r, diags := LoadBytes("n.yaml", []byte(doc), Options{Registry: testRegistry()})
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if r.Description != "2024-01-02" || r.Vars["since"] != "2024-01-02" || r.Vars["1"] != "one" || r.Vars["on"] != "yes" {
		t.Errorf("description %q, vars %#v", r.Description, r.Vars)
	}
	ok, err := r.When.EvalBool(Env{"vars": r.Vars})
	if err != nil || !ok {
		t.Errorf("when = %v, %v", ok, err)
	}
}
