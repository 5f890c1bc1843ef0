package sandbox

import (
	"context"
	"fmt"
	"net/http"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

func init() {
	sandboxkit.Register(sandboxkit.Registration{
		Name:    "accelevents",
		New:     func(o sandboxkit.Options) sandboxkit.Service { return New(o) },
		Auth:    connectors.Auth{Type: connectors.AuthAPIKey, Key: DemoKey},
		Options: map[string]any{"eventUrl": DemoEventURL},
		Webhook: func(context.Context, *http.Client, string) (connectors.Webhook, error) {
			return connectors.Webhook{Secret: DemoWebhookSecret}, nil
		},
		Limits: "none documented, ours: 50 per second",
		Hints: func(url string) []string {
			return []string{
				fmt.Sprintf("key:    %s (webhook secret %s)", DemoKey, DemoWebhookSecret),
				fmt.Sprintf("curl -H 'Authorization: Bearer %s' '%s/rest/events/%s/staff/allAttendees?page=0&size=5'", DemoKey, url, DemoEventURL),
			}
		},
		Failure: `{"errorCode":"5000000","errorMessage":"Internal server error","message":"Internal server error"}`,
	})
}
