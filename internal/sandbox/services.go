package sandbox

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// defaultServices are the registered service sandboxes
// (sandboxkit.Register; connectors/all imports them), by name.
func defaultServices() []Factory {
	var out []Factory
	for _, r := range sandboxkit.Registered() {
		out = append(out, Factory(r.New))
	}
	return out
}

// DemoAuth returns the public demo credentials the named service's
// sandbox accepts, in the form the connector of that name sends them. A
// connector without a sandbox gets AuthNone.
func DemoAuth(connector string) connectors.Auth {
	if r, ok := sandboxkit.Lookup(connector); ok {
		return r.Auth
	}
	return connectors.Auth{Type: connectors.AuthNone}
}

// DemoOptions returns the connection options that name the sandbox's demo
// account (nil when there are none).
func DemoOptions(connector string) map[string]any {
	r, ok := sandboxkit.Lookup(connector)
	if !ok || r.Options == nil {
		return nil
	}
	out := make(map[string]any, len(r.Options))
	for k, v := range r.Options {
		out[k] = v
	}
	return out
}

// DemoWebhook returns the webhook settings that verify the named
// service's sandbox deliveries when they are fixed (a shared secret);
// settings that must be fetched from a running sandbox need
// DemoWebhookAt.
func DemoWebhook(connector string) connectors.Webhook {
	wh, _ := DemoWebhookAt(context.Background(), nil, connector, "")
	return wh
}

// DemoWebhookAt returns the webhook settings that verify the deliveries
// of the named service mounted at serviceURL (the zero Webhook when it
// has none).
func DemoWebhookAt(ctx context.Context, client *http.Client, connector, serviceURL string) (connectors.Webhook, error) {
	r, ok := sandboxkit.Lookup(connector)
	if !ok || r.Webhook == nil {
		return connectors.Webhook{}, nil
	}
	if serviceURL == "" {
		// Only fixed settings can be had without a running sandbox.
		return r.Webhook(ctx, &http.Client{Transport: noNetwork{}}, "http://sandbox.invalid")
	}
	return r.Webhook(ctx, client, serviceURL)
}

// noNetwork refuses every request.
type noNetwork struct{}

func (noNetwork) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("sandbox: no running sandbox to ask")
}

// DemoSecrets are the demo credentials under the secret names the sandbox
// connections file uses (examples/connections.sandbox.yaml), by
// convention: SANDBOX_<NAME>_TOKEN for a bearer token, SANDBOX_<NAME>_API_KEY
// for a key, SANDBOX_<NAME>_WEBHOOK_SECRET for a fixed webhook secret.
func DemoSecrets() map[string]string {
	out := map[string]string{}
	for _, r := range sandboxkit.Registered() {
		prefix := "SANDBOX_" + strings.ToUpper(strings.ReplaceAll(r.Name, "-", "_")) + "_"
		switch {
		case r.Auth.Token != "":
			out[prefix+"TOKEN"] = r.Auth.Token
		case r.Auth.Key != "":
			out[prefix+"API_KEY"] = r.Auth.Key
		}
		if wh := DemoWebhook(r.Name); wh.Secret != "" {
			out[prefix+"WEBHOOK_SECRET"] = wh.Secret
		}
	}
	return out
}
