package sandbox

import (
	"bytes"
	"net/http/httptest"
	"testing"
)

// FuzzSearchV2 sends arbitrary bodies to the v2 search: the answer is a
// result or the API's 400 invalid_search_query, never a panic or a 500.
func FuzzSearchV2(f *testing.F) {
	for _, seed := range []string{
		`{"query":{}}`,
		`{"query":{"group.id[in]":[1,"2"],"updated_at[gte]":"2026-03-01T09:00:00Z"},"sort":{"updated_at":"asc"},"page":{"cursor":"WzEwXQ==","size":5}}`,
		`{"query":{"meta_data":{"k":"v"},"approve":true,"issued_on[lt]":"2027-01-01"},"page":{"from":3,"size":2}}`,
		`{"query":{"recipient_email[in]":"x"},"sort":{"id":"up"}}`,
		`{"query":[]}`, `[]`, `null`, `{`,
	} {
		f.Add([]byte(seed))
	}
	s, clk := newSeeded(f)
	issueN(f, s, clk, 5)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/v2/credentials/search", bytes.NewReader(body))
		r.Header.Set("Authorization", "Token token="+DemoKey)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != 200 && w.Code != 400 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if w.Code == 400 && !bytes.Contains(w.Body.Bytes(), []byte(`"status":"invalid_search_query"`)) {
			t.Fatalf("400 without the API's body for %q: %s", body, w.Body)
		}
	})
}

// FuzzWrites sends arbitrary bodies to the write endpoints: bad input is
// a 4xx in the API's own shape, never a panic or a 500.
func FuzzWrites(f *testing.F) {
	paths := []string{"/v1/credentials", "/v2/credentials/bulk_create", "/v1/credentials/bulk_create", "/v1/issuer/groups",
		"/v1/credentials/search", "/v1/issuer/groups/search", "/v1/departments", "/v1/designs"}
	for i, seed := range []string{
		`{"credential":{"recipient":{"name":"A","email":"a@example.org"},"group_id":100001,"issued_on":"2026-01-01","evidence_items":[{"description":"x","category":"url"}]}}`,
		`{"credentials":[{"recipient":{"name":"A","email":"a@example.org"},"group_id":"100002"},{"credential":{}}]}`,
		`{"credentials":[1,null,"x"]}`,
		`{"group":{"name":"G","course_name":"C","course_description":"D","learning_outcomes":[1,{}]}}`,
		`{"recipient":{"email":"a@example.org"},"page":"2","page_size":0}`,
		`{"ids":[1,"x"],"start_updated_date":"nope"}`,
		`{"department":{"name":1,"url":[],"logo":{}}}`,
		`{"design":{"name":"D","kind":"badge","department_id":"x"}}`,
	} {
		f.Add(uint8(i), []byte(seed))
	}
	s, _ := newSeeded(f)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := paths[int(which)%len(paths)]
		r := httptest.NewRequest("POST", path, bytes.NewReader(body))
		r.Header.Set("Authorization", "Token token="+DemoKey)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s", path, body, w.Code, w.Body)
		}
	})
}
