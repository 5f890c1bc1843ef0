package recipes

import (
	"math"
	"math/big"
	"regexp"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// fastSchema answers, for the keywords operations' input schemas use,
// whether a value is certainly valid. The validator spends several
// kilobytes of allocations on each value it checks (the locations of
// errors it might report, each number made a big.Rat), which in a
// backfill was 6 % of the runner's CPU and a tenth of its allocations.
// A value fastSchema does not accept goes to the validator, which
// gives the verdict and the errors; so fastSchema must never accept a
// value the validator refuses, and it may decline any it is unsure of
// (TestFastSchemaNeverAcceptsWhatTheValidatorRefuses, FuzzFastSchema).
type fastSchema struct {
	types uint8 // typeNull|...; 0: any type

	// A string value must be one of enum (when set) and equal konst
	// (when set); a value of another type is declined.
	enum      []string
	hasEnum   bool
	konst     string
	hasKonst  bool
	minLen    int // -1: none
	maxLen    int
	pattern   *regexp.Regexp
	format    func(any) bool // nil: none, or one the validator does not know
	bounds    []numBound
	required  []string
	props     map[string]*fastSchema
	minProps  int
	maxProps  int
	addlFalse bool        // additionalProperties: false
	addl      *fastSchema // additionalProperties as a schema
	names     *fastSchema // propertyNames
	items     *fastSchema // items (any draft's single schema)
	minItems  int
	maxItems  int
	ref       *fastSchema
	allOf     []*fastSchema
	anyOf     []*fastSchema
	never     bool // the schema `false`
}

const (
	typeNull uint8 = 1 << iota
	typeBoolean
	typeNumber
	typeInteger
	typeString
	typeArray
	typeObject
)

var typeBits = map[string]uint8{"null": typeNull, "boolean": typeBoolean, "number": typeNumber,
	"integer": typeInteger, "string": typeString, "array": typeArray, "object": typeObject}

// numBound is one of minimum, exclusiveMinimum, maximum and
// exclusiveMaximum, kept only when it is a float64 exactly.
type numBound struct {
	v   float64
	min bool // a lower bound; whether it is exclusive does not matter, see validNumber
}

// maxExact bounds the numbers compared as float64: below it a float64
// and an int are exact, and the validator's decimal reading of a
// float64 is on the same side of an integer bound as the float itself.
const maxExact = 1 << 53

// compileFast returns the fast form of s, or nil when s uses a keyword
// it does not know (the validator then checks every value).
func compileFast(s *jsonschema.Schema) *fastSchema {
	return fastOf(s, map[*jsonschema.Schema]*fastSchema{})
}

func fastOf(s *jsonschema.Schema, seen map[*jsonschema.Schema]*fastSchema) *fastSchema {
	if s == nil {
		return nil
	}
	if f, ok := seen[s]; ok {
		return f // a $ref back up: the schema being built
	}
	f := &fastSchema{minLen: s.MinLength, maxLen: s.MaxLength, minProps: s.MinProperties,
		maxProps: s.MaxProperties, minItems: s.MinItems, maxItems: s.MaxItems, pattern: s.Pattern}
	seen[s] = f
	if s.Always != nil {
		f.never = !*s.Always
		return f
	}
	unknown := s.RecursiveRef != nil || s.DynamicRef != nil || s.Not != nil || len(s.OneOf) > 0 ||
		s.If != nil || s.RegexProperties || len(s.PatternProperties) > 0 || len(s.Dependencies) > 0 ||
		len(s.DependentRequired) > 0 || len(s.DependentSchemas) > 0 || s.UnevaluatedProperties != nil ||
		s.UniqueItems || s.AdditionalItems != nil || len(s.PrefixItems) > 0 || s.Contains != nil ||
		s.UnevaluatedItems != nil || s.ContentEncoding != "" || s.ContentMediaType != "" ||
		s.ContentSchema != nil || s.MultipleOf != nil || len(s.Extensions) > 0
	if unknown {
		return nil
	}
	// Whether the validator asserts a format depends on what the schema
	// declares (without $schema, it does): the fast form always does,
	// which at worst declines a value the validator would accept.
	f.format = jsonschema.Formats[s.Format]
	for _, t := range s.Types {
		bit, ok := typeBits[t]
		if !ok {
			return nil
		}
		f.types |= bit
	}
	var ok bool
	if f.enum, f.hasEnum, ok = stringsOf(s.Enum); !ok {
		return nil
	}
	var konst []string
	if konst, f.hasKonst, ok = stringsOf(s.Constant); !ok {
		return nil
	}
	if f.hasKonst {
		f.konst = konst[0]
	}
	for _, b := range []struct {
		r   *big.Rat
		min bool
	}{{s.Minimum, true}, {s.ExclusiveMinimum, true}, {s.Maximum, false}, {s.ExclusiveMaximum, false}} {
		if b.r == nil {
			continue
		}
		v, exact := b.r.Float64()
		if !exact {
			return nil
		}
		f.bounds = append(f.bounds, numBound{v: v, min: b.min})
	}
	f.required = s.Required
	if len(s.Properties) > 0 {
		f.props = make(map[string]*fastSchema, len(s.Properties))
		for k, sub := range s.Properties {
			if f.props[k] = fastOf(sub, seen); f.props[k] == nil {
				return nil
			}
		}
	}
	switch a := s.AdditionalProperties.(type) {
	case nil:
	case bool:
		f.addlFalse = !a
	case *jsonschema.Schema:
		if f.addl = fastOf(a, seen); f.addl == nil {
			return nil
		}
	default:
		return nil
	}
	if s.PropertyNames != nil {
		if f.names = fastOf(s.PropertyNames, seen); f.names == nil {
			return nil
		}
	}
	items := s.Items2020
	switch it := s.Items.(type) {
	case nil:
	case *jsonschema.Schema:
		if items != nil {
			return nil
		}
		items = it
	default:
		return nil // a list of item schemas
	}
	if items != nil {
		if f.items = fastOf(items, seen); f.items == nil {
			return nil
		}
	}
	if s.Ref != nil {
		if f.ref = fastOf(s.Ref, seen); f.ref == nil {
			return nil
		}
	}
	for _, list := range []struct {
		from []*jsonschema.Schema
		to   *[]*fastSchema
	}{{s.AllOf, &f.allOf}, {s.AnyOf, &f.anyOf}} {
		for _, sub := range list.from {
			fs := fastOf(sub, seen)
			if fs == nil {
				return nil
			}
			*list.to = append(*list.to, fs)
		}
	}
	return f
}

// stringsOf is an enum's or const's values when all are strings; ok is
// false when one is not (those go to the validator: it compares numbers
// and objects by its own rules).
func stringsOf(vals []any) (out []string, set, ok bool) {
	if len(vals) == 0 {
		return nil, false, true
	}
	out = make([]string, len(vals))
	for i, v := range vals {
		s, isStr := v.(string)
		if !isStr {
			return nil, false, false
		}
		out[i] = s
	}
	return out, true, true
}

// valid tells whether v certainly satisfies the schema; false is "ask
// the validator", not "invalid".
func (f *fastSchema) valid(v any, depth int) bool {
	if f.never || depth > 64 {
		return false
	}
	var bit uint8
	switch x := v.(type) {
	case nil:
		bit = typeNull
	case bool:
		bit = typeBoolean
	case string:
		bit = typeString
		if !f.validString(x) {
			return false
		}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) >= maxExact {
			return false
		}
		bit = typeNumber
		if x == math.Trunc(x) {
			bit |= typeInteger
		}
		if !f.validNumber(x) {
			return false
		}
	case int:
		if x >= maxExact || x <= -maxExact || !f.validNumber(float64(x)) {
			return false
		}
		bit = typeNumber | typeInteger
	case int64:
		if x >= maxExact || x <= -maxExact || !f.validNumber(float64(x)) {
			return false
		}
		bit = typeNumber | typeInteger
	case map[string]any:
		bit = typeObject
		if !f.validObject(x, depth) {
			return false
		}
	case []any:
		bit = typeArray
		if f.minItems >= 0 && len(x) < f.minItems || f.maxItems >= 0 && len(x) > f.maxItems {
			return false
		}
		if f.items != nil {
			for _, e := range x {
				if !f.items.valid(e, depth+1) {
					return false
				}
			}
		}
	default:
		return false // a type the validator does not take
	}
	if f.format != nil && !f.format(v) {
		return false
	}
	if f.types != 0 && f.types&bit == 0 {
		return false
	}
	if (f.hasEnum || f.hasKonst) && bit != typeString {
		return false
	}
	if f.ref != nil && !f.ref.valid(v, depth+1) {
		return false
	}
	for _, s := range f.allOf {
		if !s.valid(v, depth+1) {
			return false
		}
	}
	if len(f.anyOf) > 0 {
		matched := false
		for _, s := range f.anyOf {
			if s.valid(v, depth+1) {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	return true
}

func (f *fastSchema) validString(s string) bool {
	if f.hasKonst && s != f.konst {
		return false
	}
	if f.hasEnum {
		found := false
		for _, e := range f.enum {
			if s == e {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if f.minLen >= 0 || f.maxLen >= 0 {
		n := utf8.RuneCountInString(s)
		if f.minLen >= 0 && n < f.minLen || f.maxLen >= 0 && n > f.maxLen {
			return false
		}
	}
	return f.pattern == nil || f.pattern.MatchString(s)
}

// validNumber compares x with the bounds. A value equal to a bound is
// declined: the validator reads a float64 as its shortest decimal,
// which need not be the float's exact value.
func (f *fastSchema) validNumber(x float64) bool {
	for _, b := range f.bounds {
		switch {
		case x == b.v:
			return false
		case b.min && x < b.v, !b.min && x > b.v:
			return false
		}
	}
	return true
}

func (f *fastSchema) validObject(m map[string]any, depth int) bool {
	if f.minProps >= 0 && len(m) < f.minProps || f.maxProps >= 0 && len(m) > f.maxProps {
		return false
	}
	for _, k := range f.required {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	for k, v := range m {
		if f.names != nil && !f.names.valid(k, depth+1) {
			return false
		}
		sub, ok := f.props[k]
		switch {
		case ok:
		case f.addlFalse:
			return false
		case f.addl != nil:
			sub = f.addl
		default:
			continue
		}
		if !sub.valid(v, depth+1) {
			return false
		}
	}
	return true
}
