package connectors

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func specWith(input json.RawMessage) *Spec {
	out := json.RawMessage(`{"type":"object"}`)
	return &Spec{
		Name: "x",
		Open: func(ConnectionConfig) (Conn, error) { return nil, nil },
		Actions: []*ActionSpec{{
			Operation: Operation{Name: "get", Summary: "Get.", Input: input, Output: out},
			Run:       func(context.Context, Conn, map[string]any) (*Result, error) { return nil, nil },
		}},
	}
}

func TestRegisterChecksCheaplyAndCheckSchemasCompiles(t *testing.T) {
	cases := []struct {
		name                 string
		input                json.RawMessage
		register, compileErr string // "" when accepted
	}{
		{"sound", json.RawMessage(`{"type":"object"}`), "", ""},
		{"not JSON", json.RawMessage(`{"type":`), `action "get": input schema is not valid JSON`, "input schema"},
		{"JSON that does not compile", json.RawMessage(`{"type":3}`), "", `action "get": input schema`},
		{"missing", nil, "input schema is missing", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := NewRegistry().Register(specWith(tc.input))
			if got := errString(err); tc.register == "" && got != "" || !strings.Contains(got, tc.register) {
				t.Fatalf("Register: %q, want %q", got, tc.register)
			}
			err = CheckSchemas(specWith(tc.input))
			if got := errString(err); tc.compileErr == "" && got != "" || !strings.Contains(got, tc.compileErr) {
				t.Fatalf("CheckSchemas: %q, want %q", got, tc.compileErr)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestLazyRegistration(t *testing.T) {
	r := NewRegistry()
	builds := 0
	r.MustRegisterLazy("x", func() *Spec { builds++; return specWith(json.RawMessage(`{"type":"object"}`)) })
	if fmt.Sprint(r.Names()) != "[x]" || builds != 0 {
		t.Fatalf("Names %v built %d times: names must not build", r.Names(), builds)
	}
	if err := r.Register(specWith(json.RawMessage(`{}`))); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("duplicate of a lazy connector: %v", err)
	}
	s, ok := r.Lookup("x")
	if !ok || s.Name != "x" || builds != 1 {
		t.Fatalf("Lookup: %v %v, built %d times", s, ok, builds)
	}
	r.Lookup("x")
	if len(r.List()) != 1 || builds != 1 {
		t.Fatalf("built %d times, want once", builds)
	}
	mustPanic(t, "already registered", func() { r.MustRegisterLazy("x", nil) })

	bad := NewRegistry()
	bad.MustRegisterLazy("y", func() *Spec { return specWith(nil) })
	mustPanic(t, "input schema is missing", func() { bad.List() })
	other := NewRegistry()
	other.MustRegisterLazy("z", func() *Spec { return specWith(json.RawMessage(`{}`)) })
	mustPanic(t, `builds a spec named "x"`, func() { other.Lookup("z") })
}

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), want) {
			t.Fatalf("panic %v, want %q", p, want)
		}
	}()
	f()
}
