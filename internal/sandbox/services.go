package sandbox

import (
	"github.com/memberflow/memberflow/connectors"
	accelevents "github.com/memberflow/memberflow/connectors/accelevents/sandbox"
	accredible "github.com/memberflow/memberflow/connectors/accredible/sandbox"
	memberships "github.com/memberflow/memberflow/connectors/memberships/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// defaultServices are the three simulated APIs, in the order the CLI
// prints them.
func defaultServices() []Factory {
	return []Factory{
		func(o sandboxkit.Options) sandboxkit.Service { return memberships.New(o) },
		func(o sandboxkit.Options) sandboxkit.Service { return accredible.New(o) },
		func(o sandboxkit.Options) sandboxkit.Service { return accelevents.New(o) },
	}
}

// DemoAuth returns the public demo credentials the named service's
// sandbox accepts, in the form the connector of that name sends them
// (header and scheme come from the connector's defaults). An unknown
// connector gets AuthNone.
func DemoAuth(connector string) connectors.Auth {
	switch connector {
	case "memberships":
		// A private integration token; the OAuth demo app
		// (memberships.DemoClientID/DemoClientSecret) works as well.
		return connectors.Auth{Type: connectors.AuthBearer, Token: memberships.DemoKey}
	case "accredible":
		return connectors.Auth{Type: connectors.AuthAPIKey, Key: accredible.DemoKey}
	case "accelevents":
		return connectors.Auth{Type: connectors.AuthAPIKey, Key: accelevents.DemoKey}
	}
	return connectors.Auth{Type: connectors.AuthNone}
}

// DemoOptions returns the connection options that name the sandbox's demo
// account: the Memberships company and location, the Accelevents event.
func DemoOptions(connector string) map[string]any {
	switch connector {
	case "memberships":
		return map[string]any{"companyId": memberships.DemoCompanyID, "locationId": memberships.DemoLocationID}
	case "accelevents":
		return map[string]any{"eventUrl": accelevents.DemoEventURL}
	}
	return nil
}

// DemoWebhook returns the webhook settings that verify the named
// service's sandbox deliveries, when they are fixed. The Memberships
// sandbox's RSA public key is served at GET /memberships/webhooks/public-key.
func DemoWebhook(connector string) connectors.Webhook {
	if connector == "accelevents" {
		return connectors.Webhook{Secret: accelevents.DemoWebhookSecret}
	}
	return connectors.Webhook{}
}
