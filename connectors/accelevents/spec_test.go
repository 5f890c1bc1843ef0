package accelevents

import (
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

func TestSpecRegistersAndCountsOperations(t *testing.T) {
	s := Spec()
	if err := connectors.NewRegistry().Register(s); err != nil {
		t.Fatalf("register: %v", err)
	}
	n := len(s.Actions) + len(s.Triggers)
	if n < 30 {
		t.Errorf("accelevents has %d operations, want at least 30", n)
	}
	for _, name := range []string{"list_attendees", "get_attendee", "find_attendee", "upsert_attendee", "create_order", "get_ticket_types", "check_in", "record_payment", "attendee_qr_code", "calculate_fee", "place_order", "list_events"} {
		if s.Action(name) == nil {
			t.Errorf("action %s is missing", name)
		}
	}
	for _, a := range s.Actions {
		if !a.ReadOnly && !a.Idempotent && a.Settle == nil {
			t.Logf("write without Settle: %s", a.Name)
		}
	}
	t.Logf("%d actions, %d triggers", len(s.Actions), len(s.Triggers))
}
