package apiclient

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Redactor replaces known secret values with a placeholder. Every string
// that leaves the client (errors, log fields, recorded requests) passes
// through it.
type Redactor struct {
	r       *strings.Replacer
	secrets [][]byte
}

// Redacted is what a secret becomes.
const Redacted = "[REDACTED]"

// NewRedactor redacts each non-empty secret; secrets shorter than 4
// characters are ignored, as replacing them would mangle ordinary text.
func NewRedactor(secrets ...string) *Redactor {
	var pairs []string
	var kept [][]byte
	for _, s := range secrets {
		if len(s) >= 4 {
			pairs = append(pairs, s, Redacted)
			kept = append(kept, []byte(s))
		}
	}
	if len(pairs) == 0 {
		return &Redactor{}
	}
	return &Redactor{r: strings.NewReplacer(pairs...), secrets: kept}
}

// Bytes redacts b: b itself when it holds no secret (the common case,
// checked without copying it), else a redacted copy.
func (r *Redactor) Bytes(b []byte) []byte {
	if r == nil || r.r == nil {
		return b
	}
	for _, s := range r.secrets {
		if bytes.Contains(b, s) {
			return []byte(r.r.Replace(string(b)))
		}
	}
	return b
}

// String redacts s.
func (r *Redactor) String(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// sensitiveField reports whether a body field holds a credential by its
// name (a new user's password, a client secret).
func sensitiveField(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"password", "secret", "token", "apikey", "api_key"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// redactFields copies a JSON-like body with credential fields replaced,
// for planned writes that are printed.
func redactFields(body any) any {
	// Normalise structs and typed maps through JSON first.
	switch body.(type) {
	case map[string]any, []any, nil:
	default:
		b, err := json.Marshal(body)
		if err != nil {
			return body
		}
		var v any
		if json.Unmarshal(b, &v) != nil {
			return body
		}
		body = v
	}
	switch v := body.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if sensitiveField(k) {
				out[k] = Redacted
			} else {
				out[k] = redactFields(x)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = redactFields(x)
		}
		return out
	}
	return body
}
