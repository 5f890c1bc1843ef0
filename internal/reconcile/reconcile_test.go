package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	_ "github.com/memberflow/memberflow/connectors/all"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/demo"
	"github.com/memberflow/memberflow/internal/reconcile"
)

// startDemo runs the examples against a fresh sandbox until quiet.
func startDemo(t *testing.T) *demo.Demo {
	t.Helper()
	d, err := demo.Start(demo.Options{Examples: "../../examples", Dir: t.TempDir(), Members: 100, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := d.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Dead() > 0 {
		t.Fatalf("the demo dead-lettered %d runs", sum.Dead())
	}
	return d
}

func reconciler(t *testing.T, d *demo.Demo) *reconcile.Reconciler {
	t.Helper()
	r, err := reconcile.New(reconcile.Options{Recipes: d.Recipes, Connections: d.Connections})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// drift lists findings as "rule subject..." lines, sorted.
func drift(rep *reconcile.Report) []string {
	var out []string
	for _, f := range rep.Findings {
		out = append(out, f.Rule+" "+strings.Join(f.Records, " "))
	}
	sort.Strings(out)
	return out
}

func mutate(t *testing.T, d *demo.Demo, service, kind string, count int, args map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"service": service, "kind": kind, "count": count, "args": args})
	res, err := http.Post(d.URL+"/_sandbox/mutate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Applied []struct {
			Changed map[string]any `json:"changed"`
		} `json:"applied"`
		Error string `json:"error"`
	}
	json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != 200 || len(out.Applied) != 1 {
		t.Fatalf("mutate %s.%s: HTTP %d %s", service, kind, res.StatusCode, out.Error)
	}
	return out.Applied[0].Changed
}

// call runs a connector action through a connection of the demo.
func call(t *testing.T, d *demo.Demo, connector, action string, input map[string]any) any {
	t.Helper()
	for _, conns := range d.Connections {
		for _, c := range conns {
			if c.Spec.Name != connector {
				continue
			}
			conn, err := c.Spec.Open(c.Config)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Spec.Action(action).Run(context.Background(), conn, input)
			if err != nil {
				t.Fatalf("%s.%s: %v", connector, action, err)
			}
			return res.Output
		}
	}
	t.Fatalf("no connection to %s", connector)
	return nil
}

func ids(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		out = append(out, fmt.Sprint(x))
	}
	if s, ok := v.([]string); ok {
		out = s
	}
	return out
}

func TestNoDriftAfterTheDemo(t *testing.T) {
	d := startDemo(t)
	rep, s, err := reconciler(t, d).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 {
		t.Fatalf("drift after the demo:\n%s", strings.Join(drift(rep), "\n"))
	}
	if len(s.Members) != 100 || len(s.Credentials) == 0 || len(s.Attendees) == 0 || len(s.Payments) == 0 || len(s.Orders) == 0 {
		t.Fatalf("snapshot incomplete: %v", rep.Counts)
	}
	for _, ru := range rep.Rules {
		if !ru.Checked {
			t.Errorf("rule %s not checked with every example loaded", ru.ID)
		}
	}
}

// TestEachDriftIsReportedAndFixed injects every kind of drift, through
// /_sandbox/mutate and through the APIs as a person editing records
// would, expects exactly those findings, enqueues the fixes and runs
// only the queued runs (no trigger is polled: the fixes alone must
// repair it), and expects no fixable drift after.
func TestEachDriftIsReportedAndFixed(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	r := reconciler(t, d)
	_, before, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	members := map[string]map[string]any{}
	var withCred []string
	creds := map[string]string{}
	for _, c := range before.Credentials {
		rid, _ := c.Data["recipient"].(map[string]any)["id"].(string)
		creds[rid] = c.Subject
	}
	var goodStanding []string
	for _, m := range before.Members {
		id := m.Data["id"].(string)
		members[id] = m.Data
		if _, ok := creds[id]; ok && m.Data["membershipStatus"] == "eligible" {
			withCred = append(withCred, id)
		}
		if st := m.Data["membershipStatus"]; (st == "active" || st == "eligible") && m.Data["email"] != "" {
			goodStanding = append(goodStanding, id)
		}
	}
	sort.Strings(withCred)
	sort.Strings(goodStanding)
	var want []string
	fixable := map[string]bool{}
	expect := func(line string, fix bool) {
		want = append(want, line)
		fixable[line] = fix
	}

	// Members become eligible: no credential yet.
	for _, id := range ids(mutate(t, d, "memberships", "become_eligible", 2, nil)["ids"]) {
		expect("eligible-without-credential user/"+id, true)
	}
	// A member who carries a credential says it expired: the member
	// disagrees with Accredible.
	mismatched := withCred[0]
	call(t, d, "memberships", "update_user", map[string]any{"userId": mismatched, "certificateStatus": "expired"})
	expect("certificate-mismatch user/"+mismatched+" "+creds[mismatched], true)
	// A member with a credential lapses (set through the API as the
	// lapse mutation would, but on a chosen member).
	lapsed := withCred[1]
	call(t, d, "memberships", "set_membership_status", map[string]any{"userId": lapsed, "membershipStatus": "lapsed"})
	expect("lapsed-credential-not-expired user/"+lapsed+" "+creds[lapsed], true)
	// Members change email: their attendees keep the old one.
	for _, id := range ids(mutate(t, d, "memberships", "change_email", 3, nil)["ids"]) {
		if slices.Contains(goodStanding, id) && id != lapsed {
			att := attendeeOf(t, before, id)
			expect("attendee-differs user/"+id+" "+att, true)
		}
	}
	// A new member is activated by hand: no attendee yet.
	joined := ids(mutate(t, d, "memberships", "new_member", 1, nil)["ids"])[0]
	call(t, d, "memberships", "set_membership_status", map[string]any{"userId": joined, "membershipStatus": "active"})
	expect("member-without-attendee user/"+joined, true)
	// A second registration for a member, and a walk-in who is no member.
	dup := goodStanding[len(goodStanding)-2]
	dupAtt := mutate(t, d, "accelevents", "register", 1, map[string]any{"externalId": dup, "email": members[dup]["email"]})
	expect("duplicate-attendees "+attendeeOf(t, before, dup)+" attendee/"+ids(dupAtt["attendeeIds"])[0], false)
	walkIn := mutate(t, d, "accelevents", "register", 1, nil)
	expect("registration-without-member attendee/"+ids(walkIn["attendeeIds"])[0], false)
	// A payment recorded in Memberships by hand, for a member in good
	// standing who has an attendee.
	payer := goodStanding[0]
	pay := call(t, d, "memberships", "create_payment", map[string]any{"userId": payer, "amount": 42.5, "currency": "USD", "status": "paid", "source": "manual"})
	payID := fmt.Sprint(asMap(t, pay)["id"])
	expect("payment-missing-on-order payment/"+payID, true)
	// Mutations that are no drift by the recipes: a payment that came
	// from Accelevents (not sent back), a new pending member.
	mutate(t, d, "memberships", "payment", 1, nil)
	mutate(t, d, "memberships", "new_member", 1, nil)

	rep, during, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The second registration is a paid order of a member: not in
	// Memberships yet.
	for _, a := range during.Attendees {
		if a.Subject == "attendee/"+ids(dupAtt["attendeeIds"])[0] {
			expect(fmt.Sprintf("order-missing-in-payments order/%v", a.Data["orderId"]), true)
		}
	}
	sort.Strings(want)
	if got := drift(rep); !slices.Equal(got, want) {
		t.Fatalf("drift:\n  got  %s\n  want %s", strings.Join(got, "\n       "), strings.Join(want, "\n       "))
	}
	for _, f := range rep.Findings {
		line := f.Rule + " " + strings.Join(f.Records, " ")
		if fixable[line] != (f.Fix != nil) {
			t.Errorf("%s: fix %v, want fixable %v", line, f.Fix, fixable[line])
		}
		if f.Since == nil {
			t.Errorf("%s: no age", line)
		}
	}

	// Dry run: planned, nothing enqueued.
	plans, err := reconcile.Fix(ctx, d.Store, rep, true)
	if err != nil {
		t.Fatal(err)
	}
	if queued, _ := d.Store.ListRuns(ctx, engine.RunFilter{Status: engine.RunQueued}); len(queued) != 0 {
		t.Fatalf("a dry run enqueued %d runs", len(queued))
	}
	plans2, err := reconcile.Fix(ctx, d.Store, rep, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans2) != len(plans) || len(plans) == 0 {
		t.Fatalf("planned %d, enqueued %d", len(plans), len(plans2))
	}
	for _, p := range plans2 {
		if p.RunID == 0 {
			t.Errorf("fix %+v was not enqueued", p)
		}
	}
	// Run the queued fixes only, without polling any trigger.
	eng, err := engine.New(engine.Options{Store: d.Store, Logger: hclog.NewNullLogger(), Concurrency: 1, Owner: "fix"})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for _, rc := range d.Recipes {
		if err := eng.Add(rc, d.Connections[rc.Name]); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := eng.Drain(ctx)
	if err != nil || sum.Dead() > 0 {
		t.Fatalf("draining the fixes: %v, %d dead", err, sum.Dead())
	}
	after, _, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, line := range drift(after) {
		if fixable[line] || !slices.Contains(want, line) {
			left = append(left, line)
		}
	}
	if len(left) > 0 {
		t.Fatalf("drift left after the fixes:\n%s", strings.Join(left, "\n"))
	}
}

func attendeeOf(t *testing.T, s *reconcile.Snapshot, member string) string {
	t.Helper()
	for _, a := range s.Attendees {
		if a.Data["externalId"] == member {
			return a.Subject
		}
	}
	t.Fatalf("member %s has no attendee", member)
	return ""
}

func asMap(t *testing.T, v any) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if u, ok := m["payment"].(map[string]any); ok {
		return u
	}
	return m
}

var _ = connectors.StartBeginning

// failEvery answers every nth request 500 without sending it on, but
// never the same request (method and URL) twice: asked again, it passes.
// (A read of several requests, such as an order with its payments, would
// otherwise meet a failure on every attempt.) A request the service
// refuses for good (401) passes through unchanged.
type failEvery struct {
	n      int
	mu     sync.Mutex
	count  int
	failed int
	once   map[string]bool // the requests failed
}

func (f *failEvery) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.Method + " " + req.URL.String()
	f.mu.Lock()
	f.count++
	fail := f.count%f.n == 0 && !f.once[key]
	if fail {
		if f.once == nil {
			f.once = map[string]bool{}
		}
		f.once[key] = true
		f.failed++
	}
	f.mu.Unlock()
	if fail {
		return &http.Response{StatusCode: 500, Status: "500 Internal Server Error", Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"message":"Internal server error"}`)), Request: req}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// A service that fails now and then does not fail the report: every page
// and every look-up is asked again, and the result is the same as on a
// quiet service (issue: one failed payment look-up failed reconcile and
// the console's compliance page outright).
func TestReadsSurviveOccasionalFailures(t *testing.T) {
	d := startDemo(t)
	quiet, _, err := reconciler(t, d).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	flaky := &failEvery{n: 3}
	conns := map[string]map[string]engine.Connection{}
	for recipe, cs := range d.Connections {
		conns[recipe] = map[string]engine.Connection{}
		for name, c := range cs {
			c.Config.HTTPClient = &http.Client{Transport: flaky}
			conns[recipe][name] = c
		}
	}
	r, err := reconcile.New(reconcile.Options{Recipes: d.Recipes, Connections: conns})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, s, err := r.Run(context.Background())
	if err != nil {
		t.Fatalf("a third of the requests failing once failed the reconcile: %v", err)
	}
	if flaky.failed == 0 || s.Calls <= flaky.failed {
		t.Fatalf("%d failures injected in %d calls: the test tested nothing", flaky.failed, s.Calls)
	}
	if got, want := drift(rep), drift(quiet); !slices.Equal(got, want) || !reflect.DeepEqual(rep.Counts, quiet.Counts) {
		t.Fatalf("with failures: %v %v\nquiet: %v %v", got, rep.Counts, want, quiet.Counts)
	}
}

// An order paid only by a payment memberflow mirrored onto it from the
// Memberships API (reference mship-…, by payments-to-accelevents) is no
// drift: payments-to-memberships takes those payments out of the order's
// amountPaid and posts nothing. The rule answers the recipe's order read
// step with the order and its payments as Accelevents gives them, so the
// recipe's own condition decides. Orders paid, wholly or in part, by
// payments recorded from elsewhere are still missing in Memberships.
// (Issue: on `sandbox --members 1000` seed 1, after `run --once`, one
// order-missing-in-payments that was none: the rule took the order's
// payments recorded from elsewhere as none.)
func TestOrderPaidByAMirroredPaymentIsNoDrift(t *testing.T) {
	d := startDemo(t)
	ctx := context.Background()
	cases := []struct {
		name string
		// The payments recorded on the order: mirrored from a Memberships
		// payment (mship-<its id>), or from elsewhere, as parts of its total.
		mirrored, elsewhere float64
		drift               bool
	}{
		{name: "only a mirrored payment", mirrored: 1, drift: false},
		{name: "only a payment from the box office", elsewhere: 1, drift: true},
		{name: "mirrored in part, the rest at the box office", mirrored: 0.5, elsewhere: 0.5, drift: true},
	}
	var want []string
	for i, tc := range cases {
		// A new (pending) member registers at the event site and pays
		// later: the order waits unpaid.
		id := ids(mutate(t, d, "memberships", "new_member", 1, nil)["ids"])[0]
		u := asMap(t, call(t, d, "memberships", "get_user", map[string]any{"userId": id}))
		email := strings.ToLower(fmt.Sprint(u["email"]))
		reg := asMap(t, call(t, d, "accelevents", "create_order", map[string]any{"ticketTypeId": 145680, "paymentType": "UNPAID",
			"holders": []any{map[string]any{"firstName": u["firstName"], "lastName": u["lastName"], "email": email}}}))
		o := reg["order"].(map[string]any)
		orderID, total := o["orderId"], o["total"].(float64)
		if total <= 0 {
			t.Fatalf("%s: order %v costs %v", tc.name, orderID, total)
		}
		mirrored := math.Round(total*tc.mirrored*100) / 100
		if mirrored > 0 {
			// The member pays in Memberships; payments-to-accelevents
			// records it on the member's registration, as mship-<id>.
			pay := asMap(t, call(t, d, "memberships", "create_payment", map[string]any{"userId": id, "amount": mirrored, "currency": "USD", "status": "paid", "source": "manual"}))
			call(t, d, "accelevents", "record_payment", map[string]any{"orderId": orderID, "amount": mirrored, "externalRef": fmt.Sprintf("mship-%v", pay["id"]), "method": "manual"})
		}
		if rest := math.Round((total-mirrored)*100) / 100; tc.elsewhere > 0 {
			call(t, d, "accelevents", "record_payment", map[string]any{"orderId": orderID, "amount": rest, "externalRef": fmt.Sprintf("box-office-%d", i), "method": "cash"})
		}
		got := asMap(t, call(t, d, "accelevents", "get_order", map[string]any{"orderId": orderID}))
		if got["status"] != "PAID" || got["amountPaid"] != total {
			t.Fatalf("%s: order %v is %v with %v paid of %v: the case is not built", tc.name, orderID, got["status"], got["amountPaid"], total)
		}
		t.Logf("%s: order %v, %v paid, %v mirrored", tc.name, orderID, total, mirrored)
		if tc.drift {
			want = append(want, fmt.Sprintf("order-missing-in-payments order/%v", orderID))
		}
	}

	reads := aeRequests(t, d)
	rep, s, err := reconciler(t, d).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	if got := drift(rep); !slices.Equal(got, want) {
		t.Fatalf("drift:\n  got  %s\n  want %s", strings.Join(got, "\n       "), strings.Join(want, "\n       "))
	}
	// The cost: one read of an order with its payments (the order, and its
	// payments before and after) per order the recipe's condition keeps,
	// none for the others (the complimentary ones memberflow registers).
	kept := 0
	for _, o := range s.Orders {
		if p, _ := o.Data["purchaser"].(map[string]any); o.Data["paymentType"] != "COMPLIMENTARY" && o.Data["total"].(float64) > 0 && p != nil && p["email"] != "" {
			kept++
		}
	}
	after := aeRequests(t, d)
	t.Logf("%d of %d orders kept by the recipe's condition, read with their payments", kept, len(s.Orders))
	const order, payments = "GET /rest/events/{eventUrl}/staff/orders/{orderId}", "GET /rest/events/{eventUrl}/staff/orders/{orderId}/payments"
	if kept < len(cases) || kept == len(s.Orders) || after[order]-reads[order] != kept || after[payments]-reads[payments] != 2*kept {
		t.Errorf("%d orders of %d kept by the recipe's condition: read with %d order and %d payment list requests, want %d and %d",
			kept, len(s.Orders), after[order]-reads[order], after[payments]-reads[payments], kept, 2*kept)
	}
}

// aeRequests counts the requests the Accelevents sandbox has answered, by
// route.
func aeRequests(t *testing.T, d *demo.Demo) map[string]int {
	t.Helper()
	res, err := http.Get(d.URL + "/_sandbox/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st struct {
		Services map[string]struct {
			Requests map[string]int `json:"requests"`
		} `json:"services"`
	}
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatalf("sandbox stats: %v", err)
	}
	return st.Services["accelevents"].Requests
}
