package memberships

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/memberflow/memberflow/connectors/memberships/sandbox"
)

// TestFindByEmailBatchMatchesEachAlone: the batch form answers every
// input as a look-up of its email alone does (found or not, how many, the
// same user), whatever the email's case and with an email asked twice, in
// one request instead of one per input.
func TestFindByEmailBatchMatchesEachAlone(t *testing.T) {
	var lookups atomic.Int64
	count := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/users/search/filter-by-email" {
				lookups.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}
	f := newFixture(t, 150, count, nil)
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
	lookups.Store(0)
	var want []any
	for _, in := range inputs {
		want = append(want, out(f.must("find_user_by_email", in)))
	}
	alone := lookups.Load()
	lookups.Store(0)
	b := f.spec.Action("find_user_by_email").Batch
	if b == nil || b.Max < len(inputs) {
		t.Fatalf("find_user_by_email's batch form: %+v", b)
	}
	got, err := b.Run(context.Background(), f.conn, inputs)
	if err != nil {
		t.Fatal(err)
	}
	if n := lookups.Load(); n != 1 || alone != int64(len(inputs)) {
		t.Errorf("the batch sent %d look-ups, want 1 (alone: %d for %d inputs)", n, alone, len(inputs))
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
}
