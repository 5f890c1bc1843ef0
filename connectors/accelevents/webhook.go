package accelevents

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// Webhooks are ours to define (Accelevents does not publish a payload or
// signature). A delivery is a POST with the JSON body
//
//	{"id":"whd_...","topic":"registration.created","eventUrl":"...","timestamp":1767225600,"data":{...}}
//
// and the header
//
//	X-Accelevents-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">
//
// keyed with the connection's webhook secret. Deliveries older or newer
// than the tolerance (default five minutes) are refused; a retried delivery
// keeps its id, which is the Event.ID, so it runs once.

// SignatureHeader is the signature header of our webhook scheme.
const SignatureHeader = "X-Accelevents-Signature"

// DefaultTolerance is the accepted skew of a delivery's timestamp.
const DefaultTolerance = 5 * time.Minute

// Topics.
const (
	TopicRegistration = "registration.created"
	TopicOrderPaid    = "order.paid"
	TopicCheckedIn    = "attendee.checked_in"
)

// Sign computes the signature header value for body at t, for senders and
// tests.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery's signature and freshness.
func Verify(secret string, tolerance time.Duration, header http.Header, body []byte, now time.Time) error {
	if secret == "" {
		return fmt.Errorf("accelevents webhook: the connection has no webhook secret: %w", connectors.ErrUnauthorized)
	}
	sig := header.Get(SignatureHeader)
	if sig == "" {
		return fmt.Errorf("accelevents webhook: header %s is missing: %w", SignatureHeader, connectors.ErrUnauthorized)
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(sig, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("accelevents webhook: header %s is malformed (want t=<unix>,v1=<hex>): %w", SignatureHeader, connectors.ErrUnauthorized)
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("accelevents webhook: signature does not match: %w", connectors.ErrUnauthorized)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if skew := now.Sub(time.Unix(t, 0)); skew > tolerance || skew < -tolerance {
		return fmt.Errorf("accelevents webhook: timestamp %d is %s from now: %w", t, skew.Round(time.Second), connectors.ErrStale)
	}
	return nil
}

// Delivery is a webhook body.
type Delivery struct {
	ID        string         `json:"id"`
	Topic     string         `json:"topic"`
	EventURL  string         `json:"eventUrl"`
	Timestamp int64          `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

func webhookSpec(topic string, sc *scan, subject func(data map[string]any) (string, string, error), keep func(params, data map[string]any) bool) *connectors.WebhookSpec {
	return &connectors.WebhookSpec{
		Key: "secret",
		Verify: func(conn connectors.Conn, header http.Header, body []byte, now time.Time) error {
			c, err := connectors.As[*Client](conn)
			if err != nil {
				return err
			}
			return Verify(c.webhook.Secret, c.webhook.Tolerance, header, body, now)
		},
		Parse: func(_ context.Context, conn connectors.Conn, body []byte, req connectors.WebhookRequest) ([]connectors.Event, error) {
			c, err := connectors.As[*Client](conn)
			if err != nil {
				return nil, err
			}
			var d Delivery
			if err := json.Unmarshal(body, &d); err != nil {
				return nil, fmt.Errorf("accelevents webhook: body is not a delivery: %w", err)
			}
			if d.ID == "" || d.Data == nil {
				return nil, fmt.Errorf("accelevents webhook: delivery lacks id or data")
			}
			if d.Topic != topic {
				return nil, nil
			}
			want := str(req.Params, "eventUrl")
			if want == "" {
				want = c.eventURL
			}
			if want != "" && d.EventURL != want {
				return nil, nil
			}
			if keep != nil && !keep(req.Params, d.Data) {
				return nil, nil
			}
			subj, fp, err := subject(d.Data)
			if err != nil {
				return nil, fmt.Errorf("accelevents webhook %s: %w", d.ID, err)
			}
			// The change is named as the poll names it, so that a hybrid
			// trigger (webhooks and a reconciling poll) runs it once.
			id := d.ID
			if sc != nil {
				if _, _, state, emit, changeID, err := sc.judge(d.Data, "", false); err == nil && emit && state != "" {
					id = changeID
				}
			}
			return []connectors.Event{{ID: id, Subject: subj, Fingerprint: fp, Time: time.Unix(d.Timestamp, 0).UTC(), Data: d.Data}}, nil
		},
	}
}

func attendeeOf(data map[string]any) (string, string, error) {
	var a Attendee
	if err := remarshal(data, &a); err != nil || a.AttendeeID == 0 {
		return "", "", fmt.Errorf("data is not an attendee")
	}
	return AttendeeSubject(a.AttendeeID), AttendeeFingerprint(&a), nil
}

func orderOf(data map[string]any) (string, string, error) {
	var o Order
	if err := remarshal(data, &o); err != nil || o.OrderID == 0 {
		return "", "", fmt.Errorf("data is not an order")
	}
	return OrderSubject(o.OrderID), OrderFingerprint(&o), nil
}

func remarshal(in any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}
