package accelevents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/accelevents/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// memoryState is the engine's per-subject memory, in a map.
type memoryState map[string]string

func (m memoryState) Lookup(_ context.Context, subjects []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range subjects {
		if v, ok := m[s]; ok {
			out[s] = v
		}
	}
	return out, nil
}

// poller drives a trigger the way the engine does: cursor and states kept
// between polls, More followed at once.
type poller struct {
	t      *testing.T
	e      *env
	name   string
	params map[string]any
	start  connectors.Start
	cursor string
	state  memoryState
}

func (e *env) poller(name string, start connectors.Start, params map[string]any) *poller {
	if params == nil {
		params = map[string]any{}
	}
	return &poller{t: e.t, e: e, name: name, params: params, start: start, state: memoryState{}}
}

// drain polls until no more pages are ready, returning the events.
func (p *poller) drain() []connectors.Event {
	p.t.Helper()
	tr := p.e.spec.Trigger(p.name)
	var all []connectors.Event
	for i := 0; i < 1000; i++ {
		res, err := tr.Poll(context.Background(), p.e.conn, connectors.PollRequest{Params: p.params, Cursor: p.cursor, Start: p.start, Prior: p.state, Now: fixedNow})
		if err != nil {
			p.t.Fatalf("poll %s: %v", p.name, err)
		}
		for _, s := range res.States {
			p.state[s.Subject] = s.State
		}
		for _, ev := range res.Events {
			if err := validate(tr.Output, ev.Data); err != nil {
				p.t.Errorf("event data does not fit the output schema: %v", err)
			}
		}
		all = append(all, res.Events...)
		p.cursor = res.Cursor
		if !res.More {
			return all
		}
	}
	p.t.Fatal("poll never finished a pass")
	return nil
}

func ids(evs []connectors.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func TestRegistrationCreatedPolling(t *testing.T) {
	e := newEnv(t, 100, nil)
	booked := 0
	for _, a := range e.must("list_attendees", map[string]any{"size": 500})["data"].([]any) {
		if a.(map[string]any)["status"] == "BOOKED" {
			booked++
		}
	}
	t.Run("start beginning emits every booked attendee", func(t *testing.T) {
		p := e.poller("registration_created", connectors.StartBeginning, map[string]any{"pageSize": 7})
		if got := len(p.drain()); got != booked {
			t.Fatalf("%d events, want %d", got, booked)
		}
		if got := p.drain(); len(got) != 0 {
			t.Fatalf("a second pass emitted %v", ids(got))
		}
	})
	t.Run("start now emits only what comes after", func(t *testing.T) {
		p := e.poller("registration_created", connectors.StartNow, map[string]any{"pageSize": 7})
		if got := p.drain(); len(got) != 0 {
			t.Fatalf("first pass emitted %d", len(got))
		}
		if _, err := e.srv.Mutate(sandboxkit.Mutation{Kind: sandbox.MutateRegister, Count: 2}); err != nil {
			t.Fatal(err)
		}
		// A fresh poller resuming from the saved cursor and states sees
		// the same events as the original would.
		resumed := *p
		resumed.state = memoryState{}
		for k, v := range p.state {
			resumed.state[k] = v
		}
		a, b := p.drain(), resumed.drain()
		if len(a) != 2 || fmt.Sprint(ids(a)) != fmt.Sprint(ids(b)) {
			t.Fatalf("events %v vs resumed %v", ids(a), ids(b))
		}
		if !strings.HasPrefix(a[0].ID, "registration/") || !strings.HasPrefix(a[0].Subject, "attendee/") || a[0].Fingerprint == "" {
			t.Errorf("event %+v", a[0])
		}
	})
	t.Run("later passes read only from the first open page", func(t *testing.T) {
		p := e.poller("registration_created", connectors.StartNow, map[string]any{"pageSize": 7})
		p.drain()
		const route = "GET /rest/events/{eventUrl}/staff/allAttendees"
		before := e.srv.Stats().Requests[route]
		// An order placed without holders: its ticket is PENDING, then booked.
		placed := e.must("place_order", map[string]any{"paymentType": "CC", "ticketings": []any{map[string]any{"numberOfTicket": 1, "ticketTypeId": 145680}}})
		if got := p.drain(); len(got) != 0 {
			t.Fatalf("a pending ticket is not a registration: %v", ids(got))
		}
		if n := e.srv.Stats().Requests[route] - before; n > 2 {
			t.Errorf("a pass with nothing open read %d pages", n)
		}
		e.must("submit_holder_data", map[string]any{"orderId": placed["orderId"], "holders": []any{map[string]any{"firstName": "Late", "lastName": "Holder", "emailAddress": "late@example.com"}}})
		if got := p.drain(); len(got) != 1 || got[0].Data["email"] != "late@example.com" {
			t.Fatalf("holder data submitted: %v", ids(got))
		}
	})
	t.Run("ticket type filter", func(t *testing.T) {
		p := e.poller("registration_created", connectors.StartBeginning, map[string]any{"ticketTypeId": 145682})
		for _, ev := range p.drain() {
			if ev.Data["ticketTypeId"] != float64(145682) {
				t.Fatalf("event of ticket type %v", ev.Data["ticketTypeId"])
			}
		}
	})
}

func TestOrderPaidAndCheckInPolling(t *testing.T) {
	e := newEnv(t, 200, nil)
	paid := e.poller("order_paid", connectors.StartNow, nil)
	in := e.poller("attendee_checked_in", connectors.StartNow, nil)
	paid.drain()
	in.drain()
	out, err := e.srv.Mutate(sandboxkit.Mutation{Kind: sandbox.MutatePay, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	got := paid.drain()
	if len(got) != 3 {
		t.Fatalf("order_paid: %v after %v", ids(got), out)
	}
	if got[0].Data["status"] != "PAID" || !strings.Contains(got[0].ID, "/paid/") {
		t.Errorf("event %+v", got[0])
	}
	if _, err := e.srv.Mutate(sandboxkit.Mutation{Kind: sandbox.MutateCheckIn, Count: 2}); err != nil {
		t.Fatal(err)
	}
	checked := in.drain()
	if len(checked) != 2 || checked[0].Data["checkedIn"] != true {
		t.Fatalf("attendee_checked_in: %v", ids(checked))
	}
	// memberflow's own check-in: the event carries the fingerprint the
	// write recorded, so the engine drops the echo.
	barcode := e.must("get_attendee", map[string]any{"attendeeId": 900010})["barcode"]
	res, err := e.run("check_in", map[string]any{"barcode": barcode})
	if err != nil {
		t.Fatal(err)
	}
	echo := in.drain()
	if len(echo) != 1 || len(res.Wrote) != 1 || echo[0].Subject != res.Wrote[0].Subject || echo[0].Fingerprint != res.Wrote[0].State {
		t.Fatalf("echo %+v vs wrote %+v", echo, res.Wrote)
	}
}

func TestPollRejectsForeignCursor(t *testing.T) {
	e := newEnv(t, 10, nil)
	_, err := e.spec.Trigger("order_paid").Poll(context.Background(), e.conn, connectors.PollRequest{Cursor: "page=3", Prior: memoryState{}})
	if err == nil || !strings.Contains(err.Error(), "cursor") {
		t.Fatalf("got %v", err)
	}
}

func TestWebhookVerify(t *testing.T) {
	body := []byte(`{"id":"whd_1","topic":"attendee.checked_in","eventUrl":"annual-conference-2026","timestamp":1772366400,"data":{"attendeeId":1}}`)
	now := time.Unix(1772366400, 0)
	cases := []struct {
		name   string
		secret string
		header string
		now    time.Time
		want   error
	}{
		{"good", "s3cret", Sign("s3cret", now, body), now, nil},
		{"good within window", "s3cret", Sign("s3cret", now, body), now.Add(4 * time.Minute), nil},
		{"stale", "s3cret", Sign("s3cret", now, body), now.Add(6 * time.Minute), connectors.ErrStale},
		{"from the future", "s3cret", Sign("s3cret", now, body), now.Add(-6 * time.Minute), connectors.ErrStale},
		{"wrong secret", "s3cret", Sign("other", now, body), now, connectors.ErrUnauthorized},
		{"missing header", "s3cret", "", now, connectors.ErrUnauthorized},
		{"malformed header", "s3cret", "v1=zz", now, connectors.ErrUnauthorized},
		{"no secret configured", "", Sign("s3cret", now, body), now, connectors.ErrUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.header != "" {
				h.Set(SignatureHeader, tc.header)
			}
			err := Verify(tc.secret, 0, h, body, tc.now)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("tampered body", func(t *testing.T) {
		h := http.Header{SignatureHeader: {Sign("s3cret", now, body)}}
		if err := Verify("s3cret", 0, h, append(body, ' '), now); !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("got %v", err)
		}
	})
}

// The sandbox's real deliveries verify and parse; a retried delivery has
// the same Event.ID; other topics give no events.
func TestWebhooksFromTheSandbox(t *testing.T) {
	e := newEnv(t, 50, nil)
	var mu sync.Mutex
	type got struct {
		header http.Header
		body   []byte
	}
	var deliveries []got
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		deliveries = append(deliveries, got{r.Header.Clone(), b})
		mu.Unlock()
	}))
	defer recv.Close()
	res, err := http.Post(e.url+"/_sandbox/webhooks", "application/json", strings.NewReader(`{"url":"`+recv.URL+`"}`))
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("register: %v %v", err, res)
	}
	if _, err := e.srv.Mutate(sandboxkit.Mutation{Kind: sandbox.MutateRegister, Count: 1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.srv.WaitDeliveries(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(deliveries) != 2 { // registration.created and order.paid
		t.Fatalf("%d deliveries", len(deliveries))
	}
	counts := map[string]int{}
	hookIDs := map[string][]string{}
	for _, name := range []string{"registration_created", "order_paid", "attendee_checked_in"} {
		tr := e.spec.Trigger(name)
		for _, d := range deliveries {
			if err := tr.Webhook.Verify(e.conn, d.header, d.body, time.Now()); err != nil {
				t.Fatalf("verify: %v", err)
			}
			evs, err := tr.Webhook.Parse(context.Background(), e.conn, d.body, connectors.WebhookRequest{Params: map[string]any{}})
			if err != nil {
				t.Fatal(err)
			}
			again, _ := tr.Webhook.Parse(context.Background(), e.conn, d.body, connectors.WebhookRequest{Params: map[string]any{}})
			if len(evs) != len(again) || len(evs) == 1 && evs[0].ID != again[0].ID {
				t.Fatalf("a repeated delivery changed its events: %v vs %v", ids(evs), ids(again))
			}
			for _, ev := range evs {
				if err := validate(tr.Output, ev.Data); err != nil {
					t.Errorf("%s data: %v", name, err)
				}
			}
			counts[name] += len(evs)
			for _, ev := range evs {
				hookIDs[name] = append(hookIDs[name], ev.ID)
			}
		}
	}
	if counts["registration_created"] != 1 || counts["order_paid"] != 1 || counts["attendee_checked_in"] != 0 {
		t.Fatalf("events per trigger: %v", counts)
	}
	// A webhook names a change as the poll does: a hybrid trigger drops the
	// one it sees second.
	for name, list := range hookIDs {
		polled := map[string]bool{}
		for _, ev := range e.poller(name, connectors.StartBeginning, nil).drain() {
			polled[ev.ID] = true
		}
		for _, id := range list {
			if !polled[id] {
				t.Errorf("%s: webhook event %s is not among the polled events %v", name, id, polled)
			}
		}
	}
	// Another event's deliveries are not this connection's.
	other := newEnv(t, 10, func(c *connectors.ConnectionConfig) { c.Options = map[string]any{"eventUrl": "another-event"} })
	evs, err := other.spec.Trigger("registration_created").Webhook.Parse(context.Background(), other.conn, deliveries[0].body, connectors.WebhookRequest{})
	if err != nil || len(evs) != 0 {
		t.Fatalf("foreign event: %v %v", evs, err)
	}
}
