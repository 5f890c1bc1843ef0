package openapi

import (
	"sort"
	"strings"
)

// normalizer turns OpenAPI 3.0 schema objects into JSON Schema 2020-12:
// local $refs are inlined (a cycle becomes an unconstrained schema),
// `nullable` becomes a "null" type, `example` becomes `examples`, and
// OpenAPI-only keywords are dropped.
type normalizer struct {
	components map[string]any
}

func (n *normalizer) schema(v any, nestDotted bool) map[string]any {
	out, _ := n.node(v, nil, nestDotted).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	return out
}

func (n *normalizer) node(v any, stack []string, nestDotted bool) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if ref, ok := m["$ref"].(string); ok {
		name, local := strings.CutPrefix(ref, "#/components/schemas/")
		if !local {
			return map[string]any{"description": "defined in an external document: " + ref}
		}
		for _, s := range stack {
			if s == name {
				return map[string]any{"description": "recursive reference to " + name}
			}
		}
		target, _ := n.components[name]
		return n.node(target, append(stack, name), nestDotted)
	}
	out := make(map[string]any, len(m))
	for k, val := range m {
		switch k {
		case "nullable", "example", "xml", "discriminator", "externalDocs", "x-code-samples":
			continue
		case "properties":
			props, _ := val.(map[string]any)
			np := make(map[string]any, len(props))
			for pk, pv := range props {
				np[pk] = n.node(pv, stack, nestDotted)
			}
			out[k] = np
		case "items", "additionalProperties", "not":
			out[k] = n.node(val, stack, nestDotted)
		case "allOf", "anyOf", "oneOf":
			list, _ := val.([]any)
			nl := make([]any, len(list))
			for i, it := range list {
				nl[i] = n.node(it, stack, nestDotted)
			}
			out[k] = nl
		case "type":
			if val == "file" {
				val = "string"
			}
			out[k] = val
		case "exclusiveMinimum", "exclusiveMaximum":
			if b, ok := val.(bool); ok {
				// OpenAPI 3.0 form: a boolean beside minimum/maximum.
				if b {
					bound := "minimum"
					if k == "exclusiveMaximum" {
						bound = "maximum"
					}
					if num, ok := m[bound]; ok {
						out[k] = num
						delete(out, bound)
					}
				}
				continue
			}
			out[k] = val
		case "minimum", "maximum":
			if b, _ := m["exclusive"+strings.ToUpper(k[:1])+k[1:]].(bool); b {
				continue
			}
			out[k] = val
		default:
			out[k] = val
		}
	}
	if ex, ok := m["example"]; ok {
		out["examples"] = []any{ex}
	}
	if nullable, _ := m["nullable"].(bool); nullable {
		switch t := out["type"].(type) {
		case string:
			out["type"] = []any{t, "null"}
		}
		if enum, ok := out["enum"].([]any); ok {
			out["enum"] = append(enum, nil)
		}
	}
	if nestDotted {
		nestDottedProperties(out)
	}
	return out
}

// nestDottedProperties rewrites documentation-style flat names
// ("recipient.name") into nested object schemas, required included.
func nestDottedProperties(s map[string]any) {
	props, _ := s["properties"].(map[string]any)
	if props == nil {
		return
	}
	var dotted []string
	for k := range props {
		if strings.Contains(k, ".") {
			dotted = append(dotted, k)
		}
	}
	if len(dotted) == 0 {
		return
	}
	sort.Strings(dotted)
	required := map[string]bool{}
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			if rs, ok := r.(string); ok {
				required[rs] = true
			}
		}
	}
	for _, k := range dotted {
		head, tail, _ := strings.Cut(k, ".")
		parent, _ := props[head].(map[string]any)
		if parent == nil {
			parent = map[string]any{"type": "object"}
			props[head] = parent
		}
		if parent["type"] == nil {
			parent["type"] = "object"
		}
		pp, _ := parent["properties"].(map[string]any)
		if pp == nil {
			pp = map[string]any{}
			parent["properties"] = pp
		}
		pp[tail] = props[k]
		delete(props, k)
		if required[k] {
			delete(required, k)
			required[head] = true
			var preq []any
			if r, ok := parent["required"].([]any); ok {
				preq = r
			}
			parent["required"] = append(preq, tail)
		}
		nestDottedProperties(parent)
	}
	if len(required) > 0 || s["required"] != nil {
		req := make([]any, 0, len(required))
		for _, k := range sortedKeys(required) {
			req = append(req, k)
		}
		s["required"] = req
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// exampleFor builds a value valid for schema: the schema's own example or
// default when present, else a value of its type, filling required
// properties only.
func exampleFor(s map[string]any, depth int) any {
	if ex, ok := s["examples"].([]any); ok && len(ex) > 0 {
		return ex[0]
	}
	if d, ok := s["default"]; ok {
		return d
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		return e[0]
	}
	if depth > 6 {
		return nil
	}
	t := s["type"]
	if ts, ok := t.([]any); ok && len(ts) > 0 {
		t = ts[0]
	}
	switch t {
	case "string":
		switch s["format"] {
		case "date":
			return "2026-01-15"
		case "date-time":
			return "2026-01-15T10:00:00Z"
		case "email":
			return "member@example.com"
		}
		return "example"
	case "integer", "number":
		return 1
	case "boolean":
		return true
	case "array":
		if items, ok := s["items"].(map[string]any); ok {
			if v := exampleFor(items, depth+1); v != nil {
				return []any{v}
			}
		}
		return []any{}
	default:
		props, _ := s["properties"].(map[string]any)
		out := map[string]any{}
		req, _ := s["required"].([]any)
		for _, r := range req {
			name, _ := r.(string)
			if ps, ok := props[name].(map[string]any); ok {
				if v := exampleFor(ps, depth+1); v != nil {
					out[name] = v
				}
			}
		}
		return out
	}
}

// typeOfValue describes a JSON value by its JSON Schema type, for body
// fields documented only by example.
func typeOfValue(v any) map[string]any {
	switch v.(type) {
	case string:
		return map[string]any{"type": "string"}
	case bool:
		return map[string]any{"type": "boolean"}
	case float64, int:
		return map[string]any{"type": "number"}
	case []any:
		return map[string]any{"type": "array"}
	case map[string]any:
		return map[string]any{"type": "object"}
	}
	return map[string]any{}
}
