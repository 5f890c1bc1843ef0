package sandbox

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors/openapi"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

var anchor = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a settable clock for token expiry and rate windows.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	t   *testing.T
	s   *Server
	srv *httptest.Server
	doc *openapi.Document
}

func newEnv(t *testing.T, members int, opts sandboxkit.Options) *env {
	t.Helper()
	if opts.RateLimit == nil {
		opts.RateLimit = &sandboxkit.Limit{} // off unless a test wants it
	}
	s := New(opts)
	s.Seed(sandboxkit.Seed{Members: members, Seed: 7, Now: anchor})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	data, err := os.ReadFile("../openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, s: s, srv: srv, doc: doc}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %s", a.status, a.body)
	}
	return m
}

// call sends a request with the documented headers (the demo key unless
// header overrides Authorization) and validates the answer against the
// OpenAPI document when the route is in it.
func (e *env) call(method, path string, body any, header map[string]string) answer {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Version", APIVersion)
	req.Header.Set("Authorization", "Bearer "+DemoKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	a := answer{res.StatusCode, res.Header, data}
	u, _ := url.Parse(path)
	if _, _, ok := e.doc.Find(method, u.Path); ok && res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusInternalServerError {
		if err := e.doc.ValidateResponse(method, u.Path, res.StatusCode, data); err != nil {
			e.t.Errorf("answer does not match openapi.json: %v\n%s", err, data)
		}
	}
	return a
}

func (e *env) firstUser() map[string]any {
	e.t.Helper()
	a := e.call("GET", "/users/search?companyId="+DemoCompanyID+"&limit=1", nil, nil)
	users := a.json(e.t)["users"].([]any)
	return users[0].(map[string]any)
}

func TestErrorBodiesAreGoHighLevels(t *testing.T) {
	e := newEnv(t, 5, sandboxkit.Options{})
	id := e.firstUser()["id"].(string)
	cases := []struct {
		name         string
		method, path string
		body         any
		header       map[string]string
		status       int
		want         string
	}{
		{"no version header", "GET", "/users/" + id, nil, map[string]string{"Version": ""}, 400, `{"statusCode":400,"message":"version header was not found"}`},
		{"no token", "GET", "/users/" + id, nil, map[string]string{"Authorization": ""}, 401, `{"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"}`},
		{"wrong token", "GET", "/users/" + id, nil, map[string]string{"Authorization": "Bearer nope"}, 401, `{"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"}`},
		{"unknown user", "GET", "/users/AAAAAAAAAAAAAAAAAAAA", nil, nil, 400, `{"statusCode":400,"message":"User not found"}`},
		{"create without fields", "POST", "/users/", map[string]any{"firstName": "Ann", "email": "not-an-email"}, nil, 422,
			`{"statusCode":422,"message":["companyId should not be empty","lastName should not be empty","password should not be empty","type should not be empty","role should not be empty","locationIds should not be empty","email must be an email"],"error":"Unprocessable Entity"}`},
		{"search without company", "GET", "/users/search", nil, nil, 422, `{"statusCode":422,"message":["companyId should not be empty"],"error":"Unprocessable Entity"}`},
		{"unknown payment", "GET", "/payments/AAAAAAAAAAAAAAAAAAAA", nil, nil, 404, `{"statusCode":404,"message":"Payment not found","error":"Not Found"}`},
		{"bad membership status", "PUT", "/users/" + id, map[string]any{"membershipStatus": "gold"}, nil, 422,
			`{"statusCode":422,"message":["membershipStatus must be one of the following values: pending, active, eligible, lapsed, cancelled"],"error":"Unprocessable Entity"}`},
		{"unknown route", "GET", "/contacts/", nil, nil, 404, `{"statusCode":404,"message":"Cannot GET /contacts/","error":"Not Found"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := e.call(c.method, c.path, c.body, c.header)
			if a.status != c.status || strings.TrimSpace(string(a.body)) != c.want {
				t.Errorf("got %d %s\nwant %d %s", a.status, a.body, c.status, c.want)
			}
		})
	}
}

func TestSearchPagesWithSkipAndLimit(t *testing.T) {
	e := newEnv(t, 60, sandboxkit.Options{})
	seen := map[string]bool{}
	for skip := 0; skip < 60; skip += 25 {
		a := e.call("GET", "/users/search?companyId="+DemoCompanyID+"&skip="+itoa(skip)+"&limit=25", nil, nil)
		m := a.json(t)
		if m["count"].(float64) != 60 {
			t.Fatalf("count = %v, want 60", m["count"])
		}
		for _, u := range m["users"].([]any) {
			seen[u.(map[string]any)["id"].(string)] = true
		}
	}
	if len(seen) != 60 {
		t.Errorf("paging saw %d distinct users, want 60", len(seen))
	}
	if a := e.call("GET", "/users/search?companyId="+DemoCompanyID+"&limit=101", nil, nil); a.status != 422 {
		t.Errorf("limit 101: %d %s", a.status, a.body)
	}
	all := e.call("GET", "/users/?locationId="+DemoLocationID, nil, nil).json(t)["users"].([]any)
	if len(all) != 60 {
		t.Errorf("GET /users/ listed %d, want all 60 (no paging)", len(all))
	}
}

// TestAuthComesFirst: without credentials every API route answers 401,
// whatever else is wrong with the request.
func TestAuthComesFirst(t *testing.T) {
	e := newEnv(t, 3, sandboxkit.Options{})
	for _, path := range []string{"/users/", "/users/search", "/users/nobody", "/payments", "/no/such/route"} {
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials or Version: %d, want 401", path, res.StatusCode)
		}
	}
}

func TestUndocumentedSearchParametersRefused(t *testing.T) {
	e := newEnv(t, 3, sandboxkit.Options{})
	for _, p := range []string{"updatedAfter=2026-01-01T00:00:00Z", "order=asc"} {
		a := e.call("GET", "/users/search?companyId="+DemoCompanyID+"&"+p, nil, nil)
		name, _, _ := strings.Cut(p, "=")
		if a.status != http.StatusUnprocessableEntity || !strings.Contains(string(a.body), "property "+name+" should not exist") {
			t.Errorf("%s: %d %s, want 422 naming the property", p, a.status, a.body)
		}
	}
	// The documented sort and direction are served.
	if a := e.call("GET", "/users/search?companyId="+DemoCompanyID+"&sort=dateAdded&sortDirection=desc&skip=1&limit=2", nil, nil); a.status != http.StatusOK {
		t.Errorf("documented parameters: %d %s", a.status, a.body)
	}
}

func TestIncrementalSearchByDateUpdated(t *testing.T) {
	e := newEnv(t, 30, sandboxkit.Options{AllowUndocumented: true})
	q := "/users/search?companyId=" + DemoCompanyID + "&sort=dateUpdated&order=asc&limit=100"
	users := e.call("GET", q, nil, nil).json(t)["users"].([]any)
	prev := ""
	for _, u := range users {
		d := u.(map[string]any)["dateUpdated"].(string)
		if d < prev {
			t.Fatalf("not ascending by dateUpdated: %s after %s", d, prev)
		}
		prev = d
	}
	changed, err := e.s.Mutate(sandboxkit.Mutation{Kind: "become_eligible", Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	m := e.call("GET", q+"&updatedAfter="+url.QueryEscape(prev)+"&skip=1", nil, nil).json(t)
	if got := len(m["users"].([]any)); got != 2 || m["count"].(float64) != 3 {
		t.Errorf("after the last change: %d users, count %v; want the 2 mutated (%v), count 3", got, m["count"], changed["ids"])
	}
	for _, u := range m["users"].([]any) {
		if s := u.(map[string]any)["membershipStatus"]; s != "eligible" {
			t.Errorf("mutated user is %v, want eligible", s)
		}
	}
	el := e.call("GET", "/users/search?companyId="+DemoCompanyID+"&membershipStatus=eligible&limit=100", nil, nil).json(t)
	for _, u := range el["users"].([]any) {
		if u.(map[string]any)["membershipStatus"] != "eligible" {
			t.Fatalf("membershipStatus filter let %v through", u)
		}
	}
}

func TestUsersCreateUpdateFilterDelete(t *testing.T) {
	e := newEnv(t, 3, sandboxkit.Options{})
	create := map[string]any{"companyId": DemoCompanyID, "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.org",
		"password": "x", "type": "account", "role": "user", "locationIds": []string{DemoLocationID}, "membershipStatus": "pending"}
	a := e.call("POST", "/users/", create, nil)
	if a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	u := a.json(t)
	id := u["id"].(string)
	if u["fullName"] != "Ada Lovelace" || u["membershipStatus"] != "pending" {
		t.Errorf("created %v", u)
	}
	up := e.call("PUT", "/users/"+id, map[string]any{"membershipStatus": "eligible", "eligibilityDate": "2026-11-01"}, nil).json(t)
	if up["membershipStatus"] != "eligible" || up["eligibilityDate"] != "2026-11-01" || up["firstName"] != "Ada" || up["dateUpdated"] == u["dateUpdated"] {
		t.Errorf("updated %v", up)
	}
	for _, q := range []string{"ada%20love", "LOVELACE", "ada@example"} {
		found := e.call("GET", "/users/search?companyId="+DemoCompanyID+"&query="+q, nil, nil).json(t)
		if found["count"] != 1.0 {
			t.Errorf("query %s found %v", q, found["count"])
		}
	}
	agency := map[string]string{"Authorization": "Bearer " + DemoAgencyKey}
	f := e.call("POST", "/users/search/filter-by-email", map[string]any{"companyId": DemoCompanyID, "emails": "ADA@example.org"}, agency).json(t)
	got := f["users"].([]any)
	if len(got) != 1 || len(got[0].(map[string]any)) != 2 {
		t.Errorf("filter-by-email without projection should answer id and email only: %v", f)
	}
	f = e.call("POST", "/users/search/filter-by-email", map[string]any{"companyId": DemoCompanyID, "emails": "ada@example.org", "projection": "all"}, agency).json(t)
	if f["users"].([]any)[0].(map[string]any)["membershipStatus"] != "eligible" {
		t.Errorf("projection all: %v", f)
	}
	d := e.call("DELETE", "/users/"+id, nil, nil).json(t)
	if d["succeded"] != true || !strings.Contains(d["message"].(string), "ada@example.org") {
		t.Errorf("delete answered %v", d)
	}
	if a := e.call("GET", "/users/"+id, nil, nil); a.status != 400 {
		t.Errorf("deleted user still served: %d", a.status)
	}
}

func TestPaymentsAndDuplicateStats(t *testing.T) {
	e := newEnv(t, 0, sandboxkit.Options{})
	base := e.s.Stats()
	if base.Objects["users"] != 0 || base.Objects["payments"] != 0 {
		t.Fatalf("empty seed has objects: %v", base.Objects)
	}
	mk := func(email string) string {
		a := e.call("POST", "/users/", map[string]any{"companyId": DemoCompanyID, "firstName": "A", "lastName": "B", "email": email,
			"password": "x", "type": "account", "role": "user", "locationIds": []string{DemoLocationID}}, nil)
		return a.json(t)["id"].(string)
	}
	uid := mk("twin@example.org")
	mk("twin@example.org")
	pay := map[string]any{"userId": uid, "amount": 180.5, "currency": "USD", "status": "paid", "externalRef": "ae-order-1", "source": "accelevents"}
	a := e.call("POST", "/payments", pay, nil)
	if a.status != 201 {
		t.Fatalf("create payment: %d %s", a.status, a.body)
	}
	p := a.json(t)
	if p["amount"] != 180.5 || p["userId"] != uid || p["status"] != "paid" {
		t.Errorf("payment %v", p)
	}
	e.call("POST", "/payments", pay, nil) // no idempotency key: a duplicate
	list := e.call("GET", "/payments?externalRef=ae-order-1", nil, nil).json(t)
	if list["count"].(float64) != 2 {
		t.Errorf("by externalRef: %v", list)
	}
	st := e.s.Stats()
	if st.Objects["users"] != 2 || st.Objects["payments"] != 2 || st.Duplicates["users"] != 1 || st.Duplicates["payments"] != 1 {
		t.Errorf("stats %+v", st)
	}
	upd := e.call("PUT", "/payments/"+p["id"].(string), map[string]any{"status": "refunded"}, nil).json(t)
	if upd["status"] != "refunded" || upd["updatedAt"] == p["updatedAt"] {
		t.Errorf("update %v", upd)
	}
	if a := e.call("POST", "/payments", map[string]any{"userId": uid, "amount": -1, "currency": "usd"}, nil); a.status != 422 {
		t.Errorf("bad payment: %d %s", a.status, a.body)
	}
	if a := e.call("DELETE", "/payments/"+p["id"].(string), nil, nil); a.status != 200 || e.s.Stats().Duplicates["payments"] != 0 {
		t.Errorf("delete: %d %s %v", a.status, a.body, e.s.Stats())
	}
}

func form(e *env, path string, v url.Values, bearer string) answer {
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Version", APIVersion)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if err := e.doc.ValidateResponse("POST", path, res.StatusCode, data); err != nil {
		e.t.Errorf("token answer does not match openapi.json: %v", err)
	}
	return answer{res.StatusCode, res.Header, data}
}

func TestOAuthTokensRefreshAndExpire(t *testing.T) {
	clock := &fakeClock{t: anchor}
	e := newEnv(t, 2, sandboxkit.Options{Now: clock.Now})
	e.s.SetTokenLifetime(time.Hour)
	grant := url.Values{"client_id": {DemoClientID}, "client_secret": {DemoClientSecret}, "grant_type": {"client_credentials"}}
	tok := form(e, "/oauth/token", grant, "").json(t)
	if tok["token_type"] != "Bearer" || tok["expires_in"] != float64(3600) || tok["locationId"] != DemoLocationID {
		t.Fatalf("token %v", tok)
	}
	access, refresh := tok["access_token"].(string), tok["refresh_token"].(string)
	auth := map[string]string{"Authorization": "Bearer " + access}
	if a := e.call("GET", "/users/search?companyId="+DemoCompanyID, nil, auth); a.status != 200 {
		t.Fatalf("access token refused: %d %s", a.status, a.body)
	}
	clock.Advance(time.Hour)
	if a := e.call("GET", "/users/search?companyId="+DemoCompanyID, nil, auth); a.status != 401 {
		t.Errorf("expired token accepted: %d", a.status)
	}
	ref := url.Values{"client_id": {DemoClientID}, "client_secret": {DemoClientSecret}, "grant_type": {"refresh_token"}, "refresh_token": {refresh}}
	next := form(e, "/oauth/token", ref, "").json(t)
	if next["refresh_token"] == refresh || next["access_token"] == nil {
		t.Errorf("refresh did not issue a new refresh token: %v", next)
	}
	if a := form(e, "/oauth/token", ref, ""); a.status != 401 {
		t.Errorf("a used refresh token worked again: %d %s", a.status, a.body)
	}
	bad := url.Values{"client_id": {DemoClientID}, "client_secret": {"wrong"}, "grant_type": {"client_credentials"}}
	if a := form(e, "/oauth/token", bad, ""); a.status != 401 {
		t.Errorf("wrong secret: %d", a.status)
	}
	if a := form(e, "/oauth/token", url.Values{"grant_type": {"password"}}, ""); a.status != 422 {
		t.Errorf("bad grant: %d %s", a.status, a.body)
	}
	company := url.Values{"client_id": {DemoClientID}, "client_secret": {DemoClientSecret}, "grant_type": {"client_credentials"}, "user_type": {"Company"}}
	ct := form(e, "/oauth/token", company, "").json(t)["access_token"].(string)
	lt := form(e, "/oauth/locationToken", url.Values{"companyId": {DemoCompanyID}, "locationId": {DemoLocationID}}, ct).json(t)
	if lt["locationId"] != DemoLocationID {
		t.Errorf("location token %v", lt)
	}
	if a := form(e, "/oauth/locationToken", url.Values{"companyId": {DemoCompanyID}, "locationId": {DemoLocationID}}, DemoKey); a.status != 401 {
		t.Errorf("a location token bought a location token: %d", a.status)
	}
}

func TestRateLimitAnswersAsDocumented(t *testing.T) {
	clock := &fakeClock{t: anchor}
	e := newEnv(t, 1, sandboxkit.Options{Now: clock.Now, RateLimit: &sandboxkit.Limit{Requests: 3, Per: 10 * time.Second}})
	path := "/users/search?companyId=" + DemoCompanyID
	for i := 2; i >= 0; i-- {
		a := e.call("GET", path, nil, nil)
		if a.status != 200 || a.header.Get("X-RateLimit-Remaining") != itoa(i) || a.header.Get("X-RateLimit-Max") != "3" ||
			a.header.Get("X-RateLimit-Interval-Milliseconds") != "10000" || a.header.Get("X-RateLimit-Limit-Daily") != "200000" {
			t.Fatalf("request %d: %d %v", 3-i, a.status, a.header)
		}
	}
	a := e.call("GET", path, nil, nil)
	if a.status != 429 || strings.TrimSpace(string(a.body)) != `{"statusCode":429,"message":"Too Many Requests"}` || a.header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("over the limit: %d %s %v", a.status, a.body, a.header)
	}
	clock.Advance(10 * time.Second)
	if a := e.call("GET", path, nil, nil); a.status != 200 {
		t.Errorf("next window: %d", a.status)
	}
}

func TestSeedIsDeterministicAndRealistic(t *testing.T) {
	dump := func(seed int64) string {
		s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
		s.Seed(sandboxkit.Seed{Members: 2000, Seed: seed, Now: anchor})
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/users/?locationId="+DemoLocationID, nil)
		req.Header.Set("Version", APIVersion)
		req.Header.Set("Authorization", "Bearer "+DemoKey)
		s.ServeHTTP(rec, req)
		return rec.Body.String() + s.PublicKeyPEM()
	}
	a, b, c := dump(1), dump(1), dump(2)
	if a != b {
		t.Error("same seed, different data")
	}
	if a == c {
		t.Error("different seeds, same data")
	}
	s := New(sandboxkit.Options{})
	s.Seed(sandboxkit.Seed{Members: 10000, Seed: 3, Now: anchor})
	counts := map[uint8]int{}
	withPayment := map[int32]bool{}
	for i := range s.st.users {
		counts[s.st.users[i].status]++
	}
	for _, p := range s.st.payments {
		withPayment[p.user] = true
	}
	share := func(n int) float64 { return float64(n) / 10000 }
	for st, want := range map[uint8]float64{statusEligible: .40, statusActive: .35, statusLapsed: .15, statusPending: .10} {
		if got := share(counts[st]); got < want-.03 || got > want+.03 {
			t.Errorf("%s: %.2f of members, want about %.2f", membershipStatuses[st], got, want)
		}
	}
	if got := share(len(withPayment)); got < .45 || got > .55 {
		t.Errorf("%.2f of members have a payment, want about half", got)
	}
	if st := s.Stats(); st.Duplicates["users"] != 0 || st.Duplicates["payments"] != 0 {
		t.Errorf("seeded duplicates: %v", st.Duplicates)
	}
}

func TestMutateKinds(t *testing.T) {
	e := newEnv(t, 200, sandboxkit.Options{})
	before := e.s.Stats()
	cases := []struct {
		kind  string
		check func(t *testing.T, ids []any)
	}{
		{"become_eligible", func(t *testing.T, ids []any) {
			for _, id := range ids {
				if u := e.call("GET", "/users/"+id.(string), nil, nil).json(t); u["membershipStatus"] != "eligible" || u["eligibilityDate"] == nil {
					t.Errorf("%v", u)
				}
			}
		}},
		{"lapse", func(t *testing.T, ids []any) {
			for _, id := range ids {
				if u := e.call("GET", "/users/"+id.(string), nil, nil).json(t); u["membershipStatus"] != "lapsed" {
					t.Errorf("%v", u)
				}
			}
		}},
		{"change_email", func(t *testing.T, ids []any) {
			for _, id := range ids {
				if u := e.call("GET", "/users/"+id.(string), nil, nil).json(t); !strings.HasSuffix(u["email"].(string), "@example.net") {
					t.Errorf("%v", u)
				}
			}
		}},
		{"payment", func(t *testing.T, ids []any) {
			if got := e.s.Stats().Objects["payments"]; got != before.Objects["payments"]+3 {
				t.Errorf("payments %d, want %d", got, before.Objects["payments"]+3)
			}
		}},
		{"new_member", func(t *testing.T, ids []any) {
			if got := e.s.Stats().Objects["users"]; got != before.Objects["users"]+3 {
				t.Errorf("users %d", got)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			out, err := e.s.Mutate(sandboxkit.Mutation{Kind: c.kind, Count: 3})
			if err != nil {
				t.Fatal(err)
			}
			ids, _ := json.Marshal(out["ids"])
			var list []any
			_ = json.Unmarshal(ids, &list)
			if out["changed"] != 3 || len(list) != 3 {
				t.Fatalf("changed %v", out)
			}
			c.check(t, list)
		})
	}
	if _, err := e.s.Mutate(sandboxkit.Mutation{Kind: "explode"}); err == nil || !strings.Contains(err.Error(), "become_eligible") {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestWebhooksAreSignedAndDelivered(t *testing.T) {
	got := make(chan *http.Request, 10)
	bodies := make(chan []byte, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
	}))
	defer hook.Close()
	e := newEnv(t, 20, sandboxkit.Options{})
	reg, _ := http.Post(e.srv.URL+"/_sandbox/webhooks", "application/json", strings.NewReader(`{"url":"`+hook.URL+`"}`))
	if reg.StatusCode != 201 {
		t.Fatalf("register: %d", reg.StatusCode)
	}
	res, err := http.Get(e.srv.URL + "/webhooks/public-key")
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := io.ReadAll(res.Body)
	res.Body.Close()
	block, _ := pem.Decode(pemBytes)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Mutate(sandboxkit.Mutation{Kind: "become_eligible", Count: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		body := <-bodies
		sig, _ := base64.StdEncoding.DecodeString(r.Header.Get(SignatureHeader))
		sum := sha256.Sum256(body)
		if err := rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
			t.Errorf("signature does not verify with the published key: %v", err)
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		if m["type"] != "UserUpdate" || m["webhookId"] == "" || m["locationId"] != DemoLocationID || m["membershipStatus"] != "eligible" || m["previousMembershipStatus"] != "active" {
			t.Errorf("delivery %s", body)
		}
		if _, err := time.Parse(time.RFC3339, m["timestamp"].(string)); err != nil {
			t.Errorf("timestamp: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook delivered")
	}
}

func TestFaultsAreDeterministicForASeed(t *testing.T) {
	run := func() string {
		s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}, Faults: sandboxkit.Faults{FailRate: 0.3, Seed: 9}})
		s.Seed(sandboxkit.Seed{Members: 3, Seed: 1, Now: anchor})
		var codes []string
		for i := 0; i < 40; i++ {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/users/search?companyId="+DemoCompanyID, nil)
			req.Header.Set("Version", APIVersion)
			req.Header.Set("Authorization", "Bearer "+DemoKey)
			s.ServeHTTP(rec, req)
			codes = append(codes, itoa(rec.Code))
			if rec.Code == 500 && strings.TrimSpace(rec.Body.String()) != `{"statusCode":500,"message":"Internal server error"}` {
				t.Errorf("500 body %s", rec.Body)
			}
		}
		return strings.Join(codes, ",")
	}
	a, b := run(), run()
	if a != b {
		t.Errorf("fault sequences differ:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "500") || !strings.Contains(a, "200") {
		t.Errorf("fail rate 0.3 gave %s", a)
	}
}

// TestScanPagesMatchAFullWalk: the block-counted scan in the order users
// were added answers the same pages as visiting every user, deletions
// included.
func TestScanPagesMatchAFullWalk(t *testing.T) {
	e := newEnv(t, 3000, sandboxkit.Options{})
	st := e.s.st
	for _, idx := range []int32{0, 5, 1023, 1024, 1025, 2047, 2500, 2999} {
		st.deleteUser(idx, anchor)
	}
	for _, skip := range []int{0, 1, 99, 1015, 1016, 1017, 2040, 2900, 2991, 2992, 5000} {
		got := st.scanAdded(skip, 100)
		want, count := st.walkUsers(&userFilter{status: -1}, false, false, skip, 100)
		if fmt.Sprint(got) != fmt.Sprint(want) || count != st.liveUsers {
			t.Errorf("skip %d: scan %v…, walk %v… (count %d, live %d)", skip, head(got), head(want), count, st.liveUsers)
		}
	}
}

func head(l []int32) []int32 { return l[:min(len(l), 3)] }

// TestTokenLevels: the routes keep GoHighLevel's security. filter-by-email
// is Agency-Access only: a location token (the demo key, or an OAuth
// token of user type Location) gets the service's 401, an agency token
// the answer. GET /users/search takes either. PUT /users/{id} with an
// agency token needs companyId (UpdateUserDto: "Required for Agency Level
// access"); with a location token it does not.
func TestTokenLevels(t *testing.T) {
	e := newEnv(t, 3, sandboxkit.Options{})
	oauth := func(userType string) string {
		v := url.Values{"client_id": {DemoClientID}, "client_secret": {DemoClientSecret}, "grant_type": {"client_credentials"}, "user_type": {userType}}
		return form(e, "/oauth/token", v, "").json(t)["access_token"].(string)
	}
	locationKeys := map[string]string{"location private integration token": DemoKey, "location OAuth token": oauth("Location")}
	agencyKeys := map[string]string{"agency private integration token": DemoAgencyKey, "agency OAuth token": oauth("Company")}
	user := e.firstUser()
	id, email := user["id"].(string), user["email"].(string)
	filter := map[string]any{"companyId": DemoCompanyID, "emails": strings.ToUpper(email), "projection": "all"}
	const refusal = `{"statusCode":401,"message":"This route is only available to Agency access tokens","error":"Unauthorized"}`
	type call struct {
		name, method, path string
		body               any
		status             int
		want               string // a fragment of the answer
	}
	calls := func(agency bool) []call {
		filterStatus, filterWant := http.StatusUnauthorized, refusal
		putStatus, putWant := http.StatusOK, `"id":"`+id+`"`
		if agency {
			// The first member and its namesake in mfSandboxLocation002:
			// the route searches the whole company.
			filterStatus, filterWant = http.StatusOK, `"count":2`
			putStatus, putWant = http.StatusUnprocessableEntity, `{"statusCode":422,"message":["companyId should not be empty"],"error":"Unprocessable Entity"}`
		}
		return []call{
			{"filter-by-email", "POST", "/users/search/filter-by-email", filter, filterStatus, filterWant},
			{"search by email", "GET", "/users/search?companyId=" + DemoCompanyID + "&locationId=" + DemoLocationID + "&query=" + url.QueryEscape(email), nil, http.StatusOK, `"email":"` + email + `"`},
			{"update without companyId", "PUT", "/users/" + id, map[string]any{"planId": "plan_basic"}, putStatus, putWant},
			{"update with companyId", "PUT", "/users/" + id, map[string]any{"planId": "plan_basic", "companyId": DemoCompanyID}, http.StatusOK, `"planId":"plan_basic"`},
			{"update with another companyId", "PUT", "/users/" + id, map[string]any{"planId": "plan_basic", "companyId": "someOtherCompany0001"}, http.StatusBadRequest, "The token does not have access to this company."},
		}
	}
	for level, keys := range map[string]map[string]string{"location": locationKeys, "agency": agencyKeys} {
		for keyName, key := range keys {
			for _, c := range calls(level == "agency") {
				t.Run(keyName+"/"+c.name, func(t *testing.T) {
					a := e.call(c.method, c.path, c.body, map[string]string{"Authorization": "Bearer " + key})
					if a.status != c.status || !strings.Contains(string(a.body), c.want) {
						t.Errorf("%s %s: %d %s\nwant %d with %s", c.method, c.path, a.status, a.body, c.status, c.want)
					}
				})
			}
		}
	}
}

// TestSearchQueryMatchesNameEmailOrPhone: GET /users/search's query "is
// matched based on the user full name, email or phone" (the document),
// case-insensitively and by part, so that a client looking a member up
// by email must compare the emails itself.
func TestSearchQueryMatchesNameEmailOrPhone(t *testing.T) {
	e := newEnv(t, 0, sandboxkit.Options{})
	mk := func(first, last, email, phone string) {
		a := e.call("POST", "/users/", map[string]any{"companyId": DemoCompanyID, "firstName": first, "lastName": last, "email": email, "phone": phone,
			"password": "x", "type": "account", "role": "user", "locationIds": []string{DemoLocationID}}, nil)
		if a.status != http.StatusCreated {
			t.Fatalf("create: %d %s", a.status, a.body)
		}
	}
	mk("Ada", "Lovelace", "ada@example.org", "+1 555-000-1111")
	mk("ada@example.org", "Impostor", "someone@example.org", "+1 555-000-2222") // a name holding the email's text
	mk("Adam", "Smith", "adam@example.org", "+1 555-000-3333")
	for _, c := range []struct {
		query string
		want  []string // emails, in the order added
	}{
		{"ada@example.org", []string{"ada@example.org", "someone@example.org"}},
		{"ADA@EXAMPLE.ORG", []string{"ada@example.org", "someone@example.org"}},
		{"ada lovelace", []string{"ada@example.org"}},
		{"lovelace", []string{"ada@example.org"}},
		{"555-000-3333", []string{"adam@example.org"}},
		{"ada", []string{"ada@example.org", "someone@example.org", "adam@example.org"}},
		{"nobody", nil},
	} {
		t.Run(c.query, func(t *testing.T) {
			got := e.call("GET", "/users/search?companyId="+DemoCompanyID+"&sort=dateAdded&sortDirection=asc&query="+url.QueryEscape(c.query), nil, nil).json(t)
			var emails []string
			for _, u := range got["users"].([]any) {
				emails = append(emails, u.(map[string]any)["email"].(string))
			}
			if fmt.Sprint(emails) != fmt.Sprint(c.want) || got["count"] != float64(len(c.want)) {
				t.Errorf("query %q found %v (count %v), want %v", c.query, emails, got["count"], c.want)
			}
		})
	}
}
