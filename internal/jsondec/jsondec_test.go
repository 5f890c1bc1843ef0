package jsondec

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// agree checks that Object and Value give what json.Unmarshal gives
// into a nil map[string]any and a nil any: the same value or the same
// error.
func agree(t *testing.T, d *Decoder, line string) {
	t.Helper()
	var want map[string]any
	wantErr := json.Unmarshal([]byte(line), &want)
	got, err := d.Object([]byte(line))
	same(t, "Object", line, got, want, err, wantErr)
	got, err = d.SharedObject([]byte(line))
	same(t, "SharedObject", line, got, want, err, wantErr)
	agreeFields(t, d, line, want, wantErr)
	var wantAny any
	wantErr = json.Unmarshal([]byte(line), &wantAny)
	gotAny, err := d.Value([]byte(line))
	same(t, "Value", line, gotAny, wantAny, err, wantErr)
}

// agreeFields checks SharedFields against the whole object (want, or
// wantErr): a partial result is the object's named fields, given only
// for an object that decodes; otherwise the result is the whole
// object's, or its error.
func agreeFields(t *testing.T, d *Decoder, line string, want map[string]any, wantErr error) {
	t.Helper()
	for _, fields := range [][]string{nil, {"id"}, {"a", "n", "s", "dup", "users", "d", "eligible", "score"}} {
		got := map[string]any{"stale": true}
		clear(got)
		whole, partial, err := d.SharedFields([]byte(line), fields, got)
		if !partial {
			got = whole
			same(t, fmt.Sprintf("SharedFields %q (whole)", fields), line, got, want, err, wantErr)
			continue
		}
		if wantErr != nil || err != nil {
			t.Fatalf("SharedFields %q %q: a partial result (error %v) for input encoding/json refuses (%v)", fields, line, err, wantErr)
		}
		sub := map[string]any{}
		for _, f := range fields {
			if v, ok := want[f]; ok {
				sub[f] = v
			}
		}
		same(t, fmt.Sprintf("SharedFields %q", fields), line, got, sub, err, nil)
		// SharedValues: the same values by index, absent where missing.
		absent := &struct{}{}
		vals := make([]any, len(fields))
		if _, partial, err := d.SharedValues([]byte(line), fields, absent, vals); !partial || err != nil {
			t.Fatalf("SharedValues %q %q: partial %v, %v; SharedFields was partial", fields, line, partial, err)
		}
		for i, f := range fields {
			want, ok := sub[f]
			if !ok {
				want = absent
			}
			same(t, fmt.Sprintf("SharedValues %q [%d]", fields, i), line, vals[i], want, nil, nil)
		}
	}
}

func same[T any](t *testing.T, how, line string, got, want T, err, wantErr error) {
	t.Helper()
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("%s %q: error %v, encoding/json %v", how, line, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s %q: decoded %#v, encoding/json %#v", how, line, got, want)
	}
	// -0 and 0 are DeepEqual; the sign must agree too.
	if !sameSigns(got, want) {
		t.Fatalf("%s %q: the sign of a zero differs from encoding/json's", how, line)
	}
}

// sameSigns reports whether every float64 in a and b (DeepEqual values)
// has the same sign bit.
func sameSigns(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && math.Signbit(x) == math.Signbit(y)
	case map[string]any:
		y, _ := b.(map[string]any)
		for k, v := range x {
			if !sameSigns(v, y[k]) {
				return false
			}
		}
	case []any:
		y, _ := b.([]any)
		for i, v := range x {
			if i >= len(y) || !sameSigns(v, y[i]) {
				return false
			}
		}
	}
	return true
}

var decoderCases = []string{
	`{}`,
	` {} `,
	`{"id":"m1","score":70,"eligible":true,"x":null,"f":false}`,
	`{"a":{"b":{"c":[1,2,{"d":"e"}]}},"e":[],"o":{}}`,
	`{"n":-0}`, `{"n":0}`, `{"n":-12}`, `{"n":1.5e3}`, `{"n":1E-2}`, `{"n":123456789012345}`,
	`{"n":1234567890123456789}`, `{"n":-9007199254740993}`, `{"n":1e400}`, `{"n":01}`, `{"n":1.}`,
	`{"n":-}`, `{"n":.5}`, `{"n":1e}`, `{"n":+1}`,
	`{"s":"caf\u00e9 \"q\" \\ \/ \b\f\n\r\t"}`,
	`{"s":"\ud83d\ude00 pair"}`, `{"s":"\ud83d alone"}`, `{"s":"\ude00\ud83d"}`, `{"s":"\ud83d\u0041"}`,
	`{"s":"\uZZZZ"}`, `{"s":"\x"}`, `{"s":"tab	inside"}`,
	"{\"s\":\"bad \xff utf8\"}", "{\"s\":\"esc \\n bad \xc3 utf8\"}", `{"s":"日本語","k":"ключ"}`,
	`{"dup":1,"dup":2}`,
	`{"a":1,}`, `{"a" 1}`, `{"a":1`, `{"a":[1,]}`, `{"a":tru}`, `{"a":nul}`, `{a:1}`,
	`{"a":1} x`, `{"a":1}{"b":2}`, `null`, `[]`, `"s"`, `1`, ``, `{"s":"unterminated`,
	`{ "sp" : [ 1 , 2 ] , "t" : true }`,
	` [1, "two", {"three": [3.5, -0]}] `, `"top"`, `-0`, `0.25`, `true`, `false`, `[`, `]`, `"`, ` `, "\t\n{}\r\n",
	`{"users":[{"id":"u1","n":1},{"id":"u2","tags":[],"x":null}],"count":2}`,
	`{"` + strings.Repeat(`a`, 300) + `":1}`,
	`{"d":` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `}`,
}

func TestDecoderAgreesWithEncodingJSON(t *testing.T) {
	d := &Decoder{}
	for _, line := range decoderCases {
		agree(t, d, line)
	}
	// Keys are remembered across lines and values do not leak between them.
	agree(t, d, `{"id":"m1","email":"a@example.org"}`)
	agree(t, d, `{"id":"m2","email":"b@example.org"}`)
}

// validCases are inputs json.Valid refuses, or nearly so, beside
// decoderCases: the fast path must not take any of them for JSON.
var validCases = []string{
	`{"a":1,}`, `[1,]`, `[1 2]`, `{"a" 1}`, `{a:1}`, `01`, `1.`, `.5`, `-`, `1e`, `1e+`, `+1`, `tru`, `nul`,
	`"\u12"`, `"\x"`, "\"\x01\"", "\"\xff\"", `"a`, `{"a":1}}`, `[]]`, `{"a":[}`, `NaN`, `1 2`,
	`"\ud800"`, `"\ud83d\ude00"`, `1E400`, `-0.0e-0`, "\"\u00e9\"", "\"é\"",
}

func TestValidAgreesWithEncodingJSON(t *testing.T) {
	for _, line := range append(append([]string{""}, decoderCases...), validCases...) {
		if got, want := Valid([]byte(line)), json.Valid([]byte(line)); got != want {
			t.Errorf("Valid(%q) = %v, json.Valid %v", line, got, want)
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, line := range append(decoderCases, validCases...) {
		f.Add([]byte(line))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := Valid(data), json.Valid(data); got != want {
			t.Errorf("Valid(%q) = %v, json.Valid %v", data, got, want)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	input := []byte(`{"path":"credentials.jsonl","record":{"credential":{"custom_attributes":{"plan":"standard","score":98},"group_id":100001,"issued_on":"2026-02-04","name":"Radia Allen","recipient":{"email":"radia.allen.4@example.org","id":"m00000004","name":"Radia Allen"}}}}`)
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			if !json.Valid(input) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("jsondec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !Valid(input) {
				b.Fatal("invalid")
			}
		}
	})
}

func TestDecoderRemembersBoundedKeys(t *testing.T) {
	d := &Decoder{}
	for i := 0; i < 2*maxKeys; i++ {
		agree(t, d, `{"k`+strings.Repeat("x", i)+`":1}`)
	}
	if len(d.keys) > maxKeys {
		t.Errorf("%d keys remembered, want at most %d", len(d.keys), maxKeys)
	}
}

func FuzzDecoder(f *testing.F) {
	for _, line := range decoderCases {
		f.Add(line)
	}
	d := &Decoder{}
	f.Fuzz(func(t *testing.T, line string) {
		agree(t, d, line)
	})
}

func BenchmarkDecodeLine(b *testing.B) {
	line := []byte(`{"id":"m00000001","firstName":"Grace","lastName":"Hopper","email":"Grace.Hopper.1@Example.org","eligible":true,"score":83,"eligibilityDate":"2026-03-14","planId":"premium"}`)
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var rec map[string]any
			if err := json.Unmarshal(line, &rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jsondec", func(b *testing.B) {
		b.ReportAllocs()
		d := &Decoder{}
		for b.Loop() {
			if _, err := d.Object(line); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The line kept, its strings sharing it (the files trigger).
	b.Run("jsondec-shared", func(b *testing.B) {
		b.ReportAllocs()
		d := &Decoder{}
		for b.Loop() {
			if _, err := d.SharedObject(line); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Checked, with only what a condition reads decoded, into a reused
	// map (the engine, for a line its when may skip).
	b.Run("jsondec-fields", func(b *testing.B) {
		b.ReportAllocs()
		d := &Decoder{}
		fields, m := []string{"eligible", "score"}, map[string]any{}
		for b.Loop() {
			clear(m)
			if _, partial, err := d.SharedFields(line, fields, m); err != nil || !partial {
				b.Fatal(partial, err)
			}
		}
	})
}

// searchPage is an answer like the Memberships search's: 100 users of
// 19 fields each, one nested.
func searchPage() []byte {
	var b strings.Builder
	b.WriteString(`{"count":20000,"users":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"FmmLf7GMvhaM2xhXv%03d","name":"Kwame Chen","firstName":"Kwame","lastName":"Chen","email":"kwame.chen%d@example.org",`+
			`"phone":"+1 555-129-4524","extension":"","roles":{"type":"account","role":"user","locationIds":["mfSandboxLocation001"]},"deleted":false,`+
			`"locationId":"mfSandboxLocation001","fullName":"Kwame Chen","membershipStatus":"eligible","enrollmentDate":"2025-03-20",`+
			`"eligibilityDate":"2026-03-20","planId":"plan_professional","registrationStatus":"attended","certificateStatus":"none",`+
			`"dateAdded":"2025-03-20T07:23:50.730231884Z","dateUpdated":"2025-11-10T20:17:26.300260712Z"}`, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func BenchmarkDecodePage(b *testing.B) {
	page := searchPage()
	b.SetBytes(int64(len(page)))
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v map[string]any
			if err := json.Unmarshal(page, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jsondec", func(b *testing.B) {
		b.ReportAllocs()
		d := &Decoder{}
		for b.Loop() {
			if _, err := d.Object(page); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestUniqueSeesRepeatedKeys(t *testing.T) {
	cases := []struct {
		in     string
		unique bool
	}{
		{`{"a":1,"b":2}`, true},
		{`[{"a":1},{"a":2}]`, true},
		{`{"a":{"a":1}}`, true},
		{`"s"`, true},
		{`{"a":1,"a":2}`, false},
		{`{"x":[{"b":1,"c":2,"b":3}]}`, false},
		{`{"a":1,`, false},
		{"{\"s\":\"\xff\"}", false}, // encoding/json's to decode
	}
	d := &Decoder{}
	for _, tc := range cases {
		v, ok := d.Unique([]byte(tc.in))
		if ok != tc.unique {
			t.Errorf("%s: unique %v, want %v", tc.in, ok, tc.unique)
		}
		var want any
		if ok && (json.Unmarshal([]byte(tc.in), &want) != nil || !reflect.DeepEqual(v, want)) {
			t.Errorf("%s: decoded %#v, encoding/json %#v", tc.in, v, want)
		}
	}
}

// TestObjectAndList: each text is its element as sent, decoding to the
// element decoded; none when the list is not there or the input is not
// decoded on the fast path.
func TestObjectAndList(t *testing.T) {
	cases := []struct {
		in    string
		texts []string
	}{
		{`{"count":2,"users":[ {"id":"a"} , {"id":"b","n":[1,{"x":[2]}]}],"meta":[3]}`, []string{`{"id":"a"}`, `{"id":"b","n":[1,{"x":[2]}]}`}},
		{`{"users":[1,"s",null,[]]}`, []string{`1`, `"s"`, `null`, `[]`}},
		{`{"users":[{"id":"a"}],"users":[{"id":"b"},{"id":"c"}]}`, []string{`{"id":"b"}`, `{"id":"c"}`}},
		{`{"users":[{"id":"a"}],"x":"` + "\xff" + `","users":[{"id":"b"}]}`, nil}, // encoding/json's to decode
		{`{"other":[1],"users":"x"}`, nil},
		{`{"nested":{"users":[1]}}`, nil},
		{`{"users":[]}`, nil},
		{`[{"users":[1]}]`, nil},
		{`{"users":[1,}`, nil},
		{`null`, nil},
	}
	d := &Decoder{}
	for _, tc := range cases {
		m, texts, err := d.ObjectAndList([]byte(tc.in), "users")
		want, wantErr := d.Object([]byte(tc.in))
		if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(m, want) {
			t.Errorf("%s: decoded %#v, %v; Object %#v, %v", tc.in, m, err, want, wantErr)
		}
		if len(texts) != len(tc.texts) {
			t.Errorf("%s: %d texts %q, want %q", tc.in, len(texts), texts, tc.texts)
			continue
		}
		for i, text := range texts {
			if string(text) != tc.texts[i] {
				t.Errorf("%s: text %d %q, want %q", tc.in, i, text, tc.texts[i])
			}
		}
	}
}

// FuzzObjectAndList: whatever the input, each text decodes to its
// element, and the object is Object's.
func FuzzObjectAndList(f *testing.F) {
	f.Add(`{"count":2,"users":[{"id":"a"},{"id":"b"}]}`)
	f.Add(`{"users":[1],"users":[2,3]}`)
	d := &Decoder{}
	f.Fuzz(func(t *testing.T, in string) {
		m, texts, err := d.ObjectAndList([]byte(in), "users")
		want, wantErr := (&Decoder{}).Object([]byte(in))
		if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(m, want) {
			t.Fatalf("%q: decoded %#v, %v; Object %#v, %v", in, m, err, want, wantErr)
		}
		if texts == nil {
			return
		}
		list := m["users"].([]any)
		for i, text := range texts {
			var v any
			if err := json.Unmarshal(text, &v); err != nil || !reflect.DeepEqual(v, list[i]) {
				t.Fatalf("%q: text %d %q decodes to %#v (%v), the element is %#v", in, i, text, v, err, list[i])
			}
		}
	})
}
