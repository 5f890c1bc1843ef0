package all

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

// TestEveryWriteIsSafeToResendOrSettles holds the whole catalogue to the
// exactly-once rule: an action that writes is either idempotent by
// construction, and says why (an upsert names its key, which the input
// must require), or has a Settle look-up that decides an in-doubt write.
// Otherwise a dropped answer would leave the engine only the choice
// between a duplicate and a dead letter.
// cannotSettle lists the writes the rule cannot hold, each with why.
var cannotSettle = map[string]string{
	// Accredible documents no listing or search of team members, only
	// GET /v1/team_members/{id}: an in-doubt create cannot be looked up,
	// and the engine dead-letters it rather than risk a second invitation.
	"accredible.create_team_member": "no documented look-up",
	// A token grant cannot be looked up, and its authorization code or
	// rotated refresh token is spent by the first request: re-sent after
	// a lost answer it is refused and the issued token lost.
	"memberships.get_access_token": "a grant spends what it presents",
}

func TestEveryWriteIsSafeToResendOrSettles(t *testing.T) {
	kinds := []connectors.IdempotencyKind{connectors.ResendSets, connectors.ResendDeletes, connectors.ResendUpserts, connectors.ResendIssues, connectors.ResendNotifies}
	writes := 0
	for _, s := range connectors.Default.List() {
		for _, a := range s.Actions {
			if a.ReadOnly {
				continue
			}
			writes++
			name := s.Name + "." + a.Name
			if idem := a.Idempotency; idem != nil {
				if !a.Idempotent {
					t.Errorf("%s declares Idempotency %q but not Idempotent: the engine would journal an intent it never needs", name, idem.Kind)
				}
				if !slices.Contains(kinds, idem.Kind) {
					t.Errorf("%s: unknown idempotency kind %q", name, idem.Kind)
				}
				if idem.Kind == connectors.ResendUpserts {
					checkUpsertKey(t, name, a)
				}
				continue
			}
			if a.Settle != nil {
				if _, listed := cannotSettle[name]; listed {
					t.Errorf("%s settles now: take it off cannotSettle", name)
				}
				continue
			}
			if _, listed := cannotSettle[name]; listed {
				continue
			}
			if a.Idempotent {
				t.Errorf("%s writes and says it is Idempotent without saying why: declare Idempotency (sets, deletes, upserts with its key, issues) or add a Settle", name)
			} else {
				t.Errorf("%s writes, is not idempotent and has no Settle: an in-doubt call could only be dead-lettered", name)
			}
		}
	}
	if writes == 0 {
		t.Fatal("no action writes: connectors/all registered nothing")
	}
}

func checkUpsertKey(t *testing.T, name string, a *connectors.ActionSpec) {
	t.Helper()
	if len(a.Idempotency.Key) == 0 {
		t.Errorf("%s is an upsert without a key: name the input fields the record is found by", name)
		return
	}
	var in struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	if err := json.Unmarshal(a.Input, &in); err != nil {
		t.Errorf("%s: input schema: %v", name, err)
		return
	}
	for _, k := range a.Idempotency.Key {
		if _, ok := in.Properties[k]; !ok {
			t.Errorf("%s: upsert key %q is not a field of the input schema", name, k)
		} else if !slices.Contains(in.Required, k) {
			t.Errorf("%s: upsert key %q is not required by the input schema: without it nothing can be found", name, k)
		}
	}
}
