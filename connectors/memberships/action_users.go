package memberships

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

func userActions(sch *schemas) []*connectors.ActionSpec {
	user := sch.user
	upsertIn := membershipInput()
	upsertIn["email"] = map[string]any{"type": "string", "format": "email", "description": "The member's email: the key the user is found by."}
	upsertIn["firstName"] = str("First name; required when the user is created.")
	upsertIn["lastName"] = str("Last name; required when the user is created.")
	upsertIn["phone"] = str("Phone number.")
	upsertIn["password"] = str("Password for a new user; a random one is set when omitted (members sign in through their own flow).")
	return []*connectors.ActionSpec{
		{
			Operation: connectors.Operation{
				Name:        "find_user_by_email",
				Summary:     "Find a member by email address.",
				Description: "Looks the email up in the connection's company: with a location token (option access: location, the default) by GET /users/search with the email as the query in the connection's location, keeping the users whose email is the one asked (ignoring case), one request per email; with an agency token (access: agency) by POST /users/search/filter-by-email (projection all), which takes up to 100 emails a request in a batch and searches the whole company: only users whose roles.locationIds hold the connection's location are kept. When several users share the email, the oldest is returned and `count` says how many there are.",
				Input: raw(object([]string{"email"}, map[string]any{
					"email": map[string]any{"type": "string", "format": "email", "description": "The email address to look up."},
				})),
				Output: raw(object([]string{"found", "count"}, map[string]any{
					"found": map[string]any{"type": "boolean", "description": "Whether a user has this email."},
					"count": map[string]any{"type": "integer", "description": "How many users have this email."},
					"user":  nullable(user, "The oldest user with this email, or null."),
				})),
				Example: map[string]any{"email": "maria.garcia1@example.org"},
			},
			ReadOnly:   true,
			Idempotent: true,
			Run:        connectors.Bind(findUserByEmailAction),
			Batch:      &connectors.BatchForm{Max: findBatchMax, Run: connectors.BindBatch(findUsersByEmail)},
		},
		{
			Operation: connectors.Operation{
				Name:        "upsert_user",
				Summary:     "Create or update a member, found by email: never a duplicate.",
				Description: "Finds the user by email; updates the fields given when found, else creates the user in the connection's location (type account, role user). The email itself is never changed.",
				Input:       raw(object([]string{"email"}, upsertIn)),
				Output: raw(object([]string{"created", "user"}, map[string]any{
					"created": map[string]any{"type": "boolean", "description": "True when the user was created, false when an existing one was updated."},
					"user":    withDesc(user, "The user as stored."),
				})),
				Example: map[string]any{"email": "maria.garcia1@example.org", "firstName": "Maria", "lastName": "Garcia", "membershipStatus": "active", "planId": "plan_professional"},
			},
			// The look-up makes a re-send safe: a user created by an
			// ambiguous first attempt is found and updated.
			Idempotent:  true,
			Idempotency: &connectors.Idempotency{Kind: connectors.ResendUpserts, Key: []string{"email"}},
			Run:         connectors.Bind(upsertUserAction),
		},
		{
			Operation: connectors.Operation{
				Name:        "set_membership_status",
				Summary:     "Set a member's membership status (and eligibility date).",
				Description: "Reads the user, then writes the status when it differs. The output says the status before and after.",
				Input: raw(object([]string{"userId", "membershipStatus"}, map[string]any{
					"userId":           str("The user id."),
					"membershipStatus": enumOf(membershipStatuses, "The new status."),
					"eligibilityDate":  map[string]any{"type": "string", "format": "date", "pattern": `^\d{4}-\d{2}-\d{2}$`, "description": "Also set the eligibility date (YYYY-MM-DD)."},
				})),
				Output: raw(object([]string{"changed", "from", "to", "user"}, map[string]any{
					"changed": map[string]any{"type": "boolean", "description": "Whether anything was written."},
					"from":    str("The status before."),
					"to":      str("The status after."),
					"user":    withDesc(user, "The user as stored."),
				})),
				Example: map[string]any{"userId": "ve9EPM428h8vShlRW1KT", "membershipStatus": "eligible", "eligibilityDate": "2026-03-14"},
			},
			Idempotent:       true,
			Idempotency:      &connectors.Idempotency{Kind: connectors.ResendSets}, // PUT /users/{userId}
			Run:              connectors.Bind(setMembershipStatusAction),
			ReportsUnchanged: true,
		},
	}
}

func findUserByEmailAction(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	email, _ := in["email"].(string)
	users, err := c.usersByEmail(ctx, "find_user_by_email", c.companyID, c.locationID, email)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"found": len(users) > 0, "count": len(users), "user": nil}
	if len(users) > 0 {
		out["user"] = users[0]
	}
	return &connectors.Result{Output: out}, nil
}

func (c *Client) putUser(ctx context.Context, op, id string, body map[string]any) (map[string]any, error) {
	var user map[string]any
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPut, Path: "/users/" + id, Body: c.withCompany(body)}, &user); err != nil {
		return nil, fmt.Errorf("memberships.%s: updating user %s: %w", op, id, err)
	}
	return user, nil
}

func wroteUser(user map[string]any) []connectors.Record {
	id, _ := user["id"].(string)
	if id == "" {
		return nil // a dry run answers {}
	}
	return []connectors.Record{{Subject: userSubject(id), State: UserFingerprint(user)}}
}

func upsertUserAction(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	const op = "upsert_user"
	email, _ := in["email"].(string)
	users, err := c.usersByEmail(ctx, op, c.companyID, c.locationID, email)
	if err != nil {
		return nil, err
	}
	fields := map[string]any{}
	for k, v := range in {
		if k != "email" && k != "password" {
			fields[k] = v
		}
	}
	if len(users) > 0 {
		id, _ := users[0]["id"].(string)
		user, err := c.putUser(ctx, op, id, fields)
		if err != nil {
			return nil, err
		}
		return &connectors.Result{Output: map[string]any{"created": false, "user": user}, Wrote: wroteUser(user)}, nil
	}
	loc, err := c.need(op, "locationId", c.locationID)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, k := range []string{"firstName", "lastName"} {
		if s, _ := in[k].(string); s == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("memberships.%s: no user has email %q, and creating one needs %s", op, email, strings.Join(missing, " and "))
	}
	fields["email"] = email
	fields["companyId"] = c.companyID
	fields["locationIds"] = []string{loc}
	fields["type"] = "account"
	fields["role"] = "user"
	fields["password"] = in["password"]
	if p, _ := in["password"].(string); p == "" {
		fields["password"] = randomPassword()
	}
	var user map[string]any
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: "/users/", Body: fields}, &user); err != nil {
		return nil, fmt.Errorf("memberships.%s: creating user %q: %w", op, email, err)
	}
	return &connectors.Result{Output: map[string]any{"created": true, "user": user}, Wrote: wroteUser(user)}, nil
}

// randomPassword is for users created on a member's behalf; they set their
// own through the service's reset flow.
func randomPassword() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b) + "Aa1!"
}

func setMembershipStatusAction(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	const op = "set_membership_status"
	id, _ := in["userId"].(string)
	to, _ := in["membershipStatus"].(string)
	var user map[string]any
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodGet, Path: "/users/" + id}, &user); err != nil {
		return nil, fmt.Errorf("memberships.%s: reading user %s: %w", op, id, err)
	}
	if c.access == AccessAgency {
		// An agency token may write any user of the company; the
		// connection keeps to its location, which the user just read says.
		ok, err := inLocation(op, user, c.locationID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("memberships.%s: user %s is not in the connection's location %s (its roles.locationIds: %s); an agency token could write it, the connection does not", op, id, c.locationID, userLocations(user))
		}
	}
	from, _ := user["membershipStatus"].(string)
	date, hasDate := in["eligibilityDate"].(string)
	if from == to && (!hasDate || user["eligibilityDate"] == date) {
		return &connectors.Result{Output: map[string]any{"changed": false, "from": from, "to": to, "user": user}}, nil
	}
	body := map[string]any{"membershipStatus": to}
	if hasDate {
		body["eligibilityDate"] = date
	}
	updated, err := c.putUser(ctx, op, id, body)
	if err != nil {
		return nil, err
	}
	return &connectors.Result{Output: map[string]any{"changed": true, "from": from, "to": to, "user": updated}, Wrote: wroteUser(updated)}, nil
}

// decorateGenerated adds what the document cannot say to generated
// actions: the records writes change (echo suppression) and how to settle
// an ambiguous create.
func decorateGenerated(s *connectors.Spec) {
	wrap := func(name string, wrote func(map[string]any) []connectors.Record) {
		a := s.Action(name)
		if a == nil {
			panic("memberships: no generated action " + name)
		}
		run := a.Run
		a.Run = func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, error) {
			res, err := run(ctx, conn, in)
			if err != nil {
				return nil, fmt.Errorf("memberships.%s: %w", name, err)
			}
			if rec, ok := res.Output.(map[string]any); ok {
				res.Wrote = wrote(rec)
			}
			return res, nil
		}
	}
	wrap("create_user", wroteUser)
	wrap("update_user", wroteUser)
	// An agency token's update needs companyId (UpdateUserDto); the
	// recipe should not have to know the token's level to write a user.
	// Creates and updates of an agency connection keep to its location.
	update := s.Action("update_user")
	run := update.Run
	update.Run = func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, error) {
		if c, err := connectors.As[*Client](conn); err == nil {
			if err := c.checkLocationIDs("update_user", in); err != nil {
				return nil, err
			}
			in = c.withCompany(in)
		}
		return run(ctx, conn, in)
	}
	create := s.Action("create_user")
	runCreate := create.Run
	create.Run = func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, error) {
		if c, err := connectors.As[*Client](conn); err == nil {
			if err := c.checkLocationIDs("create_user", in); err != nil {
				return nil, err
			}
		}
		return runCreate(ctx, conn, in)
	}
	wrap("create_payment", wrotePayment)
	wrap("update_payment", wrotePayment)
	s.Action("create_user").Settle = settleCreateUser
	s.Action("create_payment").Settle = settleCreatePayment
}

// settleCreateUser looks an in-doubt create up by email: the newest user
// with it in the create's location (its first locationIds, else the
// connection's) is the one the create made. An agency token's look-up
// searches the whole company, so a user of another location with the
// email is not taken for it.
func settleCreateUser(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	email, _ := in["email"].(string)
	company, _ := in["companyId"].(string)
	if company == "" {
		company = c.companyID
	}
	location := c.locationID
	if ids := locationIDs(in); len(ids) > 0 && ids[0] != "" {
		location = ids[0]
	}
	users, err := c.usersByEmail(ctx, "create_user", company, location, email)
	if err != nil {
		return nil, false, fmt.Errorf("settling: %w", err)
	}
	if len(users) == 0 {
		return nil, false, nil
	}
	user := users[len(users)-1]
	return &connectors.Result{Output: user, Wrote: wroteUser(user)}, true, nil
}
