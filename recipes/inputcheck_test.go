package recipes

import (
	"errors"
	"strings"
	"testing"
)

// inputCheckRecipe computes every key of update_user's input (crm's
// update_user: userId required, certificateStatus one of issued or
// revoked, planId an integer).
const inputCheckRecipe = `version: 1
name: check
connections:
  crm: { connector: crm, auth: { type: bearer, token: "${{ secret.T }}" }, options: { locationId: loc1 } }
trigger:
  uses: crm.membership_status_changed
steps:
  - uses: crm.update_user
    with:
      userId: ${{ trigger.user.id }}
      certificateStatus: ${{ trigger.user.fullName }}
      planId: ${{ trigger.user.planId }}
`

func TestInputCheck(t *testing.T) {
	r, diags := LoadBytes("r.yaml", []byte(inputCheckRecipe), Options{Registry: testRegistry()})
	if len(diags) > 0 {
		t.Fatalf("the recipe does not load: %v", diags)
	}
	step := r.Steps[0]
	check := NewInputCheck("crm/update_user/input", step.With, updateUserInput())
	if check == nil {
		t.Fatal("no check for a with block that computes its values")
	}
	cases := []struct {
		name string
		user map[string]any
		want []string // substrings of the error; none: valid
	}{
		{"valid", map[string]any{"id": "u1", "fullName": "issued", "planId": 3}, nil},
		{"a whole float is an integer", map[string]any{"id": "u1", "fullName": "revoked", "planId": 3.0}, nil},
		{"enum, with the value and the closest name",
			map[string]any{"id": "u1", "fullName": "isued", "planId": 3},
			[]string{`certificateStatus (r.yaml:11:30): "isued": value must be one of "issued", "revoked"; did you mean "issued"?`}},
		{"type of a value the trigger does not type",
			map[string]any{"id": "u1", "fullName": "issued", "planId": "gold"},
			[]string{`planId (r.yaml:12:19): expected integer, but got string`}},
		{"a required key its expression gave nothing for",
			map[string]any{"fullName": "issued"},
			[]string{`userId (r.yaml:10:19): required, but its expression gave nothing (give a default with ??)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input, err := step.With.EvalMap(Env{"trigger": map[string]any{"user": tc.user}, "steps": map[string]any{}})
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range input {
				if v == nil {
					delete(input, k) // as the engine leaves it out
				}
			}
			err = check.Check(input)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid input refused: %v", err)
				}
				return
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("want an *InputError, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\nlacks\n  %s", err, w)
				}
			}
		})
	}
}

// A check is made only where the schema could refuse what an expression
// computes: bulk steps whose values are typed as the schema asks pay
// nothing per call.
func TestInputCheckOnlyWhereTheSchemaCouldRefuse(t *testing.T) {
	for _, tc := range []struct {
		with  string
		check bool
	}{
		{"{ userId: u1, certificateStatus: issued }", false},                          // literals: checked at load
		{"{ userId: u1, planId: \"${{ trigger.user.planId }}\" }", false},             // an integer where one is asked
		{"{ userId: \"${{ trigger.user.id }}\" }", true},                              // required: it may give nothing
		{"{ userId: u1, certificateStatus: \"${{ trigger.user.fullName }}\" }", true}, // an enum
		{"{ userId: u1, planId: \"${{ trigger.user.score }}\" }", true},               // a number where an integer is asked
		{"{ userId: u1, planId: \"${{ trigger.user.meta.plan }}\" }", true},           // a value of unknown type
	} {
		src := strings.Replace(inputCheckRecipe, `    with:
      userId: ${{ trigger.user.id }}
      certificateStatus: ${{ trigger.user.fullName }}
      planId: ${{ trigger.user.planId }}`, "    with: "+tc.with, 1)
		r, diags := LoadBytes("r.yaml", []byte(src), Options{Registry: testRegistry()})
		if len(diags) > 0 {
			t.Fatalf("%s: the recipe does not load: %v", tc.with, diags)
		}
		if c := NewInputCheck("crm/update_user/input", r.Steps[0].With, updateUserInput()); (c != nil) != tc.check {
			t.Errorf("with %s: checked %v, want %v", tc.with, c != nil, tc.check)
		}
	}
}

func updateUserInput() []byte {
	spec, _ := testRegistry().Lookup("crm")
	return spec.Action("update_user").Input
}

// A computed record under a free-form object (file.append's record)
// has nothing the schema could refuse: the bulk file job pays nothing.
func TestNoInputCheckForAFreeFormRecord(t *testing.T) {
	schema := []byte(`{"type":"object","additionalProperties":false,"required":["path","record"],
		"properties":{"path":{"type":"string","minLength":1},"record":{"type":"object"}}}`)
	with, err := CompileTemplate(map[string]any{"path": "out.jsonl",
		"record": map[string]any{"id": "${{ trigger.id }}", "score": "${{ trigger.score }}"}}, Pos{File: "r.yaml", Line: 1, Column: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c := NewInputCheck("test/append/input", with, schema); c != nil {
		t.Fatal("a check for values no keyword constrains")
	}
	with, err = CompileTemplate(map[string]any{"path": "${{ trigger.file }}", "record": map[string]any{}}, Pos{File: "r.yaml", Line: 1, Column: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c := NewInputCheck("test/append/input", with, schema); c == nil {
		t.Fatal("no check of a computed path, which is required and has a minimum length")
	}
}
