package accelevents

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

// Attendee is a ticket holder as the API returns it.
type Attendee struct {
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

// live reports whether the attendee holds a valid ticket.
func (a *Attendee) live() bool { return a.Status == "BOOKED" || a.Status == "PENDING" }

// Order is an order as the API returns it.
type Order struct {
	OrderID        int64   `json:"orderId"`
	Status         string  `json:"status"`
	PaymentType    string  `json:"paymentType"`
	Total          float64 `json:"total"`
	AmountPaid     float64 `json:"amountPaid"`
	RefundedAmount float64 `json:"refundedAmount"`
	Purchaser      struct {
		Email string `json:"email"`
	} `json:"purchaser"`
	Tickets []struct {
		TicketID     int64  `json:"ticketId"`
		TicketTypeID int64  `json:"ticketTypeId"`
		HolderName   string `json:"holderName"`
	} `json:"tickets"`
	CreatedAt string  `json:"createdAt"`
	PaidAt    *string `json:"paidAt"`
}

type page[T any] struct {
	Data            []T `json:"data"`
	RecordsTotal    int `json:"recordsTotal"`
	RecordsFiltered int `json:"recordsFiltered"`
	// Attendees is the other name attendee lists answer with
	// ({data|attendees: [...]}, API-NOTES); UnmarshalJSON moves it to Data.
	Attendees []T `json:"attendees"`
}

// UnmarshalJSON reads a page under either name of its list.
func (p *page[T]) UnmarshalJSON(b []byte) error {
	type plain page[T]
	var v plain
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Data == nil {
		v.Data, v.Attendees = v.Attendees, nil
	}
	*p = page[T](v)
	return nil
}

// TicketType is a ticket type with its availability.
type TicketType struct {
	ID               int64   `json:"id"`
	Name             string  `json:"name"`
	Price            float64 `json:"price"`
	RemainingTickets int     `json:"remainingTickets"`
	TotalTickets     int     `json:"totalTickets"`
}

// AttendeeSubject is the subject of an attendee's events and writes.
func AttendeeSubject(id int64) string { return "attendee/" + strconv.FormatInt(id, 10) }

// OrderSubject is the subject of an order's events and writes.
func OrderSubject(id int64) string { return "order/" + strconv.FormatInt(id, 10) }

// AttendeeFingerprint is the state of an attendee as triggers see it and
// writes record it, for echo suppression.
func AttendeeFingerprint(a *Attendee) string {
	return fingerprint(a.FirstName, a.LastName, strings.ToLower(a.Email), a.ExternalID,
		strconv.FormatInt(a.TicketTypeID, 10), a.Status, strconv.FormatBool(a.CheckedIn))
}

// OrderFingerprint is the state of an order as triggers see it.
func OrderFingerprint(o *Order) string {
	return fingerprint(o.Status, strconv.FormatFloat(o.AmountPaid, 'f', 2, 64), strconv.FormatFloat(o.RefundedAmount, 'f', 2, 64))
}

func fingerprint(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x1f")))
	return hex.EncodeToString(h[:8])
}

func escape(s string) string { return url.PathEscape(s) }

// value turns a typed answer into the plain JSON value recipes see.
func value(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	_, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodGet, Path: path, Query: q}, out)
	return err
}

func (c *Client) getAttendee(ctx context.Context, ev string, id int64) (*Attendee, error) {
	var a Attendee
	if err := c.getJSON(ctx, eventPath(ev, "staff/attendees/%d", id), nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

func (c *Client) getOrder(ctx context.Context, ev string, id int64) (*Order, error) {
	var o Order
	if err := c.getJSON(ctx, eventPath(ev, "staff/orders/%d", id), nil, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// searchAttendees finds attendees by exact external id or email.
func (c *Client) searchAttendees(ctx context.Context, ev string, q url.Values) ([]Attendee, error) {
	var p page[Attendee]
	if err := c.getJSON(ctx, eventPath(ev, "staff/attendees"), q, &p); err != nil {
		return nil, err
	}
	return p.Data, nil
}

// findAttendee looks a person up by external id first, then by email,
// preferring a live ticket (of ticketTypeID when non-zero). It returns nil
// when nobody matches.
func (c *Client) findAttendee(ctx context.Context, ev, externalID, email string, ticketTypeID int64) (*Attendee, int, error) {
	pick := func(list []Attendee) *Attendee {
		var fallback *Attendee
		for i := range list {
			a := &list[i]
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
		list, err := c.searchAttendees(ctx, ev, url.Values{"externalId": {externalID}})
		if err != nil {
			return nil, 0, err
		}
		if a := pick(list); a != nil {
			return a, len(list), nil
		}
	}
	if email != "" {
		list, err := c.searchAttendees(ctx, ev, url.Values{"email": {email}})
		if err != nil {
			return nil, 0, err
		}
		if a := pick(list); a != nil {
			return a, len(list), nil
		}
	}
	return nil, 0, nil
}

func str(in map[string]any, k string) string {
	s, _ := in[k].(string)
	return strings.TrimSpace(s)
}

// num reads an integer input (JSON numbers arrive as float64; YAML may
// give int).
func num(in map[string]any, k string) (int64, bool) {
	switch v := in[k].(type) {
	case float64:
		return int64(v), true
	case int:
		return int64(v), true
	case int64:
		return v, true
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

func float(in map[string]any, k string) (float64, bool) {
	switch v := in[k].(type) {
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	}
	return 0, false
}

// isCode reports whether err is an Accelevents API error with code.
func isCode(err error, code string) bool {
	var api *connectors.APIError
	return errors.As(err, &api) && api.Code == code
}

func opErr(op string, err error) error { return fmt.Errorf("accelevents.%s: %w", op, err) }
