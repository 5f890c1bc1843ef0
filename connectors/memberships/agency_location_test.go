package memberships

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/memberships/sandbox"
)

// createUserIn adds a user to a location of the company with the agency
// token, as another client of the company would, and returns its id.
func (f *fixture) createUserIn(location, first, last, email string) string {
	f.t.Helper()
	body, _ := json.Marshal(map[string]any{"companyId": sandbox.DemoCompanyID, "firstName": first, "lastName": last, "email": email,
		"password": "Secret-123", "type": "account", "role": "user", "locationIds": []string{location}})
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/users/", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+sandbox.DemoAgencyKey)
	req.Header.Set("Version", sandbox.APIVersion)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	var u map[string]any
	if err := json.NewDecoder(res.Body).Decode(&u); err != nil || res.StatusCode != http.StatusCreated {
		f.t.Fatalf("creating %s in %s: %d %v %v", email, location, res.StatusCode, u, err)
	}
	return u["id"].(string)
}

// getUserRaw reads a user with the agency token, past the connector.
func (f *fixture) getUserRaw(id string) map[string]any {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/users/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+sandbox.DemoAgencyKey)
	req.Header.Set("Version", sandbox.APIVersion)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	var u map[string]any
	if err := json.NewDecoder(res.Body).Decode(&u); err != nil {
		f.t.Fatal(err)
	}
	return u
}

func agencyFixture(t *testing.T, members int, rc *recorder) *fixture {
	return newFixture(t, members, rc.wrap, func(cfg *connectors.ConnectionConfig) {
		cfg.Auth.Token = sandbox.DemoAgencyKey
		cfg.Options["access"] = "agency"
	})
}

// TestAgencyAccessStaysInItsLocation: POST /users/search/filter-by-email
// searches the whole company (FilterByEmailDto has companyId, no
// location), so an agency connection keeps only the users whose
// roles.locationIds hold its location: a same-email user of another
// sub-account is neither found, nor updated by upsert_user, nor taken
// for a create's result; and the look-up pages on the service's pages,
// not on the users kept.
func TestAgencyAccessStaysInItsLocation(t *testing.T) {
	rc := &recorder{}
	f := agencyFixture(t, 0, rc)
	elsewhere := f.createUserIn(sandbox.SecondLocationID, "Ada", "North", "ada@example.org") // older, another location
	mine := f.createUserIn(sandbox.DemoLocationID, "Ada", "Lovelace", "ada@example.org")
	onlyElsewhere := f.createUserIn(sandbox.ThirdLocationID, "Grace", "South", "grace@example.org")
	rc.take()

	t.Run("find_user_by_email", func(t *testing.T) {
		for _, c := range []struct {
			email string
			found bool
			id    string
		}{{"ada@example.org", true, mine}, {"Grace@example.org", false, ""}} {
			got := out(f.must("find_user_by_email", map[string]any{"email": c.email}))
			reqs := rc.take()
			if got["found"] != c.found || (c.found && (got["count"] != 1 || got["user"].(map[string]any)["id"] != c.id)) || (!c.found && got["count"] != 0) {
				t.Errorf("%s: found %v, count %v, user %v; want found %v, 1 user %s of the connection's location", c.email, got["found"], got["count"], got["user"], c.found, c.id)
			}
			if len(reqs) != 1 || reqs[0].path != "/users/search/filter-by-email" || reqs[0].body["projection"] != "all" {
				t.Errorf("%s: requests %+v, want one filter-by-email with projection all", c.email, reqs)
			}
		}
	})
	t.Run("batch", func(t *testing.T) {
		items, err := f.spec.Action("find_user_by_email").Batch.Run(context.Background(), f.conn,
			[]map[string]any{{"email": "ada@example.org"}, {"email": "grace@example.org"}})
		rc.take()
		if err != nil {
			t.Fatal(err)
		}
		if a := out(items[0].Result); a["count"] != 1 || a["user"].(map[string]any)["id"] != mine {
			t.Errorf("batch ada: %v, want only %s", a, mine)
		}
		if g := out(items[1].Result); g["found"] != false || g["count"] != 0 {
			t.Errorf("batch grace: %v, want not found", g)
		}
	})
	t.Run("upsert_user creates in its location", func(t *testing.T) {
		res, err := f.run("upsert_user", map[string]any{"email": "grace@example.org", "firstName": "Grace", "lastName": "Hopper", "planId": "plan_gold"})
		rc.take()
		if err != nil {
			t.Fatal(err)
		}
		got := out(res)
		if got["created"] != true || got["user"].(map[string]any)["id"] == onlyElsewhere {
			t.Errorf("upsert %v, want a new user in %s", got, sandbox.DemoLocationID)
		}
		if u := f.getUserRaw(onlyElsewhere); u["planId"] == "plan_gold" {
			t.Errorf("the user of another location was updated: %v", u)
		}
	})
	t.Run("upsert_user updates its own", func(t *testing.T) {
		got := out(f.must("upsert_user", map[string]any{"email": "ada@example.org", "planId": "plan_gold"}))
		rc.take()
		if got["created"] != false || got["user"].(map[string]any)["id"] != mine {
			t.Errorf("upsert %v, want %s updated", got, mine)
		}
		if u := f.getUserRaw(elsewhere); u["planId"] == "plan_gold" {
			t.Errorf("the user of another location was updated: %v", u)
		}
	})
	t.Run("create_user settles in the create's location", func(t *testing.T) {
		newest := f.createUserIn(sandbox.SecondLocationID, "Ada", "Again", "ada@example.org") // newer than mine, elsewhere
		rc.take()
		res, ok, err := f.spec.Action("create_user").Settle(context.Background(), f.conn,
			map[string]any{"email": "ada@example.org", "locationIds": []any{sandbox.DemoLocationID}})
		rc.take()
		if err != nil || !ok || res.Output.(map[string]any)["id"] != mine {
			t.Errorf("settle: %v %v %v, want %s, not %s of another location", res, ok, err, mine, newest)
		}
	})
	t.Run("the look-up pages on the service's pages", func(t *testing.T) {
		for i := 0; i < 120; i++ {
			f.createUserIn(sandbox.SecondLocationID, "Many", "Elsewhere"+itoa(i), "many@example.org")
		}
		last := f.createUserIn(sandbox.DemoLocationID, "Many", "Here", "many@example.org")
		rc.take()
		got := out(f.must("find_user_by_email", map[string]any{"email": "many@example.org"}))
		reqs := rc.take()
		if got["found"] != true || got["count"] != 1 || got["user"].(map[string]any)["id"] != last {
			t.Errorf("found %v count %v user %v, want only %s", got["found"], got["count"], got["user"], last)
		}
		var skips []any
		for _, r := range reqs {
			skips = append(skips, r.body["skip"])
		}
		if len(reqs) != 2 || skips[0] != "0" || skips[1] != "100" {
			t.Errorf("filter-by-email pages at skip %v, want 0 and 100", skips)
		}
	})
}

// TestAgencyAccessWritesInsideItsLocation: the writes an agency token
// could make anywhere in the company keep to the connection's location
// where the connector can tell at no extra request: set_membership_status
// reads the user first, create_user and update_user name the locations.
func TestAgencyAccessWritesInsideItsLocation(t *testing.T) {
	rc := &recorder{}
	f := agencyFixture(t, 0, rc)
	elsewhere := f.createUserIn(sandbox.SecondLocationID, "Ada", "North", "ada@example.org")
	rc.take()
	cases := []struct {
		action string
		in     map[string]any
		want   string
	}{
		{"set_membership_status", map[string]any{"userId": elsewhere, "membershipStatus": "lapsed"},
			`user ` + elsewhere + ` is not in the connection's location mfSandboxLocation001 (its roles.locationIds: [mfSandboxLocation002])`},
		{"create_user", map[string]any{"companyId": sandbox.DemoCompanyID, "firstName": "B", "lastName": "C", "email": "b@example.org",
			"password": "Secret-123", "type": "account", "role": "user", "locationIds": []any{sandbox.SecondLocationID}},
			`locationIds names mfSandboxLocation002, outside the connection's location mfSandboxLocation001`},
		{"update_user", map[string]any{"userId": elsewhere, "locationIds": []any{sandbox.DemoLocationID, sandbox.ThirdLocationID}},
			`locationIds names mfSandboxLocation003, outside the connection's location mfSandboxLocation001`},
	}
	for _, c := range cases {
		t.Run(c.action, func(t *testing.T) {
			_, err := f.run(c.action, c.in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
			for _, r := range rc.take() {
				if r.method != http.MethodGet {
					t.Errorf("sent %s %s", r.method, r.path)
				}
			}
		})
	}
	if u := f.getUserRaw(elsewhere); u["membershipStatus"] == "lapsed" {
		t.Errorf("the user of another location was written: %v", u)
	}
}

// TestAgencyScanReadsItsLocation: the user triggers' scan names the
// connection's location (GET /users/search's own filter), so an agency
// token's poll sees the seeded company's other locations not at all.
func TestAgencyScanReadsItsLocation(t *testing.T) {
	rc := &recorder{}
	f := agencyFixture(t, 40, rc)
	evs := f.poller("user_created", connectors.StartBeginning, nil).drain()
	if len(evs) != 40 {
		t.Errorf("%d events, want the location's 40 members (the company has 46 users)", len(evs))
	}
	for _, r := range rc.take() {
		if r.path == "/users/search" && r.query.Get("locationId") != sandbox.DemoLocationID {
			t.Errorf("a scan without the location: %v", r.query)
		}
	}
}

// TestAgencyLookUpReadsRolesLocationIds: the location of a user in
// filter-by-email's answer is its roles.locationIds; an answer without
// them (a service that ignored projection all) is an error, not a user
// left out, which upsert_user would take for "nobody" and duplicate.
func TestAgencyLookUpReadsRolesLocationIds(t *testing.T) {
	cases := []struct {
		name, user string
		found      bool
		err        string
	}{
		{"in the location", `{"id":"u1","email":"a@example.org","roles":{"type":"account","role":"user","locationIds":["other","` + sandbox.DemoLocationID + `"]}}`, true, ""},
		{"in another location", `{"id":"u1","email":"a@example.org","roles":{"type":"account","role":"user","locationIds":["other"]}}`, false, ""},
		{"in none (agency level)", `{"id":"u1","email":"a@example.org","roles":{"type":"agency","role":"admin","locationIds":null}}`, false, ""},
		{"no roles", `{"id":"u1","email":"a@example.org"}`, false, `memberships.find_user_by_email: the service answered user "u1" without roles.locationIds, so its location is unknown (looking up "a@example.org")`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			answer := func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != "/users/search/filter-by-email" {
						h.ServeHTTP(w, r)
						return
					}
					w.Header().Set("Content-Type", "application/json")
					_, _ = w.Write([]byte(`{"users":[` + c.user + `],"count":1}`))
				})
			}
			f := newFixture(t, 0, answer, func(cfg *connectors.ConnectionConfig) {
				cfg.Auth.Token = sandbox.DemoAgencyKey
				cfg.Options["access"] = "agency"
			})
			res, err := f.run("find_user_by_email", map[string]any{"email": "a@example.org"})
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Errorf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := out(res)["found"]; got != c.found {
				t.Errorf("found %v, want %v", got, c.found)
			}
		})
	}
}
