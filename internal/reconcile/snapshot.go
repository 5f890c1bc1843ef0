// Package reconcile compares the systems the recipes connect, record by
// record, and reports every drift with the rule it breaks, the records
// involved and the recipe that would fix it.
//
// The rules speak of domain records (members, payments, credentials,
// attendees, orders) and of what an operation does with them
// ("credential.issue"), never of a service: each connector declares, in
// its own package, the records it holds ([connectors.Spec.Records]) and
// its operations' roles ([connectors.Operation.Role]), and the rules bind
// to whatever connected connectors declare them.
//
// The records are read through the connectors' own polling triggers,
// started at the beginning with no remembered state: each trigger then
// emits every record it covers, page by page, through the connection's
// HTTP client (its token bucket, retries and redaction). A page that fails
// is asked again from the same cursor, so a read resumes where it stopped.
// What a rule needs beyond those records is read one record at a time:
// order payments by reference with the declared look-up action, and the
// answer of a recipe's read step whose role fetches (an order with the
// payments recorded on it) by the record's id, for the records the rule
// checks only.
//
// Lifecycle: New (no I/O) → Read (the snapshot) → Check (the findings,
// no I/O) → Fix (enqueue the fixing recipes' runs in an engine.Store).
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
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

// Snapshot is what the systems held when they were read. Records are as
// their connectors report them; Kinds says how to read their fields.
type Snapshot struct {
	Taken       time.Time `json:"taken"`
	Members     []Record  `json:"members"`     // every member
	Payments    []Record  `json:"payments"`    // members' payments
	Credentials []Record  `json:"credentials"` // the credentials of the recipes' group
	Attendees   []Record  `json:"attendees"`   // attendees, any ticket status
	Orders      []Record  `json:"orders"`      // paid orders
	// Calls counts the polls made, one API request or more each.
	Calls int `json:"calls"`
	// ExtraPayments are the payments recorded on orders, found by
	// reference (those a rule checks), keyed by reference.
	ExtraPayments map[string][]map[string]any `json:"-"`
	// Fetched are the answers of the read actions run for the records a
	// rule checks, whose answer the snapshot's records cannot give (an
	// order with the payments recorded on it: connectors.Role.Fetch), by
	// "connector.action" and then by the record's id.
	Fetched map[string]map[string]any `json:"-"`
	// Kinds are the declarations of the record kinds read, by kind: how
	// to read a domain field of a record (see [Snapshot.Field]).
	Kinds map[string]*connectors.RecordSpec `json:"-"`
}

// Field reads a domain field (a connectors.Field constant) of a record
// of the given kind, through its connector's declaration.
func (s *Snapshot) Field(kind string, rec map[string]any, field string) string {
	return s.Kinds[kind].Field(rec, field)
}

// In reports whether a record's status means the state (a
// connectors.State constant).
func (s *Snapshot) In(kind string, rec map[string]any, state string) bool {
	return s.Kinds[kind].In(rec, state)
}

// records is where the snapshot keeps a kind's records.
func (s *Snapshot) records(kind string) *[]Record {
	switch kind {
	case connectors.KindMember:
		return &s.Members
	case connectors.KindPayment:
		return &s.Payments
	case connectors.KindCredential:
		return &s.Credentials
	case connectors.KindAttendee:
		return &s.Attendees
	case connectors.KindOrder:
		return &s.Orders
	}
	return nil
}

// readOrder is the order kinds are read in.
var readOrder = []string{connectors.KindMember, connectors.KindPayment, connectors.KindCredential, connectors.KindOrder, connectors.KindAttendee}

// Declared collects the record declarations of connectors, by kind; the
// first connector, by name, that declares a kind holds it.
func Declared(specs ...*connectors.Spec) map[string]*connectors.RecordSpec {
	sorted := append([]*connectors.Spec(nil), specs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	out := map[string]*connectors.RecordSpec{}
	for _, sp := range sorted {
		for _, rs := range sp.Records {
			if _, taken := out[rs.Kind]; !taken {
				out[rs.Kind] = rs
			}
		}
	}
	return out
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
	specs   map[string]*connectors.Spec // by connector name
	conns   map[string]opened           // by connector name
	sources map[string]source           // by record kind
	log     hclog.Logger
	now     func() time.Time
	rules   []*boundRule
	// backoff is the wait before a read's second attempt, doubled at
	// each further one.
	backoff time.Duration
}

// readAttempts bounds how often one read (a page, a look-up) is asked.
const readAttempts = 4

// read calls one read until it answers, the service refuses it for good
// (a 4xx other than 429: asking again will not change its mind), or
// readAttempts are spent; it adds each attempt to *calls. A reconcile
// reads hundreds of pages and look-ups: one 500 or dropped connection
// must not fail the whole report.
func (r *Reconciler) read(ctx context.Context, what string, calls *int, fn func() error) error {
	wait := r.backoff
	for attempt := 1; ; attempt++ {
		*calls++
		err := fn()
		var refused *connectors.APIError
		if err == nil || ctx.Err() != nil || attempt == readAttempts || errors.As(err, &refused) && !refused.Retryable {
			return err
		}
		r.log.Warn("a read failed; asking again", "read", what, "attempt", attempt, "of", readAttempts, "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// opened is one connection per connector, the first a recipe names.
type opened struct {
	spec *connectors.Spec
	conn connectors.Conn
	name string // the recipe's connection name, for messages
}

// source is where a record kind is read: the connector that declares it.
type source struct {
	opened
	rs *connectors.RecordSpec
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
	r := &Reconciler{recipes: o.Recipes, specs: map[string]*connectors.Spec{}, conns: map[string]opened{}, sources: map[string]source{},
		log: o.Logger.Named("reconcile"), now: o.Now, backoff: 250 * time.Millisecond}
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
			r.specs[c.Spec.Name] = c.Spec
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
	specs := make([]*connectors.Spec, 0, len(r.conns))
	for _, o := range r.conns {
		specs = append(specs, o.spec)
	}
	for kind, rs := range Declared(specs...) {
		for _, o := range r.conns {
			if o.spec.RecordSpec(kind) == rs {
				r.sources[kind] = source{opened: o, rs: rs}
			}
		}
	}
	r.rules = r.bindRules(sorted)
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

// Read takes a snapshot of every record kind a connected connector
// declares.
func (r *Reconciler) Read(ctx context.Context) (*Snapshot, error) {
	s := &Snapshot{Taken: r.now().UTC(), ExtraPayments: map[string][]map[string]any{}, Fetched: map[string]map[string]any{},
		Kinds: map[string]*connectors.RecordSpec{}}
	for kind, src := range r.sources {
		s.Kinds[kind] = src.rs
	}
	for _, kind := range readOrder {
		src, ok := r.sources[kind]
		if !ok {
			continue // no recipe connects a system holding these: nothing to compare
		}
		var recs []Record
		var calls int
		var err error
		var via string
		switch {
		case src.rs.Trigger != "":
			via = src.rs.Trigger
			recs, calls, err = r.readAll(ctx, src.opened, src.rs.Trigger, r.scope(src))
		case src.rs.Listing != nil:
			via = src.rs.Listing.Action
			recs, calls, err = r.readListing(ctx, src)
		default:
			continue // read by look-up, for what a rule needs
		}
		s.Calls += calls
		if err != nil {
			return nil, fmt.Errorf("reconcile: reading the %ss (%s.%s) through connection %q: %w", kind, src.spec.Name, via, src.name, err)
		}
		*s.records(kind) = recs
		r.log.Debug("read", "kind", kind, "connector", src.spec.Name, "via", via, "records", len(recs), "polls", calls)
	}
	if err := r.readFetched(ctx, s); err != nil {
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
		err := r.read(ctx, o.spec.Name+"."+trigger+" (a page, from the same cursor)", &calls, func() (err error) {
			res, err = t.Poll(ctx, o.conn, connectors.PollRequest{Params: params, Cursor: cursor, Start: connectors.StartBeginning, Now: r.now()})
			return err
		})
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

// readListing lists a kind's records page by page with its connector's
// listing action.
func (r *Reconciler) readListing(ctx context.Context, src source) ([]Record, int, error) {
	l := src.rs.Listing
	a := src.spec.Action(l.Action)
	if a == nil {
		return nil, 0, fmt.Errorf("connector %s has no action %q", src.spec.Name, l.Action)
	}
	var out []Record
	calls := 0
	for page := 0; ; page++ {
		var res *connectors.Result
		err := r.read(ctx, fmt.Sprintf("%s.%s page %d", src.spec.Name, l.Action, page), &calls, func() (err error) {
			res, err = a.Run(ctx, src.conn, map[string]any{l.Page: page, l.Size: l.PageSize})
			return err
		})
		if err != nil {
			return nil, calls, fmt.Errorf("page %d: %w", page, err)
		}
		out0, _ := asMap(res.Output)
		list, _ := out0[l.Items].([]any)
		for _, it := range list {
			rec, ok := it.(map[string]any)
			if !ok {
				continue
			}
			out = append(out, Record{Subject: l.Subject + src.rs.Field(rec, connectors.FieldID), Data: rec})
		}
		if len(list) < l.PageSize {
			return out, calls, nil
		}
	}
}

// scope is the value of a kind's Scope input (the credential group) the
// recipes work with: the `with` of a recipe's trigger of the declaring
// connector, or of one of its steps, evaluated with the recipe's vars.
func (r *Reconciler) scope(src source) map[string]any {
	key := src.rs.Scope
	if key == "" {
		return nil
	}
	for _, rc := range r.recipes {
		if rc.Trigger != nil && connectorOf(rc, rc.Trigger.Connection) == src.spec.Name {
			if v, ok, err := rc.Trigger.With.EvalKey(key, recipes.Env{"vars": rc.Vars}); err == nil && ok && v != nil {
				return map[string]any{key: v}
			}
		}
	}
	for _, rc := range r.recipes {
		for _, st := range rc.Steps {
			if connectorOf(rc, st.Connection) != src.spec.Name {
				continue
			}
			if v, ok, err := st.With.EvalKey(key, recipes.Env{"vars": rc.Vars}); err == nil && ok && v != nil {
				return map[string]any{key: v}
			}
		}
	}
	return nil
}

// readFetched runs, for each record a rule's fetch lists, each read step
// of the rule's recipe before the rule's action step whose role fetches
// (connectors.Role.Fetch) — the step the record's kind answers — with
// the record's id, one call per record and action: the check then
// answers that step with what the service says, as a run would see it.
func (r *Reconciler) readFetched(ctx context.Context, s *Snapshot) error {
	ix := newIndex(s)
	for _, br := range r.rules {
		if br.rule.fetch == nil || br.fixer == nil {
			continue
		}
		c := br.ctx(s, ix)
		steps := c.fetching(br.rule.fixAction)
		if len(steps) == 0 {
			continue
		}
		for _, rec := range br.rule.fetch(c) {
			for _, st := range steps {
				ro := c.role(st)
				if ro.Kind != rec.kind {
					continue
				}
				name := connectorOf(br.fixer, st.Connection)
				o, ok := r.conns[name]
				if !ok {
					continue
				}
				a := o.spec.Action(st.Operation)
				if a == nil {
					continue
				}
				key, id := name+"."+st.Operation, s.Field(rec.kind, rec.rec, connectors.FieldID)
				if _, done := s.Fetched[key][id]; done || id == "" {
					continue
				}
				in := map[string]any{ro.Inputs[connectors.FieldID]: s.Kinds[rec.kind].Value(rec.rec, connectors.FieldID)}
				var res *connectors.Result
				err := r.read(ctx, fmt.Sprintf("%s for %s %s", key, rec.kind, id), &s.Calls, func() (err error) {
					res, err = a.Run(ctx, o.conn, in)
					return err
				})
				if err != nil {
					return fmt.Errorf("reconcile: rule %s: step %q (%s) for %s %s through connection %q: %w", br.rule.id, st.ID, key, rec.kind, id, o.name, err)
				}
				out, ok := asMap(res.Output)
				if !ok {
					return fmt.Errorf("reconcile: rule %s: step %q (%s) for %s %s: the answer is no object", br.rule.id, st.ID, key, rec.kind, id)
				}
				if s.Fetched[key] == nil {
					s.Fetched[key] = map[string]any{}
				}
				s.Fetched[key][id] = out
			}
		}
	}
	return nil
}

// readPaymentRefs looks up the payments recorded on orders that the
// rules check, by their reference, one request each.
func (r *Reconciler) readPaymentRefs(ctx context.Context, s *Snapshot) error {
	src, ok := r.sources[connectors.KindOrderPayment]
	if !ok || src.rs.Lookup == nil {
		return nil
	}
	lk := src.rs.Lookup
	a := src.spec.Action(lk.Action)
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
			var res *connectors.Result
			err := r.read(ctx, fmt.Sprintf("%s.%s %q", src.spec.Name, lk.Action, ref), &s.Calls, func() (err error) {
				res, err = a.Run(ctx, src.conn, map[string]any{lk.Input: ref})
				return err
			})
			if err != nil {
				return fmt.Errorf("reconcile: %s.%s %q: %w", src.spec.Name, lk.Action, ref, err)
			}
			var found []map[string]any
			if m, ok := asMap(res.Output); ok {
				if list, ok := m[lk.Items].([]any); ok {
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
