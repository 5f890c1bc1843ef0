package memberships

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

// Access is the level of the connection's token. GoHighLevel secures each
// route with Location-Access (a sub-account token: a location's private
// integration token or an OAuth token of user type Location),
// Agency-Access (an agency's), or both; POST /users/search/filter-by-email
// takes an agency token only, so how users are looked up by email depends
// on the level.
type Access string

const (
	// AccessLocation: look users up by email with GET /users/search (one
	// request per email). The default, as the README's connection is a
	// location's private integration token.
	AccessLocation Access = "location"
	// AccessAgency: look users up with POST /users/search/filter-by-email
	// (up to 100 emails a request), and send companyId on PUT /users/{id}.
	AccessAgency Access = "agency"
)

// accessValues are the option's values, in the order the schema lists them.
var accessValues = []Access{AccessLocation, AccessAgency}

// userType is the OAuth token answer's word for the level.
func (a Access) userType() string {
	if a == AccessAgency {
		return "Company"
	}
	return "Location"
}

// accessOption reads the connection option access; explicit says whether
// the connection set it (an error then names the option as the cause).
func accessOption(name string, options map[string]any) (a Access, explicit bool, err error) {
	v, ok := options["access"]
	if !ok || v == nil {
		return AccessLocation, false, nil
	}
	s, isStr := v.(string)
	for _, known := range accessValues {
		if isStr && Access(s) == known {
			return known, true, nil
		}
	}
	return "", false, fmt.Errorf("memberships: connection %q: option access must be %q or %q, got %#v", name, AccessLocation, AccessAgency, v)
}

// tokenCheck returns the check of each OAuth token the service issues:
// its userType must be the connection's level. A token of the other level
// would be refused by half the routes (filter-by-email, or the location's
// own), so the connection stops at once with what to change.
func tokenCheck(name string, access Access, explicit bool) func(field func(string) any) error {
	return func(field func(string) any) error {
		got, _ := field("userType").(string)
		if got == "" || strings.EqualFold(got, access.userType()) {
			return nil // a service that does not say is taken at its word
		}
		other := AccessAgency
		if access == AccessAgency {
			other = AccessLocation
		}
		set := "the connection option access is not set, so it is " + string(access)
		if explicit {
			set = "the connection option access is " + string(access)
		}
		return fmt.Errorf("memberships: connection %q: the OAuth token is of user type %s (%s level), but %s: set access: %s, or authorise the app for a %s",
			name, got, other, set, other, map[Access]string{AccessLocation: "location (sub-account)", AccessAgency: "agency (company)"}[access])
	}
}

// agencyRefusal explains a 401 from an Agency-Access-only route: the
// token is a location's although the connection says agency.
func (c *Client) agencyRefusal(err error) error {
	var api *connectors.APIError
	if c.access == AccessAgency && errors.As(err, &api) && api.Status == http.StatusUnauthorized && strings.Contains(api.Message, "Agency") {
		return fmt.Errorf("%w (the connection option access is agency, but the service took the token for a location's: use an agency token, or set access: location)", err)
	}
	return err
}

// usersByEmail returns the users of a location with an email, oldest
// first, by the route the connection's level may call.
func (c *Client) usersByEmail(ctx context.Context, op, companyID, locationID, email string) ([]map[string]any, error) {
	if strings.TrimSpace(email) == "" {
		// The search would read an empty query as "every user".
		return nil, fmt.Errorf("memberships.%s: email is empty", op)
	}
	if c.access == AccessAgency {
		return c.filterByEmail(ctx, op, companyID, locationID, email)
	}
	return c.searchByEmail(ctx, op, companyID, locationID, email)
}

// filterByEmail is the agency look-up: POST /users/search/filter-by-email,
// kept to the location (filterByEmails).
func (c *Client) filterByEmail(ctx context.Context, op, companyID, locationID, email string) ([]map[string]any, error) {
	if strings.Contains(email, ",") {
		return nil, fmt.Errorf("memberships.%s: email %q holds a comma; the API reads it as a list", op, email)
	}
	found, err := c.filterByEmails(ctx, op, companyID, locationID, []string{strings.TrimSpace(email)})
	if err != nil {
		return nil, err
	}
	return found[emailKey(email)], nil
}

// emailKey is how answers are matched to the emails asked.
func emailKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// inLocation reports whether a user belongs to a location: its
// roles.locationIds (RoleSchema, the one location field the document
// gives a user) holds it. A user whose answer carries no
// roles.locationIds cannot be placed, and is an error rather than a user
// left out: upsert_user would then create a duplicate.
func inLocation(op string, u map[string]any, location string) (bool, error) {
	roles, _ := u["roles"].(map[string]any)
	raw, has := roles["locationIds"]
	if !has {
		id, _ := u["id"].(string)
		return false, fmt.Errorf("memberships.%s: the service answered user %q without roles.locationIds, so its location is unknown", op, id)
	}
	ids, _ := raw.([]any) // null: a user of no location (agency level)
	for _, v := range ids {
		if v == location {
			return true, nil
		}
	}
	return false, nil
}

// userLocations is a user's roles.locationIds, for messages.
func userLocations(u map[string]any) string {
	roles, _ := u["roles"].(map[string]any)
	return fmt.Sprint(roles["locationIds"])
}

// locationIDs is a create's or update's locationIds, as a recipe's input
// (decoded JSON) or a Go caller's gives it.
func locationIDs(in map[string]any) []string {
	switch v := in["locationIds"].(type) {
	case []any:
		ids := make([]string, len(v))
		for i, x := range v {
			ids[i], _ = x.(string)
		}
		return ids
	case []string:
		return v
	}
	return nil
}

// checkLocationIDs refuses, for an agency connection, a create or update
// whose locationIds names another location than the connection's: the
// token could write there (a location token would be refused by the
// service), the connection does not. It costs no request.
func (c *Client) checkLocationIDs(op string, in map[string]any) error {
	if c.access != AccessAgency {
		return nil
	}
	for _, id := range locationIDs(in) {
		if id != c.locationID {
			return fmt.Errorf("memberships.%s: locationIds names %s, outside the connection's location %s (an agency token could write there; the connection keeps to its location)", op, id, c.locationID)
		}
	}
	return nil
}

// searchByEmail is the location look-up: GET /users/search with the email
// as the query, which the service matches against full names, emails and
// phones, in part. The users whose email is the one asked (ignoring case)
// are kept; the search is read in the order users were added, so the
// oldest comes first, and paged while the count says more match.
func (c *Client) searchByEmail(ctx context.Context, op, companyID, locationID, email string) ([]map[string]any, error) {
	company, err := c.need(op, "companyId", companyID)
	if err != nil {
		return nil, err
	}
	loc, err := c.need(op, "locationId", locationID)
	if err != nil {
		return nil, err
	}
	want := strings.TrimSpace(email)
	var found []map[string]any
	for skip := 0; ; {
		q := url.Values{
			"companyId": {company}, "locationId": {loc}, "query": {want},
			"sort": {"dateAdded"}, "sortDirection": {"asc"},
			"skip": {strconv.Itoa(skip)}, "limit": {strconv.Itoa(pageSize)},
		}
		var page struct {
			Users []map[string]any `json:"users"`
			Count int              `json:"count"`
		}
		if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodGet, Path: "/users/search", Query: q}, &page); err != nil {
			return nil, fmt.Errorf("memberships.%s: looking up %q: %w", op, email, err)
		}
		for _, u := range page.Users {
			if e, _ := u["email"].(string); strings.EqualFold(strings.TrimSpace(e), want) {
				found = append(found, u)
			}
		}
		skip += len(page.Users)
		if len(page.Users) < pageSize || skip >= page.Count {
			return found, nil
		}
	}
}

// withCompany adds the connection's companyId to the body of a user
// update when the token is an agency's: UpdateUserDto says it is
// "Required for Agency Level access". A companyId the caller gave is kept.
func (c *Client) withCompany(body map[string]any) map[string]any {
	if c.access != AccessAgency || c.companyID == "" {
		return body
	}
	if v, ok := body["companyId"]; ok && v != nil && v != "" {
		return body
	}
	out := make(map[string]any, len(body)+1)
	for k, v := range body {
		out[k] = v
	}
	out["companyId"] = c.companyID
	return out
}
