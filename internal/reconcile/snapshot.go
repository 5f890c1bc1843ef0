// Package reconcile compares the three systems (Memberships, Accredible,
// Accelevents) record by record and reports every drift with the rule it
// breaks, the records involved and the recipe that would fix it.
//
// The systems are read through the connectors' own polling triggers,
// started at the beginning with no remembered state: each trigger then
// emits every record it covers, page by page, through the connection's
// HTTP client (its token bucket, retries and redaction). A page that fails
// is asked again from the same cursor, so a read resumes where it stopped.
//
// Lifecycle: New (no I/O) → Read (the snapshot) → Check (the findings,
// no I/O) → Fix (enqueue the fixing recipes' runs in an engine.Store).
package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// Record is one record of one system as its trigger reports it.
type Record struct {
	Subject string         `json:"subject"`
	Data    map[string]any `json:"data"`
}

// Snapshot is what the three systems held when they were read.
type Snapshot struct {
	Taken       time.Time `json:"taken"`
	Members     []Record  `json:"members"`     // memberships users (user_changed)
	Payments    []Record  `json:"payments"`    // memberships payments (payment_created)
	Credentials []Record  `json:"credentials"` // accredible credentials of the group (credential_created)
	Attendees   []Record  `json:"attendees"`   // accelevents attendees, any ticket status (list_attendees)
	Orders      []Record  `json:"orders"`      // paid accelevents orders (order_paid)
	// Calls counts the polls made, one API request or more each.
	Calls int `json:"calls"`
	// ExtraPayments are the Accelevents payments found by reference,
	// keyed by external reference.
	ExtraPayments map[string][]map[string]any `json:"-"`
}

// Options configures a Reconciler.
type Options struct {
	Recipes []*recipes.Recipe
	// Connections are each recipe's resolved connections, by recipe name,
	// exactly as the engine receives them.
	Connections map[string]map[string]engine.Connection
	Logger      hclog.Logger
	Now         func() time.Time
}

// Reconciler reads the systems the recipes connect and checks the rules.
type Reconciler struct {
	recipes []*recipes.Recipe
	conns   map[string]opened // by connector name
	log     hclog.Logger
	now     func() time.Time
	rules   []*boundRule
}

// opened is one connection per connector, the first a recipe names.
type opened struct {
	spec *connectors.Spec
	conn connectors.Conn
	name string // the recipe's connection name, for messages
}

// New binds the rules to the recipes and opens one connection per
// connector (no network I/O: connectors connect lazily).
func New(o Options) (*Reconciler, error) {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Reconciler{recipes: o.Recipes, conns: map[string]opened{}, log: o.Logger.Named("reconcile"), now: o.Now}
	sorted := append([]*recipes.Recipe(nil), o.Recipes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, rc := range sorted {
		names := make([]string, 0, len(o.Connections[rc.Name]))
		for n := range o.Connections[rc.Name] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			c := o.Connections[rc.Name][n]
			if _, done := r.conns[c.Spec.Name]; done || c.Spec.Open == nil {
				continue
			}
			conn, err := c.Spec.Open(c.Config)
			if err != nil {
				return nil, fmt.Errorf("reconcile: opening connection %q of %s: %w", n, rc.Name, err)
			}
			r.conns[c.Spec.Name] = opened{spec: c.Spec, conn: conn, name: n}
		}
	}
	r.rules = bindRules(sorted)
	return r, nil
}

// Close closes the opened connections that need it.
func (r *Reconciler) Close() error {
	for _, o := range r.conns {
		if c, ok := o.conn.(interface{ Close() error }); ok {
			c.Close()
		}
	}
	return nil
}

// Read takes a snapshot of every system a recipe connects.
func (r *Reconciler) Read(ctx context.Context) (*Snapshot, error) {
	s := &Snapshot{Taken: r.now().UTC(), ExtraPayments: map[string][]map[string]any{}}
	group := r.credentialGroup()
	reads := []struct {
		connector, trigger string
		params             map[string]any
		into               *[]Record
	}{
		{"memberships", "user_changed", nil, &s.Members},
		{"memberships", "payment_created", nil, &s.Payments},
		{"accredible", "credential_created", group, &s.Credentials},
		{"accelevents", "order_paid", nil, &s.Orders},
	}
	for _, rd := range reads {
		o, ok := r.conns[rd.connector]
		if !ok {
			continue // no recipe connects this system: nothing to compare
		}
		recs, calls, err := r.readAll(ctx, o, rd.trigger, rd.params)
		s.Calls += calls
		if err != nil {
			return nil, fmt.Errorf("reconcile: reading %s.%s through connection %q: %w", rd.connector, rd.trigger, o.name, err)
		}
		*rd.into = recs
		r.log.Debug("read", "connector", rd.connector, "trigger", rd.trigger, "records", len(recs), "polls", calls)
	}
	if err := r.readAttendees(ctx, s); err != nil {
		return nil, err
	}
	if err := r.readPaymentRefs(ctx, s); err != nil {
		return nil, err
	}
	return s, nil
}

// readAll polls a trigger from the beginning until it has nothing more.
func (r *Reconciler) readAll(ctx context.Context, o opened, trigger string, params map[string]any) ([]Record, int, error) {
	t := o.spec.Trigger(trigger)
	if t == nil || t.Poll == nil {
		return nil, 0, fmt.Errorf("connector %s has no polling trigger %q", o.spec.Name, trigger)
	}
	if params == nil {
		params = map[string]any{}
	}
	var out []Record
	seen := map[string]int{}
	cursor, calls := "", 0
	for {
		var res *connectors.PollResult
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			calls++
			res, err = t.Poll(ctx, o.conn, connectors.PollRequest{Params: params, Cursor: cursor, Start: connectors.StartBeginning, Now: r.now()})
			if err == nil || ctx.Err() != nil {
				break
			}
			r.log.Warn("a page failed; asking again from the same cursor", "trigger", o.spec.Name+"."+trigger, "error", err)
		}
		if err != nil {
			return nil, calls, err
		}
		for _, ev := range res.Events {
			// The latest state of a record wins when a read sees it twice.
			if i, ok := seen[ev.Subject]; ok {
				out[i].Data = ev.Data
				continue
			}
			seen[ev.Subject] = len(out)
			out = append(out, Record{Subject: ev.Subject, Data: ev.Data})
		}
		if !res.More || res.Cursor == cursor {
			return out, calls, nil
		}
		cursor = res.Cursor
	}
}

// readAttendees lists the event's attendees page by page, every ticket
// status included: no trigger reports refunded or cancelled tickets, and
// such a ticket still names the person (upsert_attendee updates it rather
// than register the person again).
func (r *Reconciler) readAttendees(ctx context.Context, s *Snapshot) error {
	o, ok := r.conns["accelevents"]
	if !ok {
		return nil
	}
	a := o.spec.Action("list_attendees")
	if a == nil {
		return fmt.Errorf("reconcile: connector accelevents has no list_attendees action")
	}
	const size = 200
	for page := 0; ; page++ {
		var res *connectors.Result
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			s.Calls++
			if res, err = a.Run(ctx, o.conn, map[string]any{"page": page, "size": size}); err == nil || ctx.Err() != nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("reconcile: accelevents.list_attendees page %d: %w", page, err)
		}
		out, _ := asMap(res.Output)
		list, _ := out["data"].([]any)
		for _, it := range list {
			at, ok := it.(map[string]any)
			if !ok {
				continue
			}
			s.Attendees = append(s.Attendees, Record{Subject: "attendee/" + scalar(at["attendeeId"]), Data: at})
		}
		if len(list) < size {
			return nil
		}
	}
}

// credentialGroup is the Accredible group the recipes work with: the
// `with` of a recipe's credential trigger, or the group_id of a step that
// issues credentials, evaluated with the recipe's vars.
func (r *Reconciler) credentialGroup() map[string]any {
	for _, rc := range r.recipes {
		if connectorOf(rc, rc.Trigger.Connection) == "accredible" && rc.Trigger.With != nil {
			if m, err := rc.Trigger.With.EvalMap(recipes.Env{"vars": rc.Vars}); err == nil && m["group_id"] != nil {
				return map[string]any{"group_id": m["group_id"]}
			}
		}
	}
	for _, rc := range r.recipes {
		for _, st := range rc.Steps {
			if connectorOf(rc, st.Connection) != "accredible" || st.With == nil {
				continue
			}
			for _, e := range st.With.Expressions() {
				if strings.Contains(e.Source, "vars.groupId") {
					if v, err := e.Eval(recipes.Env{"vars": rc.Vars}); err == nil {
						return map[string]any{"group_id": v}
					}
				}
			}
		}
	}
	return nil
}

// readPaymentRefs looks up, in Accelevents, the payments that the
// Memberships-to-Accelevents recipe records, by their reference. Only
// the payments a rule checks are looked up, one request each.
func (r *Reconciler) readPaymentRefs(ctx context.Context, s *Snapshot) error {
	o, ok := r.conns["accelevents"]
	if !ok {
		return nil
	}
	a := o.spec.Action("search_payments")
	if a == nil {
		return nil
	}
	ix := newIndex(s)
	for _, br := range r.rules {
		if br.rule.refs == nil || br.fixer == nil {
			continue
		}
		for _, ref := range br.rule.refs(br.ctx(s, ix)) {
			if _, done := s.ExtraPayments[ref]; done {
				continue
			}
			res, err := a.Run(ctx, o.conn, map[string]any{"externalRef": ref})
			s.Calls++
			if err != nil {
				return fmt.Errorf("reconcile: accelevents.search_payments %q: %w", ref, err)
			}
			var found []map[string]any
			if m, ok := asMap(res.Output); ok {
				if list, ok := m["data"].([]any); ok {
					for _, it := range list {
						if p, ok := it.(map[string]any); ok {
							found = append(found, p)
						}
					}
				}
			}
			s.ExtraPayments[ref] = found
		}
	}
	return nil
}

func connectorOf(rc *recipes.Recipe, connection string) string {
	if c := rc.Connections[connection]; c != nil {
		return c.Connector
	}
	return ""
}

// asMap turns an action's output into plain JSON values.
func asMap(v any) (map[string]any, bool) {
	if m, ok := v.(map[string]any); ok {
		return m, true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m) == nil && m != nil
}
