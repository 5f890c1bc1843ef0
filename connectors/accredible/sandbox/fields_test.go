package sandbox

import (
	"strings"
	"testing"
)

// TestUndocumentedCredentialFieldsNotStored: grade is not a field of the
// document's create or update bodies (it appears in answers only), and
// private is a create field the update body does not take. The sandbox
// stores neither, so a test counting on them fails here as it would
// against Accredible.
func TestUndocumentedCredentialFieldsNotStored(t *testing.T) {
	s, _ := newSeeded(t)
	body := issueBody("g@example.org", "G", 100001)
	body["credential"].(map[string]any)["grade"] = "A"
	body["credential"].(map[string]any)["private"] = true
	w := call(t, s, "POST", "/v1/credentials", body)
	created := decode(t, w)["credential"].(map[string]any)
	if created["grade"] != nil {
		t.Errorf("create stored the undocumented grade: %v", created["grade"])
	}
	if created["private"] != true {
		t.Errorf("create did not store private (a documented create field): %v", created["private"])
	}
	id := created["id"].(string)
	w = call(t, s, "PUT", "/v1/credentials/"+id, map[string]any{"credential": map[string]any{"grade": "B", "private": false, "approve": true, "complete": false}})
	validated(t, "PUT", "/v1/credentials/{id}", w)
	updated := decode(t, w)["credential"].(map[string]any)
	if updated["grade"] != nil || updated["private"] != true {
		t.Errorf("update stored fields its body does not define: grade %v, private %v", updated["grade"], updated["private"])
	}
	if updated["complete"] != false {
		t.Errorf("update ignored complete, a documented field: %v", updated["complete"])
	}
}

// TestDeprecatedDateFormatAccepted: the v1 bodies and filters document
// "Format: YYYY-MM-DD (DD/MM/YYYY also works but is deprecated)". The
// sandbox takes both and answers YYYY-MM-DD; anything else is refused.
func TestDeprecatedDateFormatAccepted(t *testing.T) {
	s, _ := newSeeded(t)
	body := issueBody("d@example.org", "D", 100001)
	body["credential"].(map[string]any)["issued_on"] = "14/06/2024"
	w := call(t, s, "POST", "/v1/credentials", body)
	if w.Code != 200 {
		t.Fatalf("create with a DD/MM/YYYY issued_on: %d %s", w.Code, w.Body)
	}
	cred := decode(t, w)["credential"].(map[string]any)
	if cred["issued_on"] != "2024-06-14" {
		t.Errorf("issued_on %v, want 2024-06-14", cred["issued_on"])
	}
	w = call(t, s, "PUT", "/v1/credentials/"+cred["id"].(string), map[string]any{"credential": map[string]any{"expired_on": "31/12/2027"}})
	if got := decode(t, w)["credential"].(map[string]any)["expired_on"]; w.Code != 200 || got != "2027-12-31" {
		t.Errorf("update with a DD/MM/YYYY expired_on: %d %v", w.Code, got)
	}
	w = call(t, s, "GET", "/v1/all_credentials?start_date=01/06/2024&end_date=30/06/2024", nil)
	if n := len(decode(t, w)["credentials"].([]any)); w.Code != 200 || n != 1 {
		t.Errorf("all_credentials between DD/MM/YYYY dates: %d, %d credentials", w.Code, n)
	}
	for _, bad := range []string{"2024/06/14", "14-06-2024", "31/02/2024"} {
		body := issueBody("e@example.org", "E", 100001)
		body["credential"].(map[string]any)["issued_on"] = bad
		if w := call(t, s, "POST", "/v1/credentials", body); w.Code != 422 {
			t.Errorf("issued_on %q: %d, want 422", bad, w.Code)
		}
	}
}

// TestSupplementalFlagsStored: allow_supplemental_evidence and
// allow_supplemental_references are create and update fields (booleans,
// "true by default"). The sandbox stores what is sent and answers it in
// the credential and in the v1 listings (which document both, nullable);
// unset, they are null. A value that is not a boolean is refused.
func TestSupplementalFlagsStored(t *testing.T) {
	s, _ := newSeeded(t)
	body := issueBody("s@example.org", "S", 100001)
	body["credential"].(map[string]any)["recipient"].(map[string]any)["id"] = "7001" // the listing types recipient.id as a number
	body["credential"].(map[string]any)["allow_supplemental_evidence"] = false
	w := call(t, s, "POST", "/v1/credentials", body)
	validated(t, "POST", "/v1/credentials", w)
	cred := decode(t, w)["credential"].(map[string]any)
	if cred["allow_supplemental_evidence"] != false || cred["allow_supplemental_references"] != nil {
		t.Errorf("create: allow_supplemental_evidence %v, allow_supplemental_references %v; want false, null", cred["allow_supplemental_evidence"], cred["allow_supplemental_references"])
	}
	id := cred["id"].(string)
	w = call(t, s, "PUT", "/v1/credentials/"+id, map[string]any{"credential": map[string]any{"allow_supplemental_references": true, "allow_supplemental_evidence": nil}})
	if got := decode(t, w)["credential"].(map[string]any); got["allow_supplemental_references"] != true || got["allow_supplemental_evidence"] != nil {
		t.Errorf("update: %v, %v; want null, true", got["allow_supplemental_evidence"], got["allow_supplemental_references"])
	}
	w = call(t, s, "GET", "/v1/all_credentials?email=s@example.org", nil)
	validated(t, "GET", "/v1/all_credentials", w)
	if got := decode(t, w)["credentials"].([]any)[0].(map[string]any); got["allow_supplemental_references"] != true {
		t.Errorf("listing: allow_supplemental_references %v, want true", got["allow_supplemental_references"])
	}

	for _, field := range []string{"allow_supplemental_evidence", "allow_supplemental_references"} {
		body := issueBody("t@example.org", "T", 100001)
		body["credential"].(map[string]any)[field] = "no"
		w := call(t, s, "POST", "/v1/credentials", body)
		if errs, _ := decode(t, w)["errors"].(map[string]any); w.Code != 422 || errs[field] == nil {
			t.Errorf("create with %s \"no\": %d %s", field, w.Code, w.Body)
		}
		w = call(t, s, "PUT", "/v1/credentials/"+id, map[string]any{"credential": map[string]any{field: 1}})
		if w.Code != 422 {
			t.Errorf("update with %s 1: %d %s", field, w.Code, w.Body)
		}
	}
}

// TestEmbeddedReferencesStored: the create body's references carry the
// fields of a reference (description and relationship required, the
// relationship one of eight). The sandbox stores valid ones, answers them
// as the credential's references, and refuses an invalid one as the
// references endpoint does, in the whole create (v1) or the item (v2 bulk).
func TestEmbeddedReferencesStored(t *testing.T) {
	s, _ := newSeeded(t)
	body := issueBody("r@example.org", "R", 100001)
	body["credential"].(map[string]any)["references"] = []any{map[string]any{"description": "Exemplary", "relationship": "managed",
		"referee": map[string]any{"name": "Jane Doe", "email": "jane@example.org", "avatar": "https://example.org/j.png", "url": "https://example.org/jane"}}}
	w := call(t, s, "POST", "/v1/credentials", body)
	validated(t, "POST", "/v1/credentials", w)
	refs := decode(t, w)["credential"].(map[string]any)["references"].([]any)
	if len(refs) != 1 {
		t.Fatalf("references %v", refs)
	}
	ref := refs[0].(map[string]any)
	referee := ref["referee"].(map[string]any)
	if ref["description"] != "Exemplary" || ref["relationship"] != "managed" || referee["name"] != "Jane Doe" || referee["email"] != "jane@example.org" || ref["id"] == nil {
		t.Errorf("reference %v", ref)
	}

	for name, bad := range map[string]map[string]any{
		"relationship not in the list": {"description": "x", "relationship": "colleague"},
		"no relationship":              {"description": "x"},
		"no description":               {"relationship": "taught"},
	} {
		body := issueBody("q@example.org", "Q", 100001)
		body["credential"].(map[string]any)["references"] = []any{bad}
		w := call(t, s, "POST", "/v1/credentials", body)
		if w.Code != 422 || !strings.Contains(w.Body.String(), "references.") {
			t.Errorf("create, %s: %d %s", name, w.Code, w.Body)
		}
		w = call(t, s, "POST", "/v2/credentials/bulk_create", map[string]any{"credentials": []any{body["credential"]}})
		validated(t, "POST", "/v2/credentials/bulk_create", w)
		if w.Code != 422 || !strings.Contains(w.Body.String(), `"property":"references.`) {
			t.Errorf("bulk create, %s: %d %s", name, w.Code, w.Body)
		}
	}
	if n := s.Stats().Objects["credentials"]; n != 1 {
		t.Errorf("%d credentials stored, want the one valid", n)
	}

	// An update's references are "References to add": the credential
	// keeps its own.
	id := decode(t, call(t, s, "GET", "/v1/all_credentials?email=r@example.org", nil))["credentials"].([]any)[0].(map[string]any)["id"]
	path := "/v1/credentials/" + scalarString(id)
	w = call(t, s, "PUT", path, map[string]any{"credential": map[string]any{"references": []any{map[string]any{"description": "Also good", "relationship": "worked"}}}})
	if refs := decode(t, w)["credential"].(map[string]any)["references"].([]any); w.Code != 200 || len(refs) != 2 {
		t.Errorf("update adding a reference: %d, %d references, want 2", w.Code, len(refs))
	}
	w = call(t, s, "PUT", path, map[string]any{"credential": map[string]any{"references": []any{map[string]any{"description": "Bad", "relationship": "rival"}}}})
	if w.Code != 422 {
		t.Errorf("update with an invalid reference: %d", w.Code)
	}
	if refs := decode(t, call(t, s, "GET", path, nil))["credential"].(map[string]any)["references"].([]any); len(refs) != 2 {
		t.Errorf("a refused update changed the references: %d", len(refs))
	}
}

// TestMetaDataIsKeyValueStrings: the document describes meta_data (the
// credential's and the recipient's) as "key-value strings" and types its
// entries as strings in every answer. The sandbox stores strings and
// refuses other values [design: what Accredible does with them is not
// documented].
func TestMetaDataIsKeyValueStrings(t *testing.T) {
	s, _ := newSeeded(t)
	body := issueBody("m@example.org", "M", 100001)
	body["credential"].(map[string]any)["meta_data"] = map[string]any{"batch_id": "TK210"}
	body["credential"].(map[string]any)["recipient"].(map[string]any)["meta_data"] = map[string]any{"zip_code": "10459"}
	w := call(t, s, "POST", "/v1/credentials", body)
	cred := decode(t, w)["credential"].(map[string]any)
	if cred["meta_data"].(map[string]any)["batch_id"] != "TK210" || cred["recipient"].(map[string]any)["meta_data"].(map[string]any)["zip_code"] != "10459" {
		t.Errorf("create: %v", cred)
	}
	id := cred["id"].(string)
	for name, mutate := range map[string]func(map[string]any){
		"a number":  func(c map[string]any) { c["meta_data"] = map[string]any{"batch_id": 210} },
		"an object": func(c map[string]any) { c["meta_data"] = map[string]any{"batch": map[string]any{"id": "x"}} },
		"a list":    func(c map[string]any) { c["meta_data"] = []any{"x"} },
		"a recipient number": func(c map[string]any) {
			c["recipient"].(map[string]any)["meta_data"] = map[string]any{"zip_code": 10459}
		},
	} {
		body := issueBody("n@example.org", "N", 100001)
		mutate(body["credential"].(map[string]any))
		w := call(t, s, "POST", "/v1/credentials", body)
		if w.Code != 422 || !strings.Contains(w.Body.String(), "meta_data") {
			t.Errorf("create with %s: %d %s", name, w.Code, w.Body)
		}
		w = call(t, s, "POST", "/v2/credentials/bulk_create", map[string]any{"credentials": []any{body["credential"]}})
		if w.Code != 422 || !strings.Contains(w.Body.String(), "credential_invalid") {
			t.Errorf("bulk create with %s: %d %s", name, w.Code, w.Body)
		}
	}
	w = call(t, s, "PUT", "/v1/credentials/"+id, map[string]any{"credential": map[string]any{"meta_data": map[string]any{"batch_id": 7}}})
	if w.Code != 422 {
		t.Errorf("update with a number: %d %s", w.Code, w.Body)
	}
	w = call(t, s, "GET", "/v1/credentials/"+id, nil)
	if got := decode(t, w)["credential"].(map[string]any)["meta_data"].(map[string]any); got["batch_id"] != "TK210" {
		t.Errorf("a refused update changed meta_data: %v", got)
	}
}
