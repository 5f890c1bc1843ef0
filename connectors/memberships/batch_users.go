package memberships

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

// findBatchMax is the most emails one filter-by-email request carries:
// the answer pages by 100 (the search's largest page), so a batch of
// distinct emails usually fits one page.
const findBatchMax = 100

// findUsersByEmail is find_user_by_email's batch form. Each answer is
// matched to its input by email, case-insensitively, as a look-up of that
// email alone would be, and an email asked twice is looked up once.
//
// With agency access the documented POST /users/search/filter-by-email
// takes a comma-separated list of emails, so one request (a page of 100
// users; more pages only when more users share them, in any location of
// the company) looks up a whole batch. With location access that route is closed (Agency-Access only):
// each distinct email is one GET /users/search, and an email whose
// look-up fails fails its own inputs only.
func findUsersByEmail(ctx context.Context, c *Client, inputs []map[string]any) ([]connectors.ItemResult, error) {
	const op = "find_user_by_email"
	out := make([]connectors.ItemResult, len(inputs))
	if len(inputs) == 1 {
		// A batch of one is the call itself: the same request as Run.
		out[0].Result, out[0].Err = findUserByEmailAction(ctx, c, inputs[0])
		return out, nil
	}
	key := emailKey
	var emails []string
	asked := map[string]bool{}
	for i, in := range inputs {
		email, _ := in["email"].(string)
		switch k := key(email); {
		case k == "":
			out[i].Err = fmt.Errorf("memberships.%s: email is empty", op)
		case c.access == AccessAgency && strings.Contains(k, ","):
			out[i].Err = fmt.Errorf("memberships.%s: email %q holds a comma; the API reads it as a list", op, email)
		case !asked[k]:
			asked[k] = true
			emails = append(emails, k)
		}
	}
	found := map[string][]map[string]any{}
	failed := map[string]error{}
	if c.access == AccessAgency {
		var err error
		if found, err = c.filterByEmails(ctx, op, c.companyID, c.locationID, emails); err != nil {
			return nil, err
		}
	} else {
		for _, e := range emails {
			users, err := c.searchByEmail(ctx, op, c.companyID, c.locationID, e)
			if err != nil {
				failed[e] = err
				continue
			}
			found[e] = users
		}
	}
	for i, in := range inputs {
		if out[i].Err != nil {
			continue
		}
		email, _ := in["email"].(string)
		if err := failed[key(email)]; err != nil {
			out[i].Err = err
			continue
		}
		users := found[key(email)]
		o := map[string]any{"found": len(users) > 0, "count": len(users), "user": nil}
		if len(users) > 0 {
			o["user"] = users[0]
		}
		out[i].Result = &connectors.Result{Output: o}
	}
	return out, nil
}

// filterByEmails looks emails up with one filter-by-email request, paged
// while more users match, and groups by email (lower case), in the order
// the API answers, the users of the location.
//
// The route searches the company: FilterByEmailDto takes companyId and
// no location, so the answer holds the users of every sub-account with
// the emails. Only those whose roles.locationIds hold the location are
// kept (projection all, else the answer is id and email only). Pages
// are the service's: skip advances by the users answered, kept or not,
// and the count says when the last page is read.
func (c *Client) filterByEmails(ctx context.Context, op, companyID, locationID string, emails []string) (map[string][]map[string]any, error) {
	company, err := c.need(op, "companyId", companyID)
	if err != nil {
		return nil, err
	}
	loc, err := c.need(op, "locationId", locationID)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("%d emails", len(emails))
	if len(emails) == 1 {
		what = strconv.Quote(emails[0])
	}
	found := map[string][]map[string]any{}
	for skip := 0; len(emails) > 0; {
		var page struct {
			Users []map[string]any `json:"users"`
			Count int              `json:"count"`
		}
		_, err := c.api.JSON(ctx, apiclient.Request{
			Method: http.MethodPost, Path: "/users/search/filter-by-email", ReadOnly: true,
			Body: map[string]any{"companyId": company, "emails": strings.Join(emails, ","), "projection": "all", "limit": strconv.Itoa(pageSize), "skip": strconv.Itoa(skip)},
		}, &page)
		if err != nil {
			return nil, fmt.Errorf("memberships.%s: looking up %s: %w", op, what, c.agencyRefusal(err))
		}
		for _, u := range page.Users {
			ok, err := inLocation(op, u, loc)
			if err != nil {
				return nil, fmt.Errorf("%w (looking up %s)", err, what)
			}
			if !ok {
				continue
			}
			email, _ := u["email"].(string)
			found[emailKey(email)] = append(found[emailKey(email)], u)
		}
		skip += len(page.Users)
		if len(page.Users) < pageSize || skip >= page.Count {
			break
		}
	}
	return found, nil
}
