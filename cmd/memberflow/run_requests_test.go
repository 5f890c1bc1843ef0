package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/memberflow/memberflow/engine"
)

// sandboxRequests reads the sandbox's request counts by service and route.
func sandboxRequests(t *testing.T, base string) map[string]map[string]int64 {
	t.Helper()
	res, err := http.Get(base + "/_sandbox/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st struct {
		Services map[string]struct {
			Requests map[string]int64 `json:"requests"`
		} `json:"services"`
	}
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]int64{}
	for svc, v := range st.Services {
		out[svc] = v.Requests
	}
	return out
}

// TestExampleRequestsPerMember runs two demo recipes alone over 1,000
// members (`run --once --format json`) and holds their requests to the
// figures docs/benchmarks.md gives: one scan of the members (10 pages of
// 100, no second pass, no empty page), no member read again after the
// page carried it, and the summary's count what the sandbox saw.
func TestExampleRequestsPerMember(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 members")
	}
	for _, tc := range []struct {
		recipe string
		// perRun is the most requests one run sends beyond the pages.
		perRun int64
	}{
		// search, create, write-back
		{certRecipe, 3},
		// at most two look-ups and a create (fewer with the batch form)
		{"../../examples/accelevents/sync-members-to-attendees.yaml", 3},
	} {
		t.Run(filepath.Base(tc.recipe), func(t *testing.T) {
			base := startTestSandbox(t, 1000)
			store := filepath.Join(t.TempDir(), "mf.db")
			code, out, errs := cli(t, "run", "--once", "--format", "json", "--sandbox-url", base, "--store", store,
				"--connections", sandboxConnFile, "--log-level", "off", tc.recipe)
			if code != exitOK {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
			var sum struct {
				engine.Summary
				Passes int    `json:"passes"`
				Line   string `json:"line"`
			}
			if err := json.Unmarshal([]byte(out), &sum); err != nil || len(sum.Recipes) != 1 || sum.Line == "" {
				t.Fatalf("--format json: %v\n%s", err, out)
			}
			r := sum.Recipes[0]
			seen := sandboxRequests(t, base)
			if pages := seen["memberships"]["GET /users/search"]; pages != 10 || sum.Passes != 1 {
				t.Errorf("%d member pages in %d passes, want 10 in 1 (one scan of 1,000 members)", pages, sum.Passes)
			}
			if n := seen["memberships"]["GET /users/{userId}"]; n != 0 {
				t.Errorf("%d members read again although the page carried them", n)
			}
			var total int64
			for _, routes := range seen {
				for _, n := range routes {
					total += n
				}
			}
			// The CLI checks the sandbox before the engine starts (outside
			// its count): a request or two.
			if r.Requests+sum.OtherRequests != sum.Requests || total-sum.Requests < 0 || total-sum.Requests > 2 || sum.OtherRequests > 4 {
				t.Errorf("the summary counts %d requests (%d by the recipe, %d at start); the sandbox saw %d", sum.Requests, r.Requests, sum.OtherRequests, total)
			}
			runs := r.Succeeded + r.Dead
			if max := 10 + tc.perRun*runs; r.Requests > max || r.Events != 1000 {
				t.Errorf("%d requests for %d events and %d runs, want at most %d (%.3f per member)", r.Requests, r.Events, runs, max, r.RequestsPerEvent)
			}
			t.Logf("%s: %d requests, %.3f per member", r.Recipe, r.Requests, r.RequestsPerEvent)
		})
	}
}
