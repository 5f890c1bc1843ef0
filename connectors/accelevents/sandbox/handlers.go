package sandbox

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// apiError is an answer in Accelevents' error body.
type apiError struct {
	status int
	code   string
	msg    string
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "4000001", fmt.Sprintf(format, args...)}
}

var (
	errEventNotFound    = &apiError{http.StatusNotFound, "4040200", "Event not found."}
	errOrderNotFound    = &apiError{http.StatusNotFound, "4040300", "Order not found."}
	errAttendeeNotFound = &apiError{http.StatusNotFound, "4040400", "Attendee not found."}
	errTypeNotFound     = &apiError{http.StatusNotFound, "4040500", "Ticket type not found."}
	errWebhookNotFound  = &apiError{http.StatusNotFound, "4040600", "Webhook not found."}
	errBarcodeMissing   = &apiError{http.StatusNotAcceptable, "4060405", "Barcode does not exist."}
	errTicketUsed       = &apiError{http.StatusNotAcceptable, "4060406", "Ticket has already been used."}
	errTicketRefunded   = &apiError{http.StatusNotAcceptable, "4060408", "Ticket is refunded."}
)

// handler serves one route of one event; it returns the answer or an error.
type handler func(r *http.Request, e *event) (int, any, *apiError)

func (s *Server) routes() {
	rt := s.router
	E := "/rest/events/{eventUrl}"
	rt.HandleFunc("GET /rest/events", s.authed(s.listEvents))
	s.read("GET "+E, func(_ *http.Request, e *event) (int, any, *apiError) { return 200, e.info.json(), nil })
	s.read("GET "+E+"/staff/ticketing/settings", s.settings)
	s.read("POST "+E+"/calculateFee", s.calculateFee)
	s.write("POST "+E+"/staff/ticketing/order", s.placeOrder)
	s.read("GET "+E+"/staff/ticketing/order/{orderId}/formattributes", s.formAttributes)
	s.write("POST "+E+"/staff/ticketing/order/{orderId}/holders", s.submitHolders)
	s.read("GET "+E+"/staff/allAttendees", s.allAttendees)
	s.read("GET "+E+"/staff/attendees", s.searchAttendees)
	s.write("POST "+E+"/staff/attendees", s.createAttendee)
	s.read("GET "+E+"/staff/attendees/{attendeeId}", on(attendeeAt, s.getAttendee))
	s.write("PUT "+E+"/staff/attendees/{attendeeId}", on(attendeeAt, s.updateAttendee))
	s.write("DELETE "+E+"/staff/attendees/{attendeeId}", on(attendeeAt, s.deleteAttendee))
	s.read("GET "+E+"/staff/orders", s.listOrders)
	s.read("GET "+E+"/staff/orders/{orderId}", on(orderAt, s.getOrder))
	s.write("POST "+E+"/staff/orders/{orderId}/refund", on(orderAt, s.refundOrder))
	s.read("GET "+E+"/staff/orders/{orderId}/payments", on(orderAt, s.orderPayments))
	s.write("POST "+E+"/staff/orders/{orderId}/payments", on(orderAt, s.recordPayment))
	s.read("GET "+E+"/staff/payments", s.searchPayments)
	s.read("GET "+E+"/staff/ticketTypes", s.listTypes)
	s.write("POST "+E+"/staff/ticketTypes", s.createType)
	s.read("GET "+E+"/staff/ticketTypes/{ticketTypeId}", on(typeAt, s.getType))
	s.write("PUT "+E+"/staff/ticketTypes/{ticketTypeId}", on(typeAt, s.updateType))
	s.write("DELETE "+E+"/staff/ticketTypes/{ticketTypeId}", on(typeAt, s.deleteType))
	s.write("GET "+E+"/staff/checkin/barcode/{barcode}/checkin/{flag}", s.checkIn)
	s.read("GET "+E+"/staff/checkin/barcode/{barcode}", s.ticketByBarcode)
	s.read("GET "+E+"/staff/checkin/summary", s.checkinSummary)
	s.read("GET "+E+"/webhooks", s.listHooks)
	s.write("POST "+E+"/webhooks", s.createHook)
	s.read("GET "+E+"/webhooks/{webhookId}", on(hookAt, s.getHook))
	s.write("PUT "+E+"/webhooks/{webhookId}", on(hookAt, s.updateHook))
	s.write("DELETE "+E+"/webhooks/{webhookId}", on(hookAt, s.deleteHook))
	rt.HandleFunc("/", s.authed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "4040000", "No such endpoint: "+r.Method+" "+r.URL.Path)
	}))
}

// authorized accepts the key the three ways public clients send it.
func authorized(r *http.Request) bool {
	key := r.Header.Get("Key")
	if key == "" {
		key = r.Header.Get("Authorization")
		if len(key) > 7 && strings.EqualFold(key[:7], "bearer ") {
			key = key[7:]
		}
	}
	return key != "" && subtle.ConstantTimeCompare([]byte(key), []byte(DemoKey)) == 1
}

func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r) {
			writeError(w, http.StatusUnauthorized, "4010101", "Not authorized. Check your API key.")
			return
		}
		h(w, r)
	}
}

func (s *Server) read(pattern string, h handler)  { s.route(pattern, h, false) }
func (s *Server) write(pattern string, h handler) { s.route(pattern, h, true) }

func (s *Server) route(pattern string, h handler, writes bool) {
	s.router.HandleFunc(pattern, s.authed(func(w http.ResponseWriter, r *http.Request) {
		if writes {
			s.mu.Lock()
			defer s.mu.Unlock()
		} else {
			s.mu.RLock()
			defer s.mu.RUnlock()
		}
		e := s.events[r.PathValue("eventUrl")]
		if e == nil {
			writeError(w, errEventNotFound.status, errEventNotFound.code, errEventNotFound.msg)
			return
		}
		status, out, err := h(r, e)
		if err != nil {
			writeError(w, err.status, err.code, err.msg)
			return
		}
		sandboxkit.WriteJSON(w, status, out)
	}))
}

// on adapts a handler of one record of the route (an attendee, an order, a
// ticket type, a webhook) to a route handler: find looks the record up and
// gives the 404 when there is none.
func on[T any](find func(*http.Request, *event) (T, *apiError), h func(*http.Request, *event, T) (int, any, *apiError)) handler {
	return func(r *http.Request, e *event) (int, any, *apiError) {
		x, err := find(r, e)
		if err != nil {
			return 0, nil, err
		}
		return h(r, e, x)
	}
}

// byPathID makes the find of on for records kept by id: it reads the id
// from the path wildcard param; a malformed or unknown id is missing.
func byPathID[T any](param string, missing *apiError, get func(e *event, id int64) (T, bool)) func(*http.Request, *event) (T, *apiError) {
	return func(r *http.Request, e *event) (T, *apiError) {
		var none T
		id, err := pathID(r, param, missing)
		if err != nil {
			return none, err
		}
		x, ok := get(e, id)
		if !ok {
			return none, missing
		}
		return x, nil
	}
}

// present adapts a look-up that answers nil for an unknown id.
func present[T any](get func(e *event, id int64) *T) func(e *event, id int64) (*T, bool) {
	return func(e *event, id int64) (*T, bool) {
		x := get(e, id)
		return x, x != nil
	}
}

var (
	attendeeAt = byPathID("attendeeId", errAttendeeNotFound, func(e *event, id int64) (int32, bool) {
		i, ok := e.attIdx[id]
		return i, ok
	})
	orderAt = byPathID("orderId", errOrderNotFound, present((*event).order))
	typeAt  = byPathID("ticketTypeId", errTypeNotFound, present((*event).ticketType))
	hookAt  = byPathID("webhookId", errWebhookNotFound, present((*event).hook))
)

// Request helpers.

func decode(r *http.Request, v any) *apiError {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		return badRequest("request body is not valid JSON: %v", err)
	}
	return nil
}

func pathID(r *http.Request, name string, notFound *apiError) (int64, *apiError) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil {
		return 0, notFound
	}
	return id, nil
}

func pageParams(r *http.Request) (page, size int, err *apiError) {
	q := r.URL.Query()
	page, size = 0, 100
	if v := q.Get("page"); v != "" {
		n, e := strconv.Atoi(v)
		if e != nil || n < 0 {
			return 0, 0, badRequest("page must be a whole number from 0, got %q", v)
		}
		page = n
	}
	if v := q.Get("size"); v != "" {
		n, e := strconv.Atoi(v)
		if e != nil || n < 1 || n > 500 {
			return 0, 0, badRequest("size must be from 1 to 500, got %q", v)
		}
		size = n
	}
	return page, size, nil
}

// filteredPage returns one 0-based page of the records keep accepts,
// rendered, and how many it accepts; a nil keep accepts all, without a scan.
func filteredPage[T, J any](records []T, page, size int, keep func(*T) bool, render func(*T) J) (data []J, filtered int) {
	data = make([]J, 0, size)
	if keep == nil {
		lo, hi := window(len(records), page, size)
		for i := lo; i < hi; i++ {
			data = append(data, render(&records[i]))
		}
		return data, len(records)
	}
	lo := page * size
	for i := range records {
		if !keep(&records[i]) {
			continue
		}
		if filtered >= lo && filtered < lo+size {
			data = append(data, render(&records[i]))
		}
		filtered++
	}
	return data, filtered
}

// window returns the bounds of a 0-based page over n records.
func window(n, page, size int) (lo, hi int) {
	lo = min(page*size, n)
	return lo, min(lo+size, n)
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// success is the answer of a delete or cancel.
func success(message string) map[string]any {
	return map[string]any{"success": true, "message": message}
}

func (s *Server) unix() int64 { return s.now().Unix() }

// Events.

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	page, size, err := pageParams(r)
	if err != nil {
		writeError(w, err.status, err.code, err.msg)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	lo, hi := window(len(s.order), page, size)
	data := make([]eventJSON, 0, hi-lo)
	for _, u := range s.order[lo:hi] {
		data = append(data, s.events[u].info.json())
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"data": data, "recordsTotal": len(s.order)})
}

// Ticketing.

func (s *Server) liveTypes(e *event) []ticketTypeJSON {
	out := []ticketTypeJSON{}
	for i := range e.types {
		if !e.types[i].deleted {
			out = append(out, e.types[i].json())
		}
	}
	return out
}

func (s *Server) settings(_ *http.Request, e *event) (int, any, *apiError) {
	return 200, map[string]any{"eventUrl": e.info.url, "currency": e.info.currency, "ticketTypes": s.liveTypes(e)}, nil
}

type feeLine struct {
	TicketingTypeID int64   `json:"ticketingTypeId"`
	TicketQuantity  int     `json:"ticketQuantity"`
	TicketPrice     float64 `json:"ticketPrice"`
	ProcessingFee   float64 `json:"processingFee"`
	ServiceFee      float64 `json:"serviceFee"`
	TotalPrice      float64 `json:"totalPrice"`
}

// fees prices a line: card processing 2.9% + 0.30 and a 1.00 service fee
// per paid ticket; free tickets carry no fee.
func fees(price float64, qty int) (processing, service float64) {
	if price <= 0 {
		return 0, 0
	}
	return round2((price*0.029 + 0.30) * float64(qty)), float64(qty)
}

func (s *Server) calculateFee(r *http.Request, e *event) (int, any, *apiError) {
	var in []struct {
		TicketQuantity  int     `json:"ticketQuantity"`
		TicketingTypeID int64   `json:"ticketingTypeId"`
		TicketPrice     float64 `json:"ticketPrice"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if len(in) == 0 {
		return 0, nil, badRequest("body must list at least one ticket line")
	}
	out := make([]feeLine, 0, len(in))
	for i, l := range in {
		if l.TicketQuantity < 1 {
			return 0, nil, badRequest("[%d].ticketQuantity must be at least 1", i)
		}
		if e.ticketType(l.TicketingTypeID) == nil {
			return 0, nil, errTypeNotFound
		}
		p, sv := fees(l.TicketPrice, l.TicketQuantity)
		out = append(out, feeLine{l.TicketingTypeID, l.TicketQuantity, l.TicketPrice, p, sv, round2(l.TicketPrice*float64(l.TicketQuantity) + p + sv)})
	}
	return 200, out, nil
}

type orderLine struct {
	NumberOfTicket int     `json:"numberOfTicket"`
	TicketTypeID   int64   `json:"ticketTypeId"`
	Price          float64 `json:"price"`
}

// newOrder books lines for a purchaser: it checks availability first so
// that a refused order changes nothing. Call with s.mu held.
func (s *Server) newOrder(e *event, now int64, paymentType string, lines []orderLine, buyer purchaserJSON, note string) (*order, *apiError) {
	for i, l := range lines {
		if l.NumberOfTicket < 1 {
			return nil, badRequest("ticketings[%d].numberOfTicket must be at least 1", i)
		}
		t := e.ticketType(l.TicketTypeID)
		if t == nil {
			return nil, errTypeNotFound
		}
		if int(t.remaining()) < l.NumberOfTicket {
			return nil, &apiError{http.StatusNotAcceptable, "4060301", fmt.Sprintf("Only %d tickets left for %s.", t.remaining(), t.name)}
		}
	}
	o := order{id: s.nextID.order, paymentType: paymentType, buyerFirst: buyer.FirstName, buyerLast: buyer.LastName, buyerEmail: buyer.Email, note: note, created: now, updated: now}
	s.nextID.order++
	for _, l := range lines {
		t := e.ticketType(l.TicketTypeID)
		price := t.price
		if paymentType == "COMPLIMENTARY" {
			price = 0
		}
		p, sv := fees(price, l.NumberOfTicket)
		o.subtotal += price * float64(l.NumberOfTicket)
		o.fees += p + sv
		t.sold += int32(l.NumberOfTicket)
		for range l.NumberOfTicket {
			a := attendee{id: s.nextID.att, orderID: o.id, typeID: t.id, status: attPending, price: float32(price), created: now, updated: now}
			s.nextID.att++
			a.barcode = barcodeFor(a.id)
			i := int32(len(e.atts))
			e.atts = append(e.atts, a)
			e.attIdx[a.id] = i
			e.byBarcode[a.barcode] = i
			o.tickets = append(o.tickets, i)
		}
	}
	o.subtotal, o.fees = round2(o.subtotal), round2(o.fees)
	o.total = round2(o.subtotal + o.fees)
	e.orderIdx[o.id] = int32(len(e.orders))
	e.orders = append(e.orders, o)
	op := &e.orders[len(e.orders)-1]
	switch paymentType {
	case "CC", "CASH", "COMPLIMENTARY":
		s.markPaid(e, op, op.total, now)
	}
	return op, nil
}

// markPaid adds amount to an order and, when it is covered, makes it PAID
// and announces it. Call with s.mu held.
func (s *Server) markPaid(e *event, o *order, amount float64, now int64) {
	o.paid = round2(o.paid + amount)
	o.updated = now
	if o.status == orderUnpaid && o.paid >= o.total {
		o.status, o.paidAt = orderPaid, o.updated
		s.emit(e, TopicOrderPaid, e.orderJSON(o))
	}
}

func (s *Server) placeOrder(r *http.Request, e *event) (int, any, *apiError) {
	var in struct {
		ClientDate  string        `json:"clientDate"`
		PaymentType string        `json:"paymentType"`
		Ticketings  []orderLine   `json:"ticketings"`
		Note        string        `json:"note"`
		Purchaser   purchaserJSON `json:"purchaser"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	switch in.PaymentType {
	case "CC", "CASH", "COMPLIMENTARY", "UNPAID":
	default:
		return 0, nil, badRequest("paymentType must be CC, CASH, COMPLIMENTARY or UNPAID, got %q", in.PaymentType)
	}
	if len(in.Ticketings) == 0 {
		return 0, nil, badRequest("ticketings must list at least one ticket line")
	}
	if in.ClientDate != "" {
		if _, err := time.Parse("02/01/2006 15:04:05", in.ClientDate); err != nil {
			return 0, nil, badRequest("clientDate must be dd/MM/yyyy HH:mm:ss, got %q", in.ClientDate)
		}
	}
	o, err := s.newOrder(e, s.unix(), in.PaymentType, in.Ticketings, in.Purchaser, in.Note)
	if err != nil {
		return 0, nil, err
	}
	return 200, map[string]int64{"orderId": o.id}, nil
}

var holderAttributes = []map[string]any{
	{"name": "firstName", "label": "First Name", "type": "text", "mandatory": true},
	{"name": "lastName", "label": "Last Name", "type": "text", "mandatory": true},
	{"name": "emailAddress", "label": "Email", "type": "email", "mandatory": true},
	{"name": "externalId", "label": "Member ID", "type": "text", "mandatory": false},
}

func (s *Server) formAttributes(r *http.Request, e *event) (int, any, *apiError) {
	id, err := pathID(r, "orderId", errOrderNotFound)
	if err != nil {
		return 0, nil, err
	}
	o := e.order(id)
	if o == nil {
		return 0, nil, errOrderNotFound
	}
	tickets := make([]map[string]any, 0, len(o.tickets))
	for _, i := range o.tickets {
		a := &e.atts[i]
		tickets = append(tickets, map[string]any{"ticketId": a.id, "ticketTypeId": a.typeID, "holderSubmitted": a.status != attPending})
	}
	return 200, map[string]any{"orderId": o.id, "holderAttributes": holderAttributes, "tickets": tickets}, nil
}

func validEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at < len(s)-1 && !strings.ContainsAny(s, " \t\n")
}

func (s *Server) submitHolders(r *http.Request, e *event) (int, any, *apiError) {
	id, err := pathID(r, "orderId", errOrderNotFound)
	if err != nil {
		return 0, nil, err
	}
	o := e.order(id)
	if o == nil {
		return 0, nil, errOrderNotFound
	}
	var in struct {
		Holders []struct {
			TicketID     int64  `json:"ticketId"`
			FirstName    string `json:"firstName"`
			LastName     string `json:"lastName"`
			EmailAddress string `json:"emailAddress"`
			ExternalID   string `json:"externalId"`
		} `json:"holders"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if len(in.Holders) == 0 {
		return 0, nil, badRequest("holders must list at least one holder")
	}
	// Validate and assign every holder before changing anything.
	targets := make([]int32, len(in.Holders))
	taken := map[int32]bool{}
	for k, h := range in.Holders {
		switch {
		case strings.TrimSpace(h.FirstName) == "":
			return 0, nil, badRequest("holders[%d].firstName is required", k)
		case strings.TrimSpace(h.LastName) == "":
			return 0, nil, badRequest("holders[%d].lastName is required", k)
		case !validEmail(h.EmailAddress):
			return 0, nil, badRequest("holders[%d].emailAddress must be an email address, got %q", k, h.EmailAddress)
		}
		found := int32(-1)
		for _, i := range o.tickets {
			a := &e.atts[i]
			if taken[i] {
				continue
			}
			if h.TicketID != 0 && a.id == h.TicketID || h.TicketID == 0 && a.status == attPending {
				found = i
				break
			}
		}
		if found < 0 {
			if h.TicketID != 0 {
				return 0, nil, badRequest("holders[%d].ticketId %d is not a ticket of order %d", k, h.TicketID, o.id)
			}
			return 0, nil, badRequest("holders[%d]: order %d has no ticket left without holder data", k, o.id)
		}
		taken[found] = true
		targets[k] = found
	}
	now := s.unix()
	for k, h := range in.Holders {
		i := targets[k]
		e.unindex(i)
		a := &e.atts[i]
		a.first, a.last, a.email, a.externalID = strings.TrimSpace(h.FirstName), strings.TrimSpace(h.LastName), h.EmailAddress, h.ExternalID
		a.updated = now
		e.index(i)
		if a.status == attPending {
			a.status = attBooked
			s.emit(e, TopicRegistration, e.attendeeJSON(a))
		}
	}
	o.updated = now
	return 200, e.orderJSON(o), nil
}

// Attendees.

func matches(e *event, a *attendee, needle string) bool {
	if needle == "" {
		return true
	}
	if strconv.FormatInt(a.orderID, 10) == needle || strings.EqualFold(a.barcode, needle) {
		return true
	}
	for _, f := range []string{a.first + " " + a.last, a.email, a.externalID} {
		if strings.Contains(strings.ToLower(f), needle) {
			return true
		}
	}
	return false
}

func (s *Server) allAttendees(r *http.Request, e *event) (int, any, *apiError) {
	page, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	needle := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("searchString")))
	var keep func(*attendee) bool
	if needle != "" {
		keep = func(a *attendee) bool { return matches(e, a, needle) }
	}
	data, filtered := filteredPage(e.atts, page, size, keep, e.attendeeJSON)
	return 200, map[string]any{"data": data, "recordsTotal": len(e.atts), "recordsFiltered": filtered}, nil
}

func (s *Server) searchAttendees(r *http.Request, e *event) (int, any, *apiError) {
	q := r.URL.Query()
	var typeID, orderID int64
	for name, dst := range map[string]*int64{"ticketTypeId": &typeID, "orderId": &orderID} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, nil, badRequest("%s must be a number, got %q", name, v)
			}
			*dst = n
		}
	}
	ext, email := q.Get("externalId"), strings.ToLower(q.Get("email"))
	var candidates []int32
	switch {
	case ext != "":
		candidates = e.byExtID[ext]
	case email != "":
		candidates = e.byEmail[email]
	case orderID != 0:
		if o := e.order(orderID); o != nil {
			candidates = o.tickets
		}
	default:
		if typeID == 0 {
			return 0, nil, badRequest("give at least one of externalId, email, ticketTypeId, orderId")
		}
		for i := range e.atts {
			candidates = append(candidates, int32(i))
		}
	}
	data := []attendeeJSON{}
	for _, i := range candidates {
		a := &e.atts[i]
		if email != "" && strings.ToLower(a.email) != email || typeID != 0 && a.typeID != typeID || orderID != 0 && a.orderID != orderID {
			continue
		}
		data = append(data, e.attendeeJSON(a))
	}
	return 200, map[string]any{"data": data, "recordsTotal": len(e.atts), "recordsFiltered": len(data)}, nil
}

func (s *Server) createAttendee(r *http.Request, e *event) (int, any, *apiError) {
	var in struct {
		TicketTypeID int64  `json:"ticketTypeId"`
		FirstName    string `json:"firstName"`
		LastName     string `json:"lastName"`
		Email        string `json:"email"`
		ExternalID   string `json:"externalId"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	switch {
	case in.TicketTypeID == 0:
		return 0, nil, badRequest("ticketTypeId is required")
	case strings.TrimSpace(in.FirstName) == "":
		return 0, nil, badRequest("firstName is required")
	case strings.TrimSpace(in.LastName) == "":
		return 0, nil, badRequest("lastName is required")
	case !validEmail(in.Email):
		return 0, nil, badRequest("email must be an email address, got %q", in.Email)
	}
	o, err := s.newOrder(e, s.unix(), "COMPLIMENTARY", []orderLine{{NumberOfTicket: 1, TicketTypeID: in.TicketTypeID}}, purchaserJSON{in.FirstName, in.LastName, in.Email}, "")
	if err != nil {
		return 0, nil, err
	}
	i := o.tickets[0]
	a := &e.atts[i]
	a.first, a.last, a.email, a.externalID, a.status = strings.TrimSpace(in.FirstName), strings.TrimSpace(in.LastName), in.Email, in.ExternalID, attBooked
	e.index(i)
	j := e.attendeeJSON(a)
	s.emit(e, TopicRegistration, j)
	return 200, j, nil
}

func (s *Server) getAttendee(_ *http.Request, e *event, i int32) (int, any, *apiError) {
	return 200, e.attendeeJSON(&e.atts[i]), nil
}

func (s *Server) updateAttendee(r *http.Request, e *event, i int32) (int, any, *apiError) {
	var in struct {
		FirstName, LastName, Email, ExternalID, SeatNumber *string
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	switch {
	case in.FirstName != nil && strings.TrimSpace(*in.FirstName) == "":
		return 0, nil, badRequest("firstName must not be empty")
	case in.LastName != nil && strings.TrimSpace(*in.LastName) == "":
		return 0, nil, badRequest("lastName must not be empty")
	case in.Email != nil && !validEmail(*in.Email):
		return 0, nil, badRequest("email must be an email address, got %q", *in.Email)
	}
	e.unindex(i)
	a := &e.atts[i]
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = strings.TrimSpace(*v)
		}
	}
	set(&a.first, in.FirstName)
	set(&a.last, in.LastName)
	set(&a.email, in.Email)
	set(&a.externalID, in.ExternalID)
	set(&a.seat, in.SeatNumber)
	a.updated = s.unix()
	e.index(i)
	if a.status == attPending && a.first != "" && a.last != "" && a.email != "" {
		a.status = attBooked
		s.emit(e, TopicRegistration, e.attendeeJSON(a))
	}
	return 200, e.attendeeJSON(a), nil
}

func (s *Server) deleteAttendee(_ *http.Request, e *event, i int32) (int, any, *apiError) {
	a := &e.atts[i]
	if a.status != attCanceled && a.status != attRefunded {
		if t := e.ticketType(a.typeID); t != nil {
			t.sold--
		}
	}
	if a.status != attCanceled {
		a.status, a.updated = attCanceled, s.unix()
	}
	return 200, success(fmt.Sprintf("Attendee %d canceled.", a.id)), nil
}

// Orders.

func (s *Server) listOrders(r *http.Request, e *event) (int, any, *apiError) {
	page, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	needle := strings.ToLower(strings.TrimSpace(q.Get("searchString")))
	day := q.Get("searchDate")
	if day != "" {
		if _, err := time.Parse("2006-01-02", day); err != nil {
			return 0, nil, badRequest("searchDate must be yyyy-MM-dd, got %q", day)
		}
	}
	keep := func(o *order) bool {
		if day != "" && stamp(o.created)[:10] != day {
			return false
		}
		if needle == "" {
			return true
		}
		if strconv.FormatInt(o.id, 10) == needle {
			return true
		}
		return strings.Contains(strings.ToLower(o.buyerFirst+" "+o.buyerLast), needle) || strings.Contains(strings.ToLower(o.buyerEmail), needle)
	}
	if needle == "" && day == "" {
		keep = nil
	}
	data, filtered := filteredPage(e.orders, page, size, keep, e.orderJSON)
	return 200, map[string]any{"data": data, "recordsTotal": len(e.orders), "recordsFiltered": filtered}, nil
}

func (s *Server) getOrder(_ *http.Request, e *event, o *order) (int, any, *apiError) {
	return 200, e.orderJSON(o), nil
}

func (s *Server) refundOrder(r *http.Request, e *event, o *order) (int, any, *apiError) {
	var in struct {
		Amount *float64 `json:"amount"`
		Reason string   `json:"reason"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	refundable := round2(o.paid - o.refunded)
	if o.status == orderRefunded || refundable <= 0 {
		return 0, nil, badRequest("order %d has nothing left to refund", o.id)
	}
	amount := refundable
	if in.Amount != nil {
		if *in.Amount <= 0 || *in.Amount > refundable {
			return 0, nil, badRequest("amount must be more than 0 and at most %.2f", refundable)
		}
		amount = *in.Amount
	}
	o.refunded = round2(o.refunded + amount)
	o.updated = s.unix()
	if o.refunded >= o.paid {
		o.status = orderRefunded
		for _, i := range o.tickets {
			a := &e.atts[i]
			if a.status == attBooked || a.status == attPending {
				a.status, a.updated = attRefunded, o.updated
				if t := e.ticketType(a.typeID); t != nil {
					t.sold--
				}
			}
		}
	} else {
		o.status = orderPartlyRefunded
	}
	if in.Reason != "" {
		o.note = strings.TrimSpace(o.note + "\nrefund: " + in.Reason)
	}
	return 200, e.orderJSON(o), nil
}

func (s *Server) orderPayments(_ *http.Request, e *event, o *order) (int, any, *apiError) {
	data := []paymentJSON{}
	for i := range e.payments {
		if e.payments[i].orderID == o.id {
			data = append(data, e.payments[i].json())
		}
	}
	return 200, map[string]any{"data": data, "recordsTotal": len(data)}, nil
}

// recordPayment stores every call: like the real API it has no
// idempotency key, so a blind re-send makes a duplicate (see Stats).
func (s *Server) recordPayment(r *http.Request, e *event, o *order) (int, any, *apiError) {
	var in struct {
		Amount      float64 `json:"amount"`
		Currency    string  `json:"currency"`
		Method      string  `json:"method"`
		ExternalRef string  `json:"externalRef"`
		Note        string  `json:"note"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	switch {
	case in.Amount <= 0:
		return 0, nil, badRequest("amount must be more than 0")
	case strings.TrimSpace(in.ExternalRef) == "":
		return 0, nil, badRequest("externalRef is required")
	case o.status == orderRefunded:
		return 0, nil, badRequest("order %d is refunded", o.id)
	}
	if in.Currency == "" {
		in.Currency = e.info.currency
	}
	p := payment{id: s.nextID.pay, orderID: o.id, amount: round2(in.Amount), currency: in.Currency, method: in.Method, externalRef: in.ExternalRef, note: in.Note, created: s.unix()}
	s.nextID.pay++
	i := int32(len(e.payments))
	e.payments = append(e.payments, p)
	e.payIdx[p.id] = i
	e.payByRef[p.externalRef] = append(e.payByRef[p.externalRef], i)
	s.markPaid(e, o, p.amount, p.created)
	return http.StatusCreated, p.json(), nil
}

func (s *Server) searchPayments(r *http.Request, e *event) (int, any, *apiError) {
	ref := r.URL.Query().Get("externalRef")
	if ref == "" {
		return 0, nil, badRequest("externalRef is required")
	}
	data := []paymentJSON{}
	for _, i := range e.payByRef[ref] {
		data = append(data, e.payments[i].json())
	}
	return 200, map[string]any{"data": data, "recordsTotal": len(data)}, nil
}

// Ticket types.

func (s *Server) listTypes(_ *http.Request, e *event) (int, any, *apiError) {
	return 200, s.liveTypes(e), nil
}

type typeInput struct {
	Name         *string  `json:"name"`
	Price        *float64 `json:"price"`
	TotalTickets *int32   `json:"totalTickets"`
	Description  *string  `json:"description"`
}

func (in *typeInput) check(create bool, sold int32) *apiError {
	switch {
	case create && (in.Name == nil || in.Price == nil || in.TotalTickets == nil):
		return badRequest("name, price and totalTickets are required")
	case in.Name != nil && strings.TrimSpace(*in.Name) == "":
		return badRequest("name must not be empty")
	case in.Price != nil && *in.Price < 0:
		return badRequest("price must not be negative")
	case in.TotalTickets != nil && *in.TotalTickets < sold:
		return badRequest("totalTickets must be at least the %d tickets sold", sold)
	}
	return nil
}

func (in *typeInput) apply(t *ticketType) {
	if in.Name != nil {
		t.name = strings.TrimSpace(*in.Name)
	}
	if in.Price != nil {
		t.price = *in.Price
	}
	if in.TotalTickets != nil {
		t.total = *in.TotalTickets
	}
	if in.Description != nil {
		t.desc = *in.Description
	}
}

func (s *Server) createType(r *http.Request, e *event) (int, any, *apiError) {
	var in typeInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if err := in.check(true, 0); err != nil {
		return 0, nil, err
	}
	t := ticketType{id: s.nextID.typ}
	s.nextID.typ++
	in.apply(&t)
	e.typeIdx[t.id] = int32(len(e.types))
	e.types = append(e.types, t)
	return http.StatusCreated, t.json(), nil
}

func (s *Server) getType(_ *http.Request, _ *event, t *ticketType) (int, any, *apiError) {
	return 200, t.json(), nil
}

func (s *Server) updateType(r *http.Request, _ *event, t *ticketType) (int, any, *apiError) {
	var in typeInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if err := in.check(false, t.sold); err != nil {
		return 0, nil, err
	}
	in.apply(t)
	return 200, t.json(), nil
}

func (s *Server) deleteType(_ *http.Request, _ *event, t *ticketType) (int, any, *apiError) {
	if t.sold > 0 {
		return 0, nil, badRequest("ticket type %d has %d tickets sold and cannot be deleted", t.id, t.sold)
	}
	t.deleted = true
	return 200, success(fmt.Sprintf("Ticket type %d deleted.", t.id)), nil
}

// Check-in.

func (s *Server) checkIn(r *http.Request, e *event) (int, any, *apiError) {
	i, ok := e.byBarcode[r.PathValue("barcode")]
	if !ok {
		return 0, nil, errBarcodeMissing
	}
	flag, perr := strconv.ParseBool(r.PathValue("flag"))
	if perr != nil {
		return 0, nil, badRequest("flag must be true or false, got %q", r.PathValue("flag"))
	}
	a := &e.atts[i]
	if a.status == attRefunded || a.status == attCanceled {
		return 0, nil, errTicketRefunded
	}
	msg := "Checked in successfully."
	switch {
	case flag && a.checkedIn:
		return 0, nil, errTicketUsed
	case flag:
		a.checkedIn, a.in = true, s.unix()
		a.updated = a.in
		s.emit(e, TopicCheckedIn, e.attendeeJSON(a))
	case a.checkedIn:
		a.checkedIn, a.in, a.updated = false, 0, s.unix()
		msg = "Check-in undone."
	default:
		msg = "Ticket was not checked in."
	}
	j := e.attendeeJSON(a)
	out := map[string]any{
		"status": "SUCCESS", "paid": j.Paid, "ticketHolderName": strings.TrimSpace(a.first + " " + a.last),
		"ticketId": a.id, "ticketingType": j.TicketTypeName, "seatNumber": j.SeatNumber, "responseMessage": msg,
		"barcode": a.barcode, "checkedIn": a.checkedIn, "checkInTime": j.CheckInTime,
	}
	return 200, out, nil
}

func (s *Server) ticketByBarcode(r *http.Request, e *event) (int, any, *apiError) {
	i, ok := e.byBarcode[r.PathValue("barcode")]
	if !ok {
		return 0, nil, errBarcodeMissing
	}
	return 200, e.attendeeJSON(&e.atts[i]), nil
}

func (s *Server) checkinSummary(_ *http.Request, e *event) (int, any, *apiError) {
	total, in := 0, 0
	for i := range e.atts {
		if e.atts[i].status == attBooked {
			total++
			if e.atts[i].checkedIn {
				in++
			}
		}
	}
	return 200, map[string]int{"totalTickets": total, "checkedIn": in, "remaining": total - in}, nil
}

// Webhooks.

var topics = map[string]bool{TopicRegistration: true, TopicOrderPaid: true, TopicCheckedIn: true}

type hookInput struct {
	URL    string   `json:"url"`
	Topics []string `json:"topics"`
}

func (in *hookInput) check() *apiError {
	if !strings.HasPrefix(in.URL, "http://") && !strings.HasPrefix(in.URL, "https://") {
		return badRequest("url must be an http or https URL, got %q", in.URL)
	}
	for k, t := range in.Topics {
		if !topics[t] {
			return badRequest("topics[%d] %q is not one of registration.created, order.paid, attendee.checked_in", k, t)
		}
	}
	return nil
}

func (s *Server) listHooks(_ *http.Request, e *event) (int, any, *apiError) {
	data := []webhookJSON{}
	for i := range e.hooks {
		if !e.hooks[i].deleted {
			data = append(data, e.hooks[i].json())
		}
	}
	return 200, map[string]any{"data": data, "recordsTotal": len(data)}, nil
}

func (s *Server) createHook(r *http.Request, e *event) (int, any, *apiError) {
	var in hookInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if err := in.check(); err != nil {
		return 0, nil, err
	}
	h := webhook{id: s.nextID.hook, url: in.URL, topics: in.Topics, created: s.unix(), del: &sandboxkit.Deliverer{Client: s.client, Log: s.log}}
	h.del.Register(h.url)
	s.nextID.hook++
	e.hooks = append(e.hooks, h)
	return http.StatusCreated, h.json(), nil
}

// hook finds a live webhook.
func (e *event) hook(id int64) *webhook {
	for i := range e.hooks {
		if e.hooks[i].id == id && !e.hooks[i].deleted {
			return &e.hooks[i]
		}
	}
	return nil
}

func (s *Server) getHook(_ *http.Request, _ *event, h *webhook) (int, any, *apiError) {
	return 200, h.json(), nil
}

func (s *Server) updateHook(r *http.Request, _ *event, h *webhook) (int, any, *apiError) {
	var in hookInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if err := in.check(); err != nil {
		return 0, nil, err
	}
	h.url, h.topics = in.URL, in.Topics
	h.del = &sandboxkit.Deliverer{Client: s.client, Log: s.log}
	h.del.Register(h.url)
	return 200, h.json(), nil
}

func (s *Server) deleteHook(_ *http.Request, _ *event, h *webhook) (int, any, *apiError) {
	h.deleted = true
	return 200, success(fmt.Sprintf("Webhook %d deleted.", h.id)), nil
}
