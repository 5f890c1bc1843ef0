package accelevents

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

func attendeeActions() []*connectors.ActionSpec {
	return []*connectors.ActionSpec{
		{
			Operation: connectors.Operation{
				Name:    "list_attendees",
				Summary: "List an event's attendees, one 0-based page at a time.",
				Input: input(props{
					"eventUrl":     eventURLProp,
					"page":         prop("integer", "Page number, 0-based.", "minimum", 0, "default", 0),
					"size":         prop("integer", "Page size, at most 500.", "minimum", 1, "maximum", 500, "default", 100),
					"searchString": prop("string", "Matches names, email, external id, barcode or order id."),
				}),
				Output:  output(docResponse("GET", ev+"/staff/allAttendees")),
				Example: map[string]any{"page": 0, "size": 50},
				HTTP:    &connectors.HTTPBinding{Method: http.MethodGet, Path: ev + "/staff/allAttendees"},
			},
			ReadOnly: true, Idempotent: true,
			Run: connectors.Bind(listAttendees),
		},
		{
			Operation: connectors.Operation{
				Name:    "get_attendee",
				Summary: "Get one attendee by id.",
				Input: input(props{
					"eventUrl":   eventURLProp,
					"attendeeId": prop("integer", "Attendee id (the ticket id).", "minimum", 1),
				}, "attendeeId"),
				Output:  output(attendeeSchema()),
				Example: map[string]any{"attendeeId": 900001},
				HTTP:    &connectors.HTTPBinding{Method: http.MethodGet, Path: ev + "/staff/attendees/{attendeeId}"},
			},
			ReadOnly: true, Idempotent: true,
			Run: connectors.Bind(getAttendee),
		},
		{
			Operation: connectors.Operation{
				Name:    "find_attendee",
				Summary: "Find an attendee by external id (the member id) or email; a live ticket wins.",
				Input: oneOfFields(props{
					"eventUrl":     eventURLProp,
					"externalId":   prop("string", "Your id for the person, looked up first."),
					"email":        prop("string", "Email, looked up when the external id finds nobody; case-insensitive."),
					"ticketTypeId": prop("integer", "Only tickets of this type.", "minimum", 1),
				}, "externalId", "email"),
				Output: output(object("What the look-up found.", props{
					"found":    prop("boolean", "Whether an attendee matched."),
					"matches":  prop("integer", "How many tickets matched the winning look-up."),
					"attendee": anyOfNull(attendeeSchema(), "The attendee, or null."),
				}, "found", "matches", "attendee")),
				Example: map[string]any{"externalId": "member-42", "email": "ada@example.com"},
			},
			ReadOnly: true, Idempotent: true,
			Run: connectors.Bind(findAttendee),
		},
		{
			Operation: connectors.Operation{
				Name:        "upsert_attendee",
				Summary:     "Register a person or update their attendee record; never a duplicate.",
				Description: "Looks the person up by externalId, then email, preferring a live ticket. Found (even refunded or cancelled): changes the fields that differ (or nothing); the output's attendee.status says whether the ticket is live. Not found: adds an attendee with a complimentary ticket of ticketTypeId.",
				Input: input(props{
					"eventUrl":     eventURLProp,
					"externalId":   prop("string", "Your id for the person (the member id)."),
					"email":        prop("string", "Email address.", "format", "email", "minLength", 3),
					"firstName":    prop("string", "First name.", "minLength", 1),
					"lastName":     prop("string", "Last name.", "minLength", 1),
					"ticketTypeId": prop("integer", "Ticket type of a new attendee.", "minimum", 1),
				}, "email", "firstName", "lastName", "ticketTypeId"),
				Output: output(object("The upsert's outcome.", props{
					"action":   prop("string", "created, updated or unchanged.", "enum", []string{"created", "updated", "unchanged"}),
					"attendee": attendeeSchema(),
				}, "action", "attendee")),
				Example: map[string]any{"externalId": "member-42", "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace", "ticketTypeId": 145680},
			},
			Run:              connectors.Bind(upsertAttendee),
			Batch:            &connectors.BatchForm{Max: upsertBatchMax, Run: connectors.BindBatch(upsertAttendees)},
			Settle:           settleUpsertAttendee,
			ReportsUnchanged: true,
		},
	}
}

func anyOfNull(s map[string]any, desc string) map[string]any {
	return map[string]any{"description": desc, "anyOf": []any{s, map[string]any{"type": "null"}}}
}

func listAttendees(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	evURL, err := c.event(in)
	if err != nil {
		return nil, opErr("list_attendees", err)
	}
	q := url.Values{"page": {"0"}, "size": {"100"}, "searchString": {str(in, "searchString")}}
	if n, ok := num(in, "page"); ok {
		q.Set("page", strconv.FormatInt(n, 10))
	}
	if n, ok := num(in, "size"); ok {
		q.Set("size", strconv.FormatInt(n, 10))
	}
	var out map[string]any
	if err := c.getJSON(ctx, eventPath(evURL, "staff/allAttendees"), q, &out); err != nil {
		return nil, opErr("list_attendees", err)
	}
	return &connectors.Result{Output: out}, nil
}

func getAttendee(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	evURL, err := c.event(in)
	if err != nil {
		return nil, opErr("get_attendee", err)
	}
	id, _ := num(in, "attendeeId")
	a, err := c.getAttendee(ctx, evURL, id)
	if err != nil {
		return nil, opErr("get_attendee", err)
	}
	v, err := value(a)
	if err != nil {
		return nil, opErr("get_attendee", err)
	}
	return &connectors.Result{Output: v}, nil
}

func findAttendee(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	evURL, err := c.event(in)
	if err != nil {
		return nil, opErr("find_attendee", err)
	}
	ext, email := str(in, "externalId"), str(in, "email")
	if ext == "" && email == "" {
		return nil, opErr("find_attendee", fmt.Errorf("give externalId or email"))
	}
	typ, _ := num(in, "ticketTypeId")
	a, n, err := c.findAttendee(ctx, evURL, ext, email, typ)
	if err != nil {
		return nil, opErr("find_attendee", err)
	}
	out := map[string]any{"found": a != nil, "matches": n, "attendee": nil}
	if a != nil {
		if out["attendee"], err = value(a); err != nil {
			return nil, opErr("find_attendee", err)
		}
	}
	return &connectors.Result{Output: out}, nil
}

// upsertAttendee finds, then creates or changes only what differs.
func upsertAttendee(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	evURL, err := c.event(in)
	if err != nil {
		return nil, opErr("upsert_attendee", err)
	}
	found, _, err := c.findAttendee(ctx, evURL, str(in, "externalId"), str(in, "email"), 0)
	if err != nil {
		return nil, opErr("upsert_attendee", err)
	}
	res, _, err := applyUpsert(ctx, c, evURL, in, found)
	return res, err
}

// applyUpsert creates the attendee (found is nil) or changes the fields
// of found that differ, and returns the result and the attendee as it
// now is.
func applyUpsert(ctx context.Context, c *Client, evURL string, in map[string]any, found *Attendee) (*connectors.Result, *Attendee, error) {
	ext, email := str(in, "externalId"), str(in, "email")
	first, last := str(in, "firstName"), str(in, "lastName")
	typ, _ := num(in, "ticketTypeId")
	action := "unchanged"
	var a Attendee
	switch {
	case found == nil:
		// A refunded or cancelled ticket still names the person: it is
		// updated, not replaced by a second registration. Re-registering
		// someone who asked for a refund is not a sync's decision.
		body := map[string]any{"ticketTypeId": typ, "firstName": first, "lastName": last, "email": email}
		if ext != "" {
			body["externalId"] = ext
		}
		if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: eventPath(evURL, "staff/attendees"), Body: body}, &a); err != nil {
			return nil, nil, opErr("upsert_attendee", err)
		}
		action = "created"
	default:
		change := map[string]any{}
		if found.FirstName != first {
			change["firstName"] = first
		}
		if found.LastName != last {
			change["lastName"] = last
		}
		if !equalFold(found.Email, email) {
			change["email"] = email
		}
		if ext != "" && found.ExternalID != ext {
			change["externalId"] = ext
		}
		a = *found
		if len(change) > 0 {
			if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPut, Path: eventPath(evURL, "staff/attendees/%d", found.AttendeeID), Body: change}, &a); err != nil {
				return nil, nil, opErr("upsert_attendee", err)
			}
			action = "updated"
		}
	}
	v, err := value(&a)
	if err != nil {
		return nil, nil, opErr("upsert_attendee", err)
	}
	res := &connectors.Result{Output: map[string]any{"action": action, "attendee": v}}
	if action != "unchanged" {
		res.Wrote = []connectors.Record{{Subject: AttendeeSubject(a.AttendeeID), State: AttendeeFingerprint(&a)}}
	}
	return res, &a, nil
}

// settleUpsertAttendee decides an in-doubt upsert: it happened when the
// person is now registered with the fields asked for.
func settleUpsertAttendee(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	evURL, err := c.event(in)
	if err != nil {
		return nil, false, opErr("upsert_attendee", err)
	}
	a, _, err := c.findAttendee(ctx, evURL, str(in, "externalId"), str(in, "email"), 0)
	if err != nil {
		return nil, false, opErr("upsert_attendee", err)
	}
	if a == nil || a.FirstName != str(in, "firstName") || a.LastName != str(in, "lastName") || !equalFold(a.Email, str(in, "email")) {
		return nil, false, nil
	}
	v, err := value(a)
	if err != nil {
		return nil, false, err
	}
	return &connectors.Result{
		Output: map[string]any{"action": "created", "attendee": v},
		Wrote:  []connectors.Record{{Subject: AttendeeSubject(a.AttendeeID), State: AttendeeFingerprint(a)}},
	}, true, nil
}
