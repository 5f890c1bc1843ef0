package recipes

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/expr-lang/expr/types"
)

// Expression type-checking sees trigger data and step outputs as typed
// maps built from the operations' JSON Schemas: an object with properties
// is a strict map (an unknown field is an error), an array has the type of
// its items, and anything the schema leaves open is `any`.

// ftype is a value's type as the recipe knows it: enough to build the
// expr type and to suggest field names.
type ftype struct {
	fields map[string]*ftype // typed map: known fields
	extra  *ftype            // typed map: type of other keys; nil = strict
	elem   *ftype            // array: items
	expr   types.Type
}

var anyType = &ftype{expr: types.Any}

func scalarType(t types.Type) *ftype { return &ftype{expr: t} }

func mapType(fields map[string]*ftype, extra *ftype) *ftype {
	m := types.Map{}
	for k, f := range fields {
		m[k] = f.expr
	}
	if extra != nil {
		m[types.Extra] = extra.expr
	}
	return &ftype{fields: fields, extra: extra, expr: m}
}

func arrayType(elem *ftype) *ftype {
	return &ftype{elem: elem, expr: types.Array(elem.expr)}
}

// field returns the type of a field, following extra for open maps.
func (t *ftype) field(name string) (*ftype, bool) {
	if t == nil || (t.fields == nil && t.extra == nil) {
		return nil, false
	}
	if f, ok := t.fields[name]; ok {
		return f, true
	}
	if t.extra != nil {
		return t.extra, true
	}
	return nil, false
}

// names lists the known fields, sorted, for "did you mean".
func (t *ftype) names() []string {
	names := make([]string, 0, len(t.fields))
	for k := range t.fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

var typeCache sync.Map // schema text → *ftype

// schemaType converts a JSON Schema document to a type; a schema that does
// not parse is `any` (connectors.Check rejects it earlier). Types are
// immutable once built, and shared.
func schemaType(raw json.RawMessage) *ftype {
	if len(raw) == 0 {
		return anyType
	}
	key := string(raw)
	if t, ok := typeCache.Load(key); ok {
		return t.(*ftype)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return anyType
	}
	t := typeOf(doc, doc, 0)
	typeCache.Store(key, t)
	return t
}

const maxTypeDepth = 12

func typeOf(root, sch any, depth int) *ftype {
	m, ok := sch.(map[string]any)
	if !ok || depth > maxTypeDepth {
		return anyType
	}
	if ref, ok := m["$ref"].(string); ok {
		return typeOf(root, lookupRef(root, ref), depth+1)
	}
	// Combinators: a nullable value (anyOf/oneOf with one non-null
	// branch) has its branch's type; allOf merges its parts; branches of
	// one type share it; object branches merge their fields.
	for _, kw := range []string{"anyOf", "oneOf"} {
		if list, ok := m[kw].([]any); ok {
			return unionType(root, list, depth)
		}
	}
	if list, ok := m["allOf"].([]any); ok {
		return allOfType(root, m, list, depth)
	}
	typ := m["type"]
	if list, ok := typ.([]any); ok {
		// ["string", "null"] is a string that may be missing.
		var nonNull []any
		for _, t := range list {
			if t != "null" {
				nonNull = append(nonNull, t)
			}
		}
		if len(nonNull) != 1 {
			return anyType
		}
		typ = nonNull[0]
	}
	if typ == nil {
		if _, ok := m["properties"]; ok {
			typ = "object"
		}
	}
	switch typ {
	case "string":
		return scalarType(types.String)
	case "integer":
		return scalarType(types.Int)
	case "number":
		return scalarType(types.Float64)
	case "boolean":
		return scalarType(types.Bool)
	case "array":
		return arrayType(typeOf(root, m["items"], depth+1))
	case "object":
		props, _ := m["properties"].(map[string]any)
		extraSchema, hasExtra := m["additionalProperties"].(map[string]any)
		if len(props) == 0 && !hasExtra {
			return anyType
		}
		fields := make(map[string]*ftype, len(props))
		for name, p := range props {
			fields[name] = typeOf(root, p, depth+1)
		}
		var extra *ftype
		if hasExtra {
			extra = typeOf(root, extraSchema, depth+1)
		}
		return mapType(fields, extra)
	}
	return anyType
}

// isNullSchema reports a branch that admits only null.
func isNullSchema(root, sch any) bool {
	m, ok := sch.(map[string]any)
	if !ok {
		return false
	}
	if ref, ok := m["$ref"].(string); ok {
		return isNullSchema(root, lookupRef(root, ref))
	}
	if c, ok := m["const"]; ok && c == nil {
		return true
	}
	return m["type"] == "null"
}

// unionType types anyOf/oneOf: null branches say the value may be
// missing, which expressions handle with ?. and ??; the others must agree.
func unionType(root any, branches []any, depth int) *ftype {
	var types_ []*ftype
	for _, b := range branches {
		if isNullSchema(root, b) {
			continue
		}
		types_ = append(types_, typeOf(root, b, depth+1))
	}
	switch len(types_) {
	case 0:
		return anyType
	case 1:
		return types_[0]
	}
	return mergeTypes(types_, false)
}

// allOfType types allOf, with the schema's own keywords as one more part.
func allOfType(root any, m map[string]any, parts []any, depth int) *ftype {
	var types_ []*ftype
	own := make(map[string]any, len(m))
	for k, v := range m {
		if k != "allOf" {
			own[k] = v
		}
	}
	if t := typeOf(root, own, depth+1); t != anyType {
		types_ = append(types_, t)
	}
	for _, p := range parts {
		if t := typeOf(root, p, depth+1); t != anyType {
			types_ = append(types_, t)
		}
	}
	switch len(types_) {
	case 0:
		return anyType
	case 1:
		return types_[0]
	}
	return mergeTypes(types_, true)
}

// mergeTypes combines branch types: identical types stay; objects merge
// their fields (every branch's fields are known); anything else is any.
func mergeTypes(list []*ftype, all bool) *ftype {
	first := list[0]
	same := true
	for _, t := range list[1:] {
		if !t.expr.Equal(first.expr) {
			same = false
		}
	}
	if same {
		return first
	}
	fields := map[string]*ftype{}
	var extra *ftype
	for _, t := range list {
		if t.fields == nil && t.extra == nil {
			return anyType // not all objects
		}
		for k, f := range t.fields {
			if prev, ok := fields[k]; ok && !prev.expr.Equal(f.expr) {
				if all {
					continue // allOf: the first part that names a field types it
				}
				fields[k] = anyType
				continue
			}
			fields[k] = f
		}
		if t.extra != nil {
			extra = anyType
		}
	}
	return mapType(fields, extra)
}

// lookupRef resolves a local reference (#/$defs/x); others are nil.
func lookupRef(root any, ref string) any {
	if !strings.HasPrefix(ref, "#") {
		return nil
	}
	cur := root
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			cur = c[tok]
		case []any:
			// anyOf/oneOf/allOf branches and prefixItems are arrays.
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

// valueType is the type of a literal value (vars).
func valueType(v any, depth int) *ftype {
	if depth > maxTypeDepth {
		return anyType
	}
	switch v := v.(type) {
	case string:
		return scalarType(types.String)
	case int:
		return scalarType(types.Int)
	case float64:
		return scalarType(types.Float64)
	case bool:
		return scalarType(types.Bool)
	case map[string]any:
		fields := make(map[string]*ftype, len(v))
		for k, e := range v {
			fields[k] = valueType(e, depth+1)
		}
		return mapType(fields, nil)
	case []any:
		var elem *ftype
		for _, e := range v {
			t := valueType(e, depth+1)
			if elem == nil {
				elem = t
			} else if !elem.expr.Equal(t.expr) {
				elem = anyType
			}
		}
		if elem == nil {
			elem = anyType
		}
		return arrayType(elem)
	}
	return anyType
}
