package accredible

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/jsondec"
	"github.com/memberflow/memberflow/internal/jsonenc"
)

// Credential is a credential in the one shape every hand-written
// operation and trigger outputs, whether the API answered with a v1
// credential object ({"credential":{...}}) or a flat v2 search item.
type Credential struct {
	ID               string         `json:"id"`
	Name             string         `json:"name"`
	Description      string         `json:"description,omitempty"`
	GroupID          int64          `json:"group_id"`
	GroupName        string         `json:"group_name"`
	Recipient        Recipient      `json:"recipient"`
	IssuedOn         string         `json:"issued_on"`
	ExpiredOn        *string        `json:"expired_on"`
	Approve          bool           `json:"approve"`
	Complete         bool           `json:"complete"`
	Private          bool           `json:"private"`
	Grade            *string        `json:"grade"`
	URL              string         `json:"url"`
	EncodedID        string         `json:"encoded_id"`
	LicenseID        string         `json:"license_id,omitempty"`
	CustomAttributes map[string]any `json:"custom_attributes"`
	MetaData         map[string]any `json:"meta_data"`
	// The v1 credential object's (not a search item's: nil there).
	AllowSupplementalEvidence   *bool  `json:"allow_supplemental_evidence"`
	AllowSupplementalReferences *bool  `json:"allow_supplemental_references"`
	EvidenceItems               []any  `json:"evidence_items"`
	References                  []any  `json:"references"`
	CreatedAt                   string `json:"created_at,omitempty"`
	UpdatedAt                   string `json:"updated_at,omitempty"`
}

// Recipient is who a credential is issued to.
type Recipient struct {
	Name        string         `json:"name"`
	Email       string         `json:"email"`
	ID          string         `json:"id,omitempty"`
	PhoneNumber string         `json:"phone_number,omitempty"`
	MetaData    map[string]any `json:"meta_data,omitempty"`
}

// credentialURL is where a credential is shown.
func credentialURL(id string) string { return "https://www.credential.net/" + id }

// fromV1 normalises a v1 credential object.
func fromV1(m map[string]any) Credential {
	c := Credential{
		ID:               scalar(m["id"]),
		Name:             text(m["name"]),
		Description:      text(m["description"]),
		GroupID:          integer(m["group_id"]),
		GroupName:        text(m["group_name"]),
		IssuedOn:         text(m["issued_on"]),
		ExpiredOn:        optional(m["expired_on"]),
		Approve:          m["approve"] == true,
		Complete:         m["complete"] == true,
		Private:          m["private"] == true,
		Grade:            optional(m["grade"]),
		URL:              text(m["url"]),
		EncodedID:        text(m["encoded_id"]),
		CustomAttributes: object(m["custom_attributes"]),
		MetaData:         object(m["meta_data"]),

		AllowSupplementalEvidence:   optionalBool(m["allow_supplemental_evidence"]),
		AllowSupplementalReferences: optionalBool(m["allow_supplemental_references"]),
		EvidenceItems:               list(m["evidence_items"]),
		References:                  list(m["references"]),
	}
	if r, ok := m["recipient"].(map[string]any); ok {
		c.Recipient = Recipient{Name: text(r["name"]), Email: text(r["email"]), ID: scalar(r["id"]),
			PhoneNumber: text(r["phone_number"]), MetaData: nonEmpty(object(r["meta_data"]))}
	}
	if c.URL == "" && c.ID != "" {
		c.URL = credentialURL(c.ID)
	}
	return c
}

// fromFlat normalises a v2 search item to the credential shape.
func fromFlat(m map[string]any) Credential {
	c := Credential{
		ID:               scalar(m["id"]),
		Name:             text(m["name"]),
		IssuedOn:         text(m["issued_on"]),
		ExpiredOn:        optional(m["expired_on"]),
		Approve:          m["approve"] == true,
		Private:          m["private"] == true,
		Grade:            optional(m["grade"]),
		EncodedID:        text(m["encoded_id"]),
		LicenseID:        scalar(m["license_id"]),
		CustomAttributes: object(m["custom_attributes"]),
		MetaData:         object(m["meta_data"]),
		CreatedAt:        text(m["created_at"]),
		UpdatedAt:        text(m["updated_at"]),
		Recipient: Recipient{Name: text(m["recipient_name"]), Email: text(m["recipient_email"]),
			ID: scalar(m["recipient_id"]), MetaData: nonEmpty(object(m["recipient_meta_data"]))},
	}
	if g, ok := m["group"].(map[string]any); ok {
		c.GroupID = integer(g["id"])
		c.GroupName = text(g["name"])
	}
	// A search item says nothing of completion; published credentials are
	// complete in practice, and the field is not part of the fingerprint.
	c.Complete = c.Approve
	if c.ID != "" {
		c.URL = credentialURL(c.ID)
	}
	return c
}

// Fingerprint is the credential's state as far as both the v1 object and
// the v2 search item show it. Writes put it in Result.Wrote and the
// triggers in Event.Fingerprint, so the engine can recognise the echo of
// its own write.
func Fingerprint(c Credential) string {
	state := []any{
		c.GroupID, c.Name, c.Recipient.Name, strings.ToLower(c.Recipient.Email), c.Recipient.ID,
		c.IssuedOn, deref(c.ExpiredOn), c.Approve, c.Private, deref(c.Grade),
		nonNil(c.CustomAttributes), nonNil(c.MetaData),
	}
	b, _ := jsonenc.Marshal(state) // json.Marshal's bytes; map keys are sorted: the encoding is canonical
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// Subject names a credential for events and echo suppression.
func Subject(id string) string { return "credential/" + id }

// Output is the credential as an action output or event data.
// It is the credential encoded as JSON and decoded again (what
// outputOfJSON does), built without reflection (TestOutputIsJSON,
// FuzzOutput).
func (c Credential) Output() map[string]any {
	var d jsondec.Decoder
	attrs, ok1 := throughJSON(&d, c.CustomAttributes)
	meta, ok2 := throughJSON(&d, c.MetaData)
	evidence, ok3 := listThroughJSON(&d, c.EvidenceItems)
	refs, ok4 := listThroughJSON(&d, c.References)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return outputOfJSON(c)
	}
	recipient := map[string]any{"name": jsonString(c.Recipient.Name), "email": jsonString(c.Recipient.Email)}
	if c.Recipient.ID != "" {
		recipient["id"] = jsonString(c.Recipient.ID)
	}
	if c.Recipient.PhoneNumber != "" {
		recipient["phone_number"] = jsonString(c.Recipient.PhoneNumber)
	}
	if len(c.Recipient.MetaData) > 0 {
		m, ok := throughJSON(&d, c.Recipient.MetaData)
		if !ok {
			return outputOfJSON(c)
		}
		recipient["meta_data"] = m
	}
	out := map[string]any{
		"id": jsonString(c.ID), "name": jsonString(c.Name), "group_id": float64(c.GroupID), "group_name": jsonString(c.GroupName),
		"recipient": recipient, "issued_on": jsonString(c.IssuedOn), "expired_on": optionalJSONString(c.ExpiredOn),
		"approve": c.Approve, "complete": c.Complete, "private": c.Private, "grade": optionalJSONString(c.Grade),
		"url": jsonString(c.URL), "encoded_id": jsonString(c.EncodedID), "custom_attributes": attrs, "meta_data": meta,
		"allow_supplemental_evidence": boolOrNil(c.AllowSupplementalEvidence), "allow_supplemental_references": boolOrNil(c.AllowSupplementalReferences),
		"evidence_items": evidence, "references": refs,
	}
	for k, v := range map[string]string{"description": c.Description, "license_id": c.LicenseID, "created_at": c.CreatedAt, "updated_at": c.UpdatedAt} {
		if v != "" { // omitempty
			out[k] = jsonString(v)
		}
	}
	return out
}

// outputOfJSON is the credential encoded as JSON and decoded again.
func outputOfJSON(c Credential) map[string]any {
	b, _ := json.Marshal(c)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// throughJSON is m encoded and decoded again (nil stays nil: null);
// false when m cannot be encoded.
func throughJSON(d *jsondec.Decoder, m map[string]any) (any, bool) {
	if m == nil {
		return nil, true
	}
	b, err := jsonenc.Marshal(m)
	if err != nil {
		return nil, false
	}
	v, err := d.Value(b)
	return v, err == nil
}

// listThroughJSON is throughJSON for a list (nil stays nil: null).
func listThroughJSON(d *jsondec.Decoder, l []any) (any, bool) {
	switch {
	case l == nil:
		return nil, true
	case len(l) == 0:
		return []any{}, true
	}
	b, err := jsonenc.Marshal(l)
	if err != nil {
		return nil, false
	}
	v, err := d.Value(b)
	return v, err == nil
}

func boolOrNil(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

// jsonString is s as it comes back from JSON: encoding/json writes each
// byte that is not valid UTF-8 as U+FFFD.
func jsonString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func optionalJSONString(s *string) any {
	if s == nil {
		return nil
	}
	return jsonString(*s)
}

func (c Credential) record() connectors.Record {
	return connectors.Record{Subject: Subject(c.ID), State: Fingerprint(c)}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func nonEmpty(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	return m
}

func text(v any) string {
	s, _ := v.(string)
	return s
}

// scalar renders an id that may arrive as a number or a string.
func scalar(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case json.Number:
		return v.String()
	}
	return ""
}

func integer(v any) int64 {
	switch v := v.(type) {
	case float64:
		return int64(v)
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	case int:
		return int64(v)
	case int64:
		return v
	}
	return 0
}

func optional(v any) *string {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		if v == "" {
			return nil
		}
		return &v
	default:
		s := scalar(v)
		if s == "" {
			return nil
		}
		return &s
	}
}

// optionalBool is a boolean that may be null or absent.
func optionalBool(v any) *bool {
	if b, ok := v.(bool); ok {
		return &b
	}
	return nil
}

// list is an array of the answer; nil when absent or not an array.
func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func object(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// credentialSchema is the JSON Schema of Credential, so that recipes
// type-check `steps.certificate.id`, `.url`, `.issued_on`.
const credentialSchema = `{
  "type": "object",
  "description": "An Accredible credential (certificate or badge).",
  "properties": {
    "id": {"type": "string", "description": "Accredible's id of the credential."},
    "name": {"type": "string", "description": "The credential's title, by default the group's course name."},
    "description": {"type": "string", "description": "The credential's description (absent when read from a search)."},
    "group_id": {"type": "integer", "description": "The group (course or certificate template) the credential belongs to."},
    "group_name": {"type": "string", "description": "The group's name."},
    "recipient": {
      "type": "object",
      "description": "Who the credential is issued to.",
      "properties": {
        "name": {"type": "string", "description": "The recipient's full name."},
        "email": {"type": "string", "description": "The recipient's email address."},
        "id": {"type": "string", "description": "Your own identifier for the recipient, when set."},
        "phone_number": {"type": "string", "description": "The recipient's phone number, when set."},
        "meta_data": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Your own key/values (strings) about the recipient."}
      }
    },
    "issued_on": {"type": "string", "description": "Issue date, YYYY-MM-DD."},
    "expired_on": {"type": ["string", "null"], "description": "Expiry date, YYYY-MM-DD, or null when it never expires."},
    "approve": {"type": "boolean", "description": "Whether the credential is published."},
    "complete": {"type": "boolean", "description": "Whether the achievement is complete."},
    "private": {"type": "boolean", "description": "Whether the credential is private."},
    "grade": {"type": ["string", "null"], "description": "The grade, when set."},
    "url": {"type": "string", "description": "Public page of the credential (https://www.credential.net/<id>)."},
    "encoded_id": {"type": "string", "description": "Short public id of the credential."},
    "license_id": {"type": "string", "description": "Your own id for the credential (the create's id field), when set."},
    "custom_attributes": {"type": "object", "description": "Values merged into the design and emails."},
    "meta_data": {"type": ["object", "null"], "additionalProperties": {"type": "string"}, "description": "Your own key/values (strings) about the credential."},
    "allow_supplemental_evidence": {"type": ["boolean", "null"], "description": "Whether recipients may add their own evidence; null when not set (Accredible's default, true) or read from a search."},
    "allow_supplemental_references": {"type": ["boolean", "null"], "description": "Whether recipients may add their own references; null when not set (Accredible's default, true) or read from a search."},
    "evidence_items": {
      "type": ["array", "null"],
      "description": "The credential's evidence items; null when read from a search.",
      "items": {
        "type": "object",
        "properties": {
          "id": {"type": "number", "description": "Accredible's id of the evidence item."},
          "description": {"type": "string", "description": "Title text of the item."},
          "preview_image_url": {"type": ["string", "null"], "description": "URL of the item's preview image."},
          "link_url": {"type": ["string", "null"], "description": "URL of the item's file or link."},
          "type": {"type": "string", "description": "The item's category: file, url, video, grade or transcript."},
          "string_object": {"type": ["object", "null"], "description": "The value of a grade or transcript item (a grade as {\"grade\": 80})."},
          "supplemental": {"type": "boolean", "description": "Whether the recipient added the item."},
          "position": {"type": "number", "description": "Position on the credential."}
        }
      }
    },
    "references": {
      "type": ["array", "null"],
      "description": "The credential's references; null when read from a search.",
      "items": {
        "type": "object",
        "properties": {
          "id": {"type": "number", "description": "Accredible's id of the reference."},
          "description": {"type": "string", "description": "The reference comments / text."},
          "relationship": {"type": "string", "description": "How the referee knows the recipient: taught, managed, mentored, worked, studied, friends, stranger or professor."},
          "supplemental": {"type": "boolean", "description": "Whether the recipient added the reference."},
          "approve": {"type": "boolean", "description": "Whether the reference is approved."},
          "referee": {
            "type": "object",
            "description": "Who gave the reference.",
            "properties": {
              "name": {"type": "string", "description": "The referee's name."},
              "email": {"type": ["string", "null"], "description": "The referee's email, when shown."},
              "avatar": {"type": "string", "description": "URL of the referee's image."}
            }
          }
        }
      }
    },
    "created_at": {"type": "string", "description": "When the credential was created (ISO 8601), when read from a search."},
    "updated_at": {"type": "string", "description": "When the credential last changed (ISO 8601), when read from a search."}
  }
}`
