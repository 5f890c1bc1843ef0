package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors/openapi"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

var (
	docOnce sync.Once
	doc     *openapi.Document
	docErr  error
)

func document(t testing.TB) *openapi.Document {
	t.Helper()
	docOnce.Do(func() {
		data, err := os.ReadFile("../openapi.json")
		if err != nil {
			docErr = err
			return
		}
		doc, docErr = openapi.Load(data)
	})
	if docErr != nil {
		t.Fatal(docErr)
	}
	return doc
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func newSeeded(t testing.TB) (*Server, *clock) {
	clk := &clock{t: t0}
	s := New(sandboxkit.Options{Now: clk.now, RateLimit: &sandboxkit.Limit{}})
	s.Seed(sandboxkit.Seed{Seed: 1, Now: t0})
	return s, clk
}

func call(t testing.TB, s http.Handler, method, path string, body any) *httptest.ResponseRecorder {
	t.Helper()
	return callKey(t, s, method, path, body, "Token token="+DemoKey)
}

func callKey(t testing.TB, s http.Handler, method, path string, body any, auth string) *httptest.ResponseRecorder {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	r := httptest.NewRequest(method, path, rd)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func decode(t testing.TB, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %s", w.Code, err, w.Body.String())
	}
	return m
}

// validated checks the answer against the document.
func validated(t testing.TB, method, template string, w *httptest.ResponseRecorder) {
	t.Helper()
	if err := document(t).ValidateResponse(method, template, w.Code, w.Body.Bytes()); err != nil {
		t.Errorf("answer does not match the document: %v", err)
	}
}

func issueBody(email, name string, group int) map[string]any {
	return map[string]any{"credential": map[string]any{
		"recipient": map[string]any{"name": name, "email": email, "id": "M-" + name},
		"group_id":  group,
	}}
}

func TestAuth(t *testing.T) {
	s, _ := newSeeded(t)
	cases := []struct {
		name   string
		header string
		status int
	}{
		{"right key", "Token token=" + DemoKey, 200},
		{"quoted key", `Token token="` + DemoKey + `"`, 200},
		{"wrong key", "Token token=nope", 401},
		{"bearer scheme", "Bearer " + DemoKey, 401},
		{"no header", "", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := callKey(t, s, "GET", "/v1/issuer/details", nil, tc.header)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if tc.status == 401 && w.Body.String() != "HTTP Token: Access denied.\n" {
				t.Errorf("401 body %q, want the plain-text Rails answer", w.Body.String())
			}
		})
	}
}

func TestCreateGetUpdateDelete(t *testing.T) {
	s, clk := newSeeded(t)
	w := call(t, s, "POST", "/v1/credentials", issueBody("ada@example.org", "Ada", 100001))
	if w.Code != 200 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	validated(t, "POST", "/v1/credentials", w)
	c := decode(t, w)["credential"].(map[string]any)
	id := c["id"].(string)
	if c["url"] != "https://www.credential.net/"+id || c["group_name"] != "Annual Membership Certificate" || c["approve"] != true {
		t.Errorf("credential = %v", c)
	}
	if c["issued_on"] != "2026-03-01" {
		t.Errorf("issued_on defaults to today: %v", c["issued_on"])
	}

	w = call(t, s, "GET", "/v1/credentials/"+id, nil)
	validated(t, "GET", "/v1/credentials/{id}", w)

	clk.add(time.Minute)
	w = call(t, s, "PUT", "/v1/credentials/"+id, map[string]any{"credential": map[string]any{"expired_on": "2027-03-01", "recipient": map[string]any{"phone_number": "+441234"}}})
	if w.Code != 200 {
		t.Fatalf("update: %d %s", w.Code, w.Body)
	}
	u := decode(t, w)["credential"].(map[string]any)
	rec := u["recipient"].(map[string]any)
	if u["expired_on"] != "2027-03-01" || rec["name"] != "Ada" || rec["phone_number"] != "+441234" {
		t.Errorf("partial update lost or missed fields: %v", u)
	}

	w = call(t, s, "DELETE", "/v1/credentials/"+id, nil)
	if w.Code != 200 || decode(t, w)["credential"].(map[string]any)["id"] != id {
		t.Fatalf("delete answers the deleted object: %d %s", w.Code, w.Body)
	}
	validated(t, "DELETE", "/v1/credentials/{id}", w)
	w = call(t, s, "GET", "/v1/credentials/"+id, nil)
	if w.Code != 404 || strings.TrimSpace(w.Body.String()) != `{"errors":"Doesn't exist"}` {
		t.Errorf("after delete: %d %s", w.Code, w.Body)
	}
}

func TestErrorBodies(t *testing.T) {
	s, _ := newSeeded(t)
	cases := []struct {
		name, method, path string
		body               any
		status             int
		want               string
	}{
		{"no recipient", "POST", "/v1/credentials", map[string]any{"credential": map[string]any{"group_id": 100001}}, 422, `{"errors":"Can not create credential without recipient data"}`},
		{"unknown group", "POST", "/v1/credentials", issueBody("a@example.org", "A", 42), 422, `{"errors":"Invalid Group"}`},
		{"blank email", "POST", "/v1/credentials", issueBody("", "A", 100001), 422, `{"errors":{"recipient.email":["can't be blank"]}}`},
		{"missing credential", "GET", "/v1/credentials/99", nil, 404, `{"errors":"Doesn't exist"}`},
		{"missing group", "GET", "/v1/issuer/groups/7", nil, 404, `{"data":"Group does not exist","success":false}`},
		{"unknown endpoint", "GET", "/v1/no_such_endpoint", nil, 404, `{"error":"Not found"}`},
		{"group without course", "POST", "/v1/issuer/groups", map[string]any{"group": map[string]any{"name": "X"}}, 422, `{"errors":{"course_description":["can't be blank"],"course_name":["can't be blank"]}}`},
		{"bad search operator", "POST", "/v2/credentials/search", map[string]any{"query": map[string]any{"recipient_email[gt]": "a"}}, 400, `{"code":400,"errors":{},"message":"Operation gt is not supported for recipient_email","status":"invalid_search_query"}`},
		{"bad sort order", "POST", "/v2/credentials/search", map[string]any{"query": map[string]any{}, "sort": map[string]any{"id": "increasing"}}, 400, `{"code":400,"errors":{},"message":"Sort order increasing is not supported","status":"invalid_search_query"}`},
		{"offset past 10000", "POST", "/v2/credentials/search", map[string]any{"query": map[string]any{}, "page": map[string]any{"from": 9990, "size": 50}}, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := call(t, s, tc.method, tc.path, tc.body)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.want != "" {
				var got, want any
				_ = json.Unmarshal(w.Body.Bytes(), &got)
				_ = json.Unmarshal([]byte(tc.want), &want)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("body %s, want %s", w.Body, tc.want)
				}
			}
		})
	}
}

// issueN creates n credentials, one per minute, alternating groups.
func issueN(t testing.TB, s *Server, clk *clock, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		clk.add(time.Minute)
		// Numeric recipient ids: the document types recipient.id as a
		// number in listings (and as a string on create).
		b := issueBody(fmt.Sprintf("m%03d@example.org", i), fmt.Sprintf("Member %03d", i), 100001+i%2)
		b["credential"].(map[string]any)["recipient"].(map[string]any)["id"] = fmt.Sprint(1000 + i)
		w := call(t, s, "POST", "/v1/credentials", b)
		if w.Code != 200 {
			t.Fatalf("create %d: %d %s", i, w.Code, w.Body)
		}
		ids[i] = decode(t, w)["credential"].(map[string]any)["id"].(string)
	}
	return ids
}

func searchV2(t testing.TB, s *Server, body map[string]any) ([]map[string]any, map[string]any) {
	t.Helper()
	w := call(t, s, "POST", "/v2/credentials/search", body)
	if w.Code != 200 {
		t.Fatalf("search: %d %s", w.Code, w.Body)
	}
	validated(t, "POST", "/v2/credentials/search", w)
	m := decode(t, w)
	var items []map[string]any
	for _, it := range m["credentials"].([]any) {
		items = append(items, it.(map[string]any))
	}
	return items, m["meta"].(map[string]any)
}

func TestSearchV2(t *testing.T) {
	s, clk := newSeeded(t)
	s.allowUndocumented = true // timestamps and the updated_at sort key below
	issueN(t, s, clk, 7)
	cases := []struct {
		name  string
		query map[string]any
		sort  map[string]any
		want  []string // recipient emails in order
	}{
		{"by email", map[string]any{"recipient_email": "m003@example.org"}, nil, []string{"m003@example.org"}},
		{"by email, another case: an exact match", map[string]any{"recipient_email": "M003@example.org"}, nil, nil},
		{"by email in", map[string]any{"recipient_email[in]": []any{"m001@example.org", "m004@example.org"}}, nil, []string{"m001@example.org", "m004@example.org"}},
		{"by group and recipient id", map[string]any{"group.id": "100002", "recipient_id": "1005"}, nil, []string{"m005@example.org"}},
		{"group as number", map[string]any{"group.id[in]": []any{100002}}, nil, []string{"m001@example.org", "m003@example.org", "m005@example.org"}},
		{"updated since, newest first", map[string]any{"updated_at[gte]": "2026-03-01T09:05:00.000Z"}, map[string]any{"updated_at": "desc"}, []string{"m006@example.org", "m005@example.org", "m004@example.org"}},
		{"created before", map[string]any{"created_at[lt]": "2026-03-01T09:03:00Z"}, nil, []string{"m000@example.org", "m001@example.org"}},
		{"issued on the day", map[string]any{"issued_on": "2026-03-01", "recipient_name[in]": []any{"Member 002"}}, nil, []string{"m002@example.org"}},
		{"nothing", map[string]any{"recipient_email": "nobody@example.org"}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"query": tc.query}
			if tc.sort != nil {
				body["sort"] = tc.sort
			}
			items, meta := searchV2(t, s, body)
			var got []string
			for _, it := range items {
				got = append(got, it["recipient_email"].(string))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if int(meta["count"].(float64)) != len(tc.want) {
				t.Errorf("meta.count = %v", meta["count"])
			}
		})
	}
}

func TestSearchV2Pages(t *testing.T) {
	s, clk := newSeeded(t)
	ids := issueN(t, s, clk, 12)
	var got []string
	page := map[string]any{"from": 0, "size": 5}
	for range 10 {
		items, meta := searchV2(t, s, map[string]any{"query": map[string]any{}, "page": page})
		for _, it := range items {
			got = append(got, fmt.Sprint(int64(it["id"].(float64))))
		}
		c, _ := meta["cursor"].(string)
		if c == "" {
			break
		}
		page = map[string]any{"cursor": c, "size": 5}
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("cursor pages = %v, want %v", got, ids)
	}
}

func TestV1Listings(t *testing.T) {
	s, clk := newSeeded(t)
	issueN(t, s, clk, 5)
	w := call(t, s, "GET", "/v1/all_credentials?group_id=100001&page=2&page_size=2", nil)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	validated(t, "GET", "/v1/all_credentials", w)
	m := decode(t, w)
	meta := m["meta"].(map[string]any)
	if meta["current_page"] != 2.0 || meta["total_pages"] != 2.0 || meta["total_count"] != 3.0 || meta["prev_page"] != 1.0 {
		t.Errorf("meta = %v", meta)
	}
	if n := len(m["credentials"].([]any)); n != 1 {
		t.Errorf("page 2 of 3 by 2 has %d items", n)
	}
	w = call(t, s, "POST", "/v1/credentials/search", map[string]any{"recipient": map[string]any{"email": "m002@example.org"}})
	validated(t, "POST", "/v1/credentials/search", w)
	if m := decode(t, w); len(m["credentials"].([]any)) != 1 {
		t.Errorf("v1 search by nested email: %s", w.Body)
	}
}

func TestBulkCreateV2(t *testing.T) {
	good := func(i int) map[string]any {
		return map[string]any{"recipient": map[string]any{"name": "B", "email": fmt.Sprintf("b%d@example.org", i)}, "group_id": 100003}
	}
	bad := map[string]any{"recipient": map[string]any{"name": "", "email": "x@example.org"}, "group_id": 100003}
	cases := []struct {
		name    string
		credits int
		items   []any
		status  int
		codes   []string // per item: "" for a clean credential, else the error code
	}{
		{"all created", 10, []any{good(1), good(2)}, 200, []string{"", ""}},
		{"mixed", 10, []any{good(1), bad}, 207, []string{"", "credential_invalid"}},
		{"all failed", 10, []any{bad, bad}, 422, []string{"credential_invalid", "credential_invalid"}},
		{"too few credits", 1, []any{good(1), good(2)}, 207, []string{"", "insufficient_credits"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSeeded(t)
			s.SetCredits(tc.credits)
			w := call(t, s, "POST", "/v2/credentials/bulk_create", map[string]any{"credentials": tc.items})
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if w.Code != 200 {
				validated(t, "POST", "/v2/credentials/bulk_create", w)
			}
			res := decode(t, w)["results"].([]any)
			for i, r := range res {
				m := r.(map[string]any)
				code := ""
				// The endpoint's 207 and 422 schemas and examples put an
				// item's error under "errors", details as {property, message}.
				if _, ok := m["error"]; ok {
					t.Errorf("item %d: error under \"error\", the endpoint documents \"errors\": %v", i, m)
				}
				if e, ok := m["errors"].(map[string]any); ok {
					code = e["code"].(string)
					if d, ok := e["details"].([]any); ok {
						for _, it := range d {
							if dm := it.(map[string]any); dm["property"] == nil || dm["message"] == nil {
								t.Errorf("item %d: detail %v, want {property, message}", i, dm)
							}
						}
					} else if code == "credential_invalid" {
						t.Errorf("item %d: credential_invalid without details: %v", i, e)
					}
				}
				if code != tc.codes[i] {
					t.Errorf("item %d: code %q, want %q (%v)", i, code, tc.codes[i], m)
				}
				if code == "insufficient_credits" && m["credential"].(map[string]any)["approve"] != false {
					t.Errorf("unpublished credential should have approve false: %v", m)
				}
			}
		})
	}
	t.Run("more than 30", func(t *testing.T) {
		s, _ := newSeeded(t)
		items := make([]any, 31)
		for i := range items {
			items[i] = good(i)
		}
		if w := call(t, s, "POST", "/v2/credentials/bulk_create", map[string]any{"credentials": items}); w.Code != 422 {
			t.Errorf("31 items: %d", w.Code)
		}
	})
}

func TestCreditsLeaveUnpublished(t *testing.T) {
	s, _ := newSeeded(t)
	s.SetCredits(1)
	first := decode(t, call(t, s, "POST", "/v1/credentials", issueBody("a@example.org", "A", 100001)))["credential"].(map[string]any)
	second := decode(t, call(t, s, "POST", "/v1/credentials", issueBody("b@example.org", "B", 100001)))["credential"].(map[string]any)
	if first["approve"] != true || second["approve"] != false {
		t.Errorf("approve = %v, %v; want true, false", first["approve"], second["approve"])
	}
	if s.Credits() != 0 {
		t.Errorf("credits left %d", s.Credits())
	}
}

func TestRateLimitIsBare429(t *testing.T) {
	clk := &clock{t: t0}
	s := New(sandboxkit.Options{Now: clk.now, RateLimit: &sandboxkit.Limit{Requests: 3, Per: time.Minute}})
	for i := range 3 {
		if w := call(t, s, "GET", "/v1/issuer/details", nil); w.Code != 200 {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	w := call(t, s, "GET", "/v1/issuer/details", nil)
	if w.Code != 429 || w.Body.Len() != 0 || w.Header().Get("Retry-After") != "" || w.Header().Get("X-RateLimit-Remaining") != "" {
		t.Errorf("over the limit: %d %q %v", w.Code, w.Body, w.Header())
	}
	clk.add(time.Minute)
	if w := call(t, s, "GET", "/v1/issuer/details", nil); w.Code != 200 {
		t.Errorf("next window: %d", w.Code)
	}
}

func TestV1SearchStricterLimit(t *testing.T) {
	clk := &clock{t: t0}
	s := New(sandboxkit.Options{Now: clk.now})
	for i := range 100 {
		if w := call(t, s, "POST", "/v1/credentials/search", map[string]any{}); w.Code != 200 {
			t.Fatalf("search %d: %d", i, w.Code)
		}
	}
	if w := call(t, s, "POST", "/v1/credentials/search", map[string]any{}); w.Code != 429 {
		t.Errorf("101st v1 search in a minute: %d", w.Code)
	}
	if w := call(t, s, "POST", "/v2/credentials/search", map[string]any{"query": map[string]any{}}); w.Code != 200 {
		t.Errorf("v2 search is not limited by the v1 window: %d", w.Code)
	}
}

func TestFaultsDeterministic(t *testing.T) {
	run := func() []int {
		s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}, Faults: sandboxkit.Faults{FailRate: 0.4, Seed: 7}})
		var codes []int
		for range 20 {
			codes = append(codes, call(t, s, "GET", "/v1/issuer/details", nil).Code)
		}
		return codes
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed, different faults:\n%v\n%v", a, b)
	}
	if !strings.Contains(fmt.Sprint(a), "500") || !strings.Contains(fmt.Sprint(a), "200") {
		t.Errorf("want a mix of 200 and 500: %v", a)
	}
}

// TestUndocumentedSearchRefused: by default the sandbox offers what
// Accredible documents and nothing more.
func TestUndocumentedSearchRefused(t *testing.T) {
	s, clk := newSeeded(t)
	issueN(t, s, clk, 2)
	for _, body := range []map[string]any{
		{"query": map[string]any{}, "sort": map[string]any{"updated_at": "asc"}},
		{"query": map[string]any{"updated_at[gte]": "2026-03-01T09:05:00.000Z"}},
		{"query": map[string]any{"issued_on[lt]": "2026-03-01T00:00:00Z"}},
	} {
		w := call(t, s, "POST", "/v2/credentials/search", body)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "invalid_search_query") {
			t.Errorf("%v: %d %s, want 400 invalid_search_query", body, w.Code, w.Body)
		}
	}
	items, _ := searchV2(t, s, map[string]any{"query": map[string]any{"updated_at[gte]": "2026-03-01"}, "sort": map[string]any{"id": "desc"}})
	if len(items) != 2 {
		t.Errorf("documented date filter and sort key: %d items, want 2", len(items))
	}
}

func TestSeedMutateStats(t *testing.T) {
	s, clk := newSeeded(t)
	s.allowUndocumented = true // a timestamp filter below
	st := s.Stats()
	if st.Objects["groups"] != 3 || st.Objects["credentials"] != 0 {
		t.Fatalf("seeded objects = %v", st.Objects)
	}
	w := call(t, s, "GET", "/v1/issuer/all_groups", nil)
	validated(t, "GET", "/v1/issuer/all_groups", w)
	var names []string
	for _, g := range decode(t, w)["groups"].([]any) {
		m := g.(map[string]any)
		names = append(names, fmt.Sprintf("%v:%v", m["id"], m["name"]))
	}
	want := "[100001:Annual Membership Certificate 100002:CPD Completion 100003:Event Attendance Badge]"
	if fmt.Sprint(names) != want {
		t.Errorf("groups %v, want %s", names, want)
	}

	out, err := s.Mutate(sandboxkit.Mutation{Kind: MutateIssueCredential, Count: 3, Args: map[string]any{"group_id": 100002.0}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out["issued"].([]int64)) != 3 || s.Stats().Objects["credentials"] != 3 {
		t.Errorf("issue_credential: %v, stats %v", out, s.Stats().Objects)
	}
	clk.add(time.Hour)
	out, err = s.Mutate(sandboxkit.Mutation{Kind: MutateUpdateCredential, Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	items, _ := searchV2(t, s, map[string]any{"query": map[string]any{"updated_at[gte]": "2026-03-01T10:00:00Z"}})
	if len(items) != 2 || len(out["updated"].([]int64)) != 2 {
		t.Errorf("update_credential touched %d credentials: %v", len(items), out)
	}
	if _, err := s.Mutate(sandboxkit.Mutation{Kind: "become_eligible"}); err == nil || !strings.Contains(err.Error(), "update_credential") {
		t.Errorf("unknown kind: %v", err)
	}

	// Same seed, same mutations: same answers.
	s2, _ := newSeeded(t)
	out2, _ := s2.Mutate(sandboxkit.Mutation{Kind: MutateIssueCredential, Count: 3, Args: map[string]any{"group_id": 100002.0}})
	a := decode(t, call(t, s, "GET", fmt.Sprintf("/v1/credentials/%d", out2["issued"].([]int64)[0]), nil))["credential"].(map[string]any)["recipient"]
	b := decode(t, call(t, s2, "GET", fmt.Sprintf("/v1/credentials/%d", out2["issued"].([]int64)[0]), nil))["credential"].(map[string]any)["recipient"]
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("seeded mutations differ: %v vs %v", a, b)
	}
}

func TestStatsDuplicates(t *testing.T) {
	s, _ := newSeeded(t)
	for _, b := range []map[string]any{
		issueBody("dup@example.org", "D", 100001),
		issueBody("DUP@example.org", "D", 100001),
		issueBody("dup@example.org", "D", 100002), // another group: not a duplicate
	} {
		call(t, s, "POST", "/v1/credentials", b)
	}
	if d := s.Stats().Duplicates["credentials"]; d != 1 {
		t.Errorf("duplicates = %d, want 1", d)
	}
	if r := s.Stats().Requests["POST /v1/credentials"]; r != 3 {
		t.Errorf("route counter = %d", r)
	}
}

func TestEvidenceReferencesDepartmentsDesigns(t *testing.T) {
	s, _ := newSeeded(t)
	id := decode(t, call(t, s, "POST", "/v1/credentials", issueBody("e@example.org", "E", 100001)))["credential"].(map[string]any)["id"].(string)

	w := call(t, s, "POST", "/v1/credentials/"+id+"/evidence_items", map[string]any{"evidence_item": map[string]any{"description": "Final grade", "category": "grade", "string_object": "83"}})
	validated(t, "POST", "/v1/credentials/{credential_id}/evidence_items", w)
	ev := decode(t, w)["evidence_item"].(map[string]any)
	evPath := fmt.Sprintf("/v1/credentials/%s/evidence_items/%v", id, ev["id"])
	if w := call(t, s, "PUT", evPath, map[string]any{"evidence_item": map[string]any{"description": "Final grade (resit)"}}); decode(t, w)["evidence_item"].(map[string]any)["description"] != "Final grade (resit)" {
		t.Errorf("evidence update: %s", w.Body)
	}
	if w := call(t, s, "POST", "/v1/credentials/"+id+"/evidence_items", map[string]any{"evidence_item": map[string]any{"description": "x", "category": "poem"}}); w.Code != 422 {
		t.Errorf("bad category: %d", w.Code)
	}

	w = call(t, s, "POST", "/v1/credentials/"+id+"/references", map[string]any{"reference": map[string]any{"description": "Great", "relationship": "managed", "referee": map[string]any{"name": "Jo"}}})
	validated(t, "POST", "/v1/credentials/{credential_id}/references", w)
	ref := decode(t, w)["reference"].(map[string]any)
	cred := decode(t, call(t, s, "GET", "/v1/credentials/"+id, nil))["credential"].(map[string]any)
	if len(cred["evidence_items"].([]any)) != 1 || len(cred["references"].([]any)) != 1 {
		t.Errorf("credential shows %v", cred)
	}
	if w := call(t, s, "DELETE", fmt.Sprintf("/v1/credentials/%s/references/%v", id, ref["id"]), nil); w.Code != 200 {
		t.Errorf("reference delete: %d", w.Code)
	}
	if w := call(t, s, "DELETE", evPath, nil); w.Code != 200 {
		t.Errorf("evidence delete: %d", w.Code)
	}
	if w := call(t, s, "GET", evPath, nil); w.Code != 404 {
		t.Errorf("deleted evidence: %d", w.Code)
	}

	w = call(t, s, "POST", "/v1/departments", map[string]any{"department": map[string]any{"name": "Physics", "url": "https://x.example", "logo": "https://x.example/l.png", "meta_data": map[string]any{"faculty": "physics"}}})
	validated(t, "POST", "/v1/departments", w)
	w = call(t, s, "POST", "/v1/departments/search", map[string]any{"meta_data": map[string]any{"faculty": "physics"}})
	if deps := decode(t, w)["departments"].([]any); len(deps) != 1 {
		t.Errorf("department search: %s", w.Body)
	}
	w = call(t, s, "POST", "/v1/designs", map[string]any{"design": map[string]any{"name": "Gold", "kind": "badge", "encoded_content": "00"}})
	if w.Code != 200 {
		t.Fatalf("design: %d %s", w.Code, w.Body)
	}
	if designs := decode(t, call(t, s, "POST", "/v1/designs/search", map[string]any{"kind": "badge"}))["designs"].([]any); len(designs) != 1 {
		t.Errorf("design search found %d", len(designs))
	}
	w = call(t, s, "GET", "/v1/issuer/groups/100001", nil)
	validated(t, "GET", "/v1/issuer/groups/{group_id}", w)
	w = call(t, s, "POST", "/v1/issuer/groups/search", map[string]any{"name": "CPD"})
	validated(t, "POST", "/v1/issuer/groups/search", w)
	if g := decode(t, w)["groups"].([]any); len(g) != 1 {
		t.Errorf("group search by name: %s", w.Body)
	}
	w = call(t, s, "GET", "/v1/issuer/details", nil)
	validated(t, "GET", "/v1/issuer/details", w)
}

// The poller's query must not scan every credential: at 100,000
// credentials a look-up by email or a poll of recent updates reads only
// the candidates its index gives.
func TestSearchUsesIndexes(t *testing.T) {
	st := newCredentialStore()
	for i := range 100_000 {
		st.insert(credential{groupID: 100001 + int64(i%3), recipientEmail: fmt.Sprintf("m%d@example.org", i), recipientID: fmt.Sprint(i), issuedOn: "2026-01-01"}, t0.Add(time.Duration(i)*time.Millisecond))
	}
	cases := []struct {
		name  string
		query map[string]any
		max   int
	}{
		{"email and group", map[string]any{"recipient_email": "m500@example.org", "group.id": "100003"}, 1},
		{"recipient id", map[string]any{"recipient_id[in]": []any{"1", "2"}}, 2},
		{"recent updates", map[string]any{"updated_at[gte]": formatStamp(t0.Add(99_990 * time.Millisecond).UnixMilli())}, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			preds, err := parseQuery(tc.query, false)
			if err != nil {
				t.Fatal(err)
			}
			if l, _ := st.candidates(preds, "id"); len(l) > tc.max {
				t.Errorf("%d candidates, want at most %d", len(l), tc.max)
			}
		})
	}
}

func TestServesOverHTTP(t *testing.T) {
	s, _ := newSeeded(t)
	srv := httptest.NewServer(s)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/issuer/groups/100001", nil)
	req.Header.Set("Authorization", "Token token="+DemoKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

// The ordered fast path (candidates already in updated_at or id order)
// pages exactly like sorting every match would.
func TestSearchOrderedPathMatchesSort(t *testing.T) {
	st := newCredentialStore()
	for i := range 500 {
		// Runs of equal timestamps, as a burst of issues makes.
		st.insert(credential{groupID: 100001 + int64(i%3), recipientEmail: fmt.Sprintf("m%d@example.org", i)}, t0.Add(time.Duration(i/7)*time.Millisecond))
	}
	name := func(int64) string { return "" }
	for _, tc := range []struct {
		key  string
		desc bool
	}{{"updated_at", false}, {"updated_at", true}, {"id", false}, {"id", true}, {"created_at", false}} {
		t.Run(fmt.Sprintf("%s desc=%v", tc.key, tc.desc), func(t *testing.T) {
			preds, _ := parseQuery(map[string]any{"group.id[in]": []any{"100001", "100003"}}, false)
			if tc.key == "updated_at" {
				preds, _ = parseQuery(map[string]any{"updated_at[gte]": formatStamp(t0.Add(3 * time.Millisecond).UnixMilli())}, false)
			}
			var got []int32
			for from := 0; ; from += 37 {
				page, count := st.search(preds, tc.key, tc.desc, from, 37, name)
				got = append(got, page...)
				if from+37 >= count {
					break
				}
			}
			// Every match, sorted with id tie-breaks.
			var want []int32
			for i := range st.creds {
				ok := true
				for j := range preds {
					if !preds[j].matches(&st.creds[i], name) {
						ok = false
					}
				}
				if ok {
					want = append(want, int32(i))
				}
			}
			sort.SliceStable(want, func(i, j int) bool {
				a, b := &st.creds[want[i]], &st.creds[want[j]]
				ka, kb := a.id, b.id
				if tc.key == "updated_at" && a.updatedAt != b.updatedAt {
					ka, kb = a.updatedAt, b.updatedAt
				}
				if tc.desc {
					return ka > kb
				}
				return ka < kb
			})
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("paged %d results differ from the sorted %d", len(got), len(want))
			}
		})
	}
}

// Each CRUD resource answers create, read, partial update, bad update,
// delete and then 404, with its own bodies.
func TestResourceLifecycles(t *testing.T) {
	cases := []struct {
		name, base, key string
		create, update  map[string]any
		bad             map[string]any
		missing         string
	}{
		{"group", "/v1/issuer/groups", "group",
			map[string]any{"name": "Gold", "course_name": "Gold tier", "course_description": "For gold members"},
			map[string]any{"course_name": "Gold tier 2026"}, map[string]any{"name": ""},
			`{"data":"Group does not exist","success":false}`},
		{"department", "/v1/departments", "department",
			map[string]any{"name": "Physics", "url": "https://p.example.org", "logo": "https://p.example.org/l.png"},
			map[string]any{"description": "Faculty of physics"}, map[string]any{"logo": ""},
			`{"error":"Not found"}`},
		{"design", "/v1/designs", "design",
			map[string]any{"name": "Gold badge", "kind": "badge", "encoded_content": "00"},
			map[string]any{"orientation": "portrait"}, map[string]any{"kind": "poster"},
			`{"error":"Not found"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSeeded(t)
			w := call(t, s, "POST", tc.base, map[string]any{tc.key: tc.create})
			if w.Code != 200 {
				t.Fatalf("create: %d %s", w.Code, w.Body)
			}
			id := fmt.Sprint(int64(decode(t, w)[tc.key].(map[string]any)["id"].(float64)))
			path := tc.base + "/" + id
			w = call(t, s, "PUT", path, map[string]any{tc.key: tc.update})
			got := decode(t, w)[tc.key].(map[string]any)
			for k, v := range tc.update {
				if got[k] != v {
					t.Errorf("update: %s = %v, want %v", k, got[k], v)
				}
			}
			if got["name"] != tc.create["name"] {
				t.Errorf("partial update lost the name: %v", got)
			}
			if w := call(t, s, "PUT", path, map[string]any{tc.key: tc.bad}); w.Code != 422 {
				t.Errorf("bad update: %d %s", w.Code, w.Body)
			}
			if w := call(t, s, "DELETE", path, nil); w.Code != 200 {
				t.Errorf("delete: %d %s", w.Code, w.Body)
			}
			w = call(t, s, "GET", path, nil)
			var gotBody, want any
			_ = json.Unmarshal(w.Body.Bytes(), &gotBody)
			_ = json.Unmarshal([]byte(tc.missing), &want)
			if w.Code != 404 || fmt.Sprint(gotBody) != fmt.Sprint(want) {
				t.Errorf("after delete: %d %s", w.Code, w.Body)
			}
		})
	}
	t.Run("group with credentials", func(t *testing.T) {
		s, _ := newSeeded(t)
		call(t, s, "POST", "/v1/credentials", issueBody("a@example.org", "A", 100002))
		if w := call(t, s, "DELETE", "/v1/issuer/groups/100002", nil); w.Code != 422 {
			t.Errorf("deleting a group in use: %d", w.Code)
		}
	})
	t.Run("duplicate group name", func(t *testing.T) {
		s, _ := newSeeded(t)
		w := call(t, s, "POST", "/v1/issuer/groups", map[string]any{"group": map[string]any{"name": "CPD Completion", "course_name": "x", "course_description": "y"}})
		if w.Code != 422 {
			t.Errorf("duplicate name: %d", w.Code)
		}
	})
	t.Run("all_groups filters and pages", func(t *testing.T) {
		s, _ := newSeeded(t)
		w := call(t, s, "GET", "/v1/issuer/all_groups?page=2&page_size=2", nil)
		m := decode(t, w)
		if len(m["groups"].([]any)) != 1 || m["meta"].(map[string]any)["total_count"] != 3.0 {
			t.Errorf("page 2: %s", w.Body)
		}
		w = call(t, s, "GET", "/v1/issuer/all_groups?name=badge", nil)
		if g := decode(t, w)["groups"].([]any); len(g) != 1 {
			t.Errorf("by name: %s", w.Body)
		}
		if w := call(t, s, "GET", "/v1/issuer/all_groups?page_size=500", nil); w.Code != 422 {
			t.Errorf("page_size 500: %d", w.Code)
		}
		w = call(t, s, "GET", "/v1/designs", nil)
		if d := decode(t, w)["designs"].([]any); len(d) != 3 {
			t.Errorf("seeded designs: %d", len(d))
		}
	})
	t.Run("bulk v1 all or nothing", func(t *testing.T) {
		s, _ := newSeeded(t)
		ok := map[string]any{"recipient": map[string]any{"name": "A", "email": "a@example.org"}, "group_id": 100001}
		bad := map[string]any{"recipient": map[string]any{"name": "B", "email": "b@example.org"}, "group_id": 7}
		if w := call(t, s, "POST", "/v1/credentials/bulk_create", map[string]any{"credentials": []any{ok, bad}}); w.Code != 422 {
			t.Errorf("with a bad item: %d", w.Code)
		}
		if n := s.Stats().Objects["credentials"]; n != 0 {
			t.Errorf("a failed v1 bulk stored %d", n)
		}
		w := call(t, s, "POST", "/v1/credentials/bulk_create", map[string]any{"credentials": []any{ok, map[string]any{"credential": ok}}})
		if w.Code != 200 || len(decode(t, w)["credentials"].([]any)) != 2 {
			t.Errorf("two good items: %d %s", w.Code, w.Body)
		}
	})
}
