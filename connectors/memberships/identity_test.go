package memberships

import (
	"context"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/memberships/sandbox"
)

func TestIdentify(t *testing.T) {
	for _, tc := range []struct {
		name        string
		location    string
		wantAccount string
		wantName    string
	}{
		{"the location as the API reports it", sandbox.DemoLocationID, "location " + sandbox.DemoLocationID, "company " + sandbox.DemoCompanyID},
		// The sandbox refuses another location (403), as GoHighLevel
		// refuses a token without locations.readonly: the configured one.
		{"refused: the configured location", "otherLocation42", "location otherLocation42", "as configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 1, nil, func(c *connectors.ConnectionConfig) { c.Options["locationId"] = tc.location })
			id, err := f.conn.Identify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if id.Account != tc.wantAccount || !strings.Contains(id.Name, tc.wantName) || id.BaseURL != f.srv.URL {
				t.Errorf("Identify = %+v, want account %q, a name with %q, base %s", id, tc.wantAccount, tc.wantName, f.srv.URL)
			}
		})
	}
	t.Run("a bad token fails", func(t *testing.T) {
		f := newFixture(t, 1, nil, func(c *connectors.ConnectionConfig) { c.Auth.Token = "wrong" })
		if _, err := f.conn.Identify(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("Identify with a bad token = %v, want the 401", err)
		}
	})
}
