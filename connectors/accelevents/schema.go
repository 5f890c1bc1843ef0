package accelevents

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/memberflow/memberflow/connectors/openapi"
)

// document is openapi.json, loaded once: hand-written operations take the
// shapes of attendees, orders and payments from it, so they cannot drift.
var document = sync.OnceValues(func() (*openapi.Document, error) { return openapi.Load(openAPIDoc) })

// docResponse returns the success schema of a document operation.
func docResponse(method, path string) map[string]any {
	doc, err := document()
	if err != nil {
		panic(fmt.Sprintf("accelevents: openapi.json: %v", err))
	}
	op, _, ok := doc.Find(method, path)
	if !ok || op.Response == nil {
		panic(fmt.Sprintf("accelevents: openapi.json has no answer for %s %s", method, path))
	}
	return op.Response
}

const ev = "/rest/events/{eventUrl}"

func attendeeSchema() map[string]any { return docResponse("GET", ev+"/staff/attendees/{attendeeId}") }
func orderSchema() map[string]any    { return docResponse("GET", ev+"/staff/orders/{orderId}") }

// schema helpers: every property carries a description.

type props map[string]any

func object(desc string, p props, required ...string) map[string]any {
	s := map[string]any{"type": "object", "description": desc, "properties": map[string]any(p)}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// input is an operation's `with` schema: unknown fields are refused.
func input(p props, required ...string) json.RawMessage {
	s := object("", p, required...)
	delete(s, "description")
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["additionalProperties"] = false
	return raw(s)
}

// oneOfFields is input() that also demands at least one of fields.
func oneOfFields(p props, fields ...string) json.RawMessage {
	var s map[string]any
	_ = json.Unmarshal(input(p), &s)
	alts := make([]any, len(fields))
	for i, f := range fields {
		alts[i] = map[string]any{"required": []string{f}}
	}
	s["anyOf"] = alts
	return raw(s)
}

func output(s map[string]any) json.RawMessage {
	c := make(map[string]any, len(s)+1)
	for k, v := range s {
		c[k] = v
	}
	c["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	return raw(c)
}

func prop(typ, desc string, extra ...any) map[string]any {
	s := map[string]any{"type": typ, "description": desc}
	for i := 0; i+1 < len(extra); i += 2 {
		s[extra[i].(string)] = extra[i+1]
	}
	return s
}

func arrayOf(desc string, items map[string]any, extra ...any) map[string]any {
	s := map[string]any{"type": "array", "description": desc, "items": items}
	for i := 0; i+1 < len(extra); i += 2 {
		s[extra[i].(string)] = extra[i+1]
	}
	return s
}

func raw(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

var eventURLProp = prop("string", "The event's URL name; default: the connection option eventUrl.", "minLength", 1)
