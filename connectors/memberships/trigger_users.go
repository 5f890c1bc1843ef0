package memberships

import (
	"strconv"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

const defaultInterval = time.Minute

func userTriggers(sch *schemas) []*connectors.TriggerSpec {
	statusFilter := oneOrMany(membershipStatuses, "Only members in this membership status (or one of these).")
	userParams := raw(object(nil, map[string]any{"membershipStatus": statusFilter}))
	userOut := raw(sch.user)
	return []*connectors.TriggerSpec{
		{
			Operation: connectors.Operation{
				Name:        "user_created",
				Summary:     "A member was added.",
				Description: "Scans the user search page by page (by last change with the option incrementalSearch), or takes UserCreate webhooks. Event data is the user.",
				Input:       userParams,
				Output:      userOut,
				Example:     map[string]any{},
			},
			Poll:            poller(usersSource, decideUserCreated),
			Webhook:         webhookFor(parseUserCreated),
			DefaultInterval: defaultInterval,
		},
		{
			Operation: connectors.Operation{
				Name:        "user_updated",
				Summary:     "A member's details or membership changed.",
				Description: "Scans the user search page by page (by last change with the option incrementalSearch) and compares each user's fingerprint with the one remembered, or takes UserUpdate webhooks. Event data is the user.",
				Input:       userParams,
				Output:      userOut,
				Example:     map[string]any{"membershipStatus": []any{"active", "eligible"}},
			},
			Poll:            poller(usersSource, decideUserUpdated),
			Webhook:         webhookFor(parseUserUpdated),
			DefaultInterval: defaultInterval,
		},
		{
			Operation: connectors.Operation{
				Name:        "user_changed",
				Summary:     "A member was added or changed: user_created and user_updated in one trigger.",
				Description: "For syncs that must see every member, new or changed (a member added and never edited is not an update). Event data is the user.",
				Input:       userParams,
				Output:      userOut,
				Example:     map[string]any{},
			},
			Poll:            poller(usersSource, decideUserChanged),
			Webhook:         webhookFor(parseUserChanged),
			DefaultInterval: defaultInterval,
		},
		{
			Operation: connectors.Operation{
				Name:    "membership_status_changed",
				Summary: "A member's membership status changed (filter by from and to).",
				Description: "The previous status comes from the remembered fingerprint (polling) or the delivery's previousMembershipStatus (webhooks). " +
					"A member added in a status counts as entering it, with `from` null; so does every member when the trigger starts at the beginning.",
				Input: raw(object(nil, map[string]any{
					"from": oneOrMany(membershipStatuses, "Only changes from this status (or one of these)."),
					"to":   oneOrMany(membershipStatuses, "Only changes to this status (or one of these)."),
				})),
				Output: raw(object([]string{"userId", "to", "user"}, map[string]any{
					"userId": str("The user id."),
					"from":   nullable(enumOf(membershipStatuses, ""), "The status before; null when the member was added in the new status."),
					"to":     enumOf(membershipStatuses, "The status now."),
					"user":   withDesc(sch.user, "The user after the change."),
				})),
				Example: map[string]any{"from": "active", "to": "eligible"},
			},
			Poll:            poller(usersSource, decideStatusChanged),
			Webhook:         webhookFor(parseStatusChanged),
			DefaultInterval: defaultInterval,
		},
	}
}

// changeID names one change of a record: the same change seen by two
// overlapping polls has the same ID; two changes never do.
// changeID names one change of a record: by its change time, or, for a
// record that has none (a scanned GoHighLevel user), by its state.
func changeID(s *seen) string {
	if _, timed := s.rec["dateUpdated"]; !timed && s.rec["updatedAt"] == nil {
		return s.subject + "#" + s.fp
	}
	return s.subject + "@" + strconv.FormatInt(s.changed, 10)
}

func decideUserCreated(s *seen, params map[string]any) *connectors.Event {
	if s.baseline || s.hasPrior || s.added < s.start {
		return nil
	}
	status, _ := s.rec["membershipStatus"].(string)
	if !matches(params["membershipStatus"], status) {
		return nil
	}
	return &connectors.Event{ID: s.subject + "/created", Subject: s.subject, Fingerprint: s.fp, Time: timeOf(s.added), Data: s.rec, Raw: s.raw}
}

func decideUserUpdated(s *seen, params map[string]any) *connectors.Event {
	if s.baseline {
		return nil
	}
	switch {
	case s.hasPrior && s.prior == s.fp:
		return nil
	case !s.hasPrior && s.added >= s.start && s.changed <= s.added:
		return nil // a creation, not an update
	}
	status, _ := s.rec["membershipStatus"].(string)
	if !matches(params["membershipStatus"], status) {
		return nil
	}
	return &connectors.Event{ID: changeID(s), Subject: s.subject, Fingerprint: s.fp, Time: timeOf(s.changed), Data: s.rec, Raw: s.raw}
}

func decideUserChanged(s *seen, params map[string]any) *connectors.Event {
	if ev := decideUserCreated(s, params); ev != nil {
		return ev
	}
	return decideUserUpdated(s, params)
}

func decideStatusChanged(s *seen, params map[string]any) *connectors.Event {
	if s.baseline {
		return nil
	}
	to, _ := s.rec["membershipStatus"].(string)
	var from any
	switch {
	case s.hasPrior:
		prev := statusOf(s.prior)
		if prev == to || prev == "" {
			return nil
		}
		from = prev
	case s.added >= s.start:
		from = nil // added in this status
	default:
		// Changed after the start, before the baseline reached it: what
		// it was is unknown, so no claim is made.
		return nil
	}
	return statusEvent(changeID(s), s.subject, s.fp, timeOf(s.changed), s.rec, from, to, params)
}

func statusEvent(id, subject, fp string, at time.Time, user map[string]any, from any, to string, params map[string]any) *connectors.Event {
	if params["from"] != nil {
		f, ok := from.(string)
		if !ok || !matches(params["from"], f) {
			return nil
		}
	}
	if !matches(params["to"], to) {
		return nil
	}
	userID, _ := user["id"].(string)
	return &connectors.Event{ID: id, Subject: subject, Fingerprint: fp, Time: at,
		Data: map[string]any{"userId": userID, "from": from, "to": to, "user": user}}
}
