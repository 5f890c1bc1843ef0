package engine

import (
	"context"
	"maps"
	"testing"
)

// statesStore answers PriorStates from a map.
type statesStore struct {
	TriggerStore
	states map[string]string
}

func (s statesStore) PriorStates(_ context.Context, _ string, subjects []string) (map[string]string, error) {
	out := map[string]string{}
	for _, sub := range subjects {
		if st, ok := s.states[sub]; ok {
			out[sub] = st
		}
	}
	return out, nil
}

// TestPriorStateSeesThePageBeingCommitted: the next page is read while the
// page before it commits; a subject of both is judged against the state
// that page writes, not the store's older one (else a record the first
// page saw would be news again on the second).
func TestPriorStateSeesThePageBeingCommitted(t *testing.T) {
	store := statesStore{states: map[string]string{"a": "a1", "b": "b1"}}
	for _, tc := range []struct {
		name       string
		committing map[string]string
		want       map[string]string
	}{
		{"no page committing", nil, map[string]string{"a": "a1", "b": "b1"}},
		{"the page's states are newer", map[string]string{"a": "a2", "c": "c1"}, map[string]string{"a": "a2", "b": "b1", "c": "c1"}},
		{"only the subjects asked", map[string]string{"z": "z1"}, map[string]string{"a": "a1", "b": "b1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := priorState{store: store, name: "r", committing: tc.committing}
			got, err := p.Lookup(context.Background(), []string{"a", "b", "c"})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("Lookup = %v, want %v", got, tc.want)
			}
		})
	}
}
