package accredible

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// Accredible has no webhooks: both triggers poll the v2 search, using
// only what its document offers. updated_at is a filter on dates
// (YYYY-MM-DD), not a sort key, so a poll is a scan of every credential
// updated on or after a window's first day, in id order (a documented sort
// key) and page by page with the search cursor, comparing each
// credential's fingerprint with the one remembered: a credential re-read
// unchanged is not an event. When a scan ends, the window moves to the
// day before the newest updated_at seen: the day boundary is the
// service's, in a time zone it does not document, so a day of overlap
// keeps a change made late on one side of midnight from being missed. A
// poll therefore costs the credentials changed in the last day or two,
// read again each interval.

const (
	triggerCreated = "credential_created"
	triggerUpdated = "credential_updated"
	triggerChanged = "credential_changed"
	pollInterval   = time.Minute
	stampLayout    = "2006-01-02T15:04:05.000Z"
	dayLayout      = "2006-01-02"
)

type pollCursor struct {
	// Window is the first day a scan asks for (updated_at[gte]); empty
	// reads every credential.
	Window string `json:"window,omitempty"`
	// Newest is the newest updated_at seen in the scan under way.
	Newest string `json:"newest,omitempty"`
	// Page is the search cursor of the scan under way; empty between
	// scans.
	Page string `json:"page,omitempty"`
	// Baseline marks the first scan of a trigger started "now": what it
	// reads is remembered, not reported.
	Baseline bool `json:"baseline,omitempty"`
	// Since is the newest updated_at the baseline saw, in the service's
	// clock: credentials created before it existed when the trigger
	// started. Empty after a baseline that found nothing: then every
	// later credential is new, whatever the two clocks say.
	Since string `json:"since,omitempty"`
	// At is the newest updated_at of a cursor written before windows
	// (read only, to carry such a cursor over).
	At string `json:"at,omitempty"`
}

func triggers() []*connectors.TriggerSpec {
	params := objectSchema("Which credentials to watch.", nil, map[string]any{
		"group_id": map[string]any{"type": "integer", "minimum": 1, "description": "Only credentials of this group (certificate template); all groups when left out."},
	})
	example := map[string]any{"group_id": 100001}
	return []*connectors.TriggerSpec{
		{
			Operation: connectors.Operation{
				Name:    triggerCreated,
				Summary: "A credential was issued (by memberflow or anyone else).",
				Description: "Polls `POST /v2/credentials/search` on `updated_at`. With start: now, only credentials " +
					"created after the trigger first ran are reported.",
				Input:   params,
				Output:  json.RawMessage(credentialSchema),
				Example: example,
				HTTP:    nil,
			},
			Poll:            pollFor(triggerCreated),
			DefaultInterval: pollInterval,
		},
		{
			Operation: connectors.Operation{
				Name:    triggerUpdated,
				Summary: "A credential changed after it was issued (edited, expired, published, re-graded).",
				Description: "Polls `POST /v2/credentials/search` on `updated_at`; a credential whose state " +
					"(fingerprint) is unchanged since the last poll is not reported again.",
				Input:   params,
				Output:  json.RawMessage(credentialSchema),
				Example: example,
			},
			Poll:            pollFor(triggerUpdated),
			DefaultInterval: pollInterval,
		},
		{
			Operation: connectors.Operation{
				Name:    triggerChanged,
				Summary: "A credential was issued or changed: credential_created and credential_updated in one trigger.",
				Description: "For flows that must see every credential, new or changed, whoever issued it (memberflow or " +
					"the Accredible dashboard). Polls `POST /v2/credentials/search` on `updated_at`; event IDs are those of the two triggers.",
				Input:   params,
				Output:  json.RawMessage(credentialSchema),
				Example: example,
			},
			Poll:            pollFor(triggerChanged),
			DefaultInterval: pollInterval,
		},
	}
}

func pollFor(kind string) func(context.Context, connectors.Conn, connectors.PollRequest) (*connectors.PollResult, error) {
	return func(ctx context.Context, conn connectors.Conn, req connectors.PollRequest) (*connectors.PollResult, error) {
		c, err := connectors.As[*Client](conn)
		if err != nil {
			return nil, err
		}
		res, err := c.poll(ctx, kind, req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		return res, nil
	}
}

func baseQuery(params map[string]any) map[string]any {
	q := map[string]any{}
	if g := integer(params["group_id"]); g > 0 {
		q["group.id"] = strconv.FormatInt(g, 10)
	}
	return q
}

func (c *Client) poll(ctx context.Context, kind string, req connectors.PollRequest) (*connectors.PollResult, error) {
	var cur pollCursor
	if req.Cursor != "" {
		if err := json.Unmarshal([]byte(req.Cursor), &cur); err != nil {
			return nil, fmt.Errorf("cursor %q is not this trigger's: %w", req.Cursor, err)
		}
		if cur.At != "" && cur.Window == "" {
			cur.Window = windowBefore(cur.At)
		}
		cur.At = ""
	} else if req.Start != connectors.StartBeginning {
		now := req.Now
		if now.IsZero() {
			now = time.Now()
		}
		// Credentials not updated lately need no baseline: unknown and
		// changed later, they are updates, created before Since.
		cur.Baseline = true
		cur.Window = windowBefore(now.UTC().Format(stampLayout))
	}
	query := baseQuery(req.Params)
	if cur.Window != "" {
		query["updated_at[gte]"] = cur.Window
	}
	page := map[string]any{"from": 0, "size": searchPageSize}
	if cur.Page != "" {
		page = map[string]any{"cursor": cur.Page, "size": searchPageSize}
	}
	items, meta, err := c.search(ctx, searchRequest{Query: query, Sort: map[string]string{"id": "asc"}, Page: page})
	if err != nil {
		return nil, err
	}
	res := &connectors.PollResult{Total: meta.Count}
	subjects := make([]string, len(items))
	for i, cr := range items {
		subjects[i] = Subject(cr.ID)
	}
	prior := map[string]string{}
	if req.Prior != nil && len(subjects) > 0 {
		if prior, err = req.Prior.Lookup(ctx, subjects); err != nil {
			return nil, fmt.Errorf("reading remembered state: %w", err)
		}
	}
	since := parseStamp(cur.Since)
	next := cur
	for _, cr := range items {
		subject, fp := Subject(cr.ID), Fingerprint(cr)
		before, known := prior[subject]
		created, updated := parseStamp(cr.CreatedAt), parseStamp(cr.UpdatedAt)
		isCreated := !known && (since.IsZero() || !created.Before(since))
		isUpdated := (known && before != fp) || (!known && updated.After(created))
		switch {
		case cur.Baseline:
		case isCreated && (kind == triggerCreated || kind == triggerChanged):
			res.Events = append(res.Events, connectors.Event{ID: subject + "/created", Subject: subject, Fingerprint: fp, Time: created, Data: cr.Output()})
		case isUpdated && (kind == triggerUpdated || kind == triggerChanged):
			res.Events = append(res.Events, connectors.Event{ID: subject + "/updated/" + cr.UpdatedAt, Subject: subject, Fingerprint: fp, Time: updated, Data: cr.Output()})
		}
		if !known || before != fp {
			// Only a state that changed is remembered again.
			res.States = append(res.States, connectors.Record{Subject: subject, State: fp})
		}
		if parseStamp(cr.UpdatedAt).After(parseStamp(next.Newest)) {
			next.Newest = cr.UpdatedAt
		}
	}
	if len(items) == searchPageSize && meta.Cursor != "" {
		next.Page, res.More = meta.Cursor, true
	} else {
		// The scan is over: the next one starts a day before the newest
		// change seen.
		next.Page = ""
		if cur.Baseline {
			next.Baseline, next.Since = false, next.Newest
		}
		if next.Newest != "" {
			if w := windowBefore(next.Newest); w > next.Window {
				next.Window = w
			}
		}
	}
	b, _ := json.Marshal(next)
	res.Cursor = string(b)
	return res, nil
}

// windowBefore is the day before a timestamp's (UTC) day: the first day
// of a scan that must not miss a change made on that timestamp's day in
// any time zone.
func windowBefore(stamp string) string {
	t := parseStamp(stamp)
	if t.IsZero() {
		return ""
	}
	return t.UTC().AddDate(0, 0, -1).Format(dayLayout)
}

func parseStamp(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
