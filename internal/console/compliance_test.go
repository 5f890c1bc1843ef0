package console_test

import (
	"context"
	"fmt"
	"html"
	"math"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/internal/console"
	"github.com/memberflow/memberflow/internal/demo"
	"github.com/memberflow/memberflow/internal/reconcile"
)

// The compliance page shows the drift reconcile reports, from the same
// report: an amount drift (a member payment amended after it mirrored an
// order, a payment amended after it was recorded on an order) is listed
// with both amounts, counted under its rule, and marks the member's row,
// and every finding of a reconcile of the same services is on the page.
func TestComplianceShowsAmountDrift(t *testing.T) {
	d, err := demo.Start(demo.Options{Examples: "../../examples", Dir: t.TempDir(), Members: 100, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if sum, err := d.Run(ctx); err != nil || sum.Dead() > 0 {
		t.Fatalf("demo: %v, %v", err, sum)
	}
	rc, err := reconcile.New(reconcile.Options{Recipes: d.Recipes, Connections: d.Connections})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, snap, err := rc.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A member payment mirrored from a paid order, and one mirrored onto
	// an order: each amended in Memberships by a person.
	orders := map[string]bool{}
	for _, o := range snap.Orders {
		orders[fmt.Sprint(o.Data["orderId"])] = true
	}
	var fromOrder, ontoOrder map[string]any
	for _, p := range snap.Payments {
		ref, _ := p.Data["externalRef"].(string)
		switch {
		case fromOrder == nil && strings.HasPrefix(ref, "ae-order-") && orders[strings.TrimPrefix(ref, "ae-order-")]:
			fromOrder = p.Data
		case ontoOrder == nil && p.Data["source"] != "accelevents" && p.Data["status"] == "paid":
			if found := call(t, d, "accelevents", "search_payments", map[string]any{"externalRef": fmt.Sprintf("mship-%v", p.Data["id"])}); found["recordsTotal"] == 1.0 {
				ontoOrder = p.Data
			}
		}
	}
	if fromOrder == nil || ontoOrder == nil {
		t.Fatalf("the demo mirrored no order (%v) or no payment (%v)", fromOrder, ontoOrder)
	}
	amended := math.Round((fromOrder["amount"].(float64)-1)*100) / 100
	call(t, d, "memberships", "update_payment", map[string]any{"paymentId": fromOrder["id"], "amount": amended})
	call(t, d, "memberships", "update_payment", map[string]any{"paymentId": ontoOrder["id"], "currency": "EUR"})

	h, err := console.New(console.Options{Store: d.Store, Compliance: &console.Reconciling{R: rc}, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	_, page := get(t, noRedirect, srv.URL+"/console/compliance")
	rep, _, err := rc.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 2 {
		t.Fatalf("reconcile: %d findings, want the 2 amended payments: %+v", len(rep.Findings), rep.Findings)
	}
	for _, f := range rep.Findings {
		if !strings.Contains(page, html.EscapeString(f.Summary)) {
			t.Errorf("the compliance page does not list reconcile's %s finding %q", f.Rule, f.Summary)
		}
		if f.Amounts == nil || !strings.Contains(page, html.EscapeString(f.Amounts.Expected.String())) || !strings.Contains(page, html.EscapeString(f.Amounts.Found.String())) {
			t.Errorf("%s: the page does not show both amounts %+v", f.Rule, f.Amounts)
		}
	}
	want := map[string]string{
		"order-amount-differs-in-payments": fmt.Sprint(fromOrder["userId"]),
		"payment-amount-differs-on-order":  fmt.Sprint(ontoOrder["userId"]),
	}
	for rule, member := range want {
		if !regexp.MustCompile(`compliance\?rule=` + rule + `">` + rule + `</a><br><small>[^<]*</small></td><td class="num">1</td>`).MatchString(page) {
			t.Errorf("the rules table does not count one %s", rule)
		}
		_, filtered := get(t, noRedirect, srv.URL+"/console/compliance?rule="+rule)
		if !strings.Contains(filtered, "1 member(s)") || !strings.Contains(filtered, member) {
			t.Errorf("filtered by %s, the table does not show member %s alone", rule, member)
		}
		_, csv := get(t, noRedirect, srv.URL+"/console/compliance.csv?rule="+rule)
		if !strings.Contains(csv, member) || !strings.Contains(csv, rule) {
			t.Errorf("the CSV filtered by %s does not list member %s:\n%s", rule, member, csv)
		}
	}
}
