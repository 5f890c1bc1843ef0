package sandbox

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// callRaw sends body as it is, so that a test can send broken JSON.
func callRaw(s *Server, method, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Token token="+DemoKey)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// idText is an id of an answer, a JSON number or string, as a path segment.
func idText(v any) string {
	if n, ok := v.(float64); ok {
		return fmt.Sprint(int64(n))
	}
	return fmt.Sprint(v)
}

// TestResourceRoutesAnswerErrorsAsTheAPI covers the error answers of the
// shared create/get/update/delete routes: broken JSON before an unknown
// id, each resource's own 404 body, the conflicts of groups, and the
// items of an unknown credential.
func TestResourceRoutesAnswerErrorsAsTheAPI(t *testing.T) {
	s, _ := newSeeded(t)
	group := decode(t, call(t, s, "GET", "/v1/issuer/groups/100001", nil))["group"].(map[string]any)
	w := call(t, s, "POST", "/v1/credentials", map[string]any{"credential": map[string]any{
		"group_id": 100001, "recipient": map[string]any{"name": "Ann Lee", "email": "ann@example.org"}}})
	if w.Code != 200 {
		t.Fatalf("create credential: %d %s", w.Code, w.Body)
	}
	cred := idText(decode(t, w)["credential"].(map[string]any)["id"])
	w = call(t, s, "POST", "/v1/credentials/"+cred+"/evidence_items", map[string]any{"evidence_item": map[string]any{"description": "Grade", "category": "grade"}})
	if w.Code != 200 {
		t.Fatalf("create evidence item: %d %s", w.Code, w.Body)
	}
	evidence := idText(decode(t, w)["evidence_item"].(map[string]any)["id"])

	const (
		groupMissing = `{"data":"Group does not exist","success":false}`
		missing      = `{"error":"Not found"}`
		noCredential = `{"errors":"Doesn't exist"}`
	)
	cases := []struct {
		name         string
		method, path string
		body         string
		status       int
		want         string // the whole body, or its start when it ends in "*"
	}{
		{"create group, broken JSON", "POST", "/v1/issuer/groups", `{"group":`, 400, `{"errors":"Invalid JSON: *`},
		{"update unknown group, broken JSON", "PUT", "/v1/issuer/groups/9", `{`, 400, `{"errors":"Invalid JSON: *`},
		{"get unknown group", "GET", "/v1/issuer/groups/9", ``, 404, groupMissing},
		{"update unknown group", "PUT", "/v1/issuer/groups/9", `{"group":{"name":"x"}}`, 404, groupMissing},
		{"delete unknown group", "DELETE", "/v1/issuer/groups/9", ``, 404, groupMissing},
		{"group name taken", "POST", "/v1/issuer/groups", fmt.Sprintf(`{"group":{"name":%q,"course_name":"c","course_description":"d"}}`, group["name"]),
			422, `{"errors":{"name":["has already been taken"]}}`},
		{"group blank fields", "PUT", "/v1/issuer/groups/100001", `{"group":{"course_name":" "}}`, 422, `{"errors":{"course_name":["can't be blank"]}}`},
		{"group with credentials", "DELETE", "/v1/issuer/groups/100001", ``, 422, `{"errors":"Group has credentials and cannot be deleted"}`},
		{"get unknown department", "GET", "/v1/departments/9", ``, 404, missing},
		{"update unknown department", "PUT", "/v1/departments/9", `{}`, 404, missing},
		{"delete unknown design", "DELETE", "/v1/designs/9", ``, 404, missing},
		{"evidence of unknown credential", "POST", "/v1/credentials/1/evidence_items", `{}`, 404, noCredential},
		{"evidence of unknown credential, broken JSON", "POST", "/v1/credentials/1/evidence_items", `[`, 400, `{"errors":"Invalid JSON: *`},
		{"get evidence of unknown credential", "GET", "/v1/credentials/1/evidence_items/" + evidence, ``, 404, noCredential},
		{"unknown evidence item", "PUT", "/v1/credentials/" + cred + "/evidence_items/9", `{}`, 404, missing},
		{"invalid evidence update", "PUT", "/v1/credentials/" + cred + "/evidence_items/" + evidence, `{"evidence_item":{"category":"poem"}}`,
			422, `{"errors":{"category":["is not included in the list"]}}`},
		{"unknown reference", "DELETE", "/v1/credentials/" + cred + "/references/9", ``, 404, missing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := callRaw(s, c.method, c.path, c.body)
			got := strings.TrimSpace(w.Body.String())
			ok := got == c.want
			if prefix, open := strings.CutSuffix(c.want, "*"); open {
				ok = strings.HasPrefix(got, prefix)
			}
			if w.Code != c.status || !ok {
				t.Errorf("got %d %s\nwant %d %s", w.Code, got, c.status, c.want)
			}
		})
	}

	// The refused changes left everything as it was.
	if g := decode(t, call(t, s, "GET", "/v1/issuer/groups/100001", nil))["group"].(map[string]any); g["course_name"] != group["course_name"] {
		t.Errorf("a refused update changed the group's course_name to %v", g["course_name"])
	}
	e := decode(t, call(t, s, "GET", "/v1/credentials/"+cred+"/evidence_items/"+evidence, nil))["evidence_item"].(map[string]any)
	if e["type"] != "grade" {
		t.Errorf("a refused update changed the evidence item's category to %v", e["type"])
	}
}
