package sandbox

import "testing"

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
