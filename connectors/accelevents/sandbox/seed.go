package sandbox

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis", "Radia", "Linus", "Hedy", "John", "Katherine", "Niklaus"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Ritchie", "Perlman", "Torvalds", "Lamarr", "Backus", "Johnson", "Wirth"}
)

var lowerFirst, lowerLast = lowered(firstNames), lowered(lastNames)

func lowered(names []string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = strings.ToLower(n)
	}
	return m
}

// AttendeesPerMember is the seed's scale: one member in five has registered
// for the conference.
const AttendeesPerMember = 5

// MemberTier is a ticket type on sale to the members of one Memberships
// plan, at a discount off General Admission.
type MemberTier struct {
	PlanID, Name string
	Price        float64
}

// MemberTiers are the seeded members' tiers, one per plan of the
// Memberships sandbox, priced at 10, 20 and 30% off General Admission's 199
// (what examples/accelevents/member-price-tier.yaml keeps them at).
var MemberTiers = []MemberTier{
	{PlanID: "plan_associate", Name: "Member — Associate", Price: 179},
	{PlanID: "plan_professional", Name: "Member — Professional", Price: 159},
	{PlanID: "plan_fellow", Name: "Member — Fellow", Price: 139},
}

// Seed replaces all state with one event, DemoEventURL, and its ticket
// types (General Admission with room, VIP, a nearly sold out Workshop Pass
// and the MemberTiers), orders and attendees: cfg.Members/5 attendees, most paid by card,
// some unpaid or complimentary, a few refunded, and about 1% registered
// twice under the same email (the duplicates a sync must not add to).
// Seeded attendees carry externalId "member-<n>", n from 1 to cfg.Members,
// or, when cfg.People is set, are that member, with its id as externalId.
func (s *Server) Seed(cfg sandboxkit.Seed) {
	s.Reset()
	now := cfg.Now
	if now.IsZero() {
		now = time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC)
	}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0xacce1))
	n := max(cfg.Members/AttendeesPerMember, 0)
	start := now.Add(60 * 24 * time.Hour).Truncate(24 * time.Hour).Add(9 * time.Hour)
	e := newEvent(eventInfo{
		url: DemoEventURL, name: "Annual Conference 2026", timezone: "UTC", currency: "USD", status: "PUBLISHED",
		venue: "Convention Centre, Hall B", start: start.Unix(), end: start.Add(56 * time.Hour).Unix(),
	}, n)
	e.atts = make([]attendee, 0, n+n/50)
	e.orders = make([]order, 0, n)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.events[e.info.url] = e
	s.order = append(s.order, e.info.url)
	addType := func(name, desc string, price float64, total int32) int64 {
		t := ticketType{id: s.nextID.typ, name: name, desc: desc, price: price, total: total}
		s.nextID.typ++
		e.typeIdx[t.id] = int32(len(e.types))
		e.types = append(e.types, t)
		return t.id
	}
	// Workshop seats are few: they sell out first, one seat left after the
	// seed. VIP has about a tenth of the room.
	workshopSeats := int32(max(n/20, 3))
	ga := addType("General Admission", "Access to all talks and the expo.", 199, int32(cfg.Members)+500) // room for every member to register
	vip := addType("VIP", "Front rows, speakers' dinner.", 499, int32(n/10)+25)
	ws := addType("Workshop Pass", "Hands-on workshop day; limited seats.", 99, workshopSeats)
	// The members' price tiers come last so that the public types keep their
	// ids; none is sold in the seed (members register on General Admission).
	for _, t := range MemberTiers {
		addType(t.Name, "For members on the Memberships plan "+t.PlanID+".", t.Price, int32(max(cfg.Members/10, 20)))
	}
	wsLeft := workshopSeats - 1
	wsEvery := max(n/int(wsLeft), 1)

	// A seed is not a change: no webhooks.
	s.muted = true
	defer func() { s.muted = false }()

	span := int64(90 * 24 * time.Hour / time.Second)
	created := now.Unix() - span
	step := span / int64(max(n, 1))
	for k := 0; k < n; k++ {
		member := k*AttendeesPerMember + 1 + rng.IntN(AttendeesPerMember)
		first, last := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
		id := strconv.Itoa(member)
		email := lowerFirst[first] + "." + lowerLast[last] + "." + id + "@example.com"
		ext := "member-" + id
		if cfg.People != nil {
			// The attendee is a real member of the Memberships sandbox.
			if p, ok := cfg.People(member - 1); ok {
				first, last, email, ext = p.FirstName, p.LastName, strings.ToLower(p.Email), p.ID
			}
		}
		typ := ga
		switch x := rng.IntN(100); {
		case k%wsEvery == 0 && wsLeft > 0:
			typ, wsLeft = ws, wsLeft-1
		case x < 10:
			typ = vip
		}
		if typ == vip && e.types[e.typeIdx[vip]].remaining() == 0 {
			typ = ga
		}
		payment := "CC"
		switch x := rng.IntN(100); {
		case x < 10:
			payment = "UNPAID"
		case x < 14:
			payment = "COMPLIMENTARY"
		}
		created += step/2 + rng.Int64N(step/2+1)
		s.seedOne(e, created, typ, payment, first, last, email, ext)
		if rng.IntN(100) == 0 {
			// A second registration under the same email: a duplicate.
			s.seedOne(e, created+60, ga, "CC", first, last, email, "")
		}
		if rng.IntN(50) == 0 {
			o := &e.orders[len(e.orders)-1]
			if o.status == orderPaid && o.total > 0 && typ != ws {
				o.refunded, o.status = o.paid, orderRefunded
				for _, i := range o.tickets {
					e.atts[i].status = attRefunded
					e.types[e.typeIdx[e.atts[i].typeID]].sold--
				}
			}
		}
	}
}

// seedOne books one ticket with its holder at time t. Call with s.mu held.
func (s *Server) seedOne(e *event, t int64, typ int64, payment, first, last, email, ext string) {
	o, err := s.newOrder(e, t, payment, []orderLine{{NumberOfTicket: 1, TicketTypeID: typ}}, purchaserJSON{first, last, email}, "")
	if err != nil {
		return // sold out: this registration never happened
	}
	i := o.tickets[0]
	a := &e.atts[i]
	a.first, a.last, a.email, a.externalID, a.status = first, last, email, ext, attBooked
	e.index(i)
}

// Mutate kinds.
const (
	// MutateRegister: Count registrations arrive from the event site (a
	// paid General Admission order with holder data). Args: email,
	// externalId, firstName, lastName, ticketTypeId.
	MutateRegister = "register"
	// MutateCheckIn: Count booked attendees not yet checked in arrive at the
	// door, oldest first. Args: barcode (one ticket).
	MutateCheckIn = "check_in"
	// MutatePay: Count unpaid orders are paid, oldest first. Args: orderId.
	MutatePay = "pay"
	// MutateReprice: the organiser changes a ticket type's price. Args:
	// price (required), ticketTypeId (default General Admission). No
	// webhook: Accelevents has none for ticket types; polling sees it.
	MutateReprice = "reprice"
)

// Mutate changes data the way people do; each change sends its webhook.
func (s *Server) Mutate(m sandboxkit.Mutation) (map[string]any, error) {
	count := max(m.Count, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.events[DemoEventURL]
	if e == nil {
		return nil, fmt.Errorf("accelevents: mutate %q: the sandbox has no event %q: seed it first", m.Kind, DemoEventURL)
	}
	str := func(k string) string { v, _ := m.Args[k].(string); return v }
	switch m.Kind {
	case MutateRegister:
		typ := e.types[0].id
		if v, ok := m.Args["ticketTypeId"].(float64); ok {
			typ = int64(v)
		}
		var ids []int64
		for k := 0; k < count; k++ {
			seq := s.nextID.att
			first, last := firstNames[seq%int64(len(firstNames))], lastNames[(seq/3)%int64(len(lastNames))]
			email := fmt.Sprintf("walkin.%d@example.com", seq)
			if v := str("firstName"); v != "" {
				first = v
			}
			if v := str("lastName"); v != "" {
				last = v
			}
			if v := str("email"); v != "" {
				email = v
			}
			o, err := s.newOrder(e, s.unix(), "CC", []orderLine{{NumberOfTicket: 1, TicketTypeID: typ}}, purchaserJSON{first, last, email}, "")
			if err != nil {
				return nil, fmt.Errorf("accelevents: mutate register: %s", err.msg)
			}
			i := o.tickets[0]
			a := &e.atts[i]
			a.first, a.last, a.email, a.externalID, a.status = first, last, email, str("externalId"), attBooked
			e.index(i)
			s.emit(e, TopicRegistration, e.attendeeJSON(a))
			ids = append(ids, a.id)
		}
		return map[string]any{"kind": m.Kind, "changed": len(ids), "attendeeIds": ids}, nil
	case MutateCheckIn:
		var ids []int64
		for i := range e.atts {
			if len(ids) == count {
				break
			}
			a := &e.atts[i]
			if a.status != attBooked || a.checkedIn || (str("barcode") != "" && a.barcode != str("barcode")) {
				continue
			}
			a.checkedIn, a.in = true, s.unix()
			a.updated = a.in
			s.emit(e, TopicCheckedIn, e.attendeeJSON(a))
			ids = append(ids, a.id)
		}
		return map[string]any{"kind": m.Kind, "changed": len(ids), "attendeeIds": ids}, nil
	case MutatePay:
		var ids []int64
		want, _ := m.Args["orderId"].(float64)
		for i := range e.orders {
			if len(ids) == count {
				break
			}
			o := &e.orders[i]
			if o.status != orderUnpaid || (want != 0 && o.id != int64(want)) {
				continue
			}
			s.markPaid(e, o, round2(o.total-o.paid), s.unix())
			ids = append(ids, o.id)
		}
		return map[string]any{"kind": m.Kind, "changed": len(ids), "orderIds": ids}, nil
	case MutateReprice:
		price, ok := m.Args["price"].(float64)
		if !ok || price < 0 {
			return nil, fmt.Errorf("accelevents: mutate reprice: args.price must be a number, 0 or more, got %v", m.Args["price"])
		}
		id := e.types[0].id
		if v, ok := m.Args["ticketTypeId"].(float64); ok {
			id = int64(v)
		}
		i, ok := e.typeIdx[id]
		if !ok || e.types[i].deleted {
			return nil, fmt.Errorf("accelevents: mutate reprice: no ticket type %d", id)
		}
		t := &e.types[i]
		from := t.price
		t.price = price
		return map[string]any{"kind": m.Kind, "changed": 1, "ticketTypeId": id, "from": from, "to": price}, nil
	}
	kinds := []string{MutateRegister, MutateCheckIn, MutatePay, MutateReprice}
	sort.Strings(kinds)
	return nil, fmt.Errorf("accelevents: unknown mutation kind %q (kinds: %s)", m.Kind, strings.Join(kinds, ", "))
}
