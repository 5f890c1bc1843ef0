package accredible

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"

	"github.com/memberflow/memberflow/connectors"
)

// --- schemas ---

func prop(typ any, desc string) map[string]any {
	return map[string]any{"type": typ, "description": desc}
}

const datePattern = `^\d{4}-\d{2}-\d{2}$`

func dateProp(desc string, nullable bool) map[string]any {
	p := map[string]any{"type": "string", "pattern": datePattern, "description": desc}
	if nullable {
		p["type"] = []any{"string", "null"}
	}
	return p
}

func recipientProp(required bool) map[string]any {
	p := map[string]any{
		"type":                 "object",
		"description":          "Who the credential is issued to.",
		"additionalProperties": false,
		"properties": map[string]any{
			"name":         prop("string", "The recipient's full name."),
			"email":        prop("string", "The recipient's email address."),
			"id":           prop("string", "Your own identifier for the recipient (a member id): look-ups use it before the email."),
			"phone_number": prop("string", "The recipient's phone number."),
			"meta_data":    metaDataProp("Your own key/values about the recipient: strings, as the document says (\"key-value strings\")."),
		},
	}
	if required {
		p["required"] = []any{"name", "email"}
		p["properties"].(map[string]any)["email"].(map[string]any)["minLength"] = 1
		p["properties"].(map[string]any)["name"].(map[string]any)["minLength"] = 1
	}
	return p
}

// metaDataProp is a meta_data object. The document's request schemas
// type it only as an object, but every description says "attach
// key-value strings to the object" (the v2 search: "String key/values"),
// and every answer schema types its entries as strings: the values are
// strings.
func metaDataProp(desc string) map[string]any {
	return map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}, "description": desc}
}

// referenceRelationships are a reference's documented relationships.
var referenceRelationships = []any{"taught", "managed", "mentored", "worked", "studied", "friends", "stranger", "professor"}

// referencesProp is the credential body's references: "See References for
// fields", which are those of POST /v1/credentials/{id}/references.
func referencesProp() map[string]any {
	return map[string]any{"type": "array", "description": "References to add: a peer, teacher or manager vouching for the recipient, with the fields of Accredible's references.", "items": map[string]any{
		"type": "object", "description": "One reference.", "required": []any{"description", "relationship"}, "additionalProperties": false, "properties": map[string]any{
			"description":  prop("string", "The reference comments / text."),
			"relationship": map[string]any{"type": "string", "enum": referenceRelationships, "description": "How the referee knows the recipient: taught, managed, mentored, worked, studied, friends, stranger or professor."},
			"referee": map[string]any{"type": "object", "description": "Who gives the reference.", "additionalProperties": false, "properties": map[string]any{
				"name":   prop("string", "Name of the person providing the reference."),
				"email":  prop("string", "Email of the person providing the reference."),
				"avatar": prop("string", "URL of an image of the person providing the reference."),
				"url":    prop("string", "URL of a social profile (LinkedIn, say) to learn more about the referee."),
			}},
			"position": prop("number", "Position on the credential; 0 is shown first."),
		}}}
}

// credentialFields are the writable fields of a credential, shared by
// create, update, upsert and bulk items.
func credentialFields(requiredRecipient bool) map[string]any {
	return map[string]any{
		"reference":                     prop("string", "Your own reference for this credential (for example member-123/annual-2026): sent as the credential's id and stored in meta_data."+ReferenceKey+"; look-ups use it first."),
		"recipient":                     recipientProp(requiredRecipient),
		"group_id":                      map[string]any{"type": "integer", "minimum": 1, "description": "The group (course or certificate template) to issue from."},
		"name":                          prop("string", "Title of the credential; defaults to the group's course name."),
		"description":                   prop("string", "Description of the credential; defaults to the group's course description."),
		"issued_on":                     dateProp("Issue date, YYYY-MM-DD; defaults to today.", false),
		"expired_on":                    dateProp("Expiry date, YYYY-MM-DD, or null for none.", true),
		"complete":                      prop("boolean", "Whether the achievement is complete."),
		"approve":                       prop("boolean", "Publish the credential (default true). With too few credits it is created unpublished."),
		"private":                       prop("boolean", "Make the credential private. Set when the credential is created: Accredible's update (PUT /v1/credentials/{id}) does not take it, so update and upsert leave an existing credential's privacy as it is."),
		"custom_attributes":             prop("object", "Values merged into the design and the emails."),
		"meta_data":                     metaDataProp("Your own key/values about the credential: strings, as the document says (\"key-value strings\")."),
		"allow_supplemental_evidence":   prop("boolean", "Whether recipients may add their own supplemental evidence to the credential (Accredible's default: true)."),
		"allow_supplemental_references": prop("boolean", "Whether recipients may add their own supplemental references to the credential (Accredible's default: true)."),
		"references":                    referencesProp(),
		"evidence_items": map[string]any{"type": "array", "description": "Evidence to attach, with the fields of Accredible's evidence items. A grade is an item of category grade with string_object, say \"83\".", "items": map[string]any{
			"type": "object", "description": "One evidence item.", "required": []any{"description", "category"}, "additionalProperties": false, "properties": map[string]any{
				"description":    prop("string", "Title text of the evidence item, shown on the credential."),
				"category":       map[string]any{"type": "string", "enum": []any{"file", "url", "video", "grade", "transcript"}, "description": "The kind of evidence: file, url, video, grade or transcript."},
				"url":            prop("string", "For category url or video: the evidence's URL."),
				"file":           prop("string", "For category file: the file's URL."),
				"string_object":  prop("string", "For category grade or transcript: the value (for a grade, say \"83\")."),
				"preview":        prop("string", "URL of an image to show instead of the screenshot Accredible takes of a url item."),
				"position":       prop("number", "Position on the credential; 0 is shown first."),
				"custom_insight": prop("string", "Text shown below the item; generated when left out."),
			}}},
	}
}

func objectSchema(desc string, required []string, props map[string]any) json.RawMessage {
	s := map[string]any{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "description": desc,
		"properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return b
}

// credentialOutput is the credential schema plus extra properties.
func credentialOutput(extra map[string]any) json.RawMessage {
	var s map[string]any
	if err := json.Unmarshal([]byte(credentialSchema), &s); err != nil {
		panic(err)
	}
	props := s["properties"].(map[string]any)
	for k, v := range extra {
		props[k] = v
	}
	b, _ := json.Marshal(s)
	return b
}

func credentialObject() map[string]any {
	var s map[string]any
	_ = json.Unmarshal([]byte(credentialSchema), &s)
	return s
}

var exampleRecipient = map[string]any{"name": "Jordan Smith", "email": "jordan.smith@example.org", "id": "M-1042"}

// --- actions ---

func handWrittenActions() []*connectors.ActionSpec {
	createInput := credentialFields(true)
	updateInput := credentialFields(false)
	delete(updateInput, "reference")
	// The document's PUT /v1/credentials/{id} body does not take private.
	delete(updateInput, "private")
	updateInput["id"] = map[string]any{"type": "string", "minLength": 1, "description": "Accredible's id of the credential."}
	return []*connectors.ActionSpec{
		{
			Operation: connectors.Operation{
				Name:    "create_credential",
				Summary: "Issue a credential to a recipient from a group (no de-duplication: see upsert_credential).",
				Description: "Calls `POST /v1/credentials`. Accredible has no idempotency key: after an ambiguous failure " +
					"the engine settles the write by looking the credential up (by reference, else recipient and group).",
				Input:  objectSchema("A credential to issue.", []string{"recipient", "group_id"}, createInput),
				Output: credentialOutput(nil),
				Example: map[string]any{"recipient": exampleRecipient, "group_id": 100001, "reference": "M-1042/annual-2026", "issued_on": "2026-01-15",
					"meta_data": map[string]any{"batch_id": "TK210"}, "allow_supplemental_evidence": false,
					"references": []any{map[string]any{"description": "Jordan led the chapter's CPD programme all year.", "relationship": "managed",
						"referee": map[string]any{"name": "Jane Doe", "email": "jane.doe@example.org"}}}},
				HTTP: &connectors.HTTPBinding{Method: http.MethodPost, Path: "/v1/credentials"},
			},
			Run:    connectors.Bind(runCreate),
			Settle: settleCreate,
		},
		{
			Operation: connectors.Operation{
				Name:    "get_credential",
				Summary: "Read one credential by its Accredible id.",
				Input: objectSchema("Which credential.", []string{"id"}, map[string]any{
					"id": map[string]any{"type": "string", "minLength": 1, "description": "Accredible's id of the credential."}}),
				Output:  credentialOutput(nil),
				Example: map[string]any{"id": "10000005"},
				HTTP:    &connectors.HTTPBinding{Method: http.MethodGet, Path: "/v1/credentials/{id}"},
			},
			ReadOnly:   true,
			Idempotent: true,
			Run:        connectors.Bind(runGet),
		},
		{
			Operation: connectors.Operation{
				Name:    "update_credential",
				Summary: "Change some fields of a credential (a partial update).",
				Input:   objectSchema("The credential and the fields to change; fields left out keep their value.", []string{"id"}, updateInput),
				Output:  credentialOutput(nil),
				Example: map[string]any{"id": "10000005", "expired_on": "2027-01-15", "custom_attributes": map[string]any{"cpd_hours": "12"}, "allow_supplemental_references": false},
				HTTP:    &connectors.HTTPBinding{Method: http.MethodPut, Path: "/v1/credentials/{id}"},
			},
			Idempotent:  true,
			Idempotency: &connectors.Idempotency{Kind: connectors.ResendSets}, // PUT by id
			Run:         connectors.Bind(runUpdate),
		},
		{
			Operation: connectors.Operation{
				Name:    "find_credential",
				Summary: "Find a credential by your reference, by recipient id or email within a group, or by meta_data.",
				Description: "Searches `POST /v2/credentials/search`. With several matches the oldest is returned " +
					"and `count` says how many there are.",
				Input: objectSchema("What to look for: a reference, or a recipient id or email (with a group), or meta_data.", nil, map[string]any{
					"reference":       prop("string", "Your own reference given when the credential was issued."),
					"recipient_id":    prop("string", "Your own identifier for the recipient."),
					"recipient_email": prop("string", "The recipient's email address."),
					"group_id":        map[string]any{"type": "integer", "minimum": 1, "description": "Limit the search to one group."},
					"meta_data":       metaDataProp("Key/values (strings) the credential's meta_data must contain."),
				}),
				Output: objectSchema("What was found.", []string{"found", "count"}, map[string]any{
					"found":      prop("boolean", "Whether a credential matched."),
					"count":      prop("integer", "How many credentials matched (more than one means duplicates)."),
					"credential": func() map[string]any { s := credentialObject(); s["type"] = []any{"object", "null"}; return s }(),
				}),
				Example: map[string]any{"recipient_email": "jordan.smith@example.org", "group_id": 100001},
				HTTP:    &connectors.HTTPBinding{Method: http.MethodPost, Path: "/v2/credentials/search"},
			},
			ReadOnly:   true,
			Idempotent: true,
			Run:        connectors.Bind(runFind),
		},
		{
			Operation: connectors.Operation{
				Name:    "upsert_credential",
				Summary: "Issue a credential, or update the existing one only where it differs: never a duplicate.",
				Description: "Looks the credential up (by reference, else recipient id, else recipient email, within the group), " +
					"then creates it or sends only the fields that differ. `action` says which: created, updated or unchanged.",
				Input: objectSchema("The credential as it should be.", []string{"recipient", "group_id"}, credentialFields(true)),
				Output: credentialOutput(map[string]any{
					"action": map[string]any{"type": "string", "enum": []any{"created", "updated", "unchanged", "settled"},
						"description": "What the call did; settled when an in-doubt write was found applied."},
				}),
				Example: map[string]any{"recipient": exampleRecipient, "group_id": 100001, "reference": "M-1042/annual-2026", "issued_on": "2026-01-15", "expired_on": "2027-01-15"},
				HTTP:    &connectors.HTTPBinding{Method: http.MethodPost, Path: "/v1/credentials"},
			},
			Run:              connectors.Bind(runUpsert),
			Settle:           settleUpsert,
			ReportsUnchanged: true,
			Batch:            &connectors.BatchForm{Max: bulkChunk, Run: connectors.BindBatch(upsertBatch)},
		},
		{
			Operation: connectors.Operation{
				Name:    "expire_credential",
				Summary: "Set a credential's expiry date (today by default).",
				Input: objectSchema("Which credential and when it expires.", []string{"id"}, map[string]any{
					"id":         map[string]any{"type": "string", "minLength": 1, "description": "Accredible's id of the credential."},
					"expired_on": dateProp("Expiry date, YYYY-MM-DD; defaults to today (UTC).", false),
				}),
				Output:  credentialOutput(nil),
				Example: map[string]any{"id": "10000005", "expired_on": "2026-12-31"},
				HTTP:    &connectors.HTTPBinding{Method: http.MethodPut, Path: "/v1/credentials/{id}"},
			},
			Idempotent:  true,
			Idempotency: &connectors.Idempotency{Kind: connectors.ResendSets}, // PUT by id
			Run:         connectors.Bind(runExpire),
		},
		bulkAction(),
	}
}

func settleCreate(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	found, err := c.findIssued(ctx, in)
	if err != nil || found == nil {
		return nil, false, err
	}
	return &connectors.Result{Output: found.Output(), Wrote: []connectors.Record{found.record()}}, true, nil
}

// findIssued looks up the credential an issuing input would have made.
// Without a reference, a credential of the same recipient and group only
// counts when it agrees with every field the input set, so that last
// year's certificate is not taken for this one.
func (c *Client) findIssued(ctx context.Context, in map[string]any) (*Credential, error) {
	l := lookupOf(in)
	matches, err := c.find(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", where(in), err)
	}
	for i := range matches {
		m := matches[i]
		if l.Reference != "" || agrees(m, in) {
			return &m, nil
		}
	}
	return nil, nil
}

// agrees reports whether the credential shows every field the input set.
func agrees(c Credential, in map[string]any) bool {
	for _, d := range diff(c, in) {
		switch d {
		case "description", "complete", "approve", "allow_supplemental_evidence", "allow_supplemental_references":
			// Not visible in a search item, or changed by Accredible
			// itself (too few credits leave a credential unpublished).
		default:
			return false
		}
	}
	return true
}

func runCreate(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	cred, err := c.create(ctx, wireFields(in))
	if err != nil {
		return nil, fmt.Errorf("issuing to %s: %w", where(in), err)
	}
	return writeResult(cred, nil), nil
}

func writeResult(cred Credential, extra map[string]any) *connectors.Result {
	out := cred.Output()
	for k, v := range extra {
		out[k] = v
	}
	r := &connectors.Result{Output: out}
	if cred.ID != "" {
		r.Wrote = []connectors.Record{cred.record()}
	}
	return r
}

func runGet(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	id := scalar(in["id"])
	cred, found, err := c.get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("reading credential %s: %w", id, err)
	}
	if !found {
		return nil, &connectors.APIError{Service: "accredible", Status: http.StatusNotFound, Message: fmt.Sprintf("credential %s doesn't exist", id)}
	}
	return &connectors.Result{Output: cred.Output()}, nil
}

func runUpdate(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	id := scalar(in["id"])
	fields := wireFields(in)
	if len(fields) == 0 {
		return nil, fmt.Errorf("updating credential %s: no field to change", id)
	}
	cred, err := c.update(ctx, id, fields)
	if err != nil {
		return nil, fmt.Errorf("updating credential %s: %w", id, err)
	}
	return writeResult(cred, nil), nil
}

func runFind(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	l := lookup{Reference: text(in["reference"]), RecipientID: text(in["recipient_id"]), Email: text(in["recipient_email"]),
		GroupID: integer(in["group_id"]), MetaData: object(in["meta_data"])}
	if l.empty() {
		return nil, errors.New("find_credential: give a reference, a recipient_id, a recipient_email or meta_data")
	}
	matches, err := c.find(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("finding a credential: %w", err)
	}
	out := map[string]any{"found": len(matches) > 0, "count": len(matches), "credential": nil}
	if len(matches) > 0 {
		out["credential"] = matches[0].Output()
	}
	return &connectors.Result{Output: out}, nil
}

func runUpsert(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	existing, err := c.findExisting(ctx, in)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		cred, err := c.create(ctx, wireFields(in))
		if err != nil {
			return nil, fmt.Errorf("issuing to %s: %w", where(in), err)
		}
		return writeResult(cred, map[string]any{"action": "created"}), nil
	}
	return c.upsertExisting(ctx, in, *existing)
}

// upsertExisting is upsert once the credential is found: it reads it in
// full and sends only the fields that differ.
func (c *Client) upsertExisting(ctx context.Context, in map[string]any, existing Credential) (*connectors.Result, error) {
	full, found, err := c.get(ctx, existing.ID)
	if err != nil {
		return nil, fmt.Errorf("reading credential %s: %w", existing.ID, err)
	}
	if found {
		full.CreatedAt, full.UpdatedAt, full.LicenseID = existing.CreatedAt, existing.UpdatedAt, existing.LicenseID
		existing = full
	}
	changed := updateFields(existing, in)
	if len(changed) == 0 {
		// Nothing was written: an empty Wrote tells the summary (and echo
		// suppression) that this call changed nothing.
		res := writeResult(existing, map[string]any{"action": "unchanged"})
		res.Wrote = nil
		return res, nil
	}
	cred, err := c.update(ctx, existing.ID, changed)
	if err != nil {
		return nil, fmt.Errorf("updating credential %s for %s: %w", existing.ID, where(in), err)
	}
	return writeResult(cred, map[string]any{"action": "updated"}), nil
}

// findExisting is upsert's look-up: the credential for this reference, or
// this recipient in this group.
func (c *Client) findExisting(ctx context.Context, in map[string]any) (*Credential, error) {
	matches, err := c.find(ctx, lookupOf(in))
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", where(in), err)
	}
	if len(matches) == 0 {
		return nil, nil
	}
	if len(matches) > 1 {
		c.log.Warn("several credentials match; updating the oldest", "lookup", where(in), "count", len(matches))
	}
	return &matches[0], nil
}

// settleUpsert is the look-up: the write happened when the credential
// exists and already shows every field the input set.
func settleUpsert(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, false, err
	}
	existing, err := c.findExisting(ctx, in)
	if err != nil || existing == nil {
		return nil, false, err
	}
	full, found, err := c.get(ctx, existing.ID)
	if err != nil {
		return nil, false, err
	}
	if found {
		existing = &full
	}
	if len(updateFields(*existing, in)) > 0 {
		return nil, false, nil
	}
	return writeResult(*existing, map[string]any{"action": "settled"}), true, nil
}

func runExpire(ctx context.Context, c *Client, in map[string]any) (*connectors.Result, error) {
	id := scalar(in["id"])
	on := text(in["expired_on"])
	if on == "" {
		on = c.now().UTC().Format("2006-01-02")
	}
	cred, err := c.update(ctx, id, map[string]any{"expired_on": on})
	if err != nil {
		return nil, fmt.Errorf("expiring credential %s: %w", id, err)
	}
	return writeResult(cred, nil), nil
}

// diff lists the input fields whose value the credential does not show.
func diff(c Credential, in map[string]any) []string {
	var out []string
	for _, k := range sortedKeys(changedFields(c, in)) {
		if k == "recipient" {
			for _, rk := range sortedKeys(object(changedFields(c, in)["recipient"])) {
				out = append(out, "recipient."+rk)
			}
			continue
		}
		out = append(out, k)
	}
	return out
}

// updateFields is the partial update (PUT) that makes c match the input
// as far as the document's update can: the changed fields but private,
// which the PUT body does not take.
func updateFields(c Credential, in map[string]any) map[string]any {
	out := changedFields(c, in)
	delete(out, "private")
	return out
}

// changedFields is the partial update that makes c match the input: only
// the fields the input sets and c shows differently. meta_data and
// custom_attributes are merged into what the credential has.
func changedFields(c Credential, in map[string]any) map[string]any {
	want := wireFields(in)
	out := map[string]any{}
	str := func(key, have string) {
		if v, ok := want[key]; ok && text(v) != have {
			out[key] = v
		}
	}
	str("name", c.Name)
	str("description", c.Description)
	str("issued_on", c.IssuedOn)
	if v, ok := want["expired_on"]; ok && text(v) != deref(c.ExpiredOn) {
		out["expired_on"] = v
	}
	for key, have := range map[string]bool{"approve": c.Approve, "complete": c.Complete, "private": c.Private} {
		if v, ok := want[key].(bool); ok && v != have {
			out[key] = v
		}
	}
	// A credential that shows null for allow_supplemental_* has them unset
	// (or was read from a search, which does not show them): a value asked
	// for is sent.
	for key, have := range map[string]*bool{"allow_supplemental_evidence": c.AllowSupplementalEvidence, "allow_supplemental_references": c.AllowSupplementalReferences} {
		if v, ok := want[key].(bool); ok && (have == nil || *have != v) {
			out[key] = v
		}
	}
	if g, ok := want["group_id"]; ok && integer(g) != c.GroupID {
		out["group_id"] = g
	}
	for _, key := range []string{"meta_data", "custom_attributes"} {
		add := object(want[key])
		if len(add) == 0 {
			continue
		}
		have := c.MetaData
		if key == "custom_attributes" {
			have = c.CustomAttributes
		}
		merged := map[string]any{}
		for k, v := range have {
			merged[k] = v
		}
		differs := false
		for k, v := range add {
			if !sameJSON(have[k], v) {
				differs = true
			}
			merged[k] = v
		}
		if differs {
			out[key] = merged
		}
	}
	if r, ok := want["recipient"].(map[string]any); ok {
		rc := map[string]any{}
		for key, have := range map[string]string{"name": c.Recipient.Name, "email": c.Recipient.Email, "id": c.Recipient.ID, "phone_number": c.Recipient.PhoneNumber} {
			v, ok := r[key]
			if !ok {
				continue
			}
			if key == "email" && strings.EqualFold(text(v), have) {
				continue
			}
			if scalar(v) != have {
				rc[key] = v
			}
		}
		if len(rc) > 0 {
			out["recipient"] = rc
		}
	}
	// Evidence and references are not compared: an upsert of an existing
	// credential leaves them alone (they have their own endpoints).
	return out
}

func sameJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var va, vb any
	_ = json.Unmarshal(ja, &va)
	_ = json.Unmarshal(jb, &vb)
	return reflect.DeepEqual(va, vb)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
