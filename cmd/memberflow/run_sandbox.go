package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	// membershipsKey is the public key the Memberships sandbox signs its
	// webhook deliveries with, fetched once.
	membershipsKey string
	// smtpURL is the alert sink's SMTP server, fetched once.
	smtpURL string
}

func (s *sandboxAt) URL(connector string) string {
	if connector == "notify" {
		// Webhook and Slack notifications go to the alert sink.
		return s.base + "/_sandbox/notifications"
	}
	return s.base + "/" + connector
}

// SMTP is the sink's SMTP server for email notifications ("" if none).
func (s *sandboxAt) SMTP() string                            { return s.smtpURL }
func (s *sandboxAt) Auth(connector string) connectors.Auth   { return sandbox.DemoAuth(connector) }
func (s *sandboxAt) Options(connector string) map[string]any { return sandbox.DemoOptions(connector) }
func (s *sandboxAt) Webhook(connector string) connectors.Webhook {
	wh := sandbox.DemoWebhook(connector)
	if connector == "notify" {
		wh.Secret = sandbox.NotifySecret
	}
	if connector == "memberships" && wh.PublicKey == "" {
		wh.PublicKey = s.membershipsKey
	}
	return wh
}

// startSandbox returns nil without --sandbox or --sandbox-url.
func startSandbox(ctx context.Context, o runOptions, log hclog.Logger) (sandboxTarget, func(), error) {
	switch {
	case o.sandbox:
		opts := sandbox.Options{Members: o.sandboxMembers, Seed: o.sandboxSeed, Logger: log.Named("sandbox")}
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
		t := &sandboxAt{base: base, smtpURL: srv.SMTPURL()}
		t.membershipsKey = fetchPublicKey(ctx, base, log)
		return t, func() { srv.Close() }, nil
	case o.sandboxURL != "":
		base := strings.TrimRight(o.sandboxURL, "/")
		t := &sandboxAt{base: base}
		t.membershipsKey = fetchPublicKey(ctx, base, log)
		t.smtpURL = fetchSMTPURL(ctx, base)
		return t, func() {}, nil
	}
	return nil, func() {}, nil
}

// fetchPublicKey reads the Memberships sandbox's webhook key; without it
// only Memberships webhook triggers fail (their deliveries do not verify).
func fetchPublicKey(ctx context.Context, base string, log hclog.Logger) string {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var key string
		if key, err = fetchPublicKeyOnce(ctx, base); err == nil {
			return key
		}
	}
	log.Warn("the sandbox's memberships webhook key is not available; memberships webhooks will not verify", "error", err)
	return ""
}

func fetchPublicKeyOnce(ctx context.Context, base string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/memberships/webhooks/public-key", nil)
	if err != nil {
		return "", err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /memberships/webhooks/public-key: HTTP %d", res.StatusCode)
	}
	return string(body), nil
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
