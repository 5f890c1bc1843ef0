package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	accelevents "github.com/memberflow/memberflow/connectors/accelevents/sandbox"
	_ "github.com/memberflow/memberflow/connectors/all" // registers the service sandboxes
	"github.com/memberflow/memberflow/connectors/apiclient"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// demoClient calls one mounted service the way its connector does, with
// the demo credentials.
func demoClient(t testing.TB, base, service string, auth connectors.Auth) *apiclient.Client {
	t.Helper()
	cfg := apiclient.Config{Service: service, BaseURL: base + "/" + service, Auth: auth}
	switch service {
	case "memberships":
		cfg.Header = http.Header{"Version": {"2021-07-28"}}
	case "accredible":
		cfg.APIKeyScheme = "Token token=%s"
	case "accelevents":
		cfg.APIKeyScheme = "Bearer %s"
	}
	c, err := apiclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// probes are simple reads each service answers with seeded data.
var probes = map[string]apiclient.Request{
	"memberships": {Method: "GET", Path: "/users/search", Query: map[string][]string{"companyId": {"mfSandboxCompany0001"}, "limit": {"3"}}},
	"accredible":  {Method: "GET", Path: "/v1/issuer/all_groups"},
	"accelevents": {Method: "GET", Path: "/rest/events/" + accelevents.DemoEventURL + "/staff/allAttendees", Query: map[string][]string{"page": {"0"}, "size": {"3"}}},
}

func realServer(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts.URL
}

func TestRealServicesWithDemoAuth(t *testing.T) {
	s, base := realServer(t, Options{Members: 40, Seed: 3})
	if got := strings.Join(s.Services(), ","); got != "accelevents,accredible,memberships" { // registered, by name
		t.Fatalf("services %s", got)
	}
	for _, name := range s.Services() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			res, err := demoClient(t, base, name, DemoAuth(name)).Do(ctx, probes[name])
			if err != nil {
				t.Fatalf("with the demo credentials: %v", err)
			}
			if len(res.Body) < 20 {
				t.Fatalf("answer %s", res.Body)
			}
			wrong := DemoAuth(name)
			wrong.Key, wrong.Token = "not-the-demo-key", "not-the-demo-key"
			_, err = demoClient(t, base, name, wrong).Do(ctx, probes[name])
			var api *connectors.APIError
			if !errors.As(err, &api) || api.Status != http.StatusUnauthorized {
				t.Fatalf("with a wrong key: %v, want the service's 401", err)
			}
		})
	}
	st := s.Stats()
	if st.Services["memberships"].Objects["users"] != 40 {
		t.Errorf("memberships users = %d, want 40", st.Services["memberships"].Objects["users"])
	}
	if st.Totals.Responses["401"] != 3 || st.Totals.Responses["200"] != 3 {
		t.Errorf("responses %v, want three 200 and three 401", st.Totals.Responses)
	}
}

func TestDemoAuthUnknownConnector(t *testing.T) {
	if got := DemoAuth("files"); got.Type != connectors.AuthNone {
		t.Fatalf("DemoAuth(files) = %+v", got)
	}
	if DemoWebhook("accelevents").Secret != accelevents.DemoWebhookSecret || DemoWebhook("accredible").Secret != "" {
		t.Fatal("DemoWebhook secrets")
	}
}

func TestRealServicesAreDeterministic(t *testing.T) {
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	now := func() time.Time { return at }
	read := func(seed int64) map[string]string {
		_, base := realServer(t, Options{Members: 25, Seed: seed, Now: now})
		out := map[string]string{}
		for name, probe := range probes {
			res, err := demoClient(t, base, name, DemoAuth(name)).Do(context.Background(), probe)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = string(res.Body)
		}
		return out
	}
	a, b, c := read(8), read(8), read(9)
	for name := range probes {
		if a[name] != b[name] {
			t.Errorf("%s: same seed, different data", name)
		}
	}
	if a["memberships"] == c["memberships"] {
		t.Errorf("memberships: different seeds, same data")
	}
}

func TestRealResetAndMutate(t *testing.T) {
	s, base := realServer(t, Options{Members: 30, Seed: 2, RateLimit: &sandboxkit.Limit{}})
	before := s.Stats()
	res, err := s.Mutate([]MutateRequest{
		{Service: "memberships", Kind: "new_member", Count: 2},
		{Service: "accredible", Kind: "issue_credential", Count: 3},
		{Service: "accelevents", Kind: "register", Count: 1},
	})
	if err != nil {
		t.Fatalf("mutate: %v (applied %v)", err, res)
	}
	after := s.Stats()
	if after.Services["memberships"].Objects["users"] != before.Services["memberships"].Objects["users"]+2 {
		t.Errorf("new_member: users %d -> %d", before.Services["memberships"].Objects["users"], after.Services["memberships"].Objects["users"])
	}
	if after.Services["accredible"].Objects["credentials"] != before.Services["accredible"].Objects["credentials"]+3 {
		t.Errorf("issue_credential: credentials %d -> %d", before.Services["accredible"].Objects["credentials"], after.Services["accredible"].Objects["credentials"])
	}
	if _, err := s.Mutate([]MutateRequest{{Service: "memberships", Kind: "explode"}}); err == nil || !strings.Contains(err.Error(), `mutation 0 (memberships.explode)`) {
		t.Errorf("unknown kind: %v", err)
	}
	demoClient(t, base, "memberships", DemoAuth("memberships")).Do(context.Background(), probes["memberships"])
	s.Reset()
	reset := s.Stats()
	for name, st := range before.Services {
		for kind, n := range st.Objects {
			if reset.Services[name].Objects[kind] != n {
				t.Errorf("after reset %s %s = %d, want the seeded %d", name, kind, reset.Services[name].Objects[kind], n)
			}
		}
	}
	if reset.Totals.Requests != 0 {
		t.Errorf("requests after reset: %d", reset.Totals.Requests)
	}
}

func TestRealRateLimitOverride(t *testing.T) {
	_, base := realServer(t, Options{Members: 5, RateLimit: &sandboxkit.Limit{Requests: 2, Per: time.Hour}})
	for name, probe := range probes {
		c := demoClient(t, base, name, DemoAuth(name))
		var last error
		for i := 0; i < 3; i++ {
			_, last = c.Do(context.Background(), probe)
		}
		var api *connectors.APIError
		if !errors.As(last, &api) || api.Status != http.StatusTooManyRequests {
			t.Errorf("%s: third request in a 2-per-hour window: %v, want 429", name, last)
		}
	}
}

// TestWebhooksThroughTheCombinedServer registers a receiver with every
// service that delivers webhooks, mutates data, and checks that signed
// deliveries arrive.
func TestWebhooksThroughTheCombinedServer(t *testing.T) {
	got := make(chan http.Header, 64)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	defer receiver.Close()
	s, _ := realServer(t, Options{Members: 10, Seed: 5})
	names, err := s.RegisterWebhook("", receiver.URL+"/hooks")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "accelevents,memberships" {
		t.Fatalf("registered with %v; Accredible has no webhooks", names)
	}
	if _, err := s.Mutate([]MutateRequest{{Service: "memberships", Kind: "lapse", Count: 1}, {Service: "accelevents", Kind: "register", Count: 1}}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for !(seen["memberships"] && seen["accelevents"]) {
		select {
		case h := <-got:
			if h.Get("x-wh-signature") != "" {
				seen["memberships"] = true
			}
			if h.Get(accelevents.SignatureHeader) != "" {
				seen["accelevents"] = true
			}
		case <-deadline:
			t.Fatalf("signed deliveries seen: %v", seen)
		}
	}
}

// TestDroppedCreatesAreInDoubt drives the ambiguous case end to end: the
// sandbox drops every connection, about half after applying the create;
// the client reports each as in doubt and never re-sends it.
func TestDroppedCreatesAreInDoubt(t *testing.T) {
	s, base := realServer(t, Options{Members: 5, Seed: 6, Faults: sandboxkit.Faults{DropRate: 1}})
	c := demoClient(t, base, "accredible", DemoAuth("accredible"))
	for i := 0; i < 10; i++ {
		body := map[string]any{"credential": map[string]any{"group_id": 100001, "recipient": map[string]any{"name": "Ada Lovelace", "email": "ada@example.org"}}}
		_, err := c.Do(context.Background(), apiclient.Request{Method: "POST", Path: "/v1/credentials", Body: body})
		if !errors.Is(err, connectors.ErrInDoubt) {
			t.Fatalf("create %d: err = %v, want in doubt", i, err)
		}
	}
	st := s.Stats().Services["accredible"]
	var posts int64
	for route, n := range st.Requests {
		if strings.HasPrefix(route, "POST ") {
			posts += n
		}
	}
	if posts != 10 {
		t.Fatalf("requests %v: each create must be sent exactly once", st.Requests)
	}
	applied := st.Objects["credentials"]
	if applied == 0 || applied == 10 {
		t.Fatalf("%d of 10 dropped creates applied; want some, not all", applied)
	}
	if st.Duplicates["credentials"] != applied-1 {
		t.Errorf("duplicates %d with %d identical credentials applied", st.Duplicates["credentials"], applied)
	}
}

// The seeded attendees are members: same email, the member's id as
// externalId, so registrations and payments can be matched to members.
func TestSeededAttendeesAreMembers(t *testing.T) {
	s, err := New(Options{Members: 50, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var members sandboxkit.PeopleSource
	var attendees sandboxkit.Service
	for _, m := range s.services {
		if src, ok := m.svc.(sandboxkit.PeopleSource); ok {
			members = src
		}
		if m.name == "accelevents" {
			attendees = m.svc
		}
	}
	if members == nil || attendees == nil {
		t.Fatal("memberships or accelevents is not mounted")
	}
	byEmail := map[string]string{}
	for i := 0; ; i++ {
		p, ok := members.Person(i)
		if !ok {
			break
		}
		byEmail[strings.ToLower(p.Email)] = p.ID
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	req, _ := http.NewRequest("GET", ts.URL+"/accelevents/rest/events/annual-conference-2026/staff/allAttendees?page=0&size=100", nil)
	req.Header.Set("Authorization", "Bearer "+DemoAuth("accelevents").Key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var page struct {
		Data []struct {
			Email      string `json:"email"`
			ExternalID string `json:"externalId"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	if len(page.Data) == 0 {
		t.Fatal("no seeded attendees")
	}
	linked := 0
	for _, a := range page.Data {
		if id, ok := byEmail[a.Email]; ok && (a.ExternalID == id || a.ExternalID == "") {
			linked++
		}
	}
	if linked != len(page.Data) {
		t.Fatalf("%d of %d seeded attendees are members", linked, len(page.Data))
	}
}
