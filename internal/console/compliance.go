package console

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

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
	CheckedIn                     bool
	Rules                         []string
}

type complianceFilter struct {
	Status, Event, Group, Rule, Query string
}

// rows joins members, credentials and attendees, with the rules each
// member breaks.
func rows(c *Compliance, today string) []memberRow {
	s := c.Snapshot
	creds := map[string]map[string]any{}
	for _, cr := range s.Credentials {
		rid := str(cr.Data, "recipient", "id")
		if prev, ok := creds[rid]; !ok || str(cr.Data, "updated_at") > str(prev, "updated_at") {
			creds[rid] = cr.Data
		}
	}
	atts := map[string]map[string]any{}
	for _, a := range s.Attendees {
		ext := str(a.Data, "externalId")
		if prev, ok := atts[ext]; !ok || (str(prev, "status") != "BOOKED" && str(a.Data, "status") == "BOOKED") {
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
		id := str(d, "id")
		r := memberRow{ID: id, Name: strings.TrimSpace(str(d, "firstName") + " " + str(d, "lastName")), Email: str(d, "email"),
			Status: str(d, "membershipStatus"), Plan: str(d, "planId"), Rules: rules[id]}
		if cr := creds[id]; cr != nil {
			r.Credential, r.Group = str(cr, "id"), str(cr, "group_id")
			r.CredentialStatus = "valid"
			if exp := str(cr, "expired_on"); exp != "" && exp[:min(10, len(exp))] <= today {
				r.CredentialStatus = "expired"
			}
		}
		if a := atts[id]; a != nil {
			r.Attendee, r.AttendeeStatus = str(a, "attendeeId"), str(a, "status")
			r.CheckedIn, _ = a["checkedIn"].(bool)
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
		if r.AttendeeStatus != "BOOKED" {
			return false
		}
	case "checked-in":
		if !r.CheckedIn {
			return false
		}
	case "none":
		if r.Attendee != "" && r.AttendeeStatus == "BOOKED" {
			return false
		}
	}
	if q := strings.ToLower(strings.TrimSpace(f.Query)); q != "" {
		return strings.Contains(strings.ToLower(r.Name+" "+r.Email+" "+r.ID), q)
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[p]
	}
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}
