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
