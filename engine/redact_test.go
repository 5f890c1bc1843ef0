package engine

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/connectors/apiclient"
)

// jsonLikeCases are values as expressions and connectors produce them,
// and some appendJSON must hand to encoding/json.
var jsonLikeCases = []any{
	nil, "", "plain", true, false, 0.0, math.Copysign(0, -1), 1.0, -12.5, 70.0, 1e20, 1e21, 1e-6, 1e-7, 123456789.125,
	math.MaxFloat64, math.SmallestNonzeroFloat64, 3, int64(-9007199254740993),
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

func TestAppendJSONAgreesWithMarshal(t *testing.T) {
	for _, v := range jsonLikeCases {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		got, ok := appendJSON(nil, v, 0)
		if ok && string(got) != string(want) {
			t.Errorf("%#v: appendJSON %s, json.Marshal %s", v, got, want)
		}
		e := &Engine{}
		e.redact = nil
		if r := e.redactJSON(v); v != nil && string(r) != string(want) {
			t.Errorf("%#v: redactJSON %s, json.Marshal %s", v, r, want)
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(1), map[string]any{"x": math.Inf(-1)}} {
		if _, ok := appendJSON(nil, v, 0); ok {
			t.Errorf("%v: encoded, want it handed to encoding/json (which refuses it)", v)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("s", "k", 1.5, true)
	f.Add("\xff<", "\u2028", 1e-9, false)
	f.Fuzz(func(t *testing.T, s, k string, n float64, flag bool) {
		v := map[string]any{k: s, "n": n, "list": []any{s, n, flag, nil}, s: map[string]any{k: k}}
		want, err := json.Marshal(v)
		got, ok := appendJSON(nil, v, 0)
		if err != nil {
			if ok {
				t.Fatalf("%#v: appendJSON %s, json.Marshal refuses it: %v", v, got, err)
			}
			return
		}
		if !ok || string(got) != string(want) {
			t.Fatalf("%#v: appendJSON %s (%v), json.Marshal %s", v, got, ok, want)
		}
	})
}

// The journal keeps no secret: a value holding one is redacted wherever
// it is (a key, a nested value, inside a longer string), and a value
// without one is kept as encoded.
func TestRedactJSONReplacesSecrets(t *testing.T) {
	const secret = "sk_live_12345"
	e := &Engine{redact: apiclient.NewRedactor(secret, "abc")}
	for _, tc := range []struct {
		v    any
		want string
	}{
		{map[string]any{"key": secret}, `{"key":"[REDACTED]"}`},
		{map[string]any{secret: []any{"x-" + secret + "-y", 1.0}}, `{"[REDACTED]":["x-[REDACTED]-y",1]}`},
		{map[string]any{"plain": "abc is too short to be a secret"}, `{"plain":"abc is too short to be a secret"}`},
		{struct{ Token string }{secret}, `{"Token":"[REDACTED]"}`},
	} {
		if got := string(e.redactJSON(tc.v)); got != tc.want {
			t.Errorf("redactJSON(%#v) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func BenchmarkRedactJSON(b *testing.B) {
	input := map[string]any{"path": "credentials.jsonl", "record": map[string]any{"credential": map[string]any{
		"group_id": 100001.0, "name": "Grace Hopper", "issued_on": "2026-03-14",
		"recipient":         map[string]any{"id": "m00000001", "name": "Grace Hopper", "email": "grace.hopper.1@example.org"},
		"custom_attributes": map[string]any{"score": 83.0, "plan": "premium"},
	}}}
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, _ := json.Marshal(input)
			_ = json.RawMessage(strings.Clone(string(out)))
		}
	})
	b.Run("redactJSON", func(b *testing.B) {
		b.ReportAllocs()
		e := &Engine{}
		for b.Loop() {
			e.redactJSON(input)
		}
	})
}
