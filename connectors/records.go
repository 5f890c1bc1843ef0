package connectors

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Record kinds: the domain records that tools comparing systems
// (`memberflow reconcile`, the console's compliance page) work with. A
// connector says which of them it holds ([Spec.Records]) and what its
// operations do with them ([Operation.Role]), so those tools bind to
// whatever connectors declare the kinds, never to a named service.
const (
	KindMember       = "member"        // a person's membership
	KindPayment      = "payment"       // a payment of a member's dues
	KindCredential   = "credential"    // a certificate issued to a member
	KindAttendee     = "attendee"      // a person's ticket at an event
	KindOrder        = "order"         // a paid ticket order
	KindOrderPayment = "order_payment" // a payment recorded on an order
)

// Domain field names a RecordSpec maps to the record's own fields. A
// kind uses those that apply.
const (
	FieldID           = "id"           // the record's id
	FieldMember       = "member"       // the id of the member it belongs to
	FieldEmail        = "email"        // a person's email
	FieldGivenName    = "givenName"    // a person's first name
	FieldFamilyName   = "familyName"   // a person's last name
	FieldStatus       = "status"       // the status its States name
	FieldEligibleFrom = "eligibleFrom" // when a member becomes eligible for a credential
	FieldPlan         = "plan"         // a member's plan
	FieldExpires      = "expires"      // when a credential expires (empty: never)
	FieldGroup        = "group"        // a credential's group (template)
	FieldRef          = "ref"          // a payment's external reference
	FieldAmount       = "amount"       // a payment's amount
	FieldCurrency     = "currency"     // a payment's or an order's currency (ISO 4217)
	FieldOrder        = "order"        // the id of the order a payment is recorded on
	FieldCheckedIn    = "checkedIn"    // an attendee checked in (boolean)
	FieldChanged      = "changed"      // when the record last changed (RFC 3339)
)

// States of a record's status field, by meaning.
const (
	StateEligible = "eligible" // a member who should hold a credential
	StateEnded    = "ended"    // a member whose membership lapsed or was cancelled
	StateLive     = "live"     // an attendee whose ticket is booked
)

// RecordSpec declares one kind of record a connector holds: how to read
// every record of it, and which of its fields carry the domain fields.
// Exactly one of Trigger, Listing and Lookup says how it is read.
type RecordSpec struct {
	// Kind is one of the Kind constants.
	Kind string
	// Trigger is a polling trigger that, started at the beginning with
	// no remembered state, reports every record.
	Trigger string
	// Scope names an input of Trigger that narrows the read to the
	// records the recipes work with (a credential group): its value is
	// taken from a recipe trigger or step of this connector that sets it.
	Scope string
	// Listing reads every record page by page with an action, for
	// records no trigger reports in full.
	Listing *Listing
	// Lookup finds records by one field's value with an action, for
	// records too many to list: only those a check needs are read.
	Lookup *Lookup
	// Fields maps domain field names (the Field constants) to the
	// record's field, dotted for nested ones ("recipient.id"); "a|b"
	// takes the first of a and b that is set.
	Fields map[string]string
	// States maps a state (the State constants) to the values of the
	// status field that mean it.
	States map[string][]string
	// Statuses are every value of the status field, in the order a
	// person reads them (a lifecycle), for filters and counts.
	Statuses []string
}

// Listing is a paged listing action.
type Listing struct {
	Action     string
	Page, Size string // the action's page number (from 0) and page size inputs
	PageSize   int
	Items      string // the output field holding the page's records
	// Subject prefixes the record's id to name it ("attendee/").
	Subject string
}

// Lookup is an action that finds records by one input.
type Lookup struct {
	Action string
	Input  string // the input the value goes to
	Items  string // the output field holding the records found
}

// Role says what an operation does with a record kind, for tools that
// compare systems. Kind is a Kind constant; Verb one of:
//
//	triggers: changed (added or changed), created, status_changed, paid
//	actions:  get, find (by email), issue, expire, update, upsert,
//	          record, list_payments
type Role struct {
	Kind, Verb string
	// Event builds the event data the trigger reports about a record;
	// nil when that is the record itself.
	Event func(record map[string]any) map[string]any
	// Answer builds the action's output about a record (nil: none was
	// found), so a check can answer a recipe's read steps from records
	// already read instead of calling the service again.
	Answer func(record map[string]any) any
	// Inputs maps domain field names to the action's inputs that carry
	// them (the member's id, the reference, the email).
	Inputs map[string]string
	// Fetch marks a read-only action whose answer about a record holds
	// more than the record as a snapshot has it (an order with the
	// payments recorded on it): a check that needs that answer runs the
	// action, one call per record, with the record's id in the input
	// Inputs[FieldID], and answers the recipe's step with its output
	// (Answer is not used for it).
	Fetch bool
}

// Name is the role as rules name it: "<kind>.<verb>".
func (r *Role) Name() string {
	if r == nil {
		return ""
	}
	return r.Kind + "." + r.Verb
}

// Field reads a domain field of a record as text ("" when the kind has
// no such field or the record no value).
func (rs *RecordSpec) Field(rec map[string]any, field string) string {
	if rs == nil {
		return ""
	}
	for _, path := range strings.Split(rs.Fields[field], "|") {
		if path == "" {
			continue
		}
		if v := lookupPath(rec, path); v != nil {
			return scalarText(v)
		}
	}
	return ""
}

// Value reads a domain field of a record as it is (nil when unset).
func (rs *RecordSpec) Value(rec map[string]any, field string) any {
	if rs == nil {
		return nil
	}
	for _, path := range strings.Split(rs.Fields[field], "|") {
		if v := lookupPath(rec, path); path != "" && v != nil {
			return v
		}
	}
	return nil
}

// In reports whether the record's status means state.
func (rs *RecordSpec) In(rec map[string]any, state string) bool {
	if rs == nil {
		return false
	}
	st := rs.Field(rec, FieldStatus)
	for _, v := range rs.States[state] {
		if st == v {
			return true
		}
	}
	return false
}

// RecordSpec returns the connector's declaration of a kind, or nil.
func (s *Spec) RecordSpec(kind string) *RecordSpec {
	for _, r := range s.Records {
		if r.Kind == kind {
			return r
		}
	}
	return nil
}

// Role returns the role of the named operation (action or trigger).
func (s *Spec) Role(op string) *Role {
	if a := s.Action(op); a != nil {
		return a.Role
	}
	if t := s.Trigger(op); t != nil {
		return t.Role
	}
	return nil
}

// SetRoles gives each named operation (action or trigger) its role. A
// name that is no operation of the connector is a programming error of
// the connector's own declaration: it panics, at registration time.
func (s *Spec) SetRoles(roles map[string]*Role) {
	for name, r := range roles {
		if a := s.Action(name); a != nil {
			a.Role = r
		} else if t := s.Trigger(name); t != nil {
			t.Role = r
		} else {
			panic(fmt.Sprintf("%s: a role names %s, which is no operation of the connector", s.Name, name))
		}
	}
}

func lookupPath(rec map[string]any, path string) any {
	var v any = rec
	for _, p := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func scalarText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

var kinds = map[string]bool{KindMember: true, KindPayment: true, KindCredential: true, KindAttendee: true, KindOrder: true, KindOrderPayment: true}

// checkRecords holds a spec's record declarations and roles to the
// operations it has, so a typo fails at registration, not in reconcile.
func checkRecords(s *Spec) []error {
	var errs []error
	where := func(f string, a ...any) error {
		return fmt.Errorf("connector %q: %s", s.Name, fmt.Sprintf(f, a...))
	}
	seen := map[string]bool{}
	for _, r := range s.Records {
		if !kinds[r.Kind] {
			errs = append(errs, where("records: unknown kind %q (one of %s)", r.Kind, strings.Join(sortedKeys(kinds), ", ")))
		}
		if seen[r.Kind] {
			errs = append(errs, where("records: kind %q declared twice", r.Kind))
		}
		seen[r.Kind] = true
		n := 0
		if r.Trigger != "" {
			n++
			if t := s.Trigger(r.Trigger); t == nil || t.Poll == nil {
				errs = append(errs, where("records %q: %q is no polling trigger of the connector", r.Kind, r.Trigger))
			}
		}
		if r.Listing != nil {
			n++
			if s.Action(r.Listing.Action) == nil || r.Listing.PageSize < 1 {
				errs = append(errs, where("records %q: listing action %q is not an action of the connector, or has no page size", r.Kind, r.Listing.Action))
			}
		}
		if r.Lookup != nil {
			n++
			if s.Action(r.Lookup.Action) == nil {
				errs = append(errs, where("records %q: look-up action %q is not an action of the connector", r.Kind, r.Lookup.Action))
			}
		}
		if n != 1 {
			errs = append(errs, where("records %q: exactly one of Trigger, Listing and Lookup says how they are read", r.Kind))
		}
		if r.Fields[FieldID] == "" {
			errs = append(errs, where("records %q: no %q field", r.Kind, FieldID))
		}
	}
	role := func(op string, r *Role) {
		if r != nil && (!kinds[r.Kind] || r.Verb == "") {
			errs = append(errs, where("operation %q: role %q needs a known kind and a verb", op, r.Name()))
		}
	}
	for _, a := range s.Actions {
		role(a.Name, a.Role)
		if a.Role == nil {
			continue
		}
		// What a check reads of a recipe's with goes through Inputs: an
		// input the action lacks would read as never given.
		for _, field := range sortedKeys(inputFields(a.Role.Inputs)) {
			if in := a.Role.Inputs[field]; !hasInput(a.Input, in) && !(a.Role.Fetch && field == FieldID) {
				errs = append(errs, where("action %q: role %q carries %q in the input %q, which is no input of the action", a.Name, a.Role.Name(), field, in))
			}
		}
		if !a.Role.Fetch {
			continue
		}
		if !a.ReadOnly {
			errs = append(errs, where("action %q: role %q fetches, so the action must be read-only", a.Name, a.Role.Name()))
		}
		if in := a.Role.Inputs[FieldID]; in == "" || !hasInput(a.Input, in) {
			errs = append(errs, where("action %q: role %q fetches by the record's id, but the input %q its Inputs give %q is no input of the action", a.Name, a.Role.Name(), in, FieldID))
		}
	}
	for _, t := range s.Triggers {
		role(t.Name, t.Role)
		if t.Role != nil && t.Role.Fetch {
			errs = append(errs, where("trigger %q: role %q fetches, which only an action can", t.Name, t.Role.Name()))
		}
	}
	return errs
}

// hasInput reports whether an input JSON Schema has a property.
func hasInput(schema json.RawMessage, name string) bool {
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if name == "" || json.Unmarshal(schema, &s) != nil {
		return false
	}
	_, ok := s.Properties[name]
	return ok
}

func inputFields(m map[string]string) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
