package memberships

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/memberships/sandbox"
)

// TestFindByEmailBatchMatchesEachAlone: the batch form answers every
// input as a look-up of its email alone does (found or not, how many, the
// same user), whatever the email's case and with an email asked twice.
// With agency access that takes one filter-by-email request instead of
// one per input; with location access (filter-by-email is closed to it)
// one search per distinct email, and never filter-by-email.
func TestFindByEmailBatchMatchesEachAlone(t *testing.T) {
	for _, c := range []struct {
		access string
		token  string
		// the requests the batch sends for 41 distinct emails
		filters, searches int64
	}{
		{"location", sandbox.DemoKey, 0, 41},
		{"agency", sandbox.DemoAgencyKey, 1, 0},
	} {
		t.Run(c.access, func(t *testing.T) {
			var filters, searches atomic.Int64
			count := func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					switch {
					case r.URL.Path == "/users/search/filter-by-email":
						filters.Add(1)
					case r.URL.Path == "/users/search" && r.URL.Query().Has("query"):
						searches.Add(1)
					}
					h.ServeHTTP(w, r)
				})
			}
			f := newFixture(t, 150, count, func(cfg *connectors.ConnectionConfig) {
				cfg.Auth.Token = c.token
				cfg.Options["access"] = c.access
			})
			page := out(f.must("search_users", map[string]any{"companyId": sandbox.DemoCompanyID, "limit": "100"}))
			var emails []string
			for _, u := range page["users"].([]any) {
				if e, _ := u.(map[string]any)["email"].(string); e != "" {
					emails = append(emails, e)
				}
			}
			if len(emails) < 40 {
				t.Fatalf("%d users with an email", len(emails))
			}
			inputs := []map[string]any{
				{"email": emails[0]},
				{"email": strings.ToUpper(emails[1])},
				{"email": "nobody.at.all@example.org"},
				{"email": emails[0]}, // asked twice
			}
			for _, e := range emails[2:40] {
				inputs = append(inputs, map[string]any{"email": e})
			}
			filters.Store(0)
			searches.Store(0)
			var want []any
			for _, in := range inputs {
				want = append(want, out(f.must("find_user_by_email", in)))
			}
			if n := filters.Load() + searches.Load(); n != int64(len(inputs)) {
				t.Errorf("alone: %d look-ups for %d inputs", n, len(inputs))
			}
			filters.Store(0)
			searches.Store(0)
			b := f.spec.Action("find_user_by_email").Batch
			if b == nil || b.Max < len(inputs) {
				t.Fatalf("find_user_by_email's batch form: %+v", b)
			}
			got, err := b.Run(context.Background(), f.conn, inputs)
			if err != nil {
				t.Fatal(err)
			}
			if fl, se := filters.Load(), searches.Load(); fl != c.filters || se != c.searches {
				t.Errorf("the batch sent %d filter-by-email and %d searches, want %d and %d", fl, se, c.filters, c.searches)
			}
			for i := range inputs {
				if got[i].Err != nil {
					t.Errorf("input %d: %v", i, got[i].Err)
					continue
				}
				if g := got[i].Result.Output; !reflect.DeepEqual(g, want[i]) {
					t.Errorf("input %d (%v):\n batch %v\n alone %v", i, inputs[i]["email"], g, want[i])
				}
			}
			if o := got[2].Result.Output.(map[string]any); o["found"] != false || o["count"] != 0 {
				t.Errorf("an unknown email: %v", o)
			}
		})
	}
}
