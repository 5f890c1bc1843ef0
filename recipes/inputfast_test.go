package recipes

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/memberflow/memberflow/connectors"
	_ "github.com/memberflow/memberflow/connectors/all"
	"github.com/memberflow/memberflow/internal/jsondec"
)

// checkBoth validates v with the validator and the fast form, and fails
// when the fast form accepts what the validator refuses.
func checkBoth(t testing.TB, where string, sch *jsonschema.Schema, fast *fastSchema, v any) (validatorOK, fastOK bool) {
	t.Helper()
	validatorOK = sch.Validate(v) == nil
	fastOK = fast != nil && fast.valid(v, 0)
	if fastOK && !validatorOK {
		b, _ := json.Marshal(v)
		t.Fatalf("%s: the fast check accepts %s, which the validator refuses: %v", where, b, sch.Validate(v))
	}
	return validatorOK, fastOK
}

func mustCompile(t testing.TB, name, schema string) *jsonschema.Schema {
	t.Helper()
	sch, err := connectors.CompileSchema(name, json.RawMessage(schema))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return sch
}

func TestFastSchemaKeywords(t *testing.T) {
	const obj = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["id"],"additionalProperties":false,
	  "properties":{
	    "id":{"type":"string","minLength":2,"maxLength":4},
	    "status":{"type":"string","enum":["issued","revoked"]},
	    "kind":{"const":"user"},
	    "code":{"type":"string","pattern":"^[A-Z]{3}$"},
	    "email":{"type":"string","format":"email"},
	    "score":{"type":"integer","minimum":0,"exclusiveMaximum":100},
	    "ratio":{"type":"number","maximum":1},
	    "tags":{"type":"array","items":{"type":"string"},"minItems":1,"maxItems":2},
	    "meta":{"type":"object","propertyNames":{"pattern":"^x-"},"additionalProperties":{"type":"string"}},
	    "when":{"anyOf":[{"type":"null"},{"type":"string"}]},
	    "ref":{"$ref":"#/$defs/small"}},
	  "$defs":{"small":{"type":"integer","maximum":3}}}`
	sch := mustCompile(t, "kw", obj)
	fast := compileFast(sch)
	if fast == nil {
		t.Fatal("no fast form for a schema of known keywords only")
	}
	cases := []struct {
		value     string
		validator bool // what the validator says
		fast      bool // what the fast form says: it may decline a valid value, never accept an invalid one
	}{
		{`{"id":"ab"}`, true, true},
		{`{}`, false, false},
		{`{"id":"a"}`, false, false},
		{`{"id":"ééé"}`, true, true}, // runes, not bytes
		{`{"id":"abcde"}`, false, false},
		{`{"id":7}`, false, false},
		{`{"id":"ab","other":1}`, false, false},
		{`{"id":"ab","status":"issued"}`, true, true},
		{`{"id":"ab","status":"isued"}`, false, false},
		{`{"id":"ab","kind":"user"}`, true, true},
		{`{"id":"ab","kind":"users"}`, false, false},
		{`{"id":"ab","code":"ABC"}`, true, true},
		{`{"id":"ab","code":"ABCD"}`, false, false},
		{`{"id":"ab","email":"a@example.org"}`, true, true},
		// With $schema 2020-12 the validator takes format as an annotation;
		// without, it asserts it. The fast form always asserts it.
		{`{"id":"ab","email":"not an email"}`, true, false},
		{`{"id":"ab","score":99}`, true, true},
		{`{"id":"ab","score":99.5}`, false, false},
		{`{"id":"ab","score":100}`, false, false},
		{`{"id":"ab","score":-1}`, false, false},
		{`{"id":"ab","score":0}`, true, false}, // equal to a bound: declined
		{`{"id":"ab","ratio":0.5}`, true, true},
		{`{"id":"ab","ratio":1.5}`, false, false},
		{`{"id":"ab","tags":["a"]}`, true, true},
		{`{"id":"ab","tags":[]}`, false, false},
		{`{"id":"ab","tags":["a","b","c"]}`, false, false},
		{`{"id":"ab","tags":["a",1]}`, false, false},
		{`{"id":"ab","meta":{"x-a":"1"}}`, true, true},
		{`{"id":"ab","meta":{"a":"1"}}`, false, false},
		{`{"id":"ab","meta":{"x-a":1}}`, false, false},
		{`{"id":"ab","when":null}`, true, true},
		{`{"id":"ab","when":"2026"}`, true, true},
		{`{"id":"ab","when":1}`, false, false},
		{`{"id":"ab","ref":2}`, true, true},
		{`{"id":"ab","ref":4}`, false, false},
	}
	for _, c := range cases {
		var d jsondec.Decoder
		v, err := d.Value([]byte(c.value))
		if err != nil {
			t.Fatal(err)
		}
		validatorOK, fastOK := checkBoth(t, c.value, sch, fast, v)
		if validatorOK != c.validator || fastOK != c.fast {
			t.Errorf("%s: validator %v, fast %v; want %v, %v", c.value, validatorOK, fastOK, c.validator, c.fast)
		}
	}
	// Without $schema the validator asserts formats.
	noDraft := mustCompile(t, "nodraft", `{"type":"object","properties":{"email":{"type":"string","format":"email"}}}`)
	for _, c := range []struct {
		email string
		ok    bool
	}{{"a@example.org", true}, {"not an email", false}} {
		v := map[string]any{"email": c.email}
		if validatorOK, fastOK := checkBoth(t, c.email, noDraft, compileFast(noDraft), v); validatorOK != c.ok || fastOK != c.ok {
			t.Errorf("%q without $schema: validator %v, fast %v; want both %v", c.email, validatorOK, fastOK, c.ok)
		}
	}

	// Numbers as expressions give them, not only as JSON decodes them.
	for _, c := range []struct {
		v    any
		fast bool
	}{{int(5), true}, {int64(5), true}, {int(100), false}, {float64(1 << 60), false}, {int64(1 << 60), false}} {
		checkBoth(t, fmt.Sprintf("score %T %v", c.v, c.v), sch, fast, map[string]any{"id": "ab", "score": c.v})
		if got := fast.valid(map[string]any{"id": "ab", "score": c.v}, 0); got != c.fast {
			t.Errorf("score %T %v: fast %v, want %v", c.v, c.v, got, c.fast)
		}
	}
}

func TestFastSchemaIsNoneForAKeywordItDoesNotKnow(t *testing.T) {
	for _, s := range []string{
		`{"oneOf":[{"type":"string"},{"type":"integer"}]}`,
		`{"type":"object","patternProperties":{"^x":{"type":"string"}}}`,
		`{"type":"number","multipleOf":3}`,
		`{"type":"number","minimum":0.1}`, // no float64 is exactly 0.1
		`{"enum":[1,2]}`,
		`{"type":"object","properties":{"a":{"not":{"type":"string"}}}}`,
		`{"type":"array","uniqueItems":true}`,
	} {
		if compileFast(mustCompile(t, "unknown", s)) != nil {
			t.Errorf("%s: a fast form, for a keyword or value it does not compare as the validator does", s)
		}
	}
}

// Every operation's input schema: values made from the schema, then
// changed at random, are never accepted by the fast form when the
// validator refuses them, and most the validator accepts the fast form
// accepts too (or it saves nothing).
func TestFastSchemaNeverAcceptsWhatTheValidatorRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var ops, fastOps, validatorOK, bothOK int
	var noFast []string
	for _, spec := range connectors.Default.List() {
		for _, a := range spec.Actions {
			if len(a.Input) == 0 {
				continue
			}
			name := spec.Name + "." + a.Name
			sch := mustCompile(t, name, string(a.Input))
			var doc any
			if err := json.Unmarshal(a.Input, &doc); err != nil {
				t.Fatal(err)
			}
			ops++
			fast := compileFast(sch)
			if fast == nil {
				noFast = append(noFast, name)
				continue
			}
			fastOps++
			for i := 0; i < 200; i++ {
				v := sample(rng, doc, doc, 0)
				if i%2 == 1 {
					v = mutate(rng, v)
				}
				vOK, fOK := checkBoth(t, name, sch, fast, v)
				if vOK {
					validatorOK++
					if fOK {
						bothOK++
					}
				}
			}
		}
	}
	sort.Strings(noFast)
	t.Logf("%d operations, %d with a fast form (none: %s); the fast form accepted %d of the %d values the validator accepted",
		ops, fastOps, strings.Join(noFast, ", "), bothOK, validatorOK)
	if fastOps < ops*9/10 {
		t.Errorf("only %d of %d operations' input schemas have a fast form", fastOps, ops)
	}
	if validatorOK < 1000 || bothOK < validatorOK*9/10 {
		t.Errorf("the fast form accepted %d of the %d values the validator accepted; want at least 90 %%", bothOK, validatorOK)
	}
}

// sample makes a value for the schema sch (of the document doc): mostly
// one it accepts, from its types, enums, examples and bounds.
func sample(rng *rand.Rand, sch, doc any, depth int) any {
	m, ok := sch.(map[string]any)
	if !ok || depth > 8 {
		return "x"
	}
	if ref, ok := m["$ref"].(string); ok {
		return sample(rng, lookupRef(doc, ref), doc, depth+1)
	}
	if ex, ok := m["examples"].([]any); ok && len(ex) > 0 && rng.IntN(2) == 0 {
		return roundTrip(ex[rng.IntN(len(ex))])
	}
	if c, ok := m["const"]; ok {
		return roundTrip(c)
	}
	if e, ok := m["enum"].([]any); ok && len(e) > 0 {
		return roundTrip(e[rng.IntN(len(e))])
	}
	if alts, ok := m["anyOf"].([]any); ok && len(alts) > 0 {
		return sample(rng, alts[rng.IntN(len(alts))], doc, depth+1)
	}
	typ := m["type"]
	if list, ok := typ.([]any); ok && len(list) > 0 {
		typ = list[rng.IntN(len(list))]
	}
	switch typ {
	case "object":
		out := map[string]any{}
		props, _ := m["properties"].(map[string]any)
		required := map[string]bool{}
		if req, ok := m["required"].([]any); ok {
			for _, k := range req {
				required[k.(string)] = true
			}
		}
		for k, sub := range props {
			if required[k] || rng.IntN(2) == 0 {
				out[k] = sample(rng, sub, doc, depth+1)
			}
		}
		return out
	case "array":
		n := 1 + rng.IntN(2)
		if min, ok := m["minItems"].(float64); ok && float64(n) < min {
			n = int(min)
		}
		out := make([]any, n)
		for i := range out {
			out[i] = sample(rng, m["items"], doc, depth+1)
		}
		return out
	case "integer", "number":
		lo, hi := 0.0, 1000.0
		if v, ok := m["minimum"].(float64); ok {
			lo = v
		}
		if v, ok := m["maximum"].(float64); ok {
			hi = v
		}
		if v, ok := m["exclusiveMinimum"].(float64); ok {
			lo = v + 1
		}
		n := lo + float64(rng.IntN(int(hi-lo)+1))
		if typ == "number" && rng.IntN(2) == 0 && n+0.5 <= hi {
			return n + 0.5
		}
		return n
	case "boolean":
		return rng.IntN(2) == 0
	case "null":
		return nil
	}
	s := "value"
	if v, ok := m["minLength"].(float64); ok && len(s) < int(v) {
		s += strings.Repeat("v", int(v))
	}
	return s
}

// mutate changes one value somewhere in v: to another type, an empty
// string, a number at or past a bound, or a key more or less.
func mutate(rng *rand.Rand, v any) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 || rng.IntN(4) == 0 {
			if rng.IntN(2) == 0 {
				x["unexpected"] = "x"
			} else {
				for k := range x {
					delete(x, k)
					break
				}
			}
			return x
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		k := keys[rng.IntN(len(keys))]
		x[k] = mutate(rng, x[k])
		return x
	case []any:
		if len(x) == 0 || rng.IntN(3) == 0 {
			return append(x, mutate(rng, "x"))
		}
		i := rng.IntN(len(x))
		x[i] = mutate(rng, x[i])
		return x
	}
	others := []any{nil, true, "", "Zz", 0.0, -1.0, 1.5, 100.0, 1e6, int64(7), []any{}, map[string]any{}}
	return others[rng.IntN(len(others))]
}

// roundTrip gives a schema's literal as a decoded value (float64
// numbers, fresh maps a mutation may change).
func roundTrip(v any) any {
	b, _ := json.Marshal(v)
	var d jsondec.Decoder
	out, _ := d.Value(b)
	return out
}

// FuzzFastSchema decodes the input as a JSON value and checks it against
// one operation's input schema (picked by the first byte): the fast form
// must never accept a value the validator refuses.
func FuzzFastSchema(f *testing.F) {
	type op struct {
		name string
		sch  *jsonschema.Schema
		fast *fastSchema
	}
	var ops []op
	for _, spec := range connectors.Default.List() {
		for _, a := range spec.Actions {
			if len(a.Input) == 0 {
				continue
			}
			sch := mustCompile(f, a.Name, string(a.Input))
			if fast := compileFast(sch); fast != nil {
				ops = append(ops, op{spec.Name + "." + a.Name, sch, fast})
			}
		}
	}
	for _, seed := range []string{`{}`, `{"userId":"u1","certificateStatus":"issued"}`,
		`{"recipient":{"email":"a@b.c","name":"A"},"group_id":1}`, `{"eventId":1,"limit":500}`, `[1,"a",null]`} {
		f.Add(byte(0), []byte(seed))
		f.Add(byte(7), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, pick byte, data []byte) {
		var d jsondec.Decoder
		v, err := d.Value(data)
		if err != nil {
			return
		}
		o := ops[int(pick)%len(ops)]
		checkBoth(t, o.name, o.sch, o.fast, v)
	})
}

// BenchmarkInputCheck checks a credential input like the backfill's,
// through the fast form and through the validator alone.
func BenchmarkInputCheck(b *testing.B) {
	spec, _ := connectors.Default.Lookup("accredible")
	var input json.RawMessage
	for _, a := range spec.Actions {
		if a.Name == "upsert_credential" {
			input = a.Input
		}
	}
	if input == nil {
		b.Fatal("no accredible.upsert_credential")
	}
	sch := mustCompile(b, "upsert_credential", string(input))
	value := map[string]any{"group_id": 100001.0, "reference": "member-FmmLf7GMvhaM2xhXvuux",
		"issued_on": "2026-03-21", "expired_on": nil, "approve": true,
		"recipient":         map[string]any{"email": "kwame.chen1@example.org", "id": "FmmLf7GMvhaM2xhXvuux", "name": "Kwame Chen"},
		"custom_attributes": map[string]any{"enrollment_date": "2025-03-21", "plan": "plan_professional"}}
	fast := compileFast(sch)
	if !fast.valid(value, 0) {
		b.Fatalf("the fast form declines the benchmark's input: %v", sch.Validate(value))
	}
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !fast.valid(value, 0) {
				b.Fatal("declined")
			}
		}
	})
	b.Run("validator", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := sch.Validate(value); err != nil {
				b.Fatal(err)
			}
		}
	})
}
