package jsonenc

import (
	"encoding/json"
	"math"
	"testing"
)

// jsonLikeCases are values as expressions and connectors produce them,
// and some Append leaves to encoding/json.
var jsonLikeCases = []any{
	nil, "", "plain", true, false, 0.0, math.Copysign(0, -1), 1.0, -12.5, 70.0, 1e20, 1e21, 1e-6, 1e-7, 123456789.125,
	math.MaxFloat64, math.SmallestNonzeroFloat64, 3, int64(-9007199254740993),
	100001.0, 999999999999999.0, -999999999999999.0, 1e15, -1e15, 123456789012345.5, 0.5, -0.25, 1e300,
	"quote \" backslash \\ <b>&amp;</b> \b\f\n\r\t \x00\x1f\x7f",
	"café 日本語 \u2028\u2029 bad \xff\xc3 utf8",
	map[string]any{}, []any{}, map[string]any(nil), []any(nil),
	map[string]any{"z": 1.0, "a": "x", "m": []any{1.0, "two", nil, map[string]any{"k": true}}, "<": ">"},
	map[string]any{"credential": map[string]any{"group_id": 100001.0, "recipient": map[string]any{"email": "a@example.org"}}},
	map[string]any{"k17": 17.0, "k1": 1.0, "k2": 2.0, "k3": 3.0, "k4": 4.0, "k5": 5.0, "k6": 6.0, "k7": 7.0, "k8": 8.0, "k9": 9.0,
		"k10": 10.0, "k11": 11.0, "k12": 12.0, "k13": 13.0, "k14": 14.0, "k15": 15.0, "k16": 16.0},
	// Handed to encoding/json: a struct, a typed map, a raw message, NaN.
	struct{ A int }{1}, map[string]string{"b": "c"}, json.RawMessage(`{"x": 1}`),
	map[string]any{"deep": []any{struct{ B string }{"b"}}},
}

func TestAppendAgreesWithMarshal(t *testing.T) {
	for _, v := range jsonLikeCases {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		got, ok := Append(nil, v)
		if ok && string(got) != string(want) {
			t.Errorf("%#v: Append %s, json.Marshal %s", v, got, want)
		}
		if m, err := Marshal(v); err != nil || string(m) != string(want) {
			t.Errorf("%#v: Marshal %s (%v), json.Marshal %s", v, m, err, want)
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(1), map[string]any{"x": math.Inf(-1)}} {
		if _, ok := Append(nil, v); ok {
			t.Errorf("%v: encoded, want it handed to encoding/json (which refuses it)", v)
		}
	}
}

func FuzzAppend(f *testing.F) {
	f.Add("s", "k", 1.5, true)
	f.Add("\xff<", "\u2028", 1e-9, false)
	f.Fuzz(func(t *testing.T, s, k string, n float64, flag bool) {
		v := map[string]any{k: s, "n": n, "list": []any{s, n, flag, nil}, s: map[string]any{k: k}}
		want, err := json.Marshal(v)
		got, ok := Append(nil, v)
		if err != nil {
			if ok {
				t.Fatalf("%#v: Append %s, json.Marshal refuses it: %v", v, got, err)
			}
			return
		}
		if !ok || string(got) != string(want) {
			t.Fatalf("%#v: Append %s (%v), json.Marshal %s", v, got, ok, want)
		}
	})
}

// BenchmarkMarshalCredential encodes a file job step's input (a
// credential, ~350 bytes): Marshal, and the form before it (a new
// 256-byte buffer, grown).
func BenchmarkMarshalCredential(b *testing.B) {
	in := map[string]any{"path": "credentials.jsonl", "record": map[string]any{"credential": map[string]any{
		"group_id": 100001, "name": "Grace Hopper", "issued_on": "2026-03-14",
		"recipient":         map[string]any{"id": "m00000001", "name": "Grace Hopper", "email": "grace.hopper.1@example.org"},
		"custom_attributes": map[string]any{"score": 83.0, "plan": "premium"},
	}}}
	b.Run("Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Marshal(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("grown", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := AppendMarshal(make([]byte, 0, 256), in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
