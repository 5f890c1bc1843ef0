package memberships

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// SignatureHeader is GoHighLevel's webhook signature header: the base64
// RSA-SHA256 (PKCS#1 v1.5) signature of the raw body.
const SignatureHeader = "x-wh-signature"

// defaultTolerance is how far a delivery's timestamp may be from now.
const defaultTolerance = 5 * time.Minute

// delivery is a decoded webhook body:
// {type, timestamp, webhookId, locationId, ...record}.
type delivery struct {
	typ       string
	webhookID string
	at        time.Time
	previous  string // previousMembershipStatus (ours), on UserUpdate
	rec       map[string]any
}

func decodeDelivery(body []byte) (delivery, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return delivery{}, fmt.Errorf("memberships webhook: body is not a JSON object: %w", err)
	}
	d := delivery{rec: m}
	d.typ, _ = m["type"].(string)
	d.webhookID, _ = m["webhookId"].(string)
	d.previous, _ = m["previousMembershipStatus"].(string)
	ts, _ := m["timestamp"].(string)
	if d.typ == "" || d.webhookID == "" || ts == "" {
		return d, fmt.Errorf("memberships webhook: body needs type, webhookId and timestamp")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return d, fmt.Errorf("memberships webhook: timestamp %q is not RFC 3339: %w", ts, err)
	}
	d.at = t
	for _, k := range []string{"type", "timestamp", "webhookId", "previousMembershipStatus"} {
		delete(m, k)
	}
	return d, nil
}

// verify checks the signature with the connection's public key, then the
// timestamp window.
func verify(conn connectors.Conn, header http.Header, body []byte, now time.Time) error {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return err
	}
	key, err := c.publicKey()
	if err != nil {
		return err
	}
	sig := strings.TrimSpace(header.Get(SignatureHeader))
	if sig == "" {
		return fmt.Errorf("memberships webhook: %w: the %s header is missing", connectors.ErrUnauthorized, SignatureHeader)
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("memberships webhook: %w: %s is not base64", connectors.ErrUnauthorized, SignatureHeader)
	}
	sum := sha256.Sum256(body)
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], raw); err != nil {
		return fmt.Errorf("memberships webhook: %w: the RSA-SHA256 signature does not match the body", connectors.ErrUnauthorized)
	}
	d, err := decodeDelivery(body)
	if err != nil {
		return fmt.Errorf("%w (%v)", connectors.ErrUnauthorized, err)
	}
	tol := c.webhook.Tolerance
	if tol <= 0 {
		tol = defaultTolerance
	}
	if skew := now.Sub(d.at); skew > tol || skew < -tol {
		return fmt.Errorf("memberships webhook %s: %w: timestamp %s is %s from now (tolerance %s)", d.webhookID, connectors.ErrStale, d.at.Format(time.RFC3339), skew.Round(time.Second), tol)
	}
	return nil
}

// webhookFor makes a trigger's WebhookSpec from its delivery parser.
func webhookFor(parse func(ctx context.Context, d delivery, req connectors.WebhookRequest) ([]connectors.Event, error)) *connectors.WebhookSpec {
	return &connectors.WebhookSpec{
		Key:    "public_key",
		Verify: verify,
		Parse: func(ctx context.Context, conn connectors.Conn, body []byte, req connectors.WebhookRequest) ([]connectors.Event, error) {
			d, err := decodeDelivery(body)
			if err != nil {
				return nil, err
			}
			// The service signs every delivery with one published key, so
			// a good signature says who sent it, not for whom: anyone with
			// a location of their own can have it send signed deliveries
			// here. Only the connection's location is taken, as its polls
			// read only that location.
			if c, err := connectors.As[*Client](conn); err == nil && c.locationID != "" {
				if loc, _ := d.rec["locationId"].(string); loc != c.locationID {
					return nil, nil
				}
			}
			return parse(ctx, d, req)
		},
	}
}

func userEvent(d delivery) (connectors.Event, string) {
	id, _ := d.rec["id"].(string)
	sub := userSubject(id)
	return connectors.Event{ID: deliveryChangeID(d, sub, "dateUpdated"), Subject: sub, Fingerprint: UserFingerprint(d.rec), Time: d.at, Data: d.rec}, id
}

// deliveryChangeID names the change a delivery reports the way a poll
// names it (subject/created, subject@<changed>), so that a hybrid trigger
// (webhooks, and a reconciling poll) runs a change seen both ways once.
// A record without the time falls back to the delivery's ID.
func deliveryChangeID(d delivery, subject, changedField string) string {
	if d.typ == "UserCreate" || d.typ == "PaymentCreate" {
		return subject + "/created"
	}
	return recordChangeID(d, subject, changedField)
}

// recordChangeID is changeID for a delivered record: subject@<changed>.
func recordChangeID(d delivery, subject, changedField string) string {
	changed, _ := d.rec[changedField].(string)
	if ns := parseTime(changed); ns != 0 {
		return subject + "@" + strconv.FormatInt(ns, 10)
	}
	return d.webhookID
}

func parseUserCreated(_ context.Context, d delivery, req connectors.WebhookRequest) ([]connectors.Event, error) {
	if d.typ != "UserCreate" {
		return nil, nil
	}
	ev, _ := userEvent(d)
	status, _ := d.rec["membershipStatus"].(string)
	if !matches(req.Params["membershipStatus"], status) {
		return nil, nil
	}
	return []connectors.Event{ev}, nil
}

func parseUserUpdated(_ context.Context, d delivery, req connectors.WebhookRequest) ([]connectors.Event, error) {
	if d.typ != "UserUpdate" {
		return nil, nil
	}
	ev, _ := userEvent(d)
	status, _ := d.rec["membershipStatus"].(string)
	if !matches(req.Params["membershipStatus"], status) {
		return nil, nil
	}
	return []connectors.Event{ev}, nil
}

func parseUserChanged(ctx context.Context, d delivery, req connectors.WebhookRequest) ([]connectors.Event, error) {
	if d.typ == "UserCreate" {
		return parseUserCreated(ctx, d, req)
	}
	return parseUserUpdated(ctx, d, req)
}

// parseStatusChanged takes the previous status from the delivery, else
// from the state remembered for the member.
func parseStatusChanged(ctx context.Context, d delivery, req connectors.WebhookRequest) ([]connectors.Event, error) {
	if d.typ != "UserCreate" && d.typ != "UserUpdate" {
		return nil, nil
	}
	ev, _ := userEvent(d)
	to, _ := d.rec["membershipStatus"].(string)
	var from any
	if d.typ == "UserUpdate" {
		prev := d.previous
		if prev == "" && req.Prior != nil {
			states, err := req.Prior.Lookup(ctx, []string{ev.Subject})
			if err != nil {
				return nil, fmt.Errorf("memberships webhook: reading remembered states: %w", err)
			}
			prev = statusOf(states[ev.Subject])
		}
		if prev == "" || prev == to {
			return nil, nil
		}
		from = prev
	}
	// A status change is named by the record's change, as the poll names
	// it, whether the delivery is a creation or an update.
	out := statusEvent(recordChangeID(d, ev.Subject, "dateUpdated"), ev.Subject, ev.Fingerprint, ev.Time, d.rec, from, to, req.Params)
	if out == nil {
		return nil, nil
	}
	return []connectors.Event{*out}, nil
}

func parsePayment(typ string) func(context.Context, delivery, connectors.WebhookRequest) ([]connectors.Event, error) {
	return func(_ context.Context, d delivery, req connectors.WebhookRequest) ([]connectors.Event, error) {
		if d.typ != typ {
			return nil, nil
		}
		delete(d.rec, "locationId") // the envelope's, not the payment's
		id, _ := d.rec["id"].(string)
		if status, _ := d.rec["status"].(string); !matches(req.Params["status"], status) {
			return nil, nil
		}
		return []connectors.Event{{ID: deliveryChangeID(d, paymentSubject(id), "updatedAt"), Subject: paymentSubject(id), Fingerprint: PaymentFingerprint(d.rec), Time: d.at, Data: d.rec}}, nil
	}
}
