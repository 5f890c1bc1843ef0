package accelevents

import (
	"context"
	"net/url"
	"strconv"
	"strings"

	"github.com/memberflow/memberflow/connectors"
)

// upsertBatchMax is the most upserts one batch takes: the look-ups are
// one read of the attendee list whatever the number, the writes one
// request each (the API has no bulk attendee create or update).
const upsertBatchMax = 100

// listPageSize is the largest page of GET .../staff/allAttendees the API
// documents.
const listPageSize = 500

// attendeeIndex is an event's attendee list, read once, looked up as
// GET .../staff/attendees?externalId= and ?email= would answer: exact
// external id, case-insensitive email, in the list's order.
type attendeeIndex struct {
	all     []*Attendee
	byExtID map[string][]*Attendee
	byEmail map[string][]*Attendee
}

func newAttendeeIndex() *attendeeIndex {
	return &attendeeIndex{byExtID: map[string][]*Attendee{}, byEmail: map[string][]*Attendee{}}
}

// add indexes one attendee (read from the list, or created by the batch).
func (x *attendeeIndex) add(a *Attendee) {
	x.all = append(x.all, a)
	if a.ExternalID != "" {
		x.byExtID[a.ExternalID] = append(x.byExtID[a.ExternalID], a)
	}
	if e := strings.ToLower(strings.TrimSpace(a.Email)); e != "" {
		x.byEmail[e] = append(x.byEmail[e], a)
	}
}

// changed re-indexes an attendee whose external id or email an update
// changed (a is the indexed record, now with the new values).
func (x *attendeeIndex) changed(a *Attendee, oldExt, oldEmail string) {
	drop := func(m map[string][]*Attendee, k string) {
		list := m[k]
		for i, b := range list {
			if b == a {
				m[k] = append(list[:i:i], list[i+1:]...)
				break
			}
		}
	}
	if oldExt != a.ExternalID {
		drop(x.byExtID, oldExt)
		if a.ExternalID != "" {
			x.byExtID[a.ExternalID] = append(x.byExtID[a.ExternalID], a)
		}
	}
	if o, n := strings.ToLower(strings.TrimSpace(oldEmail)), strings.ToLower(strings.TrimSpace(a.Email)); o != n {
		drop(x.byEmail, o)
		if n != "" {
			x.byEmail[n] = append(x.byEmail[n], a)
		}
	}
}

// find is findAttendee over the index: by external id first, then by
// email, preferring a live ticket (of ticketTypeID when non-zero).
func (x *attendeeIndex) find(externalID, email string, ticketTypeID int64) *Attendee {
	pick := func(list []*Attendee) *Attendee {
		var fallback *Attendee
		for _, a := range list {
			if ticketTypeID != 0 && a.TicketTypeID != ticketTypeID {
				continue
			}
			if a.live() {
				return a
			}
			if fallback == nil {
				fallback = a
			}
		}
		return fallback
	}
	if externalID != "" {
		if a := pick(x.byExtID[externalID]); a != nil {
			return a
		}
	}
	if email != "" {
		if a := pick(x.byEmail[strings.ToLower(strings.TrimSpace(email))]); a != nil {
			return a
		}
	}
	return nil
}

// readAttendees reads an event's whole attendee list when that costs
// at most budget requests (pages of 500), judged by the count the list
// last gave (a count is a cost estimate only, never a match); otherwise,
// or when the first page shows the list has grown past the budget, it
// returns nil and the caller looks each person up instead.
func (c *Client) readAttendees(ctx context.Context, ev string, budget int) (*attendeeIndex, error) {
	pages := func(total int) int { return max(1, (total+listPageSize-1)/listPageSize) }
	if last, ok := c.listTotals.Load(ev); ok && pages(last.(int)) > budget {
		return nil, nil
	}
	x := newAttendeeIndex()
	for page := 0; ; page++ {
		var p struct {
			Data         []Attendee `json:"data"`
			Attendees    []Attendee `json:"attendees"`
			RecordsTotal int        `json:"recordsTotal"`
		}
		q := url.Values{"page": {strconv.Itoa(page)}, "size": {strconv.Itoa(listPageSize)}}
		if err := c.getJSON(ctx, eventPath(ev, "staff/allAttendees"), q, &p); err != nil {
			return nil, err
		}
		if p.Data == nil {
			p.Data = p.Attendees // the other name the API answers with
		}
		c.listTotals.Store(ev, p.RecordsTotal)
		if page == 0 && pages(p.RecordsTotal) > budget {
			return nil, nil
		}
		for i := range p.Data {
			x.add(&p.Data[i])
		}
		if len(p.Data) < listPageSize || len(x.all) >= p.RecordsTotal {
			return x, nil
		}
	}
}

// lookupCost is the most requests looking the inputs up one at a time
// takes: one by external id, one by email when that finds nobody.
func lookupCost(inputs []map[string]any, items []int) int {
	n := 0
	for _, i := range items {
		if str(inputs[i], "externalId") != "" {
			n++
		}
		if str(inputs[i], "email") != "" {
			n++
		}
	}
	return n
}

// upsertAttendees is upsert_attendee's batch form. The look-ups, one or
// two requests per person one at a time, become one read of the event's
// attendee list (a page per 500 attendees), matched locally by external
// id, then email, as the search would; the list is read only when that
// costs no more requests than the look-ups would. The writes stay one
// request each, in input order, and an attendee a write creates or
// changes is found by the inputs after it, as one at a time would.
func upsertAttendees(ctx context.Context, c *Client, inputs []map[string]any) ([]connectors.ItemResult, error) {
	out := make([]connectors.ItemResult, len(inputs))
	// Inputs by event (one, unless the steps name events).
	byEvent := map[string][]int{}
	var events []string
	for i, in := range inputs {
		ev, err := c.event(in)
		if err != nil {
			out[i].Err = opErr("upsert_attendee", err)
			continue
		}
		if _, ok := byEvent[ev]; !ok {
			events = append(events, ev)
		}
		byEvent[ev] = append(byEvent[ev], i)
	}
	for _, ev := range events {
		items := byEvent[ev]
		var index *attendeeIndex
		// A batch of one is the call itself: the same requests as Run.
		// Otherwise the list is worth reading when its pages are no more
		// than the look-ups would be.
		if len(items) > 1 {
			var err error
			if index, err = c.readAttendees(ctx, ev, lookupCost(inputs, items)); err != nil {
				return nil, opErr("upsert_attendee", err)
			}
		}
		for _, i := range items {
			in := inputs[i]
			if index == nil {
				out[i].Result, out[i].Err = upsertAttendee(ctx, c, in)
				continue
			}
			found := index.find(str(in, "externalId"), str(in, "email"), 0)
			var before Attendee
			if found != nil {
				before = *found
			}
			res, a, err := applyUpsert(ctx, c, ev, in, found)
			out[i].Result, out[i].Err = res, err
			switch {
			case err != nil || a == nil:
			case found == nil:
				index.add(a)
			default:
				*found = *a
				index.changed(found, before.ExternalID, before.Email)
			}
		}
	}
	return out, nil
}
