package memberships

import (
	"github.com/memberflow/memberflow/connectors"
)

func paymentTriggers(sch *schemas) []*connectors.TriggerSpec {
	params := raw(object(nil, map[string]any{"status": oneOrMany(paymentStatuses, "Only payments in this status (or one of these).")}))
	out := raw(sch.payment)
	return []*connectors.TriggerSpec{
		{
			Operation: connectors.Operation{
				Name:        "payment_created",
				Summary:     "A payment was recorded.",
				Description: "Polls GET /payments by last change (sort=updatedAt, updatedAfter), or takes PaymentCreate webhooks. Event data is the payment.",
				Input:       params,
				Output:      out,
				Example:     map[string]any{"status": "paid"},
			},
			Poll:            poller(paymentsSource, decidePaymentCreated),
			Webhook:         webhookFor(parsePayment("PaymentCreate")),
			DefaultInterval: defaultInterval,
		},
		{
			Operation: connectors.Operation{
				Name:        "payment_updated",
				Summary:     "A payment changed (paid, refunded, failed, amended).",
				Description: "Polls GET /payments by last change and compares fingerprints, or takes PaymentUpdate webhooks. Event data is the payment.",
				Input:       params,
				Output:      out,
				Example:     map[string]any{"status": []any{"refunded", "failed"}},
			},
			Poll:            poller(paymentsSource, decidePaymentUpdated),
			Webhook:         webhookFor(parsePayment("PaymentUpdate")),
			DefaultInterval: defaultInterval,
		},
	}
}

func decidePaymentCreated(s *seen, params map[string]any) *connectors.Event {
	if s.baseline || s.hasPrior || s.added < s.start {
		return nil
	}
	if status, _ := s.rec["status"].(string); !matches(params["status"], status) {
		return nil
	}
	return &connectors.Event{ID: s.subject + "/created", Subject: s.subject, Fingerprint: s.fp, Time: timeOf(s.added), Data: s.rec, Raw: s.raw}
}

func decidePaymentUpdated(s *seen, params map[string]any) *connectors.Event {
	if s.baseline {
		return nil
	}
	switch {
	case s.hasPrior && s.prior == s.fp:
		return nil
	case !s.hasPrior && s.added >= s.start && s.changed <= s.added:
		return nil
	}
	if status, _ := s.rec["status"].(string); !matches(params["status"], status) {
		return nil
	}
	return &connectors.Event{ID: changeID(s), Subject: s.subject, Fingerprint: s.fp, Time: timeOf(s.changed), Data: s.rec, Raw: s.raw}
}
