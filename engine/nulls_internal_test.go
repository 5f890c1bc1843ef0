package engine

import (
	"encoding/json"
	"reflect"
	"testing"
)

// A key an expression gave nothing for is left out when its schema takes
// no null (at any depth the schema describes), and kept where it does: a
// member's certificate id is not cleared by a record that lacks it.
func TestAbsentValuesAreLeftOut(t *testing.T) {
	schema := json.RawMessage(`{"type":"object","properties":{
		"certificateId": {"type":"string"},
		"note": {"type":["string","null"]},
		"free": {},
		"either": {"anyOf":[{"type":"string"},{"type":"null"}]},
		"recipient": {"type":"object","properties":{"email":{"type":"string"},"phone":{"type":"string"}}}
	}}`)
	in := map[string]any{"certificateId": nil, "note": nil, "free": nil, "either": nil, "userId": "u1",
		"recipient": map[string]any{"email": "a@b.c", "phone": nil}}
	absentKeysOf(schema).apply(in)
	want := map[string]any{"note": nil, "free": nil, "either": nil, "userId": "u1", "recipient": map[string]any{"email": "a@b.c"}}
	if !reflect.DeepEqual(in, want) {
		t.Fatalf("got %v, want %v", in, want)
	}
	if absentKeysOf(json.RawMessage(`{"type":"object"}`)) != nil {
		t.Error("a schema without properties drops nothing")
	}
}
