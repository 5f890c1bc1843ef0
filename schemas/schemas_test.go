package schemas

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

func TestRecipeSchemaCompiles(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	if err := c.AddResource(RecipeURL, bytes.NewReader(Recipe)); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{RecipeURL, RecipeURL + "#/$defs/connectionsFile"} {
		if _, err := c.Compile(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// TestEveryPropertyIsDescribed: editors show the descriptions as help,
// so a property without one is a hole in the help.
func TestEveryPropertyIsDescribed(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(Recipe, &doc); err != nil {
		t.Fatal(err)
	}
	defs := doc["$defs"].(map[string]any)
	described := func(s map[string]any) bool {
		if d, ok := s["description"].(string); ok && d != "" {
			return true
		}
		// A bare reference takes the description of what it names.
		if ref, ok := s["$ref"].(string); ok {
			if def, ok := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any); ok {
				d, _ := def["description"].(string)
				return d != ""
			}
		}
		return false
	}
	var walk func(path string, s map[string]any)
	walk = func(path string, s map[string]any) {
		if props, ok := s["properties"].(map[string]any); ok {
			for name, p := range props {
				ps := p.(map[string]any)
				if !described(ps) {
					t.Errorf("%s.%s has no description", path, name)
				}
				walk(path+"."+name, ps)
			}
		}
		for _, k := range []string{"items", "additionalProperties"} {
			if sub, ok := s[k].(map[string]any); ok {
				walk(path+"."+k, sub)
			}
		}
		for _, k := range []string{"anyOf", "oneOf"} {
			if list, ok := s[k].([]any); ok {
				for _, b := range list {
					walk(path+"."+k, b.(map[string]any))
				}
			}
		}
	}
	walk("recipe", doc)
	for name, d := range defs {
		walk("$defs."+name, d.(map[string]any))
	}
}
