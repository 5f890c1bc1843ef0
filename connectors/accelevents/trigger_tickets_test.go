package accelevents

import (
	"testing"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/accelevents/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

func TestTicketAvailabilityChanged(t *testing.T) {
	e := newEnv(t, 100, nil)
	p := e.poller(triggerTicketAvailability, connectors.StartNow, nil)
	if evs := p.drain(); len(evs) != 0 {
		t.Fatalf("start now emitted %v", ids(evs))
	}
	if evs := p.drain(); len(evs) != 0 {
		t.Fatalf("nothing changed, yet %v", ids(evs))
	}
	types := e.ticketTypes(t)
	ga := types[0]

	// Three registrations take three General Admission tickets.
	if _, err := e.srv.Mutate(sandboxkit.Mutation{Kind: sandbox.MutateRegister, Count: 3}); err != nil {
		t.Fatal(err)
	}
	evs := p.drain()
	if len(evs) != 1 {
		t.Fatalf("%d events after 3 registrations, want 1: %v", len(evs), ids(evs))
	}
	d := evs[0].Data
	from, to := d["from"].(map[string]any), d["to"].(map[string]any)
	if evs[0].Subject != TicketTypeSubject(ga.ID) || from["remainingTickets"] != ga.RemainingTickets || to["remainingTickets"] != ga.RemainingTickets-3 ||
		d["availabilityChanged"] != true || d["priceChanged"] != false || to["price"] != ga.Price {
		t.Errorf("availability change: %+v", evs[0])
	}

	// A new price is a change of price, not of availability.
	if _, err := e.run("update_ticket_type", map[string]any{"ticketTypeId": ga.ID, "price": 149.0}); err != nil {
		t.Fatal(err)
	}
	evs = p.drain()
	if len(evs) != 1 || evs[0].Data["priceChanged"] != true || evs[0].Data["availabilityChanged"] != false ||
		evs[0].Data["from"].(map[string]any)["price"] != ga.Price || evs[0].Data["price"] != 149.0 {
		t.Fatalf("price change: %+v", evs)
	}
	// From the beginning, every ticket type is new: from is null.
	b := e.poller(triggerTicketAvailability, connectors.StartBeginning, map[string]any{"ticketTypeId": types[1].ID})
	evs = b.drain()
	if len(evs) != 1 || evs[0].Data["from"] != nil || evs[0].Data["ticketTypeId"] != types[1].ID {
		t.Fatalf("backfill of one ticket type: %+v", evs)
	}
}

func TestTicketAvailabilityEventIDs(t *testing.T) {
	e := newEnv(t, 50, nil)
	p := e.poller(triggerTicketAvailability, connectors.StartNow, nil)
	p.drain()
	ga := e.ticketTypes(t)[0]
	set := func(price float64) string {
		t.Helper()
		if _, err := e.run("update_ticket_type", map[string]any{"ticketTypeId": ga.ID, "price": price}); err != nil {
			t.Fatal(err)
		}
		evs := p.drain()
		if len(evs) != 1 {
			t.Fatalf("price %v: %d events", price, len(evs))
		}
		return evs[0].ID
	}
	a, b, c := set(150), set(160), set(150)
	if a == c || a == b {
		t.Errorf("event IDs %s, %s, %s: a ticket type back at an earlier price is a new change", a, b, c)
	}
	// A poll repeated after a crash (the same cursor and states, as the
	// store had them) names its change alike: the store drops it.
	cursor, state := p.cursor, memoryState{}
	for k, v := range p.state {
		state[k] = v
	}
	first := set(170)
	p.cursor, p.state = cursor, state
	if again := p.drain(); len(again) != 1 || again[0].ID != first {
		t.Errorf("repeated poll: %v, want the same event %s", ids(again), first)
	}
}

// ticketTypes reads the event's ticket types.
func (e *env) ticketTypes(t *testing.T) []TicketType {
	t.Helper()
	res, err := e.run("get_ticket_types", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var out []TicketType
	for _, x := range res.Output.(map[string]any)["ticketTypes"].([]any) {
		m := x.(map[string]any)
		out = append(out, TicketType{ID: m["id"].(int64), Name: m["name"].(string), Price: m["price"].(float64),
			RemainingTickets: m["remainingTickets"].(int), TotalTickets: m["totalTickets"].(int)})
	}
	return out
}
