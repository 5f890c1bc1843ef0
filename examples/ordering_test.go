package examples_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/accredible"
	"github.com/memberflow/memberflow/connectors/memberships/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
	"github.com/memberflow/memberflow/recipes"
)

// TestRunsAboutOneMemberShareItsKey: the recipes whose events are not the
// member's own but act on a member order their runs by the key the
// member's own events get (the event subject of the members' triggers),
// so that their runs and those of the recipes triggered by the member
// never overlap. Without it, push-certificate-to-member could read a
// member between the two steps of the run that issued its certificate,
// and write the certificate's id a second time (the demo then counted
// 87 members updated instead of 80).
func TestRunsAboutOneMemberShareItsKey(t *testing.T) {
	// The subject the members' triggers give a member, from a real poll.
	sb := sandbox.New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
	sb.Seed(sandboxkit.Seed{Members: 1, Seed: 1, Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	spec, ok := connectors.Default.Lookup("memberships")
	if !ok {
		t.Fatal("no memberships connector")
	}
	conn, err := spec.Open(connectors.ConnectionConfig{Name: "members", BaseURL: srv.URL,
		Auth:      connectors.Auth{Type: connectors.AuthBearer, Token: sandbox.DemoKey},
		RateLimit: &connectors.RateLimit{},
		Options:   map[string]any{"locationId": sandbox.DemoLocationID, "companyId": sandbox.DemoCompanyID}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := spec.Trigger("user_created").Poll(context.Background(), conn, connectors.PollRequest{Start: connectors.StartBeginning, Now: time.Now()})
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("polling the one member: %v, %+v", err, res)
	}
	member := res.Events[0]
	id, _ := member.Data["id"].(string)
	if id == "" || member.Subject == "" {
		t.Fatalf("the member's event has no id or subject: %+v", member)
	}

	rs, diags := recipes.Load(recipes.Options{Registry: connectors.Default}, ".")
	if len(diags) > 0 {
		t.Fatalf("diagnostics:\n%v", diags)
	}
	byName := map[string]*recipes.Recipe{}
	for _, r := range rs {
		byName[r.Name] = r
	}
	for _, tc := range []struct {
		recipe  string
		trigger map[string]any // an event about the member
		want    string
	}{
		{"payments-to-accelevents", map[string]any{"userId": id}, member.Subject},
		{"payments-after-activation", map[string]any{"userId": id}, member.Subject},
		{"push-certificate-to-member", map[string]any{"id": 7, "recipient": map[string]any{"id": id}}, member.Subject},
		// A certificate made by hand names no member: its own key.
		{"push-certificate-to-member", map[string]any{"id": 7, "recipient": map[string]any{"email": "a@example.org"}}, accredible.Subject("7")},
	} {
		r := byName[tc.recipe]
		if r == nil || r.Trigger.OrderBy == nil {
			t.Errorf("%s: no such recipe, or it has no order_by", tc.recipe)
			continue
		}
		key, err := r.Trigger.OrderBy.Eval(recipes.Env{"trigger": tc.trigger, "vars": r.Vars})
		if err != nil {
			t.Errorf("%s: order_by: %v", tc.recipe, err)
			continue
		}
		if key != tc.want {
			t.Errorf("%s: order_by gives %q for %v, want %q", tc.recipe, key, tc.trigger, tc.want)
		}
	}
}
