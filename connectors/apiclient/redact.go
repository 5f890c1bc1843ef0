package apiclient

import "strings"

// Redactor replaces known secret values with a placeholder. Every string
// that leaves the client (errors, log fields, recorded requests) passes
// through it.
type Redactor struct{ r *strings.Replacer }

// Redacted is what a secret becomes.
const Redacted = "[REDACTED]"

// NewRedactor redacts each non-empty secret; secrets shorter than 4
// characters are ignored, as replacing them would mangle ordinary text.
func NewRedactor(secrets ...string) *Redactor {
	var pairs []string
	for _, s := range secrets {
		if len(s) >= 4 {
			pairs = append(pairs, s, Redacted)
		}
	}
	if len(pairs) == 0 {
		return &Redactor{}
	}
	return &Redactor{r: strings.NewReplacer(pairs...)}
}

// String redacts s.
func (r *Redactor) String(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}
