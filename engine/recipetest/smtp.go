package recipetest

import (
	"strings"

	"github.com/memberflow/memberflow/internal/smtpsink"
)

// startSMTP answers a connection whose base URL is smtp:// (a notify
// email connection) with an in-process SMTP server (emersion/go-smtp,
// through internal/smtpsink): each message it receives is an exchange
// {method SMTP, path /<recipients>, body {from, to, subject, text}}, so
// that expect.requests matches an email like a request. Nothing leaves
// the process. It returns the server's URL and the options the
// connection needs to reach it (no TLS, no login).
func (s *cannedService) startSMTP(connection string, options map[string]any) (*smtpsink.Sink, map[string]any, error) {
	sink, err := smtpsink.Start(smtpsink.Options{NoTLS: true, OnMessage: func(m smtpsink.Message) {
		to := make([]any, len(m.To))
		for i, r := range m.To {
			to[i] = r
		}
		x := &Exchange{Connection: connection, Method: "SMTP", Path: "/" + strings.Join(m.To, ","), Write: true,
			Body: map[string]any{"from": m.From, "to": to, "subject": m.Subject, "text": strings.TrimRight(strings.ReplaceAll(m.Text, "\r\n", "\n"), "\n")}}
		// The server accepted the message: that is its answer.
		x.Canned = &Canned{Connection: connection, Method: "SMTP", Path: x.Path, Status: 250}
		s.mu.Lock()
		s.log = append(s.log, x)
		s.mu.Unlock()
	}})
	if err != nil {
		return nil, nil, err
	}
	opts := map[string]any{}
	for k, v := range options {
		if k != "username" && k != "caFile" {
			opts[k] = v
		}
	}
	opts["tls"] = "none"
	return sink, opts, nil
}
