package accredible

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/accredible/sandbox"
	"github.com/memberflow/memberflow/connectors/connectortest"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

var testSpec = Spec()

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

// loseAnswers forwards requests and, when armed, drops the answer of a
// matching write after the service applied it: the ambiguous failure.
type loseAnswers struct {
	base http.RoundTripper
	mu   sync.Mutex
	path string // POST path whose answer is lost; "" for none
}

func (l *loseAnswers) arm(path string) { l.mu.Lock(); l.path = path; l.mu.Unlock() }

func (l *loseAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := l.base.RoundTrip(r)
	l.mu.Lock()
	lose := l.path != "" && r.Method == http.MethodPost && r.URL.Path == l.path
	l.mu.Unlock()
	if lose && err == nil {
		res.Body.Close()
		return nil, errors.New("read: connection reset by peer")
	}
	return res, err
}

type env struct {
	c     *Client
	sb    *sandbox.Server
	clk   *clock
	lose  *loseAnswers
	url   string
	prior memPrior
}

func setup(t *testing.T) *env {
	t.Helper()
	clk := &clock{t: t0}
	sb := sandbox.New(sandboxkit.Options{Now: clk.now, RateLimit: &sandboxkit.Limit{}})
	sb.Seed(sandboxkit.Seed{Seed: 1, Now: t0})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	lose := &loseAnswers{base: http.DefaultTransport}
	conn, err := Open(connectors.ConnectionConfig{
		Name:       "certs",
		BaseURL:    srv.URL,
		Auth:       connectors.Auth{Type: connectors.AuthAPIKey, Key: sandbox.DemoKey},
		RateLimit:  &connectors.RateLimit{},
		HTTPClient: &http.Client{Transport: lose},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := conn.(*Client)
	c.now = clk.now
	return &env{c: c, sb: sb, clk: clk, lose: lose, url: srv.URL, prior: memPrior{}}
}

func (e *env) run(t *testing.T, action string, in map[string]any) *connectors.Result {
	t.Helper()
	res, err := e.try(action, in)
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
	return res
}

func (e *env) try(action string, in map[string]any) (*connectors.Result, error) {
	a := testSpec.Action(action)
	if a == nil {
		return nil, fmt.Errorf("no action %q", action)
	}
	// Round-trip the input as the engine hands it over (decoded JSON).
	b, _ := json.Marshal(in)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return a.Run(context.Background(), e.c, m)
}

func out(r *connectors.Result) map[string]any { return r.Output.(map[string]any) }

func member(n int) map[string]any {
	return map[string]any{"name": fmt.Sprintf("Member %d", n), "email": fmt.Sprintf("member%d@example.org", n), "id": fmt.Sprint(5000 + n)}
}

func TestSpecRegistersAndCovers(t *testing.T) {
	reg := connectors.NewRegistry()
	if err := reg.Register(Spec()); err != nil {
		t.Fatal(err)
	}
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	generated := map[string]bool{}
	for _, op := range doc.Operations() {
		generated[op.Method+" "+op.Path] = true
	}
	bound := map[string]bool{}
	for _, a := range testSpec.Actions {
		if a.HTTP != nil {
			bound[a.HTTP.Method+" "+a.HTTP.Path] = true
		}
		if !a.ReadOnly && !a.Idempotent && a.Settle == nil {
			switch a.Name {
			case "create_attribute_key", "create_collection", "create_data_export", "copy_design", "clone_group", "create_team_member":
			default:
				t.Errorf("%s writes without a Settle", a.Name)
			}
		}
		in, err := connectors.CompileSchema(a.Name, a.Input)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(a.Example)
		var ex any
		_ = json.Unmarshal(b, &ex)
		if err := in.Validate(ex); err != nil {
			t.Errorf("%s: example does not fit the input schema: %v", a.Name, err)
		}
	}
	for _, tr := range testSpec.Triggers {
		in, err := connectors.CompileSchema(tr.Name, tr.Input)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(tr.Example)
		var ex any
		_ = json.Unmarshal(b, &ex)
		if err := in.Validate(ex); err != nil {
			t.Errorf("trigger %s: example does not fit: %v", tr.Name, err)
		}
		if tr.Poll == nil || tr.DefaultInterval <= 0 {
			t.Errorf("trigger %s: no poll or interval", tr.Name)
		}
	}
	for key := range generated {
		if !bound[key] {
			t.Errorf("document operation %s has no action", key)
		}
	}
	if len(generated) != 62 {
		t.Errorf("document has %d operations, want 62", len(generated))
	}
	for _, name := range []string{"create_credential", "get_credential", "update_credential", "delete_credential", "search_credentials", "bulk_create_credentials_v1", "create_group", "find_credential", "upsert_credential", "expire_credential", "bulk_create_credentials"} {
		if testSpec.Action(name) == nil {
			t.Errorf("missing action %s", name)
		}
	}
}

func TestContract(t *testing.T) {
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	connectortest.Contract(t, Spec(), doc, connectors.ConnectionConfig{
		Name: "contract", Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: "contract-key"}, RateLimit: &connectors.RateLimit{},
	})
}

func TestAuth(t *testing.T) {
	e := setup(t)
	cases := []struct {
		name, key, scheme string
		wantErr           string
	}{
		{"right key", sandbox.DemoKey, "", ""},
		{"quoted key", sandbox.DemoKey, `Token token="%s"`, ""},
		{"wrong key", "not-the-key", "", "accredible: HTTP 401: HTTP Token: Access denied."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := Open(connectors.ConnectionConfig{Name: "x", BaseURL: e.url, RateLimit: &connectors.RateLimit{},
				Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: tc.key, Scheme: tc.scheme}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = testSpec.Action("get_group").Run(context.Background(), conn, map[string]any{"group_id": 100001})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var api *connectors.APIError
			if !errors.As(err, &api) || api.Status != 401 || err.Error() != tc.wantErr {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), tc.key) {
				t.Error("the key leaked into the error")
			}
		})
	}
}

func TestOpen(t *testing.T) {
	cases := []struct {
		name    string
		cfg     connectors.ConnectionConfig
		base    string
		wantErr string
	}{
		{"default host", connectors.ConnectionConfig{Auth: connectors.Auth{Key: "k"}}, "https://api.accredible.com", ""},
		{"eu region", connectors.ConnectionConfig{Auth: connectors.Auth{Key: "k"}, Options: map[string]any{"region": "eu"}}, "https://eu.api.accredible.com", ""},
		{"unknown region", connectors.ConnectionConfig{Name: "c", Auth: connectors.Auth{Key: "k"}, Options: map[string]any{"region": "mars"}}, "", `accredible connection "c": region "mars" is not us, eu or sandbox`},
		{"bearer", connectors.ConnectionConfig{Name: "c", Auth: connectors.Auth{Type: connectors.AuthBearer, Token: "t"}}, "", `accredible connection "c": auth type "bearer" is not supported; use api_key`},
		{"no key", connectors.ConnectionConfig{Name: "c"}, "", `accredible connection "c": accredible: api_key auth: key is empty`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := Open(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := conn.(*Client).API().BaseURL(); got != tc.base {
				t.Errorf("base %s, want %s", got, tc.base)
			}
		})
	}
}

func TestParseError(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		code   string
		msg    string
		retry  bool
	}{
		{"plain text 401", 401, "HTTP Token: Access denied.\n", "", "HTTP Token: Access denied.", false},
		{"success false", 401, `{"success":false,"data":"Not enough or too many segments"}`, "", "Not enough or too many segments", false},
		{"private 403", 403, `{"errors":"Private Certificate, use key"}`, "", "Private Certificate, use key", false},
		{"doesn't exist", 404, `{"errors":"Doesn't exist"}`, "", "Doesn't exist", false},
		{"not found", 404, `{"error":"Not found"}`, "", "Not found", false},
		{"group missing", 404, `{"success":false,"data":"Group does not exist"}`, "", "Group does not exist", false},
		{"field errors", 422, `{"errors":{"course_name":["can't be blank"],"course_description":["can't be blank"]}}`, "", "course_description can't be blank; course_name can't be blank", false},
		{"search query", 400, `{"code":400,"message":"Sort order increasing is not supported","status":"invalid_search_query","errors":{}}`, "invalid_search_query", "Sort order increasing is not supported", false},
		{"bulk all failed", 422, `{"results":[{"error":{"code":"credential_invalid","message":"The credential is not valid","details":[{"property":"recipient_name","reason":"blank"}]}}]}`, "credential_invalid", "item 0: credential_invalid: The credential is not valid (recipient_name blank)", false},
		{"bulk all failed, as the endpoint documents", 422, `{"results":[{"errors":{"code":"credential_invalid","message":"The credential is not valid","details":[{"property":"recipient.email","message":"has already been taken."}]}}]}`, "credential_invalid", "item 0: credential_invalid: The credential is not valid (recipient.email has already been taken.)", false},
		{"bare 429", 429, "", "", "too many requests", true},
		{"server error", 500, `{"errors":"Internal server error"}`, "", "Internal server error", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := ParseError(tc.status, http.Header{}, []byte(tc.body))
			if e.Service != "accredible" || e.Status != tc.status || e.Code != tc.code || e.Message != tc.msg || e.Retryable != tc.retry || e.RetryAfter != 0 {
				t.Errorf("got %+v", e)
			}
		})
	}
}

func TestCreateCredentialOutputAndEcho(t *testing.T) {
	e := setup(t)
	res := e.run(t, "create_credential", map[string]any{"recipient": member(1), "group_id": 100001, "issued_on": "2026-02-27", "reference": "M1/annual-2026"})
	o := out(res)
	id, _ := o["id"].(string)
	if id == "" || o["url"] != "https://www.credential.net/"+id || o["issued_on"] != "2026-02-27" || o["group_name"] != "Annual Membership Certificate" {
		t.Fatalf("output = %v", o)
	}
	if o["meta_data"].(map[string]any)[ReferenceKey] != "M1/annual-2026" {
		t.Errorf("reference not in meta_data: %v", o["meta_data"])
	}
	if err := validateOutput(testSpec.Action("create_credential").Output, o); err != nil {
		t.Error(err)
	}
	if len(res.Wrote) != 1 || res.Wrote[0].Subject != "credential/"+id {
		t.Fatalf("wrote = %v", res.Wrote)
	}
	// The trigger sees the same state: its event is recognised as our echo.
	p := e.poll(t, triggerCreated, nil, connectors.StartBeginning, "")
	if len(p.Events) != 1 || p.Events[0].Fingerprint != res.Wrote[0].State || p.Events[0].Subject != res.Wrote[0].Subject {
		t.Errorf("event %+v does not match the write %+v", p.Events, res.Wrote)
	}
}

func validateOutput(schema json.RawMessage, v any) error {
	s, err := connectors.CompileSchema("out", schema)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(v)
	var doc any
	_ = json.Unmarshal(b, &doc)
	return s.Validate(doc)
}

func TestUpsertNeverDuplicates(t *testing.T) {
	e := setup(t)
	base := map[string]any{"recipient": member(2), "group_id": 100002, "issued_on": "2026-03-01"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for key, val := range base {
			m[key] = val
		}
		m[k] = v
		return m
	}
	steps := []struct {
		name   string
		in     map[string]any
		action string
		check  func(o map[string]any) string
	}{
		{"first issues", base, "created", nil},
		{"same again changes nothing", base, "unchanged", nil},
		{"email in another case is the same person", with("recipient", map[string]any{"name": "Member 2", "email": "MEMBER2@example.org", "id": "5002"}), "unchanged", nil},
		{"new expiry updates", with("expired_on", "2027-03-01"), "updated", func(o map[string]any) string {
			if o["expired_on"] != "2027-03-01" {
				return fmt.Sprintf("expired_on = %v", o["expired_on"])
			}
			return ""
		}},
		{"meta_data merges", with("meta_data", map[string]any{"plan": "gold"}), "updated", func(o map[string]any) string {
			if o["meta_data"].(map[string]any)["plan"] != "gold" || o["expired_on"] != "2027-03-01" {
				return fmt.Sprintf("output = %v", o)
			}
			return ""
		}},
	}
	var id string
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			e.clk.add(time.Minute)
			res := e.run(t, "upsert_credential", st.in)
			o := out(res)
			if o["action"] != st.action {
				t.Fatalf("action %v, want %s", o["action"], st.action)
			}
			if id == "" {
				id = o["id"].(string)
			} else if o["id"] != id {
				t.Errorf("id %v, want %s", o["id"], id)
			}
			if st.check != nil {
				if msg := st.check(o); msg != "" {
					t.Error(msg)
				}
			}
			// A call that changed nothing writes nothing (the summary counts
			// it as unchanged); a change reports the new state.
			if st.action == "unchanged" {
				if len(res.Wrote) != 0 {
					t.Errorf("an unchanged credential reported writes %v", res.Wrote)
				}
			} else if len(res.Wrote) != 1 || res.Wrote[0].State != Fingerprint(fromOutput(t, o)) {
				t.Errorf("wrote %v", res.Wrote)
			}
		})
	}
	st := e.sb.Stats()
	if st.Objects["credentials"] != 1 || st.Duplicates["credentials"] != 0 {
		t.Errorf("stats %v %v", st.Objects, st.Duplicates)
	}
}

func fromOutput(t *testing.T, o map[string]any) Credential {
	t.Helper()
	b, _ := json.Marshal(o)
	var c Credential
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFindCredential(t *testing.T) {
	e := setup(t)
	e.run(t, "create_credential", map[string]any{"recipient": member(3), "group_id": 100001, "reference": "ref-3", "meta_data": map[string]any{"batch": "b1"}})
	e.run(t, "create_credential", map[string]any{"recipient": member(3), "group_id": 100001}) // a duplicate made by hand
	e.run(t, "create_credential", map[string]any{"recipient": member(3), "group_id": 100003})
	cases := []struct {
		name  string
		in    map[string]any
		count int
	}{
		{"by reference", map[string]any{"reference": "ref-3"}, 1},
		{"by email and group", map[string]any{"recipient_email": "member3@example.org", "group_id": 100001}, 2},
		{"by recipient id, all groups", map[string]any{"recipient_id": "5003"}, 3},
		{"by meta_data", map[string]any{"meta_data": map[string]any{"batch": "b1"}}, 1},
		{"nothing", map[string]any{"recipient_email": "nobody@example.org"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := out(e.run(t, "find_credential", tc.in))
			if o["count"] != tc.count || o["found"] != (tc.count > 0) {
				t.Fatalf("output %v, want count %d", o, tc.count)
			}
			if err := validateOutput(testSpec.Action("find_credential").Output, o); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := e.try("find_credential", map[string]any{"group_id": 100001}); err == nil || !strings.Contains(err.Error(), "give a reference") {
		t.Errorf("look-up without a key: %v", err)
	}
}

func TestExpireCredential(t *testing.T) {
	e := setup(t)
	id := out(e.run(t, "create_credential", map[string]any{"recipient": member(4), "group_id": 100001}))["id"].(string)
	e.clk.add(48 * time.Hour)
	cases := []struct {
		name string
		in   map[string]any
		want string
	}{
		{"today by default", map[string]any{"id": id}, "2026-03-03"},
		{"given date", map[string]any{"id": id, "expired_on": "2026-12-31"}, "2026-12-31"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.run(t, "expire_credential", tc.in)
			if out(res)["expired_on"] != tc.want || len(res.Wrote) != 1 {
				t.Errorf("output %v wrote %v", out(res), res.Wrote)
			}
		})
	}
	if _, err := e.try("expire_credential", map[string]any{"id": "999"}); err == nil || !strings.Contains(err.Error(), "expiring credential 999: accredible: HTTP 404: Doesn't exist") {
		t.Errorf("missing credential: %v", err)
	}
}

func TestBulkCreateCredentials(t *testing.T) {
	e := setup(t)
	// Three members already hold the certificate: they must not get a second.
	for n := range 3 {
		e.run(t, "create_credential", map[string]any{"recipient": member(n), "group_id": 100001})
	}
	var items []any
	for n := range 70 {
		items = append(items, map[string]any{"recipient": member(n), "group_id": 100001})
	}
	items[10] = map[string]any{"recipient": map[string]any{"name": "", "email": "blank@example.org"}, "group_id": 100001}
	e.sb.SetCredits(60)
	before := e.sb.Stats().Requests["POST /v2/credentials/bulk_create"]
	res := e.run(t, "bulk_create_credentials", map[string]any{"credentials": items})
	o := out(res)
	// 70 items: 3 exist, 1 invalid, 66 sent in chunks of 30 (3 requests);
	// 60 credits publish 60, the other 6 are left unpublished.
	if o["existing"] != 3 || o["failed"] != 1 || o["created"] != 60 || o["unpublished"] != 6 {
		t.Errorf("counts %v", map[string]any{"existing": o["existing"], "failed": o["failed"], "created": o["created"], "unpublished": o["unpublished"]})
	}
	if n := e.sb.Stats().Requests["POST /v2/credentials/bulk_create"] - before; n != 3 {
		t.Errorf("%d bulk requests, want 3", n)
	}
	results := o["results"].([]any)
	if r := results[10].(map[string]any); r["status"] != itemFailed || !strings.Contains(r["error"].(map[string]any)["message"].(string), "recipient.name") {
		t.Errorf("item 10: %v", r)
	}
	if r := results[69].(map[string]any); r["status"] != itemUnpublished || r["error"].(map[string]any)["code"] != "insufficient_credits" {
		t.Errorf("item 69: %v", r)
	}
	if len(res.Wrote) != 66 {
		t.Errorf("wrote %d records", len(res.Wrote))
	}
	if err := validateOutput(testSpec.Action("bulk_create_credentials").Output, o); err != nil {
		t.Error(err)
	}
	// Running it again creates nothing.
	o = out(e.run(t, "bulk_create_credentials", map[string]any{"credentials": items}))
	if o["existing"] != 69 || o["created"] != 0 {
		t.Errorf("second run: existing %v created %v", o["existing"], o["created"])
	}
	if d := e.sb.Stats().Duplicates["credentials"]; d != 0 {
		t.Errorf("%d duplicates", d)
	}
}

func TestSettleAfterLostAnswer(t *testing.T) {
	withCredential := func(e *env, t *testing.T, in map[string]any) map[string]any {
		id := out(e.run(t, "create_credential", map[string]any{"recipient": member(30), "group_id": 100001}))["id"]
		in["credential_id"] = id
		return in
	}
	cases := []struct {
		name, action, path string
		in                 map[string]any
		prepare            func(e *env, t *testing.T, in map[string]any) map[string]any
	}{
		{"create_credential", "create_credential", "/v1/credentials", map[string]any{"recipient": member(7), "group_id": 100001, "issued_on": "2026-03-01"}, nil},
		{"create_credential by reference", "create_credential", "/v1/credentials", map[string]any{"recipient": member(8), "group_id": 100001, "reference": "r-8"}, nil},
		{"upsert_credential", "upsert_credential", "/v1/credentials", map[string]any{"recipient": member(9), "group_id": 100002}, nil},
		{"create_credential with the fields a search does not show", "create_credential", "/v1/credentials", map[string]any{"recipient": member(13), "group_id": 100001,
			"allow_supplemental_evidence": false, "allow_supplemental_references": false, "references": []any{map[string]any{"description": "Good", "relationship": "taught"}}}, nil},
		{"bulk_create_credentials", "bulk_create_credentials", "/v2/credentials/bulk_create", map[string]any{"credentials": []any{map[string]any{"recipient": member(10), "group_id": 100003}}}, nil},
		{"generated create_group", "create_group", "/v1/issuer/groups", map[string]any{"name": "Gold Member", "course_name": "Gold", "course_description": "Gold tier"}, nil},
		{"generated bulk v2", "bulk_create_credentials_v2", "/v2/credentials/bulk_create", map[string]any{"credentials": []any{map[string]any{"recipient": member(11), "group_id": 100001}}}, nil},
		{"generated bulk v1", "bulk_create_credentials_v1", "/v1/credentials/bulk_create", map[string]any{"credentials": []any{map[string]any{"recipient": member(12), "group_id": 100002, "id": "ref-12"}}}, nil},
		{"generated create_department", "create_department", "/v1/departments", map[string]any{"name": "Physics", "url": "https://physics.example.org", "logo": "https://physics.example.org/logo.png"}, nil},
		{"generated create_design", "create_design", "/v1/designs", map[string]any{"name": "Gold badge", "kind": "badge", "encoded_content": "00ff"}, nil},
		{"generated create_evidence_item", "create_evidence_item", "", map[string]any{"evidence_item": map[string]any{"description": "Final grade", "category": "grade", "string_object": "83"}}, withCredential},
		{"generated create_reference", "create_reference", "", map[string]any{"reference": map[string]any{"description": "Excellent", "relationship": "managed"}}, withCredential},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			in, path := tc.in, tc.path
			if tc.prepare != nil {
				in = tc.prepare(e, t, in)
			}
			if path == "" {
				path = fmt.Sprintf("/v1/credentials/%v/%ss", in["credential_id"], tc.action[len("create_"):])
			}
			a := testSpec.Action(tc.action)
			// Not done yet: the look-up finds nothing.
			if _, happened, err := a.Settle(context.Background(), e.c, in); err != nil || happened {
				t.Fatalf("before: happened %v, err %v", happened, err)
			}
			e.lose.arm(path)
			_, err := e.try(tc.action, in)
			if !errors.Is(err, connectors.ErrInDoubt) {
				t.Fatalf("lost answer: %v, want in doubt", err)
			}
			e.lose.arm("")
			res, happened, err := a.Settle(context.Background(), e.c, in)
			if err != nil || !happened || res == nil {
				t.Fatalf("after: happened %v, err %v", happened, err)
			}
			if st := e.sb.Stats(); st.Duplicates["credentials"] != 0 {
				t.Errorf("duplicates %v", st.Duplicates)
			}
		})
	}
}

func TestSettleIgnoresAnEarlierCertificate(t *testing.T) {
	e := setup(t)
	e.run(t, "create_credential", map[string]any{"recipient": member(12), "group_id": 100001, "issued_on": "2025-03-01"})
	// This year's issue is in doubt and did not happen: last year's
	// certificate of the same person and group must not settle it.
	_, happened, err := testSpec.Action("create_credential").Settle(context.Background(), e.c,
		map[string]any{"recipient": member(12), "group_id": 100001.0, "issued_on": "2026-03-01"})
	if err != nil || happened {
		t.Errorf("happened %v err %v", happened, err)
	}
}

func TestGeneratedActionsAgainstSandbox(t *testing.T) {
	e := setup(t)
	o := out(e.run(t, "get_group", map[string]any{"group_id": 100002}))
	if o["group"].(map[string]any)["name"] != "CPD Completion" {
		t.Errorf("get_group: %v", o)
	}
	o = out(e.run(t, "search_groups", map[string]any{"name": "Badge"}))
	if len(o["groups"].([]any)) != 1 {
		t.Errorf("search_groups: %v", o)
	}
	id := out(e.run(t, "create_credential", map[string]any{"recipient": member(13), "group_id": 100001}))["id"].(string)
	o = out(e.run(t, "search_credentials", map[string]any{"query": map[string]any{"recipient_email": "member13@example.org"}}))
	if meta := o["meta"].(map[string]any); meta["count"] != 1.0 {
		t.Errorf("search_credentials: %v", o)
	}
	o = out(e.run(t, "delete_credential", map[string]any{"id": id}))
	if o["credential"].(map[string]any)["id"] != id {
		t.Errorf("delete_credential: %v", o)
	}
}

func TestRateLimitAnsweredAsDocumented(t *testing.T) {
	clk := &clock{t: t0}
	sb := sandbox.New(sandboxkit.Options{Now: clk.now, RateLimit: &sandboxkit.Limit{Requests: 1, Per: time.Hour}})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	conn, err := Open(connectors.ConnectionConfig{BaseURL: srv.URL, RateLimit: &connectors.RateLimit{},
		Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: sandbox.DemoKey}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := testSpec.Action("get_issuer").Run(ctx, conn, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	_, err = testSpec.Action("get_issuer").Run(ctx, conn, map[string]any{})
	var api *connectors.APIError
	// A bare 429 (no Retry-After): the connection pauses for one of
	// Accredible's 30-second counting periods, and says so to the caller's
	// retry; the runtime itself sends once.
	if !errors.As(err, &api) || api.Status != 429 || api.RetryAfter != countingPeriod || !connectors.Retryable(err) {
		t.Fatalf("over the limit: %v (retry after %v)", err, api.RetryAfter)
	}
	if n := sb.Stats().Responses["429"]; n != 1 {
		t.Errorf("%d answers 429, want 1: the runtime retries nothing", n)
	}
}

// find_credential follows the search cursor past the first page.
func TestFindFollowsPages(t *testing.T) {
	e := setup(t)
	e.mutate(t, "issue_credential", 2*searchPageSize+7, map[string]any{"group_id": 100002, "email": "family@example.org", "name": "A Family"})
	o := out(e.run(t, "find_credential", map[string]any{"recipient_email": "family@example.org", "group_id": 100002}))
	if o["count"] != 2*searchPageSize+7 {
		t.Errorf("count %v, want %d", o["count"], 2*searchPageSize+7)
	}
	if n := e.sb.Stats().Requests["POST /v2/credentials/search"]; n != 3 {
		t.Errorf("%d search requests, want 3 pages", n)
	}
}
