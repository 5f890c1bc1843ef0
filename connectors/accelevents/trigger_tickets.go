package accelevents

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// ticket_availability_changed polls the event's ticketing settings (one
// request: every ticket type with its price and remaining tickets) and
// emits a change per ticket type whose remaining tickets or price differ
// from what the recipe last saw, with both values before and after.
//
// The per-subject state is "<remaining>|<price>". The cursor counts polls;
// an event is named by its ticket type, the poll that saw it and the state
// it moved to, so a poll repeated after a crash names its changes alike
// (dropped as duplicates), and a ticket type that goes back to an earlier
// state later is a new change.

const triggerTicketAvailability = "ticket_availability_changed"

func ticketAvailabilityTrigger() *connectors.TriggerSpec {
	level := func(desc string) map[string]any {
		return object(desc, props{
			"remainingTickets": prop("integer", "Tickets left."),
			"price":            prop("number", "Price per ticket."),
		}, "remainingTickets", "price")
	}
	nullable := func(s map[string]any) map[string]any {
		return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}, "description": s["description"]}
	}
	return &connectors.TriggerSpec{
		Operation: connectors.Operation{
			Name:    triggerTicketAvailability,
			Summary: "A ticket type's remaining tickets or price changed (with the values before and after).",
			Description: "Polls `GET /staff/ticketing/settings`, one request for every ticket type. A ticket type seen for the first time " +
				"counts as a change from nothing (`from` null) when the trigger starts at the beginning; with start: now it is remembered. " +
				"`availabilityChanged` and `priceChanged` say which value moved.",
			Input: input(props{
				"eventUrl":     eventURLProp,
				"ticketTypeId": prop("integer", "Only this ticket type.", "minimum", 1),
			}),
			Output: output(object("A ticket type's availability or price changed.", props{
				"ticketTypeId":        prop("integer", "The ticket type."),
				"name":                prop("string", "The ticket type's name."),
				"from":                nullable(level("Before the change; null for a ticket type seen for the first time.")),
				"to":                  level("After the change."),
				"remainingTickets":    prop("integer", "Tickets left now (to.remainingTickets)."),
				"price":               prop("number", "Price per ticket now (to.price)."),
				"totalTickets":        prop("integer", "Tickets on sale in total."),
				"available":           prop("boolean", "Whether at least one ticket is left."),
				"nearlySoldOut":       prop("boolean", "Whether at most 5 tickets, or a tenth of the total, are left."),
				"availabilityChanged": prop("boolean", "Whether remainingTickets moved."),
				"priceChanged":        prop("boolean", "Whether the price moved."),
			}, "ticketTypeId", "name", "from", "to", "remainingTickets", "price", "available", "nearlySoldOut", "availabilityChanged", "priceChanged")),
			Example: map[string]any{"ticketTypeId": 145680},
		},
		Poll:            pollTicketAvailability,
		DefaultInterval: time.Minute,
	}
}

// TicketTypeSubject is the subject of a ticket type's events and writes.
func TicketTypeSubject(id int64) string { return "ticket_type/" + strconv.FormatInt(id, 10) }

// ticketState is what availability change detection remembers.
func ticketState(t TicketType) string {
	return strconv.Itoa(t.RemainingTickets) + "|" + strconv.FormatFloat(t.Price, 'f', -1, 64)
}

func parseTicketState(s string) (remaining int, price float64, ok bool) {
	r, p, found := strings.Cut(s, "|")
	if !found {
		return 0, 0, false
	}
	n, err1 := strconv.Atoi(r)
	f, err2 := strconv.ParseFloat(p, 64)
	return n, f, err1 == nil && err2 == nil
}

type ticketCursor struct {
	Polls int64 `json:"polls"`
}

func pollTicketAvailability(ctx context.Context, conn connectors.Conn, req connectors.PollRequest) (*connectors.PollResult, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, err
	}
	evURL, err := c.event(req.Params)
	if err != nil {
		return nil, err
	}
	var cur ticketCursor
	primed := req.Start == connectors.StartBeginning
	if req.Cursor != "" {
		if err := json.Unmarshal([]byte(req.Cursor), &cur); err != nil {
			return nil, fmt.Errorf("accelevents: cursor %q is not one this trigger wrote", req.Cursor)
		}
		primed = true
	}
	var settings struct {
		TicketTypes []TicketType `json:"ticketTypes"`
	}
	if err := c.getJSON(ctx, eventPath(evURL, "staff/ticketing/settings"), nil, &settings); err != nil {
		return nil, err
	}
	only, filtered := num(req.Params, "ticketTypeId")
	var types []TicketType
	subjects := []string{}
	for _, t := range settings.TicketTypes {
		if filtered && t.ID != only {
			continue
		}
		types = append(types, t)
		subjects = append(subjects, TicketTypeSubject(t.ID))
	}
	prior := map[string]string{}
	if req.Prior != nil && len(subjects) > 0 {
		if prior, err = req.Prior.Lookup(ctx, subjects); err != nil {
			return nil, err
		}
	}
	cur.Polls++
	res := &connectors.PollResult{Total: len(types)}
	for i, t := range types {
		subject, state := subjects[i], ticketState(t)
		was, known := prior[subject]
		if known && was == state {
			continue
		}
		res.States = append(res.States, connectors.Record{Subject: subject, State: state})
		if !primed {
			continue
		}
		var from any
		availability, priceMoved := true, true
		if known {
			if r, p, ok := parseTicketState(was); ok {
				from = map[string]any{"remainingTickets": r, "price": p}
				availability, priceMoved = r != t.RemainingTickets, p != t.Price
			}
		}
		nearly := t.RemainingTickets > 0 && (t.RemainingTickets <= 5 || t.TotalTickets > 0 && t.RemainingTickets*10 <= t.TotalTickets)
		res.Events = append(res.Events, connectors.Event{
			ID:          subject + "@" + strconv.FormatInt(cur.Polls, 10) + "/" + state,
			Subject:     subject,
			Fingerprint: state,
			Time:        req.Now,
			Data: map[string]any{
				"ticketTypeId": t.ID, "name": t.Name, "from": from,
				"to":               map[string]any{"remainingTickets": t.RemainingTickets, "price": t.Price},
				"remainingTickets": t.RemainingTickets, "price": t.Price, "totalTickets": t.TotalTickets,
				"available": t.RemainingTickets > 0, "nearlySoldOut": nearly,
				"availabilityChanged": availability, "priceChanged": priceMoved,
			},
		})
	}
	b, _ := json.Marshal(cur)
	res.Cursor = string(b)
	return res, nil
}
