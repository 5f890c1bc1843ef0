package accredible

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
	"github.com/memberflow/memberflow/internal/jsondec"
)

// bulkChunk is the v2 bulk create's documented maximum per request.
const bulkChunk = 30

// Per-item statuses of bulk_create_credentials.
const (
	itemCreated     = "created"
	itemUnpublished = "unpublished" // created, but not published: too few credits
	itemExists      = "exists"      // already issued: not created again
	itemFailed      = "failed"
)

func bulkAction() *connectors.ActionSpec {
	item := credentialFields(true)
	return &connectors.ActionSpec{
		Operation: connectors.Operation{
			Name:    "bulk_create_credentials",
			Summary: "Issue any number of credentials in chunks of 30, skipping those already issued, with a result per item.",
			Description: "Looks every item up first (by reference, else recipient id, else email, within its group) and " +
				"creates only the missing ones through `POST /v2/credentials/bulk_create`, at most 30 per request. " +
				"A 207 answer's per-item results are reported item by item.",
			Input: objectSchema("The credentials to issue.", []string{"credentials"}, map[string]any{
				"credentials": map[string]any{"type": "array", "minItems": 1, "description": "The credentials, each like create_credential's input.",
					"items": map[string]any{"type": "object", "description": "One credential to issue.", "required": []any{"recipient", "group_id"},
						"properties": item, "additionalProperties": false}},
				"skip_existing": map[string]any{"type": "boolean", "default": true, "description": "Look items up first and do not create those already issued (default true)."},
			}),
			Output: objectSchema("What happened to each item.", []string{"created", "existing", "failed", "unpublished", "results"}, map[string]any{
				"created":     prop("integer", "How many credentials were created and published."),
				"unpublished": prop("integer", "How many were created but left unpublished for want of credits."),
				"existing":    prop("integer", "How many were already issued and were not created again."),
				"failed":      prop("integer", "How many could not be created."),
				"results": map[string]any{"type": "array", "description": "One result per input item, in input order.", "items": map[string]any{
					"type": "object", "description": "The result of one item.", "properties": map[string]any{
						"index":      prop("integer", "Position of the item in the input."),
						"status":     map[string]any{"type": "string", "enum": []any{itemCreated, itemUnpublished, itemExists, itemFailed}, "description": "What happened to the item."},
						"credential": func() map[string]any { s := credentialObject(); s["type"] = []any{"object", "null"}; return s }(),
						"error": map[string]any{"type": []any{"object", "null"}, "description": "Why the item failed or is unpublished.", "properties": map[string]any{
							"code":    prop("string", "Accredible's error code (credential_invalid, insufficient_credits)."),
							"message": prop("string", "What went wrong."),
						}},
					}}},
			}),
			Example: map[string]any{"credentials": []any{
				map[string]any{"recipient": exampleRecipient, "group_id": 100001, "reference": "M-1042/annual-2026"},
				map[string]any{"recipient": map[string]any{"name": "Ana Lima", "email": "ana.lima@example.org", "id": "M-1043"}, "group_id": 100001, "reference": "M-1043/annual-2026"},
			}},
			HTTP: &connectors.HTTPBinding{Method: http.MethodPost, Path: "/v2/credentials/bulk_create"},
		},
		Run:    connectors.Bind(runBulk),
		Settle: settleBulk,
	}
}

type bulkResult struct {
	Index      int            `json:"index"`
	Status     string         `json:"status"`
	Credential map[string]any `json:"credential"`
	Error      *itemError     `json:"error"`
}

type itemError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func bulkInputs(in map[string]any) []map[string]any {
	list, _ := in["credentials"].([]any)
	items := make([]map[string]any, len(list))
	for i, v := range list {
		items[i], _ = v.(map[string]any)
		if items[i] == nil {
			items[i] = map[string]any{}
		}
	}
	return items
}

// invalidItem checks what the API would reject, so that one bad item does
// not fail a whole chunk.
func invalidItem(it map[string]any) *itemError {
	r, _ := it["recipient"].(map[string]any)
	var missing []string
	if strings.TrimSpace(text(r["name"])) == "" {
		missing = append(missing, "recipient.name")
	}
	if strings.TrimSpace(text(r["email"])) == "" {
		missing = append(missing, "recipient.email")
	}
	if integer(it["group_id"]) <= 0 {
		missing = append(missing, "group_id")
	}
	if len(missing) > 0 {
		return &itemError{Code: "credential_invalid", Message: strings.Join(missing, ", ") + " can't be blank"}
	}
	return nil
}

func runBulk(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	items := bulkInputs(in)
	results := make([]bulkResult, len(items))
	var pending []int
	for i, it := range items {
		results[i].Index = i
		if bad := invalidItem(it); bad != nil {
			results[i].Status, results[i].Error = itemFailed, bad
			continue
		}
		pending = append(pending, i)
	}
	if skip, ok := in["skip_existing"].(bool); !ok || skip {
		found, err := c.findMany(ctx, items, pending)
		if err != nil {
			return nil, err
		}
		var left []int
		for _, i := range pending {
			if cred, ok := found[i]; ok {
				results[i].Status, results[i].Credential = itemExists, cred.Output()
				continue
			}
			left = append(left, i)
		}
		pending = left
	}
	var wrote []connectors.Record
	for start := 0; start < len(pending); start += bulkChunk {
		chunk := pending[start:min(start+bulkChunk, len(pending))]
		recs, err := c.bulkCreate(ctx, items, chunk, results)
		if err != nil {
			return nil, err
		}
		wrote = append(wrote, recs...)
	}
	return &connectors.Result{Output: bulkOutput(results), Wrote: wrote}, nil
}

// bulkCreate sends one chunk and records each item's result.
func (c *Client) bulkCreate(ctx context.Context, items []map[string]any, chunk []int, results []bulkResult) ([]connectors.Record, error) {
	out, err := c.postBulk(ctx, items, chunk)
	var api *connectors.APIError
	if errors.As(err, &api) && api.Status == http.StatusUnprocessableEntity {
		// 422: every item of the chunk failed; the message lists why.
		for _, i := range chunk {
			results[i].Status, results[i].Error = itemFailed, &itemError{Code: api.Code, Message: api.Message}
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bulk create of items %d-%d: %w", chunk[0], chunk[len(chunk)-1], err)
	}
	if len(out.Results) == 0 {
		// A dry run answers {}: report the chunk as planned, not created.
		for _, i := range chunk {
			results[i].Status = itemCreated
		}
		return nil, nil
	}
	if len(out.Results) != len(chunk) {
		return nil, fmt.Errorf("bulk create of items %d-%d: %d results for %d credentials", chunk[0], chunk[len(chunk)-1], len(out.Results), len(chunk))
	}
	var wrote []connectors.Record
	for j, i := range chunk {
		r := out.Results[j]
		itemErr := r.err()
		switch {
		case r.Credential != nil:
			cred := fromV1(r.Credential)
			results[i].Credential = cred.Output()
			results[i].Status = itemCreated
			if itemErr != nil {
				results[i].Status = itemUnpublished
				results[i].Error = &itemError{Code: itemErr.Code, Message: itemErr.Message}
			}
			wrote = append(wrote, cred.record())
		case itemErr != nil:
			results[i].Status, results[i].Error = itemFailed, &itemError{Code: itemErr.Code, Message: itemErr.String()}
		default:
			results[i].Status, results[i].Error = itemFailed, &itemError{Code: "unknown", Message: "the answer has neither a credential nor an error"}
		}
	}
	return wrote, nil
}

// bulkAnswer is POST /v2/credentials/bulk_create's answer: one result
// per credential sent, in order.
type bulkAnswer struct {
	Results []bulkItem `json:"results"`
}

// bulkItem is one result. The document names its error two ways: the
// bulk create's own 207 and 422 schemas and examples say "errors" (with
// details {property, message}), the overview's "Bulk Operations Error
// Handling" says "error" (with details {property, reason}). Both are read.
type bulkItem struct {
	Credential map[string]any `json:"credential"`
	Error      *bulkError     `json:"error"`
	Errors     *bulkError     `json:"errors"`
}

// err is the item's error, under either documented key.
func (b bulkItem) err() *bulkError {
	if b.Error != nil {
		return b.Error
	}
	return b.Errors
}

// postBulk sends the inputs idx (30 at most) as one bulk create.
func (c *Client) postBulk(ctx context.Context, inputs []map[string]any, idx []int) (*bulkAnswer, error) {
	body := make([]any, len(idx))
	for j, i := range idx {
		body[j] = withoutNulls(wireFields(inputs[i]))
	}
	var answer bulkAnswer
	const path = "/v2/credentials/bulk_create"
	resp, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodPost, Path: path, Body: map[string]any{"credentials": body}}, nil)
	if err != nil || len(bytes.TrimSpace(resp.Body)) == 0 {
		return &answer, err
	}
	if err := answer.decode(resp.Body); err != nil {
		return &answer, fmt.Errorf("%s %s %s: decoding the answer: %w", c.api.Service(), http.MethodPost, path, err)
	}
	return &answer, nil
}

// decode is json.Unmarshal(body, a): without reflection when the answer
// is shaped as documented (a list of results of a credential object and
// an error), else by encoding/json (TestBulkAnswerDecodesAsUnmarshal,
// FuzzBulkAnswer).
func (a *bulkAnswer) decode(body []byte) error {
	var d jsondec.Decoder
	if v, ok := d.Unique(body); ok && a.read(v) {
		return nil
	}
	*a = bulkAnswer{}
	return json.Unmarshal(body, a)
}

// read fills a from a decoded answer as json.Unmarshal would; false for
// anything it does not take (a value of another type, a key naming a
// field in other letter case), a then partly filled.
func (a *bulkAnswer) read(v any) bool {
	if v == nil {
		return true
	}
	top, ok := v.(map[string]any)
	if !ok || !exactKeys(top, "results") {
		return false
	}
	if top["results"] == nil {
		return true
	}
	list, ok := top["results"].([]any)
	if !ok {
		return false
	}
	a.Results = make([]bulkItem, len(list))
	for i, item := range list {
		if item == nil {
			continue
		}
		m, ok := item.(map[string]any)
		if !ok || !exactKeys(m, "credential", "error", "errors") {
			return false
		}
		switch c := m["credential"].(type) {
		case nil:
		case map[string]any:
			a.Results[i].Credential = c
		default:
			return false
		}
		if e := m["error"]; e != nil {
			if a.Results[i].Error, ok = readBulkError(e); !ok {
				return false
			}
		}
		if e := m["errors"]; e != nil {
			if a.Results[i].Errors, ok = readBulkError(e); !ok {
				return false
			}
		}
	}
	return true
}

func readBulkError(v any) (*bulkError, bool) {
	m, ok := v.(map[string]any)
	if !ok || !exactKeys(m, "code", "message", "details") {
		return nil, false
	}
	e := &bulkError{}
	if e.Code, ok = optionalString(m["code"]); !ok {
		return nil, false
	}
	if e.Message, ok = optionalString(m["message"]); !ok {
		return nil, false
	}
	if m["details"] == nil {
		return e, true
	}
	list, ok := m["details"].([]any)
	if !ok {
		return nil, false
	}
	e.Details = make([]bulkErrorDetail, len(list))
	for i, item := range list {
		if item == nil {
			continue
		}
		d, ok := item.(map[string]any)
		if !ok || !exactKeys(d, "property", "reason", "message") {
			return nil, false
		}
		for _, f := range []struct {
			key string
			to  *string
		}{{"property", &e.Details[i].Property}, {"reason", &e.Details[i].Reason}, {"message", &e.Details[i].Message}} {
			if *f.to, ok = optionalString(d[f.key]); !ok {
				return nil, false
			}
		}
	}
	return e, true
}

// optionalString is a string field as json.Unmarshal fills it: null
// leaves it empty.
func optionalString(v any) (string, bool) {
	if v == nil {
		return "", true
	}
	s, ok := v.(string)
	return s, ok
}

// exactKeys reports whether no key of m names one of fields in other
// letter case (json.Unmarshal matches struct fields ignoring case).
func exactKeys(m map[string]any, fields ...string) bool {
	for k := range m {
		for _, f := range fields {
			if k != f && strings.EqualFold(k, f) {
				return false
			}
		}
	}
	return true
}

func bulkOutput(results []bulkResult) map[string]any {
	counts := map[string]int{}
	for _, r := range results {
		counts[r.Status]++
	}
	b, _ := json.Marshal(results)
	var list []any
	_ = json.Unmarshal(b, &list)
	return map[string]any{"created": counts[itemCreated], "unpublished": counts[itemUnpublished],
		"existing": counts[itemExists], "failed": counts[itemFailed], "results": list}
}

// findMany looks up many items with few searches: references with
// license_id[in], others by recipient id or email [in] within their group,
// 30 values per search.
func (c *Client) findMany(ctx context.Context, items []map[string]any, idx []int) (map[int]Credential, error) {
	type key struct {
		field string
		group int64
	}
	batches := map[key][]int{}
	var order []key
	for _, i := range idx {
		l := lookupOf(items[i])
		k := key{field: "recipient_email", group: l.GroupID}
		switch {
		case l.Reference != "":
			k = key{field: "license_id"}
		case l.RecipientID != "":
			k.field = "recipient_id"
		}
		if _, seen := batches[k]; !seen {
			order = append(order, k)
		}
		batches[k] = append(batches[k], i)
	}
	value := func(field string, i int) string {
		l := lookupOf(items[i])
		switch field {
		case "license_id":
			return l.Reference
		case "recipient_id":
			return l.RecipientID
		}
		return strings.ToLower(l.Email)
	}
	found := map[int]Credential{}
	for _, k := range order {
		list := batches[k]
		chunk := bulkChunk
		if k.field == "recipient_email" {
			chunk /= 2 // two forms of each email (emailForms): 30 values a search
		}
		for start := 0; start < len(list); start += chunk {
			part := list[start:min(start+chunk, len(list))]
			vals := make([]any, 0, len(part))
			for _, i := range part {
				if k.field == "recipient_email" {
					vals = append(vals, emailForms(lookupOf(items[i]).Email)...)
				} else {
					vals = append(vals, value(k.field, i))
				}
			}
			q := map[string]any{k.field + "[in]": vals}
			if k.group != 0 {
				q["group.id"] = strconv.FormatInt(k.group, 10)
			}
			creds, err := c.searchAll(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("looking up items %d-%d: %w", part[0], part[len(part)-1], err)
			}
			byValue := map[string]Credential{}
			for _, cr := range creds {
				v := cr.LicenseID
				switch k.field {
				case "recipient_id":
					v = cr.Recipient.ID
				case "recipient_email":
					v = strings.ToLower(cr.Recipient.Email)
				}
				if _, dup := byValue[v]; !dup {
					byValue[v] = cr // oldest first: searchAll sorts by id
				}
			}
			for _, i := range part {
				if cr, ok := byValue[value(k.field, i)]; ok && (k.field == "license_id" || agrees(cr, items[i])) {
					found[i] = cr
				}
			}
		}
	}
	return found, nil
}

// settleBulk: the write happened when every valid item is found issued;
// otherwise running again is safe, as it skips the items that exist.
func settleBulk(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	items := bulkInputs(in)
	results := make([]bulkResult, len(items))
	var valid []int
	for i, it := range items {
		results[i].Index = i
		if bad := invalidItem(it); bad != nil {
			results[i].Status, results[i].Error = itemFailed, bad
			continue
		}
		valid = append(valid, i)
	}
	found, err := c.findMany(ctx, items, valid)
	if err != nil {
		return nil, false, err
	}
	var wrote []connectors.Record
	for _, i := range valid {
		cr, ok := found[i]
		if !ok {
			return nil, false, nil
		}
		results[i].Status, results[i].Credential = itemCreated, cr.Output()
		wrote = append(wrote, cr.record())
	}
	return &connectors.Result{Output: bulkOutput(results), Wrote: wrote}, true, nil
}
