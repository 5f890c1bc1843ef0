package recipetest

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestReports runs each testdata folder and compares the text report with
// its golden file.
func TestReports(t *testing.T) {
	cases := []struct {
		name           string
		dir            string
		ok             bool
		passed, failed int
		broken         int
	}{
		{name: "passing recipe", dir: "pass", ok: true, passed: 4},
		{name: "failing expectations", dir: "fail", failed: 5},
		{name: "broken test files", dir: "broken", broken: 2},
		{name: "files written by local connections", dir: "files", passed: 1, failed: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := Run(context.Background(), Options{Registry: testRegistry()}, filepath.Join("testdata", tc.dir))
			for i := range rep.Suites {
				for j := range rep.Suites[i].Cases {
					rep.Suites[i].Cases[j].Duration = 0
				}
			}
			var buf bytes.Buffer
			if err := rep.WriteText(&buf, false); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", tc.dir+".golden"), buf.Bytes())
			if _, err := os.Stat(filepath.Join("testdata", tc.dir, "should-never-be-written")); err == nil {
				t.Errorf("a test wrote into the recipe's folder")
			}
			passed, failed, broken := rep.Counts()
			if rep.OK() != tc.ok || passed != tc.passed || failed != tc.failed || broken != tc.broken {
				t.Errorf("ok=%v passed=%d failed=%d broken=%d, want ok=%v passed=%d failed=%d broken=%d\n%s",
					rep.OK(), passed, failed, broken, tc.ok, tc.passed, tc.failed, tc.broken, buf.String())
			}
		})
	}
}

func TestRecordedRequests(t *testing.T) {
	rep := Run(context.Background(), Options{Registry: testRegistry(), Filter: regexp.MustCompile("gets a certificate")}, "testdata/pass/certify.yaml")
	if len(rep.Suites) != 1 || len(rep.Suites[0].Cases) != 1 {
		t.Fatalf("want one suite with one case, got %+v", rep.Suites)
	}
	c := rep.Suites[0].Cases[0]
	var got []string
	for _, x := range c.Requests {
		got = append(got, x.String())
	}
	want := []string{"GET /members/m1 (club)", "POST /certs (club)", "POST /certs (club)", "PUT /members/m1 (club)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c.Requests[0].Write || !c.Requests[1].Write {
		t.Errorf("GET counted as a write or POST as a read: %+v %+v", c.Requests[0], c.Requests[1])
	}
}

func TestSearchIsARead(t *testing.T) {
	svc := newCannedService(nil)
	rt := svc.transport("club", "https://api.club.test/v2", clubSpec()).(*transport)
	cases := []struct {
		name, method, path string
		write              bool
	}{
		{"get", "GET", "/members/m1", false},
		{"search by a read-only action's route", "POST", "/certs/search", false},
		{"create", "POST", "/certs", true},
		{"update", "PUT", "/members/m1", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			write := tc.method != "GET"
			for _, r := range rt.reads {
				if r.matches(tc.method, tc.path) {
					write = false
				}
			}
			if write != tc.write {
				t.Errorf("write = %v, want %v", write, tc.write)
			}
		})
	}
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// An unquoted date in a test file is the text it is, as in a recipe and
// in an API's JSON, not a time: an event's date reaches the request as
// written, and an expectation of 2026-03-16 does not match a body that
// says 2026-03-16T00:00:00Z.
func TestUnquotedDatesInTestsAreText(t *testing.T) {
	recipe := func(certID string) string {
		return `version: 1
name: dated
connections:
  club: { connector: club, auth: { type: bearer, token: "${{ secret.CLUB_TOKEN }}" } }
trigger:
  uses: club.member_changed
steps:
  - uses: club.link_cert
    with: { id: m1, certId: "` + certID + `" }
tests:
  - name: the date as sent
    event: { member: { id: m1, status: active, email: 2026-03-16 } }
    responses:
      - { connection: club, method: PUT, path: /members/m1, body: {} }
    expect:
      requests:
        - { method: PUT, path: /members/m1, body: { certId: 2026-03-16 } }
`
	}
	for _, tc := range []struct {
		certID string
		passed bool
	}{
		{"${{ trigger.member.email }}", true}, // the event's date, as written
		{"2026-03-16T00:00:00Z", false},       // another text than expected
	} {
		rep := runRecipe(t, recipe(tc.certID))
		passed, failed, broken := rep.Counts()
		if broken != 0 || (passed == 1) != tc.passed || passed+failed != 1 {
			var buf bytes.Buffer
			rep.WriteText(&buf, true)
			t.Errorf("certId %s: passed %d failed %d broken %d, want passed=%v\n%s", tc.certID, passed, failed, broken, tc.passed, buf.String())
		}
	}
}

// A test's event is held to the trigger's output: a field it never gives
// (a typo) or a value of another type fails the case, which would
// otherwise pass on an event production never sends.
func TestEventsAreHeldToTheTriggersOutput(t *testing.T) {
	recipe := `version: 1
name: typo
connections:
  club: { connector: club, auth: { type: bearer, token: "${{ secret.CLUB_TOKEN }}" } }
trigger:
  uses: club.member_changed
when: trigger.member.email != ""
steps:
  - uses: club.link_cert
    with: { id: m1, certId: c1 }
tests:
  - name: a typo
    event: { member: { id: m1, emal: a@b.c } }
    responses:
      - { connection: club, method: PUT, path: /members/m1, body: {} }
  - name: a number for a string
    event: { member: { id: 5, email: a@b.c } }
    responses:
      - { connection: club, method: PUT, path: /members/m1, body: {} }
  - name: as the trigger gives it
    event: { member: { id: m1, email: a@b.c } }
    responses:
      - { connection: club, method: PUT, path: /members/m1, body: {} }
`
	rep := runRecipe(t, recipe)
	var buf bytes.Buffer
	rep.WriteText(&buf, true)
	out := buf.String()
	passed, failed, _ := rep.Counts()
	if passed != 1 || failed != 2 ||
		!strings.Contains(out, `event.member.emal: the trigger gives no such field`) || !strings.Contains(out, `did you mean "email"?`) ||
		!strings.Contains(out, "event.member.id is a number, but the trigger gives string") {
		t.Fatalf("passed %d failed %d:\n%s", passed, failed, out)
	}
}

// A field the event lacks is left out of the call, not sent as null (which
// would clear the member's certificate id); recipe tests see the call the
// service would.
func TestAnAbsentFieldIsNotSentAsNull(t *testing.T) {
	recipe := `version: 1
name: absent
connections:
  club: { connector: club, auth: { type: bearer, token: "${{ secret.CLUB_TOKEN }}" } }
trigger:
  uses: club.member_changed
steps:
  - uses: club.link_cert
    with: { id: m1, certId: "${{ trigger.member.certId }}" }
tests:
  - name: no certificate on the member
    event: { member: { id: m1, email: a@b.c } }
    responses:
      - { connection: club, method: PUT, path: /members/m1, body: {} }
`
	rep := runRecipe(t, recipe)
	if len(rep.Suites) != 1 || len(rep.Suites[0].Cases) != 1 || len(rep.Suites[0].Cases[0].Requests) != 1 {
		var buf bytes.Buffer
		rep.WriteText(&buf, true)
		t.Fatalf("want one case with one request:\n%s", buf.String())
	}
	body, _ := rep.Suites[0].Cases[0].Requests[0].Body.(map[string]any)
	if _, sent := body["certId"]; sent {
		t.Fatalf("certId was sent: %v", body)
	}
}

// runRecipe runs the tests of one recipe file written from text.
func runRecipe(t *testing.T, recipe string) *Report {
	t.Helper()
	path := filepath.Join(t.TempDir(), "recipe.yaml")
	if err := os.WriteFile(path, []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	return Run(context.Background(), Options{Registry: testRegistry()}, path)
}

// A value an expression computes is held to the action's input schema
// before the call: the case sees the run dead-lettered with the key, the
// rule and the expression's place, and no request sent.
func TestAComputedValueIsHeldToTheInputSchema(t *testing.T) {
	recipe := `version: 1
name: bounded
connections:
  club: { connector: club, auth: { type: bearer, token: "${{ secret.CLUB_TOKEN }}" } }
trigger:
  uses: club.member_changed
steps:
  - uses: club.link_cert
    with: { id: m1, certId: "${{ trigger.member.email }}" }
tests:
  - name: too long for the service
    event: { member: { id: m1, email: a-very-long-address@example.org } }
    expect:
      outcome: dead
      error: "recipe.yaml:9:34): length must be <= 24, but got 31"
  - name: within bounds
    event: { member: { id: m1, email: a@b.c } }
    responses:
      - { connection: club, method: PUT, path: /members/m1, body: {} }
`
	rep := runRecipe(t, recipe)
	var buf bytes.Buffer
	rep.WriteText(&buf, true)
	if passed, failed, broken := rep.Counts(); passed != 2 || failed+broken != 0 || len(rep.Suites[0].Cases[0].Requests) != 0 {
		t.Fatalf("passed %d, failed %d, broken %d:\n%s", passed, failed, broken, buf.String())
	}
}

// A recipe whose cases --run leaves out has tests: it is not reported
// as untested ("NOTE x has no tests" under memberflow test --run).
func TestFilteredOutCasesAreNotUntested(t *testing.T) {
	rep := Run(context.Background(), Options{Registry: testRegistry(), Filter: regexp.MustCompile("^no case has this name$")}, "testdata/pass/certify.yaml")
	if len(rep.Suites) != 1 || len(rep.Suites[0].Cases) != 0 {
		t.Fatalf("want one suite with no case run, got %+v", rep.Suites)
	}
	if u := rep.Untested(); len(u) != 0 {
		t.Errorf("Untested() = %v; the recipe has tests, only filtered out", u)
	}
}
