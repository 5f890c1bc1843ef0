package accredible

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

type settleFunc = func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error)

// generatedSettles are the look-ups that decide an in-doubt generated
// create. Creates without a way to look their effect up (team members,
// data exports, copies and clones, collections and attribute keys) have
// none: the engine refuses to re-send them.
var generatedSettles = map[string]settleFunc{
	"create_group":               settleGroup,
	"create_evidence_item":       settleEvidence,
	"create_reference":           settleReference,
	"create_department":          settleNamed("/v1/departments/search", "departments", "department"),
	"create_design":              settleNamed("/v1/designs/search", "designs", "design"),
	"bulk_create_credentials_v1": settleGeneratedBulk("v1"),
	"bulk_create_credentials_v2": settleGeneratedBulk("v2"),
}

func settleGroup(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	fields := wrappedIn(in, "group")
	name := text(fields["name"])
	var out struct {
		Groups []map[string]any `json:"groups"`
	}
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: "/v1/issuer/groups/search", Body: map[string]any{"name": name, "page_size": 100}, ReadOnly: true}, &out); err != nil {
		return nil, false, fmt.Errorf("looking up group %q: %w", name, err)
	}
	for _, g := range out.Groups {
		if text(g["name"]) == name {
			return &connectors.Result{Output: map[string]any{"group": g}}, true, nil
		}
	}
	return nil, false, nil
}

// wrappedIn returns the fields of an input that may nest them under key.
func wrappedIn(in map[string]any, key string) map[string]any {
	if m, ok := in[key].(map[string]any); ok {
		return m
	}
	return in
}

// credentialRaw reads a credential's v1 object as the API sent it.
func (c *Client) credentialRaw(ctx context.Context, id string) (map[string]any, error) {
	var out struct {
		Credential map[string]any `json:"credential"`
	}
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodGet, Path: "/v1/credentials/" + url.PathEscape(id)}, &out); err != nil {
		return nil, err
	}
	return out.Credential, nil
}

// settleNested finds a nested item (evidence item, reference) on its
// credential by the fields the create set.
func settleNested(listKey, itemKey string, match func(item, want map[string]any) bool) settleFunc {
	return func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
		c, err := connectors.As[*Client](conn)
		if err != nil {
			return nil, false, err
		}
		id := scalar(in["credential_id"])
		cred, err := c.credentialRaw(ctx, id)
		if err != nil {
			return nil, false, fmt.Errorf("looking up the %s of credential %s: %w", listKey, id, err)
		}
		want := wrappedIn(in, itemKey)
		items, _ := cred[listKey].([]any)
		for i := len(items) - 1; i >= 0; i-- { // newest last
			if m, ok := items[i].(map[string]any); ok && match(m, want) {
				return &connectors.Result{Output: map[string]any{itemKey: m}}, true, nil
			}
		}
		return nil, false, nil
	}
}

var settleEvidence = settleNested("evidence_items", "evidence_item", func(item, want map[string]any) bool {
	return text(item["description"]) == text(want["description"]) && text(item["type"]) == text(want["category"])
})

var settleReference = settleNested("references", "reference", func(item, want map[string]any) bool {
	return text(item["description"]) == text(want["description"]) && text(item["relationship"]) == text(want["relationship"])
})

// settleNamed pages through a search and finds the object by its name.
func settleNamed(path, listKey, itemKey string) settleFunc {
	return func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
		c, err := connectors.As[*Client](conn)
		if err != nil {
			return nil, false, err
		}
		want := wrappedIn(in, itemKey)
		name := text(want["name"])
		for page := 1; page <= 100; page++ {
			var list []map[string]any
			var body map[string]any
			if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: path, Body: map[string]any{"page": page, "page_size": 100}, ReadOnly: true}, &body); err != nil {
				return nil, false, fmt.Errorf("looking up %s %q: %w", itemKey, name, err)
			}
			switch v := body[listKey].(type) {
			case []any:
				for _, x := range v {
					if m, ok := x.(map[string]any); ok {
						list = append(list, m)
					}
				}
			case map[string]any: // the document shows a single object
				list = append(list, v)
			}
			for _, m := range list {
				if text(m["name"]) == name {
					return &connectors.Result{Output: map[string]any{itemKey: m}}, true, nil
				}
			}
			meta, _ := body["meta"].(map[string]any)
			if len(list) == 0 || meta == nil || meta["next_page"] == nil {
				return nil, false, nil
			}
		}
		return nil, false, nil
	}
}

// settleGeneratedBulk: the bulk create happened when every item is found
// by recipient email within its group.
func settleGeneratedBulk(version string) settleFunc {
	return func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
		c, err := connectors.As[*Client](conn)
		if err != nil {
			return nil, false, err
		}
		items := bulkInputs(in)
		for i, it := range items {
			it = wrappedIn(it, "credential")
			if ref := scalar(it["id"]); ref != "" && it["reference"] == nil {
				// The raw API's own reference is the credential's id.
				it = copyWith(it, "reference", ref)
			}
			items[i] = it
		}
		idx := make([]int, len(items))
		for i := range items {
			idx[i] = i
		}
		found, err := c.findMany(ctx, items, idx)
		if err != nil {
			return nil, false, err
		}
		var wrote []connectors.Record
		list := make([]any, len(items))
		for i := range items {
			cr, ok := found[i]
			if !ok {
				return nil, false, nil
			}
			list[i] = map[string]any{"credential": cr.Output()}
			wrote = append(wrote, cr.record())
		}
		if version == "v1" {
			creds := make([]any, len(list))
			for i, x := range list {
				creds[i] = x.(map[string]any)["credential"]
			}
			return &connectors.Result{Output: map[string]any{"credentials": creds}, Wrote: wrote}, true, nil
		}
		return &connectors.Result{Output: map[string]any{"results": list}, Wrote: wrote}, true, nil
	}
}

func copyWith(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	out[k] = v
	return out
}
