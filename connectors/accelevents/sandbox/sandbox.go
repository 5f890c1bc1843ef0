// Package sandbox is a simulated Accelevents REST API: one seeded event,
// ticket types with limited availability, staff orders with holder data,
// attendees with barcodes and check-in, payments, and webhooks signed the
// way connectors/accelevents documents (HMAC-SHA256).
//
// It is faithful to what Accelevents publishes (paths under
// /rest/events/{eventUrl}/..., 0-based pages, the seven-digit error codes in
// {"errorCode","errorMessage"}, the three key headers) and serves the parts
// marked [design] in openapi.json as memberflow defines them.
package sandbox

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
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

const (
	// DemoKey is the API key the sandbox accepts: a public demo value, not
	// a secret. Send it as `Authorization: <key>`, `Authorization: Bearer
	// <key>` or `Key: <key>`.
	DemoKey = "ae_demo_4f1c2b7e9d"
	// DemoWebhookSecret signs the sandbox's webhook deliveries (public demo
	// value); set it as the connection's webhook secret.
	DemoWebhookSecret = "ae_whsec_demo_8a3d"
	// DemoEventURL is the seeded event.
	DemoEventURL = "annual-conference-2026"
	// SignatureHeader carries `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
	SignatureHeader = "X-Accelevents-Signature"
)

// DefaultLimit is the sandbox's rate limit: Accelevents documents none, so
// this is ours, above the connector's default of 25 per second (250 per 10 s).
var DefaultLimit = sandboxkit.Limit{Requests: 50, Per: time.Second}

// Webhook topics.
const (
	TopicRegistration = "registration.created"
	TopicOrderPaid    = "order.paid"
	TopicCheckedIn    = "attendee.checked_in"
)

// Server is the Accelevents sandbox. It implements sandboxkit.Service.
type Server struct {
	log     hclog.Logger
	now     func() time.Time
	router  *sandboxkit.Router
	handler http.Handler
	window  *sandboxkit.Window
	hooks   *sandboxkit.Deliverer
	client  *http.Client

	mu     sync.RWMutex
	muted  bool // while seeding: no webhooks
	events map[string]*event
	order  []string // event urls in creation order
	nextID struct{ order, att, typ, pay, hook int64 }
	seq    atomic.Int64 // webhook delivery ids
}

var _ sandboxkit.Service = (*Server)(nil)

// New returns an empty sandbox; call Seed to fill it.
func New(opts sandboxkit.Options) *Server {
	s := &Server{log: opts.Logger, now: opts.Now, client: opts.WebhookClient}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	s.log = s.log.Named("accelevents")
	if s.now == nil {
		s.now = time.Now
	}
	limit := DefaultLimit
	if opts.RateLimit != nil {
		limit = *opts.RateLimit
	}
	s.window = &sandboxkit.Window{Limit: limit.Requests, Length: limit.Per, Now: s.now}
	s.hooks = &sandboxkit.Deliverer{Client: s.client, Log: s.log}
	s.router = sandboxkit.NewRouter()
	s.routes()
	api := sandboxkit.NewInjector(opts.Faults).Wrap(s.router, func(w http.ResponseWriter) {
		s.router.CountStatus(http.StatusInternalServerError)
		writeError(w, http.StatusInternalServerError, "5000000", "Internal server error.")
	})
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_sandbox/") {
			s.sandboxRoute(w, r)
			return
		}
		if ok, _, _ := s.window.Take(); !ok {
			s.router.CountStatus(http.StatusTooManyRequests)
			writeError(w, http.StatusTooManyRequests, "4290001", "Too many requests. Please slow down.")
			return
		}
		api.ServeHTTP(w, r)
	})
	s.Reset()
	return s
}

// Name is the mount prefix and stats key.
func (s *Server) Name() string { return "accelevents" }

// ServeHTTP serves the API and the /_sandbox/webhooks registration.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Reset empties all state, counters and registered webhook URLs.
func (s *Server) Reset() {
	s.mu.Lock()
	s.events = map[string]*event{}
	s.order = nil
	s.nextID.order, s.nextID.att, s.nextID.typ, s.nextID.pay, s.nextID.hook = 122111, 900001, 145680, 5001, 1
	s.mu.Unlock()
	s.router.ResetCounts()
	s.hooks.Reset()
}

// WaitDeliveries blocks until every webhook in flight was delivered or
// given up, or ctx ends.
func (s *Server) WaitDeliveries(ctx context.Context) {
	s.hooks.Wait(ctx)
	s.mu.RLock()
	var dels []*sandboxkit.Deliverer
	for _, e := range s.events {
		for i := range e.hooks {
			dels = append(dels, e.hooks[i].del)
		}
	}
	s.mu.RUnlock()
	for _, d := range dels {
		d.Wait(ctx)
	}
}

func (s *Server) sandboxRoute(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/_sandbox/webhooks" {
		writeError(w, http.StatusNotFound, "4040000", "Not found.")
		return
	}
	switch r.Method {
	case http.MethodPost:
		var in struct {
			URL string `json:"url"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || !strings.HasPrefix(in.URL, "http") {
			writeError(w, http.StatusBadRequest, "4000001", `body must be {"url":"http..."}`)
			return
		}
		s.hooks.Register(in.URL)
		sandboxkit.WriteJSON(w, http.StatusCreated, map[string]any{"url": in.URL, "secret": DemoWebhookSecret, "signatureHeader": SignatureHeader})
	case http.MethodGet:
		sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"urls": s.hooks.URLs()})
	default:
		writeError(w, http.StatusMethodNotAllowed, "4050000", "Method not allowed.")
	}
}

// Stats counts objects, and duplicates: attendees sharing an email (not
// counting cancelled ones), payments sharing an external reference.
func (s *Server) Stats() sandboxkit.ServiceStats {
	s.mu.RLock()
	st := sandboxkit.ServiceStats{Objects: map[string]int{}, Duplicates: map[string]int{}}
	st.Objects["events"] = len(s.events)
	for _, e := range s.events {
		st.Objects["orders"] += len(e.orders)
		st.Objects["attendees"] += len(e.atts)
		st.Objects["payments"] += len(e.payments)
		st.Objects["ticket_types"] += len(e.types)
		for _, l := range e.byEmail {
			live := 0
			for _, i := range l {
				if e.atts[i].status != attCanceled {
					live++
				}
			}
			if live > 1 {
				st.Duplicates["attendees"] += live - 1
			}
		}
		for _, l := range e.payByRef {
			if len(l) > 1 {
				st.Duplicates["payments"] += len(l) - 1
			}
		}
	}
	s.mu.RUnlock()
	st.Requests, st.Responses = s.router.Counts()
	return st
}

// delivery is the webhook body.
type delivery struct {
	ID        string `json:"id"`
	Topic     string `json:"topic"`
	EventURL  string `json:"eventUrl"`
	Timestamp int64  `json:"timestamp"`
	Data      any    `json:"data"`
}

// Sign returns the X-Accelevents-Signature value for body at t.
func Sign(secret string, t int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", t)
	mac.Write(body)
	return "t=" + strconv.FormatInt(t, 10) + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// emit sends a signed delivery to the /_sandbox/webhooks URLs and to the
// event's webhooks subscribed to the topic. Call with s.mu held.
func (s *Server) emit(e *event, topic string, data any) {
	if s.muted {
		return
	}
	now := s.now().Unix()
	d := delivery{ID: fmt.Sprintf("whd_%d_%d", now, s.seq.Add(1)), Topic: topic, EventURL: e.info.url, Timestamp: now, Data: data}
	body, err := json.Marshal(d)
	if err != nil {
		s.log.Error("encoding a webhook", "error", err)
		return
	}
	h := http.Header{}
	h.Set(SignatureHeader, Sign(DemoWebhookSecret, now, body))
	del := sandboxkit.Delivery{Body: body, Header: h}
	s.hooks.Send(del)
	for i := range e.hooks {
		wh := &e.hooks[i]
		if wh.deleted || !subscribed(wh.topics, topic) {
			continue
		}
		wh.del.Send(del)
	}
}

func subscribed(topics []string, topic string) bool {
	if len(topics) == 0 {
		return true
	}
	for _, t := range topics {
		if t == topic {
			return true
		}
	}
	return false
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	sandboxkit.WriteJSON(w, status, map[string]string{"errorCode": code, "errorMessage": msg})
}
