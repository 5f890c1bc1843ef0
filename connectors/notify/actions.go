package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/memberflow/memberflow/connectors"
)

// SignatureHeader carries the HMAC signature of a webhook notification.
const SignatureHeader = "X-Memberflow-Signature"

// Sign computes the signature header value of body sent at t: t=<unix
// seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">, keyed with the secret.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a signature made by Sign, for receivers (and the sandbox's
// sink): the MAC, and the timestamp within tolerance of now.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, v1 string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	got, herr := hex.DecodeString(v1)
	if err != nil || herr != nil || v1 == "" {
		return fmt.Errorf("notify: signature %q is malformed (want t=<unix>,v1=<hex>): %w", header, connectors.ErrUnauthorized)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("notify: signature time is %s away: %w", d.Round(time.Second), connectors.ErrStale)
	}
	if !hmac.Equal(got, mac(secret, ts, body)) {
		return fmt.Errorf("notify: signature does not match: %w", connectors.ErrUnauthorized)
	}
	return nil
}

const webhookInput = `{
  "type": "object",
  "additionalProperties": false,
  "required": ["body"],
  "properties": {
    "body": {"type": "object", "description": "The JSON object to POST (for an alert: the trigger, e.g. ${{ trigger })."},
    "path": {"type": "string", "pattern": "^/", "description": "Appended to the connection's base_url."}
  }
}`

const sentOutput = `{
  "type": "object",
  "properties": {
    "status": {"type": "integer", "description": "The receiver's HTTP status (250 for email)."},
    "sent_at": {"type": "string", "format": "date-time"}
  }
}`

func webhookAction() *connectors.ActionSpec {
	return &connectors.ActionSpec{
		Operation: connectors.Operation{
			Name:    "webhook",
			Summary: "POST a JSON object to the connection's URL, signed with HMAC-SHA256 when the connection has a webhook secret.",
			Input:   json.RawMessage(webhookInput), Output: json.RawMessage(sentOutput),
			Example: map[string]any{"body": map[string]any{"cause": "trigger_failing", "recipe": "sync-members-to-attendees"}},
			HTTP:    &connectors.HTTPBinding{Method: http.MethodPost, Path: "/"},
		},
		SignsWithWebhook: true,
		// A receiver sees the same notification twice at worst: that is
		// better than none, so a failed POST is sent again.
		Idempotent:  true,
		Idempotency: &connectors.Idempotency{Kind: connectors.ResendNotifies},
		Run: connectors.Bind(func(ctx context.Context, n *Notifier, in map[string]any) (*connectors.Result, error) {
			body, err := json.Marshal(in["body"])
			if err != nil {
				return nil, fmt.Errorf("notify.webhook: encoding the body: %w", err)
			}
			path, _ := in["path"].(string)
			u := strings.TrimRight(n.base.String(), "/") + path
			if path == "" {
				u = n.base.String()
			}
			return n.post(ctx, "webhook", u, body, true)
		}),
	}
}

const slackInput = `{
  "type": "object",
  "additionalProperties": false,
  "required": ["text"],
  "properties": {
    "text": {"type": "string", "minLength": 1, "description": "The message, also Slack's notification text."},
    "recipe": {"type": "string"},
    "cause": {"type": "string"},
    "count": {"type": "integer"},
    "run_ids": {"type": "array", "items": {"type": "integer"}, "description": "Linked to the console when the connection sets consoleURL."},
    "error": {"type": "string"}
  }
}`

func slackAction() *connectors.ActionSpec {
	return &connectors.ActionSpec{
		Operation: connectors.Operation{
			Name:    "slack",
			Summary: "Post a message with blocks (recipe, cause, count, run ids, error) to a Slack incoming webhook.",
			Input:   json.RawMessage(slackInput), Output: json.RawMessage(sentOutput),
			Example: map[string]any{"text": "3 runs of issue-certificate dead-lettered", "recipe": "issue-certificate", "cause": "run_failed", "count": 3, "run_ids": []any{12, 15, 19}},
			HTTP:    &connectors.HTTPBinding{Method: http.MethodPost, Path: "/services/{token}"},
		},
		Idempotent:  true,
		Idempotency: &connectors.Idempotency{Kind: connectors.ResendNotifies},
		Run: connectors.Bind(func(ctx context.Context, n *Notifier, in map[string]any) (*connectors.Result, error) {
			body, err := json.Marshal(n.slackMessage(in))
			if err != nil {
				return nil, fmt.Errorf("notify.slack: encoding the message: %w", err)
			}
			u := strings.TrimRight(n.base.String(), "/")
			if n.auth.Token != "" {
				u += "/services/" + strings.TrimPrefix(n.auth.Token, "/")
			}
			return n.post(ctx, "slack", u, body, false)
		}),
	}
}

// slackMessage builds an incoming-webhook payload: the text, a section of
// fields, and the runs (linked when the console's URL is known).
func (n *Notifier) slackMessage(in map[string]any) map[string]any {
	text, _ := in["text"].(string)
	blocks := []any{map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": text}}}
	var fields []any
	field := func(label string, v any) {
		if s := fmt.Sprint(v); v != nil && s != "" && s != "0" {
			fields = append(fields, map[string]any{"type": "mrkdwn", "text": "*" + label + "*\n" + s})
		}
	}
	field("Recipe", in["recipe"])
	field("Cause", in["cause"])
	field("Count", in["count"])
	if len(fields) > 0 {
		blocks = append(blocks, map[string]any{"type": "section", "fields": fields})
	}
	if ids, _ := in["run_ids"].([]any); len(ids) > 0 {
		var parts []string
		for _, id := range ids {
			s := fmt.Sprint(id)
			if n.opts.consoleURL != "" {
				s = "<" + strings.TrimRight(n.opts.consoleURL, "/") + "/runs/" + s + "|" + s + ">"
			}
			parts = append(parts, s)
		}
		blocks = append(blocks, map[string]any{"type": "context", "elements": []any{
			map[string]any{"type": "mrkdwn", "text": "Runs: " + strings.Join(parts, ", ") + " (memberflow runs show ID)"}}})
	}
	if e, _ := in["error"].(string); e != "" {
		blocks = append(blocks, map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "```" + e + "```"}})
	}
	return map[string]any{"text": text, "blocks": blocks}
}

// post sends one notification; the receiver's 2xx is success, 429 and
// 5xx are retryable API errors.
func (n *Notifier) post(ctx context.Context, kind, u string, body []byte, sign bool) (*connectors.Result, error) {
	now := n.now()
	if n.dryRun != nil {
		var doc any
		json.Unmarshal(body, &doc)
		n.dryRun(connectors.PlannedWrite{Connection: n.name, Method: http.MethodPost, Path: n.redact.String(u), Body: doc})
		return &connectors.Result{Output: map[string]any{"status": 200, "sent_at": now.UTC().Format(time.RFC3339)}}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("notify.%s: %s", kind, n.redact.String(err.Error()))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "memberflow")
	if sign && n.secret != "" {
		req.Header.Set(SignatureHeader, Sign(n.secret, now, body))
	}
	res, err := n.http.Do(req)
	if err != nil {
		return nil, &sendError{msg: fmt.Sprintf("notify.%s: %s", kind, n.redact.String(err.Error()))}
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, &connectors.APIError{Service: "notify." + kind, Status: res.StatusCode, Message: n.redact.String(strings.TrimSpace(string(msg))),
			Retryable: res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500}
	}
	return &connectors.Result{Output: map[string]any{"status": res.StatusCode, "sent_at": now.UTC().Format(time.RFC3339)}}, nil
}

// sendError is a failure below the protocol (connection refused, reset,
// timed out): worth another try.
type sendError struct{ msg string }

func (e *sendError) Error() string   { return e.msg }
func (e *sendError) Temporary() bool { return true }

const emailInput = `{
  "type": "object",
  "additionalProperties": false,
  "required": ["to", "subject", "text"],
  "properties": {
    "to": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 3}, "description": "Recipients."},
    "subject": {"type": "string", "minLength": 1},
    "text": {"type": "string", "description": "Plain-text body."}
  }
}`

func emailAction() *connectors.ActionSpec {
	return &connectors.ActionSpec{
		Operation: connectors.Operation{
			Name:    "email",
			Summary: "Send a plain-text email through the connection's SMTP server, with STARTTLS.",
			Input:   json.RawMessage(emailInput), Output: json.RawMessage(sentOutput),
			Example: map[string]any{"to": []any{"ops@example.org"}, "subject": "memberflow: the certificate service refuses its credentials", "text": "Renew the API key."},
		},
		Idempotent:  true,
		Idempotency: &connectors.Idempotency{Kind: connectors.ResendNotifies},
		Run: connectors.Bind(func(ctx context.Context, n *Notifier, in map[string]any) (*connectors.Result, error) {
			return n.email(ctx, in)
		}),
	}
}

func (n *Notifier) email(ctx context.Context, in map[string]any) (*connectors.Result, error) {
	if n.base.Scheme != "smtp" {
		return nil, fmt.Errorf("notify.email: connection %q: base_url must be smtp://host:port, got %s", n.name, n.base.Scheme)
	}
	if n.opts.from == "" {
		return nil, fmt.Errorf("notify.email: connection %q: options.from is not set", n.name)
	}
	var to []string
	for _, v := range in["to"].([]any) {
		to = append(to, fmt.Sprint(v))
	}
	subject, _ := in["subject"].(string)
	text, _ := in["text"].(string)
	now := n.now()
	if n.dryRun != nil {
		n.dryRun(connectors.PlannedWrite{Connection: n.name, Method: "SMTP", Path: n.base.Host,
			Body: map[string]any{"from": n.opts.from, "to": to, "subject": subject, "text": text}})
		return &connectors.Result{Output: map[string]any{"status": 250, "sent_at": now.UTC().Format(time.RFC3339)}}, nil
	}
	m := mail.NewMsg()
	if err := m.From(n.opts.from); err != nil {
		return nil, fmt.Errorf("notify.email: from %q: %w", n.opts.from, err)
	}
	if err := m.To(to...); err != nil {
		return nil, fmt.Errorf("notify.email: to %v: %w", to, err)
	}
	m.Subject(subject)
	m.SetDateWithValue(now)
	m.SetMessageID()
	m.SetBodyString(mail.TypeTextPlain, text)
	policy := mail.TLSMandatory
	switch n.opts.tls {
	case "opportunistic":
		policy = mail.TLSOpportunistic
	case "none":
		policy = mail.NoTLS
	}
	opts := []mail.Option{mail.WithTLSPolicy(policy), mail.WithTLSConfig(n.tlsConfig()), mail.WithPort(n.smtpPort()), mail.WithTimeout(n.timeout)}
	if n.opts.username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(n.opts.username), mail.WithPassword(n.auth.Key))
	}
	c, err := mail.NewClient(n.base.Hostname(), opts...)
	if err != nil {
		return nil, fmt.Errorf("notify.email: %s", n.redact.String(err.Error()))
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		msg := "notify.email: " + n.redact.String(err.Error())
		var refused *mail.SendError
		var reply *textproto.Error
		if (errors.As(err, &refused) && !refused.IsTemp() && refused.ErrorCode() >= 500) || (errors.As(err, &reply) && reply.Code >= 500) {
			// The server said no for good (a bad address, a refused
			// login): sending again would not change its mind.
			return nil, errors.New(msg)
		}
		return nil, &sendError{msg: msg}
	}
	return &connectors.Result{Output: map[string]any{"status": 250, "sent_at": now.UTC().Format(time.RFC3339)}}, nil
}
