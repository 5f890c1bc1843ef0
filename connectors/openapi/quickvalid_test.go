package openapi

import (
	"encoding/json"
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

// TestQuickValidAgreesWithTheValidator: every schema quickValid decides,
// it decides as the compiled JSON Schema does.
func TestQuickValidAgreesWithTheValidator(t *testing.T) {
	schemas := []string{
		`{}`,
		`{"type":"string","description":"x","format":"email"}`,
		`{"type":"string","enum":["a","b"]}`,
		`{"enum":["a","b"]}`,
		`{"type":["string","null"]}`,
		`{"type":"integer","example":3}`,
		`{"type":"number"}`,
		`{"type":"boolean","default":false}`,
		`{"type":"object","description":"any object"}`,
		`{"type":"array"}`,
		`{"type":"null"}`,
		`{"type":"string","minLength":2}`,
		`{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}`,
		`{"type":"array","items":{"type":"integer"}}`,
		`{"type":"integer","enum":[1,2]}`,
	}
	values := []string{`"a"`, `"c"`, `""`, `3`, `3.5`, `1e300`, `true`, `null`, `{}`, `{"a":"x"}`, `[]`, `[1,"x"]`}
	decided := 0
	for _, sch := range schemas {
		var schema map[string]any
		if err := json.Unmarshal([]byte(sch), &schema); err != nil {
			t.Fatal(err)
		}
		compiled, err := connectors.CompileSchema("q", json.RawMessage(sch))
		if err != nil {
			t.Fatal(err)
		}
		for _, val := range values {
			var v any
			if err := json.Unmarshal([]byte(val), &v); err != nil {
				t.Fatal(err)
			}
			got, ok := quickValid(schema, v)
			if !ok {
				continue
			}
			decided++
			if want := compiled.Validate(v) == nil; got != want {
				t.Errorf("schema %s, value %s: quickValid says %v, the validator %v", sch, val, got, want)
			}
		}
	}
	if decided < 80 {
		t.Fatalf("quickValid decided only %d cases: the fast path is not taken", decided)
	}
}
