package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/memberflow/memberflow/connectors/all"
	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func startSandbox(t *testing.T, members int) string {
	t.Helper()
	srv, err := sandbox.New(sandbox.Options{Members: members, Seed: 7, RateLimit: &sandboxkit.Limit{}})
	if err != nil {
		t.Fatal(err)
	}
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return base
}

func TestRunIssuesOneCertificatePerEligibleMember(t *testing.T) {
	base := startSandbox(t, 250)
	store := filepath.Join(t.TempDir(), "bench.db")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{SandboxURL: base, Concurrency: 8, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Check(); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want int64
	}{
		{"members", res.Members, 250},
		{"sandbox members", int64(res.SandboxMembers), 250},
		{"certificates vs eligible", res.Certificates, res.Eligible},
		{"credentials the sandbox stored", int64(res.CredentialsCreated), res.Eligible},
		{"member updates", res.MemberUpdates, res.Eligible},
		{"eligible + skipped", res.Eligible + res.Skipped, 250},
		{"duplicates", int64(res.Duplicates), 0},
		{"new duplicates, all services", int64(res.NewDuplicates), 0},
		{"dead", res.Dead, 0},
		{"scan pages, 100 members a page", res.ScanPages, 3},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	// The engine counts the requests the sandbox saw (less the checks at
	// start, which no recipe sends).
	var counted, seen int64
	for _, r := range res.Recipes {
		counted += r.Requests
	}
	for _, n := range res.Requests {
		seen += n
	}
	if len(res.Recipes) != 1 || counted == 0 || counted > seen || counted < seen-4 {
		t.Errorf("the engine counted %d requests over %v; the sandbox saw %d", counted, res.Recipes, seen)
	}
	// About 40% of the seeded members are eligible.
	if res.Eligible < 50 || res.Eligible > 150 {
		t.Errorf("eligible = %d of 250, want about 100", res.Eligible)
	}
	if res.Elapsed <= 0 || res.MembersPerSec <= 0 || res.P50 <= 0 || res.P99 < res.P50 || res.PeakRSS <= 0 || res.RunnerCPU <= 0 {
		t.Errorf("measures missing: %+v", res)
	}
	if w := res.Writer; w == nil || w.Commits == 0 || w.Writes < w.Commits || w.Share <= 0 || w.Share > 1 {
		t.Errorf("store writer: %+v", w)
	}
	if res.Store != store {
		t.Errorf("store = %q, want %q", res.Store, store)
	}
	if _, err := os.Stat(store); err != nil {
		t.Errorf("the named store is not kept: %v", err)
	}

	// The store is not fresh any more: a second backfill is refused.
	_, err = Run(ctx, Options{SandboxURL: base, Store: store})
	if err == nil || !strings.Contains(err.Error(), "needs a fresh store") {
		t.Errorf("second run on the same store: %v, want a fresh-store error", err)
	}
}

// TestRunInterrupted: a backfill stopped half-way gives no figures. It is
// stopped at its first search for members (through a proxy in front of
// the sandbox), so that no speed of the machine lets it finish first.
func TestRunInterrupted(t *testing.T) {
	base := startSandbox(t, 3000)
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/users/search") {
			cancel()
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	_, err = Run(ctx, Options{SandboxURL: srv.URL, Concurrency: 4})
	if err == nil || !strings.Contains(err.Error(), "interrupted after") {
		t.Fatalf("error %v, want an interruption", err)
	}
}

func TestRunRefusesWhatIsNotASandbox(t *testing.T) {
	notSandbox := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"services":{}}`))
	}))
	defer notSandbox.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	cases := []struct {
		name, url, want string
	}{
		{"no url", "", "no sandbox URL"},
		{"not a sandbox", notSandbox.URL, "no memberships service"},
		{"nothing listening", down.URL, "sandbox stats"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Run(context.Background(), Options{SandboxURL: c.url})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	good := Result{SandboxMembers: 10, Members: 10, Eligible: 4, Skipped: 6, Certificates: 4, MemberUpdates: 4}
	cases := []struct {
		name   string
		change func(r *Result)
		want   string // "" for consistent
	}{
		{"consistent", func(*Result) {}, ""},
		{"a member missed", func(r *Result) { r.Members = 9 }, "9 members processed, the sandbox holds 10"},
		{"a certificate missing", func(r *Result) { r.Certificates = 3 }, "3 certificates issued for 4 eligible"},
		{"an update missing", func(r *Result) { r.MemberUpdates = 3 }, "3 members updated for 4 eligible"},
		{"dead letters", func(r *Result) { r.Dead = 2 }, "2 run(s) dead-lettered"},
		{"abandoned", func(r *Result) { r.Abandoned = 1 }, "1 run(s) abandoned"},
		{"duplicates", func(r *Result) { r.Duplicates = 1 }, "1 duplicate certificate(s)"},
		{"other duplicates", func(r *Result) { r.NewDuplicates = 2 }, "changed by 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := good
			c.change(&r)
			err := r.Check()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func sampleResult() *Result {
	return &Result{SandboxURL: "http://127.0.0.1:8089", Concurrency: 32, SandboxMembers: 100000, Members: 100000,
		Eligible: 40042, Skipped: 59958, Suppressed: 40042, Certificates: 40042, MemberUpdates: 40042, CredentialsCreated: 40042,
		Runs: 80084, Elapsed: 25 * time.Second, MembersPerSec: 4000, RunsPerSec: 3203.36, P50: 2048 * time.Microsecond,
		P99: 32768 * time.Microsecond, PeakRSS: 80 << 20, Backlog: 1500, Starved: 0.05, RunnerCPU: 30 * time.Second, SandboxCPU: 12 * time.Second, MembersPerCPUSecond: 2381,
		Requests: map[string]int64{"memberships GET /users/search": 1000, "memberships PUT /users/{userId}": 40042,
			"accredible POST /v2/credentials/search": 40042, "accredible POST /v1/credentials": 40042}, RequestsPerMember: 1.21126,
		Recipes: []RecipeRequests{{Recipe: "bench-certificates", Events: 100000, Requests: 121126, RequestsPerEvent: 1.21126}},
		Ceiling: &CeilingResult{Members: 100000, Replayed: 121126, Elapsed: 20 * time.Second, MembersPerSec: 5000, RequestsPerMember: 1.21126,
			Requests: map[string]int64{"memberships GET /users/search": 1000, "memberships PUT /users/{userId}": 40042,
				"accredible POST /v2/credentials/search": 40042, "accredible POST /v1/credentials": 40042}, CPU: 9 * time.Second, SandboxCPU: 5 * time.Second},
		CeilingShare: 0.8}
}

func TestWriteTextGolden(t *testing.T) {
	var b bytes.Buffer
	if err := sampleResult().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	// The CPU share depends on the machine's core count.
	got := cpuShare.ReplaceAllString(b.String(), "(N% of N cores)")
	golden := filepath.Join("testdata", "result.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("text output differs from %s:\n%s", golden, got)
	}
}

func TestWriteJSONRoundTrips(t *testing.T) {
	var b bytes.Buffer
	in := sampleResult()
	if err := in.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var out Result
	if err := json.Unmarshal(b.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, *in) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, *in)
	}
	for _, key := range []string{`"members_per_second"`, `"p99_ns"`, `"peak_rss_bytes"`, `"duplicates"`} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("JSON lacks %s:\n%s", key, b.String())
		}
	}
}
