package accelevents

import (
	"context"
	"fmt"
	"net/url"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

var _ connectors.Identifier = (*Client)(nil)

// Identify implements connectors.Identifier: the connection's event as
// the API reports it (GET /rest/events/{eventUrl}). A connection without
// a default event names the organiser's key only by its base URL.
func (c *Client) Identify(ctx context.Context) (connectors.Identity, error) {
	if c.eventURL == "" {
		return connectors.Identity{BaseURL: c.api.BaseURL()}, nil
	}
	var out struct {
		EventURL string `json:"eventUrl"`
		Name     string `json:"name"`
	}
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: "GET", Path: "/rest/events/" + url.PathEscape(c.eventURL)}, &out); err != nil {
		return connectors.Identity{}, err
	}
	if out.EventURL == "" {
		out.EventURL = c.eventURL
	}
	return connectors.Identity{BaseURL: c.api.BaseURL(), Account: fmt.Sprintf("event %s", out.EventURL), Name: out.Name}, nil
}
