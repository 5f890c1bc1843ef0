package memberships

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
	"github.com/memberflow/memberflow/connectors/openapi"
)

func paymentActions(sch *schemas) []*connectors.ActionSpec {
	pay := sch.payment
	upsertIn := map[string]any{
		"externalRef": str("The id of this payment in the other system (an Accelevents order, a Stripe charge): the key the payment is found by."),
		"userId":      str("The member who paid; required when the payment is created."),
		"amount":      map[string]any{"type": "number", "minimum": 0, "description": "The amount in the currency's major unit; required when created."},
		"currency":    map[string]any{"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 code; required when created."},
		"status":      enumOf(paymentStatuses, "pending, paid, refunded or failed."),
		"source":      str("Where the payment came from (accelevents, stripe, manual, ...)."),
	}
	return []*connectors.ActionSpec{
		{
			Operation: connectors.Operation{
				Name:        "find_payment",
				Summary:     "Find a payment by its external reference.",
				Description: "GET /payments?externalRef=. When several payments share the reference (a duplicate), the oldest is returned and `count` says how many there are.",
				Input:       raw(object([]string{"externalRef"}, map[string]any{"externalRef": upsertIn["externalRef"]})),
				Output: raw(object([]string{"found", "count"}, map[string]any{
					"found":   map[string]any{"type": "boolean", "description": "Whether a payment has this reference."},
					"count":   map[string]any{"type": "integer", "description": "How many payments have this reference."},
					"payment": nullable(pay, "The oldest payment with this reference, or null."),
				})),
				Example: map[string]any{"externalRef": "ae-order-122111"},
			},
			ReadOnly:   true,
			Idempotent: true,
			Run:        connectors.Bind(findPaymentAction),
		},
		{
			Operation: connectors.Operation{
				Name:        "upsert_payment",
				Summary:     "Record a payment once, by external reference: never a duplicate.",
				Description: "Finds the payment by externalRef; updates the fields given when found, else creates it (userId, amount and currency are then required).",
				Input:       raw(object([]string{"externalRef"}, upsertIn)),
				Output: raw(object([]string{"created", "payment"}, map[string]any{
					"created": map[string]any{"type": "boolean", "description": "True when the payment was created, false when an existing one was updated."},
					"payment": withDesc(pay, "The payment as stored."),
				})),
				Example: map[string]any{"externalRef": "ae-order-122111", "userId": "ve9EPM428h8vShlRW1KT", "amount": 180, "currency": "USD", "status": "paid", "source": "accelevents"},
			},
			// The look-up makes a re-send safe; the Settle says whether an
			// in-doubt create or update landed without sending anything.
			Idempotent:  true,
			Idempotency: &connectors.Idempotency{Kind: connectors.ResendUpserts, Key: []string{"externalRef"}},
			Run:         connectors.Bind(upsertPaymentAction),
			Settle:      settleUpsertPayment,
			// A payment already as asked is not sent again.
			ReportsUnchanged: true,
		},
	}
}

// paymentsByRef returns the payments with a reference, oldest first.
func (c *Client) paymentsByRef(ctx context.Context, op, ref string) ([]map[string]any, error) {
	if ref == "" {
		return nil, fmt.Errorf("memberships.%s: externalRef is empty", op)
	}
	var out struct {
		Payments []map[string]any `json:"payments"`
	}
	q := url.Values{"externalRef": {ref}, "limit": {"100"}}
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodGet, Path: "/payments", Query: q}, &out); err != nil {
		return nil, fmt.Errorf("memberships.%s: looking up %q: %w", op, ref, err)
	}
	return out.Payments, nil
}

func wrotePayment(p map[string]any) []connectors.Record {
	id, _ := p["id"].(string)
	if id == "" {
		return nil
	}
	return []connectors.Record{{Subject: paymentSubject(id), State: PaymentFingerprint(p)}}
}

func findPaymentAction(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	ref, _ := in["externalRef"].(string)
	pays, err := c.paymentsByRef(ctx, "find_payment", ref)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"found": len(pays) > 0, "count": len(pays), "payment": nil}
	if len(pays) > 0 {
		out["payment"] = pays[0]
	}
	return &connectors.Result{Output: out}, nil
}

func upsertPaymentAction(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	const op = "upsert_payment"
	ref, _ := in["externalRef"].(string)
	pays, err := c.paymentsByRef(ctx, op, ref)
	if err != nil {
		return nil, err
	}
	if len(pays) > 0 {
		id, _ := pays[0]["id"].(string)
		body := map[string]any{}
		for _, k := range []string{"amount", "currency", "status", "source"} {
			if v, ok := in[k]; ok && fmt.Sprint(v) != fmt.Sprint(pays[0][k]) {
				body[k] = v
			}
		}
		if len(body) == 0 {
			// Already as asked: nothing is sent, nothing is written.
			return &connectors.Result{Output: map[string]any{"created": false, "payment": pays[0]}}, nil
		}
		var p map[string]any
		if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPut, Path: "/payments/" + id, Body: body}, &p); err != nil {
			return nil, fmt.Errorf("memberships.%s: updating payment %s: %w", op, id, err)
		}
		return &connectors.Result{Output: map[string]any{"created": false, "payment": p}, Wrote: wrotePayment(p)}, nil
	}
	for _, k := range []string{"userId", "amount", "currency"} {
		if _, ok := in[k]; !ok {
			return nil, fmt.Errorf("memberships.%s: no payment has externalRef %q, and creating one needs userId, amount and currency (%s is missing)", op, ref, k)
		}
	}
	var p map[string]any
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: "/payments", Body: in}, &p); err != nil {
		return nil, fmt.Errorf("memberships.%s: creating payment %q: %w", op, ref, err)
	}
	return &connectors.Result{Output: map[string]any{"created": true, "payment": p}, Wrote: wrotePayment(p)}, nil
}

// settleCreatePayment looks an in-doubt create up by its externalRef.
func settleCreatePayment(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	ref, _ := in["externalRef"].(string)
	if ref == "" {
		return nil, false, fmt.Errorf("memberships.create_payment: cannot settle a create without externalRef: nothing to look it up by; set externalRef or use upsert_payment")
	}
	pays, err := c.paymentsByRef(ctx, "create_payment", ref)
	if err != nil {
		return nil, false, fmt.Errorf("settling: %w", err)
	}
	if len(pays) == 0 {
		return nil, false, nil
	}
	p := pays[len(pays)-1]
	return &connectors.Result{Output: p, Wrote: wrotePayment(p)}, true, nil
}

// settleUpsertPayment looks an in-doubt upsert up by its externalRef: it
// happened when a payment has the reference and every field the input
// gives. A payment with the reference but other values (an update that did
// not land) is not settled: the upsert is sent again and updates it.
func settleUpsertPayment(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	ref, _ := in["externalRef"].(string)
	pays, err := c.paymentsByRef(ctx, "upsert_payment", ref)
	if err != nil {
		return nil, false, fmt.Errorf("settling: %w", err)
	}
	if len(pays) == 0 {
		return nil, false, nil
	}
	p := pays[0]
	for _, k := range []string{"userId", "amount", "currency", "status", "source"} {
		want, ok := in[k]
		if !ok {
			continue
		}
		if !sameValue(want, p[k]) {
			return nil, false, nil
		}
	}
	// Only a create can be in doubt (an update is a PUT, re-sent freely),
	// so a settled upsert created the payment.
	return &connectors.Result{Output: map[string]any{"created": true, "payment": p}, Wrote: wrotePayment(p)}, true, nil
}

// sameValue compares an input value with the API's answer, numbers by
// value (the input may hold an int, the answer a float64).
func sameValue(a, b any) bool {
	if x, ok := toFloat(a); ok {
		y, ok := toFloat(b)
		return ok && x == y
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// oauthActions replace the generated token actions: GoHighLevel's token
// endpoints take form-encoded bodies, which the generated (JSON) request
// would not be.
func oauthActions(doc *openapi.Document) []*connectors.ActionSpec {
	// anonymous: /oauth/token documents no security and no Version
	// header, so it is sent neither the connection's token nor its
	// default headers; /oauth/locationToken takes the agency token.
	mk := func(name, path string, anonymous, reusable bool, desc string, example map[string]any) *connectors.ActionSpec {
		op, _, ok := doc.Find(http.MethodPost, path)
		if !ok {
			panic("memberships: openapi.json has no POST " + path)
		}
		in := op.InputSchema()
		a := &connectors.ActionSpec{
			Operation: connectors.Operation{
				Name:        name,
				Summary:     op.Summary + " (form-encoded POST " + path + ").",
				Description: desc,
				Input:       raw(in),
				Output:      raw(op.Response),
				Example:     example,
			},
			Run: connectors.Bind(func(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
				form := url.Values{}
				for k, v := range in {
					form.Set(k, fmt.Sprint(v))
				}
				var out map[string]any
				_, err := c.api.JSON(ctx, apiclient.Request{
					Method: http.MethodPost, Path: path,
					RawBody: []byte(form.Encode()), ContentType: "application/x-www-form-urlencoded",
					Anonymous: anonymous,
				}, &out)
				if err != nil {
					return nil, fmt.Errorf("memberships.%s: %w", name, err)
				}
				return &connectors.Result{Output: out}, nil
			}),
		}
		if reusable {
			// A second request issues another token, never a duplicate.
			a.Idempotent, a.Idempotency = true, &connectors.Idempotency{Kind: connectors.ResendIssues}
		}
		// Else the grant spends what it presents (an authorization code,
		// a refresh token the service rotates): re-sent after a lost
		// answer it is refused, and the token the first one issued is
		// lost. The engine dead-letters such a run in doubt instead, for
		// the operator to authorise again.
		return a
	}
	return []*connectors.ActionSpec{
		mk("get_access_token", "/oauth/token", true, false,
			"Exchanges client credentials, a refresh token or an authorization code for an access token. Connections with oauth2 auth do this themselves; the action is for recipes that hand tokens on. Each refresh invalidates the refresh token used.",
			map[string]any{"client_id": "memberflow-sandbox-client", "client_secret": "memberflow-sandbox-demo-secret", "grant_type": "client_credentials", "user_type": "Location"}),
		mk("get_location_access_token", "/oauth/locationToken", false, true,
			"Exchanges a company (agency) token for a token of one of its locations.",
			map[string]any{"companyId": "mfSandboxCompany0001", "locationId": "mfSandboxLocation001"}),
	}
}
