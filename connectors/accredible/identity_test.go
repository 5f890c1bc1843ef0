package accredible

import (
	"context"
	"strings"
	"testing"
)

func TestIdentify(t *testing.T) {
	e := setup(t)
	id, err := e.c.Identify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id.Account, "issuer ") || id.Account == "issuer <nil>" || id.Name == "" || id.BaseURL != e.url {
		t.Errorf("Identify = %+v", id)
	}
}
