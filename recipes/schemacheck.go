package recipes

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"gopkg.in/yaml.v3"

	"github.com/memberflow/memberflow/schemas"
)

var recipeSchema struct {
	once        sync.Once
	recipe      *jsonschema.Schema
	connections *jsonschema.Schema
	doc         any // the schema, decoded, to read allowed names and patterns
	err         error
}

// compiledSchemas compiles schemas/recipe.schema.json once.
func compiledSchemas() (recipe, connections *jsonschema.Schema, doc any, err error) {
	rs := &recipeSchema
	rs.once.Do(func() {
		c := jsonschema.NewCompiler()
		c.Draft = jsonschema.Draft2020
		if rs.err = c.AddResource(schemas.RecipeURL, strings.NewReader(string(schemas.Recipe))); rs.err != nil {
			return
		}
		if rs.recipe, rs.err = c.Compile(schemas.RecipeURL); rs.err != nil {
			return
		}
		if rs.connections, rs.err = c.Compile(schemas.RecipeURL + "#/$defs/connectionsFile"); rs.err != nil {
			return
		}
		rs.err = json.Unmarshal(schemas.Recipe, &rs.doc)
	})
	return rs.recipe, rs.connections, rs.doc, rs.err
}

// checkSchema validates the document against sch and reports each
// failure at the node it is about.
//
// skip, when set, drops failures about a node (a ${{ }} template, whose
// value is only known at run time).
func (s *source) checkSchema(root *yaml.Node, value any, sch *jsonschema.Schema, doc any, prefix string, skip func(ve *jsonschema.ValidationError, n *yaml.Node) bool) {
	err := sch.Validate(value)
	if err == nil {
		return
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		s.errorf(root, "%v", err)
		return
	}
	for _, leaf := range schemaLeaves(ve, doc) {
		if skip != nil {
			if n, _ := nodeAt(root, leaf.InstanceLocation); skip(leaf, n) {
				continue
			}
		}
		s.reportSchemaError(root, leaf, doc, prefix)
	}
}

// schemaLeaves flattens an error tree into the failures worth showing.
// For anyOf/oneOf it keeps the alternative that got furthest into the
// value; when none did, the anyOf itself is the failure.
func schemaLeaves(ve *jsonschema.ValidationError, doc any) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	kw := lastToken(ve.KeywordLocation)
	if kw == "anyOf" || kw == "oneOf" {
		base := depth(ve.InstanceLocation)
		var best *jsonschema.ValidationError
		bestDepth := base
		for _, c := range ve.Causes {
			if d := maxDepth(c); d > bestDepth {
				best, bestDepth = c, d
			}
		}
		if best != nil {
			return schemaLeaves(best, doc)
		}
		// No branch got into the value; one whose type matched failed on
		// what it allows (an enum, a pattern), which says more than
		// "must be a string or an array".
		var typed []*jsonschema.ValidationError
		for _, c := range ve.Causes {
			if maxDepth(c) == base {
				typed = append(typed, c)
			}
		}
		if len(typed) == 1 {
			return schemaLeaves(typed[0], doc)
		}
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, schemaLeaves(c, doc)...)
	}
	return out
}

func depth(ptr string) int {
	if ptr == "" {
		return 0
	}
	return strings.Count(ptr, "/")
}

func maxDepth(ve *jsonschema.ValidationError) int {
	d := depth(ve.InstanceLocation)
	if lastToken(ve.KeywordLocation) == "type" || lastToken(ve.KeywordLocation) == "const" {
		// A branch that failed on the value's type did not get into it.
		d--
	}
	for _, c := range ve.Causes {
		d = max(d, maxDepth(c))
	}
	return d
}

func lastToken(ptr string) string {
	if i := strings.LastIndexByte(ptr, '/'); i >= 0 {
		return ptr[i+1:]
	}
	return ptr
}

var quotedRE = regexp.MustCompile(`'((?:[^'\\]|\\.)*)'`)

// reportSchemaError writes one failure as a diagnostic at its node.
func (s *source) reportSchemaError(root *yaml.Node, ve *jsonschema.ValidationError, doc any, prefix string) {
	node, key := nodeAt(root, ve.InstanceLocation)
	where := humanPath(prefix, ve.InstanceLocation)
	kw := lastToken(ve.KeywordLocation)
	at := node
	if key != nil && (node == nil || node.Kind != yaml.ScalarNode) {
		at = key
	}
	switch kw {
	case "required":
		for _, m := range quotedRE.FindAllStringSubmatch(ve.Message, -1) {
			s.errorf(at, "%s: missing required key %q", where, m[1])
		}
	case "additionalProperties":
		allowed := allowedNames(doc, ve.AbsoluteKeywordLocation)
		for _, p := range pairs(node) {
			name := p[0].Value
			if contains(allowed, name) {
				continue
			}
			if alt := closest(name, allowed); alt != "" {
				s.errorf(p[0], "%s: unknown key %q; did you mean %q?", where, name, alt)
			} else {
				s.errorf(p[0], "%s: unknown key %q (allowed: %s)", where, name, strings.Join(allowed, ", "))
			}
		}
	case "anyOf", "oneOf":
		s.errorf(at, "%s: must be %s", where, describeAlternatives(schemaAt(doc, ve.AbsoluteKeywordLocation)))
	case "enum":
		opts := enumValues(schemaAt(doc, ve.AbsoluteKeywordLocation))
		hint := ""
		if node != nil && node.Kind == yaml.ScalarNode {
			if alt := closest(node.Value, opts); alt != "" {
				hint = fmt.Sprintf("; did you mean %q?", alt)
			}
		}
		s.errorf(at, "%s: must be one of %s%s", where, quoteAll(opts), hint)
	case "const":
		s.errorf(at, "%s: must be %s", where, jsonText(schemaAt(doc, ve.AbsoluteKeywordLocation)))
	case "type":
		s.errorf(at, "%s: %s", where, ve.Message)
	case "pattern":
		s.errorf(at, "%s: %s", where, patternMessage(ve, doc))
	default:
		s.errorf(at, "%s: %s", where, ve.Message)
	}
}

// patternMessage explains a pattern failure in the words of the schema's
// own description of the value.
func patternMessage(ve *jsonschema.ValidationError, doc any) string {
	abs := ve.AbsoluteKeywordLocation
	switch {
	case strings.Contains(abs, "/$defs/duration/"):
		return "must be a duration such as 30s, 5m or 1h30m"
	case strings.Contains(abs, "/$defs/uses/"):
		return "must be <connection>.<operation>, e.g. members.get_user"
	}
	if m, ok := schemaAt(doc, parentKeyword(abs)).(map[string]any); ok {
		if d, ok := m["description"].(string); ok && d != "" {
			return "does not match its pattern: " + strings.TrimSuffix(strings.SplitN(d, ". ", 2)[0], ".")
		}
	}
	return ve.Message
}

// schemaAt returns the schema part an absolute keyword location names.
func schemaAt(doc any, abs string) any {
	_, frag, ok := strings.Cut(abs, "#")
	if !ok {
		return nil
	}
	return lookupRef(doc, "#"+frag)
}

func parentKeyword(abs string) string {
	if i := strings.LastIndexByte(abs, '/'); i >= 0 {
		return abs[:i]
	}
	return abs
}

// allowedNames lists the properties of the schema object that holds the
// failing additionalProperties keyword.
func allowedNames(doc any, abs string) []string {
	m, _ := schemaAt(doc, parentKeyword(abs)).(map[string]any)
	props, _ := m["properties"].(map[string]any)
	return sortedNames(props)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func enumValues(sch any) []string {
	list, _ := sch.([]any)
	out := make([]string, 0, len(list))
	for _, v := range list {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

func quoteAll(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// describeAlternatives describes anyOf/oneOf branches: `"off" or an object`.
func describeAlternatives(sch any) string {
	list, _ := sch.([]any)
	var alts []string
	for _, b := range list {
		m, _ := b.(map[string]any)
		switch {
		case m == nil:
		case m["const"] != nil:
			alts = append(alts, jsonText(m["const"]))
		case m["type"] != nil:
			t := fmt.Sprint(m["type"])
			article := "a "
			if strings.ContainsAny(t[:1], "aeiou") {
				article = "an "
			}
			alts = append(alts, article+t)
		}
	}
	if len(alts) == 0 {
		return "valid"
	}
	return strings.Join(alts, " or ")
}

// humanPath turns a JSON Pointer into the dotted form users read:
// /steps/0/with → steps[0].with.
func humanPath(prefix, ptr string) string {
	var b strings.Builder
	b.WriteString(prefix)
	if ptr != "" {
		for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			if _, err := strconv.Atoi(tok); err == nil {
				fmt.Fprintf(&b, "[%s]", tok)
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(tok)
		}
	}
	if b.Len() == 0 {
		return "recipe"
	}
	return b.String()
}

func sortedNames(m map[string]any) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
