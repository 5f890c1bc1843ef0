package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// recorder is a sandbox behind a proxy that keeps every API request:
// method, URL, the headers a service reads, and the body in canonical
// JSON, grouped by the member the request is about ("poll" for the
// pages of members).
type recorder struct {
	URL string
	mu  sync.Mutex
	by  map[string][]string
}

var memberOf = regexp.MustCompile(`/users/([A-Za-z0-9]+) |"member-([A-Za-z0-9]+)"`)

func recordingSandbox(t *testing.T, members int) *recorder {
	t.Helper()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	srv, err := sandbox.New(sandbox.Options{Members: members, Seed: 7, RateLimit: &sandboxkit.Limit{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	rec := &recorder{by: map[string][]string{}}
	h := srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/_sandbox/") {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			body := string(b)
			if len(b) > 0 {
				var v any
				if err := json.Unmarshal(b, &v); err != nil {
					t.Errorf("%s %s: body is not JSON: %v", r.Method, r.URL, err)
				}
				c, _ := json.Marshal(v) // sorted keys
				body = string(c)
			}
			key := "poll"
			if m := memberOf.FindStringSubmatch(r.URL.Path + " " + body); m != nil {
				key = m[1] + m[2]
			}
			line := fmt.Sprintf("%s %s accept=%q content-type=%q authorization=%q version=%q %s", r.Method, r.URL.RequestURI(),
				r.Header.Get("Accept"), r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.Header.Get("Version"), body)
			rec.mu.Lock()
			rec.by[key] = append(rec.by[key], line)
			rec.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	rec.URL = hs.URL
	return rec
}

// TestCeilingSendsWhatTheEngineSends runs the benchmark's backfill with
// the engine and with the minimal client, each on its own sandbox seeded
// alike, one worker each (so that certificate ids are issued in the same
// order), and compares every request: the pages of members in order, and
// for each member its requests in order, bodies and headers included. A
// change of the recipe or of a connector that changes what is sent fails
// here until the ceiling sends the same.
func TestCeilingSendsWhatTheEngineSends(t *testing.T) {
	const members = 230 // three pages, the last one short
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	engineSide := recordingSandbox(t, members)
	res, err := Run(ctx, Options{SandboxURL: engineSide.URL, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Check(); err != nil {
		t.Fatal(err)
	}
	ceilingSide := recordingSandbox(t, members)
	c, err := RunCeiling(ctx, CeilingOptions{SandboxURL: ceilingSide.URL, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}

	if res.Eligible < 20 {
		t.Fatalf("only %d eligible members: the comparison would say little", res.Eligible)
	}
	if len(engineSide.by) != int(res.Eligible)+1 {
		t.Errorf("the engine's requests concern %d keys, want the %d eligible members and the poll", len(engineSide.by), res.Eligible)
	}
	for _, key := range slices.Sorted(maps.Keys(engineSide.by)) {
		want, got := engineSide.by[key], ceilingSide.by[key]
		if !slices.Equal(got, want) {
			t.Errorf("%s: the ceiling sent\n\t%s\nthe engine\n\t%s", key, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	}
	for key := range ceilingSide.by {
		if _, ok := engineSide.by[key]; !ok {
			t.Errorf("%s: only the ceiling sent %q", key, ceilingSide.by[key])
		}
	}

	// The figures agree too: what Check compares in bench --ceiling.
	if c.Members != members || c.Eligible != res.Eligible {
		t.Errorf("ceiling: %d members, %d eligible; engine %d, %d", c.Members, c.Eligible, res.Members, res.Eligible)
	}
	if !maps.Equal(c.Requests, res.Requests) {
		t.Errorf("requests by route: ceiling %v, engine %v", c.Requests, res.Requests)
	}
	// Three pages, then a search, a create and an update per eligible member.
	if want := float64(3+3*res.Eligible) / members; res.RequestsPerMember != want || c.RequestsPerMember != want {
		t.Errorf("requests per member: engine %v, ceiling %v, want %v", res.RequestsPerMember, c.RequestsPerMember, want)
	}
	res.AddCeiling(c)
	if err := res.Check(); err != nil {
		t.Errorf("engine and ceiling side by side: %v", err)
	}
}

func TestCeilingRefusesASandboxAlreadyBackfilled(t *testing.T) {
	base := startSandbox(t, 40)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := RunCeiling(ctx, CeilingOptions{SandboxURL: base, Concurrency: 4}); err != nil {
		t.Fatal(err)
	}
	_, err := RunCeiling(ctx, CeilingOptions{SandboxURL: base, Concurrency: 4})
	if err == nil || !strings.Contains(err.Error(), "freshly seeded sandbox") {
		t.Fatalf("second run: %v, want a refusal", err)
	}
	if err := ResetSandbox(ctx, base); err != nil {
		t.Fatal(err)
	}
	if _, err := RunCeiling(ctx, CeilingOptions{SandboxURL: base, Concurrency: 4}); err != nil {
		t.Fatalf("after a reset: %v", err)
	}
}

func TestCheckComparesTheCeiling(t *testing.T) {
	reqs := map[string]int64{"memberships GET /users/search": 1, "accredible POST /v1/credentials": 4}
	good := Result{SandboxMembers: 10, Members: 10, Eligible: 4, Skipped: 6, Certificates: 4, MemberUpdates: 4, Requests: reqs}
	good.AddCeiling(&CeilingResult{Members: 10, Eligible: 4, Requests: maps.Clone(reqs)})
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	other := good
	other.AddCeiling(&CeilingResult{Members: 10, Eligible: 4, Requests: map[string]int64{"memberships GET /users/search": 2, "accredible POST /v1/credentials": 4}})
	if err := other.Check(); err == nil || !strings.Contains(err.Error(), "other requests than the engine") {
		t.Errorf("different requests: %v", err)
	}
	fewer := good
	fewer.AddCeiling(&CeilingResult{Members: 9, Eligible: 4, Requests: maps.Clone(reqs)})
	if err := fewer.Check(); err == nil || !strings.Contains(err.Error(), "the ceiling saw 9 members") {
		t.Errorf("fewer members: %v", err)
	}
}
