package accredible

import (
	"context"
	"fmt"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

var _ connectors.Identifier = (*Client)(nil)

// Identify implements connectors.Identifier: the issuer the API key
// belongs to (GET /v1/issuer/details).
func (c *Client) Identify(ctx context.Context) (connectors.Identity, error) {
	var out struct {
		Issuer struct {
			ID   any    `json:"id"`
			Name string `json:"name"`
		} `json:"issuer"`
	}
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: "GET", Path: "/v1/issuer/details"}, &out); err != nil {
		return connectors.Identity{}, err
	}
	if out.Issuer.ID == nil {
		return connectors.Identity{}, fmt.Errorf("accredible: GET /v1/issuer/details answered no issuer id")
	}
	return connectors.Identity{BaseURL: c.api.BaseURL(), Account: fmt.Sprintf("issuer %v", out.Issuer.ID), Name: out.Issuer.Name}, nil
}
