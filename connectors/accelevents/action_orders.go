package accelevents

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

func holderSchema() map[string]any {
	return object("One ticket holder.", props{
		"firstName":  prop("string", "First name.", "minLength", 1),
		"lastName":   prop("string", "Last name.", "minLength", 1),
		"email":      prop("string", "Email address.", "format", "email", "minLength", 3),
		"externalId": prop("string", "Your id for the person (the member id)."),
	}, "firstName", "lastName", "email")
}

func orderActions() []*connectors.ActionSpec {
	return []*connectors.ActionSpec{
		{
			Operation: connectors.Operation{
				Name:    "create_order",
				Summary: "Register people for an event: check availability, price, order, and submit holder data in one step.",
				Description: "Runs Accelevents' staff registration flow: ticketing settings (availability), calculateFee, " +
					"staff/ticketing/order, formattributes, then the holder data. An order of the same purchaser and ticket " +
					"type still waiting for holder data (an earlier attempt cut short) is completed instead of a new one.",
				Input: input(props{
					"eventUrl":     eventURLProp,
					"ticketTypeId": prop("integer", "Ticket type of every ticket.", "minimum", 1),
					"holders":      arrayOf("One entry per ticket; the first is the purchaser.", holderSchema(), "minItems", 1, "maxItems", 20),
					"paymentType":  prop("string", "CC (paid by card), CASH (paid at the door), COMPLIMENTARY (free), UNPAID (pay later, e.g. with record_payment).", "enum", []string{"CC", "CASH", "COMPLIMENTARY", "UNPAID"}, "default", "UNPAID"),
					"note":         prop("string", "Staff note on the order."),
				}, "ticketTypeId", "holders"),
				Output: output(object("The registration.", props{
					"orderId":   prop("integer", "Order id."),
					"resumed":   prop("boolean", "Whether an order waiting for holder data was completed instead of a new one placed."),
					"fees":      arrayOf("Fees per line, from calculateFee.", docResponse("POST", ev+"/calculateFee")["items"].(map[string]any)),
					"order":     orderSchema(),
					"attendees": arrayOf("The tickets with their holders.", attendeeSchema()),
				}, "orderId", "resumed", "order", "attendees")),
				Example: map[string]any{"ticketTypeId": 145680, "paymentType": "UNPAID", "holders": []any{map[string]any{"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com", "externalId": "member-42"}}},
			},
			Run:    connectors.Bind(createOrder),
			Settle: settleCreateOrder,
		},
		{
			Operation: connectors.Operation{
				Name:        "record_payment",
				Summary:     "Record a payment received for an order, once per external reference.",
				Description: "Looks the reference up first: a payment already recorded under it is returned, not repeated.",
				Input: input(props{
					"eventUrl":    eventURLProp,
					"orderId":     prop("integer", "Order id.", "minimum", 1),
					"amount":      prop("number", "Amount received.", "exclusiveMinimum", 0),
					"currency":    prop("string", "Currency code; default: the event's."),
					"method":      prop("string", "How it was paid (card, cash, transfer, ...)."),
					"externalRef": prop("string", "Your reference of the payment (e.g. the Memberships payment id).", "minLength", 1),
					"note":        prop("string", "Note."),
				}, "orderId", "amount", "externalRef"),
				Output: output(object("The payment.", props{
					"existing": prop("boolean", "Whether the reference was already recorded (nothing was sent)."),
					"payment":  docResponse("POST", ev+"/staff/orders/{orderId}/payments"),
				}, "existing", "payment")),
				Example: map[string]any{"orderId": 122111, "amount": 199, "method": "transfer", "externalRef": "pay_000042"},
				HTTP:    &connectors.HTTPBinding{Method: http.MethodPost, Path: ev + "/staff/orders/{orderId}/payments"},
			},
			Run:              connectors.Bind(recordPayment),
			Settle:           settleRecordPayment,
			ReportsUnchanged: true,
		},
		{
			Operation: connectors.Operation{
				Name:    "get_order_with_payments",
				Summary: "Get an order and the payments recorded on it, as one consistent read.",
				Description: "Reads the order's payments, the order, then the payments again, until both lists agree: " +
					"the order's amountPaid then includes exactly the listed payments, even while another run records one. " +
					"Two separate steps (list_order_payments, get_order) can see a payment in one and not the other.",
				Input: input(props{
					"eventUrl": eventURLProp,
					"orderId":  prop("integer", "Order id.", "minimum", 1),
				}, "orderId"),
				Output: output(object("The order and its payments.", props{
					"order":    orderSchema(),
					"payments": docResponse("GET", ev+"/staff/orders/{orderId}/payments"),
				}, "order", "payments")),
				Example: map[string]any{"orderId": 122111},
			},
			ReadOnly: true, Idempotent: true,
			Run: connectors.Bind(getOrderWithPayments),
		},
		{
			Operation: connectors.Operation{
				Name:    "calculate_fee",
				Summary: "Price ticket lines with Accelevents' fees.",
				Input: input(props{
					"eventUrl": eventURLProp,
					"lines": arrayOf("Ticket lines.", object("One line.", props{
						"ticketTypeId": prop("integer", "Ticket type id.", "minimum", 1),
						"quantity":     prop("integer", "Number of tickets.", "minimum", 1),
						"price":        prop("number", "Price per ticket.", "minimum", 0),
					}, "ticketTypeId", "quantity", "price"), "minItems", 1),
				}, "lines"),
				Output: output(object("Fees.", props{
					"lines": docResponse("POST", ev+"/calculateFee"),
					"total": prop("number", "Sum of the line totals."),
				}, "lines", "total")),
				Example: map[string]any{"lines": []any{map[string]any{"ticketTypeId": 145680, "quantity": 2, "price": 199}}},
				HTTP:    &connectors.HTTPBinding{Method: http.MethodPost, Path: ev + "/calculateFee"},
			},
			ReadOnly: true, Idempotent: true,
			Run: connectors.Bind(calculateFee),
		},
	}
}

type holder struct{ first, last, email, ext string }

func holdersOf(in map[string]any) ([]holder, error) {
	list, _ := in["holders"].([]any)
	if len(list) == 0 {
		return nil, fmt.Errorf("holders: give at least one holder")
	}
	out := make([]holder, 0, len(list))
	for i, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("holders[%d]: want an object", i)
		}
		h := holder{str(m, "firstName"), str(m, "lastName"), str(m, "email"), str(m, "externalId")}
		if h.first == "" || h.last == "" || h.email == "" {
			return nil, fmt.Errorf("holders[%d]: firstName, lastName and email are required", i)
		}
		out = append(out, h)
	}
	return out, nil
}

type feeLine = map[string]any

func (c *Client) calculateFee(ctx context.Context, evURL string, lines []map[string]any) ([]feeLine, error) {
	var fees []feeLine
	_, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: eventPath(evURL, "calculateFee"), Body: lines, ReadOnly: true}, &fees)
	return fees, err
}

func calculateFee(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	evURL, err := c.event(in)
	if err != nil {
		return nil, opErr("calculate_fee", err)
	}
	list, _ := in["lines"].([]any)
	var lines []map[string]any
	for i, v := range list {
		m, _ := v.(map[string]any)
		typ, ok1 := num(m, "ticketTypeId")
		qty, ok2 := num(m, "quantity")
		price, ok3 := float(m, "price")
		if !ok1 || !ok2 || !ok3 {
			return nil, opErr("calculate_fee", fmt.Errorf("lines[%d]: ticketTypeId, quantity and price are required", i))
		}
		lines = append(lines, map[string]any{"ticketQuantity": qty, "ticketingTypeId": typ, "ticketPrice": price})
	}
	fees, err := c.calculateFee(ctx, evURL, lines)
	if err != nil {
		return nil, opErr("calculate_fee", err)
	}
	total := 0.0
	for _, f := range fees {
		t, _ := float(f, "totalPrice")
		total += t
	}
	out := make([]any, len(fees))
	for i, f := range fees {
		out[i] = f
	}
	return &connectors.Result{Output: map[string]any{"lines": out, "total": total}}, nil
}

// pendingOrder finds an order of the purchaser with tickets of typ still
// waiting for holder data: a registration an earlier attempt started.
func (c *Client) pendingOrder(ctx context.Context, evURL, email string, typ int64, tickets int) (int64, error) {
	var p page[Order]
	if err := c.getJSON(ctx, eventPath(evURL, "staff/orders"), url.Values{"searchString": {email}, "size": {"100"}}, &p); err != nil {
		return 0, err
	}
	for i := len(p.Data) - 1; i >= 0; i-- {
		o := &p.Data[i]
		if !equalFold(o.Purchaser.Email, email) || len(o.Tickets) != tickets || o.Status == "REFUNDED" {
			continue
		}
		waiting := true
		for _, t := range o.Tickets {
			if t.TicketTypeID != typ || t.HolderName != "" {
				waiting = false
			}
		}
		if waiting {
			return o.OrderID, nil
		}
	}
	return 0, nil
}

func createOrder(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	fail := func(err error) (*connectors.Result, error) { return nil, opErr("create_order", err) }
	evURL, err := c.event(in)
	if err != nil {
		return fail(err)
	}
	holders, err := holdersOf(in)
	if err != nil {
		return fail(err)
	}
	typ, _ := num(in, "ticketTypeId")
	payment := str(in, "paymentType")
	if payment == "" {
		payment = "UNPAID"
	}
	// 1. Settings: the ticket type and its availability.
	var settings struct {
		TicketTypes []TicketType `json:"ticketTypes"`
	}
	if err := c.getJSON(ctx, eventPath(evURL, "staff/ticketing/settings"), nil, &settings); err != nil {
		return fail(err)
	}
	var tt *TicketType
	for i := range settings.TicketTypes {
		if settings.TicketTypes[i].ID == typ {
			tt = &settings.TicketTypes[i]
		}
	}
	if tt == nil {
		return fail(fmt.Errorf("ticket type %d is not on sale at event %q", typ, evURL))
	}
	resumed := false
	orderID, err := c.pendingOrder(ctx, evURL, holders[0].email, typ, len(holders))
	if err != nil {
		return fail(err)
	}
	// 2. Fees.
	fees, err := c.calculateFee(ctx, evURL, []map[string]any{{"ticketQuantity": len(holders), "ticketingTypeId": typ, "ticketPrice": tt.Price}})
	if err != nil {
		return fail(err)
	}
	if orderID != 0 {
		resumed = true
	} else {
		if tt.RemainingTickets < len(holders) {
			return fail(fmt.Errorf("ticket type %q (%d) has %d tickets left, %d asked", tt.Name, tt.ID, tt.RemainingTickets, len(holders)))
		}
		// 3. The order.
		body := map[string]any{
			"clientDate":  c.now().UTC().Format("02/01/2006 15:04:05"),
			"paymentType": payment,
			"ticketings":  []any{map[string]any{"numberOfTicket": len(holders), "ticketTypeId": typ, "price": tt.Price}},
			"note":        str(in, "note"),
			"purchaser":   map[string]any{"firstName": holders[0].first, "lastName": holders[0].last, "email": holders[0].email},
		}
		var created struct {
			OrderID int64 `json:"orderId"`
		}
		if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: eventPath(evURL, "staff/ticketing/order"), Body: body}, &created); err != nil {
			return fail(err)
		}
		orderID = created.OrderID
	}
	// 4. Holder fields and tickets.
	var form struct {
		HolderAttributes []struct {
			Name      string `json:"name"`
			Mandatory bool   `json:"mandatory"`
		} `json:"holderAttributes"`
		Tickets []struct {
			TicketID        int64 `json:"ticketId"`
			HolderSubmitted bool  `json:"holderSubmitted"`
		} `json:"tickets"`
	}
	if err := c.getJSON(ctx, eventPath(evURL, "staff/ticketing/order/%d/formattributes", orderID), nil, &form); err != nil {
		return fail(fmt.Errorf("order %d placed, reading its holder fields: %w", orderID, err))
	}
	known := map[string]bool{"firstName": true, "lastName": true, "emailAddress": true, "externalId": true}
	for _, f := range form.HolderAttributes {
		if f.Mandatory && !known[f.Name] {
			return fail(fmt.Errorf("order %d placed, but the event asks for holder field %q, which create_order cannot fill", orderID, f.Name))
		}
	}
	var submit []any
	k := 0
	for _, t := range form.Tickets {
		if t.HolderSubmitted || k >= len(holders) {
			continue
		}
		h := holders[k]
		k++
		entry := map[string]any{"ticketId": t.TicketID, "firstName": h.first, "lastName": h.last, "emailAddress": h.email}
		if h.ext != "" {
			entry["externalId"] = h.ext
		}
		submit = append(submit, entry)
	}
	// 5. Holder data. Re-submitting the same holders is harmless, so this
	// write is safe to repeat.
	if len(submit) > 0 {
		if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: eventPath(evURL, "staff/ticketing/order/%d/holders", orderID), Body: map[string]any{"holders": submit}, Idempotent: true}, nil); err != nil {
			return fail(fmt.Errorf("order %d placed, submitting holder data: %w", orderID, err))
		}
	}
	return c.orderResult(ctx, evURL, orderID, resumed, fees)
}

// orderResult reads back the order and its attendees.
func (c *Client) orderResult(ctx context.Context, evURL string, orderID int64, resumed bool, fees []feeLine) (*connectors.Result, error) {
	var o map[string]any
	if err := c.getJSON(ctx, eventPath(evURL, "staff/orders/%d", orderID), nil, &o); err != nil {
		return nil, opErr("create_order", err)
	}
	atts, err := c.searchAttendees(ctx, evURL, url.Values{"orderId": {fmt.Sprint(orderID)}})
	if err != nil {
		return nil, opErr("create_order", err)
	}
	res := &connectors.Result{}
	list := make([]any, 0, len(atts))
	for i := range atts {
		v, err := value(&atts[i])
		if err != nil {
			return nil, err
		}
		list = append(list, v)
		res.Wrote = append(res.Wrote, connectors.Record{Subject: AttendeeSubject(atts[i].AttendeeID), State: AttendeeFingerprint(&atts[i])})
	}
	feeList := make([]any, len(fees))
	for i, f := range fees {
		feeList[i] = f
	}
	res.Output = map[string]any{"orderId": orderID, "resumed": resumed, "fees": feeList, "order": o, "attendees": list}
	return res, nil
}

// settleCreateOrder: the registration happened when the first holder
// has a live ticket of the type.
func settleCreateOrder(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	evURL, err := c.event(in)
	if err != nil {
		return nil, false, opErr("create_order", err)
	}
	holders, err := holdersOf(in)
	if err != nil {
		return nil, false, opErr("create_order", err)
	}
	typ, _ := num(in, "ticketTypeId")
	list, err := c.searchAttendees(ctx, evURL, url.Values{"email": {holders[0].email}, "ticketTypeId": {fmt.Sprint(typ)}})
	if err != nil {
		return nil, false, opErr("create_order", err)
	}
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Status == "BOOKED" {
			res, err := c.orderResult(ctx, evURL, list[i].OrderID, false, []feeLine{})
			return res, err == nil, err
		}
	}
	return nil, false, nil
}

// Payments.

type paymentList struct {
	Data []map[string]any `json:"data"`
}

func (c *Client) paymentByRef(ctx context.Context, evURL, ref string) (map[string]any, error) {
	var p paymentList
	if err := c.getJSON(ctx, eventPath(evURL, "staff/payments"), url.Values{"externalRef": {ref}}, &p); err != nil {
		return nil, err
	}
	if len(p.Data) == 0 {
		return nil, nil
	}
	return p.Data[0], nil
}

func recordPayment(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	fail := func(err error) (*connectors.Result, error) { return nil, opErr("record_payment", err) }
	evURL, err := c.event(in)
	if err != nil {
		return fail(err)
	}
	orderID, _ := num(in, "orderId")
	ref := str(in, "externalRef")
	existing, err := c.paymentByRef(ctx, evURL, ref)
	if err != nil {
		return fail(err)
	}
	if existing != nil {
		if got, _ := num(existing, "orderId"); got != orderID {
			return fail(fmt.Errorf("externalRef %q is already recorded on order %d, not %d", ref, got, orderID))
		}
		return &connectors.Result{Output: map[string]any{"existing": true, "payment": existing}}, nil
	}
	amount, _ := float(in, "amount")
	body := map[string]any{"amount": amount, "externalRef": ref}
	for _, k := range []string{"currency", "method", "note"} {
		if v := str(in, k); v != "" {
			body[k] = v
		}
	}
	var p map[string]any
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: eventPath(evURL, "staff/orders/%d/payments", orderID), Body: body}, &p); err != nil {
		return fail(err)
	}
	return c.paymentResult(ctx, evURL, orderID, p, false)
}

func (c *Client) paymentResult(ctx context.Context, evURL string, orderID int64, p map[string]any, existing bool) (*connectors.Result, error) {
	res := &connectors.Result{Output: map[string]any{"existing": existing, "payment": p}}
	// The order changed (maybe to PAID): record its state for echo
	// suppression of order_paid.
	if o, err := c.getOrder(ctx, evURL, orderID); err == nil {
		res.Wrote = []connectors.Record{{Subject: OrderSubject(o.OrderID), State: OrderFingerprint(o)}}
	}
	return res, nil
}

func settleRecordPayment(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	evURL, err := c.event(in)
	if err != nil {
		return nil, false, opErr("record_payment", err)
	}
	p, err := c.paymentByRef(ctx, evURL, str(in, "externalRef"))
	if err != nil || p == nil {
		return nil, false, err
	}
	orderID, _ := num(in, "orderId")
	res, err := c.paymentResult(ctx, evURL, orderID, p, false)
	return res, err == nil, err
}

func equalFold(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// orderReads bounds getOrderWithPayments: each try fails only if a payment
// was recorded on the order between its reads.
const orderReads = 5

func getOrderWithPayments(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	fail := func(err error) (*connectors.Result, error) { return nil, opErr("get_order_with_payments", err) }
	evURL, err := c.event(in)
	if err != nil {
		return fail(err)
	}
	orderID, _ := num(in, "orderId")
	listPath := eventPath(evURL, "staff/orders/%d/payments", orderID)
	var before map[string]any
	if err := c.getJSON(ctx, listPath, nil, &before); err != nil {
		return fail(err)
	}
	for range orderReads {
		var order, after map[string]any
		if err := c.getJSON(ctx, eventPath(evURL, "staff/orders/%d", orderID), nil, &order); err != nil {
			return fail(err)
		}
		if err := c.getJSON(ctx, listPath, nil, &after); err != nil {
			return fail(err)
		}
		// Payments are only ever added: the same ids before and after
		// the order's read mean that none was added meanwhile.
		if samePayments(before, after) {
			return &connectors.Result{Output: map[string]any{"order": order, "payments": after}}, nil
		}
		before = after
	}
	return fail(fmt.Errorf("payments were recorded on order %d during each of %d reads", orderID, orderReads))
}

func samePayments(a, b map[string]any) bool {
	ids := func(m map[string]any) []string {
		list, _ := m["data"].([]any)
		out := make([]string, 0, len(list))
		for _, v := range list {
			p, _ := v.(map[string]any)
			out = append(out, fmt.Sprint(p["paymentId"]))
		}
		return out
	}
	return slices.Equal(ids(a), ids(b))
}
