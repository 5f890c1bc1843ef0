package engine

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/connectors/apiclient"
)

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
