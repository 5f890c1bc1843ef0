package accelevents

import "github.com/memberflow/memberflow/connectors"

// declareRecords says which domain records this API holds (attendees,
// paid orders, payments recorded on orders), how to read them, and what
// the operations that reconcile and the console bind to do with them.
func declareRecords(s *connectors.Spec) {
	s.Records = []*connectors.RecordSpec{
		{
			// No trigger reports refunded or cancelled tickets, and such a
			// ticket still names the person: the listing covers every status.
			Kind:    connectors.KindAttendee,
			Listing: &connectors.Listing{Action: "list_attendees", Page: "page", Size: "size", PageSize: 200, Items: "data", Subject: "attendee/"},
			Fields: map[string]string{
				connectors.FieldID: "attendeeId", connectors.FieldMember: "externalId", connectors.FieldEmail: "email",
				connectors.FieldGivenName: "firstName", connectors.FieldFamilyName: "lastName", connectors.FieldStatus: "status",
				connectors.FieldCheckedIn: "checkedIn", connectors.FieldChanged: "updatedAt|createdAt",
			},
			States: map[string][]string{connectors.StateLive: {"BOOKED"}},
		},
		{
			Kind: connectors.KindOrder, Trigger: "order_paid",
			Fields: map[string]string{connectors.FieldID: "orderId", connectors.FieldEmail: "purchaser.email", connectors.FieldCurrency: "currency",
				connectors.FieldChanged: "paidAt|createdAt"},
		},
		{
			// Payments are looked up by reference, one request per payment
			// a check needs: an event's payments are too many to list.
			Kind:   connectors.KindOrderPayment,
			Lookup: &connectors.Lookup{Action: "search_payments", Input: "externalRef", Items: "data"},
			Fields: map[string]string{connectors.FieldID: "paymentId", connectors.FieldRef: "externalRef", connectors.FieldAmount: "amount",
				connectors.FieldCurrency: "currency", connectors.FieldOrder: "orderId", connectors.FieldChanged: "createdAt"},
		},
	}
	itself := func(rec map[string]any) any { return rec }
	// The payments recorded on an order are not in a snapshot's order
	// record: a check that needs them runs the action for that order.
	byOrderID := map[string]string{connectors.FieldID: "orderId"}
	roles := map[string]*connectors.Role{
		"registration_created": {Kind: connectors.KindAttendee, Verb: "created"},
		"order_paid":           {Kind: connectors.KindOrder, Verb: "paid"},
		"find_attendee": {Kind: connectors.KindAttendee, Verb: "find", Answer: func(a map[string]any) any {
			return map[string]any{"found": a != nil, "attendee": a}
		}},
		"upsert_attendee": {Kind: connectors.KindAttendee, Verb: "upsert", Answer: func(a map[string]any) any { return map[string]any{"attendee": a} },
			Inputs: map[string]string{connectors.FieldMember: "externalId", connectors.FieldEmail: "email",
				connectors.FieldGivenName: "firstName", connectors.FieldFamilyName: "lastName"}},
		"record_payment": {Kind: connectors.KindOrderPayment, Verb: "record",
			Inputs: map[string]string{connectors.FieldRef: "externalRef", connectors.FieldAmount: "amount", connectors.FieldCurrency: "currency"}},
		"get_order":               {Kind: connectors.KindOrder, Verb: "get", Answer: itself},
		"list_order_payments":     {Kind: connectors.KindOrder, Verb: "list_payments", Fetch: true, Inputs: byOrderID},
		"get_order_with_payments": {Kind: connectors.KindOrder, Verb: "get", Fetch: true, Inputs: byOrderID},
	}
	s.SetRoles(roles)
}
