package memberships

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/memberships/sandbox"
	"github.com/memberflow/memberflow/recipes"
)

// recorder stands between the client and the sandbox and keeps every
// request: method, path, query and body.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, path string
	query        url.Values
	body         map[string]any
}

func (rc *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(data)))
		var body map[string]any
		_ = json.Unmarshal(data, &body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, recorded{r.Method, r.URL.Path, r.URL.Query(), body})
		rc.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// take returns the requests since the last take.
func (rc *recorder) take() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := rc.reqs
	rc.reqs = nil
	return out
}

func (rc *recorder) count(method, path string, reqs []recorded) int {
	n := 0
	for _, r := range reqs {
		if r.method == method && r.path == path {
			n++
		}
	}
	return n
}

// createUser adds a user through the API (as another client would) and
// returns its id.
func (f *fixture) createUser(first, last, email string) string {
	f.t.Helper()
	body := map[string]any{"companyId": sandbox.DemoCompanyID, "firstName": first, "lastName": last, "email": email,
		"password": "Secret-123", "type": "account", "role": "user", "locationIds": []any{sandbox.DemoLocationID}}
	u := out(f.must("create_user", body))
	return u["id"].(string)
}

// TestLocationAccessFindsByEmailExactly: with a location token (the
// default level) every email look-up (find_user_by_email, upsert_user,
// the settle of create_user) searches GET /users/search in the
// connection's company and location and never calls filter-by-email,
// which the service refuses to location tokens. The search matches names
// and parts of emails too: only users whose email is the one asked,
// ignoring case, count, the oldest first.
func TestLocationAccessFindsByEmailExactly(t *testing.T) {
	rc := &recorder{}
	f := newFixture(t, 0, rc.wrap, nil)
	oldest := f.createUser("Ada", "Lovelace", "ada@example.org")
	f.createUser("ada@example.org", "Impostor", "impostor@example.org") // a name holding the email
	f.createUser("Adaline", "Byron", "x.ada@example.org.uk")            // an email holding it
	second := f.createUser("Ada", "King", "ADA@Example.org")
	rc.take()

	cases := []struct {
		name, email string
		found       bool
		count       int
		id          string
	}{
		{"exact", "ada@example.org", true, 2, oldest},
		{"other case", "Ada@EXAMPLE.org", true, 2, oldest},
		{"only in a name or a longer email", "impostor@example", false, 0, ""},
		{"nobody", "nobody@example.org", false, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := f.run("find_user_by_email", map[string]any{"email": c.email})
			reqs := rc.take()
			if err != nil {
				t.Fatal(err)
			}
			got := out(res)
			if got["found"] != c.found || got["count"] != c.count {
				t.Errorf("found %v, count %v; want %v, %d", got["found"], got["count"], c.found, c.count)
			}
			if c.found && got["user"].(map[string]any)["id"] != c.id {
				t.Errorf("user %v, want the oldest, %s", got["user"].(map[string]any)["id"], c.id)
			}
			if len(reqs) != 1 || reqs[0].method != "GET" || reqs[0].path != "/users/search" {
				t.Fatalf("requests %+v, want one GET /users/search", reqs)
			}
			q := reqs[0].query
			if q.Get("query") != c.email || q.Get("companyId") != sandbox.DemoCompanyID || q.Get("locationId") != sandbox.DemoLocationID {
				t.Errorf("search query %v", q)
			}
		})
	}

	t.Run("upsert_user updates the oldest", func(t *testing.T) {
		res, err := f.run("upsert_user", map[string]any{"email": "ADA@example.org", "planId": "plan_gold"})
		reqs := rc.take()
		if err != nil {
			t.Fatal(err)
		}
		got := out(res)
		if got["created"] != false || got["user"].(map[string]any)["id"] != oldest {
			t.Errorf("upsert %v, want %s updated", got, oldest)
		}
		if n := rc.count("POST", "/users/search/filter-by-email", reqs); n != 0 {
			t.Errorf("%d filter-by-email requests", n)
		}
		for _, r := range reqs {
			if r.method == "PUT" && r.body["companyId"] != nil {
				t.Errorf("a location token's update sent companyId: %v", r.body)
			}
		}
	})
	t.Run("create_user settles to the newest", func(t *testing.T) {
		res, ok, err := f.spec.Action("create_user").Settle(context.Background(), f.conn, map[string]any{"email": "ada@example.org"})
		reqs := rc.take()
		if err != nil || !ok || res == nil || res.Output.(map[string]any)["id"] != second {
			t.Errorf("settle: %v %v %v, want %s", res, ok, err, second)
		}
		if len(reqs) != 1 || reqs[0].path != "/users/search" {
			t.Errorf("settle sent %+v, want one search", reqs)
		}
	})
	t.Run("an empty email is refused, not read as every user", func(t *testing.T) {
		if _, err := f.run("find_user_by_email", map[string]any{"email": " "}); err == nil || !strings.Contains(err.Error(), "email is empty") {
			t.Errorf("empty email: %v", err)
		}
		if reqs := rc.take(); len(reqs) != 0 {
			t.Errorf("sent %+v", reqs)
		}
	})
}

// TestLocationAccessPagesTheSearch: when more users match the query than
// a page holds (the email's text in 120 names), the look-up reads the
// next page, and still returns the oldest user with the email.
func TestLocationAccessPagesTheSearch(t *testing.T) {
	rc := &recorder{}
	f := newFixture(t, 0, rc.wrap, nil)
	for i := 0; i < 120; i++ {
		f.createUser("grace@example.org", "Namesake"+itoa(i), "namesake"+itoa(i)+"@example.org")
	}
	first := f.createUser("Grace", "Hopper", "grace@example.org")
	f.createUser("Grace", "Again", "Grace@example.org")
	rc.take()
	got := out(f.must("find_user_by_email", map[string]any{"email": "grace@example.org"}))
	reqs := rc.take()
	if got["found"] != true || got["count"] != 2 || got["user"].(map[string]any)["id"] != first {
		t.Errorf("found %v", got)
	}
	if len(reqs) != 2 || reqs[0].query.Get("skip") != "0" || reqs[1].query.Get("skip") != "100" {
		var skips []string
		for _, r := range reqs {
			skips = append(skips, r.path+"?skip="+r.query.Get("skip"))
		}
		t.Errorf("requests %v, want the search at skip 0 and 100", skips)
	}
}

// TestAgencyAccess: with an agency token, look-ups use filter-by-email
// and every user update (update_user, set_membership_status, upsert_user)
// sends companyId, without which the service refuses an agency token's
// update (422).
func TestAgencyAccess(t *testing.T) {
	rc := &recorder{}
	f := newFixture(t, 0, rc.wrap, func(cfg *connectors.ConnectionConfig) {
		cfg.Auth.Token = sandbox.DemoAgencyKey
		cfg.Options["access"] = "agency"
	})
	id := f.createUser("Ada", "Lovelace", "ada@example.org")
	rc.take()
	got := out(f.must("find_user_by_email", map[string]any{"email": "ADA@example.org"}))
	reqs := rc.take()
	if got["found"] != true || got["user"].(map[string]any)["id"] != id {
		t.Errorf("found %v", got)
	}
	if len(reqs) != 1 || reqs[0].path != "/users/search/filter-by-email" || reqs[0].body["companyId"] != sandbox.DemoCompanyID {
		t.Errorf("requests %+v, want one filter-by-email", reqs)
	}
	for _, c := range []struct {
		action string
		in     map[string]any
	}{
		{"update_user", map[string]any{"userId": id, "planId": "plan_basic"}},
		{"set_membership_status", map[string]any{"userId": id, "membershipStatus": "eligible"}},
		{"upsert_user", map[string]any{"email": "ada@example.org", "planId": "plan_gold"}},
	} {
		t.Run(c.action, func(t *testing.T) {
			if _, err := f.run(c.action, c.in); err != nil {
				t.Fatal(err)
			}
			puts := 0
			for _, r := range rc.take() {
				if r.method == "PUT" {
					puts++
					if r.body["companyId"] != sandbox.DemoCompanyID {
						t.Errorf("PUT %s without the companyId: %v", r.path, r.body)
					}
				}
			}
			if puts != 1 {
				t.Errorf("%d updates", puts)
			}
		})
	}
	t.Run("a location token with access agency is told so", func(t *testing.T) {
		g := newFixture(t, 0, nil, func(cfg *connectors.ConnectionConfig) { cfg.Options["access"] = "agency" })
		_, err := g.run("find_user_by_email", map[string]any{"email": "ada@example.org"})
		if err == nil || !strings.Contains(err.Error(), "This route is only available to Agency access tokens") || !strings.Contains(err.Error(), "set access: location") {
			t.Errorf("error %v", err)
		}
	})
}

// TestAccessOption: the option is checked where the connection opens,
// and an OAuth token's userType must agree with it.
func TestAccessOption(t *testing.T) {
	cases := []struct {
		name    string
		options map[string]any
		wantErr string
	}{
		{"default", map[string]any{"companyId": "c"}, ""},
		{"location", map[string]any{"access": "location"}, ""},
		{"agency", map[string]any{"access": "agency", "companyId": "c", "locationId": "l"}, ""},
		{"agency without companyId", map[string]any{"access": "agency", "locationId": "l"}, `connection "members": option companyId is required with access: agency`},
		{"agency without locationId", map[string]any{"access": "agency", "companyId": "c"}, `connection "members": option locationId is required with access: agency (the token reaches every location of the company; the connection keeps to this one)`},
		{"capitalised", map[string]any{"access": "Agency", "companyId": "c"}, `option access must be "location" or "agency", got "Agency"`},
		{"not a string", map[string]any{"access": true}, `option access must be "location" or "agency", got true`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Spec().Open(connectors.ConnectionConfig{Name: "members", Auth: connectors.Auth{Type: connectors.AuthBearer, Token: "t"}, Options: c.options})
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("error %v, want %q", err, c.wantErr)
			}
		})
	}
}

// TestAccessOptionValidatesInRecipes: the option's JSON Schema is what
// memberflow validate checks, at the option's line and column.
func TestAccessOptionValidatesInRecipes(t *testing.T) {
	reg := connectors.NewRegistry()
	reg.MustRegister(Spec())
	cases := []struct {
		name, options string
		want          []string
	}{
		{"unknown level", `{ access: Agency, companyId: c1 }`, []string{
			`recipe.yaml:6:24: error: connections.members.options.access: must be one of "location", "agency"; did you mean "agency"?`}},
		{"agency without companyId", `{ access: agency, locationId: l1 }`, []string{
			`recipe.yaml:6:14: error: connections.members.options: missing required key "companyId"`}},
		{"agency without locationId", `{ access: agency, companyId: c1 }`, []string{
			`recipe.yaml:6:14: error: connections.members.options: missing required key "locationId"`}},
		{"location without companyId", `{ access: location }`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "recipe.yaml")
			src := "version: 1\nname: access\nconnections:\n  members:\n    connector: memberships\n    options: " + c.options + "\n" +
				"    auth: { type: bearer, token: \"${{ secret.T }}\" }\ntrigger: { uses: members.user_created }\nsteps: [ { uses: members.get_user, with: { userId: a } } ]\n"
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			_, diags := recipes.Load(recipes.Options{Registry: reg}, path)
			var text strings.Builder
			if err := diags.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			got := strings.ReplaceAll(text.String(), dir+string(filepath.Separator), "")
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("diagnostics:\n%s\nwant %s", got, w)
				}
			}
			if len(c.want) == 0 && diags.HasErrors() {
				t.Errorf("unexpected diagnostics:\n%s", got)
			}
		})
	}
}

// TestOAuthTokenLevelIsChecked: the connection asks the token endpoint
// for its level (user_type) and checks the answer's userType: a token of
// the other level (here a refresh token issued for the agency, which its
// refresh keeps) stops the connection with what to change, explicit
// option or default alike, and is not retried.
func TestOAuthTokenLevelIsChecked(t *testing.T) {
	companyRefresh := func(f *fixture) string {
		form := url.Values{"client_id": {sandbox.DemoClientID}, "client_secret": {sandbox.DemoClientSecret}, "grant_type": {"client_credentials"}, "user_type": {"Company"}}
		res, err := http.PostForm(f.srv.URL+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var tok struct {
			Refresh string `json:"refresh_token"`
		}
		if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.Refresh == "" {
			t.Fatalf("company token: %v %+v", err, tok)
		}
		return tok.Refresh
	}
	cases := []struct {
		name    string
		access  string // "" leaves the option out
		refresh bool   // a Company refresh token; else client credentials with user_type
		wantErr string
	}{
		{"client credentials, location", "", false, ""},
		{"client credentials, agency", "agency", false, ""},
		{"agency refresh token, agency", "agency", true, ""},
		{"agency refresh token, default", "", true, "the OAuth token is of user type Company (agency level), but the connection option access is not set, so it is location: set access: agency"},
		{"agency refresh token, location", "location", true, "the OAuth token is of user type Company (agency level), but the connection option access is location: set access: agency"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := &recorder{}
			f := newFixture(t, 2, rc.wrap, nil)
			auth := connectors.Auth{Type: connectors.AuthOAuth2, ClientID: sandbox.DemoClientID, ClientSecret: sandbox.DemoClientSecret}
			if c.refresh {
				auth.RefreshToken = companyRefresh(f)
			}
			opts := map[string]any{"locationId": sandbox.DemoLocationID, "companyId": sandbox.DemoCompanyID}
			if c.access != "" {
				opts["access"] = c.access
			}
			conn, err := Spec().Open(connectors.ConnectionConfig{Name: "members", BaseURL: f.srv.URL, Auth: auth, RateLimit: &connectors.RateLimit{}, Options: opts})
			if err != nil {
				t.Fatal(err)
			}
			rc.take()
			find := f.spec.Action("find_user_by_email")
			for i := 0; i < 2; i++ { // the second call meets the same verdict without asking again
				_, err = find.Run(context.Background(), conn, map[string]any{"email": "someone@example.org"})
				switch {
				case c.wantErr == "" && err != nil:
					t.Fatalf("unexpected error: %v", err)
				case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
			}
			reqs := rc.take()
			if n := rc.count("POST", "/oauth/token", reqs); n != 1 {
				t.Errorf("%d token requests, want 1", n)
			}
			if c.wantErr != "" && len(reqs) != 1 {
				t.Errorf("a refused token was used: %+v", reqs)
			}
			if c.wantErr != "" && strings.Contains(err.Error(), auth.RefreshToken) {
				t.Errorf("the error shows the refresh token: %v", err)
			}
		})
	}
}
