package accredible

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

type settleFunc = func(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error)

// generatedSettles are the look-ups that decide an in-doubt generated
// create. Only create_team_member has none: Accredible documents no way to
// find a team member but by its id.
var generatedSettles = map[string]settleFunc{
	"create_attribute_key":       settleAttributeKey,
	"create_collection":          settleCollection,
	"create_data_export":         settleDataExport,
	"clone_group":                settleClone,
	"copy_design":                settleCopy,
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

// searchV1 pages through a v1 search (page, page_size; meta.next_page)
// and returns the items under listKey for which keep is true.
func (c *Client) searchV1(ctx context.Context, path, listKey string, body map[string]any, keep func(map[string]any) bool) ([]map[string]any, error) {
	var found []map[string]any
	for page := 1; page <= 100; page++ {
		req := copyWith(body, "page", page)
		req["page_size"] = 100
		var out map[string]any
		if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: path, Body: req, ReadOnly: true}, &out); err != nil {
			return nil, err
		}
		items, _ := out[listKey].([]any)
		for _, x := range items {
			if m, ok := x.(map[string]any); ok && keep(m) {
				found = append(found, m)
			}
		}
		meta, _ := out["meta"].(map[string]any)
		if len(items) == 0 || meta == nil || meta["next_page"] == nil {
			break
		}
	}
	return found, nil
}

// settleAttributeKey finds the key by its name and kind (names are unique
// per department in Accredible's dashboard).
func settleAttributeKey(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	want := wrappedIn(in, "attribute_key")
	q := map[string]any{"name": text(want["name"])}
	if k := text(want["kind"]); k != "" {
		q["kind"] = k
	}
	if d := anyID(want["department_id"]); d != "" {
		q["department_id"] = want["department_id"]
	}
	found, err := c.searchV1(ctx, "/v1/attribute_keys/search", "attribute_keys", q, func(m map[string]any) bool {
		return text(m["name"]) == text(want["name"]) && (want["kind"] == nil || text(m["kind"]) == text(want["kind"]))
	})
	if err != nil {
		return nil, false, fmt.Errorf("looking up attribute key %q: %w", text(want["name"]), err)
	}
	if len(found) == 0 {
		return nil, false, nil
	}
	return &connectors.Result{Output: map[string]any{"attribute_key": found[0]}}, true, nil
}

// settleCollection finds the collection by its exact name (the search
// matches substrings).
func settleCollection(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	name := text(wrappedIn(in, "collection")["name"])
	found, err := c.searchV1(ctx, "/v1/collections/search", "collections", map[string]any{"query": map[string]any{"name": name}}, func(m map[string]any) bool {
		return text(m["name"]) == name
	})
	if err != nil {
		return nil, false, fmt.Errorf("looking up collection %q: %w", name, err)
	}
	if len(found) == 0 {
		return nil, false, nil
	}
	return &connectors.Result{Output: map[string]any{"collection": found[len(found)-1]}}, true, nil
}

// settleDataExport: an export of the entity for the department that is
// scheduled or processing is the one asked for (a second would export the
// same data). Once completed, it cannot be told from an older one, and a
// re-send makes a fresh export, which is what was asked.
func settleDataExport(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	want := wrappedIn(in, "data_export")
	var out struct {
		DataExports []map[string]any `json:"data_exports"`
	}
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodGet, Path: "/v1/data_exports"}, &out); err != nil {
		return nil, false, fmt.Errorf("looking up data exports: %w", err)
	}
	for _, x := range out.DataExports {
		st := text(x["status"])
		if text(x["entity"]) == text(want["entity"]) && anyID(x["department_id"]) == anyID(want["department_id"]) && (st == "scheduled" || st == "processing") {
			return &connectors.Result{Output: map[string]any{"data_export": x}}, true, nil
		}
	}
	return nil, false, nil
}

// settleClone finds the clone by its name: the one given, else the
// source's with "Copy" before it, as Accredible names it.
func settleClone(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	src := anyID(in["group_id"])
	name := text(wrappedIn(in, "group")["name"])
	if name == "" {
		var g struct {
			Group map[string]any `json:"group"`
		}
		if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodGet, Path: "/v1/issuer/groups/" + url.PathEscape(src)}, &g); err != nil {
			return nil, false, fmt.Errorf("looking up group %s: %w", src, err)
		}
		name = "Copy " + text(g.Group["name"])
	}
	found, err := c.searchV1(ctx, "/v1/issuer/groups/search", "groups", map[string]any{"name": name}, func(m map[string]any) bool {
		return anyID(m["id"]) != src && strings.TrimSpace(text(m["name"])) == strings.TrimSpace(name)
	})
	if err != nil {
		return nil, false, fmt.Errorf("looking up the clone of group %s: %w", src, err)
	}
	if len(found) == 0 {
		return nil, false, nil
	}
	return &connectors.Result{Output: map[string]any{"group": found[len(found)-1]}}, true, nil
}

// settleCopy finds a copy of the design: another design with its name in
// the department asked for. (A design copied twice into one department
// counts once: the copies cannot be told apart.)
func settleCopy(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	src := anyID(in["design_id"])
	var d struct {
		Design map[string]any `json:"design"`
	}
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodGet, Path: "/v1/designs/" + url.PathEscape(src)}, &d); err != nil {
		return nil, false, fmt.Errorf("looking up design %s: %w", src, err)
	}
	name := text(d.Design["name"])
	dep := anyID(wrappedIn(in, "design")["department_id"])
	found, err := c.searchV1(ctx, "/v1/designs/search", "designs", map[string]any{}, func(m map[string]any) bool {
		n := text(m["name"])
		return anyID(m["id"]) != src && (n == name || n == "Copy of "+name || n == "Copy "+name) &&
			(dep == "" || anyID(m["department_id"]) == dep)
	})
	if err != nil {
		return nil, false, fmt.Errorf("looking up copies of design %s: %w", src, err)
	}
	if len(found) == 0 {
		return nil, false, nil
	}
	return &connectors.Result{Output: map[string]any{"design": found[len(found)-1]}}, true, nil
}

// anyID renders an id given as a string or any number.
func anyID(v any) string {
	if s := scalar(v); s != "" || v == nil {
		return s
	}
	return fmt.Sprint(v)
}
