package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// The wiring of `memberflow run --sandbox | --sandbox-url` to the
// in-process sandbox, kept apart from run.go.

// sandboxAt points connections at a running sandbox.
type sandboxAt struct {
	base string
	// place names the in-process sandbox, whose port changes at every
	// start, in the store's record of accounts: by its seed, which
	// decides its data.
	place string
	// smtpURL is the alert sink's SMTP server, fetched once.
	smtpURL string
	// webhooks are the settings that verify each service's deliveries,
	// read once from the running sandbox (a public key) or its
	// registration (a shared secret).
	webhooks map[string]connectors.Webhook
}

func (s *sandboxAt) URL(connector string) string {
	if connector == "notify" {
		// Webhook and Slack notifications go to the alert sink.
		return s.base + "/_sandbox/notifications"
	}
	return s.base + "/" + connector
}

// SMTP is the sink's SMTP server for email notifications ("" if none).
func (s *sandboxAt) SMTP() string { return s.smtpURL }

// Place names the services the sandbox simulates (those with demo
// credentials); the others keep their own address.
func (s *sandboxAt) Place(connector string) string {
	if s.place == "" || sandbox.DemoAuth(connector).Type == connectors.AuthNone {
		return ""
	}
	return s.place + "/" + connector
}
func (s *sandboxAt) Auth(connector string) connectors.Auth   { return sandbox.DemoAuth(connector) }
func (s *sandboxAt) Options(connector string) map[string]any { return sandbox.DemoOptions(connector) }
func (s *sandboxAt) Webhook(connector string) connectors.Webhook {
	if connector == "notify" {
		return connectors.Webhook{Secret: sandbox.NotifySecret}
	}
	return s.webhooks[connector]
}

// startSandbox returns nil without --sandbox or --sandbox-url.
func startSandbox(ctx context.Context, o runOptions, log hclog.Logger) (sandboxTarget, func(), error) {
	switch {
	case o.sandbox:
		opts := sandbox.Options{Members: o.sandboxMembers, Seed: o.sandboxSeed, Logger: log.Named("sandbox")}
		opts.AllowUndocumented = o.sandboxUndocumented
		if o.sandboxNoLimits {
			opts.RateLimit = &sandboxkit.Limit{}
		}
		srv, err := sandbox.New(opts)
		if err != nil {
			return nil, nil, err
		}
		base, err := srv.Start("127.0.0.1:0")
		if err != nil {
			srv.Close()
			return nil, nil, err
		}
		log.Info("sandbox started", "url", base, "members", o.sandboxMembers, "seed", o.sandboxSeed)
		t := newSandboxAt(ctx, base, log)
		t.place = fmt.Sprintf("memberflow-sandbox:seed-%d", o.sandboxSeed)
		t.smtpURL = srv.SMTPURL()
		return t, func() { srv.Close() }, nil
	case o.sandboxURL != "":
		if u, err := url.Parse(o.sandboxURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, nil, usageError{fmt.Errorf("--sandbox-url %q: want the sandbox's http:// address, as memberflow sandbox prints it (e.g. http://127.0.0.1:8089)", o.sandboxURL)}
		}
		base := strings.TrimRight(o.sandboxURL, "/")
		t := newSandboxAt(ctx, base, log)
		t.smtpURL = fetchSMTPURL(ctx, base)
		return t, func() {}, nil
	}
	return nil, func() {}, nil
}

// newSandboxAt reads every registered service's webhook settings; without
// them only that service's webhook triggers fail (deliveries do not
// verify).
func newSandboxAt(ctx context.Context, base string, log hclog.Logger) *sandboxAt {
	t := &sandboxAt{base: base, webhooks: map[string]connectors.Webhook{}}
	for _, r := range sandboxkit.Registered() {
		wh, err := sandbox.DemoWebhookAt(ctx, http.DefaultClient, r.Name, t.URL(r.Name))
		if err != nil {
			log.Warn("the sandbox's webhook settings are not available; its webhooks will not verify", "service", r.Name, "error", err)
			continue
		}
		t.webhooks[r.Name] = wh
	}
	return t
}

var _ sandboxTarget = (*sandboxAt)(nil)

// fetchSMTPURL asks a running sandbox for its alert sink's SMTP server;
// an older sandbox has none, and emails to it then fail.
func fetchSMTPURL(ctx context.Context, base string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_sandbox/smtp", nil)
	if err != nil {
		return ""
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	var v struct {
		URL string `json:"url"`
	}
	if res.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(res.Body, 4<<10)).Decode(&v) != nil {
		return ""
	}
	return v.URL
}
