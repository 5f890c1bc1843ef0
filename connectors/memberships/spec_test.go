package memberships

import (
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

func TestSpecRegisters(t *testing.T) {
	r := connectors.NewRegistry()
	if err := r.Register(Spec()); err != nil {
		t.Fatal(err)
	}
	s, _ := r.Lookup("memberships")
	want := []string{"list_users", "search_users", "get_user", "create_user", "update_user", "delete_user",
		"filter_users_by_email", "get_access_token", "get_location_access_token", "list_installed_locations",
		"create_payment", "list_payments", "get_payment", "update_payment", "delete_payment",
		"find_user_by_email", "upsert_user", "set_membership_status", "find_payment", "upsert_payment"}
	for _, n := range want {
		if s.Action(n) == nil {
			t.Errorf("action %s is missing; have %v", n, s.OperationNames())
		}
	}
	triggers := []string{"user_created", "user_updated", "user_changed", "membership_status_changed", "payment_created", "payment_updated"}
	for _, n := range triggers {
		if s.Trigger(n) == nil {
			t.Errorf("trigger %s is missing", n)
		}
	}
	if got := len(s.Actions) + len(s.Triggers); got != len(want)+len(triggers) {
		t.Errorf("%d operations, want %d: %v", got, len(want)+len(triggers), s.OperationNames())
	}
	// A grant spends its code or rotated refresh token: never re-sent. A
	// location token is issued again as often as asked.
	if s.Action("get_access_token").Idempotent || !s.Action("get_location_access_token").Idempotent {
		t.Error("get_access_token must not be re-sent after a lost answer; get_location_access_token may")
	}
	for _, a := range s.Actions {
		if !a.ReadOnly && !a.Idempotent && a.Settle == nil {
			switch a.Name {
			case "get_access_token", "get_location_access_token":
				// A token grant cannot be looked up; the engine dead-letters an in-doubt one.
			default:
				t.Errorf("action %s writes without idempotency and has no Settle", a.Name)
			}
		}
	}
}
