package connectors

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRecordDeclarationsAreChecked: a record declaration or role that
// names what the connector does not have fails at registration.
func TestRecordDeclarationsAreChecked(t *testing.T) {
	id := map[string]string{FieldID: "id"}
	cases := []struct {
		name    string
		records []*RecordSpec
		role    *Role
		want    string // "" when accepted
	}{
		{"listing by its action", []*RecordSpec{{Kind: KindMember, Listing: &Listing{Action: "get", PageSize: 10}, Fields: id}}, &Role{Kind: KindMember, Verb: "get"}, ""},
		{"unknown kind", []*RecordSpec{{Kind: "person", Listing: &Listing{Action: "get", PageSize: 10}, Fields: id}}, nil, `unknown kind "person"`},
		{"missing trigger", []*RecordSpec{{Kind: KindMember, Trigger: "members", Fields: id}}, nil, `"members" is no polling trigger`},
		{"missing action", []*RecordSpec{{Kind: KindMember, Lookup: &Lookup{Action: "find"}, Fields: id}}, nil, `look-up action "find"`},
		{"no way to read", []*RecordSpec{{Kind: KindMember, Fields: id}}, nil, "exactly one of Trigger, Listing and Lookup"},
		{"no id", []*RecordSpec{{Kind: KindMember, Listing: &Listing{Action: "get", PageSize: 10}}}, nil, `no "id" field`},
		{"twice", []*RecordSpec{{Kind: KindMember, Listing: &Listing{Action: "get", PageSize: 1}, Fields: id}, {Kind: KindMember, Listing: &Listing{Action: "get", PageSize: 1}, Fields: id}}, nil, "declared twice"},
		{"role without verb", nil, &Role{Kind: KindCredential}, `role "credential." needs a known kind and a verb`},
		{"an input the action lacks", nil, &Role{Kind: KindPayment, Verb: "upsert", Inputs: map[string]string{FieldCurrency: "currency"}},
			`role "payment.upsert" carries "currency" in the input "currency", which is no input of the action`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := specWith(json.RawMessage(`{"type":"object"}`))
			s.Records, s.Actions[0].Role = tc.records, tc.role
			got := errString(NewRegistry().Register(s))
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Fatalf("Register: %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFetchRolesAreChecked: a role that has checks run its action for a
// record's answer must be a read-only action's, with an id input the
// action has.
func TestFetchRolesAreChecked(t *testing.T) {
	byID := map[string]string{FieldID: "orderId"}
	cases := []struct {
		name     string
		readOnly bool
		role     *Role
		want     string // "" when accepted
	}{
		{"sound", true, &Role{Kind: KindOrder, Verb: "get", Fetch: true, Inputs: byID}, ""},
		{"writes", false, &Role{Kind: KindOrder, Verb: "get", Fetch: true, Inputs: byID}, `action "get": role "order.get" fetches, so the action must be read-only`},
		{"no id input", true, &Role{Kind: KindOrder, Verb: "get", Fetch: true}, `the input "" its Inputs give "id" is no input of the action`},
		{"an input the action lacks", true, &Role{Kind: KindOrder, Verb: "get", Fetch: true, Inputs: map[string]string{FieldID: "id"}}, `the input "id" its Inputs give "id" is no input`},
		{"no fetch, no id input needed", false, &Role{Kind: KindOrder, Verb: "get"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := specWith(json.RawMessage(`{"type":"object","properties":{"orderId":{"type":"integer"}}}`))
			s.Actions[0].ReadOnly, s.Actions[0].Role = tc.readOnly, tc.role
			got := errString(NewRegistry().Register(s))
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Fatalf("Register: %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFieldReadsDeclaredPaths(t *testing.T) {
	rs := &RecordSpec{Fields: map[string]string{FieldMember: "recipient.id", FieldChanged: "updated|created", FieldAmount: "amount"},
		States: map[string][]string{StateLive: {"BOOKED"}}}
	rec := map[string]any{"recipient": map[string]any{"id": "u1"}, "created": "2026-01-01", "amount": 12.5}
	for field, want := range map[string]string{FieldMember: "u1", FieldChanged: "2026-01-01", FieldAmount: "12.5", FieldEmail: ""} {
		if got := rs.Field(rec, field); got != want {
			t.Errorf("%s = %q, want %q", field, got, want)
		}
	}
	if rs.In(rec, StateLive) {
		t.Error("a record without status is live")
	}
}
