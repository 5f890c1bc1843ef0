package sandbox

import (
	"fmt"
	"strings"
	"testing"

	msandbox "github.com/memberflow/memberflow/connectors/memberships/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

type seededType struct {
	ID               int64   `json:"id"`
	Name             string  `json:"name"`
	Description      string  `json:"description"`
	Price            float64 `json:"price"`
	RemainingTickets int     `json:"remainingTickets"`
}

func ticketTypes(t *testing.T, h *harness) []seededType {
	t.Helper()
	var settings struct {
		TicketTypes []seededType `json:"ticketTypes"`
	}
	if s := h.api("GET", E+"/staff/ticketing/settings", nil, &settings); s != 200 {
		t.Fatalf("ticketing settings: %d", s)
	}
	return settings.TicketTypes
}

// The members' tiers are tied to the plans the Memberships sandbox seeds:
// one per plan, named and described for it, unsold, after the public types
// (whose ids the examples and tests use).
func TestSeedMemberTierPerMembershipsPlan(t *testing.T) {
	h := newHarness(t, 100, sandboxkit.Options{})
	types := ticketTypes(t, h)
	plans := msandbox.PlanIDs()
	if len(MemberTiers) != len(plans) || len(types) != 3+len(plans) {
		t.Fatalf("%d tiers, %d ticket types for %d plans", len(MemberTiers), len(types), len(plans))
	}
	if types[0].ID != 145680 || types[0].Name != "General Admission" || types[0].Price != 199 {
		t.Fatalf("General Admission moved: %+v", types[0])
	}
	for i, plan := range plans {
		tier, got := MemberTiers[i], types[3+i]
		if tier.PlanID != plan {
			t.Errorf("tier %d is for %q, want the plan %q", i, tier.PlanID, plan)
		}
		want := fmt.Sprintf("For members on the Memberships plan %s.", plan)
		if got.ID != 145683+int64(i) || got.Name != tier.Name || got.Price != tier.Price || got.Description != want || got.RemainingTickets < 20 {
			t.Errorf("seeded %+v, want id %d, %q at %v, %q, 20 or more left", got, 145683+i, tier.Name, tier.Price, want)
		}
	}
}

func TestMutateReprice(t *testing.T) {
	h := newHarness(t, 100, sandboxkit.Options{})
	fellow := 145683 + int64(len(MemberTiers)) - 1
	cases := []struct {
		name    string
		args    map[string]any
		id      int64
		price   float64
		wantErr string
	}{
		{"General Admission by default", map[string]any{"price": 249.0}, 145680, 249, ""},
		{"a named ticket type", map[string]any{"price": 120.5, "ticketTypeId": float64(fellow)}, fellow, 120.5, ""},
		{"no price", map[string]any{}, 0, 0, "args.price must be a number"},
		{"a negative price", map[string]any{"price": -1.0}, 0, 0, "args.price must be a number"},
		{"an unknown ticket type", map[string]any{"price": 10.0, "ticketTypeId": 9.0}, 0, 0, "no ticket type 9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := h.srv.Mutate(sandboxkit.Mutation{Kind: MutateReprice, Args: tc.args})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || out["ticketTypeId"] != tc.id || out["to"] != tc.price {
				t.Fatalf("%v %v", out, err)
			}
			for _, typ := range ticketTypes(t, h) {
				if typ.ID == tc.id && typ.Price != tc.price {
					t.Fatalf("ticket type %d costs %v after the mutation, want %v", tc.id, typ.Price, tc.price)
				}
			}
		})
	}
}
