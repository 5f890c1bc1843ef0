package engine

import (
	"encoding/json"

	"github.com/memberflow/memberflow/recipes"
)

// absentKeys are the keys of an action's input, and of its objects, that
// take no null: an expression that gives nothing for one (a field the
// record lacks) leaves the key out of the call instead of sending null.
// Sent, null would clear the service's value on an update (the member's
// certificate id, say) or be refused; left out, the service keeps what
// it has. Keys whose schema admits null get it as written.
type absentKeys struct {
	drop map[string]bool
	sub  map[string]*absentKeys
}

// absentKeysOf reads an input schema's properties; nil when nothing is
// to drop.
func absentKeysOf(schema json.RawMessage) *absentKeys {
	var s map[string]any
	if json.Unmarshal(schema, &s) != nil {
		return nil
	}
	return absentKeysIn(s)
}

func absentKeysIn(s map[string]any) *absentKeys {
	props, _ := s["properties"].(map[string]any)
	if len(props) == 0 {
		return nil
	}
	a := &absentKeys{drop: map[string]bool{}, sub: map[string]*absentKeys{}}
	for k, v := range props {
		ps, _ := v.(map[string]any)
		if ps == nil {
			continue
		}
		if !takesNull(ps) {
			a.drop[k] = true
		}
		if sub := absentKeysIn(ps); sub != nil {
			a.sub[k] = sub
		}
	}
	return a
}

// takesNull reports whether a schema admits null: no type said, "null"
// among its types, or an anyOf/oneOf branch that does.
func takesNull(s map[string]any) bool {
	switch t := s["type"].(type) {
	case string:
		return t == "null"
	case []any:
		for _, x := range t {
			if x == "null" {
				return true
			}
		}
		return false
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		if branches, ok := s[k].([]any); ok {
			for _, b := range branches {
				if bs, ok := b.(map[string]any); ok && takesNull(bs) {
					return true
				}
			}
			return false
		}
	}
	return true
}

// apply removes from in the keys that hold nil and take no null.
func (a *absentKeys) apply(in map[string]any) {
	if a == nil {
		return
	}
	for k, v := range in {
		switch v := v.(type) {
		case nil:
			if a.drop[k] {
				delete(in, k)
			}
		case map[string]any:
			a.sub[k].apply(v)
		}
	}
}

// stepInput evaluates a step's `with` for a call: the input, with the
// keys that hold nothing and take no null left out, checked against the
// action's input schema.
func (st *stepRT) stepInput(env recipes.Env) (map[string]any, error) {
	input, err := st.s.With.EvalMap(env)
	if err != nil {
		return nil, err
	}
	if input == nil {
		input = map[string]any{}
	}
	st.absent.apply(input)
	if err := st.check.Check(input); err != nil {
		return nil, err
	}
	return input, nil
}
