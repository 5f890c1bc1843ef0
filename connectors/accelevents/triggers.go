package accelevents

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// Each trigger is fed by our signed webhooks or, as a fallback, by polling
// a list (attendees or orders) page by page. Polling keeps per-record
// state (the status, or the check-in time) so that it emits a change once,
// and a cursor of the page reached. Lists are in creation order and keep
// cancelled records, so pages are stable; after the last page the poller
// starts a new pass from page 0.

func triggers() []*connectors.TriggerSpec {
	attendeeIn := input(props{
		"eventUrl":     eventURLProp,
		"ticketTypeId": prop("integer", "Only attendees with tickets of this type.", "minimum", 1),
		"pageSize":     prop("integer", "Records per poll request.", "minimum", 1, "maximum", 500, "default", 200),
	})
	return []*connectors.TriggerSpec{
		{
			Operation: connectors.Operation{
				Name:        "registration_created",
				Summary:     "A person registered: an attendee's ticket is booked with holder data.",
				Description: "Webhook topic registration.created; polling: attendees that became BOOKED.",
				Input:       attendeeIn,
				Output:      output(attendeeSchema()),
				Example:     map[string]any{"ticketTypeId": 145680},
			},
			Poll:            poll(registrationScan),
			Webhook:         webhookSpec(TopicRegistration, &registrationScan, attendeeOf, keepTicketType),
			DefaultInterval: time.Minute,
		},
		{
			Operation: connectors.Operation{
				Name:        "order_paid",
				Summary:     "An order was paid in full.",
				Description: "Webhook topic order.paid; polling: orders whose status became PAID.",
				Input: input(props{
					"eventUrl": eventURLProp,
					"pageSize": prop("integer", "Records per poll request.", "minimum", 1, "maximum", 500, "default", 200),
				}),
				Output:  output(orderSchema()),
				Example: map[string]any{},
			},
			Poll:            poll(orderScan),
			Webhook:         webhookSpec(TopicOrderPaid, &orderScan, orderOf, nil),
			DefaultInterval: time.Minute,
		},
		{
			Operation: connectors.Operation{
				Name:        "attendee_checked_in",
				Summary:     "An attendee was checked in at the venue.",
				Description: "Webhook topic attendee.checked_in; polling: attendees whose check-in time changed to a new one.",
				Input:       attendeeIn,
				Output:      output(attendeeSchema()),
				Example:     map[string]any{},
			},
			Poll:            poll(checkInScan),
			Webhook:         webhookSpec(TopicCheckedIn, &checkInScan, attendeeOf, keepTicketType),
			DefaultInterval: 30 * time.Second,
		},
		ticketAvailabilityTrigger(),
	}
}

func keepTicketType(params, data map[string]any) bool {
	want, ok := num(params, "ticketTypeId")
	if !ok {
		return true
	}
	got, _ := num(data, "ticketTypeId")
	return got == want
}

// scan says how one trigger reads a list.
type scan struct {
	list string // path under the event
	// judge returns the record's subject, fingerprint and state, whether
	// it is an event given the prior state, and the event's stable id.
	judge func(rec map[string]any, prior string, known bool) (subject, fp, state string, emit bool, id string, err error)
	keep  func(params, rec map[string]any) bool
	// open reports whether a record may still change into an event (an
	// order not yet paid). Pages before the first open record are not
	// read again: the next pass starts at the first page holding one, or
	// at the last page, where new records arrive. Nil: every record is
	// open, every pass reads every page.
	open func(state string) bool
}

var registrationScan = scan{
	list: "staff/allAttendees",
	keep: keepTicketType,
	open: func(state string) bool { return state == "PENDING" },
	judge: func(rec map[string]any, prior string, known bool) (string, string, string, bool, string, error) {
		var a Attendee
		if err := remarshal(rec, &a); err != nil || a.AttendeeID == 0 {
			return "", "", "", false, "", fmt.Errorf("list item is not an attendee")
		}
		emit := a.Status == "BOOKED" && (!known || prior == "PENDING")
		return AttendeeSubject(a.AttendeeID), AttendeeFingerprint(&a), a.Status, emit, "registration/" + strconv.FormatInt(a.AttendeeID, 10), nil
	},
}

var orderScan = scan{
	list: "staff/orders",
	open: func(state string) bool { return state == "UNPAID" },
	judge: func(rec map[string]any, prior string, known bool) (string, string, string, bool, string, error) {
		var o Order
		if err := remarshal(rec, &o); err != nil || o.OrderID == 0 {
			return "", "", "", false, "", fmt.Errorf("list item is not an order")
		}
		paidAt := ""
		if o.PaidAt != nil {
			paidAt = *o.PaidAt
		}
		emit := o.Status == "PAID" && (!known || prior == "UNPAID")
		return OrderSubject(o.OrderID), OrderFingerprint(&o), o.Status, emit, "order/" + strconv.FormatInt(o.OrderID, 10) + "/paid/" + paidAt, nil
	},
}

var checkInScan = scan{
	list: "staff/allAttendees",
	keep: keepTicketType,
	judge: func(rec map[string]any, prior string, known bool) (string, string, string, bool, string, error) {
		var a Attendee
		if err := remarshal(rec, &a); err != nil || a.AttendeeID == 0 {
			return "", "", "", false, "", fmt.Errorf("list item is not an attendee")
		}
		state := "out"
		if a.CheckedIn && a.CheckInTime != nil {
			state = "in:" + *a.CheckInTime
		}
		emit := state != "out" && state != prior
		return AttendeeSubject(a.AttendeeID), AttendeeFingerprint(&a), state, emit, "attendee/" + strconv.FormatInt(a.AttendeeID, 10) + "/checkin/" + state[min(3, len(state)):], nil
	},
}

// scanCursor is the durable position: the page of the current pass, and
// whether a whole pass was seen (before that, with Start now, records are
// remembered without being emitted).
type scanCursor struct {
	Page   int  `json:"page"`
	Size   int  `json:"size"`
	Primed bool `json:"primed"`
	// Open is the first page of this pass holding an open record, -1
	// while none was seen.
	Open int `json:"open"`
}

func poll(sc scan) func(context.Context, connectors.Conn, connectors.PollRequest) (*connectors.PollResult, error) {
	return func(ctx context.Context, conn connectors.Conn, req connectors.PollRequest) (*connectors.PollResult, error) {
		c, err := connectors.As[*Client](conn)
		if err != nil {
			return nil, err
		}
		evURL, err := c.event(req.Params)
		if err != nil {
			return nil, err
		}
		cur := scanCursor{Size: 200, Primed: req.Start == connectors.StartBeginning, Open: -1}
		if n, ok := num(req.Params, "pageSize"); ok && n > 0 {
			cur.Size = int(n)
		}
		if req.Cursor != "" {
			if err := json.Unmarshal([]byte(req.Cursor), &cur); err != nil || cur.Size <= 0 || cur.Page < 0 {
				return nil, fmt.Errorf("accelevents: cursor %q is not one this trigger wrote", req.Cursor)
			}
		}
		var p page[map[string]any]
		q := url.Values{"page": {strconv.Itoa(cur.Page)}, "size": {strconv.Itoa(cur.Size)}}
		if err := c.getJSON(ctx, eventPath(evURL, "%s", sc.list), q, &p); err != nil {
			return nil, err
		}
		subjects := make([]string, len(p.Data))
		for i, rec := range p.Data {
			subj, _, _, _, _, err := sc.judge(rec, "", false)
			if err != nil {
				return nil, fmt.Errorf("accelevents: %s page %d item %d: %w", sc.list, cur.Page, i, err)
			}
			subjects[i] = subj
		}
		prior := map[string]string{}
		if req.Prior != nil && len(subjects) > 0 {
			if prior, err = req.Prior.Lookup(ctx, subjects); err != nil {
				return nil, err
			}
		}
		res := &connectors.PollResult{Total: p.RecordsTotal}
		for i, rec := range p.Data {
			was, known := prior[subjects[i]]
			subj, fp, state, emit, id, _ := sc.judge(rec, was, known)
			if cur.Open < 0 && (sc.open == nil || sc.open(state)) {
				cur.Open = cur.Page
			}
			if !known || was != state {
				res.States = append(res.States, connectors.Record{Subject: subj, State: state})
			}
			if !emit || !cur.Primed || (sc.keep != nil && !sc.keep(req.Params, rec)) {
				continue
			}
			ev := connectors.Event{ID: id, Subject: subj, Fingerprint: fp, Data: rec}
			if t, err := time.Parse(time.RFC3339, str(rec, "updatedAt")); err == nil {
				ev.Time = t
			}
			res.Events = append(res.Events, ev)
		}
		if len(p.Data) == cur.Size {
			cur.Page++
			res.More = true
		} else {
			// A pass ended: the next starts at the first page that may
			// still change, or at this last page, where records arrive.
			if cur.Open >= 0 && cur.Open < cur.Page {
				cur.Page = cur.Open
			}
			cur.Primed, cur.Open = true, -1
		}
		b, _ := json.Marshal(cur)
		res.Cursor = string(b)
		return res, nil
	}
}
