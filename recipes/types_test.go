package recipes

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	_ "github.com/memberflow/memberflow/connectors/all"
)

// TestEveryOutputSchemaIsTyped walks every operation's output schema of
// the built-in connectors and fails on a schema form the type checker
// treats as `any` although it describes a structure: a typo under such a
// field would validate clean.
func TestEveryOutputSchemaIsTyped(t *testing.T) {
	ops := 0
	for _, name := range connectors.Default.Names() {
		spec, _ := connectors.Default.Lookup(name)
		var outputs []struct {
			name string
			raw  json.RawMessage
		}
		for _, tr := range spec.Triggers {
			outputs = append(outputs, struct {
				name string
				raw  json.RawMessage
			}{name + "." + tr.Name + " (trigger)", tr.Output})
		}
		for _, a := range spec.Actions {
			outputs = append(outputs, struct {
				name string
				raw  json.RawMessage
			}{name + "." + a.Name, a.Output})
		}
		for _, o := range outputs {
			if len(o.raw) == 0 {
				continue
			}
			ops++
			var doc any
			if err := json.Unmarshal(o.raw, &doc); err != nil {
				t.Errorf("%s: output schema: %v", o.name, err)
				continue
			}
			for _, p := range untypedForms(doc, doc, "", 0) {
				t.Errorf("%s: output schema at %s is typed as any", o.name, p)
			}
		}
	}
	if ops < 20 {
		t.Fatalf("only %d operations walked; is connectors/all registering the connectors?", ops)
	}
}

// untypedForms lists the places in a schema that describe a structure
// (properties, items, a combinator, a reference) but type as any.
func untypedForms(root, sch any, at string, depth int) []string {
	m, ok := sch.(map[string]any)
	if !ok || depth > maxTypeDepth {
		return nil
	}
	var out []string
	structured := false
	for _, k := range []string{"properties", "items", "anyOf", "oneOf", "allOf", "$ref"} {
		if _, ok := m[k]; ok {
			structured = true
		}
	}
	if structured && typeOf(root, m, 0) == anyType && !legitimatelyOpen(root, m) {
		out = append(out, pointer(at))
	}
	if props, ok := m["properties"].(map[string]any); ok {
		for k, p := range props {
			out = append(out, untypedForms(root, p, at+"/properties/"+k, depth+1)...)
		}
	}
	if items, ok := m["items"]; ok {
		out = append(out, untypedForms(root, items, at+"/items", depth+1)...)
	}
	for _, kw := range []string{"anyOf", "oneOf", "allOf"} {
		list, _ := m[kw].([]any)
		for i, b := range list {
			out = append(out, untypedForms(root, b, fmt.Sprintf("%s/%s/%d", at, kw, i), depth+1)...)
		}
	}
	return out
}

// legitimatelyOpen: an object without properties, or a union of
// different kinds (a string or an array), is any by design.
func legitimatelyOpen(root any, m map[string]any) bool {
	if ref, ok := m["$ref"].(string); ok {
		r, _ := lookupRef(root, ref).(map[string]any)
		return r != nil && legitimatelyOpen(root, r)
	}
	if props, ok := m["properties"].(map[string]any); ok && len(props) > 0 {
		return false
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		if list, ok := m[kw].([]any); ok {
			var kinds []string
			for _, b := range list {
				if !isNullSchema(root, b) {
					kinds = append(kinds, fmt.Sprint(typeOf(root, b, 0).expr))
				}
			}
			return len(kinds) > 1
		}
	}
	if _, ok := m["items"]; ok {
		return false
	}
	if _, ok := m["allOf"]; ok {
		return false
	}
	return m["type"] == "object" || m["type"] == nil
}

func pointer(at string) string {
	if at == "" {
		return "/"
	}
	return strings.TrimSuffix(at, "/")
}

// TestSchemaForms types each combinator the connectors may produce.
func TestSchemaForms(t *testing.T) {
	const user = `{"type":"object","properties":{"id":{"type":"string"},"age":{"type":"integer"}}}`
	cases := []struct {
		name, schema, want string
	}{
		{"anyOf with null", `{"anyOf":[` + user + `,{"type":"null"}]}`, "{age:int id:string}"},
		{"oneOf with null first", `{"oneOf":[{"type":"null"},` + user + `]}`, "{age:int id:string}"},
		{"const null branch", `{"anyOf":[{"const":null},{"type":"string"}]}`, "string"},
		{"type list", `{"type":["integer","null"]}`, "int"},
		{"allOf merges", `{"allOf":[{"type":"object","properties":{"id":{"type":"string"}}},{"properties":{"n":{"type":"number"}}}]}`, "{id:string n:float64}"},
		{"allOf with own properties", `{"type":"object","properties":{"a":{"type":"boolean"}},"allOf":[{"properties":{"b":{"type":"string"}}}]}`, "{a:bool b:string}"},
		{"ref", `{"$defs":{"u":` + user + `},"$ref":"#/$defs/u"}`, "{age:int id:string}"},
		{"ref to a null-able", `{"$defs":{"u":` + user + `,"n":{"type":"null"}},"anyOf":[{"$ref":"#/$defs/n"},{"$ref":"#/$defs/u"}]}`, "{age:int id:string}"},
		{"ref into a branch", `{"$defs":{"x":{"anyOf":[{"type":"string"},{"type":"integer"}]}},"$ref":"#/$defs/x/anyOf/1"}`, "int"},
		{"same-typed branches", `{"anyOf":[{"type":"string","enum":["a"]},{"type":"string","format":"date"}]}`, "string"},
		{"object branches merge", `{"oneOf":[{"properties":{"a":{"type":"string"}}},{"properties":{"b":{"type":"integer"}}}]}`, "{a:string b:int}"},
		{"string or array stays any", `{"anyOf":[{"type":"string"},{"type":"array","items":{"type":"string"}}]}`, "any"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			typ := schemaType(json.RawMessage(c.schema))
			if got := describeType(typ); got != c.want {
				t.Errorf("type of %s = %s, want %s", c.schema, got, c.want)
			}
		})
	}
}

// describeType renders a type with sorted fields, for stable comparisons.
func describeType(t *ftype) string {
	switch {
	case t.fields != nil || t.extra != nil:
		var parts []string
		for _, k := range t.names() {
			parts = append(parts, k+":"+describeType(t.fields[k]))
		}
		if t.extra != nil {
			parts = append(parts, "*:"+describeType(t.extra))
		}
		return "{" + strings.Join(parts, " ") + "}"
	case t.elem != nil:
		return "[]" + describeType(t.elem)
	}
	return t.expr.String()
}
