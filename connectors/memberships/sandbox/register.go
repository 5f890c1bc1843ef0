package sandbox

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

func init() {
	sandboxkit.Register(sandboxkit.Registration{
		Name: "memberships",
		New:  func(o sandboxkit.Options) sandboxkit.Service { return New(o) },
		// A location's private integration token (location access, the
		// connector's default); the OAuth demo app
		// (DemoClientID/DemoClientSecret) works as well.
		Auth:    connectors.Auth{Type: connectors.AuthBearer, Token: DemoKey},
		Options: map[string]any{"companyId": DemoCompanyID, "locationId": DemoLocationID},
		Webhook: fetchPublicKey,
		Limits:  "100 per 10 s and 200,000 a day",
		Hints: func(url string) []string {
			return []string{
				fmt.Sprintf("token:  %s (a location's private integration token; the agency's, for access: agency: %s; OAuth app %s / %s at %s/oauth/token)", DemoKey, DemoAgencyKey, DemoClientID, DemoClientSecret, url),
				fmt.Sprintf("curl -H 'Authorization: Bearer %s' -H 'Version: %s' '%s/users/search?companyId=%s&limit=5'", DemoKey, APIVersion, url, DemoCompanyID),
			}
		},
		Failure: `{"statusCode":500,"message":"Internal server error"}`,
	})
}

// fetchPublicKey reads the key the sandbox signs its webhook deliveries
// with (the seed decides it), as a user copies GoHighLevel's published one.
func fetchPublicKey(ctx context.Context, client *http.Client, url string) (connectors.Webhook, error) {
	if client == nil {
		client = http.DefaultClient
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var key string
		if key, err = fetchPublicKeyOnce(ctx, client, url); err == nil {
			return connectors.Webhook{PublicKey: key}, nil
		}
	}
	return connectors.Webhook{}, err
}

func fetchPublicKeyOnce(ctx context.Context, client *http.Client, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/webhooks/public-key", nil)
	if err != nil {
		return "", err
	}
	res, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /webhooks/public-key: HTTP %d", res.StatusCode)
	}
	return string(body), nil
}
