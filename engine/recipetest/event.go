package recipetest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/memberflow/memberflow/internal/suggest"
)

// eventProblems compares a test's event with the trigger's output schema:
// a field the trigger never gives (a typo such as emial) or a value of
// another JSON type makes a test that passes on an event production
// never sends. Only what the schema declares is judged: an object without
// properties, or one that admits others, takes any field.
func eventProblems(schema json.RawMessage, event map[string]any) []string {
	var s map[string]any
	if len(schema) == 0 || json.Unmarshal(schema, &s) != nil {
		return nil
	}
	var out []string
	checkValue(s, event, "event", &out)
	return out
}

func checkValue(s map[string]any, v any, path string, out *[]string) {
	if v == nil || s == nil {
		return
	}
	if t, ok := s["type"].(string); ok && !jsonTypeIs(t, v) {
		*out = append(*out, fmt.Sprintf("%s is %s, but the trigger gives %s", path, jsonTypeOf(v), t))
		return
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		if len(props) == 0 {
			return
		}
		open := s["additionalProperties"] != nil && s["additionalProperties"] != false
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ps, known := props[k].(map[string]any)
			if !known {
				if !open {
					names := make([]string, 0, len(props))
					for n := range props {
						names = append(names, n)
					}
					sort.Strings(names)
					msg := fmt.Sprintf("%s.%s: the trigger gives no such field (it gives %s)", path, k, strings.Join(names, ", "))
					if c := suggest.Closest(k, names); c != "" {
						msg += fmt.Sprintf("; did you mean %q?", c)
					}
					*out = append(*out, msg)
				}
				continue
			}
			checkValue(ps, v[k], path+"."+k, out)
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, it := range v {
				checkValue(items, it, fmt.Sprintf("%s[%d]", path, i), out)
			}
		}
	}
}

func jsonTypeIs(t string, v any) bool {
	switch t {
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	}
	return true
}

func jsonTypeOf(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}
