package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// maxOncePasses bounds `run --once`: a pass polls every trigger and runs
// what it found; the next pass sees what the previous one wrote (a
// certificate issued is news to the recipe that pushes it to the member).
// Passes repeat until one finds nothing new.
const maxOncePasses = 8

// runOnceUntilQuiet runs passes until one sees no new event.
func runOnceUntilQuiet(run func() (*engine.Summary, error)) (*engine.Summary, int, error) {
	var sum *engine.Summary
	seen := int64(-1)
	for pass := 1; pass <= maxOncePasses; pass++ {
		s, err := run()
		if s != nil {
			sum = s
		}
		if err != nil || s == nil {
			return sum, pass, err
		}
		var events int64
		for _, r := range s.Recipes {
			events += r.Events
		}
		if events == seen {
			return sum, pass, nil
		}
		seen = events
	}
	return sum, maxOncePasses, nil
}

// effects name what a write means to a person reading the summary, by
// connector and operation.
var effects = map[string]string{
	"accredible.upsert_credential":       "certificates issued",
	"accredible.create_credential":       "certificates issued",
	"accredible.bulk_create_credentials": "certificates issued",
	"accredible.expire_credential":       "certificates expired",
	"accelevents.upsert_attendee":        "attendees synced",
	"accelevents.create_attendee":        "attendees synced",
	"accelevents.record_payment":         "payments mirrored",
	"memberships.upsert_payment":         "payments mirrored",
	"memberships.create_payment":         "payments mirrored",
	"memberships.update_user":            "members updated",
	"memberships.set_membership_status":  "members updated",
}

// effectOrder is the order of the at-a-glance line.
var effectOrder = []string{"certificates issued", "certificates expired", "attendees synced", "payments mirrored", "QR codes made", "members updated"}

// writeGlance prints one line a person can read at a glance: members
// seen, what was done, what was skipped and what failed.
func writeGlance(w io.Writer, sum *engine.Summary, rs []*recipes.Recipe) {
	byName := map[string]*recipes.Recipe{}
	for _, r := range rs {
		byName[r.Name] = r
	}
	counts := map[string]int64{}
	var created, changes, skipped, dead int64
	for _, s := range sum.Recipes {
		r := byName[s.Recipe]
		if r == nil {
			continue
		}
		skipped += s.Skipped
		dead += s.Dead
		if t := r.Trigger; t != nil && connectorOf(r, t.Connection) == "memberships" {
			// A member is seen once by a trigger of new members; other
			// member triggers see each change, so they count only when
			// no recipe watches new members.
			switch {
			case t.Operation == "user_created":
				created = max(created, s.Events)
			case strings.HasPrefix(t.Operation, "user_") || t.Operation == "membership_status_changed":
				changes = max(changes, s.Events)
			}
		}
		qr := false
		for _, st := range r.Steps {
			if connectorOf(r, st.Connection) == "accelevents" && st.Operation == "attendee_qr_code" {
				qr = true
			}
		}
		for key, n := range s.Writes {
			conn, op, _ := strings.Cut(key, ".")
			connector := connectorOf(r, conn)
			if qr && connector == "file" && op == "append" {
				counts["QR codes made"] += n
				continue
			}
			if e, ok := effects[connector+"."+op]; ok {
				counts[e] += n
			}
		}
	}
	members := fmt.Sprintf("%d members seen", created)
	if created == 0 {
		members = fmt.Sprintf("%d member changes seen", changes)
	}
	parts := []string{members}
	for _, e := range effectOrder {
		if n := counts[e]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, e))
		}
	}
	// Only figures that identical inputs make identical: what changed,
	// what conditions skipped, what failed. How many upserts found their
	// record already as asked, and how many events were echoes, depend on
	// which of two recipes touching one record ran first: the table above
	// has them.
	parts = append(parts, fmt.Sprintf("%d skipped by conditions", skipped), fmt.Sprintf("%d failed", dead))
	fmt.Fprintln(w, strings.Join(parts, " · "))
}

func connectorOf(r *recipes.Recipe, connection string) string {
	if c, ok := r.Connections[connection]; ok {
		return c.Connector
	}
	return connection
}
