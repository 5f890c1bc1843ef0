package reconcile

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/recipes"
)

// Finding is one drift: a rule that does not hold for some records.
type Finding struct {
	Rule    string   `json:"rule"`
	Summary string   `json:"summary"`
	Records []string `json:"records"`
	// Member is the member the drift is about, when there is one (the
	// console joins findings to its compliance table by it).
	Member string `json:"member,omitempty"`
	// Recipe is the recipe whose run would fix the drift; empty when no
	// loaded recipe can (the drift needs a person).
	Recipe string `json:"recipe,omitempty"`
	// Since is the latest change of the records involved: the drift is at
	// least that old.
	Since *time.Time `json:"since,omitempty"`
	// Fix is the run --fix enqueues; nil when the recipe's condition is
	// false for these records (another rule's fix comes first) or there
	// is no recipe.
	Fix *FixRun `json:"fix,omitempty"`
}

// FixRun is a run of a recipe, made from the event its trigger would
// report for the drifting record.
type FixRun struct {
	Recipe    string         `json:"recipe"`
	Subject   string         `json:"subject"`
	Connector string         `json:"-"`
	Data      map[string]any `json:"-"`
	orderBy   *recipes.Expr
	vars      map[string]any
}

// RuleInfo describes a rule as bound to the loaded recipes.
type RuleInfo struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Recipe is the loaded recipe that fixes this rule's drift.
	Recipe string `json:"recipe,omitempty"`
	// Checked is false when no loaded recipe makes the rule apply.
	Checked bool `json:"checked"`
	// Derived says what of the rule comes from the recipe.
	Derived string `json:"derived"`
}

// rule is one integrity rule. A rule with a fixer signature is checked
// only when a loaded recipe has that trigger and calls that action: the
// recipe is what says the two systems should agree.
type rule struct {
	id, title string
	// fixTrigger and fixAction are connector.operation names.
	fixTrigger, fixAction string
	// fixable is false for rules whose matching recipe reads but cannot
	// repair (registration-without-member): they name no recipe.
	fixable bool
	derived string
	check   func(c *checkCtx) []Finding
	// refs lists the Accelevents payment references the rule needs.
	refs func(c *checkCtx) []string
}

// Rules are the integrity rules in report order.
var rules = []*rule{
	{
		id: "eligible-without-credential", title: "an eligible member has no valid credential",
		fixTrigger: "memberships.membership_status_changed", fixAction: "accredible.upsert_credential", fixable: true,
		derived: "which members: the recipe's when on the member's status event; eligibility date reached and an email (the issuing step's when)",
		check:   checkEligible,
	},
	{
		id: "lapsed-credential-not-expired", title: "a lapsed or cancelled member's credential is not expired",
		fixTrigger: "memberships.membership_status_changed", fixAction: "accredible.expire_credential", fixable: true,
		derived: "the fixing recipe and whether it runs (its when on the member's status event)",
		check:   checkLapsed,
	},
	{
		id: "certificate-mismatch", title: "the member's certificateId, certificateStatus or issuanceDate disagrees with Accredible",
		fixTrigger: "accredible.credential_changed", fixAction: "memberships.update_user", fixable: true,
		derived: "the expected member fields: the with of the recipe's update_user step, evaluated on the credential",
		check:   checkCertificateFields,
	},
	{
		id: "member-without-attendee", title: "a member the sync recipe covers has no attendee",
		fixTrigger: "memberships.user_changed", fixAction: "accelevents.upsert_attendee", fixable: true,
		derived: "which members: the recipe's when; the attendee's key: externalId from the upsert_attendee step's with",
		check:   checkAttendees(false),
	},
	{
		id: "attendee-differs", title: "an attendee's email or name differs from the member's",
		fixTrigger: "memberships.user_changed", fixAction: "accelevents.upsert_attendee", fixable: true,
		derived: "the expected email, firstName and lastName: the upsert_attendee step's with, evaluated on the member",
		check:   checkAttendees(true),
	},
	{
		id: "duplicate-attendees", title: "one member has more than one booked attendee",
		fixTrigger: "memberships.user_changed", fixAction: "accelevents.upsert_attendee",
		derived: "checked when a recipe syncs members to attendees; the key is externalId from its with; no recipe removes a duplicate",
		check:   checkDuplicateAttendees,
	},
	{
		id: "registration-without-member", title: "a registration's email or member id matches no member",
		fixTrigger: "accelevents.registration_created", fixAction: "memberships.find_user_by_email",
		derived: "which registrations: the recipe's when; no recipe creates members from registrations",
		check:   checkRegistrations,
	},
	{
		id: "payment-missing-in-accelevents", title: "a Memberships payment is missing on, or differs from, the member's Accelevents order",
		fixTrigger: "memberships.payment_created", fixAction: "accelevents.record_payment", fixable: true,
		derived: "which payments: the recipe's when and its upsert_attendee step's when; the reference and amount: the record_payment step's with",
		check:   checkPaymentsToAccelevents, refs: paymentRefsToAccelevents,
	},
	{
		id: "payment-missing-in-memberships", title: "a paid Accelevents order of a member is missing from, or doubled in, the member's Memberships payments",
		fixTrigger: "accelevents.order_paid", fixAction: "memberships.upsert_payment", fixable: true,
		derived: "which orders: the recipe's when and its upsert_payment step's when (the order's payments recorded from Memberships taken as none); the reference: the upsert_payment step's with (amounts not compared)",
		check:   checkPaymentsToMemberships,
	},
}

// RuleIDs lists every rule, for --rule and the console's filter.
func RuleIDs() []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.id
	}
	return out
}

type boundRule struct {
	rule  *rule
	fixer *recipes.Recipe
	today string
	now   time.Time
}

// bindRules finds each rule's recipe: the first, by name, whose trigger
// and one of whose steps match the rule's signature.
func bindRules(sorted []*recipes.Recipe) []*boundRule {
	var out []*boundRule
	for _, ru := range rules {
		br := &boundRule{rule: ru}
		for _, rc := range sorted {
			if rc.Trigger == nil || connectorOf(rc, rc.Trigger.Connection)+"."+rc.Trigger.Operation != ru.fixTrigger {
				continue
			}
			for _, st := range rc.Steps {
				if connectorOf(rc, st.Connection)+"."+st.Operation == ru.fixAction {
					br.fixer = rc
					break
				}
			}
			if br.fixer != nil {
				break
			}
		}
		out = append(out, br)
	}
	return out
}

// Rules describes the rules as bound to the loaded recipes.
func (r *Reconciler) Rules() []RuleInfo {
	out := make([]RuleInfo, 0, len(r.rules))
	for _, br := range r.rules {
		ri := RuleInfo{ID: br.rule.id, Title: br.rule.title, Checked: br.fixer != nil, Derived: br.rule.derived}
		if br.fixer != nil && br.rule.fixable {
			ri.Recipe = br.fixer.Name
		}
		out = append(out, ri)
	}
	return out
}

// Check applies every bound rule to a snapshot. It does no I/O.
func (r *Reconciler) Check(s *Snapshot) []Finding {
	var out []Finding
	ix := newIndex(s)
	for _, br := range r.rules {
		if br.fixer == nil {
			continue
		}
		c := br.ctx(s, ix)
		fs := br.rule.check(c)
		for i := range fs {
			fs[i].Rule = br.rule.id
			if br.rule.fixable {
				fs[i].Recipe = br.fixer.Name
			} else {
				fs[i].Fix = nil
			}
		}
		out = append(out, fs...)
	}
	return out
}

func (br *boundRule) ctx(s *Snapshot, ix *index) *checkCtx {
	now := s.Taken
	if now.IsZero() {
		now = time.Now().UTC()
	}
	return &checkCtx{s: s, r: br.fixer, today: now.Format("2006-01-02"), ix: ix}
}

// index looks records up across the snapshot.
type index struct {
	membersByID, membersByEmail map[string]map[string]any
	credsByMember               map[string][]map[string]any
	attendeesByExt              map[string][]map[string]any
	attendeesByEmail            map[string][]map[string]any
	paymentsByRef               map[string][]map[string]any
}

func newIndex(s *Snapshot) *index {
	ix := &index{membersByID: map[string]map[string]any{}, membersByEmail: map[string]map[string]any{},
		credsByMember: map[string][]map[string]any{}, attendeesByExt: map[string][]map[string]any{},
		attendeesByEmail: map[string][]map[string]any{}, paymentsByRef: map[string][]map[string]any{}}
	for _, m := range s.Members {
		ix.membersByID[str(m.Data, "id")] = m.Data
		if e := strings.ToLower(str(m.Data, "email")); e != "" {
			ix.membersByEmail[e] = m.Data
		}
	}
	for _, c := range s.Credentials {
		if id := str(c.Data, "recipient", "id"); id != "" {
			ix.credsByMember[id] = append(ix.credsByMember[id], c.Data)
		}
	}
	for _, a := range s.Attendees {
		if ext := str(a.Data, "externalId"); ext != "" {
			ix.attendeesByExt[ext] = append(ix.attendeesByExt[ext], a.Data)
		}
		if e := strings.ToLower(str(a.Data, "email")); e != "" {
			ix.attendeesByEmail[e] = append(ix.attendeesByEmail[e], a.Data)
		}
	}
	// A live ticket is the member's attendee when there is one.
	for _, atts := range ix.attendeesByEmail {
		sort.SliceStable(atts, func(i, j int) bool { return str(atts[i], "status") == "BOOKED" && str(atts[j], "status") != "BOOKED" })
	}
	for _, atts := range ix.attendeesByExt {
		sort.SliceStable(atts, func(i, j int) bool { return str(atts[i], "status") == "BOOKED" && str(atts[j], "status") != "BOOKED" })
	}
	for _, p := range s.Payments {
		if ref := str(p.Data, "externalRef"); ref != "" {
			ix.paymentsByRef[ref] = append(ix.paymentsByRef[ref], p.Data)
		}
	}
	return ix
}

// checkCtx is what a rule's check reads: the snapshot, the recipe that
// fixes its drift, and today's date.
type checkCtx struct {
	s     *Snapshot
	r     *recipes.Recipe
	ix    *index
	today string
}

// when evaluates the recipe's condition on an event it would receive.
func (c *checkCtx) when(data map[string]any) bool {
	if c.r.When == nil {
		return true
	}
	ok, err := c.r.When.EvalBool(recipes.Env{"trigger": data, "vars": c.r.Vars})
	return err == nil && ok
}

// step returns the recipe's first step calling action (connector.op).
func (c *checkCtx) step(action string) *recipes.Step {
	for _, st := range c.r.Steps {
		if connectorOf(c.r, st.Connection)+"."+st.Operation == action {
			return st
		}
	}
	return nil
}

// readSteps gives the outputs of the read steps before action, by the
// step ids the recipe uses, from what the snapshot holds: outputs maps a
// read action (connector.operation) to its output for this record.
func (c *checkCtx) readSteps(action string, outputs map[string]any) map[string]any {
	steps := map[string]any{}
	for _, st := range c.r.Steps {
		op := connectorOf(c.r, st.Connection) + "." + st.Operation
		if op == action {
			break
		}
		if out, ok := outputs[op]; ok {
			steps[st.ID] = out
		}
	}
	return steps
}

// stepWhen evaluates a step's condition with the given steps' outputs.
func (c *checkCtx) stepWhen(action string, trigger map[string]any, steps map[string]any) bool {
	st := c.step(action)
	if st == nil || st.When == nil {
		return st != nil
	}
	ok, err := st.When.EvalBool(recipes.Env{"trigger": trigger, "steps": steps, "vars": c.r.Vars})
	return err == nil && ok
}

// stepWith evaluates a step's with: what the recipe would send.
func (c *checkCtx) stepWith(action string, trigger map[string]any, steps map[string]any) map[string]any {
	st := c.step(action)
	if st == nil || st.With == nil {
		return nil
	}
	m, err := st.With.EvalMap(recipes.Env{"trigger": trigger, "steps": steps, "vars": c.r.Vars})
	if err != nil {
		return nil
	}
	return m
}

func (c *checkCtx) fix(subject string, data map[string]any) *FixRun {
	if !c.when(data) {
		return nil
	}
	return &FixRun{Recipe: c.r.Name, Subject: subject, Connector: connectorOf(c.r, c.r.Trigger.Connection), Data: data,
		orderBy: c.r.Trigger.OrderBy, vars: c.r.Vars}
}

// live reports whether a credential is unexpired today.
func (c *checkCtx) live(cred map[string]any) bool {
	exp := day(str(cred, "expired_on"))
	return exp == "" || exp > c.today
}

func statusEventData(m map[string]any) map[string]any {
	return map[string]any{"userId": str(m, "id"), "from": nil, "to": str(m, "membershipStatus"), "user": m}
}

func checkEligible(c *checkCtx) []Finding {
	var out []Finding
	for _, rec := range c.s.Members {
		m := rec.Data
		if str(m, "membershipStatus") != "eligible" {
			continue
		}
		ev := statusEventData(m)
		if !c.when(ev) || str(m, "email") == "" || day(str(m, "eligibilityDate")) == "" || day(str(m, "eligibilityDate")) > c.today {
			continue
		}
		hasLive := false
		for _, cr := range c.ix.credsByMember[str(m, "id")] {
			hasLive = hasLive || c.live(cr)
		}
		if hasLive {
			continue
		}
		out = append(out, Finding{Summary: fmt.Sprintf("member %s (%s) is eligible since %s and has no valid credential", str(m, "id"), str(m, "email"), day(str(m, "eligibilityDate"))),
			Records: []string{rec.Subject}, Member: str(m, "id"), Since: since(m), Fix: c.fix(rec.Subject, ev)})
	}
	return out
}

func checkLapsed(c *checkCtx) []Finding {
	var out []Finding
	for _, rec := range c.s.Members {
		m := rec.Data
		st := str(m, "membershipStatus")
		if st != "lapsed" && st != "cancelled" {
			continue
		}
		for _, cr := range c.ix.credsByMember[str(m, "id")] {
			if !c.live(cr) {
				continue
			}
			out = append(out, Finding{Summary: fmt.Sprintf("member %s is %s but credential %s is valid (expires %s)", str(m, "id"), st, str(cr, "id"), orNever(day(str(cr, "expired_on")))),
				Records: []string{rec.Subject, "credential/" + str(cr, "id")}, Member: str(m, "id"), Since: since(m, cr), Fix: c.fix(rec.Subject, statusEventData(m))})
		}
	}
	return out
}

func checkCertificateFields(c *checkCtx) []Finding {
	var out []Finding
	for _, rec := range c.s.Members {
		m := rec.Data
		creds := c.ix.credsByMember[str(m, "id")]
		if len(creds) == 0 {
			continue
		}
		// The credential a member should carry is the latest changed.
		cr := creds[0]
		for _, x := range creds[1:] {
			if str(x, "updated_at") > str(cr, "updated_at") {
				cr = x
			}
		}
		if !c.when(cr) {
			continue
		}
		want := c.stepWith("memberships.update_user", cr, map[string]any{"member": m})
		if want == nil {
			continue
		}
		var diffs []string
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "userId" {
				continue
			}
			if got, exp := scalar(m[k]), scalar(want[k]); day(got) != day(exp) {
				diffs = append(diffs, fmt.Sprintf("%s is %q, Accredible says %q", k, got, exp))
			}
		}
		if len(diffs) == 0 {
			continue
		}
		subj := "credential/" + str(cr, "id")
		out = append(out, Finding{Summary: fmt.Sprintf("member %s: %s", str(m, "id"), strings.Join(diffs, "; ")),
			Records: []string{rec.Subject, subj}, Member: str(m, "id"), Since: since(m, cr), Fix: c.fix(subj, cr)})
	}
	return out
}

func checkAttendees(differs bool) func(c *checkCtx) []Finding {
	return func(c *checkCtx) []Finding {
		var out []Finding
		for _, rec := range c.s.Members {
			m := rec.Data
			if !c.when(m) {
				continue
			}
			want := c.stepWith("accelevents.upsert_attendee", m, nil)
			ext := scalar(want["externalId"])
			if ext == "" {
				continue
			}
			atts := c.ix.attendeesByExt[ext]
			if len(atts) == 0 {
				if !differs {
					out = append(out, Finding{Summary: fmt.Sprintf("member %s (%s, %s) has no attendee", str(m, "id"), str(m, "membershipStatus"), str(m, "email")),
						Records: []string{rec.Subject}, Member: str(m, "id"), Since: since(m), Fix: c.fix(rec.Subject, m)})
				}
				continue
			}
			if !differs {
				continue
			}
			a := atts[0]
			var diffs []string
			for _, k := range []string{"email", "firstName", "lastName"} {
				exp, ok := want[k]
				if !ok {
					continue
				}
				if got := scalar(a[k]); !strings.EqualFold(got, scalar(exp)) {
					diffs = append(diffs, fmt.Sprintf("%s is %q, the member's %q", k, got, scalar(exp)))
				}
			}
			if len(diffs) > 0 {
				out = append(out, Finding{Summary: fmt.Sprintf("attendee %s of member %s: %s", scalar(a["attendeeId"]), str(m, "id"), strings.Join(diffs, "; ")),
					Records: []string{rec.Subject, "attendee/" + scalar(a["attendeeId"])}, Member: str(m, "id"), Since: since(m, a), Fix: c.fix(rec.Subject, m)})
			}
		}
		return out
	}
}

func checkDuplicateAttendees(c *checkCtx) []Finding {
	var out []Finding
	booked := map[string][]map[string]any{}
	var exts []string
	for ext, atts := range c.ix.attendeesByExt {
		for _, a := range atts {
			if str(a, "status") == "BOOKED" {
				booked[ext] = append(booked[ext], a)
			}
		}
		if len(booked[ext]) > 1 {
			exts = append(exts, ext)
		}
	}
	sort.Strings(exts)
	for _, ext := range exts {
		atts := booked[ext]
		sort.Slice(atts, func(i, j int) bool { return scalar(atts[i]["attendeeId"]) < scalar(atts[j]["attendeeId"]) })
		recs := []string{}
		ids := []string{}
		for _, a := range atts {
			recs = append(recs, "attendee/"+scalar(a["attendeeId"]))
			ids = append(ids, scalar(a["attendeeId"]))
		}
		out = append(out, Finding{Summary: fmt.Sprintf("member %s has %d booked attendees: %s", ext, len(atts), strings.Join(ids, ", ")),
			Records: recs, Member: ext, Since: since(atts...)})
	}
	return out
}

func checkRegistrations(c *checkCtx) []Finding {
	var out []Finding
	for _, rec := range c.s.Attendees {
		a := rec.Data
		if !c.when(a) {
			continue
		}
		if _, ok := c.ix.membersByEmail[strings.ToLower(str(a, "email"))]; ok {
			continue
		}
		if _, ok := c.ix.membersByID[str(a, "externalId")]; ok && str(a, "externalId") != "" {
			continue
		}
		out = append(out, Finding{Summary: fmt.Sprintf("attendee %s (%s) is no member", scalar(a["attendeeId"]), str(a, "email")),
			Records: []string{rec.Subject}, Since: since(a)})
	}
	return out
}

// toAccelevents is what the Memberships-to-Accelevents recipe would do
// with one payment: nil when it would not record it.
func (c *checkCtx) toAccelevents(p map[string]any) map[string]any {
	if !c.when(p) {
		return nil
	}
	m := c.ix.membersByID[str(p, "userId")]
	if m == nil {
		return nil
	}
	steps := c.readSteps("accelevents.record_payment", map[string]any{"memberships.get_user": m})
	// A look-up of the member's registration by email (for a pending
	// member), when the recipe makes one: the live ticket wins.
	var byEmail map[string]any
	if atts := c.ix.attendeesByEmail[strings.ToLower(str(m, "email"))]; len(atts) > 0 {
		byEmail = atts[0]
	}
	if st := c.step("accelevents.find_attendee"); st != nil && c.stepWhen("accelevents.find_attendee", p, steps) {
		steps[st.ID] = map[string]any{"found": byEmail != nil, "attendee": byEmail}
	}
	if !c.stepWhen("accelevents.upsert_attendee", p, steps) {
		return nil
	}
	// The attendee the upsert finds: by external id, then by email.
	att := byEmail
	if atts := c.ix.attendeesByExt[str(m, "id")]; len(atts) > 0 {
		att = atts[0]
	}
	// The attendee the upsert step would answer with.
	if st := c.step("accelevents.upsert_attendee"); st != nil {
		steps[st.ID] = map[string]any{"attendee": att}
	}
	return c.stepWith("accelevents.record_payment", p, steps)
}

func paymentRefsToAccelevents(c *checkCtx) []string {
	var refs []string
	for _, rec := range c.s.Payments {
		if want := c.toAccelevents(rec.Data); want != nil && scalar(want["externalRef"]) != "" {
			refs = append(refs, scalar(want["externalRef"]))
		}
	}
	return refs
}

func checkPaymentsToAccelevents(c *checkCtx) []Finding {
	var out []Finding
	for _, rec := range c.s.Payments {
		p := rec.Data
		want := c.toAccelevents(p)
		if want == nil {
			continue
		}
		ref := scalar(want["externalRef"])
		got := c.s.ExtraPayments[ref]
		var problem string
		switch {
		case len(got) == 0:
			problem = "is not recorded at Accelevents"
		case len(got) > 1:
			problem = fmt.Sprintf("is recorded %d times at Accelevents", len(got))
		case !sameAmount(got[0]["amount"], want["amount"]):
			problem = fmt.Sprintf("is recorded at Accelevents as %s, not %s", scalar(got[0]["amount"]), scalar(want["amount"]))
		default:
			continue
		}
		out = append(out, Finding{Summary: fmt.Sprintf("payment %s of member %s (%s %s, ref %s) %s", str(p, "id"), str(p, "userId"), scalar(p["amount"]), str(p, "currency"), ref, problem),
			Records: []string{rec.Subject}, Member: str(p, "userId"), Since: since(p), Fix: c.fix(rec.Subject, p)})
	}
	return out
}

func checkPaymentsToMemberships(c *checkCtx) []Finding {
	var out []Finding
	for _, rec := range c.s.Orders {
		o := rec.Data
		if !c.when(o) {
			continue
		}
		m := c.ix.membersByEmail[strings.ToLower(str(o, "purchaser", "email"))]
		steps := c.readSteps("memberships.upsert_payment", map[string]any{
			"memberships.find_user_by_email":      map[string]any{"found": m != nil, "user": m},
			"accelevents.get_order":               o,
			"accelevents.list_order_payments":     map[string]any{"data": []any{}},
			"accelevents.get_order_with_payments": map[string]any{"order": o, "payments": map[string]any{"data": []any{}}},
		})
		if !c.stepWhen("memberships.upsert_payment", o, steps) {
			continue
		}
		want := c.stepWith("memberships.upsert_payment", o, steps)
		ref := scalar(want["externalRef"])
		if ref == "" {
			continue
		}
		got := c.ix.paymentsByRef[ref]
		var problem string
		switch {
		case len(got) == 0:
			problem = "has no Memberships payment"
		case len(got) > 1:
			problem = fmt.Sprintf("has %d Memberships payments", len(got))
		default:
			// Amounts are not compared: the order's paid amount grows by
			// the payments mirrored to it from Memberships.
			continue
		}
		out = append(out, Finding{Summary: fmt.Sprintf("order %s paid by %s (ref %s) %s", scalar(o["orderId"]), str(o, "purchaser", "email"), ref, problem),
			Records: []string{rec.Subject}, Member: str(m, "id"), Since: since(o), Fix: c.fix(rec.Subject, o)})
	}
	return out
}

// str reads a nested string field ("" when absent).
func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[p]
	}
	return scalar(v)
}

// scalar renders a value as text: ids arrive as numbers or strings.
func scalar(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(v)
}

func sameAmount(a, b any) bool {
	x, err1 := strconv.ParseFloat(scalar(a), 64)
	y, err2 := strconv.ParseFloat(scalar(b), 64)
	if err1 != nil || err2 != nil {
		return scalar(a) == scalar(b)
	}
	d := x - y
	return d < 0.005 && d > -0.005
}

// day keeps the date of a date or a timestamp.
func day(s string) string {
	if len(s) >= 10 {
		return s[:10]
	}
	return s
}

func orNever(s string) string {
	if s == "" {
		return "never"
	}
	return s
}

// since is the latest change time among records.
func since(recs ...map[string]any) *time.Time {
	var latest time.Time
	for _, r := range recs {
		for _, k := range []string{"dateUpdated", "updated_at", "updatedAt", "paidAt", "createdAt", "created_at"} {
			if t, err := time.Parse(time.RFC3339Nano, str(r, k)); err == nil {
				if t.After(latest) {
					latest = t
				}
				break
			}
		}
	}
	if latest.IsZero() {
		return nil
	}
	latest = latest.UTC()
	return &latest
}
