package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/console"
	"github.com/memberflow/memberflow/internal/reconcile"
)

// smallStore is a SQLite store of 120 runs, for the tests that do not
// depend on the store (eachStore runs a test on every kind).
func smallStore(t *testing.T) engine.Store {
	t.Helper()
	s, _ := testStores[0].open(t)
	fillStore(t, s, 120)
	return s
}

func server(t *testing.T, o console.Options) *httptest.Server {
	t.Helper()
	h, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// noRedirect stops at the first answer.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, c *http.Client, u string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestTokenAccess(t *testing.T) {
	srv := server(t, console.Options{Store: smallStore(t), Token: "tok-123"})
	cases := []struct {
		name   string
		path   string
		header []string
		want   int
	}{
		{"no token", "/console/runs", nil, http.StatusUnauthorized},
		{"wrong token", "/console/runs?token=nope", nil, http.StatusUnauthorized},
		{"wrong bearer", "/console/runs", []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized},
		{"bearer", "/console/runs", []string{"Authorization", "Bearer tok-123"}, http.StatusOK},
		{"token in the URL is traded for a cookie", "/console/runs?token=tok-123&status=dead", nil, http.StatusSeeOther},
		{"cookie", "/console/runs", []string{"Cookie", "memberflow_console=tok-123"}, http.StatusOK},
		{"static needs the token too", "/console/static/console.css", nil, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, body := get(t, noRedirect, srv.URL+tc.path, tc.header...)
			if res.StatusCode != tc.want {
				t.Fatalf("HTTP %d, want %d: %s", res.StatusCode, tc.want, body)
			}
			if strings.Contains(body, "tok-123") {
				t.Errorf("the token is in the page")
			}
			if res.StatusCode == http.StatusSeeOther {
				if loc := res.Header.Get("Location"); strings.Contains(loc, "token") || !strings.Contains(loc, "status=dead") {
					t.Errorf("redirect to %q", loc)
				}
				ck := res.Cookies()
				if len(ck) != 1 || ck[0].Value != "tok-123" || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode {
					t.Errorf("cookie %+v", ck)
				}
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	srv := server(t, console.Options{Store: smallStore(t), BasicUser: "ops", BasicPassword: "pw"})
	res, _ := get(t, noRedirect, srv.URL+"/console/runs")
	if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("without credentials: HTTP %d", res.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/console/runs", nil)
	req.SetBasicAuth("ops", "wrong")
	if res, _ := noRedirect.Do(req); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: HTTP %d", res.StatusCode)
	}
	req.SetBasicAuth("ops", "pw")
	if res, _ := noRedirect.Do(req); res.StatusCode != http.StatusOK {
		t.Fatalf("right password: HTTP %d", res.StatusCode)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func TestReplayNeedsCSRFAndSameOrigin(t *testing.T) { eachStore(t, testReplayNeedsCSRFAndSameOrigin) }

func testReplayNeedsCSRFAndSameOrigin(t *testing.T, s engine.Store) {
	srv := server(t, console.Options{Store: s})
	dead, err := s.ListRuns(context.Background(), engine.RunFilter{Status: engine.RunDead, Limit: 1})
	if err != nil || len(dead) != 1 {
		t.Fatalf("no dead run: %v", err)
	}
	page := srv.URL + "/console/dead/" + itoa(dead[0].ID)
	_, body := get(t, noRedirect, page)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF field on the dead letter page:\n%s", body)
	}
	post := func(form url.Values, origin string) int {
		req, _ := http.NewRequest(http.MethodPost, page+"/replay", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		origin string
		want   int
	}{
		{"no token", url.Values{}, "", http.StatusForbidden},
		{"wrong token", url.Values{"csrf": {"00"}}, "", http.StatusForbidden},
		{"other origin", url.Values{"csrf": {m[1]}}, "http://evil.example", http.StatusForbidden},
		{"null origin", url.Values{"csrf": {m[1]}}, "null", http.StatusForbidden},
		{"same origin", url.Values{"csrf": {m[1]}}, srv.URL, http.StatusSeeOther},
	} {
		if got := post(tc.form, tc.origin); got != tc.want {
			t.Errorf("%s: HTTP %d, want %d", tc.name, got, tc.want)
		}
	}
	d, _ := s.GetRun(context.Background(), dead[0].ID)
	if d.Status != engine.RunQueued {
		t.Errorf("after the accepted replay the run is %s", d.Status)
	}
}

func TestReadOnlyRefusesReplays(t *testing.T) {
	s := smallStore(t)
	srv := server(t, console.Options{Store: s, ReadOnly: true})
	dead, _ := s.ListRuns(context.Background(), engine.RunFilter{Status: engine.RunDead, Limit: 1})
	_, body := get(t, noRedirect, srv.URL+"/console/dead/"+itoa(dead[0].ID))
	if strings.Contains(body, `id="replay"`) || strings.Contains(body, `name="csrf"`) {
		t.Errorf("a read-only console shows a replay form")
	}
	res, err := noRedirect.PostForm(srv.URL+"/console/dead/replay-all", url.Values{})
	if err != nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("replay-all on a read-only console: %v %v", err, res.StatusCode)
	}
}

// TestNoSecretOnAnyPage plants a secret value in a run's error and
// journal (as a connector that forgot to redact would) and in the
// compliance data, and reads every page.
func TestNoSecretOnAnyPage(t *testing.T) { eachStore(t, testNoSecretOnAnyPage) }

func testNoSecretOnAnyPage(t *testing.T, s engine.Store) {
	const secret = "sk_live_0123456789"
	ctx := context.Background()
	enq, err := s.Advance(ctx, "leaky", engine.Advance{Events: []engine.NewEvent{{ID: "leak", Subject: "user/leak", Connector: "memberships", Data: []byte(`{"token":"` + secret + `"}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, engine.ClaimRequest{Owner: "t", Recipes: []string{"leaky"}, Limit: 1, Now: time.Now(), Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err = s.Record(ctx, engine.Lease{RunID: enq[0].RunID, Token: 1}, []engine.StepRecord{{RunID: enq[0].RunID, StepID: "x", Action: "members.get_user", Status: engine.StepFailed, Attempts: 1,
		Input: []byte(`{"auth":"` + secret + `"}`), Error: "HTTP 401 for key " + secret, Started: now, Finished: now}},
		&engine.Completion{RunID: enq[0].RunID, Status: engine.RunDead, Error: "step x: key " + secret, Finished: now})
	if err != nil {
		t.Fatal(err)
	}
	comp := syntheticCompliance(20)
	comp.Report.Findings = append(comp.Report.Findings, reconcile.Finding{Rule: "eligible-without-credential", Summary: "x", Records: []string{"user/m000001"}})
	srv := server(t, console.Options{Store: s, Compliance: staticCompliance{comp},
		Redact: func(v string) string { return strings.ReplaceAll(v, secret, "[redacted]") }})
	id := itoa(enq[0].RunID)
	for _, p := range []string{"compliance", "compliance.csv", "activity", "runs", "runs?recipe=leaky", "runs/" + id, "dead", "dead/" + id} {
		res, body := get(t, noRedirect, srv.URL+"/console/"+p)
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: HTTP %d", p, res.StatusCode)
		}
		if strings.Contains(body, secret) {
			t.Errorf("%s shows the secret", p)
		}
	}
	if _, body := get(t, noRedirect, srv.URL+"/console/runs/"+id); !strings.Contains(body, "[redacted]") {
		t.Errorf("the run page does not show the redacted values")
	}
}

func TestComplianceCSV(t *testing.T) {
	comp := syntheticCompliance(3)
	comp.Snapshot.Members[0].Data["firstName"] = "=HYPERLINK(\"http://evil\")"
	comp.Snapshot.Members[0].Data["planId"] = "@SUM(1+1)" // any cell from a service, not the name and email only
	srv := server(t, console.Options{Store: smallStore(t), Compliance: staticCompliance{comp}})
	res, body := get(t, noRedirect, srv.URL+"/console/compliance.csv?status=active")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("HTTP %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `'=HYPERLINK`) || !strings.Contains(lines[1], `'@SUM(1+1)`) {
		t.Fatalf("csv:\n%s", body)
	}
}

func TestPagesAnswerWithoutCompliance(t *testing.T) { eachStore(t, testPagesAnswerWithoutCompliance) }

func testPagesAnswerWithoutCompliance(t *testing.T, s engine.Store) {
	srv := server(t, console.Options{Store: s})
	for p, want := range map[string]int{"": http.StatusSeeOther, "compliance": 200, "compliance.csv": 404, "activity": 200,
		"runs?status=nope": 400, "runs?before=x": 400, "runs/0": 400, "runs/99999": 404, "static/console.css": 200} {
		if res, body := get(t, noRedirect, srv.URL+"/console/"+p); res.StatusCode != want {
			t.Errorf("%s: HTTP %d, want %d: %s", p, res.StatusCode, want, body)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRunPagesShowEarlierAttempts: a dead letter replayed and dead again
// shows, on its dead letter page and its run page, the attempt the replay
// ended (its error and steps) beside the current one, secrets redacted.
func TestRunPagesShowEarlierAttempts(t *testing.T) { eachStore(t, testRunPagesShowEarlierAttempts) }

func testRunPagesShowEarlierAttempts(t *testing.T, s engine.Store) {
	if _, ok := s.(engine.Versions); !ok {
		t.Skip("this store keeps no earlier attempts (engine.Versions)")
	}
	ctx := context.Background()
	dead, err := s.ListRuns(ctx, engine.RunFilter{Status: engine.RunDead, Limit: 1})
	if err != nil || len(dead) != 1 {
		t.Fatalf("no dead run: %v", err)
	}
	id := dead[0].ID
	if err := s.Replay(ctx, id); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.Claim(ctx, engine.ClaimRequest{Owner: "t", Recipes: []string{dead[0].Recipe}, Limit: 1, Now: time.Now(), Lease: time.Minute})
	if err != nil || len(claimed) != 1 || claimed[0].ID != id {
		t.Fatalf("claimed %v: %v", claimed, err)
	}
	now := time.Now()
	const secret = "sk_live_again"
	if err := s.Record(ctx, claimed[0].Lease(), []engine.StepRecord{{RunID: id, Index: 1, StepID: "attendee", Action: "accelevents.upsert_attendee",
		Status: engine.StepFailed, Attempts: 1, Error: "HTTP 500 for " + secret, Started: now, Finished: now}},
		&engine.Completion{RunID: id, Status: engine.RunDead, Error: "step attendee: HTTP 500", Finished: now}); err != nil {
		t.Fatal(err)
	}
	srv := server(t, console.Options{Store: s, Redact: func(v string) string { return strings.ReplaceAll(v, secret, "[redacted]") }})
	for _, p := range []string{"dead/" + itoa(id), "runs/" + itoa(id)} {
		res, body := get(t, noRedirect, srv.URL+"/console/"+p)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: HTTP %d", p, res.StatusCode)
		}
		i := strings.Index(body, "Earlier attempts")
		if i < 0 {
			t.Fatalf("%s shows no earlier attempt:\n%s", p, body)
		}
		earlier, current := body[i:], body[:i]
		for _, want := range []string{`aria-label="attempt 1"`, "Attempt 1", "dead", "step attendee: HTTP 406: sold out", "accelevents.upsert_attendee · failed"} {
			if !strings.Contains(earlier, want) {
				t.Errorf("%s: the earlier attempt lacks %q:\n%s", p, want, earlier)
			}
		}
		if !strings.Contains(current, "step attendee: HTTP 500") || strings.Contains(current, "sold out") {
			t.Errorf("%s: the current attempt is not the second:\n%s", p, current)
		}
		if strings.Contains(body, `aria-label="attempt 2"`) || strings.Contains(body, secret) {
			t.Errorf("%s: an attempt not ended by a replay, or the secret, is shown", p)
		}
	}
}

// Without credentials the console answers only requests addressed to a
// loopback name: a page from another name rebound to 127.0.0.1 (DNS
// rebinding) can neither read it (its CSRF token included) nor post.
func TestWithoutATokenOnlyLoopbackNamesAreAnswered(t *testing.T) {
	srv := server(t, console.Options{Store: smallStore(t)})
	port := strings.TrimPrefix(srv.URL, "http://127.0.0.1")
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1" + port, http.StatusOK},
		{"localhost" + port, http.StatusOK},
		{"[::1]" + port, http.StatusOK},
		{"rebind.attacker.example" + port, http.StatusMisdirectedRequest},
		{"10.0.0.5" + port, http.StatusMisdirectedRequest},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/console/runs", nil)
		req.Host = tc.host
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("Host %s: HTTP %d, want %d", tc.host, res.StatusCode, tc.want)
		}
		if tc.want != http.StatusOK && csrfField.Match(body) {
			t.Errorf("Host %s: the page (with its CSRF token) was served", tc.host)
		}
	}
	// A token lifts the restriction: the console may then sit behind a
	// proxy under any name.
	tokened := server(t, console.Options{Store: smallStore(t), Token: "tok-123"})
	req, _ := http.NewRequest(http.MethodGet, tokened.URL+"/console/runs", nil)
	req.Host = "console.example.org"
	req.Header.Set("Authorization", "Bearer tok-123")
	if res, err := noRedirect.Do(req); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("with a token under another name: %v %v", res.StatusCode, err)
	}
}

// The note shown after an action is the console's own text, named in the
// redirect: words put in the address are never shown as the console's.
func TestFlashIsTheConsolesOwnText(t *testing.T) {
	srv := server(t, console.Options{Store: smallStore(t)})
	_, body := get(t, noRedirect, srv.URL+"/console/runs?flash="+url.QueryEscape("Security notice: re-enter your token at https://evil.example/"))
	if strings.Contains(body, "evil.example") || strings.Contains(body, "Security notice") {
		t.Fatal("a flash from the address was shown")
	}
	_, body = get(t, noRedirect, srv.URL+"/console/dead?flash=replayed-all&n=3")
	if !strings.Contains(body, "3 run(s) queued again") {
		t.Fatalf("the console's own note is missing:\n%s", body)
	}
}

// Query values that do not parse are a clean 400, as on the runs pages,
// not a silent fallback.
func TestBadQueryValuesAreRefused(t *testing.T) {
	srv := server(t, console.Options{Store: smallStore(t), Compliance: staticCompliance{syntheticCompliance(3)}})
	for p, want := range map[string]int{
		"compliance?page=abc": 400, "compliance?page=-5": 400, "compliance?page=99999999999999999999999": 400,
		"compliance?page=7": 200, "activity?range=%3Cx%3E": 400, "activity?range=24h": 200, "activity": 200,
	} {
		if res, body := get(t, noRedirect, srv.URL+"/console/"+p); res.StatusCode != want {
			t.Errorf("%s: HTTP %d, want %d: %.200s", p, res.StatusCode, want, body)
		}
	}
}
