package accelevents

import (
	"encoding/json"
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

// Every input property is described, and every example is valid.
func TestOperationsAreDescribedAndExamplesValid(t *testing.T) {
	s := Spec()
	check := func(kind, name string, op *connectors.Operation) {
		var in struct {
			Properties map[string]map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(op.Input, &in); err != nil {
			t.Fatalf("%s %s: %v", kind, name, err)
		}
		for p, sch := range in.Properties {
			if d, _ := sch["description"].(string); d == "" {
				t.Errorf("%s %s: input property %q has no description", kind, name, p)
			}
		}
		if op.Example == nil {
			t.Errorf("%s %s: no example", kind, name)
			return
		}
		if err := validate(op.Input, op.Example); err != nil {
			t.Errorf("%s %s: example does not fit the input: %v", kind, name, err)
		}
	}
	for _, a := range s.Actions {
		check("action", a.Name, &a.Operation)
	}
	for _, tr := range s.Triggers {
		check("trigger", tr.Name, &tr.Operation)
	}
}
