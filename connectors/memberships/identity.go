package memberships

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

var _ connectors.Identifier = (*Client)(nil)

// Identify implements connectors.Identifier: the connection's location
// and its company as the API reports them (GET /locations/{locationId},
// GoHighLevel's sub-account endpoint, scope locations.readonly). A token
// without that scope is refused there (403, or 401 naming the scope): the
// identity is then the configured location, which the Users API calls are
// bound to.
func (c *Client) Identify(ctx context.Context) (connectors.Identity, error) {
	id := connectors.Identity{BaseURL: c.api.BaseURL()}
	if c.locationID == "" {
		if c.companyID != "" {
			id.Account = "company " + c.companyID
		}
		return id, nil
	}
	var out struct {
		Location struct {
			ID        string `json:"id"`
			CompanyID string `json:"companyId"`
			Name      string `json:"name"`
		} `json:"location"`
	}
	_, err := c.api.JSON(ctx, apiclient.Request{Method: "GET", Path: "/locations/" + url.PathEscape(c.locationID)}, &out)
	var api *connectors.APIError
	switch {
	case errors.As(err, &api) && (api.Status == http.StatusForbidden ||
		api.Status == http.StatusUnauthorized && strings.Contains(strings.ToLower(api.Message), "scope")):
		// A token without the scope; a token that is not valid at all
		// fails here as it would at the first call.
		id.Account = "location " + c.locationID
		id.Name = "as configured: the token cannot read /locations"
		return id, nil
	case err != nil:
		return connectors.Identity{}, err
	case out.Location.ID == "":
		return connectors.Identity{}, fmt.Errorf("memberships: GET /locations/%s answered no location id", c.locationID)
	}
	// The company goes in the name: a token without the scope cannot
	// report it, and both answers must name one account alike.
	id.Account, id.Name = "location "+out.Location.ID, out.Location.Name
	if out.Location.CompanyID != "" {
		id.Name += " (company " + out.Location.CompanyID + ")"
	}
	return id, nil
}
