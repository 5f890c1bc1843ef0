package accredible

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

// TestInputSchemasFollowTheDocument: the hand-written inputs offer only
// the fields the document's bodies define. grade is in no create or
// update body (answers only); private is in the create body, not the
// update's; an evidence item requires description and category and has
// file, string_object, preview, position and custom_insight.
func TestInputSchemasFollowTheDocument(t *testing.T) {
	recipient := map[string]any{"name": "A", "email": "a@example.org"}
	cases := []struct {
		name   string
		action string
		in     map[string]any
		valid  bool
	}{
		{"create takes private", "create_credential", map[string]any{"recipient": recipient, "group_id": 1, "private": true}, true},
		{"create refuses grade", "create_credential", map[string]any{"recipient": recipient, "group_id": 1, "grade": "A"}, false},
		{"upsert refuses grade", "upsert_credential", map[string]any{"recipient": recipient, "group_id": 1, "grade": "A"}, false},
		{"bulk item refuses grade", "bulk_create_credentials", map[string]any{"credentials": []any{map[string]any{"recipient": recipient, "group_id": 1, "grade": "A"}}}, false},
		{"update refuses grade", "update_credential", map[string]any{"id": "1", "grade": "A"}, false},
		{"update refuses private", "update_credential", map[string]any{"id": "1", "private": true}, false},
		{"update takes approve", "update_credential", map[string]any{"id": "1", "approve": true}, true},
		{"evidence grade item", "create_credential", map[string]any{"recipient": recipient, "group_id": 1,
			"evidence_items": []any{map[string]any{"description": "Final grade", "category": "grade", "string_object": "83", "position": 0}}}, true},
		{"evidence file item", "create_credential", map[string]any{"recipient": recipient, "group_id": 1,
			"evidence_items": []any{map[string]any{"description": "Essay", "category": "file", "file": "https://example.org/essay.pdf"}}}, true},
		{"evidence without category", "create_credential", map[string]any{"recipient": recipient, "group_id": 1,
			"evidence_items": []any{map[string]any{"description": "Essay", "url": "https://example.org"}}}, false},
		{"evidence without description", "create_credential", map[string]any{"recipient": recipient, "group_id": 1,
			"evidence_items": []any{map[string]any{"category": "url", "url": "https://example.org"}}}, false},
		{"evidence string_object is a string", "create_credential", map[string]any{"recipient": recipient, "group_id": 1,
			"evidence_items": []any{map[string]any{"description": "Final grade", "category": "grade", "string_object": 83}}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := connectors.CompileSchema(tc.action, testSpec.Action(tc.action).Input)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(tc.in)
			var doc any
			_ = json.Unmarshal(b, &doc)
			if err := s.Validate(doc); (err == nil) != tc.valid {
				t.Errorf("valid = %v, want %v (%v)", err == nil, tc.valid, err)
			}
		})
	}
}

// putBodies records the credential bodies of PUT /v1/credentials/{id}.
type putBodies struct {
	base http.RoundTripper
	mu   sync.Mutex
	sent []map[string]any
}

func (p *putBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/credentials/") && r.GetBody != nil {
		rc, _ := r.GetBody()
		var body map[string]any
		_ = json.NewDecoder(rc).Decode(&body)
		rc.Close()
		p.mu.Lock()
		p.sent = append(p.sent, body)
		p.mu.Unlock()
	}
	return p.base.RoundTrip(r)
}

// TestUpsertSendsOnlyDocumentedUpdateFields: upsert of an existing
// credential updates with PUT, whose documented body has no private: a
// differing private is not sent (the credential keeps its privacy), the
// documented fields are.
func TestUpsertSendsOnlyDocumentedUpdateFields(t *testing.T) {
	e := setup(t)
	puts := &putBodies{base: e.lose.base}
	e.lose.base = puts
	base := map[string]any{"recipient": member(1), "group_id": 100001, "reference": "M1/2026"}
	e.run(t, "create_credential", base)

	private := map[string]any{"recipient": member(1), "group_id": 100001, "reference": "M1/2026", "private": true}
	if o := out(e.run(t, "upsert_credential", private)); o["action"] != "unchanged" || o["private"] != false {
		t.Errorf("upsert with private on an existing credential: action %v private %v, want unchanged false", o["action"], o["private"])
	}
	withExpiry := map[string]any{"recipient": member(1), "group_id": 100001, "reference": "M1/2026", "private": true, "expired_on": "2027-03-01"}
	if o := out(e.run(t, "upsert_credential", withExpiry)); o["action"] != "updated" || o["expired_on"] != "2027-03-01" {
		t.Errorf("upsert with a new expiry: %v", o)
	}
	for _, b := range puts.sent {
		cred, _ := b["credential"].(map[string]any)
		for k := range cred {
			if k == "private" || k == "grade" {
				t.Errorf("PUT sent %q, which the document's update body does not define: %v", k, b)
			}
		}
	}
	if len(puts.sent) != 1 {
		t.Errorf("%d PUTs, want 1 (the expiry)", len(puts.sent))
	}
}

// TestSearchV2InputAsDocumented: the generated search_credentials input
// takes the query's field names as the document writes them ("group.id",
// with a number as in its examples), and a sort keyed by a documented
// field with asc or desc; and run against the sandbox, it finds by them.
func TestSearchV2InputAsDocumented(t *testing.T) {
	a := testSpec.Action("search_credentials")
	s, err := connectors.CompileSchema(a.Name, a.Input)
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	_ = json.Unmarshal(a.Input, &schema)
	query := schema["properties"].(map[string]any)["query"].(map[string]any)["properties"].(map[string]any)
	if query["group.id"] == nil || query["group"] != nil {
		t.Errorf("query properties: want the literal group.id, not group{id}: %v", query)
	}
	cases := []struct {
		name  string
		in    string
		valid bool
	}{
		{"group.id as a string", `{"query":{"group.id":"100001"}}`, true},
		{"group.id as a number", `{"query":{"group.id":100001}}`, true},
		{"sort by issued_on desc", `{"query":{},"sort":{"issued_on":"desc"}}`, true},
		{"sort by group.name", `{"query":{},"sort":{"group.name":"asc"}}`, true},
		{"sort order increasing", `{"query":{},"sort":{"issued_on":"increasing"}}`, false},
		{"sort by updated_at", `{"query":{},"sort":{"updated_at":"desc"}}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			_ = json.Unmarshal([]byte(tc.in), &v)
			if err := s.Validate(v); (err == nil) != tc.valid {
				t.Errorf("valid = %v, want %v (%v)", err == nil, tc.valid, err)
			}
		})
	}

	e := setup(t)
	e.run(t, "create_credential", map[string]any{"recipient": member(1), "group_id": 100001})
	e.run(t, "create_credential", map[string]any{"recipient": member(2), "group_id": 100002})
	e.run(t, "create_credential", map[string]any{"recipient": member(3), "group_id": 100002})
	res := e.run(t, "search_credentials", map[string]any{"query": map[string]any{"group.id": 100002}, "sort": map[string]any{"recipient_name": "desc"}})
	creds := out(res)["credentials"].([]any)
	if len(creds) != 2 || creds[0].(map[string]any)["recipient_name"] != "Member 3" {
		t.Errorf("search by group.id 100002, recipient_name desc: %v", creds)
	}
}

// TestDocumentedCredentialFieldsOffered: the create and update bodies
// document references (the fields of a reference: description and
// relationship required, relationship one of eight, a referee with name,
// email, avatar and url, a position), allow_supplemental_evidence and
// allow_supplemental_references (booleans), and meta_data as "key-value
// strings". Every credential write takes them, typed so.
func TestDocumentedCredentialFieldsOffered(t *testing.T) {
	recipient := map[string]any{"name": "A", "email": "a@example.org"}
	ref := map[string]any{"description": "Exemplary work", "relationship": "managed",
		"referee": map[string]any{"name": "Jane Doe", "email": "jane@example.org", "avatar": "https://example.org/j.png", "url": "https://example.org/jane"}, "position": 0}
	issue := func(field string, v any) map[string]any {
		return map[string]any{"recipient": recipient, "group_id": 1, field: v}
	}
	update := func(field string, v any) map[string]any { return map[string]any{"id": "1", field: v} }
	bulk := func(field string, v any) map[string]any {
		return map[string]any{"credentials": []any{issue(field, v)}}
	}
	type tc struct {
		name   string
		action string
		in     map[string]any
		valid  bool
	}
	var cases []tc
	for _, f := range []struct {
		field string
		good  any
		bad   any // wrongly typed
	}{
		{"references", []any{ref}, []any{map[string]any{"description": "x", "relationship": "colleague"}}},
		{"allow_supplemental_evidence", false, "no"},
		{"allow_supplemental_references", false, "no"},
		{"meta_data", map[string]any{"batch_id": "TK210"}, map[string]any{"batch_id": 210}},
	} {
		for _, a := range []struct {
			action string
			in     func(string, any) map[string]any
		}{{"create_credential", issue}, {"upsert_credential", issue}, {"update_credential", update}, {"bulk_create_credentials", bulk}} {
			cases = append(cases,
				tc{a.action + " takes " + f.field, a.action, a.in(f.field, f.good), true},
				tc{a.action + " types " + f.field, a.action, a.in(f.field, f.bad), false})
		}
	}
	cases = append(cases,
		tc{"reference without relationship", "create_credential", issue("references", []any{map[string]any{"description": "x"}}), false},
		tc{"reference without description", "create_credential", issue("references", []any{map[string]any{"relationship": "taught"}}), false},
		tc{"reference with an undocumented field", "create_credential", issue("references", []any{map[string]any{"description": "x", "relationship": "taught", "approve": true}}), false},
		tc{"referee with an undocumented field", "create_credential", issue("references", []any{map[string]any{"description": "x", "relationship": "taught", "referee": map[string]any{"phone": "1"}}}), false},
		tc{"recipient meta_data values are strings", "create_credential", issue("recipient", map[string]any{"name": "A", "email": "a@example.org", "meta_data": map[string]any{"n": 1}}), false},
		tc{"recipient meta_data strings", "create_credential", issue("recipient", map[string]any{"name": "A", "email": "a@example.org", "meta_data": map[string]any{"n": "1"}}), true},
		tc{"find by meta_data strings", "find_credential", map[string]any{"meta_data": map[string]any{"batch_id": "TK210"}}, true},
		tc{"find by meta_data number", "find_credential", map[string]any{"meta_data": map[string]any{"batch_id": 210}}, false},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := connectors.CompileSchema(tc.action, testSpec.Action(tc.action).Input)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(tc.in)
			var doc any
			_ = json.Unmarshal(b, &doc)
			if err := s.Validate(doc); (err == nil) != tc.valid {
				t.Errorf("valid = %v, want %v (%v)", err == nil, tc.valid, err)
			}
		})
	}
}

// TestNestedInputsOfferOnlyTheDocumentedFields: a recipient, an evidence
// item and a reference take the fields the document defines, no others
// (a misspelt field is an error, not a field silently dropped).
func TestNestedInputsOfferOnlyTheDocumentedFields(t *testing.T) {
	s, err := connectors.CompileSchema("create_credential", testSpec.Action("create_credential").Input)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]map[string]any{
		"recipient phone":  {"recipient": map[string]any{"name": "A", "email": "a@example.org", "phone": "+1"}, "group_id": 1},
		"evidence caption": {"recipient": map[string]any{"name": "A", "email": "a@example.org"}, "group_id": 1, "evidence_items": []any{map[string]any{"description": "x", "category": "url", "caption": "y"}}},
	} {
		b, _ := json.Marshal(in)
		var doc any
		_ = json.Unmarshal(b, &doc)
		if err := s.Validate(doc); err == nil {
			t.Errorf("%s: an undocumented nested field was taken", name)
		}
	}
}

// TestGeneratedBulkInputsTyped: the document leaves the bulk creates'
// credentials untyped ("Array of the credentials payload all field
// applicable which is in create credential endpoint"); the generated
// bulk_create_credentials_v1 and _v2 type each item as the create body
// and hold to the documented 100 and 30 per request.
func TestGeneratedBulkInputsTyped(t *testing.T) {
	item := func(extra map[string]any) map[string]any {
		m := map[string]any{"recipient": map[string]any{"name": "A", "email": "a@example.org"}, "group_id": 1}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	many := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = item(nil)
		}
		return out
	}
	for action, max := range map[string]int{"bulk_create_credentials_v1": 100, "bulk_create_credentials_v2": 30} {
		s, err := connectors.CompileSchema(action, testSpec.Action(action).Input)
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name  string
			creds []any
			valid bool
		}{
			{"documented fields", []any{item(map[string]any{"id": "M-1/2026", "issued_on": "14/06/2024", "allow_supplemental_evidence": false,
				"meta_data": map[string]any{"batch_id": "TK210"}, "references": []any{map[string]any{"description": "x", "relationship": "taught"}}})}, true},
			{"the most per request", many(max), true},
			{"one too many", many(max + 1), false},
			{"none", []any{}, false},
			{"no recipient", []any{map[string]any{"group_id": 1}}, false},
			{"meta_data number", []any{item(map[string]any{"meta_data": map[string]any{"batch_id": 1}})}, false},
			{"grade", []any{item(map[string]any{"grade": "A"})}, false},
			{"the hand-written reference", []any{item(map[string]any{"reference": "M-1"})}, false},
			{"not a list", nil, false},
		}
		for _, tc := range cases {
			t.Run(action+"/"+tc.name, func(t *testing.T) {
				in := map[string]any{"credentials": tc.creds}
				if tc.creds == nil {
					in["credentials"] = "x"
				}
				b, _ := json.Marshal(in)
				var doc any
				_ = json.Unmarshal(b, &doc)
				if err := s.Validate(doc); (err == nil) != tc.valid {
					t.Errorf("valid = %v, want %v (%v)", err == nil, tc.valid, err)
				}
			})
		}
	}
}
