package accelevents

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"rsc.io/qr"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

func ticketActions() []*connectors.ActionSpec {
	return []*connectors.ActionSpec{
		{
			Operation: connectors.Operation{
				Name:    "get_ticket_types",
				Summary: "List the event's ticket types with prices and availability.",
				Input: input(props{
					"eventUrl":      eventURLProp,
					"onlyAvailable": prop("boolean", "Leave out sold-out ticket types.", "default", false),
				}),
				Output: output(object("Ticket types.", props{
					"ticketTypes": arrayOf("Ticket types on sale.", object("A ticket type.", props{
						"id":               prop("integer", "Ticket type id."),
						"name":             prop("string", "Name."),
						"price":            prop("number", "Price per ticket."),
						"remainingTickets": prop("integer", "Tickets left."),
						"totalTickets":     prop("integer", "Tickets on sale in total."),
						"available":        prop("boolean", "Whether at least one ticket is left."),
						"nearlySoldOut":    prop("boolean", "Whether at most 5 tickets, or a tenth of the total, are left."),
					}, "id", "name", "price", "remainingTickets", "available", "nearlySoldOut")),
				}, "ticketTypes")),
				Example: map[string]any{"onlyAvailable": true},
				HTTP:    &connectors.HTTPBinding{Method: http.MethodGet, Path: ev + "/staff/ticketing/settings"},
			},
			ReadOnly: true, Idempotent: true,
			Run: connectors.Bind(getTicketTypes),
		},
		{
			Operation: connectors.Operation{
				Name:        "check_in",
				Summary:     "Check a ticket in at the door by barcode (or undo a check-in).",
				Description: "A ticket already checked in fails with Accelevents' 4060406, a refunded one with 4060408, an unknown barcode with 4060405: none of them is retried.",
				Input: input(props{
					"eventUrl": eventURLProp,
					"barcode":  prop("string", "The ticket's barcode.", "minLength", 1),
					"undo":     prop("boolean", "Undo a check-in instead.", "default", false),
				}, "barcode"),
				Output:  output(docResponse("GET", ev+"/staff/checkin/barcode/{barcode}/checkin/{flag}")),
				Example: map[string]any{"barcode": "AE-7Q2K9X4M"},
				HTTP:    &connectors.HTTPBinding{Method: http.MethodGet, Path: ev + "/staff/checkin/barcode/{barcode}/checkin/{flag}"},
			},
			Run:    connectors.Bind(checkIn),
			Settle: settleCheckIn,
		},
		{
			Operation: connectors.Operation{
				Name:    "attendee_qr_code",
				Summary: "Draw the QR code of an attendee's barcode (PNG or SVG) for check-in at the venue.",
				Input: oneOfFields(props{
					"eventUrl":   eventURLProp,
					"barcode":    prop("string", "The ticket's barcode; or give attendeeId.", "minLength", 1),
					"attendeeId": prop("integer", "Attendee id, whose barcode is looked up.", "minimum", 1),
					"format":     prop("string", "png (base64) or svg (text).", "enum", []string{"png", "svg"}, "default", "png"),
				}, "barcode", "attendeeId"),
				Output: output(object("The QR code.", props{
					"format":  prop("string", "png or svg.", "enum", []string{"png", "svg"}),
					"data":    prop("string", "The image: base64 for png, SVG text for svg."),
					"barcode": prop("string", "The encoded barcode."),
				}, "format", "data", "barcode")),
				Example: map[string]any{"barcode": "AE-7Q2K9X4M", "format": "svg"},
			},
			ReadOnly: true, Idempotent: true,
			Run: connectors.Bind(attendeeQRCode),
		},
	}
}

func getTicketTypes(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	evURL, err := c.event(in)
	if err != nil {
		return nil, opErr("get_ticket_types", err)
	}
	var settings struct {
		TicketTypes []TicketType `json:"ticketTypes"`
	}
	if err := c.getJSON(ctx, eventPath(evURL, "staff/ticketing/settings"), nil, &settings); err != nil {
		return nil, opErr("get_ticket_types", err)
	}
	only, _ := in["onlyAvailable"].(bool)
	list := []any{}
	for _, t := range settings.TicketTypes {
		if only && t.RemainingTickets <= 0 {
			continue
		}
		nearly := t.RemainingTickets > 0 && (t.RemainingTickets <= 5 || t.TotalTickets > 0 && t.RemainingTickets*10 <= t.TotalTickets)
		list = append(list, map[string]any{
			"id": t.ID, "name": t.Name, "price": t.Price, "remainingTickets": t.RemainingTickets, "totalTickets": t.TotalTickets,
			"available": t.RemainingTickets > 0, "nearlySoldOut": nearly,
		})
	}
	return &connectors.Result{Output: map[string]any{"ticketTypes": list}}, nil
}

func checkIn(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	evURL, err := c.event(in)
	if err != nil {
		return nil, opErr("check_in", err)
	}
	barcode := str(in, "barcode")
	undo, _ := in["undo"].(bool)
	// The check-in is a GET, which may be re-sent after a lost answer;
	// the re-sent one then fails with 4060406 although the first went
	// through. So look first: 4060406 for a ticket that was not checked in
	// a moment ago is our own check-in.
	var before Attendee
	if err := c.getJSON(ctx, eventPath(evURL, "staff/checkin/barcode/%s", escape(barcode)), nil, &before); err != nil {
		return nil, opErr("check_in", fmt.Errorf("barcode %q: %w", barcode, err))
	}
	var out map[string]any
	// A GET that checks the ticket in (or out): a write, planned and not
	// sent in a dry run.
	_, err = c.api.JSON(ctx, apiclient.Request{Method: http.MethodGet, Path: eventPath(evURL, "staff/checkin/barcode/%s/checkin/%t", escape(barcode), !undo), Changes: true}, &out)
	if err != nil && !(isCode(err, "4060406") && !undo && !before.CheckedIn) {
		return nil, opErr("check_in", fmt.Errorf("barcode %q: %w", barcode, err))
	}
	var after Attendee
	if err := c.getJSON(ctx, eventPath(evURL, "staff/checkin/barcode/%s", escape(barcode)), nil, &after); err != nil {
		return nil, opErr("check_in", fmt.Errorf("barcode %q: reading the ticket back: %w", barcode, err))
	}
	if len(out) == 0 { // our own 4060406 above, or a dry run's planned answer
		out = checkInOutput(&after, "Checked in successfully.")
	}
	// The attendee changed: its new state, for echo suppression.
	return &connectors.Result{Output: out, Wrote: []connectors.Record{{Subject: AttendeeSubject(after.AttendeeID), State: AttendeeFingerprint(&after)}}}, nil
}

func checkInOutput(a *Attendee, msg string) map[string]any {
	return map[string]any{
		"status": "SUCCESS", "paid": a.Paid, "ticketHolderName": strings.TrimSpace(a.FirstName + " " + a.LastName), "ticketId": a.AttendeeID,
		"ticketingType": a.TicketTypeName, "seatNumber": a.SeatNumber, "responseMessage": msg, "barcode": a.Barcode,
		"checkedIn": a.CheckedIn, "checkInTime": a.CheckInTime,
	}
}

// settleCheckIn: the check-in happened when the ticket is now in the state
// asked for.
func settleCheckIn(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	evURL, err := c.event(in)
	if err != nil {
		return nil, false, opErr("check_in", err)
	}
	var a Attendee
	barcode := str(in, "barcode")
	if err := c.getJSON(ctx, eventPath(evURL, "staff/checkin/barcode/%s", escape(barcode)), nil, &a); err != nil {
		return nil, false, opErr("check_in", err)
	}
	undo, _ := in["undo"].(bool)
	if a.CheckedIn == undo {
		return nil, false, nil
	}
	msg := "Checked in successfully."
	if undo {
		msg = "Check-in undone."
	}
	return &connectors.Result{Output: checkInOutput(&a, msg), Wrote: []connectors.Record{{Subject: AttendeeSubject(a.AttendeeID), State: AttendeeFingerprint(&a)}}}, true, nil
}

func attendeeQRCode(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	barcode := str(in, "barcode")
	if barcode == "" {
		id, ok := num(in, "attendeeId")
		if !ok {
			return nil, opErr("attendee_qr_code", fmt.Errorf("give barcode or attendeeId"))
		}
		evURL, err := c.event(in)
		if err != nil {
			return nil, opErr("attendee_qr_code", err)
		}
		a, err := c.getAttendee(ctx, evURL, id)
		if err != nil {
			return nil, opErr("attendee_qr_code", err)
		}
		barcode = a.Barcode
	}
	format := str(in, "format")
	if format == "" {
		format = "png"
	}
	code, err := qr.Encode(barcode, qr.M)
	if err != nil {
		return nil, opErr("attendee_qr_code", fmt.Errorf("encoding %q: %w", barcode, err))
	}
	var data string
	switch format {
	case "png":
		data = base64.StdEncoding.EncodeToString(code.PNG())
	case "svg":
		data = SVG(code)
	default:
		return nil, opErr("attendee_qr_code", fmt.Errorf("format must be png or svg, got %q", format))
	}
	return &connectors.Result{Output: map[string]any{"format": format, "data": data, "barcode": barcode}}, nil
}

// SVG draws a QR code as one path of unit squares with a four-module
// quiet zone; the viewBox scales it to any size.
func SVG(code *qr.Code) string {
	const quiet = 4
	n := code.Size + 2*quiet
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges">`, n, n)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y := 0; y < code.Size; y++ {
		for x := 0; x < code.Size; x++ {
			if !code.Black(x, y) {
				continue
			}
			// Runs of dark modules become one rectangle.
			run := 1
			for x+run < code.Size && code.Black(x+run, y) {
				run++
			}
			b.WriteString("M" + strconv.Itoa(x+quiet) + " " + strconv.Itoa(y+quiet) + "h" + strconv.Itoa(run) + "v1h-" + strconv.Itoa(run) + "z")
			x += run - 1
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String()
}
