package apiclient

import (
	"reflect"
	"testing"
)

func TestRedactFields(t *testing.T) {
	type user struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	for _, tc := range []struct {
		name string
		in   any
		want any
	}{
		{"nil", nil, nil},
		{"nested map", map[string]any{"user": map[string]any{"password": "hunter22", "name": "Ada"}},
			map[string]any{"user": map[string]any{"password": Redacted, "name": "Ada"}}},
		{"list", []any{map[string]any{"client_secret": "s3cr3t"}}, []any{map[string]any{"client_secret": Redacted}}},
		{"struct", user{Email: "a@example.com", Password: "pw12345"}, map[string]any{"email": "a@example.com", "password": Redacted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := redactFields(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("redactFields = %#v, want %#v", got, tc.want)
			}
		})
	}
}
