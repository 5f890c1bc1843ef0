package sandbox

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestTheRestOfTheDocument drives each operation added in more.go through
// the state the others make, and checks each answer against the document.
func TestTheRestOfTheDocument(t *testing.T) {
	s, clk := newSeeded(t)
	ids := issueN(t, s, clk, 3)
	dep := int64(0)
	for id := range s.departments {
		dep = id
	}
	ok := func(method, template, path string, body any, status int) map[string]any {
		t.Helper()
		w := call(t, s, method, path, body)
		if w.Code != status {
			t.Fatalf("%s %s: %d %s, want %d", method, path, w.Code, w.Body, status)
		}
		validated(t, method, template, w)
		if w.Body.Len() == 0 || w.Code == http.StatusFound {
			return nil
		}
		return decode(t, w)
	}
	notFound := func(method, path string, body any) {
		t.Helper()
		if w := call(t, s, method, path, body); w.Code != http.StatusNotFound {
			t.Errorf("%s %s: %d %s, want 404", method, path, w.Code, w.Body)
		}
	}

	// PDFs, redirect, analytics, SSO: about credentials that exist.
	if f := ok("POST", "/v1/credentials/generate_pdf", "/v1/credentials/generate_pdf", map[string]any{"credential_ids": []any{ids[0], ids[1]}}, 200)["file"]; !strings.HasSuffix(f.(string), ".zip") {
		t.Errorf("generate_pdf file %v", f)
	}
	notFound("POST", "/v1/credentials/generate_pdf", map[string]any{"credential_ids": []any{"999"}})
	if f := ok("POST", "/v1/credentials/generate_single_pdf/{id}", "/v1/credentials/generate_single_pdf/"+ids[0], nil, 200)["file"]; !strings.HasSuffix(f.(string), ".pdf") {
		t.Errorf("generate_single_pdf file %v", f)
	}
	notFound("POST", "/v1/credentials/generate_single_pdf/999", nil)
	w := call(t, s, "GET", "/v1/issuer/credential_redirect?id="+ids[2], nil)
	if w.Code != http.StatusFound || w.Header().Get("Location") != "https://www.credential.net/"+ids[2] {
		t.Errorf("redirect: %d to %q", w.Code, w.Header().Get("Location"))
	}
	notFound("GET", "/v1/issuer/credential_redirect?id=nobody", nil)
	an := ok("POST", "/v1/credentials/analytics/{id}", "/v1/credentials/analytics/"+ids[0], nil, 200)["analytics"].([]any)
	if len(an) == 0 || an[0].(map[string]any)["event"] != "issued" {
		t.Errorf("analytics %v", an)
	}
	if link := ok("POST", "/v1/sso/generate_link", "/v1/sso/generate_link", map[string]any{"recipient_email": "M001@example.org"}, 200)["link"].(string); !strings.Contains(link, "sso_token=") {
		t.Errorf("sso link %q", link)
	}
	notFound("POST", "/v1/sso/generate_link", map[string]any{"recipient_email": "nobody@example.org"})

	// Blockchain receipts only for a group that records on one.
	if w := call(t, s, "GET", "/v1/credentials/blockchain_data/"+ids[0], nil); w.Code != http.StatusUnprocessableEntity {
		t.Errorf("blockchain data of an off-chain credential: %d", w.Code)
	}
	for _, g := range s.groups {
		g.blockchain = true
	}
	ok("GET", "/v1/credentials/blockchain_data/{id}", "/v1/credentials/blockchain_data/"+ids[0], nil, 200)
	ok("GET", "/v2/credentials/{id}/blockchain_data", "/v2/credentials/"+ids[0]+"/blockchain_data", nil, 200)

	// Groups: clone with a new name; the old name is taken.
	clone := ok("POST", "/v1/issuer/groups/{group_id}/clone", "/v1/issuer/groups/100001/clone", map[string]any{"group": map[string]any{"name": "Annual Membership 2027"}}, 200)["group"].(map[string]any)
	if clone["course_name"] != "Annual Membership" || clone["id"].(float64) == 100001 {
		t.Errorf("clone %v", clone)
	}
	if w := call(t, s, "POST", "/v1/issuer/groups/100001/clone", map[string]any{"group": map[string]any{}}); w.Code != http.StatusUnprocessableEntity {
		t.Errorf("a clone under the same name: %d", w.Code)
	}
	ok("GET", "/v1/skill_categories", "/v1/skill_categories", nil, 200)
	rows := ok("GET", "/v1/analytics", "/v1/analytics?group_id=100001", nil, 200)["analytics"].([]any)
	if len(rows) != 1 || rows[0].(map[string]any)["credentials_issued"].(float64) < 1 {
		t.Errorf("analytics rows %v", rows)
	}

	// Collections: create, update with groups, search, delete.
	col := ok("POST", "/v1/collections", "/v1/collections", map[string]any{"collection": map[string]any{"name": "Membership", "public": true}}, 200)["collection"].(map[string]any)
	colID := col["id"].(string)
	ok("PUT", "/v1/collections/{collection_id}", "/v1/collections/"+colID, map[string]any{"collection": map[string]any{"name": "Membership", "groups": []any{map[string]any{"id": 100001}}}}, 200)
	found := ok("POST", "/v1/collections/search", "/v1/collections/search", map[string]any{"query": map[string]any{"name": "member"}}, 200)["collections"].([]any)
	if len(found) != 1 || found[0].(map[string]any)["groups_count"].(float64) != 1 {
		t.Errorf("collections search %v", found)
	}
	ok("DELETE", "/v1/collections/{collection_id}", "/v1/collections/"+colID, nil, 200)
	notFound("DELETE", "/v1/collections/"+colID, nil)

	// Designs: copy, preview, the designers.
	var designID string
	for id := range s.designs {
		designID = strconv.FormatInt(id, 10)
		break
	}
	cp := ok("POST", "/v1/designs/{design_id}/copy", "/v1/designs/"+designID+"/copy", map[string]any{"design": map[string]any{"department_id": dep}}, 200)["design"].(map[string]any)
	if strconv.FormatFloat(cp["id"].(float64), 'f', -1, 64) == designID {
		t.Errorf("a copy kept the id")
	}
	ok("POST", "/v1/designs/{design_id}/preview", "/v1/designs/"+designID+"/preview", map[string]any{"recipient.name": "Ann"}, 200)
	notFound("POST", "/v1/designs/1/preview", map[string]any{})
	ini := ok("POST", "/v1/designers/badge/initialize", "/v1/designers/badge/initialize", map[string]any{"department_id": dep}, 200)
	if newID := int64(ini["design_id"].(float64)); s.designs[newID] == nil || s.designs[newID].kind != "badge" {
		t.Errorf("the badge designer made no badge design: %v", ini)
	}
	if w := call(t, s, "POST", "/v1/designers/badge/initialize", map[string]any{"design_id": cp["id"]}); w.Code != http.StatusUnprocessableEntity {
		t.Errorf("badge designer on a certificate design: %d", w.Code)
	}
	ok("POST", "/v1/designers/certificate/initialize", "/v1/designers/certificate/initialize", map[string]any{"design_id": cp["id"]}, 200)

	// Attribute keys, data exports, team members.
	ok("POST", "/v1/attribute_keys", "/v1/attribute_keys", map[string]any{"attribute_key": map[string]any{"name": "Member number", "kind": "text", "department_id": dep}}, 200)
	if w := call(t, s, "POST", "/v1/attribute_keys", map[string]any{"attribute_key": map[string]any{"name": "member NUMBER", "kind": "text", "department_id": dep}}); w.Code != http.StatusUnprocessableEntity {
		t.Errorf("a duplicate attribute key: %d", w.Code)
	}
	keys := ok("POST", "/v1/attribute_keys/search", "/v1/attribute_keys/search", map[string]any{"name": "member"}, 200)["attribute_keys"].([]any)
	if len(keys) != 1 {
		t.Errorf("attribute keys %v", keys)
	}
	ex := ok("POST", "/v1/data_exports", "/v1/data_exports", map[string]any{"data_export": map[string]any{"entity": "credentials", "department_id": dep}}, 201)
	exID := strconv.FormatFloat(ex["id"].(float64), 'f', -1, 64)
	if ex["status"] != "completed" || len(ex["urls"].([]any)) == 0 {
		t.Errorf("export %v", ex)
	}
	ok("GET", "/v1/data_exports/{id}", "/v1/data_exports/"+exID, nil, 200)
	if l := ok("GET", "/v1/data_exports", "/v1/data_exports", nil, 200)["data_exports"].([]any); len(l) != 1 {
		t.Errorf("exports %v", l)
	}
	perm := map[string]any{"designs": true, "emails": false, "credential_attributes": true, "analytics": true, "settings": false, "role": "editor", "groups": []any{100001}}
	tm := ok("POST", "/v1/team_members", "/v1/team_members", map[string]any{"team_member": map[string]any{"name": "Jo Admin", "email": "jo@example.org",
		"department_permissions": []any{map[string]any{"department_id": dep, "permissions": perm}}}}, 200)["team_member"].(map[string]any)
	tmID := strconv.FormatFloat(tm["id"].(float64), 'f', -1, 64)
	ok("GET", "/v1/team_members/{id}", "/v1/team_members/"+tmID, nil, 200)
	ok("PUT", "/v1/team_members/{id}", "/v1/team_members/"+tmID, map[string]any{"team_member": map[string]any{"name": "Jo Editor"}}, 200)
	if w := call(t, s, "POST", "/v1/team_members", map[string]any{"team_member": map[string]any{"name": "Again", "email": "JO@example.org"}}); w.Code != http.StatusUnprocessableEntity {
		t.Errorf("a second member with the same email: %d", w.Code)
	}
	ok("DELETE", "/v1/team_members/{id}", "/v1/team_members/"+tmID, nil, 200)
	notFound("GET", "/v1/team_members/"+tmID, nil)
}
