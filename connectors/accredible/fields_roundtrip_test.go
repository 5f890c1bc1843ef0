package accredible

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/recipes"
)

func accredibleRegistry(t *testing.T) *connectors.Registry {
	t.Helper()
	reg := connectors.NewRegistry()
	if err := reg.Register(Spec()); err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestRecipeWithDocumentedFields: a recipe that sets references,
// allow_supplemental_evidence, allow_supplemental_references and string
// meta_data validates, and a later step reads them back typed
// (steps.issue.references[0].referee.name, a boolean, a meta_data
// string). Its create step's input, run against the sandbox, comes back
// in the credential as it was sent.
func TestRecipeWithDocumentedFields(t *testing.T) {
	data, err := os.ReadFile("testdata/credential-fields.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, diags := recipes.LoadBytes("testdata/credential-fields.yaml", data, recipes.Options{Registry: accredibleRegistry(t)}); len(diags) > 0 {
		t.Fatalf("the recipe does not validate:\n%v", diags)
	}

	var doc struct {
		Steps []struct {
			With map[string]any `yaml:"with"`
		} `yaml:"steps"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	in := doc.Steps[0].With
	e := setup(t)
	created := out(e.run(t, "create_credential", in))
	read := out(e.run(t, "get_credential", map[string]any{"id": created["id"]}))
	for name, o := range map[string]map[string]any{"create's answer": created, "get_credential": read} {
		if o["allow_supplemental_evidence"] != false || o["allow_supplemental_references"] != true {
			t.Errorf("%s: allow_supplemental_evidence %v, allow_supplemental_references %v; want false, true", name, o["allow_supplemental_evidence"], o["allow_supplemental_references"])
		}
		refs, _ := o["references"].([]any)
		if len(refs) != 1 {
			t.Fatalf("%s: references %v, want the one sent", name, o["references"])
		}
		ref := refs[0].(map[string]any)
		referee, _ := ref["referee"].(map[string]any)
		if ref["description"] != "Jordan led the chapter's CPD programme all year." || ref["relationship"] != "managed" || referee["name"] != "Jane Doe" {
			t.Errorf("%s: reference %v", name, ref)
		}
		if m := o["meta_data"].(map[string]any); m["batch_id"] != "TK210" {
			t.Errorf("%s: meta_data %v", name, m)
		}
		if m := o["recipient"].(map[string]any)["meta_data"]; !reflect.DeepEqual(m, map[string]any{"chapter": "north"}) {
			t.Errorf("%s: recipient.meta_data %v", name, m)
		}
	}

	// The second step's input, as the recipe computes it.
	updated := out(e.run(t, "update_credential", map[string]any{"id": created["id"], "allow_supplemental_references": false,
		"meta_data": map[string]any{"batch_id": "TK210", "referee": "Jane Doe", "relationship": "managed"}}))
	if updated["allow_supplemental_references"] != false || updated["allow_supplemental_evidence"] != false {
		t.Errorf("update: allow_supplemental_* %v, %v; want false, false", updated["allow_supplemental_evidence"], updated["allow_supplemental_references"])
	}
	if refs, _ := updated["references"].([]any); len(refs) != 1 {
		t.Errorf("update without references changed them: %v", updated["references"])
	}
}

// TestRecipeFieldTypesChecked: the new fields' types reach the recipe
// checker: a number into meta_data, a string into allow_supplemental_*,
// an unknown relationship, and a meta_data entry read as a number are
// errors where they are written.
func TestRecipeFieldTypesChecked(t *testing.T) {
	base, err := os.ReadFile("testdata/credential-fields.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, old, new, want string
	}{
		{"a number in meta_data", "meta_data: {batch_id: TK210}", "meta_data: {batch_id: 210}", "meta_data"},
		{"a string for a boolean", "allow_supplemental_evidence: false", "allow_supplemental_evidence: \"no\"", "allow_supplemental_evidence"},
		{"a relationship not documented", "relationship: managed", "relationship: colleague", "relationship"},
		{"an int expression into meta_data", "batch_id: ${{ steps.issue.meta_data.batch_id }}", "batch_id: ${{ steps.issue.group_id }}", "batch_id"},
		{"a meta_data entry used as a number", "batch_id: ${{ steps.issue.meta_data.batch_id }}", "batch_id: ${{ steps.issue.meta_data.batch_id + 1 }}", "mismatched types string and int"},
		{"a referee field not documented", "referee: ${{ steps.issue.references[0].referee.name }}", "referee: ${{ steps.issue.references[0].referee.phone }}", "phone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := string(base)
			if !strings.Contains(src, tc.old) {
				t.Fatalf("the recipe has no %q", tc.old)
			}
			src = strings.Replace(src, tc.old, tc.new, 1)
			_, diags := recipes.LoadBytes("credential-fields.yaml", []byte(src), recipes.Options{Registry: accredibleRegistry(t)})
			if !diags.HasErrors() {
				t.Fatalf("no error for %s", tc.new)
			}
			if !strings.Contains(diags.Error(), tc.want) {
				t.Errorf("the error does not name %q:\n%v", tc.want, diags)
			}
		})
	}
}

// TestUpsertComparesSupplementalFlags: upsert sends allow_supplemental_*
// when the credential does not show the value asked for (null, unset, is
// not false), and not again once it does. References, like evidence, are
// set on creation and left alone on an existing credential.
func TestUpsertComparesSupplementalFlags(t *testing.T) {
	e := setup(t)
	puts := &putBodies{base: e.lose.base}
	e.lose.base = puts
	base := map[string]any{"recipient": member(1), "group_id": 100001, "reference": "M1/2026",
		"references": []any{map[string]any{"description": "Good", "relationship": "taught"}}}
	e.run(t, "upsert_credential", base)

	with := map[string]any{"recipient": member(1), "group_id": 100001, "reference": "M1/2026", "allow_supplemental_evidence": false,
		"references": []any{map[string]any{"description": "Other", "relationship": "worked"}}}
	o := out(e.run(t, "upsert_credential", with))
	if o["action"] != "updated" || o["allow_supplemental_evidence"] != false {
		t.Errorf("upsert with allow_supplemental_evidence false: action %v, value %v", o["action"], o["allow_supplemental_evidence"])
	}
	if refs := o["references"].([]any); len(refs) != 1 || refs[0].(map[string]any)["description"] != "Good" {
		t.Errorf("upsert changed an existing credential's references: %v", refs)
	}
	if o := out(e.run(t, "upsert_credential", with)); o["action"] != "unchanged" {
		t.Errorf("upsert again: action %v, want unchanged", o["action"])
	}
	if len(puts.sent) != 1 {
		t.Fatalf("%d PUTs, want 1: %v", len(puts.sent), puts.sent)
	}
	if cred := puts.sent[0]["credential"].(map[string]any); len(cred) != 1 || cred["allow_supplemental_evidence"] != false {
		t.Errorf("PUT %v, want only allow_supplemental_evidence", cred)
	}
}

// TestBulkCreateSendsDocumentedFields: bulk_create_credentials items take
// the new fields and the sandbox stores them.
func TestBulkCreateSendsDocumentedFields(t *testing.T) {
	e := setup(t)
	item := map[string]any{"recipient": member(2), "group_id": 100001, "reference": "M2/2026", "allow_supplemental_references": false,
		"meta_data": map[string]any{"cohort": "2026"}, "references": []any{map[string]any{"description": "Solid", "relationship": "studied"}}}
	res := out(e.run(t, "bulk_create_credentials", map[string]any{"credentials": []any{item}}))
	r := res["results"].([]any)[0].(map[string]any)
	if r["status"] != "created" {
		t.Fatalf("bulk item: %v", r)
	}
	got := out(e.run(t, "get_credential", map[string]any{"id": r["credential"].(map[string]any)["id"]}))
	if got["allow_supplemental_references"] != false || got["meta_data"].(map[string]any)["cohort"] != "2026" || len(got["references"].([]any)) != 1 {
		t.Errorf("bulk-created credential: %v", got)
	}
}
