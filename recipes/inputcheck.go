package recipes

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/memberflow/memberflow/internal/jsondec"
	"github.com/memberflow/memberflow/internal/jsonenc"
)

// InputCheck checks the input a step's `with` computes against the
// operation's input schema, before the call. Validation checks literal
// values and the types of expressions; what an expression computes (a
// status outside the enum, an email that breaks the pattern, a number
// out of bounds, a required key the record lacked) is only known at run
// time. Caught here, the run fails with the key, the rule and the
// expression's place in the recipe, offline in `memberflow test` and in
// a dry run too, instead of spending a request on a refusal.
type InputCheck struct {
	sch  *jsonschema.Schema
	fast *fastSchema // nil when the schema has a keyword it does not know
	doc  any
	with *Template
}

// NewInputCheck returns the check of a step's computed input against
// input (the operation's input schema), or nil when there is nothing to
// check at run time: no schema, no expression in `with` (its values were
// checked when the recipe was loaded), or none whose value the schema
// could refuse (an expression of the type the schema asks, under no enum,
// pattern or bound). A check costs an encoding of the input per call;
// most steps of a bulk job need none.
func NewInputCheck(name string, with *Template, input json.RawMessage) *InputCheck {
	if with == nil || with.root == nil || len(with.Expressions()) == 0 {
		return nil
	}
	sch, doc := compileOpSchema(name, input)
	if sch == nil || !mayRefuse(with.root, doc, doc, 0) {
		return nil
	}
	return &InputCheck{sch: sch, fast: compileFast(sch), doc: doc, with: with}
}

// annotations are the keywords that never refuse a value here. format
// counts as one: the run-time check leaves it to the service, though the
// validator asserts it for a schema that declares no $schema (found by
// TestFastSchemaNeverAcceptsWhatTheValidatorRefuses).
var annotations = map[string]bool{"$schema": true, "$id": true, "$comment": true, "title": true,
	"description": true, "example": true, "examples": true, "default": true, "deprecated": true,
	"readOnly": true, "writeOnly": true, "format": true, "nullable": true, "$defs": true, "definitions": true}

// mayRefuse tells whether the schema at sch could refuse a value that
// the template node n computes at run time. It errs on the side of
// checking: any keyword it does not reason about counts as a refusal.
func mayRefuse(n tnode, sch, doc any, depth int) bool {
	if depth > 32 {
		return true
	}
	m, ok := sch.(map[string]any)
	if !ok {
		return sch == false // `true` or no schema accepts anything
	}
	if ref, ok := m["$ref"].(string); ok {
		return mayRefuse(n, lookupRef(doc, ref), doc, depth+1)
	}
	switch v := n.(type) {
	case tconst:
		return false // checked when the recipe was loaded
	case tmap:
		for kw := range m {
			switch {
			case annotations[kw], kw == "type", kw == "properties", kw == "additionalProperties",
				kw == "minProperties", kw == "maxProperties", strings.HasPrefix(kw, "x-"):
			case kw == "required":
			default:
				return true
			}
		}
		props, _ := m["properties"].(map[string]any)
		required, _ := m["required"].([]any)
		for i, k := range v.keys {
			if _, isExpr := v.vals[i].(texpr); isExpr && containsValue(required, k) {
				return true // an expression that gives nothing leaves a required key out
			}
			sub, ok := props[k]
			if !ok {
				sub = m["additionalProperties"]
			}
			if mayRefuse(v.vals[i], sub, doc, depth+1) {
				return true
			}
		}
		return false
	case tlist:
		for kw := range m {
			if !annotations[kw] && kw != "type" && kw != "items" && kw != "minItems" && kw != "maxItems" && !strings.HasPrefix(kw, "x-") {
				return true
			}
		}
		for _, it := range v.items {
			if mayRefuse(it, m["items"], doc, depth+1) {
				return true
			}
		}
		return false
	}
	// An expression, or text around expressions (always a string).
	kind := "string"
	if e, ok := n.(texpr); ok {
		kind = e.e.kind
	}
	for kw, val := range m {
		switch {
		case annotations[kw], strings.HasPrefix(kw, "x-"):
		case kw == "type":
			if !typeAllows(val, kind) {
				return true
			}
		default:
			return true // enum, pattern, bounds, properties of a computed object...
		}
	}
	return false
}

// typeAllows tells whether a value of the statically known kind always
// has one of the schema's types ("" is an unknown kind: it may not).
func typeAllows(types any, kind string) bool {
	if kind == "" {
		return false
	}
	list, ok := types.([]any)
	if !ok {
		list = []any{types}
	}
	for _, t := range list {
		if t == kind || (t == "number" && kind == "integer") {
			return true
		}
	}
	return false
}

func containsValue(list []any, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// InputError is a computed input the operation's schema refuses: one
// problem per key.
type InputError struct {
	Problems []InputProblem
}

// InputProblem is one key of the input and what its value breaks.
type InputProblem struct {
	Key string // recipient.email: the key under with
	Pos Pos    // the expression that computed it; zero when not known
	Msg string
}

func (e *InputError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		at := ""
		if p.Pos.Line > 0 {
			at = fmt.Sprintf(" (%s:%d:%d)", p.Pos.File, p.Pos.Line, p.Pos.Column)
		}
		parts[i] = p.Key + at + ": " + p.Msg
	}
	return strings.Join(parts, "; ")
}

// Check returns nil when input is valid, else an *InputError.
func (c *InputCheck) Check(input map[string]any) error {
	if c == nil {
		return nil
	}
	var value any = input
	if !jsonTyped(input) {
		v, err := jsonValue(input)
		if err != nil {
			return fmt.Errorf("the input cannot be encoded as JSON: %w", err)
		}
		value = v
	}
	if c.fast != nil && c.fast.valid(value, 0) {
		return nil
	}
	err := c.sch.Validate(value)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("checking the input: %w", err)
	}
	out := &InputError{}
	for _, leaf := range schemaLeaves(ve, c.doc) {
		if lastToken(leaf.KeywordLocation) == "required" {
			// One problem per missing key.
			for _, m := range quotedRE.FindAllStringSubmatch(leaf.Message, -1) {
				one := *leaf
				one.Message = "missing property '" + m[1] + "'"
				out.Problems = append(out.Problems, c.problem(&one, value))
			}
			continue
		}
		out.Problems = append(out.Problems, c.problem(leaf, value))
	}
	return out
}

// jsonValue is input as the call sends it: encoded, then decoded into
// the types the schema validator takes (an expression may give []string,
// int16 or a time, which it does not).
func jsonValue(input map[string]any) (any, error) {
	b, err := jsonenc.Marshal(input)
	if err != nil {
		return nil, err
	}
	var d jsondec.Decoder
	return d.Value(b)
}

// jsonTyped tells whether v holds only the types the validator takes, as
// expressions mostly give: then it needs no encoding first.
func jsonTyped(v any) bool {
	switch x := v.(type) {
	case nil, bool, string, float64, int, int64:
		return true
	case map[string]any:
		for _, e := range x {
			if !jsonTyped(e) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range x {
			if !jsonTyped(e) {
				return false
			}
		}
		return true
	}
	return false
}

func (c *InputCheck) problem(leaf *jsonschema.ValidationError, value any) InputProblem {
	p := InputProblem{Key: withKey(leaf.InstanceLocation), Msg: leaf.Message}
	path := pointerTokens(leaf.InstanceLocation)
	kw := lastToken(leaf.KeywordLocation)
	if kw == "required" {
		// A key an expression gave nothing for was left out (a null
		// would be refused): say which, at the expression.
		keys := quotedRE.FindAllStringSubmatch(leaf.Message, -1)
		if len(keys) == 1 {
			key := keys[0][1]
			p.Key = withKey(leaf.InstanceLocation + "/" + key)
			p.Pos, _ = c.with.exprPos(append(path, key))
			p.Msg = "required, but its expression gave nothing (give a default with ??)"
			return p
		}
	}
	if pos, ok := c.with.exprPos(path); ok {
		p.Pos = pos
	}
	if kw == "enum" || kw == "const" {
		// The value of an enum is a name, not a secret: show it, and the
		// allowed name it is closest to.
		if s, ok := valueAt(value, path).(string); ok {
			m, _ := schemaAt(c.doc, leaf.AbsoluteKeywordLocation).([]any)
			allowed := make([]string, 0, len(m))
			for _, a := range m {
				if as, ok := a.(string); ok {
					allowed = append(allowed, as)
				}
			}
			p.Msg = fmt.Sprintf("%s: %s", strconv.Quote(truncate(s, 60)), leaf.Message)
			if alt := closest(s, allowed); alt != "" {
				p.Msg += fmt.Sprintf("; did you mean %q?", alt)
			}
		}
	}
	return p
}

// exprPos is where the expression that computes the value at path
// starts: the first expression of the deepest template node on path.
func (t *Template) exprPos(path []string) (Pos, bool) {
	if t == nil || t.root == nil {
		return Pos{}, false
	}
	n := t.root
	for _, tok := range path {
		switch v := n.(type) {
		case tmap:
			i := indexOf(v.keys, tok)
			if i < 0 {
				return firstPos(n)
			}
			n = v.vals[i]
		case tlist:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v.items) {
				return firstPos(n)
			}
			n = v.items[i]
		default:
			// An expression computed the whole object or list.
			return firstPos(n)
		}
	}
	return firstPos(n)
}

func firstPos(n tnode) (Pos, bool) {
	var pos Pos
	found := false
	n.walk(func(e *Expr) {
		if !found {
			pos, found = e.Pos, true
		}
	})
	return pos, found
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// withKey names the key at ptr as under with: recipient.email, tags[0];
// "the input" for the whole of it.
func withKey(ptr string) string {
	if ptr == "" {
		return "the input"
	}
	return humanPath("", ptr)
}

func pointerTokens(ptr string) []string {
	if ptr == "" || ptr == "/" {
		return nil
	}
	toks := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	for i, tok := range toks {
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
	}
	return toks
}

func valueAt(v any, path []string) any {
	for _, tok := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
