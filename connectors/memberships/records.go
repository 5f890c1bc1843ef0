package memberships

import "github.com/memberflow/memberflow/connectors"

// declareRecords says which domain records this API holds (members and
// their payments), how to read them all, and what the operations that
// reconcile and the console bind to do with them.
func declareRecords(s *connectors.Spec) {
	s.Records = []*connectors.RecordSpec{
		{
			Kind: connectors.KindMember, Trigger: "user_changed",
			Fields: map[string]string{
				connectors.FieldID: "id", connectors.FieldEmail: "email", connectors.FieldStatus: "membershipStatus",
				connectors.FieldEligibleFrom: "eligibilityDate", connectors.FieldGivenName: "firstName",
				connectors.FieldFamilyName: "lastName", connectors.FieldPlan: "planId", connectors.FieldChanged: "dateUpdated",
			},
			States:   map[string][]string{connectors.StateEligible: {"eligible"}, connectors.StateEnded: {"lapsed", "cancelled"}},
			Statuses: statusNames(),
		},
		{
			Kind: connectors.KindPayment, Trigger: "payment_created",
			Fields: map[string]string{
				connectors.FieldID: "id", connectors.FieldMember: "userId", connectors.FieldRef: "externalRef",
				connectors.FieldAmount: "amount", connectors.FieldCurrency: "currency", connectors.FieldChanged: "updatedAt|paidAt|createdAt",
			},
		},
	}
	itself := func(rec map[string]any) any { return rec }
	roles := map[string]*connectors.Role{
		"user_changed": {Kind: connectors.KindMember, Verb: "changed"},
		// The status event of a member as the trigger reports it, from
		// a record read with no remembered previous status.
		"membership_status_changed": {Kind: connectors.KindMember, Verb: "status_changed", Event: func(u map[string]any) map[string]any {
			id, _ := u["id"].(string)
			return map[string]any{"userId": id, "from": nil, "to": u["membershipStatus"], "user": u}
		}},
		"payment_created": {Kind: connectors.KindPayment, Verb: "created"},
		"get_user":        {Kind: connectors.KindMember, Verb: "get", Answer: itself},
		"find_user_by_email": {Kind: connectors.KindMember, Verb: "find", Answer: func(u map[string]any) any {
			return map[string]any{"found": u != nil, "user": u}
		}},
		"update_user": {Kind: connectors.KindMember, Verb: "update", Inputs: map[string]string{connectors.FieldID: "userId"}},
		"upsert_payment": {Kind: connectors.KindPayment, Verb: "upsert", Inputs: map[string]string{connectors.FieldRef: "externalRef", connectors.FieldAmount: "amount",
			connectors.FieldCurrency: "currency"}},
	}
	s.SetRoles(roles)
}

// statusNames are the membership statuses in lifecycle order.
func statusNames() []string {
	out := make([]string, len(membershipStatuses))
	for i, s := range membershipStatuses {
		out[i] = s.(string)
	}
	return out
}
