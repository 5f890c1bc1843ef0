package accredible

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

// ReferenceKey is the meta_data key under which memberflow also records
// a credential's own reference; the reference itself is sent as the
// credential's `id` (Accredible's license_id), which the v2 search can
// look up with `in`.
const ReferenceKey = "memberflow_ref"

// searchPageSize is the v2 search page size the connector asks for.
const searchPageSize = 100

// searchMeta is the v2 search's meta object.
type searchMeta struct {
	Count  int    `json:"count"`
	From   int    `json:"from"`
	Size   int    `json:"size"`
	Cursor string `json:"cursor"`
}

// searchRequest is a v2 search body.
type searchRequest struct {
	Query map[string]any    `json:"query"`
	Sort  map[string]string `json:"sort,omitempty"`
	Page  map[string]any    `json:"page,omitempty"`
}

// search runs one v2 search page and returns the flat items normalised.
func (c *Client) search(ctx context.Context, req searchRequest) ([]Credential, searchMeta, error) {
	var out struct {
		Credentials []map[string]any `json:"credentials"`
		Meta        searchMeta       `json:"meta"`
	}
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: "/v2/credentials/search", Body: req, ReadOnly: true}, &out); err != nil {
		return nil, searchMeta{}, err
	}
	creds := make([]Credential, len(out.Credentials))
	for i, m := range out.Credentials {
		creds[i] = fromFlat(m)
	}
	return creds, out.Meta, nil
}

// searchAll follows the cursor through every page of a query.
func (c *Client) searchAll(ctx context.Context, query map[string]any) ([]Credential, error) {
	req := searchRequest{Query: query, Sort: map[string]string{"id": "asc"}, Page: map[string]any{"from": 0, "size": searchPageSize}}
	var all []Credential
	for {
		page, meta, err := c.search(ctx, req)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if meta.Cursor == "" || len(page) == 0 || len(all) >= meta.Count {
			return all, nil
		}
		req.Page = map[string]any{"cursor": meta.Cursor, "size": searchPageSize}
	}
}

// lookup says how to find a credential without an Accredible id.
type lookup struct {
	Reference   string
	RecipientID string
	Email       string
	GroupID     int64
	MetaData    map[string]any
}

func (l lookup) empty() bool {
	return l.Reference == "" && l.RecipientID == "" && l.Email == "" && len(l.MetaData) == 0
}

func (l lookup) query() map[string]any {
	q := map[string]any{}
	switch {
	case l.Reference != "":
		q["license_id"] = l.Reference
	case l.RecipientID != "":
		q["recipient_id"] = l.RecipientID
	case l.Email != "":
		if forms := emailForms(l.Email); len(forms) > 1 {
			q["recipient_email[in]"] = forms
		} else {
			q["recipient_email"] = l.Email
		}
	}
	if len(l.MetaData) > 0 {
		q["meta_data"] = l.MetaData
	}
	if l.GroupID != 0 {
		q["group.id"] = strconv.FormatInt(l.GroupID, 10)
	}
	return q
}

// emailForms are the values an email is looked up by: as given and in
// lower case. The document calls a search an "exact match" and says
// nothing of the case of emails; memberflow's recipes lower-case the
// emails they issue to, a credential issued elsewhere may not, and the
// batch forms used to look up the lower case only: both forms find
// either, and the answers are matched without case.
func emailForms(email string) []any {
	lower := strings.ToLower(email)
	if lower == email {
		return []any{email}
	}
	return []any{email, lower}
}

// find returns the credentials the look-up matches, oldest first.
func (c *Client) find(ctx context.Context, l lookup) ([]Credential, error) {
	if l.empty() {
		return nil, errors.New("a look-up needs a reference, a recipient id, a recipient email or meta_data")
	}
	return c.searchAll(ctx, l.query())
}

// get reads one credential; found is false on 404.
func (c *Client) get(ctx context.Context, id string) (Credential, bool, error) {
	var out struct {
		Credential map[string]any `json:"credential"`
	}
	_, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodGet, Path: "/v1/credentials/" + url.PathEscape(id)}, &out)
	var api *connectors.APIError
	if errors.As(err, &api) && api.Status == http.StatusNotFound {
		return Credential{}, false, nil
	}
	if err != nil {
		return Credential{}, false, err
	}
	return fromV1(out.Credential), true, nil
}

// create issues one credential from a wire body (the fields inside
// {"credential": ...}). A null field is left out: the document does not
// allow null on create (expired_on is "null by default"), and leaving a
// field out gives its default.
func (c *Client) create(ctx context.Context, fields map[string]any) (Credential, error) {
	fields = withoutNulls(fields)
	var out struct {
		Credential map[string]any `json:"credential"`
	}
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: "/v1/credentials", Body: map[string]any{"credential": fields}}, &out); err != nil {
		return Credential{}, err
	}
	if out.Credential == nil {
		// A dry run answers {}: nothing was created.
		return Credential{}, nil
	}
	return fromV1(out.Credential), nil
}

// withoutNulls returns fields without its null values (a copy when there
// are any).
func withoutNulls(fields map[string]any) map[string]any {
	for _, v := range fields {
		if v == nil {
			out := make(map[string]any, len(fields))
			for k, v := range fields {
				if v != nil {
					out[k] = v
				}
			}
			return out
		}
	}
	return fields
}

// update changes only the fields given (a partial update).
func (c *Client) update(ctx context.Context, id string, fields map[string]any) (Credential, error) {
	var out struct {
		Credential map[string]any `json:"credential"`
	}
	if _, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPut, Path: "/v1/credentials/" + url.PathEscape(id), Body: map[string]any{"credential": fields}}, &out); err != nil {
		return Credential{}, err
	}
	return fromV1(out.Credential), nil
}

// wireFields turns an action input (the credential fields of the
// hand-written operations' schemas) into the API's credential body.
// reference becomes the credential's own id and a meta_data entry.
func wireFields(in map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range in {
		switch k {
		case "reference", "id", "skip_existing":
		default:
			out[k] = v
		}
	}
	if ref, _ := in["reference"].(string); ref != "" {
		out["id"] = ref
		meta := map[string]any{}
		for k, v := range object(in["meta_data"]) {
			meta[k] = v
		}
		meta[ReferenceKey] = ref
		out["meta_data"] = meta
	}
	if g, ok := in["group_id"]; ok {
		out["group_id"] = integer(g)
	}
	return out
}

// lookupOf is how an issuing input is looked up: its reference, else the
// recipient id or email within the group.
func lookupOf(in map[string]any) lookup {
	l := lookup{Reference: text(in["reference"]), GroupID: integer(in["group_id"])}
	if r, ok := in["recipient"].(map[string]any); ok {
		l.RecipientID = scalar(r["id"])
		l.Email = text(r["email"])
	}
	return l
}

// where names an input's recipient for error messages.
func where(in map[string]any) string {
	l := lookupOf(in)
	switch {
	case l.Reference != "":
		return fmt.Sprintf("reference %q", l.Reference)
	case l.RecipientID != "":
		return fmt.Sprintf("recipient id %q in group %d", l.RecipientID, l.GroupID)
	}
	return fmt.Sprintf("recipient %q in group %d", strings.ToLower(l.Email), l.GroupID)
}
