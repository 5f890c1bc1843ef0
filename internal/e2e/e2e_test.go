// Package e2e runs every example recipe against the in-process sandbox
// through the real engine and checks the services' state through their
// HTTP API: one certificate per eligible member, one attendee per member in
// good standing, each payment mirrored once, no duplicates; a second run
// changes nothing; after the sandbox mutates, the next run makes exactly
// the matching changes.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	_ "github.com/memberflow/memberflow/connectors/all"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
	"github.com/memberflow/memberflow/recipes"
)

const (
	examples = "../../examples"
	members  = 300
	// concurrency of the engine. Two examples upsert the same attendee
	// (sync-members-to-attendees, payments-to-accelevents) and the
	// engine orders runs per recipe, not across recipes: at more than one
	// run at a time the two can both find no attendee and both create one.
	concurrency = 8
	maxPasses   = 8
)

// startSandbox seeds and starts the combined sandbox, with rate limits off
// so that the test measures correctness, not waiting.
func startSandbox(t *testing.T) (*sandbox.Server, *api) {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{Members: members, Seed: 11, RateLimit: &sandboxkit.Limit{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb, &api{t: t, sb: sb, http: &http.Client{Timeout: 30 * time.Second}}
}

// newEngine loads every example with the sandbox connections file and
// points each connection at the in-process sandbox, as `memberflow run
// --sandbox` does; local files go to outDir.
func newEngine(t *testing.T, sb *sandbox.Server, outDir string) *engine.Engine {
	t.Helper()
	return newEngineAt(t, sb.Services(), sb.URL, outDir)
}

// newEngineAt is newEngine with the services' base URLs given by urlFor
// (the capture test puts a recorder in front of the sandbox).
func newEngineAt(t *testing.T, services []string, urlFor func(service string) string, outDir string, tweak ...func(*engine.Options)) *engine.Engine {
	t.Helper()
	// The member-facing examples; examples/operations watch the runner
	// itself (alerts) and are proved by their own recipe tests.
	rs, diags := recipes.Load(recipes.Options{Registry: connectors.Default,
		Connections: []string{filepath.Join(examples, "connections.sandbox.yaml")}},
		filepath.Join(examples, "accredible"), filepath.Join(examples, "accelevents"))
	if diags.HasErrors() {
		t.Fatalf("examples do not load:\n%v", diags)
	}
	if len(rs) != 13 {
		t.Fatalf("loaded %d examples, want 13", len(rs))
	}
	secrets := recipes.SecretMap(sandbox.DemoSecrets())
	secrets["SANDBOX_NOTIFY_SECRET"] = sandbox.NotifySecret
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "state.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	logger := hclog.New(&hclog.LoggerOptions{Name: "e2e", Level: hclog.Warn, Output: testWriter{t}})
	opts := engine.Options{Store: store, Logger: logger, Concurrency: concurrency, Owner: "e2e", HighWater: 1 << 20}
	for _, f := range tweak {
		f(&opts)
	}
	eng, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	for _, r := range rs {
		conns := map[string]engine.Connection{}
		for name, c := range r.Connections {
			spec, ok := connectors.Default.Lookup(c.Connector)
			if !ok {
				t.Fatalf("%s: unknown connector %q", r.File, c.Connector)
			}
			cfg, err := c.Resolve(secrets)
			if err != nil {
				t.Fatalf("%s: %v", r.File, err)
			}
			if slices.Contains(services, spec.Name) {
				cfg.BaseURL = urlFor(spec.Name)
			}
			if spec.Name == "file" {
				cfg.Options = map[string]any{"baseDir": outDir}
			}
			conns[name] = engine.Connection{Spec: spec, Config: cfg}
		}
		if err := eng.Add(r, conns); err != nil {
			t.Fatal(err)
		}
	}
	return eng
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func totalWrites(s *engine.Summary) (writes, dead int64) {
	for _, r := range s.Recipes {
		for _, n := range r.Writes {
			writes += n
		}
		dead += r.Dead
	}
	return
}

// runUntilQuiet runs passes until one writes nothing. A pass polls every
// trigger until caught up, then runs what it found (engine.Poll, then
// engine.Drain): a change one recipe makes is seen by another recipe's
// trigger on the next pass.
func runUntilQuiet(t *testing.T, eng *engine.Engine) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	lastWrites, lastDead := totalWrites(eng.Summary())
	for pass := 1; pass <= maxPasses; pass++ {
		if err := eng.Poll(ctx); err != nil {
			t.Fatalf("pass %d: polling: %v", pass, err)
		}
		sum, err := eng.Drain(ctx)
		if err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		writes, dead := totalWrites(sum)
		if dead != lastDead {
			var b strings.Builder
			sum.WriteText(&b)
			t.Fatalf("pass %d: %d runs dead-lettered:\n%s", pass, dead-lastDead, b.String())
		}
		t.Logf("pass %d: %d writes", pass, writes-lastWrites)
		if writes == lastWrites {
			var b strings.Builder
			sum.WriteText(&b)
			t.Logf("quiet after %d passes; totals:\n%s", pass, b.String())
			return pass
		}
		lastWrites, lastDead = writes, dead
	}
	t.Fatalf("still writing after %d passes", maxPasses)
	return 0
}

func goodStanding(m member) bool {
	return (m.MembershipStatus == "active" || m.MembershipStatus == "eligible") && m.Email != ""
}

// checkState checks the invariants the examples promise, through the API.
func checkState(t *testing.T, a *api, outDir string, before ...map[string]member) (ms map[string]member, creds map[string][]credential, atts []attendee) {
	t.Helper()
	today := time.Now().UTC().Format("2006-01-02")
	ms = a.allMembers()
	creds = a.credentialsByMember()
	atts = a.attendees()

	// Certificates: one per eligible member, carried by the member; an
	// expired one on a lapsed member; none for the others.
	issued, expired := 0, 0
	for id, m := range ms {
		cs := creds[id]
		switch {
		case m.MembershipStatus == "eligible" && m.Email != "" && m.EligibilityDate <= today:
			if len(cs) != 1 {
				t.Errorf("eligible member %s has %d certificates, want 1", id, len(cs))
				continue
			}
			if m.CertificateID != string(cs[0].ID) || m.CertificateStatus != "issued" {
				t.Errorf("eligible member %s carries certificate %q (%s), want %q (issued)", id, m.CertificateID, m.CertificateStatus, cs[0].ID)
			}
			issued++
		case m.MembershipStatus == "lapsed" && len(cs) > 0:
			if len(cs) != 1 || cs[0].ExpiredOn == nil || *cs[0].ExpiredOn > today {
				t.Errorf("lapsed member %s: certificates %+v, want one expired", id, cs)
				continue
			}
			if m.CertificateID != string(cs[0].ID) || m.CertificateStatus != "expired" {
				t.Errorf("lapsed member %s carries certificate %q (%s), want %q (expired)", id, m.CertificateID, m.CertificateStatus, cs[0].ID)
			}
			expired++
		case len(cs) > 0:
			t.Errorf("member %s (%s) has %d certificates, want none", id, m.MembershipStatus, len(cs))
		}
	}
	for id := range creds {
		if _, ok := ms[id]; !ok {
			t.Errorf("certificates for %q, who is not a member: %+v", id, creds[id])
		}
	}
	if issued == 0 {
		t.Errorf("no certificate issued at all")
	}

	// Attendees: one per member in good standing, with the member's email.
	byExt := map[string][]attendee{}
	for _, at := range atts {
		if at.ExternalID != "" && at.Status != "CANCELED" {
			byExt[at.ExternalID] = append(byExt[at.ExternalID], at)
		}
	}
	synced := 0
	for id, m := range ms {
		got := byExt[id]
		if goodStanding(m) {
			if len(got) != 1 {
				t.Errorf("member %s (%s, %s) has %d attendees, want 1: %+v", id, m.MembershipStatus, m.Email, len(got), got)
				continue
			}
			if !strings.EqualFold(got[0].Email, m.Email) {
				t.Errorf("member %s's attendee has email %q, the member %q", id, got[0].Email, m.Email)
			}
			if m.RegistrationStatus == "none" || m.RegistrationStatus == "" {
				t.Errorf("member %s has an attendee but registrationStatus %q", id, m.RegistrationStatus)
			}
			synced++
		}
	}

	// Payments: each Memberships payment of a member in good standing is
	// on that member's Accelevents order once; those that came from
	// Accelevents are not sent back.
	mirrored := 0
	for _, p := range a.allPayments() {
		m := ms[p.UserID]
		want := 0
		if p.Source != "accelevents" && p.Status == "paid" && p.Amount > 0 && goodStanding(m) {
			want = 1
		}
		got := a.aePayments("mship-" + p.ID)
		changed := false
		for _, b := range before {
			if prev, ok := b[p.UserID]; ok && goodStanding(prev) != goodStanding(m) {
				changed = true
			}
		}
		if changed && p.Source != "accelevents" && got <= 1 {
			// The member's standing changed after the payment was
			// handled: mirrored or not, by the standing it had then.
			want = got
		}
		if got != want {
			t.Errorf("payment %s (%s, %s, member %s): recorded %d times at Accelevents, want %d", p.ID, p.Source, p.Status, m.MembershipStatus, got, want)
		}
		mirrored += want
	}

	// QR codes: one line per booked attendee.
	lines := readQRFile(t, filepath.Join(outDir, "attendee-qr-codes.jsonl"))
	for _, at := range atts {
		if at.Status == "BOOKED" && lines[at.AttendeeID] != 1 {
			t.Errorf("attendee %d has %d QR lines, want 1", at.AttendeeID, lines[at.AttendeeID])
		}
	}

	st := a.stats()
	for _, svc := range []string{"memberships", "accredible"} {
		for kind, n := range st.Services[svc].Duplicates {
			if n != 0 {
				t.Errorf("/_sandbox/stats: %s has %d duplicate %s", svc, n, kind)
			}
		}
	}
	t.Logf("%d members: %d certificates issued, %d expired, %d attendees synced, %d payments mirrored, %d QR codes",
		len(ms), issued, expired, synced, mirrored, len(lines))
	return ms, creds, atts
}

func readQRFile(t *testing.T, path string) map[int64]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the QR codes file: %v", err)
	}
	defer f.Close()
	out := map[int64]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var line struct {
			AttendeeID int64  `json:"attendeeId"`
			Barcode    string `json:"barcode"`
			SVG        string `json:"svg"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if line.Barcode == "" || !strings.Contains(line.SVG, "<svg") {
			t.Errorf("%s: attendee %d has no barcode or SVG", path, line.AttendeeID)
		}
		out[line.AttendeeID]++
	}
	return out
}

func countCreds(creds map[string][]credential) int {
	n := 0
	for _, cs := range creds {
		n += len(cs)
	}
	return n
}

func TestExamplesAgainstTheSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts the sandbox")
	}
	start := time.Now()
	sb, a := startSandbox(t)
	seeded := a.stats()
	// Members as seeded: registration-to-membership activates a pending
	// member who registers, and a payment is mirrored by the standing its
	// member had when the payment was handled.
	seededMembers := a.allMembers()
	outDir := t.TempDir()
	eng := newEngine(t, sb, outDir)

	// First run: everything existing is processed.
	runUntilQuiet(t, eng)
	ms, creds, atts := checkState(t, a, outDir, seededMembers)
	after1 := a.stats()
	if d := after1.Services["accelevents"].Duplicates["attendees"] - seeded.Services["accelevents"].Duplicates["attendees"]; d != 0 {
		t.Errorf("%d new duplicate attendees (seeded data has %d)", d, seeded.Services["accelevents"].Duplicates["attendees"])
	}

	// The members' tiers were seeded at their plans' prices: nothing to do.
	checkMemberTiers(t, a, map[string]float64{"Member — Associate": 179, "Member — Professional": 159, "Member — Fellow": 139})

	// Run again: nothing new.
	if passes := runUntilQuiet(t, eng); passes != 1 {
		t.Errorf("a second run took %d passes to settle, want 1 (nothing new)", passes)
	}
	if again := a.stats(); fmt.Sprint(again.Services["memberships"].Objects, again.Services["accredible"].Objects, again.Services["accelevents"].Objects) !=
		fmt.Sprint(after1.Services["memberships"].Objects, after1.Services["accredible"].Objects, after1.Services["accelevents"].Objects) {
		t.Errorf("a second run changed the services' objects:\nbefore %+v\nafter  %+v", after1.Services, again.Services)
	}

	// The services change the way people change them.
	// The walk-in is a pending member with no registration at all (one
	// whose ticket was refunded and who registers again is another
	// story), chosen in id order so that every run tests the same case.
	registered := map[string]bool{}
	for _, at := range atts {
		registered[strings.ToLower(at.Email)] = true
	}
	memberIDs := make([]string, 0, len(ms))
	for id := range ms {
		memberIDs = append(memberIDs, id)
	}
	sort.Strings(memberIDs)
	var walkIn, payer member
	for _, id := range memberIDs {
		m := ms[id]
		if m.MembershipStatus == "pending" && m.Email != "" && !registered[strings.ToLower(m.Email)] &&
			(m.RegistrationStatus == "none" || m.RegistrationStatus == "") && walkIn.ID == "" {
			walkIn = m
		}
		if goodStanding(m) && payer.ID == "" {
			payer = m
		}
	}
	if walkIn.ID == "" || payer.ID == "" {
		t.Fatal("the seed has no pending member or no member in good standing")
	}
	applied := a.mutate([]sandbox.MutateRequest{
		{Service: "memberships", Kind: "lapse", Count: 5},
		{Service: "memberships", Kind: "become_eligible", Count: 5},
		{Service: "memberships", Kind: "change_email", Count: 1},
		{Service: "memberships", Kind: "payment", Count: 1}, // from Accelevents: must not go back
		{Service: "accelevents", Kind: "register", Count: 1, Args: map[string]any{
			"email": walkIn.Email, "firstName": walkIn.FirstName, "lastName": walkIn.LastName}},
		{Service: "accelevents", Kind: "reprice", Args: map[string]any{"price": 249}}, // General Admission
	})
	ids := func(i int, key string) []string {
		var out []string
		list, _ := applied[i].Changed[key].([]any)
		for _, v := range list {
			out = append(out, fmt.Sprint(v))
		}
		return out
	}
	lapsed, eligible, emailChanged, aePayment := ids(0, "ids"), ids(1, "ids"), ids(2, "ids"), ids(3, "ids")
	if len(lapsed) != 5 || len(eligible) != 5 || len(emailChanged) != 1 || len(aePayment) != 1 {
		t.Fatalf("mutations applied: %+v", applied)
	}
	var stripe payment
	a.members("POST", "/payments", map[string]any{"userId": payer.ID, "amount": 95, "currency": "USD", "status": "paid",
		"source": "stripe", "externalRef": "ch_e2e_0001"}, &stripe)
	paymentsBefore := len(a.allPayments())

	runUntilQuiet(t, eng)
	ms2, creds2, atts2 := checkState(t, a, outDir, seededMembers, ms)

	// Exactly the matching changes.
	hadCert := 0
	for _, id := range lapsed {
		if ms[id].MembershipStatus == "eligible" {
			hadCert++
		}
		if ms2[id].MembershipStatus != "lapsed" {
			t.Errorf("member %s was lapsed by the sandbox and is %s", id, ms2[id].MembershipStatus)
		}
	}
	if got, want := countCreds(creds2), countCreds(creds)+len(eligible); got != want {
		t.Errorf("%d certificates after the changes, want %d (+%d newly eligible)", got, want, len(eligible))
	}
	for _, id := range eligible {
		if len(creds2[id]) != 1 || ms2[id].CertificateID != string(creds2[id][0].ID) {
			t.Errorf("newly eligible member %s: certificates %+v, carries %q", id, creds2[id], ms2[id].CertificateID)
		}
	}
	nowExpired := 0
	for _, cs := range creds2 {
		for _, c := range cs {
			if c.ExpiredOn != nil {
				nowExpired++
			}
		}
	}
	if nowExpired != hadCert {
		t.Errorf("%d certificates expired, want %d (the lapsed members who were eligible)", nowExpired, hadCert)
	}
	if got, want := len(atts2), len(atts)+1; got != want {
		t.Errorf("%d attendees after the changes, want %d (+1 walk-in registration)", got, want)
	}
	if m := ms2[emailChanged[0]]; goodStanding(m) {
		t.Logf("member %s changed email to %s; their attendee followed", m.ID, m.Email)
	}
	if m := ms2[walkIn.ID]; m.MembershipStatus != "active" || m.RegistrationStatus != "registered" {
		t.Errorf("walk-in member %s is %s/%s, want active/registered", walkIn.ID, m.MembershipStatus, m.RegistrationStatus)
	}
	var walkInOrder int64
	for _, at := range atts2 {
		if at.ExternalID == walkIn.ID {
			walkInOrder = at.OrderID
		}
	}
	if walkInOrder == 0 {
		t.Fatalf("the walk-in registration was not aligned to member %s", walkIn.ID)
	}
	// General Admission went from 199 to 249: each plan's tier followed at
	// its discount (10, 20, 30%).
	checkMemberTiers(t, a, map[string]float64{"Member — Associate": 224, "Member — Professional": 199, "Member — Fellow": 174})
	if got := a.paymentsByRef(fmt.Sprintf("ae-order-%d", walkInOrder)); len(got) != 1 || got[0].UserID != walkIn.ID {
		t.Errorf("the walk-in's paid order is in Memberships as %+v, want one payment of %s", got, walkIn.ID)
	}
	if got := a.aePayments("mship-" + stripe.ID); got != 1 {
		t.Errorf("the new Stripe payment %s is at Accelevents %d times, want 1", stripe.ID, got)
	}
	if got := a.aePayments("mship-" + aePayment[0]); got != 0 {
		t.Errorf("the payment that came from Accelevents went back %d times", got)
	}
	if got, want := len(a.allPayments()), paymentsBefore+1; got != want {
		t.Errorf("%d Memberships payments, want %d (+1 mirrored walk-in order)", got, want)
	}
	final := a.stats()
	if d := final.Services["accelevents"].Duplicates["attendees"] - seeded.Services["accelevents"].Duplicates["attendees"]; d != 0 {
		t.Errorf("%d new duplicate attendees", d)
	}
	if d := final.Services["accelevents"].Duplicates["payments"]; d != 0 {
		t.Errorf("%d duplicate Accelevents payments", d)
	}
	t.Logf("the seeded Accelevents data has %d attendees sharing an email; the runs added none",
		seeded.Services["accelevents"].Duplicates["attendees"])
	t.Logf("end to end in %s", time.Since(start).Round(time.Millisecond))
}

// checkMemberTiers reads the event's ticket types and wants each members'
// tier (by name) at its price.
func checkMemberTiers(t *testing.T, a *api, want map[string]float64) {
	t.Helper()
	var settings struct {
		TicketTypes []struct {
			Name  string  `json:"name"`
			Price float64 `json:"price"`
		} `json:"ticketTypes"`
	}
	a.accelevents("GET", "/staff/ticketing/settings", nil, &settings)
	got := map[string]float64{}
	for _, tt := range settings.TicketTypes {
		if _, ok := want[tt.Name]; ok {
			got[tt.Name] = tt.Price
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("members' tiers cost %v, want %v", got, want)
	}
}
