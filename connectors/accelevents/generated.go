package accelevents

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
	"github.com/memberflow/memberflow/connectors/openapi"
)

// actionNames names every operation of openapi.json. Hand-written actions
// of the same name (list_attendees, get_attendee, record_payment, check_in)
// replace the generated ones.
var actionNames = map[string]string{
	"GET /rest/events": "list_events",
	"GET " + ev:        "get_event",
	"GET " + ev + "/staff/ticketing/settings":                       "get_ticketing_settings",
	"POST " + ev + "/staff/ticketing/order":                         "place_order",
	"GET " + ev + "/staff/ticketing/order/{orderId}/formattributes": "get_order_form_attributes",
	"POST " + ev + "/staff/ticketing/order/{orderId}/holders":       "submit_holder_data",
	"GET " + ev + "/staff/allAttendees":                             "list_attendees",
	"GET " + ev + "/staff/attendees":                                "search_attendees",
	"POST " + ev + "/staff/attendees":                               "create_attendee",
	"GET " + ev + "/staff/attendees/{attendeeId}":                   "get_attendee",
	"PUT " + ev + "/staff/attendees/{attendeeId}":                   "update_attendee",
	"DELETE " + ev + "/staff/attendees/{attendeeId}":                "delete_attendee",
	"GET " + ev + "/staff/orders":                                   "list_orders",
	"GET " + ev + "/staff/orders/{orderId}":                         "get_order",
	"POST " + ev + "/staff/orders/{orderId}/refund":                 "refund_order",
	"GET " + ev + "/staff/orders/{orderId}/payments":                "list_order_payments",
	"POST " + ev + "/staff/orders/{orderId}/payments":               "record_payment",
	"GET " + ev + "/staff/payments":                                 "search_payments",
	"GET " + ev + "/staff/ticketTypes":                              "list_ticket_types",
	"POST " + ev + "/staff/ticketTypes":                             "create_ticket_type",
	"GET " + ev + "/staff/ticketTypes/{ticketTypeId}":               "get_ticket_type",
	"PUT " + ev + "/staff/ticketTypes/{ticketTypeId}":               "update_ticket_type",
	"DELETE " + ev + "/staff/ticketTypes/{ticketTypeId}":            "delete_ticket_type",
	"GET " + ev + "/staff/checkin/barcode/{barcode}/checkin/{flag}": "check_in",
	"GET " + ev + "/staff/checkin/barcode/{barcode}":                "get_ticket_by_barcode",
	"GET " + ev + "/staff/checkin/summary":                          "get_checkin_summary",
	"GET " + ev + "/webhooks":                                       "list_webhooks",
	"POST " + ev + "/webhooks":                                      "create_webhook",
	"GET " + ev + "/webhooks/{webhookId}":                           "get_webhook",
	"PUT " + ev + "/webhooks/{webhookId}":                           "update_webhook",
	"DELETE " + ev + "/webhooks/{webhookId}":                        "delete_webhook",
}

func handwritten() []*connectors.ActionSpec {
	var out []*connectors.ActionSpec
	out = append(out, attendeeActions()...)
	out = append(out, orderActions()...)
	out = append(out, ticketActions()...)
	return out
}

func apiOf(conn connectors.Conn) (*apiclient.Client, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, err
	}
	return c.api, nil
}

// generatedActions derives an action from every operation of openapi.json
// but calculateFee, whose body is a bare array (calculate_fee is
// hand-written). eventUrl becomes optional: the connection's option fills
// it in.
func generatedActions() ([]*connectors.ActionSpec, error) {
	doc, err := document()
	if err != nil {
		return nil, err
	}
	actions, err := doc.Actions(openapi.Options{
		Names:  actionNames,
		Skip:   func(op *openapi.Op) bool { return op.Path == ev+"/calculateFee" },
		Client: apiOf,
	})
	if err != nil {
		return nil, err
	}
	for _, a := range actions {
		if err := defaultEventURL(a); err != nil {
			return nil, fmt.Errorf("%s: %w", a.Name, err)
		}
		switch a.Name {
		case "submit_holder_data":
			// Submitting the same holders again changes nothing.
			a.Idempotent = true
			a.Idempotency = &connectors.Idempotency{Kind: connectors.ResendSets}
		case "place_order":
			a.Settle = settlePlaceOrder
		case "create_attendee":
			a.Settle = settleCreateAttendee
		case "create_ticket_type":
			a.Settle = settleByListing("staff/ticketTypes", "name", "")
		case "create_webhook":
			a.Settle = settleByListing("webhooks", "url", "data")
		case "refund_order":
			a.Settle = settleRefund
		}
	}
	return actions, nil
}

// defaultEventURL makes a generated action's eventUrl optional.
func defaultEventURL(a *connectors.ActionSpec) error {
	var s map[string]any
	if err := json.Unmarshal(a.Input, &s); err != nil {
		return err
	}
	p, _ := s["properties"].(map[string]any)
	if p["eventUrl"] == nil {
		return nil
	}
	p["eventUrl"] = eventURLProp
	if req, ok := s["required"].([]any); ok {
		kept := req[:0]
		for _, r := range req {
			if r != "eventUrl" {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			delete(s, "required")
		} else {
			s["required"] = kept
		}
	}
	a.Input = raw(s)
	run := a.Run
	a.Run = func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, error) {
		in, err := withEvent(conn, in)
		if err != nil {
			return nil, opErr(a.Name, err)
		}
		return run(ctx, conn, in)
	}
	return nil
}

func withEvent(conn connectors.Conn, in map[string]any) (map[string]any, error) {
	if str(in, "eventUrl") != "" {
		return in, nil
	}
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, err
	}
	evURL, err := c.event(in)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(in)+1)
	for k, v := range in {
		out[k] = v
	}
	out["eventUrl"] = evURL
	return out, nil
}

// settlePlaceOrder: an in-doubt order happened when the purchaser has an
// order with the same ticket lines.
func settlePlaceOrder(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	evURL, err := c.event(in)
	if err != nil {
		return nil, false, opErr("place_order", err)
	}
	buyer, _ := in["purchaser"].(map[string]any)
	email := str(buyer, "email")
	if email == "" {
		return nil, false, opErr("place_order", fmt.Errorf("cannot settle an order without purchaser.email"))
	}
	want := map[int64]int{}
	lines, _ := in["ticketings"].([]any)
	for _, l := range lines {
		m, _ := l.(map[string]any)
		typ, _ := num(m, "ticketTypeId")
		n, _ := num(m, "numberOfTicket")
		want[typ] += int(n)
	}
	var p page[Order]
	if err := c.getJSON(ctx, eventPath(evURL, "staff/orders"), url.Values{"searchString": {email}, "size": {"500"}}, &p); err != nil {
		return nil, false, opErr("place_order", err)
	}
	for i := len(p.Data) - 1; i >= 0; i-- {
		o := &p.Data[i]
		got := map[int64]int{}
		for _, t := range o.Tickets {
			got[t.TicketTypeID]++
		}
		if equalFold(o.Purchaser.Email, email) && sameCounts(got, want) {
			return &connectors.Result{Output: map[string]any{"orderId": o.OrderID}}, true, nil
		}
	}
	return nil, false, nil
}

func sameCounts(a, b map[int64]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func settleCreateAttendee(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	evURL, err := c.event(in)
	if err != nil {
		return nil, false, opErr("create_attendee", err)
	}
	typ, _ := num(in, "ticketTypeId")
	a, _, err := c.findAttendee(ctx, evURL, str(in, "externalId"), str(in, "email"), typ)
	if err != nil || a == nil || !a.live() {
		return nil, false, err
	}
	v, err := value(a)
	if err != nil {
		return nil, false, err
	}
	return &connectors.Result{Output: v, Wrote: []connectors.Record{{Subject: AttendeeSubject(a.AttendeeID), State: AttendeeFingerprint(a)}}}, true, nil
}

// settleRefund decides an in-doubt refund from the order: a full refund
// (no amount) happened when the order is refunded; a partial one when the
// order's note carries its reason (the API appends "refund: <reason>").
// A partial refund without a reason leaves no trace to tell it from an
// earlier one, so it cannot be settled: give a reason.
func settleRefund(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	evURL, err := c.event(in)
	if err != nil {
		return nil, false, err
	}
	id, _ := num(in, "orderId")
	_, partial := in["amount"]
	reason := strings.TrimSpace(str(in, "reason"))
	if partial && reason == "" {
		return nil, false, opErr("refund_order", fmt.Errorf("order %d: a partial refund without a reason cannot be looked up; check the order, then replay the run", id))
	}
	var o map[string]any
	if err := c.getJSON(ctx, eventPath(evURL, "staff/orders/%d", id), nil, &o); err != nil {
		return nil, false, opErr("refund_order", fmt.Errorf("looking up order %d: %w", id, err))
	}
	happened := false
	if reason != "" {
		note, _ := o["note"].(string)
		happened = strings.Contains(note, "refund: "+reason)
	} else {
		happened = o["status"] == "REFUNDED"
	}
	if !happened {
		return nil, false, nil
	}
	return &connectors.Result{Output: o}, true, nil
}

// settleByListing finds a created record in a listing by one field.
func settleByListing(list, field, wrap string) func(context.Context, connectors.Conn, map[string]any) (*connectors.Result, bool, error) {
	return func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
		c, err := connectors.As[*Client](conn)
		if err != nil {
			return nil, false, err
		}
		evURL, err := c.event(in)
		if err != nil {
			return nil, false, err
		}
		var items []map[string]any
		var resp any
		if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodGet, Path: eventPath(evURL, "%s", list)}, &resp); err != nil {
			return nil, false, err
		}
		switch v := resp.(type) {
		case []any:
			for _, x := range v {
				if m, ok := x.(map[string]any); ok {
					items = append(items, m)
				}
			}
		case map[string]any:
			l, _ := v[wrap].([]any)
			for _, x := range l {
				if m, ok := x.(map[string]any); ok {
					items = append(items, m)
				}
			}
		}
		want := str(in, field)
		for i := len(items) - 1; i >= 0; i-- {
			if str(items[i], field) == want {
				return &connectors.Result{Output: items[i]}, true, nil
			}
		}
		return nil, false, nil
	}
}
