package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// TestDemoLocationSeedIsUnchanged: the other locations are seeded after
// the demo location, from a generator of their own, so the demo
// location's members (and so every example's figures) are those of the
// sandbox with one location. The hash is of seed 1's 200 members as the
// one-location sandbox listed them.
func TestDemoLocationSeedIsUnchanged(t *testing.T) {
	s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
	s.Seed(sandboxkit.Seed{Members: 200, Seed: 1, Now: anchor})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/users/?locationId="+DemoLocationID, nil)
	req.Header.Set("Version", APIVersion)
	req.Header.Set("Authorization", "Bearer "+DemoKey)
	s.ServeHTTP(rec, req)
	sum := sha256.Sum256(rec.Body.Bytes())
	if got, want := hex.EncodeToString(sum[:]), demoSeedHash; got != want {
		t.Errorf("the demo location's seed changed: sha256 %s, want %s", got, want)
	}
	if st := s.Stats(); st.Objects["users"] != 200 || st.Duplicates["users"] != 0 {
		t.Errorf("stats %+v, want the demo location's 200 users and no duplicates", st)
	}
}

// demoSeedHash is the hash TestDemoLocationSeedIsUnchanged pins.
const demoSeedHash = "8dd30dd3772fbd8bb9b67182785f85176ff48df46a3b98598c7c5f6928a23b11"

// TestLocationsAreSeededAndScoped: the company has three locations; the
// second holds a namesake (same email, older) of every tenth member, the
// third people of its own. A location token reaches its own location
// only; an agency token every location, and filter-by-email searches
// them all, oldest first.
func TestLocationsAreSeededAndScoped(t *testing.T) {
	e := newEnv(t, 40, sandboxkit.Options{})
	agency := map[string]string{"Authorization": "Bearer " + DemoAgencyKey}
	search := func(loc string, hdr map[string]string) answer {
		q := url.Values{"companyId": {DemoCompanyID}, "limit": {"100"}}
		if loc != "" {
			q.Set("locationId", loc)
		}
		return e.call("GET", "/users/search?"+q.Encode(), nil, hdr)
	}
	count := func(a answer) int {
		t.Helper()
		if a.status != http.StatusOK {
			t.Fatalf("search: %d %s", a.status, a.body)
		}
		return int(a.json(t)["count"].(float64))
	}
	locations := func(a answer) map[string]int {
		out := map[string]int{}
		for _, u := range a.json(t)["users"].([]any) {
			roles := u.(map[string]any)["roles"].(map[string]any)
			for _, l := range roles["locationIds"].([]any) {
				out[l.(string)]++
			}
		}
		return out
	}

	// Seeded: 40 members, 4 namesakes (members 1, 11, 21, 31), 2 people.
	for _, c := range []struct {
		loc  string
		want int
	}{{DemoLocationID, 40}, {SecondLocationID, 4}, {ThirdLocationID, 2}, {"", 46}} {
		a := search(c.loc, agency)
		if got := count(a); got != c.want {
			t.Errorf("agency search of location %q: count %d, want %d", c.loc, got, c.want)
		}
		if c.loc != "" {
			if got := locations(a); len(got) != 1 || got[c.loc] != c.want {
				t.Errorf("agency search of location %q lists %v", c.loc, got)
			}
		}
	}
	if got := count(search("", nil)); got != 40 {
		t.Errorf("a location token's search without locationId: count %d, want its location's 40", got)
	}

	first := e.firstUser()
	email := first["email"].(string)
	f := e.call("POST", "/users/search/filter-by-email", map[string]any{"companyId": DemoCompanyID, "emails": email, "projection": "all"}, agency).json(t)
	users := f["users"].([]any)
	if f["count"] != 2.0 || len(users) != 2 {
		t.Fatalf("filter-by-email %s: %v, want the member and its namesake", email, f)
	}
	namesake := users[0].(map[string]any)
	if got := namesake["roles"].(map[string]any)["locationIds"]; len(got.([]any)) != 1 || got.([]any)[0] != SecondLocationID {
		t.Errorf("the oldest user with %s is in %v, want the namesake in %s", email, got, SecondLocationID)
	}
	if users[1].(map[string]any)["id"] != first["id"] {
		t.Errorf("the second user is %v, want the member %v", users[1], first["id"])
	}
	otherID := namesake["id"].(string)

	// A location token: another location is refused, by search, by id and
	// by create; an agency token reaches it.
	noAccess := "The token does not have access to this location."
	create := map[string]any{"companyId": DemoCompanyID, "firstName": "Ada", "lastName": "North", "email": "ada.north@example.org",
		"password": "Secret-123", "type": "account", "role": "user", "locationIds": []any{SecondLocationID}}
	for _, c := range []struct {
		name, method, path string
		body               any
	}{
		{"search", "GET", "/users/search?companyId=" + DemoCompanyID + "&locationId=" + SecondLocationID, nil},
		{"list", "GET", "/users/?locationId=" + SecondLocationID, nil},
		{"get", "GET", "/users/" + otherID, nil},
		{"update", "PUT", "/users/" + otherID, map[string]any{"planId": "plan_basic"}},
		{"delete", "DELETE", "/users/" + otherID, nil},
		{"create", "POST", "/users/", create},
	} {
		if a := e.call(c.method, c.path, c.body, nil); a.status != http.StatusBadRequest || !strings.Contains(string(a.body), noAccess) {
			t.Errorf("location token, %s in another location: %d %s", c.name, a.status, a.body)
		}
	}
	if a := e.call("GET", "/locations/"+SecondLocationID, nil, nil); a.status != http.StatusForbidden {
		t.Errorf("location token, GET another location: %d %s", a.status, a.body)
	}
	if a := e.call("GET", "/locations/"+SecondLocationID, nil, agency); a.status != http.StatusOK || !strings.Contains(string(a.body), "North Chapter") {
		t.Errorf("agency token, GET /locations/%s: %d %s", SecondLocationID, a.status, a.body)
	}
	a := e.call("POST", "/users/", create, agency)
	if a.status != http.StatusCreated || a.json(t)["locationId"] != SecondLocationID {
		t.Fatalf("agency create in %s: %d %s", SecondLocationID, a.status, a.body)
	}
	if got := count(search(SecondLocationID, agency)); got != 5 {
		t.Errorf("location 002 after a create: count %d, want 5", got)
	}
	if got := count(search(DemoLocationID, agency)); got != 40 {
		t.Errorf("the demo location after a create elsewhere: count %d, want 40", got)
	}
	if a := e.call("PUT", "/users/"+otherID, map[string]any{"planId": "plan_basic", "companyId": DemoCompanyID}, agency); a.status != http.StatusOK {
		t.Errorf("agency update in another location: %d %s", a.status, a.body)
	}
	two := map[string]any{"companyId": DemoCompanyID, "firstName": "Ada", "lastName": "Both", "email": "ada.both@example.org",
		"password": "Secret-123", "type": "account", "role": "user", "locationIds": []any{DemoLocationID, SecondLocationID}}
	if a := e.call("POST", "/users/", two, agency); a.status != http.StatusUnprocessableEntity || !strings.Contains(string(a.body), "one location") {
		t.Errorf("create in two locations: %d %s", a.status, a.body)
	}

	// Paging runs across the locations, one after the other.
	var ids []string
	for skip := 0; skip < 60; skip += 7 {
		q := url.Values{"companyId": {DemoCompanyID}, "limit": {"7"}, "skip": {itoa(skip)}}
		page := e.call("GET", "/users/search?"+q.Encode(), nil, agency).json(t)
		for _, u := range page["users"].([]any) {
			ids = append(ids, u.(map[string]any)["id"].(string))
		}
	}
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	if len(ids) != 47 || len(seen) != 47 {
		t.Errorf("paging the company: %d users, %d distinct, want 47", len(ids), len(seen))
	}
}
