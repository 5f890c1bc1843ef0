package main

import (
	"context"
	"net/http"
	"strings"

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
	// webhooks are the settings that verify each service's deliveries,
	// read once from the running sandbox (a public key) or its
	// registration (a shared secret).
	webhooks map[string]connectors.Webhook
}

func (s *sandboxAt) URL(connector string) string                 { return s.base + "/" + connector }
func (s *sandboxAt) Auth(connector string) connectors.Auth       { return sandbox.DemoAuth(connector) }
func (s *sandboxAt) Options(connector string) map[string]any     { return sandbox.DemoOptions(connector) }
func (s *sandboxAt) Webhook(connector string) connectors.Webhook { return s.webhooks[connector] }

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
		return newSandboxAt(ctx, base, log), func() { srv.Close() }, nil
	case o.sandboxURL != "":
		return newSandboxAt(ctx, strings.TrimRight(o.sandboxURL, "/"), log), func() {}, nil
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
