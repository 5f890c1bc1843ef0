package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/memberflow/memberflow/connectors/notify"
	"github.com/memberflow/memberflow/internal/smtpsink"
)

// The alert sink and credential revocation: what the operations demo
// needs from the sandbox.
//
//	POST   /_sandbox/notifications/...  receives a notify.webhook (signed) or notify.slack message
//	GET    /_sandbox/notifications      lists what arrived (?kind=slack|webhook)
//	DELETE /_sandbox/notifications      forgets it
//	GET    /_sandbox/smtp               {"url":"smtp://127.0.0.1:port"}: the sink's SMTP server (emails become notifications of kind email)
//	POST   /_sandbox/credentials        {"service":"<name>","revoked":true} refuses the demo credentials (false restores them)

// NotifySecret signs the notify.webhook deliveries of connections pointed
// at the sandbox; the sink checks it.
const NotifySecret = "memberflow-sandbox-notify-secret"

// Notification is one message the sink received.
type Notification struct {
	Kind string `json:"kind"` // slack, webhook or email
	Path string `json:"path"`
	// Signed is true when the webhook's signature verified with
	// NotifySecret.
	Signed   bool           `json:"signed"`
	Body     map[string]any `json:"body"`
	Received time.Time      `json:"received"`
}

type sink struct {
	mu   sync.Mutex
	msgs []Notification
	smtp *smtpsink.Sink
}

// startSMTP starts the sink's SMTP side (no TLS: a local relay, which
// notify connections reach with options.tls none): each email becomes a
// notification of kind email.
func (s *Server) startSMTP(host string) error {
	srv, err := smtpsink.StartAt(net.JoinHostPort(host, "0"), smtpsink.Options{NoTLS: true, OnMessage: func(m smtpsink.Message) {
		s.addNotification(Notification{Kind: "email", Path: strings.Join(m.To, ","), Received: m.Received.UTC(),
			Body: map[string]any{"from": m.From, "to": m.To, "subject": m.Subject, "text": m.Text}})
	}})
	if err != nil {
		return err
	}
	s.sink.mu.Lock()
	s.sink.smtp = srv
	s.sink.mu.Unlock()
	s.log.Info("alert sink's SMTP server listening", "url", srv.URL())
	return nil
}

// SMTPURL is smtp://host:port of the sink's SMTP server, "" before Start.
func (s *Server) SMTPURL() string {
	s.sink.mu.Lock()
	defer s.sink.mu.Unlock()
	if s.sink.smtp == nil {
		return ""
	}
	return s.sink.smtp.URL()
}

func (s *Server) handleSMTP(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"url": s.SMTPURL()})
}

func (s *Server) closeSMTP() error {
	s.sink.mu.Lock()
	srv := s.sink.smtp
	s.sink.smtp = nil
	s.sink.mu.Unlock()
	if srv != nil {
		return srv.Close()
	}
	return nil
}

func (s *Server) addNotification(n Notification) {
	s.sink.mu.Lock()
	s.sink.msgs = append(s.sink.msgs, n)
	if len(s.sink.msgs) > maxNotifications {
		s.sink.msgs = s.sink.msgs[len(s.sink.msgs)-maxNotifications:]
	}
	s.sink.mu.Unlock()
	s.log.Info("notification received", "kind", n.Kind, "path", n.Path)
}

// maxNotifications bounds the sink's memory: the oldest are dropped.
const maxNotifications = 10000

func (s *Server) handleNotification(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var body map[string]any
	if err == nil {
		err = json.Unmarshal(data, &body)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "a notification is a JSON object: "+err.Error())
		return
	}
	n := Notification{Kind: "slack", Path: r.URL.Path, Body: body, Received: time.Now().UTC()}
	if sig := r.Header.Get(notify.SignatureHeader); sig != "" {
		n.Kind = "webhook"
		if err := notify.Verify(NotifySecret, sig, data, time.Now(), 5*time.Minute); err != nil {
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		n.Signed = true
	} else if _, ok := body["blocks"]; !ok {
		n.Kind = "webhook"
	}
	s.addNotification(n)
	// Slack answers a plain "ok".
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("ok"))
}

// Notifications returns what the sink received, of one kind or all ("").
func (s *Server) Notifications(kind string) []Notification {
	s.sink.mu.Lock()
	defer s.sink.mu.Unlock()
	out := []Notification{}
	for _, n := range s.sink.msgs {
		if kind == "" || n.Kind == kind {
			out = append(out, n)
		}
	}
	return out
}

func (s *Server) handleListNotifications(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"notifications": s.Notifications(r.URL.Query().Get("kind"))})
}

func (s *Server) handleClearNotifications(w http.ResponseWriter, r *http.Request) {
	s.sink.mu.Lock()
	n := len(s.sink.msgs)
	s.sink.msgs = nil
	s.sink.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"deleted": n})
}

// SetRevoked refuses (or accepts again) the credentials every client
// sends to a service: its requests reach it without them, and it answers
// its own 401.
func (s *Server) SetRevoked(service string, revoked bool) error {
	m, err := s.service(service)
	if err != nil {
		return err
	}
	m.revoked.Store(revoked)
	return nil
}

func (s *Server) handleCredentials(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Service string `json:"service"`
		Revoked *bool  `json:"revoked"`
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err == nil {
		err = strictJSON(data, &req)
	}
	if err == nil && req.Revoked == nil {
		err = fmt.Errorf("revoked is missing")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, `decoding the request: `+err.Error()+`; send {"service":"<name>","revoked":true}`)
		return
	}
	if err := s.SetRevoked(req.Service, *req.Revoked); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"service": req.Service, "revoked": *req.Revoked})
}

// stripCredentials removes what authenticates a request, so that a
// service whose credentials are revoked answers as it does to a bad key.
func stripCredentials(r *http.Request) {
	h := r.Header.Clone()
	for k := range h {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "auth") || strings.Contains(lk, "key") || strings.Contains(lk, "token") {
			h.Del(k)
		}
	}
	r.Header = h
}
