package accredible

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/memberflow/memberflow/connectors"
)

// upsertBatch is upsert_credential's batch form: one v2 search looks up
// every input (values listed with `in`, 30 at most), one
// POST /v2/credentials/bulk_create issues those not found, and the inputs
// found are updated one by one as Run does. Each input gets Run's result
// or error; an input the bulk answer rejects fails alone.
//
// Inputs a single search cannot take (no look-up key, a field the API
// would reject, a key already in the batch) go through Run after the
// bulk create, so that two inputs with one key never make two
// credentials. A dry run calls Run for each input: it plans the same
// writes.
func upsertBatch(ctx context.Context, c *Client, inputs []map[string]any) ([]connectors.ItemResult, error) {
	out := make([]connectors.ItemResult, len(inputs))
	if c.dryRun {
		for i, in := range inputs {
			out[i].Result, out[i].Err = runUpsert(ctx, c, in)
		}
		return out, nil
	}
	var batch, alone []int
	seen := map[lookupKey]bool{}
	for i, in := range inputs {
		l := lookupOf(in)
		k, ok := keyOf(l)
		if !ok || invalidItem(in) != nil || seen[k] {
			alone = append(alone, i)
			continue
		}
		seen[k] = true
		batch = append(batch, i)
	}
	found, err := c.findExistingMany(ctx, inputs, batch)
	if err != nil {
		return nil, err
	}
	var create []int
	for _, i := range batch {
		if cr, ok := found[i]; ok {
			out[i].Result, out[i].Err = c.upsertExisting(ctx, inputs[i], cr)
			continue
		}
		create = append(create, i)
	}
	for start := 0; start < len(create); start += bulkChunk {
		c.createMany(ctx, inputs, create[start:min(start+bulkChunk, len(create))], out)
	}
	for _, i := range alone {
		out[i].Result, out[i].Err = runUpsert(ctx, c, inputs[i])
	}
	return out, nil
}

// lookupKey is the search field and group an input is found by, with its
// value: upsert's look-up (lookup.query) as one search term.
type lookupKey struct {
	field string
	group int64
	value string
}

func keyOf(l lookup) (lookupKey, bool) {
	k := lookupKey{group: l.GroupID}
	switch {
	case l.Reference != "":
		k.field, k.value = "license_id", l.Reference
	case l.RecipientID != "":
		k.field, k.value = "recipient_id", l.RecipientID
	case l.Email != "":
		k.field, k.value = "recipient_email", strings.ToLower(l.Email)
	default:
		return k, false
	}
	return k, true
}

// findExistingMany is findExisting for many inputs: the inputs sharing a
// search field and group are looked up together, 30 values per search;
// each gets the oldest credential with its value, as findExisting would.
func (c *Client) findExistingMany(ctx context.Context, inputs []map[string]any, idx []int) (map[int]Credential, error) {
	type term struct {
		field string
		group int64
	}
	byTerm := map[term][]int{}
	var order []term
	keys := make(map[int]lookupKey, len(idx))
	for _, i := range idx {
		k, _ := keyOf(lookupOf(inputs[i]))
		keys[i] = k
		t := term{k.field, k.group}
		if _, ok := byTerm[t]; !ok {
			order = append(order, t)
		}
		byTerm[t] = append(byTerm[t], i)
	}
	found := map[int]Credential{}
	for _, t := range order {
		list := byTerm[t]
		chunk := bulkChunk
		if t.field == "recipient_email" {
			chunk /= 2 // two forms of each email: 30 values a search
		}
		for start := 0; start < len(list); start += chunk {
			part := list[start:min(start+chunk, len(list))]
			vals := make([]any, 0, len(part))
			for _, i := range part {
				if t.field == "recipient_email" {
					vals = append(vals, emailForms(lookupOf(inputs[i]).Email)...)
				} else {
					vals = append(vals, keys[i].value)
				}
			}
			q := map[string]any{t.field + "[in]": vals}
			if t.group != 0 {
				q["group.id"] = strconv.FormatInt(t.group, 10)
			}
			creds, err := c.searchAll(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("looking up %d credentials by %s: %w", len(part), t.field, err)
			}
			oldest := map[string]Credential{}
			count := map[string]int{}
			for _, cr := range creds {
				v := cr.LicenseID
				switch t.field {
				case "recipient_id":
					v = cr.Recipient.ID
				case "recipient_email":
					v = strings.ToLower(cr.Recipient.Email)
				}
				count[v]++
				if _, dup := oldest[v]; !dup {
					oldest[v] = cr // searchAll sorts by id: the oldest first
				}
			}
			for _, i := range part {
				v := keys[i].value
				if cr, ok := oldest[v]; ok {
					if count[v] > 1 {
						c.log.Warn("several credentials match; updating the oldest", "lookup", where(inputs[i]), "count", count[v])
					}
					found[i] = cr
				}
			}
		}
	}
	return found, nil
}

// createMany issues the inputs idx (30 at most) with one bulk create and
// sets each one's result: the credential created, or the error Run's
// create would have returned for it alone.
func (c *Client) createMany(ctx context.Context, inputs []map[string]any, idx []int, out []connectors.ItemResult) {
	answer, err := c.postBulk(ctx, inputs, idx)
	var api *connectors.APIError
	if errors.As(err, &api) && api.Status == http.StatusUnprocessableEntity {
		// None was created: each item fails with its own reason.
		reasons := itemReasons(api.Message)
		for j, i := range idx {
			e := *api
			if r, ok := reasons[j]; ok {
				e.Message = r
			}
			out[i].Err = fmt.Errorf("issuing to %s: %w", where(inputs[i]), &e)
		}
		return
	}
	if err != nil {
		// In doubt, each item settles; a transient failure, each retries.
		for _, i := range idx {
			out[i].Err = fmt.Errorf("issuing to %s: %w", where(inputs[i]), err)
		}
		return
	}
	if len(answer.Results) != len(idx) {
		// The document gives 200 no body: find what was created.
		found, ferr := c.findExistingMany(ctx, inputs, idx)
		for _, i := range idx {
			if cr, ok := found[i]; ok && ferr == nil {
				out[i].Result = writeResult(cr, map[string]any{"action": "created"})
				continue
			}
			out[i].Err = &connectors.InDoubtError{Method: http.MethodPost, Path: "/v2/credentials/bulk_create",
				Err: fmt.Errorf("the answer has %d results for %d credentials and the look-up did not find %s (%v)", len(answer.Results), len(idx), where(inputs[i]), ferr)}
		}
		return
	}
	for j, i := range idx {
		r := answer.Results[j]
		switch itemErr := r.err(); {
		case r.Credential != nil:
			// Created; an error beside it (too few credits) left it
			// unpublished, as a single create would.
			out[i].Result = writeResult(fromV1(r.Credential), map[string]any{"action": "created"})
		case itemErr != nil:
			out[i].Err = fmt.Errorf("issuing to %s: %w", where(inputs[i]), &connectors.APIError{Service: "accredible",
				Status: http.StatusUnprocessableEntity, Code: itemErr.Code, Message: itemErr.String()})
		default:
			out[i].Err = &connectors.InDoubtError{Method: http.MethodPost, Path: "/v2/credentials/bulk_create",
				Err: fmt.Errorf("the answer for %s has neither a credential nor an error", where(inputs[i]))}
		}
	}
}

// itemReasons reads back the per-item reasons ParseError joined into a
// 422 message ("item 0: ...; item 2: ...").
func itemReasons(msg string) map[int]string {
	out := map[int]string{}
	last := -1
	for _, part := range strings.Split(msg, "; ") {
		var n int
		if rest, ok := strings.CutPrefix(part, "item "); ok {
			if num, reason, ok := strings.Cut(rest, ": "); ok {
				if v, err := strconv.Atoi(num); err == nil {
					n, last = v, v
					out[n] = reason
					continue
				}
			}
		}
		if last >= 0 {
			out[last] += "; " + part
		}
	}
	return out
}
