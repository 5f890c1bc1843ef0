package accelevents

import (
	"context"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/accelevents/sandbox"
)

func TestIdentify(t *testing.T) {
	e := newEnv(t, 1, nil)
	id, err := e.conn.(connectors.Identifier).Identify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id.Account != "event "+sandbox.DemoEventURL || id.Name == "" || id.BaseURL != e.url {
		t.Errorf("Identify = %+v", id)
	}
	e = newEnv(t, 1, func(c *connectors.ConnectionConfig) { c.Options["eventUrl"] = "no-such-event" })
	if _, err := e.conn.(connectors.Identifier).Identify(context.Background()); err == nil {
		t.Error("Identify of an unknown event succeeded")
	}
}
