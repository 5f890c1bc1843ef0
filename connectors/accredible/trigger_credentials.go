package accredible

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// Accredible has no webhooks: both triggers poll the v2 search on
// updated_at, oldest first. The cursor remembers the newest updated_at
// seen and the ids seen at exactly that instant, so that credentials
// sharing a timestamp are neither skipped nor repeated; per-credential
// state (the fingerprint) tells a change from a re-read.

const (
	triggerCreated = "credential_created"
	triggerUpdated = "credential_updated"
	triggerChanged = "credential_changed"
	pollInterval   = time.Minute
	stampLayout    = "2006-01-02T15:04:05.000Z"
)

type pollCursor struct {
	// At is the updated_at of the newest credential seen.
	At string `json:"at,omitempty"`
	// IDs are the credentials seen with updated_at equal to At.
	IDs []string `json:"ids,omitempty"`
	// Since is the newest updated_at when the trigger started (start:
	// now): credentials created before it are not reported as created.
	Since string `json:"since,omitempty"`
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
	} else if req.Start != connectors.StartBeginning {
		return c.startNow(ctx, req)
	}
	query := baseQuery(req.Params)
	if cur.At != "" {
		query["updated_at[gte]"] = cur.At
	}
	seen := map[string]bool{}
	for _, id := range cur.IDs {
		seen[id] = true
	}
	search := searchRequest{Query: query, Sort: map[string]string{"updated_at": "asc"}, Page: map[string]any{"from": 0, "size": searchPageSize}}
	var fresh []Credential
	var meta searchMeta
	read := 0
	for {
		items, m, err := c.search(ctx, search)
		if err != nil {
			return nil, err
		}
		meta, read = m, read+len(items)
		for _, it := range items {
			if it.UpdatedAt == cur.At && seen[it.ID] {
				continue
			}
			fresh = append(fresh, it)
		}
		// A full page of credentials already seen at the cursor's instant:
		// read on with the search cursor rather than stall.
		if len(fresh) > 0 || len(items) < searchPageSize || m.Cursor == "" || read >= m.Count {
			break
		}
		search.Page = map[string]any{"cursor": m.Cursor, "size": searchPageSize}
	}
	// Total is what the search reports from the cursor on: during a
	// backfill, the credentials left to read.
	res := &connectors.PollResult{More: read < meta.Count, Total: meta.Count}
	subjects := make([]string, len(fresh))
	for i, cr := range fresh {
		subjects[i] = Subject(cr.ID)
	}
	prior := map[string]string{}
	if req.Prior != nil && len(subjects) > 0 {
		var err error
		if prior, err = req.Prior.Lookup(ctx, subjects); err != nil {
			return nil, fmt.Errorf("reading remembered state: %w", err)
		}
	}
	since := parseStamp(cur.Since)
	at, ids := cur.At, cur.IDs
	for _, cr := range fresh {
		subject, fp := Subject(cr.ID), Fingerprint(cr)
		before, known := prior[subject]
		created, updated := parseStamp(cr.CreatedAt), parseStamp(cr.UpdatedAt)
		isCreated := !known && (since.IsZero() || !created.Before(since))
		isUpdated := (known && before != fp) || (!known && updated.After(created))
		switch {
		case isCreated && (kind == triggerCreated || kind == triggerChanged):
			res.Events = append(res.Events, connectors.Event{ID: subject + "/created", Subject: subject, Fingerprint: fp, Time: created, Data: cr.Output()})
		case isUpdated && (kind == triggerUpdated || kind == triggerChanged):
			res.Events = append(res.Events, connectors.Event{ID: subject + "/updated/" + cr.UpdatedAt, Subject: subject, Fingerprint: fp, Time: updated, Data: cr.Output()})
		}
		res.States = append(res.States, connectors.Record{Subject: subject, State: fp})
		if cr.UpdatedAt != at {
			at, ids = cr.UpdatedAt, nil
		}
		ids = append(ids, cr.ID)
	}
	next, _ := json.Marshal(pollCursor{At: at, IDs: ids, Since: cur.Since})
	res.Cursor = string(next)
	return res, nil
}

// startNow remembers where the credentials stand without reporting them:
// the newest updated_at, the ids at it (with their state), and that
// instant as the lower bound of creations. Times are the service's own,
// so clock skew between memberflow and Accredible cannot hide a creation.
// With no credentials at all, every later credential is new: no bound.
func (c *Client) startNow(ctx context.Context, req connectors.PollRequest) (*connectors.PollResult, error) {
	var cur pollCursor
	res := &connectors.PollResult{}
	latest, meta, err := c.search(ctx, searchRequest{Query: baseQuery(req.Params), Sort: map[string]string{"updated_at": "desc"}, Page: map[string]any{"from": 0, "size": 1}})
	if err != nil {
		return nil, err
	}
	if len(latest) > 0 {
		cur.At, cur.Since = latest[0].UpdatedAt, latest[0].UpdatedAt
		q := baseQuery(req.Params)
		q["updated_at[gte]"] = cur.At
		same, err := c.searchAll(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, cr := range same {
			if cr.UpdatedAt == cur.At {
				cur.IDs = append(cur.IDs, cr.ID)
				res.States = append(res.States, connectors.Record{Subject: Subject(cr.ID), State: Fingerprint(cr)})
			}
		}
	}
	b, _ := json.Marshal(cur)
	res.Cursor, res.Total = string(b), meta.Count
	return res, nil
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
