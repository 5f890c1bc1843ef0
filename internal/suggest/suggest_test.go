package suggest

import "testing"

func TestClosest(t *testing.T) {
	names := []string{"get_user", "update_user", "list_users", "validate", "connectors"}
	for _, tc := range []struct{ in, want string }{
		{"get_usr", "get_user"},
		{"updte_user", "update_user"},
		{"validat", "validate"},
		{"conectors", "connectors"},
		{"zzz", ""},
		{"delete_everything", ""},
	} {
		if got := Closest(tc.in, names); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"café", "cafe", 1}} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
