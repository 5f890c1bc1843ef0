package sandbox

import (
	"strings"
	"time"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// Records are compact structs in slices with index maps: records are never
// removed (a cancelled attendee stays listed as CANCELED), so 0-based pages
// are stable and ids map to slice positions cheaply.

type ticketType struct {
	id          int64
	name, desc  string
	price       float64
	total, sold int32
	deleted     bool
}

func (t *ticketType) remaining() int32 { return max(t.total-t.sold, 0) }

// Order statuses.
const (
	orderUnpaid uint8 = iota
	orderPaid
	orderRefunded
	orderPartlyRefunded
)

var orderStatusNames = [...]string{"UNPAID", "PAID", "REFUNDED", "PARTIALLY_REFUNDED"}

type order struct {
	id                                int64
	status                            uint8
	paymentType                       string
	buyerFirst, buyerLast, buyerEmail string
	note                              string
	subtotal, fees, total             float64
	paid, refunded                    float64
	created, updated, paidAt          int64 // unix seconds; paidAt 0 when unpaid
	tickets                           []int32
}

// Attendee statuses.
const (
	attPending uint8 = iota
	attBooked
	attRefunded
	attCanceled
)

var attStatusNames = [...]string{"PENDING", "BOOKED", "REFUNDED", "CANCELED"}

type attendee struct {
	id, orderID, typeID  int64
	first, last, email   string
	externalID, barcode  string
	seat                 string
	status               uint8
	checkedIn            bool
	price                float32
	created, updated, in int64 // in: check-in time, 0 when not checked in
}

type payment struct {
	id, orderID      int64
	amount           float64
	currency, method string
	externalRef      string
	note             string
	created          int64
}

type webhook struct {
	del     *sandboxkit.Deliverer
	id      int64
	url     string
	topics  []string
	created int64
	deleted bool
}

type eventInfo struct {
	url, name, timezone, currency, status, venue string
	start, end                                   int64
}

// event is one event's whole state.
type event struct {
	info      eventInfo
	types     []ticketType
	orders    []order
	atts      []attendee
	payments  []payment
	hooks     []webhook
	typeIdx   map[int64]int32
	orderIdx  map[int64]int32
	attIdx    map[int64]int32
	payIdx    map[int64]int32
	byBarcode map[string]int32
	byEmail   map[string][]int32 // lower-cased email
	byExtID   map[string][]int32
	payByRef  map[string][]int32
}

func newEvent(info eventInfo, attendees int) *event {
	return &event{
		info:      info,
		typeIdx:   map[int64]int32{},
		orderIdx:  make(map[int64]int32, attendees),
		attIdx:    make(map[int64]int32, attendees),
		payIdx:    map[int64]int32{},
		byBarcode: make(map[string]int32, attendees),
		byEmail:   make(map[string][]int32, attendees),
		byExtID:   make(map[string][]int32, attendees),
		payByRef:  map[string][]int32{},
	}
}

func (e *event) ticketType(id int64) *ticketType {
	if i, ok := e.typeIdx[id]; ok && !e.types[i].deleted {
		return &e.types[i]
	}
	return nil
}

func (e *event) order(id int64) *order {
	if i, ok := e.orderIdx[id]; ok {
		return &e.orders[i]
	}
	return nil
}

func (e *event) typeName(id int64) string {
	if i, ok := e.typeIdx[id]; ok {
		return e.types[i].name
	}
	return ""
}

// index adds attendee i's email and external id to the look-up maps.
func (e *event) index(i int32) {
	a := &e.atts[i]
	if a.email != "" {
		k := strings.ToLower(a.email)
		e.byEmail[k] = append(e.byEmail[k], i)
	}
	if a.externalID != "" {
		e.byExtID[a.externalID] = append(e.byExtID[a.externalID], i)
	}
}

// unindex removes attendee i from the look-up maps before a change.
func (e *event) unindex(i int32) {
	a := &e.atts[i]
	drop := func(m map[string][]int32, k string) {
		l := m[k]
		for j, v := range l {
			if v == i {
				l = append(l[:j], l[j+1:]...)
				break
			}
		}
		if len(l) == 0 {
			delete(m, k)
		} else {
			m[k] = l
		}
	}
	if a.email != "" {
		drop(e.byEmail, strings.ToLower(a.email))
	}
	if a.externalID != "" {
		drop(e.byExtID, a.externalID)
	}
}

// JSON shapes (see openapi.json).

type ticketTypeJSON struct {
	ID               int64   `json:"id"`
	Name             string  `json:"name"`
	Price            float64 `json:"price"`
	RemainingTickets int32   `json:"remainingTickets"`
	TotalTickets     int32   `json:"totalTickets"`
	Description      string  `json:"description,omitempty"`
}

func (t *ticketType) json() ticketTypeJSON {
	return ticketTypeJSON{ID: t.id, Name: t.name, Price: t.price, RemainingTickets: t.remaining(), TotalTickets: t.total, Description: t.desc}
}

type attendeeJSON struct {
	AttendeeID     int64   `json:"attendeeId"`
	OrderID        int64   `json:"orderId"`
	TicketTypeID   int64   `json:"ticketTypeId"`
	TicketTypeName string  `json:"ticketTypeName"`
	FirstName      string  `json:"firstName"`
	LastName       string  `json:"lastName"`
	Email          string  `json:"email"`
	ExternalID     string  `json:"externalId"`
	Barcode        string  `json:"barcode"`
	Status         string  `json:"status"`
	Paid           bool    `json:"paid"`
	CheckedIn      bool    `json:"checkedIn"`
	CheckInTime    *string `json:"checkInTime"`
	SeatNumber     *string `json:"seatNumber"`
	CreatedAt      string  `json:"createdAt"`
	UpdatedAt      string  `json:"updatedAt"`
}

func (e *event) attendeeJSON(a *attendee) attendeeJSON {
	j := attendeeJSON{
		AttendeeID: a.id, OrderID: a.orderID, TicketTypeID: a.typeID, TicketTypeName: e.typeName(a.typeID),
		FirstName: a.first, LastName: a.last, Email: a.email, ExternalID: a.externalID, Barcode: a.barcode,
		Status: attStatusNames[a.status], CheckedIn: a.checkedIn,
		CreatedAt: stamp(a.created), UpdatedAt: stamp(a.updated),
	}
	if o := e.order(a.orderID); o != nil {
		j.Paid = o.status == orderPaid
	}
	if a.in != 0 {
		s := stamp(a.in)
		j.CheckInTime = &s
	}
	if a.seat != "" {
		s := a.seat
		j.SeatNumber = &s
	}
	return j
}

type purchaserJSON struct {
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	Email     string `json:"email"`
}

type orderTicketJSON struct {
	TicketID       int64   `json:"ticketId"`
	TicketTypeID   int64   `json:"ticketTypeId"`
	TicketTypeName string  `json:"ticketTypeName"`
	Price          float64 `json:"price"`
	Barcode        string  `json:"barcode"`
	HolderName     string  `json:"holderName"`
}

type orderJSON struct {
	OrderID        int64             `json:"orderId"`
	Status         string            `json:"status"`
	PaymentType    string            `json:"paymentType"`
	Purchaser      *purchaserJSON    `json:"purchaser,omitempty"`
	Currency       string            `json:"currency"`
	Subtotal       float64           `json:"subtotal"`
	Fees           float64           `json:"fees"`
	Total          float64           `json:"total"`
	AmountPaid     float64           `json:"amountPaid"`
	RefundedAmount float64           `json:"refundedAmount"`
	Note           string            `json:"note"`
	Tickets        []orderTicketJSON `json:"tickets"`
	CreatedAt      string            `json:"createdAt"`
	UpdatedAt      string            `json:"updatedAt"`
	PaidAt         *string           `json:"paidAt"`
}

func (e *event) orderJSON(o *order) orderJSON {
	j := orderJSON{
		OrderID: o.id, Status: orderStatusNames[o.status], PaymentType: o.paymentType,
		Currency: e.info.currency, Subtotal: o.subtotal, Fees: o.fees, Total: o.total,
		AmountPaid: o.paid, RefundedAmount: o.refunded, Note: o.note,
		Tickets:   make([]orderTicketJSON, 0, len(o.tickets)),
		CreatedAt: stamp(o.created), UpdatedAt: stamp(o.updated),
	}
	if o.buyerEmail != "" {
		j.Purchaser = &purchaserJSON{FirstName: o.buyerFirst, LastName: o.buyerLast, Email: o.buyerEmail}
	}
	if o.paidAt != 0 {
		s := stamp(o.paidAt)
		j.PaidAt = &s
	}
	for _, i := range o.tickets {
		a := &e.atts[i]
		j.Tickets = append(j.Tickets, orderTicketJSON{
			TicketID: a.id, TicketTypeID: a.typeID, TicketTypeName: e.typeName(a.typeID),
			Price: float64(a.price), Barcode: a.barcode, HolderName: strings.TrimSpace(a.first + " " + a.last),
		})
	}
	return j
}

type paymentJSON struct {
	PaymentID   int64   `json:"paymentId"`
	OrderID     int64   `json:"orderId"`
	Amount      float64 `json:"amount"`
	Currency    string  `json:"currency"`
	Method      string  `json:"method"`
	ExternalRef string  `json:"externalRef"`
	Note        string  `json:"note"`
	CreatedAt   string  `json:"createdAt"`
}

func (p *payment) json() paymentJSON {
	return paymentJSON{PaymentID: p.id, OrderID: p.orderID, Amount: p.amount, Currency: p.currency, Method: p.method, ExternalRef: p.externalRef, Note: p.note, CreatedAt: stamp(p.created)}
}

type webhookJSON struct {
	WebhookID int64    `json:"webhookId"`
	URL       string   `json:"url"`
	Topics    []string `json:"topics"`
	CreatedAt string   `json:"createdAt"`
}

func (w *webhook) json() webhookJSON {
	t := w.topics
	if t == nil {
		t = []string{}
	}
	return webhookJSON{WebhookID: w.id, URL: w.url, Topics: t, CreatedAt: stamp(w.created)}
}

type eventJSON struct {
	EventURL  string `json:"eventUrl"`
	Name      string `json:"name"`
	StartDate string `json:"startDate"`
	EndDate   string `json:"endDate"`
	Timezone  string `json:"timezone"`
	Currency  string `json:"currency"`
	Status    string `json:"status"`
	Venue     string `json:"venue"`
}

func (i *eventInfo) json() eventJSON {
	return eventJSON{EventURL: i.url, Name: i.name, StartDate: stamp(i.start), EndDate: stamp(i.end), Timezone: i.timezone, Currency: i.currency, Status: i.status, Venue: i.venue}
}

func stamp(unix int64) string { return time.Unix(unix, 0).UTC().Format(time.RFC3339) }

// barcodeFor derives a ticket's barcode from its id: unique, stable, and
// not guessable by counting (the id is scrambled).
func barcodeFor(id int64) string {
	const alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	x := uint64(id)*0x9E3779B97F4A7C15 ^ 0x5DEECE66D
	var b [8]byte
	for i := range b {
		b[i] = alphabet[x%32]
		x /= 32
	}
	return "AE-" + string(b[:])
}
