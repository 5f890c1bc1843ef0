package reconcile

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/connectors"
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
	// Amounts are the two sides of an amount drift (the rules
	// payment-amount-differs-on-order and order-amount-differs-in-payments).
	Amounts *AmountDrift `json:"amounts,omitempty"`
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
// only when a loaded recipe has a trigger of that role and a step of
// that role: the recipe is what says the two systems should agree.
type rule struct {
	id, title string
	// fixTrigger and fixAction are roles ("<kind>.<verb>"): what the
	// operations do, as the connectors declare it.
	fixTrigger, fixAction string
	// fixable is false for rules whose matching recipe reads but cannot
	// repair (registration-without-member): they name no recipe.
	fixable bool
	derived string
	check   func(c *checkCtx) []Finding
	// refs lists the references of the order payments the rule needs.
	refs func(c *checkCtx) []string
	// fetch lists the records the rule checks whose answers to the
	// recipe's fetching read steps (connectors.Role.Fetch) it needs: the
	// snapshot reads them, one call per record and step.
	fetch func(c *checkCtx) []kr
}

// Rules are the integrity rules in report order.
var rules = []*rule{
	{
		id: "eligible-without-credential", title: "an eligible member has no valid credential",
		fixTrigger: "member.status_changed", fixAction: "credential.issue", fixable: true,
		derived: "which members: the recipe's when on the member's status event; eligibility date reached and an email (the issuing step's when)",
		check:   checkEligible,
	},
	{
		id: "lapsed-credential-not-expired", title: "a lapsed or cancelled member's credential is not expired",
		fixTrigger: "member.status_changed", fixAction: "credential.expire", fixable: true,
		derived: "the fixing recipe and whether it runs (its when on the member's status event)",
		check:   checkLapsed,
	},
	{
		id: "certificate-mismatch", title: "the certificate fields the recipe writes on the member disagree with the member's credential",
		fixTrigger: "credential.changed", fixAction: "member.update", fixable: true,
		derived: "the expected member fields: the with of the recipe's member update step, evaluated on the credential",
		check:   checkCertificateFields,
	},
	{
		id: "member-without-attendee", title: "a member the sync recipe covers has no attendee",
		fixTrigger: "member.changed", fixAction: "attendee.upsert", fixable: true,
		derived: "which members: the recipe's when; the attendee's key: the member id in the attendee upsert step's with",
		check:   checkAttendees(false),
	},
	{
		id: "attendee-differs", title: "an attendee's email or name differs from the member's",
		fixTrigger: "member.changed", fixAction: "attendee.upsert", fixable: true,
		derived: "the expected email and names: the attendee upsert step's with, evaluated on the member",
		check:   checkAttendees(true),
	},
	{
		id: "duplicate-attendees", title: "one member has more than one booked attendee",
		fixTrigger: "member.changed", fixAction: "attendee.upsert",
		derived: "checked when a recipe syncs members to attendees; the key is the member id of its with; no recipe removes a duplicate",
		check:   checkDuplicateAttendees,
	},
	{
		id: "registration-without-member", title: "a registration's email or member id matches no member",
		fixTrigger: "attendee.created", fixAction: "member.find",
		derived: "which registrations: the recipe's when; no recipe creates members from registrations",
		check:   checkRegistrations,
	},
	{
		id: "payment-missing-on-order", title: "a member's payment is missing on, or doubled on, the member's event order",
		fixTrigger: "payment.created", fixAction: "order_payment.record", fixable: true,
		derived: "which payments: the recipe's when and its attendee upsert step's when; the reference: the payment record step's with",
		check:   checkPaymentsToOrders, refs: paymentRefsToOrders,
	},
	{
		id: "payment-amount-differs-on-order", title: "a member's payment is recorded on the member's event order with another amount or currency",
		fixTrigger: "payment.created", fixAction: "order_payment.record",
		derived: "which payments: as payment-missing-on-order; the expected amount and currency: the payment record step's with (the payment's currency when it sets none); no recipe amends a recorded payment: a person decides",
		check:   checkPaymentAmountsOnOrders, refs: paymentRefsToOrders,
	},
	{
		id: "order-missing-in-payments", title: "a member's paid event order is missing from, or doubled in, the member's payments",
		fixTrigger: "order.paid", fixAction: "payment.upsert", fixable: true,
		derived: "which orders: the recipe's when and its payment upsert step's when (the order read step answered by the service: the order and the payments recorded on it, read for each order the recipe's when keeps); the reference: the payment upsert step's with",
		check:   checkOrdersToPayments, fetch: ordersToPayments,
	},
	{
		id: "order-amount-differs-in-payments", title: "a member's paid event order is in the member's payments with another amount or currency",
		fixTrigger: "order.paid", fixAction: "payment.upsert", fixable: true,
		derived: "which orders: as order-missing-in-payments; the expected amount and currency: the payment upsert step's with, on the order and its payments as the service gives them (the order's currency when it sets none)",
		check:   checkOrderAmountsInPayments, fetch: ordersToPayments,
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
	specs map[string]*connectors.Spec
}

// roleOf is the role of a recipe's operation on a connection.
func roleOf(specs map[string]*connectors.Spec, rc *recipes.Recipe, connection, op string) *connectors.Role {
	sp := specs[connectorOf(rc, connection)]
	if sp == nil {
		return nil
	}
	return sp.Role(op)
}

// bindRules finds each rule's recipe: the first, by name, whose trigger
// and one of whose steps have the rule's roles.
func (r *Reconciler) bindRules(sorted []*recipes.Recipe) []*boundRule {
	var out []*boundRule
	for _, ru := range rules {
		br := &boundRule{rule: ru, specs: r.specs}
		for _, rc := range sorted {
			if rc.Trigger == nil || roleOf(r.specs, rc, rc.Trigger.Connection, rc.Trigger.Operation).Name() != ru.fixTrigger {
				continue
			}
			for _, st := range rc.Steps {
				if roleOf(r.specs, rc, st.Connection, st.Operation).Name() == ru.fixAction {
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
	return &checkCtx{s: s, r: br.fixer, specs: br.specs, today: now.Format("2006-01-02"), ix: ix}
}

// Short names for the kinds the rules read.
const (
	member, payment, credential = connectors.KindMember, connectors.KindPayment, connectors.KindCredential
	attendee, order, orderPay   = connectors.KindAttendee, connectors.KindOrder, connectors.KindOrderPayment
)

// index looks records up across the snapshot.
type index struct {
	membersByID, membersByEmail map[string]map[string]any
	credsByMember               map[string][]map[string]any
	attendeesByMember           map[string][]map[string]any
	attendeesByEmail            map[string][]map[string]any
	paymentsByRef               map[string][]map[string]any
	// subjects names records by kind and id, as their reads did.
	subjects map[[2]string]string
}

func newIndex(s *Snapshot) *index {
	ix := &index{membersByID: map[string]map[string]any{}, membersByEmail: map[string]map[string]any{},
		credsByMember: map[string][]map[string]any{}, attendeesByMember: map[string][]map[string]any{},
		attendeesByEmail: map[string][]map[string]any{}, paymentsByRef: map[string][]map[string]any{}, subjects: map[[2]string]string{}}
	f := s.Field
	for _, kind := range readOrder {
		for _, rec := range *s.records(kind) {
			ix.subjects[[2]string{kind, f(kind, rec.Data, connectors.FieldID)}] = rec.Subject
		}
	}
	for _, m := range s.Members {
		ix.membersByID[f(member, m.Data, connectors.FieldID)] = m.Data
		if e := strings.ToLower(f(member, m.Data, connectors.FieldEmail)); e != "" {
			ix.membersByEmail[e] = m.Data
		}
	}
	for _, c := range s.Credentials {
		if id := f(credential, c.Data, connectors.FieldMember); id != "" {
			ix.credsByMember[id] = append(ix.credsByMember[id], c.Data)
		}
	}
	for _, a := range s.Attendees {
		if ext := f(attendee, a.Data, connectors.FieldMember); ext != "" {
			ix.attendeesByMember[ext] = append(ix.attendeesByMember[ext], a.Data)
		}
		if e := strings.ToLower(f(attendee, a.Data, connectors.FieldEmail)); e != "" {
			ix.attendeesByEmail[e] = append(ix.attendeesByEmail[e], a.Data)
		}
	}
	// A live ticket is the member's attendee when there is one.
	live := func(atts []map[string]any) func(i, j int) bool {
		return func(i, j int) bool {
			return s.In(attendee, atts[i], connectors.StateLive) && !s.In(attendee, atts[j], connectors.StateLive)
		}
	}
	for _, atts := range ix.attendeesByEmail {
		sort.SliceStable(atts, live(atts))
	}
	for _, atts := range ix.attendeesByMember {
		sort.SliceStable(atts, live(atts))
	}
	for _, p := range s.Payments {
		if ref := f(payment, p.Data, connectors.FieldRef); ref != "" {
			ix.paymentsByRef[ref] = append(ix.paymentsByRef[ref], p.Data)
		}
	}
	return ix
}

// checkCtx is what a rule's check reads: the snapshot, the recipe that
// fixes its drift, the connectors' roles and today's date.
type checkCtx struct {
	s     *Snapshot
	r     *recipes.Recipe
	specs map[string]*connectors.Spec
	ix    *index
	today string
}

// f reads a domain field of a record of a kind.
func (c *checkCtx) f(kind string, rec map[string]any, field string) string {
	return c.s.Field(kind, rec, field)
}

// subject names a record as its read did.
func (c *checkCtx) subject(kind string, rec map[string]any) string {
	id := c.f(kind, rec, connectors.FieldID)
	if s, ok := c.ix.subjects[[2]string{kind, id}]; ok {
		return s
	}
	return kind + "/" + id
}

// event is the data the recipe's trigger would report about a record.
func (c *checkCtx) event(rec map[string]any) map[string]any {
	if ro := roleOf(c.specs, c.r, c.r.Trigger.Connection, c.r.Trigger.Operation); ro != nil && ro.Event != nil {
		return ro.Event(rec)
	}
	return rec
}

// when evaluates the recipe's condition on an event it would receive.
func (c *checkCtx) when(data map[string]any) bool {
	if c.r.When == nil {
		return true
	}
	ok, err := c.r.When.EvalBool(recipes.Env{"trigger": data, "vars": c.r.Vars})
	return err == nil && ok
}

// role is the role of a step's operation.
func (c *checkCtx) role(st *recipes.Step) *connectors.Role {
	return roleOf(c.specs, c.r, st.Connection, st.Operation)
}

// step returns the recipe's first step with a role ("attendee.upsert").
func (c *checkCtx) step(role string) *recipes.Step {
	for _, st := range c.r.Steps {
		if c.role(st).Name() == role {
			return st
		}
	}
	return nil
}

// input is the value a step's with gives a domain field, by the input
// its role says carries it.
func (c *checkCtx) input(role string, with map[string]any, field string) any {
	st := c.step(role)
	if st == nil {
		return nil
	}
	if ro := c.role(st); ro != nil && ro.Inputs[field] != "" {
		return with[ro.Inputs[field]]
	}
	return nil
}

// answer is what a step would answer about a record, by its role.
func (c *checkCtx) answer(st *recipes.Step, rec map[string]any) any {
	if ro := c.role(st); ro != nil && ro.Answer != nil {
		return ro.Answer(rec)
	}
	return rec
}

// readSteps gives the outputs of the steps before the one of role
// target that can be answered: a step whose role answers about a kind in
// recs (a nil record: none was found) gets that answer, by the step id
// the recipe uses; a step whose role fetches gets the answer the
// snapshot read for that record (none when it read none).
func (c *checkCtx) readSteps(target string, recs map[string]map[string]any) map[string]any {
	steps := map[string]any{}
	for _, st := range c.r.Steps {
		ro := c.role(st)
		if ro.Name() == target {
			break
		}
		if ro == nil {
			continue
		}
		rec, ok := recs[ro.Kind]
		switch {
		case !ok:
		case ro.Fetch:
			// Only what the service answered: the snapshot's record is
			// not the whole answer.
			key := connectorOf(c.r, st.Connection) + "." + st.Operation
			if ans, ok := c.s.Fetched[key][c.f(ro.Kind, rec, connectors.FieldID)]; ok && rec != nil {
				steps[st.ID] = ans
			}
		case ro.Answer != nil:
			steps[st.ID] = ro.Answer(rec)
		}
	}
	return steps
}

// fetching lists the recipe's steps before the one of role target whose
// role fetches its answer (connectors.Role.Fetch).
func (c *checkCtx) fetching(target string) []*recipes.Step {
	var out []*recipes.Step
	for _, st := range c.r.Steps {
		ro := c.role(st)
		if ro.Name() == target {
			break
		}
		if ro != nil && ro.Fetch {
			out = append(out, st)
		}
	}
	return out
}

// stepWhen evaluates a step's condition with the given steps' outputs.
func (c *checkCtx) stepWhen(role string, trigger map[string]any, steps map[string]any) bool {
	st := c.step(role)
	if st == nil || st.When == nil {
		return st != nil
	}
	ok, err := st.When.EvalBool(recipes.Env{"trigger": trigger, "steps": steps, "vars": c.r.Vars})
	return err == nil && ok
}

// stepWith evaluates a step's with: what the recipe would send.
func (c *checkCtx) stepWith(role string, trigger map[string]any, steps map[string]any) map[string]any {
	st := c.step(role)
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
	exp := day(c.f(credential, cred, connectors.FieldExpires))
	return exp == "" || exp > c.today
}

// kr is a record and its kind, for since.
type kr struct {
	kind string
	rec  map[string]any
}

// since is the latest change time among records.
func (c *checkCtx) since(recs ...kr) *time.Time {
	var latest time.Time
	for _, r := range recs {
		if t, err := time.Parse(time.RFC3339Nano, c.f(r.kind, r.rec, connectors.FieldChanged)); err == nil && t.After(latest) {
			latest = t
		}
	}
	if latest.IsZero() {
		return nil
	}
	latest = latest.UTC()
	return &latest
}

func checkEligible(c *checkCtx) []Finding {
	var out []Finding
	for _, rec := range c.s.Members {
		m := rec.Data
		if !c.s.In(member, m, connectors.StateEligible) {
			continue
		}
		ev := c.event(m)
		from := day(c.f(member, m, connectors.FieldEligibleFrom))
		if !c.when(ev) || c.f(member, m, connectors.FieldEmail) == "" || from == "" || from > c.today {
			continue
		}
		id := c.f(member, m, connectors.FieldID)
		hasLive := false
		for _, cr := range c.ix.credsByMember[id] {
			hasLive = hasLive || c.live(cr)
		}
		if hasLive {
			continue
		}
		out = append(out, Finding{Summary: fmt.Sprintf("member %s (%s) is eligible since %s and has no valid credential", id, c.f(member, m, connectors.FieldEmail), from),
			Records: []string{rec.Subject}, Member: id, Since: c.since(kr{member, m}), Fix: c.fix(rec.Subject, ev)})
	}
	return out
}

func checkLapsed(c *checkCtx) []Finding {
	var out []Finding
	for _, rec := range c.s.Members {
		m := rec.Data
		if !c.s.In(member, m, connectors.StateEnded) {
			continue
		}
		id := c.f(member, m, connectors.FieldID)
		for _, cr := range c.ix.credsByMember[id] {
			if !c.live(cr) {
				continue
			}
			out = append(out, Finding{Summary: fmt.Sprintf("member %s is %s but credential %s is valid (expires %s)", id, c.f(member, m, connectors.FieldStatus), c.f(credential, cr, connectors.FieldID), orNever(day(c.f(credential, cr, connectors.FieldExpires)))),
				Records: []string{rec.Subject, c.subject(credential, cr)}, Member: id, Since: c.since(kr{member, m}, kr{credential, cr}), Fix: c.fix(rec.Subject, c.event(m))})
		}
	}
	return out
}

func checkCertificateFields(c *checkCtx) []Finding {
	var out []Finding
	st := c.step("member.update")
	if st == nil {
		return nil
	}
	idInput := ""
	if ro := c.role(st); ro != nil {
		idInput = ro.Inputs[connectors.FieldID]
	}
	for _, rec := range c.s.Members {
		m := rec.Data
		id := c.f(member, m, connectors.FieldID)
		creds := c.ix.credsByMember[id]
		if len(creds) == 0 {
			continue
		}
		// The credential a member should carry is the latest changed.
		cr := creds[0]
		for _, x := range creds[1:] {
			if c.f(credential, x, connectors.FieldChanged) > c.f(credential, cr, connectors.FieldChanged) {
				cr = x
			}
		}
		ev := c.event(cr)
		if !c.when(ev) {
			continue
		}
		want := c.stepWith("member.update", ev, c.readSteps("member.update", map[string]map[string]any{member: m}))
		if want == nil {
			continue
		}
		var diffs []string
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		// The update's inputs are the member's fields of the same name.
		for _, k := range keys {
			if k == idInput {
				continue
			}
			if got, exp := scalar(m[k]), scalar(want[k]); day(got) != day(exp) {
				diffs = append(diffs, fmt.Sprintf("%s is %q, the credential says %q", k, got, exp))
			}
		}
		if len(diffs) == 0 {
			continue
		}
		subj := c.subject(credential, cr)
		out = append(out, Finding{Summary: fmt.Sprintf("member %s: %s", id, strings.Join(diffs, "; ")),
			Records: []string{rec.Subject, subj}, Member: id, Since: c.since(kr{member, m}, kr{credential, cr}), Fix: c.fix(subj, ev)})
	}
	return out
}

// attendeeFields are the fields an attendee keeps from its member.
var attendeeFields = []string{connectors.FieldEmail, connectors.FieldGivenName, connectors.FieldFamilyName}

func checkAttendees(differs bool) func(c *checkCtx) []Finding {
	return func(c *checkCtx) []Finding {
		var out []Finding
		st := c.step("attendee.upsert")
		if st == nil {
			return nil
		}
		ro := c.role(st)
		for _, rec := range c.s.Members {
			m := rec.Data
			ev := c.event(m)
			if !c.when(ev) {
				continue
			}
			id := c.f(member, m, connectors.FieldID)
			want := c.stepWith("attendee.upsert", ev, nil)
			ext := scalar(c.input("attendee.upsert", want, connectors.FieldMember))
			if ext == "" {
				continue
			}
			atts := c.ix.attendeesByMember[ext]
			if len(atts) == 0 {
				if !differs {
					out = append(out, Finding{Summary: fmt.Sprintf("member %s (%s, %s) has no attendee", id, c.f(member, m, connectors.FieldStatus), c.f(member, m, connectors.FieldEmail)),
						Records: []string{rec.Subject}, Member: id, Since: c.since(kr{member, m}), Fix: c.fix(rec.Subject, ev)})
				}
				continue
			}
			if !differs {
				continue
			}
			a := atts[0]
			var diffs []string
			for _, field := range attendeeFields {
				k := ro.Inputs[field]
				exp, ok := want[k]
				if k == "" || !ok {
					continue
				}
				if got := c.f(attendee, a, field); !strings.EqualFold(got, scalar(exp)) {
					diffs = append(diffs, fmt.Sprintf("%s is %q, the member's %q", k, got, scalar(exp)))
				}
			}
			if len(diffs) > 0 {
				out = append(out, Finding{Summary: fmt.Sprintf("attendee %s of member %s: %s", c.f(attendee, a, connectors.FieldID), id, strings.Join(diffs, "; ")),
					Records: []string{rec.Subject, c.subject(attendee, a)}, Member: id, Since: c.since(kr{member, m}, kr{attendee, a}), Fix: c.fix(rec.Subject, ev)})
			}
		}
		return out
	}
}

func checkDuplicateAttendees(c *checkCtx) []Finding {
	var out []Finding
	booked := map[string][]map[string]any{}
	var exts []string
	for ext, atts := range c.ix.attendeesByMember {
		for _, a := range atts {
			if c.s.In(attendee, a, connectors.StateLive) {
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
		sort.Slice(atts, func(i, j int) bool {
			return c.f(attendee, atts[i], connectors.FieldID) < c.f(attendee, atts[j], connectors.FieldID)
		})
		recs := []string{}
		ids := []string{}
		var all []kr
		for _, a := range atts {
			recs = append(recs, c.subject(attendee, a))
			ids = append(ids, c.f(attendee, a, connectors.FieldID))
			all = append(all, kr{attendee, a})
		}
		out = append(out, Finding{Summary: fmt.Sprintf("member %s has %d booked attendees: %s", ext, len(atts), strings.Join(ids, ", ")),
			Records: recs, Member: ext, Since: c.since(all...)})
	}
	return out
}

func checkRegistrations(c *checkCtx) []Finding {
	var out []Finding
	for _, rec := range c.s.Attendees {
		a := rec.Data
		if !c.when(c.event(a)) {
			continue
		}
		if _, ok := c.ix.membersByEmail[strings.ToLower(c.f(attendee, a, connectors.FieldEmail))]; ok {
			continue
		}
		if ext := c.f(attendee, a, connectors.FieldMember); ext != "" {
			if _, ok := c.ix.membersByID[ext]; ok {
				continue
			}
		}
		out = append(out, Finding{Summary: fmt.Sprintf("attendee %s (%s) is no member", c.f(attendee, a, connectors.FieldID), c.f(attendee, a, connectors.FieldEmail)),
			Records: []string{rec.Subject}, Since: c.since(kr{attendee, a})})
	}
	return out
}

// toOrder is what the recipe mirroring members' payments onto their
// event orders would record for one payment: nil when it would not.
func (c *checkCtx) toOrder(p map[string]any) map[string]any {
	ev := c.event(p)
	if !c.when(ev) {
		return nil
	}
	m := c.ix.membersByID[c.f(payment, p, connectors.FieldMember)]
	if m == nil {
		return nil
	}
	steps := c.readSteps("order_payment.record", map[string]map[string]any{member: m})
	// A look-up of the member's registration by email (for a pending
	// member), when the recipe makes one: the live ticket wins.
	var byEmail map[string]any
	if atts := c.ix.attendeesByEmail[strings.ToLower(c.f(member, m, connectors.FieldEmail))]; len(atts) > 0 {
		byEmail = atts[0]
	}
	if st := c.step("attendee.find"); st != nil && c.stepWhen("attendee.find", ev, steps) {
		steps[st.ID] = c.answer(st, byEmail)
	}
	if !c.stepWhen("attendee.upsert", ev, steps) {
		return nil
	}
	// The attendee the upsert finds: by member id, then by email.
	att := byEmail
	if atts := c.ix.attendeesByMember[c.f(member, m, connectors.FieldID)]; len(atts) > 0 {
		att = atts[0]
	}
	// The attendee the upsert step would answer with.
	if st := c.step("attendee.upsert"); st != nil {
		steps[st.ID] = c.answer(st, att)
	}
	return c.stepWith("order_payment.record", ev, steps)
}

// paymentOnOrder is a member's payment the recipe mirroring payments onto
// orders covers: what it would record, and what the order holds under
// the reference.
type paymentOnOrder struct {
	rec  Record
	want map[string]any // the record step's with
	ref  string
	got  []map[string]any // the payments recorded under ref
}

// paymentsOnOrders lists the payments the recipe would record on orders,
// with what is recorded under their references (ExtraPayments: read for
// paymentRefsToOrders, one look-up per reference).
func (c *checkCtx) paymentsOnOrders() []paymentOnOrder {
	var out []paymentOnOrder
	for _, rec := range c.s.Payments {
		want := c.toOrder(rec.Data)
		if want == nil {
			continue
		}
		ref := scalar(c.input("order_payment.record", want, connectors.FieldRef))
		out = append(out, paymentOnOrder{rec: rec, want: want, ref: ref, got: c.s.ExtraPayments[ref]})
	}
	return out
}

func paymentRefsToOrders(c *checkCtx) []string {
	var refs []string
	for _, p := range c.paymentsOnOrders() {
		if p.ref != "" {
			refs = append(refs, p.ref)
		}
	}
	return refs
}

// payMoney is a member payment's own amount.
func (c *checkCtx) payMoney(p map[string]any) money {
	return moneyOf(c.s.Kinds[payment].Value(p, connectors.FieldAmount), c.f(payment, p, connectors.FieldCurrency))
}

func checkPaymentsToOrders(c *checkCtx) []Finding {
	var out []Finding
	for _, po := range c.paymentsOnOrders() {
		var problem string
		switch len(po.got) {
		case 0:
			problem = "is not recorded on the order"
		case 1:
			continue // recorded once: payment-amount-differs-on-order compares the amounts
		default:
			problem = fmt.Sprintf("is recorded %d times on the order", len(po.got))
		}
		p := po.rec.Data
		own := c.payMoney(p)
		mid := c.f(payment, p, connectors.FieldMember)
		out = append(out, Finding{Summary: fmt.Sprintf("payment %s of member %s (%s, ref %s) %s", c.f(payment, p, connectors.FieldID), mid,
			own.side(own, "").String(), po.ref, problem),
			Records: []string{po.rec.Subject}, Member: mid, Since: c.since(kr{payment, p}), Fix: c.fix(po.rec.Subject, c.event(p))})
	}
	return out
}

func checkPaymentAmountsOnOrders(c *checkCtx) []Finding {
	var out []Finding
	for _, po := range c.paymentsOnOrders() {
		if len(po.got) != 1 {
			continue // missing or doubled: payment-missing-on-order
		}
		amount := c.input("order_payment.record", po.want, connectors.FieldAmount)
		if amount == nil {
			continue // the recipe records no amount: nothing to compare
		}
		p, op := po.rec.Data, po.got[0]
		cur := scalar(c.input("order_payment.record", po.want, connectors.FieldCurrency))
		if cur == "" {
			cur = c.f(payment, p, connectors.FieldCurrency)
		}
		want := moneyOf(amount, cur)
		got := moneyOf(c.s.Kinds[orderPay].Value(op, connectors.FieldAmount), c.f(orderPay, op, connectors.FieldCurrency))
		if sameMoney(want, got) {
			continue
		}
		opSubject := c.subject(orderPay, op)
		d := &AmountDrift{Expected: want.side(got, po.rec.Subject), Found: got.side(want, opSubject)}
		mid := c.f(payment, p, connectors.FieldMember)
		out = append(out, Finding{Summary: fmt.Sprintf("payment %s of member %s (ref %s) is %s; recorded on order %s as %s",
			c.f(payment, p, connectors.FieldID), mid, po.ref, d.Expected, orNone(c.f(orderPay, op, connectors.FieldOrder)), d.Found),
			Records: []string{po.rec.Subject, opSubject}, Member: mid, Since: c.since(kr{payment, p}, kr{orderPay, op}),
			Fix: c.fix(po.rec.Subject, c.event(p)), Amounts: d})
	}
	return out
}

// ordersToPayments lists the orders checkOrdersToPayments checks: those
// the recipe's when keeps, whose read steps it answers with the order
// and the payments recorded on it as the service gives them.
func ordersToPayments(c *checkCtx) []kr {
	var out []kr
	for _, rec := range c.s.Orders {
		if c.when(c.event(rec.Data)) {
			out = append(out, kr{order, rec.Data})
		}
	}
	return out
}

// orderInPayments is a paid order the recipe mirroring orders into the
// members' payments covers: the member, the payment the recipe would
// upsert, and the member payments under its reference.
type orderInPayments struct {
	rec    Record
	ev     map[string]any
	member map[string]any
	want   map[string]any // the upsert step's with
	ref    string
	got    []map[string]any
}

// ordersInPayments lists the orders the recipe would mirror (its when and
// its upsert step's when, on the order and its payments as fetched).
func (c *checkCtx) ordersInPayments() []orderInPayments {
	var out []orderInPayments
	for _, rec := range c.s.Orders {
		o := rec.Data
		ev := c.event(o)
		if !c.when(ev) {
			continue
		}
		m := c.ix.membersByEmail[strings.ToLower(c.f(order, o, connectors.FieldEmail))]
		steps := c.readSteps("payment.upsert", map[string]map[string]any{member: m, order: o})
		if !c.stepWhen("payment.upsert", ev, steps) {
			continue
		}
		want := c.stepWith("payment.upsert", ev, steps)
		ref := scalar(c.input("payment.upsert", want, connectors.FieldRef))
		if ref == "" {
			continue
		}
		out = append(out, orderInPayments{rec: rec, ev: ev, member: m, want: want, ref: ref, got: c.ix.paymentsByRef[ref]})
	}
	return out
}

func checkOrdersToPayments(c *checkCtx) []Finding {
	var out []Finding
	for _, oi := range c.ordersInPayments() {
		var problem string
		switch len(oi.got) {
		case 0:
			problem = "has no member payment"
		case 1:
			continue // mirrored once: order-amount-differs-in-payments compares the amounts
		default:
			problem = fmt.Sprintf("has %d member payments", len(oi.got))
		}
		o := oi.rec.Data
		out = append(out, Finding{Summary: fmt.Sprintf("order %s paid by %s (ref %s) %s", c.f(order, o, connectors.FieldID), c.f(order, o, connectors.FieldEmail), oi.ref, problem),
			Records: []string{oi.rec.Subject}, Member: c.f(member, oi.member, connectors.FieldID), Since: c.since(kr{order, o}), Fix: c.fix(oi.rec.Subject, oi.ev)})
	}
	return out
}

func checkOrderAmountsInPayments(c *checkCtx) []Finding {
	var out []Finding
	for _, oi := range c.ordersInPayments() {
		if len(oi.got) != 1 {
			continue // missing or doubled: order-missing-in-payments
		}
		amount := c.input("payment.upsert", oi.want, connectors.FieldAmount)
		if amount == nil {
			continue // the recipe writes no amount: nothing to compare
		}
		o, p := oi.rec.Data, oi.got[0]
		cur := scalar(c.input("payment.upsert", oi.want, connectors.FieldCurrency))
		if cur == "" {
			cur = c.f(order, o, connectors.FieldCurrency)
		}
		want, got := moneyOf(amount, cur), c.payMoney(p)
		if sameMoney(want, got) {
			continue
		}
		pSubject := c.subject(payment, p)
		d := &AmountDrift{Expected: want.side(got, oi.rec.Subject), Found: got.side(want, pSubject)}
		out = append(out, Finding{Summary: fmt.Sprintf("order %s paid by %s (ref %s) comes to %s; member payment %s is %s",
			c.f(order, o, connectors.FieldID), c.f(order, o, connectors.FieldEmail), oi.ref, d.Expected, c.f(payment, p, connectors.FieldID), d.Found),
			Records: []string{oi.rec.Subject, pSubject}, Member: c.f(member, oi.member, connectors.FieldID), Since: c.since(kr{order, o}, kr{payment, p}),
			Fix: c.fix(oi.rec.Subject, oi.ev), Amounts: d})
	}
	return out
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

// day keeps the date of a date or a timestamp.
func day(s string) string {
	if len(s) >= 10 {
		return s[:10]
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func orNever(s string) string {
	if s == "" {
		return "never"
	}
	return s
}
