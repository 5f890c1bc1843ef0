package memberships

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
	"github.com/memberflow/memberflow/connectors/connectortest"
	"github.com/memberflow/memberflow/connectors/memberships/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

var anchor = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t    *testing.T
	sb   *sandbox.Server
	srv  *httptest.Server
	spec *connectors.Spec
	conn *Client
}

// newFixture serves a seeded sandbox and opens a connection to it with
// the demo key. wrap, when set, stands between the client and the
// sandbox (fault tests).
func newFixture(t *testing.T, members int, wrap func(http.Handler) http.Handler, mod func(*connectors.ConnectionConfig)) *fixture {
	t.Helper()
	return newFixtureWith(t, sandboxkit.Options{}, members, wrap, mod)
}

// newFixtureWith is newFixture with sandbox options (rate limits stay off).
func newFixtureWith(t *testing.T, opts sandboxkit.Options, members int, wrap func(http.Handler) http.Handler, mod func(*connectors.ConnectionConfig)) *fixture {
	t.Helper()
	opts.RateLimit = &sandboxkit.Limit{}
	sb := sandbox.New(opts)
	sb.Seed(sandboxkit.Seed{Members: members, Seed: 11, Now: anchor})
	var h http.Handler = sb
	if wrap != nil {
		h = wrap(sb)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := connectors.ConnectionConfig{
		Name:      "members",
		BaseURL:   srv.URL,
		Auth:      connectors.Auth{Type: connectors.AuthBearer, Token: sandbox.DemoKey},
		RateLimit: &connectors.RateLimit{},
		Options:   map[string]any{"locationId": sandbox.DemoLocationID, "companyId": sandbox.DemoCompanyID},
		Webhook:   connectors.Webhook{PublicKey: sb.PublicKeyPEM()},
	}
	if mod != nil {
		mod(&cfg)
	}
	spec := Spec()
	conn, err := spec.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, sb: sb, srv: srv, spec: spec, conn: conn.(*Client)}
}

func (f *fixture) run(name string, in map[string]any) (*connectors.Result, error) {
	f.t.Helper()
	a := f.spec.Action(name)
	if a == nil {
		f.t.Fatalf("no action %s", name)
	}
	return a.Run(context.Background(), f.conn, in)
}

func (f *fixture) must(name string, in map[string]any) *connectors.Result {
	f.t.Helper()
	res, err := f.run(name, in)
	if err != nil {
		f.t.Fatalf("%s: %v", name, err)
	}
	return res
}

func out(r *connectors.Result) map[string]any { return r.Output.(map[string]any) }

func TestContract(t *testing.T) {
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	connectortest.Contract(t, Spec(), doc, connectors.ConnectionConfig{
		Name: "members", Auth: connectors.Auth{Type: connectors.AuthBearer, Token: sandbox.DemoKey},
		RateLimit: &connectors.RateLimit{},
		Options:   map[string]any{"locationId": sandbox.DemoLocationID, "companyId": sandbox.DemoCompanyID},
	})
}

func TestEveryExampleRunsAgainstTheSandbox(t *testing.T) {
	// Examples name ids from the document; the ones that reach the
	// sandbox must at least be answered in the API's own words.
	f := newFixture(t, 5, nil, nil)
	for _, a := range f.spec.Actions {
		t.Run(a.Name, func(t *testing.T) {
			_, err := a.Run(context.Background(), f.conn, a.Example)
			var api *connectors.APIError
			if err != nil && !errors.As(err, &api) && !strings.Contains(err.Error(), "no user has email") {
				t.Errorf("%s: %v", a.Name, err)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	cases := []struct {
		name    string
		auth    connectors.Auth
		wantErr string
	}{
		{"private integration token", connectors.Auth{Type: connectors.AuthBearer, Token: sandbox.DemoKey}, ""},
		{"wrong token", connectors.Auth{Type: connectors.AuthBearer, Token: "pit-wrong"}, "memberships: HTTP 401: Invalid token: access token is invalid"},
		{"oauth2 client credentials", connectors.Auth{Type: connectors.AuthOAuth2, ClientID: sandbox.DemoClientID, ClientSecret: sandbox.DemoClientSecret}, ""},
		{"oauth2 wrong secret", connectors.Auth{Type: connectors.AuthOAuth2, ClientID: sandbox.DemoClientID, ClientSecret: "nope-nope"}, "oauth2 token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 3, nil, func(cfg *connectors.ConnectionConfig) { cfg.Auth = c.auth })
			_, err := f.run("search_users", map[string]any{"companyId": sandbox.DemoCompanyID})
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "nope-nope") {
				t.Errorf("secret leaked into the error: %v", err)
			}
		})
	}
}

func TestOAuthRecoversFromARevokedToken(t *testing.T) {
	f := newFixture(t, 3, nil, func(cfg *connectors.ConnectionConfig) {
		cfg.Auth = connectors.Auth{Type: connectors.AuthOAuth2, ClientID: sandbox.DemoClientID, ClientSecret: sandbox.DemoClientSecret}
	})
	f.must("search_users", map[string]any{"companyId": sandbox.DemoCompanyID})
	f.sb.Reset() // every token the sandbox issued is gone
	f.sb.Seed(sandboxkit.Seed{Members: 3, Seed: 11, Now: anchor})
	if _, err := f.run("search_users", map[string]any{"companyId": sandbox.DemoCompanyID}); err != nil {
		t.Fatalf("after the token was revoked: %v", err)
	}
}

func TestErrorBodiesParsed(t *testing.T) {
	f := newFixture(t, 3, nil, nil)
	cases := []struct {
		name    string
		action  string
		in      map[string]any
		status  int
		message string
	}{
		{"400 user not found", "get_user", map[string]any{"userId": "AAAAAAAAAAAAAAAAAAAA"}, 400, "User not found"},
		{"422 message list", "create_user", map[string]any{"firstName": "A", "email": "a@example.org"}, 422, "companyId should not be empty; lastName should not be empty"},
		{"404 payment", "get_payment", map[string]any{"paymentId": "AAAAAAAAAAAAAAAAAAAA"}, 404, "Payment not found"},
		{"400 other location", "list_users", map[string]any{"locationId": "otherLocation0000000"}, 400, "The token does not have access to this location."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.run(c.action, c.in)
			var api *connectors.APIError
			if !errors.As(err, &api) {
				t.Fatalf("%v is not an *APIError", err)
			}
			if api.Status != c.status || !strings.HasPrefix(api.Message, c.message) || api.Service != "memberships" || api.Retryable {
				t.Errorf("got %+v", api)
			}
		})
	}
	// The 429 and 500 bodies, as the sandbox writes them.
	for status, body := range map[int]string{
		429: `{"statusCode":429,"message":"Too Many Requests"}`,
		500: `{"statusCode":500,"message":"Internal server error"}`,
		401: `{"statusCode":401,"message":"Invalid token: access token is invalid","error":"Unauthorized"}`,
	} {
		api := apiclient.ParseError("memberships", status, http.Header{}, []byte(body))
		if api.Message == "" || api.Code != "" || api.Retryable != (status != 401) {
			t.Errorf("%d: %+v", status, api)
		}
	}
}

func TestSearchPagination(t *testing.T) {
	f := newFixture(t, 55, nil, nil)
	ids := map[string]bool{}
	for skip := 0; skip < 55; skip += 20 {
		o := out(f.must("search_users", map[string]any{"companyId": sandbox.DemoCompanyID, "skip": itoa(skip), "limit": "20"}))
		if o["count"].(float64) != 55 {
			t.Fatalf("count %v", o["count"])
		}
		for _, u := range o["users"].([]any) {
			ids[u.(map[string]any)["id"].(string)] = true
		}
	}
	if len(ids) != 55 {
		t.Errorf("saw %d users across pages, want 55", len(ids))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestUpsertsNeverDuplicate(t *testing.T) {
	f := newFixture(t, 3, nil, nil)
	in := map[string]any{"email": "new.member@example.org", "firstName": "New", "lastName": "Member", "membershipStatus": "pending"}
	first := f.must("upsert_user", in)
	if out(first)["created"] != true || len(first.Wrote) != 1 {
		t.Fatalf("first upsert %v", first)
	}
	in["membershipStatus"] = "active"
	second := f.must("upsert_user", in)
	u := out(second)["user"].(map[string]any)
	if out(second)["created"] != false || u["membershipStatus"] != "active" {
		t.Errorf("second upsert %v", out(second))
	}
	if second.Wrote[0].State != UserFingerprint(u) || second.Wrote[0].Subject != "user/"+u["id"].(string) {
		t.Errorf("wrote %v", second.Wrote)
	}
	pay := map[string]any{"externalRef": "ae-order-42", "userId": u["id"], "amount": 180.0, "currency": "USD", "status": "pending", "source": "accelevents"}
	f.must("upsert_payment", pay)
	pay["status"] = "paid"
	changed := f.must("upsert_payment", pay)
	p := out(changed)
	if p["created"] != false || p["payment"].(map[string]any)["status"] != "paid" || len(changed.Wrote) != 1 {
		t.Errorf("payment upsert %v, wrote %v", p, changed.Wrote)
	}
	// The same again: nothing to send, nothing written.
	same := f.must("upsert_payment", pay)
	if out(same)["created"] != false || len(same.Wrote) != 0 {
		t.Errorf("an unchanged payment upsert %v reported writes %v", out(same), same.Wrote)
	}
	found := out(f.must("find_payment", map[string]any{"externalRef": "ae-order-42"}))
	if found["count"] != 1 || found["found"] != true {
		t.Errorf("find_payment %v", found)
	}
	if st := f.sb.Stats(); st.Duplicates["users"] != 0 || st.Duplicates["payments"] != 0 {
		t.Errorf("duplicates %v", st.Duplicates)
	}
	if _, err := f.run("upsert_payment", map[string]any{"externalRef": "nothing-yet"}); err == nil || !strings.Contains(err.Error(), "needs userId, amount and currency") {
		t.Errorf("upsert of an unknown payment without fields: %v", err)
	}
}

func TestSetMembershipStatus(t *testing.T) {
	f := newFixture(t, 3, nil, nil)
	u := f.must("upsert_user", map[string]any{"email": "s@example.org", "firstName": "S", "lastName": "T", "membershipStatus": "active"})
	id := out(u)["user"].(map[string]any)["id"].(string)
	r := f.must("set_membership_status", map[string]any{"userId": id, "membershipStatus": "eligible", "eligibilityDate": "2026-11-01"})
	o := out(r)
	if o["changed"] != true || o["from"] != "active" || o["to"] != "eligible" || len(r.Wrote) != 1 {
		t.Fatalf("%v %v", o, r.Wrote)
	}
	if statusOf(r.Wrote[0].State) != "eligible" {
		t.Errorf("fingerprint %q does not carry the status", r.Wrote[0].State)
	}
	again := f.must("set_membership_status", map[string]any{"userId": id, "membershipStatus": "eligible"})
	if out(again)["changed"] != false || len(again.Wrote) != 0 {
		t.Errorf("no-op wrote: %v", out(again))
	}
}

// dropAfter applies matching requests, then closes the connection without
// an answer: the ambiguous failure. dropBefore closes without applying.
func dropper(match string, apply bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method+" "+r.URL.Path != match {
				next.ServeHTTP(w, r)
				return
			}
			if apply {
				next.ServeHTTP(httptest.NewRecorder(), r)
			}
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			conn.Close()
		})
	}
}

func TestSettleInDoubtCreates(t *testing.T) {
	userIn := func() map[string]any {
		return map[string]any{"companyId": sandbox.DemoCompanyID, "firstName": "In", "lastName": "Doubt", "email": "in.doubt@example.org",
			"password": "x-secret", "type": "account", "role": "user", "locationIds": []any{sandbox.DemoLocationID}}
	}
	cases := []struct {
		name     string
		action   string
		match    string
		applied  bool
		in       func(f *fixture) map[string]any
		happened bool
	}{
		{"user created, answer lost", "create_user", "POST /users/", true, func(*fixture) map[string]any { return userIn() }, true},
		{"user not created", "create_user", "POST /users/", false, func(*fixture) map[string]any { return userIn() }, false},
		{"payment created, answer lost", "create_payment", "POST /payments", true, paymentIn, true},
		{"payment not created", "create_payment", "POST /payments", false, paymentIn, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 3, dropper(c.match, c.applied), nil)
			in := c.in(f)
			_, err := f.run(c.action, in)
			if !errors.Is(err, connectors.ErrInDoubt) {
				t.Fatalf("error %v, want in doubt", err)
			}
			res, happened, err := f.spec.Action(c.action).Settle(context.Background(), f.conn, in)
			if err != nil || happened != c.happened {
				t.Fatalf("settle: happened %v, err %v; want %v", happened, err, c.happened)
			}
			if happened && (res == nil || len(res.Wrote) != 1) {
				t.Errorf("settled result %+v", res)
			}
		})
	}
	t.Run("payment without externalRef", func(t *testing.T) {
		f := newFixture(t, 1, nil, nil)
		_, _, err := f.spec.Action("create_payment").Settle(context.Background(), f.conn, map[string]any{"userId": "x", "amount": 1, "currency": "USD"})
		if err == nil || !strings.Contains(err.Error(), "without externalRef") {
			t.Errorf("%v", err)
		}
	})
}

func paymentIn(f *fixture) map[string]any {
	o := out(f.must("search_users", map[string]any{"companyId": sandbox.DemoCompanyID, "limit": "1"}))
	id := o["users"].([]any)[0].(map[string]any)["id"]
	return map[string]any{"userId": id, "amount": 95.0, "currency": "USD", "status": "paid", "externalRef": "ae-order-777"}
}

func TestGetUserOutputIsTyped(t *testing.T) {
	s := Spec()
	sch, err := connectors.CompileSchema("get_user", s.Action("get_user").Output)
	if err != nil {
		t.Fatal(err)
	}
	_ = sch
	var doc map[string]any
	if err := json.Unmarshal(s.Action("get_user").Output, &doc); err != nil {
		t.Fatal(err)
	}
	props := doc["properties"].(map[string]any)
	for field, typ := range map[string]string{"eligibilityDate": "string", "membershipStatus": "string", "enrollmentDate": "string", "fullName": "string", "email": "string", "dateUpdated": "string"} {
		p, ok := props[field].(map[string]any)
		if !ok || p["type"] != typ {
			t.Errorf("get_user output %s: %v", field, props[field])
		}
	}
}

// memPrior is the engine's per-subject memory, in a map.
type memPrior struct {
	mu sync.Mutex
	m  map[string]string
}

func (p *memPrior) Lookup(_ context.Context, subjects []string) (map[string]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]string{}
	for _, s := range subjects {
		if v, ok := p.m[s]; ok {
			out[s] = v
		}
	}
	return out, nil
}

// poller drives one trigger as the engine does: the cursor and states of
// each poll feed the next.
type pollDriver struct {
	t      *testing.T
	f      *fixture
	trig   *connectors.TriggerSpec
	params map[string]any
	start  connectors.Start
	cursor string
	prior  *memPrior
	now    time.Time
	states int // the states the polls wrote
}

func (f *fixture) poller(name string, start connectors.Start, params map[string]any) *pollDriver {
	return &pollDriver{t: f.t, f: f, trig: f.spec.Trigger(name), params: params, start: start, prior: &memPrior{m: map[string]string{}}, now: time.Now()}
}

// drain polls until no more pages are ready, and returns the events.
func (d *pollDriver) drain() []connectors.Event {
	d.t.Helper()
	var evs []connectors.Event
	for i := 0; i < 100; i++ {
		res, err := d.trig.Poll(context.Background(), d.f.conn, connectors.PollRequest{Params: d.params, Cursor: d.cursor, Start: d.start, Prior: d.prior, Now: d.now})
		if err != nil {
			d.t.Fatalf("poll %s: %v", d.trig.Name, err)
		}
		evs = append(evs, res.Events...)
		d.cursor = res.Cursor
		d.prior.mu.Lock()
		for _, s := range res.States {
			d.prior.m[s.Subject] = s.State
		}
		d.prior.mu.Unlock()
		d.states += len(res.States)
		if !res.More {
			return evs
		}
	}
	d.t.Fatal("poll never finished")
	return nil
}

// TestUserTriggersPoll runs the user triggers both ways: scanning the
// documented search against a sandbox that refuses undocumented
// parameters (the real API's path), and incrementally where the
// connection says the API supports it.
func TestUserTriggersPoll(t *testing.T) {
	t.Run("scan", func(t *testing.T) { testUserTriggersPoll(t, newFixture(t, 230, nil, nil)) })
	t.Run("incremental", func(t *testing.T) {
		testUserTriggersPoll(t, newFixtureWith(t, sandboxkit.Options{AllowUndocumented: true}, 230, nil, func(c *connectors.ConnectionConfig) {
			c.Options["incrementalSearch"] = true
		}))
	})
}

func TestIncrementalSearchNeedsAnAPIThatHasIt(t *testing.T) {
	f := newFixture(t, 5, nil, func(c *connectors.ConnectionConfig) { c.Options["incrementalSearch"] = true })
	_, err := f.spec.Trigger("user_updated").Poll(context.Background(), f.conn, connectors.PollRequest{Start: connectors.StartBeginning})
	if err == nil || !strings.Contains(err.Error(), "property updatedAfter should not exist") && !strings.Contains(err.Error(), "property order should not exist") {
		t.Fatalf("incremental poll against the documented API: %v, want the 422 naming the undocumented parameter", err)
	}
	if _, err := Spec().Open(connectors.ConnectionConfig{Name: "x", Auth: connectors.Auth{Type: connectors.AuthBearer, Token: "t"},
		Options: map[string]any{"incrementalSearch": "yes"}}); err == nil || !strings.Contains(err.Error(), "incrementalSearch must be true or false") {
		t.Errorf("a non-boolean option: %v", err)
	}
}

// TestScanCost pins the documented cost model (README: polling).
func TestScanCost(t *testing.T) {
	for _, tc := range []struct {
		members, triggers int
		share             float64
		requests          int
		interval          time.Duration
	}{
		{200, 1, 0, 2, time.Second}, // 0.864 s of the daily budget
		{10_000, 4, 0, 100, 173 * time.Second},
		{100_000, 4, 0.5, 1000, 3456 * time.Second},
		{1_000_000, 4, 0.5, 10000, 34560 * time.Second},
	} {
		if got := ScanRequests(tc.members); got != tc.requests {
			t.Errorf("ScanRequests(%d) = %d, want %d", tc.members, got, tc.requests)
		}
		if got := ScanInterval(tc.members, tc.triggers, tc.share); got != tc.interval.Round(time.Second) {
			t.Errorf("ScanInterval(%d, %d, %g) = %s, want %s", tc.members, tc.triggers, tc.share, got, tc.interval.Round(time.Second))
		}
	}
}

// TestScanEndsOnTheCountedPage: a scan stops on the page that reaches
// the search's count, without asking for an empty page after it, both
// when the last page is full and when it is short.
func TestScanEndsOnTheCountedPage(t *testing.T) {
	for _, members := range []int{200, 230} {
		var searches atomic.Int64
		count := func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/users/search" {
					searches.Add(1)
				}
				h.ServeHTTP(w, r)
			})
		}
		f := newFixture(t, members, count, nil)
		total := int(out(f.must("search_users", map[string]any{"companyId": sandbox.DemoCompanyID, "limit": "1"}))["count"].(float64))
		searches.Store(0)
		d := f.poller("user_created", connectors.StartBeginning, nil)
		if evs := d.drain(); len(evs) < members {
			t.Fatalf("%d members: the scan emitted %d events", members, len(evs))
		}
		if got, want := searches.Load(), int64(ScanRequests(total)); got != want {
			t.Errorf("%d users: the scan sent %d searches, want %d (one per page of 100)", total, got, want)
		}
		// The next scan starts again from the first user.
		searches.Store(0)
		d.drain()
		if got, want := searches.Load(), int64(ScanRequests(total)); got != want {
			t.Errorf("%d users, second scan: %d searches, want %d", total, got, want)
		}
	}
}

// TestScanWritesOnlyChangedStates: the first scan remembers every user's
// state; a scan of unchanged users writes none; after a change, only the
// changed users' states are written again.
func TestScanWritesOnlyChangedStates(t *testing.T) {
	f := newFixture(t, 230, nil, nil)
	d := f.poller("user_changed", connectors.StartNow, nil)
	d.drain()
	total := d.states
	if total < 230 {
		t.Fatalf("the first scan wrote %d states for 230 users", total)
	}
	d.states = 0
	d.drain()
	if d.states != 0 {
		t.Errorf("a scan of unchanged users wrote %d states, want 0", d.states)
	}
	changed, err := f.sb.Mutate(sandboxkit.Mutation{Kind: "become_eligible", Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	d.states = 0
	d.drain()
	if d.states != 2 {
		t.Errorf("after 2 users changed (%v), the scan wrote %d states", changed["ids"], d.states)
	}
}

func testUserTriggersPoll(t *testing.T, f *fixture) {
	created := f.poller("user_created", connectors.StartNow, nil)
	updated := f.poller("user_updated", connectors.StartNow, nil)
	changedOrNew := f.poller("user_changed", connectors.StartNow, nil)
	status := f.poller("membership_status_changed", connectors.StartNow, map[string]any{"from": "active", "to": []any{"eligible"}})
	lapsed := f.poller("membership_status_changed", connectors.StartNow, map[string]any{"to": "lapsed"})
	for _, d := range []*pollDriver{created, updated, changedOrNew, status, lapsed} {
		if evs := d.drain(); len(evs) != 0 {
			t.Fatalf("%s starting now emitted %d events for existing members", d.trig.Name, len(evs))
		}
	}
	res := f.must("upsert_user", map[string]any{"email": "fresh@example.org", "firstName": "Fresh", "lastName": "Face", "membershipStatus": "active"})
	newID := out(res)["user"].(map[string]any)["id"].(string)
	changed, err := f.sb.Mutate(sandboxkit.Mutation{Kind: "become_eligible", Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	evs := created.drain()
	if len(evs) != 1 || evs[0].Subject != "user/"+newID || evs[0].Fingerprint != res.Wrote[0].State {
		t.Errorf("user_created: %+v; want one for %s with the write's fingerprint (echo suppression)", evs, newID)
	}
	evs = updated.drain()
	if len(evs) != 2 {
		t.Errorf("user_updated: %d events, want the 2 mutated members", len(evs))
	}
	evs = changedOrNew.drain()
	if len(evs) != 3 {
		t.Errorf("user_changed: %d events, want the new member and the 2 mutated ones", len(evs))
	}
	evs = status.drain()
	if len(evs) != 2 {
		t.Fatalf("status changed: %d events, want 2 (%v)", len(evs), changed["ids"])
	}
	for _, ev := range evs {
		if ev.Data["from"] != "active" || ev.Data["to"] != "eligible" || ev.Data["user"] == nil {
			t.Errorf("status event %v", ev.Data)
		}
	}
	if evs := lapsed.drain(); len(evs) != 0 {
		t.Errorf("to=lapsed let %d events through", len(evs))
	}
	// A repeated poll from an older cursor sees the same changes with the
	// same IDs, so the engine runs them once.
	if evs := status.drain(); len(evs) != 0 {
		t.Errorf("resumed cursor repeated %d events", len(evs))
	}
	// Echo suppression: the status write memberflow makes has the
	// fingerprint the trigger then reports.
	w := f.must("set_membership_status", map[string]any{"userId": newID, "membershipStatus": "eligible"})
	evs = status.drain()
	if len(evs) != 1 || evs[0].Fingerprint != w.Wrote[0].State || evs[0].ID == "" {
		t.Errorf("own write: %+v vs %v", evs, w.Wrote)
	}
}

func TestUserCreatedFromTheBeginning(t *testing.T) {
	f := newFixture(t, 230, nil, nil)
	d := f.poller("user_created", connectors.StartBeginning, nil)
	evs := d.drain()
	if len(evs) != 230 {
		t.Fatalf("backfill emitted %d, want 230", len(evs))
	}
	ids := map[string]bool{}
	for _, ev := range evs {
		ids[ev.ID] = true
		// The record as the API sent it is the event's stored data: it
		// must say what Data says.
		var stored map[string]any
		if err := json.Unmarshal(ev.Raw, &stored); err != nil || !reflect.DeepEqual(stored, ev.Data) {
			t.Fatalf("event %s: Raw %s (%v) is not its Data %v", ev.ID, ev.Raw, err, ev.Data)
		}
	}
	if len(ids) != 230 {
		t.Errorf("%d distinct event ids", len(ids))
	}
	st := f.poller("membership_status_changed", connectors.StartBeginning, map[string]any{"to": "eligible"})
	for _, ev := range st.drain() {
		if ev.Data["from"] != nil || ev.Data["to"] != "eligible" {
			t.Errorf("backfill status event %v", ev.Data)
		}
		if ev.Raw != nil {
			t.Errorf("status event %s carries the record's text as its data: %s", ev.ID, ev.Raw)
		}
	}
	if evs := d.drain(); len(evs) != 0 {
		t.Errorf("caught up, yet %d more", len(evs))
	}
}

func TestPaymentTriggersPoll(t *testing.T) {
	f := newFixture(t, 40, nil, nil)
	created := f.poller("payment_created", connectors.StartNow, map[string]any{"status": "paid"})
	updated := f.poller("payment_updated", connectors.StartNow, nil)
	created.drain()
	updated.drain()
	if _, err := f.sb.Mutate(sandboxkit.Mutation{Kind: "payment", Count: 3}); err != nil {
		t.Fatal(err)
	}
	evs := created.drain()
	if len(evs) != 3 {
		t.Fatalf("payment_created: %d", len(evs))
	}
	ref := evs[0].Data["externalRef"].(string)
	w := f.must("upsert_payment", map[string]any{"externalRef": ref, "status": "refunded"})
	upd := updated.drain()
	if len(upd) != 1 || upd[0].Data["status"] != "refunded" || upd[0].Fingerprint != w.Wrote[0].State {
		t.Errorf("payment_updated: %+v", upd)
	}
}

// TestClientKeepsUnderTheRateLimitHeaders: the sandbox counts a small
// window and says so in X-RateLimit-*; the client pauses when the window
// is nearly spent instead of meeting a 429.
func TestClientKeepsUnderTheRateLimitHeaders(t *testing.T) {
	var mu sync.Mutex
	statuses := map[int]int{}
	count := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			mu.Lock()
			statuses[rec.Code]++
			mu.Unlock()
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	}
	sb := sandbox.New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{Requests: 3, Per: 300 * time.Millisecond}})
	sb.Seed(sandboxkit.Seed{Members: 3, Seed: 1, Now: anchor})
	srv := httptest.NewServer(count(sb))
	defer srv.Close()
	conn, err := Open(connectors.ConnectionConfig{
		Name: "members", BaseURL: srv.URL, RateLimit: &connectors.RateLimit{},
		Auth:    connectors.Auth{Type: connectors.AuthBearer, Token: sandbox.DemoKey},
		Options: map[string]any{"companyId": sandbox.DemoCompanyID},
	})
	if err != nil {
		t.Fatal(err)
	}
	search := Spec().Action("search_users")
	for i := 0; i < 8; i++ {
		if _, err := search.Run(context.Background(), conn, map[string]any{"companyId": sandbox.DemoCompanyID}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if statuses[http.StatusTooManyRequests] != 0 || statuses[http.StatusOK] != 8 {
		t.Errorf("answers by status %v; want 8 OK and no 429", statuses)
	}
}

// TestOverlappingPollsKeepEventIDs: an engine that crashed before storing
// a poll's cursor polls again from the older one and must get the same
// event IDs, so that nothing runs twice.
func TestOverlappingPollsKeepEventIDs(t *testing.T) {
	f := newFixture(t, 120, nil, nil)
	d := f.poller("user_updated", connectors.StartNow, nil)
	d.drain()
	saved, savedPrior := d.cursor, map[string]string{}
	for k, v := range d.prior.m {
		savedPrior[k] = v
	}
	if _, err := f.sb.Mutate(sandboxkit.Mutation{Kind: "change_email", Count: 4}); err != nil {
		t.Fatal(err)
	}
	first := d.drain()
	d.cursor, d.prior = saved, &memPrior{m: savedPrior}
	second := d.drain()
	if len(first) != 4 || len(second) != 4 {
		t.Fatalf("%d then %d events, want 4 both times", len(first), len(second))
	}
	for i := range first {
		if first[i].ID != second[i].ID || first[i].Fingerprint != second[i].Fingerprint {
			t.Errorf("event %d: %s vs %s", i, first[i].ID, second[i].ID)
		}
	}
	if evs := d.drain(); len(evs) != 0 {
		t.Errorf("caught up, yet %d events", len(evs))
	}
}

func TestDryRunSendsNoWrite(t *testing.T) {
	var planned []connectors.PlannedWrite
	f := newFixture(t, 3, nil, func(cfg *connectors.ConnectionConfig) {
		cfg.DryRun = func(w connectors.PlannedWrite) { planned = append(planned, w) }
	})
	res := f.must("upsert_user", map[string]any{"email": "dry@example.org", "firstName": "D", "lastName": "R"})
	if out(res)["created"] != true || len(res.Wrote) != 0 {
		t.Errorf("dry upsert %v %v", res.Output, res.Wrote)
	}
	if len(planned) != 1 || planned[0].Method != "POST" || planned[0].Path != "/users/" {
		t.Errorf("planned %+v", planned)
	}
	if f.sb.Stats().Objects["users"] != 3 {
		t.Errorf("a dry run created a user")
	}
}

// A scan that ends asks for the pace the documented daily budget allows,
// shared by every recipe scanning the location.
func TestScansKeepToTheDailyBudget(t *testing.T) {
	f := newFixture(t, 250, nil, nil)
	scan := func(recipe string) time.Duration {
		t.Helper()
		cursor := ""
		for {
			res, err := f.spec.Trigger("user_created").Poll(context.Background(), f.conn, connectors.PollRequest{Cursor: cursor, Start: connectors.StartBeginning, Now: time.Now(), Recipe: recipe})
			if err != nil {
				t.Fatal(err)
			}
			if !res.More {
				return res.MinInterval
			}
			if res.MinInterval != 0 {
				t.Fatalf("a page in the middle of a scan asks %s", res.MinInterval)
			}
			cursor = res.Cursor
		}
	}
	if got, want := scan("a"), ScanInterval(250, 1, 0.5); got != want || got <= 0 {
		t.Fatalf("one recipe: %s, want %s", got, want)
	}
	if got, want := scan("b"), ScanInterval(250, 2, 0.5); got != want || got <= ScanInterval(250, 1, 0.5) {
		t.Fatalf("two recipes: %s, want %s", got, want)
	}
}

// The user triggers read the connection's location only: the search's
// locationId filter is sent (with an agency token, the search would read
// every sub-account of the company).
func TestUserScansAskForTheConnectionsLocation(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	f := newFixture(t, 5, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/users/search") {
				mu.Lock()
				seen = append(seen, r.URL.Query().Get("locationId"))
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		})
	}, nil)
	if _, err := f.spec.Trigger("user_created").Poll(context.Background(), f.conn, connectors.PollRequest{Start: connectors.StartBeginning, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != sandbox.DemoLocationID {
		t.Fatalf("searches asked for locations %q, want %q", seen, sandbox.DemoLocationID)
	}
}
