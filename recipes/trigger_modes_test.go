package recipes

import (
	"strings"
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

// TestWebhookKeysAndFallbackPoll loads recipes against the real connectors:
// a webhook trigger on a connection without the key its connector verifies
// with is an error at validation, not at the first delivery; fallback_poll
// belongs to webhook triggers that can also poll.
func TestWebhookKeysAndFallbackPoll(t *testing.T) {
	const head = `version: 1
name: hooks
connections:
  events: { connector: accelevents, auth: { type: api_key, key: "${{ secret.K }}" }, options: { eventUrl: e }WEBHOOK }
  members: { connector: memberships, auth: { type: bearer, token: "${{ secret.T }}" }, options: { locationId: l, companyId: c }MWEBHOOK }
`
	const steps = `
steps:
  - uses: members.get_user
    with: { userId: "${{ trigger.email }}" }
`
	cases := []struct {
		name, webhook, mwebhook, trigger, want string
	}{
		{name: "accelevents webhook without a secret", trigger: "{ uses: events.registration_created, mode: webhook }",
			want: `trigger: webhooks of events.registration_created are verified with the connection's webhook.secret, and connection "events" has none`},
		{name: "accelevents webhook with a secret", webhook: `, webhook: { secret: "${{ secret.S }}" }`,
			trigger: "{ uses: events.registration_created, mode: webhook }"},
		{name: "a polling trigger needs no key", trigger: "{ uses: events.registration_created }"},
		{name: "memberships webhook with a secret instead of a public key", mwebhook: `, webhook: { secret: "${{ secret.S }}" }`,
			trigger: "{ uses: members.user_updated, mode: webhook }",
			want:    `verified with the connection's webhook.public_key, and connection "members" has none`},
		{name: "hybrid", webhook: `, webhook: { secret: "${{ secret.S }}" }`,
			trigger: "{ uses: events.registration_created, mode: webhook, fallback_poll: 15m, start: beginning }"},
		{name: "fallback_poll on a polling trigger", trigger: "{ uses: events.registration_created, fallback_poll: 15m }",
			want: "trigger: fallback_poll reconciles a webhook trigger (set mode: webhook)"},
		{name: "interval on a hybrid", webhook: `, webhook: { secret: "${{ secret.S }}" }`,
			trigger: "{ uses: events.registration_created, mode: webhook, fallback_poll: 15m, interval: 1m }",
			want:    "its reconciling poll is fallback_poll"},
		{name: "fallback_poll is a duration", webhook: `, webhook: { secret: "${{ secret.S }}" }`,
			trigger: "{ uses: events.registration_created, mode: webhook, fallback_poll: often }",
			want:    "trigger.fallback_poll: must be a duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(strings.Replace(head, "MWEBHOOK", c.mwebhook, 1), "WEBHOOK", c.webhook, 1)
			doc += "trigger: " + c.trigger + steps
			if strings.Contains(c.trigger, "members.") {
				doc = strings.Replace(doc, "trigger.email", "trigger.userId", 1)
			}
			r, diags := LoadBytes("hooks.yaml", []byte(doc), Options{Registry: connectors.Default})
			got := diags.Error()
			if c.want == "" {
				if diags.HasErrors() {
					t.Fatalf("unexpected diagnostics:\n%s", got)
				}
				if strings.Contains(c.trigger, "fallback_poll: 15m") && r.Trigger.FallbackPoll.Minutes() != 15 {
					t.Errorf("FallbackPoll = %s, want 15m", r.Trigger.FallbackPoll)
				}
				return
			}
			if !strings.Contains(got, c.want) {
				t.Errorf("diagnostics lack %q:\n%s", c.want, got)
			}
		})
	}
}
