package console

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/reconcile"
)

// Compliance is what the compliance page shows: a reconciliation and
// the snapshot it checked.
type Compliance struct {
	Report   *reconcile.Report
	Snapshot *reconcile.Snapshot
}

// ComplianceSource answers the compliance page. Reconciling is the one
// that reads the services.
type ComplianceSource interface {
	// Compliance returns the latest reconciliation, reading the services
	// again when fresh asks for it or the last one is too old.
	Compliance(ctx context.Context, fresh bool) (*Compliance, error)
}

// Reconciling reads the services through a reconcile.Reconciler and
// keeps the result for MaxAge: pages answer from memory, and a stale
// result is refreshed in the background while the old one is shown.
type Reconciling struct {
	R      *reconcile.Reconciler
	MaxAge time.Duration

	mu      sync.Mutex
	last    *Compliance
	lastErr error
	running chan struct{}
}

// Compliance implements ComplianceSource.
func (c *Reconciling) Compliance(ctx context.Context, fresh bool) (*Compliance, error) {
	c.mu.Lock()
	last, running := c.last, c.running
	stale := last == nil || fresh || time.Since(last.Report.Taken) > c.maxAge()
	if stale && running == nil {
		running = make(chan struct{})
		c.running = running
		go c.refresh(running)
	}
	c.mu.Unlock()
	if last != nil && !fresh {
		return last, nil
	}
	select {
	case <-running:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.lastErr
}

func (c *Reconciling) maxAge() time.Duration {
	if c.MaxAge <= 0 {
		return time.Minute
	}
	return c.MaxAge
}

func (c *Reconciling) refresh(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, snap, err := c.R.Run(ctx)
	c.mu.Lock()
	if err == nil {
		c.last = &Compliance{Report: rep, Snapshot: snap}
	}
	c.lastErr = err
	c.running = nil
	c.mu.Unlock()
	close(done)
}

// memberRow is one line of the compliance table.
type memberRow struct {
	ID, Name, Email, Status, Plan string
	Credential, CredentialStatus  string // id, "valid" / "expired" / ""
	Group                         string
	Attendee, AttendeeStatus      string
	AttendeeLive, CheckedIn       bool // a booked ticket; checked in
	Rules                         []string
}

type complianceFilter struct {
	Status, Event, Group, Rule, Query string
}

// rows joins members, credentials and attendees, with the rules each
// member breaks. Fields are read through the declarations of the
// connectors that hold each kind of record (Snapshot.Field).
func rows(c *Compliance, today string) []memberRow {
	s := c.Snapshot
	const (
		member, credential, attendee = connectors.KindMember, connectors.KindCredential, connectors.KindAttendee
	)
	creds := map[string]map[string]any{}
	for _, cr := range s.Credentials {
		rid := s.Field(credential, cr.Data, connectors.FieldMember)
		if prev, ok := creds[rid]; !ok || s.Field(credential, cr.Data, connectors.FieldChanged) > s.Field(credential, prev, connectors.FieldChanged) {
			creds[rid] = cr.Data
		}
	}
	atts := map[string]map[string]any{}
	for _, a := range s.Attendees {
		ext := s.Field(attendee, a.Data, connectors.FieldMember)
		if prev, ok := atts[ext]; !ok || (!s.In(attendee, prev, connectors.StateLive) && s.In(attendee, a.Data, connectors.StateLive)) {
			atts[ext] = a.Data
		}
	}
	rules := map[string][]string{}
	for _, f := range c.Report.Findings {
		if f.Member != "" && !contains(rules[f.Member], f.Rule) {
			rules[f.Member] = append(rules[f.Member], f.Rule)
		}
	}
	out := make([]memberRow, 0, len(s.Members))
	for _, m := range s.Members {
		d := m.Data
		id := s.Field(member, d, connectors.FieldID)
		r := memberRow{ID: id, Name: strings.TrimSpace(s.Field(member, d, connectors.FieldGivenName) + " " + s.Field(member, d, connectors.FieldFamilyName)),
			Email: s.Field(member, d, connectors.FieldEmail), Status: s.Field(member, d, connectors.FieldStatus), Plan: s.Field(member, d, connectors.FieldPlan), Rules: rules[id]}
		if cr := creds[id]; cr != nil {
			r.Credential, r.Group = s.Field(credential, cr, connectors.FieldID), s.Field(credential, cr, connectors.FieldGroup)
			r.CredentialStatus = "valid"
			if exp := s.Field(credential, cr, connectors.FieldExpires); exp != "" && exp[:min(10, len(exp))] <= today {
				r.CredentialStatus = "expired"
			}
		}
		if a := atts[id]; a != nil {
			r.Attendee, r.AttendeeStatus = s.Field(attendee, a, connectors.FieldID), s.Field(attendee, a, connectors.FieldStatus)
			r.AttendeeLive = s.In(attendee, a, connectors.StateLive)
			r.CheckedIn = s.Field(attendee, a, connectors.FieldCheckedIn) == "true"
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if (len(out[i].Rules) > 0) != (len(out[j].Rules) > 0) {
			return len(out[i].Rules) > 0 // drift first
		}
		return out[i].Email < out[j].Email
	})
	return out
}

func (f complianceFilter) keep(r memberRow) bool {
	switch {
	case f.Status != "" && r.Status != f.Status:
		return false
	case f.Group != "" && r.Group != f.Group:
		return false
	case f.Rule == "any" && len(r.Rules) == 0:
		return false
	case f.Rule != "" && f.Rule != "any" && !contains(r.Rules, f.Rule):
		return false
	}
	switch f.Event {
	case "":
	case "registered":
		if !r.AttendeeLive {
			return false
		}
	case "checked-in":
		if !r.CheckedIn {
			return false
		}
	case "none":
		if r.Attendee != "" && r.AttendeeLive {
			return false
		}
	}
	if q := strings.ToLower(strings.TrimSpace(f.Query)); q != "" {
		return strings.Contains(strings.ToLower(r.Name+" "+r.Email+" "+r.ID), q)
	}
	return true
}

// memberStatuses are the member statuses a filter offers: those the
// members' connector declares, in its order, then any other seen.
func memberStatuses(s *reconcile.Snapshot, seen map[string]int) []string {
	var out []string
	if rs := s.Kinds[connectors.KindMember]; rs != nil {
		out = append(out, rs.Statuses...)
	}
	var extra []string
	for st := range seen {
		if st != "" && !contains(out, st) {
			extra = append(extra, st)
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
