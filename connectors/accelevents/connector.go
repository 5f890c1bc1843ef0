// Package accelevents is the memberflow connector for Accelevents (events,
// tickets, registrations, check-in).
//
// Accelevents publishes little about its REST API; openapi.json is
// memberflow's description of it, marking what is ours ([design]) apart
// from what Accelevents documents. Every operation of that document is an
// action (generated.go); on top are hand-written actions that make a
// registration in one step, upsert attendees without duplicates, check in,
// record payments exactly once and draw QR codes, and three triggers fed by
// signed webhooks or by polling (webhook.go, trigger_*.go).
//
// The sandbox subpackage serves the same API in memory.
package accelevents

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

//go:embed openapi.json
var openAPIDoc []byte

// Name is the connector name recipes use.
const Name = "accelevents"

// DefaultBaseURL is the production API.
const DefaultBaseURL = "https://api.accelevents.com"

// DefaultRateLimit paces a connection: Accelevents documents no limit, so
// this is a conservative default (25 a second on average, half the
// sandbox's 50) that a connection may override with rate_limit. It is
// counted over 10 s, not 1 s: the token bucket keeps its burst and its
// jitter margin off the rate, which over a 1-second window cost 12 % of
// it (22 a second), over 10 s 2.5 % (24.4), and no second holds more
// than about 30.
var DefaultRateLimit = connectors.RateLimit{Requests: 250, Per: 10 * time.Second, Burst: 5}

const optionsSchema = `{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "eventUrl": {"type": "string", "minLength": 1, "description": "The event's URL name used when an operation names none (e.g. annual-conference-2026)."}
  }
}`

// Client is an opened Accelevents connection.
type Client struct {
	api      *apiclient.Client
	eventURL string
	webhook  connectors.Webhook
	log      hclog.Logger
	now      func() time.Time
	// listTotals is each event's attendee count as the list last said
	// (eventUrl → int): what reading the list again would cost, for
	// upsert_attendee's batch form to choose between it and look-ups.
	listTotals sync.Map
}

// API returns the HTTP client.
func (c *Client) API() *apiclient.Client { return c.api }

// EventURL returns the connection's default event.
func (c *Client) EventURL() string { return c.eventURL }

// Spec returns a fresh spec of the connector.
func Spec() *connectors.Spec {
	s := &connectors.Spec{
		Name:    Name,
		Title:   "Accelevents",
		Summary: "Events, tickets, registrations and check-in.",
		Description: "Accelevents' REST API as memberflow describes it (openapi.json): ticketing settings, " +
			"staff orders with holder data, attendees, payments, check-in by barcode and signed webhooks. " +
			"Authenticate with an API key (Enterprise → Integrations → API Key); memberflow sends it as " +
			"`Authorization: Bearer <key>`.",
		Auth:      []connectors.AuthKind{connectors.AuthAPIKey, connectors.AuthBearer},
		BaseURL:   DefaultBaseURL,
		RateLimit: DefaultRateLimit,
		Options:   json.RawMessage(optionsSchema),
		OpenAPI:   openAPIDoc,
		Open:      Open,
	}
	hand := handwritten()
	generated, err := generatedActions()
	if err != nil {
		panic(fmt.Sprintf("accelevents: openapi.json: %v", err)) // the embedded document is ours and tested
	}
	taken := map[string]bool{}
	for _, a := range hand {
		taken[a.Name] = true
	}
	for _, a := range generated {
		if !taken[a.Name] {
			s.Actions = append(s.Actions, a)
		}
	}
	s.Actions = append(s.Actions, hand...)
	s.Triggers = triggers()
	setEffects(s)
	declareRecords(s)
	return s
}

// effects say what each operation means in a run's summary.
var effects = map[string]string{
	"upsert_attendee":  "attendees synced",
	"create_attendee":  "attendees synced",
	"record_payment":   "payments mirrored",
	"attendee_qr_code": "QR codes made",
}

// setEffects labels the spec's operations.
func setEffects(s *connectors.Spec) {
	for _, a := range s.Actions {
		a.Effect = effects[a.Name]
	}
}

func init() { connectors.MustRegisterLazy(Name, Spec) }

// Open builds the connection's client. It does no I/O.
func Open(cfg connectors.ConnectionConfig) (connectors.Conn, error) {
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	rl := DefaultRateLimit
	if cfg.RateLimit != nil {
		rl = *cfg.RateLimit
	}
	auth := cfg.Auth
	switch auth.Type {
	case connectors.AuthAPIKey, connectors.AuthBearer:
	case "":
		return nil, fmt.Errorf("accelevents: connection %q: auth is required (api_key or bearer)", cfg.Name)
	default:
		return nil, fmt.Errorf("accelevents: connection %q: auth type %q is not supported (api_key or bearer)", cfg.Name, auth.Type)
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	eventURL := ""
	if v, ok := cfg.Options["eventUrl"]; ok {
		s, isString := v.(string)
		if !isString || strings.TrimSpace(s) == "" {
			return nil, fmt.Errorf("accelevents: connection %q: option eventUrl must be a non-empty string", cfg.Name)
		}
		eventURL = s
	}
	api, err := apiclient.New(apiclient.Config{
		Service:        Name,
		ConnectionName: cfg.Name,
		BaseURL:        base,
		Auth:           auth,
		APIKeyHeader:   "Authorization",
		APIKeyScheme:   "Bearer %s",
		RateLimit:      rl,
		Timeout:        cfg.Timeout,
		ParseError:     ParseError,
		HTTPClient:     cfg.HTTPClient,
		Logger:         log,
		DryRun:         cfg.DryRun,
		Tokens:         cfg.Tokens,
	})
	if err != nil {
		return nil, fmt.Errorf("connection %q: %w", cfg.Name, err)
	}
	return &Client{api: api, eventURL: eventURL, webhook: cfg.Webhook, log: log, now: time.Now}, nil
}

// errorMessages explains Accelevents' seven-digit codes; the service's
// own messages are terse.
var errorMessages = map[string]string{
	"4040200": "event not found",
	"4060405": "barcode does not exist",
	"4060406": "ticket already used (checked in before)",
	"4060408": "ticket refunded",
	"4060301": "not enough tickets left",
	"4010101": "not authorized: check the API key",
	"4030101": "the key's user is not staff of the event",
	"4030201": "the key's user is not the event host",
}

// ParseError reads Accelevents' {"errorCode":"4060406","errorMessage":...}
// body. Application errors (a used ticket, a missing barcode) are final:
// only 429 and 5xx are retryable.
func ParseError(status int, header http.Header, body []byte) *connectors.APIError {
	e := apiclient.ParseError(Name, status, header, body)
	if known, ok := errorMessages[e.Code]; ok && !strings.Contains(strings.ToLower(e.Message), known) {
		if e.Message == "" {
			e.Message = known
		} else {
			e.Message = known + ": " + e.Message
		}
	}
	e.Retryable = status == http.StatusTooManyRequests || status >= 500
	return e
}

// event picks the event of an operation: its eventUrl input, else the
// connection's option.
func (c *Client) event(in map[string]any) (string, error) {
	if v, ok := in["eventUrl"].(string); ok && v != "" {
		return v, nil
	}
	if c.eventURL != "" {
		return c.eventURL, nil
	}
	return "", fmt.Errorf("no event: set eventUrl in the step or the connection option eventUrl")
}

// path builds /rest/events/{eventUrl}/<rest>.
func eventPath(eventURL string, rest string, args ...any) string {
	p := "/rest/events/" + escape(eventURL)
	if rest != "" {
		p += "/" + fmt.Sprintf(rest, args...)
	}
	return p
}
