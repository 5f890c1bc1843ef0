package memberships

import (
	"encoding/json"
	"fmt"

	"github.com/memberflow/memberflow/connectors/openapi"
)

// schemas are the record schemas hand-written operations share, taken
// from the document so that they cannot drift from it.
type schemas struct {
	user    map[string]any
	payment map[string]any
}

// Membership status values (our design).
var (
	membershipStatuses = []any{"pending", "active", "eligible", "lapsed", "cancelled"}
	paymentStatuses    = []any{"pending", "paid", "refunded", "failed"}
)

func newSchemas(doc *openapi.Document) *schemas {
	find := func(method, path string) map[string]any {
		op, _, ok := doc.Find(method, path)
		if !ok {
			panic(fmt.Sprintf("memberships: openapi.json has no %s %s", method, path))
		}
		return op.Response
	}
	return &schemas{
		user:    find("GET", "/users/ve9EPM428h8vShlRW1KT"),
		payment: find("GET", "/payments/pA1b2C3d4E5f6G7h8I9j"),
	}
}

// raw marshals a schema built in code; it cannot fail for these values.
func raw(v map[string]any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func object(required []string, props map[string]any) map[string]any {
	o := map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"type":                 "object",
		"properties":           props,
		"additionalProperties": false,
	}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func str(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }

func withDesc(s map[string]any, desc string) map[string]any {
	out := make(map[string]any, len(s)+1)
	for k, v := range s {
		out[k] = v
	}
	out["description"] = desc
	return out
}

func nullable(s map[string]any, desc string) map[string]any {
	return map[string]any{"description": desc, "anyOf": []any{s, map[string]any{"type": "null"}}}
}

func enumOf(values []any, desc string) map[string]any {
	return map[string]any{"type": "string", "enum": values, "description": desc}
}

// oneOrMany is a filter parameter: one value or a list of them.
func oneOrMany(values []any, desc string) map[string]any {
	return map[string]any{
		"description": desc,
		"anyOf": []any{
			map[string]any{"type": "string", "enum": values},
			map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": values}, "minItems": 1},
		},
	}
}

// membershipInput are the writable membership fields of a user (ours).
func membershipInput() map[string]any {
	date := func(d string) map[string]any {
		return map[string]any{"type": "string", "format": "date", "pattern": `^\d{4}-\d{2}-\d{2}$`, "description": d}
	}
	return map[string]any{
		"membershipStatus":   enumOf(membershipStatuses, "Where the member stands."),
		"enrollmentDate":     date("The day the member enrolled (YYYY-MM-DD)."),
		"eligibilityDate":    date("The day the member became or becomes eligible (YYYY-MM-DD)."),
		"planId":             str("The membership plan."),
		"registrationStatus": enumOf([]any{"none", "registered", "attended", "no_show"}, "The member's registration for the current event."),
		"certificateId":      str("The id of the member's certificate in the certificate service."),
		"certificateStatus":  enumOf([]any{"none", "issued", "expired", "revoked"}, "The state of the member's certificate."),
		"issuanceDate":       date("The day the certificate was issued (YYYY-MM-DD)."),
	}
}

// stringList reads a filter that may be a string or a list of strings.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return v
	}
	return nil
}
