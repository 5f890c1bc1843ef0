package engine

import (
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

func TestEventDataPrefersTheTriggersJSON(t *testing.T) {
	data := map[string]any{"b": 2.0, "a": "x"}
	cases := []struct {
		name string
		ev   connectors.Event
		want string
	}{
		{"encoded", connectors.Event{Data: data}, `{"a":"x","b":2}`},
		{"as read", connectors.Event{Data: data, Raw: []byte(`{"b":2,"a":"x"}`)}, `{"b":2,"a":"x"}`},
	}
	for _, tc := range cases {
		got, err := eventData(tc.ev)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %s %v, want %s", tc.name, got, err, tc.want)
		}
	}
}
