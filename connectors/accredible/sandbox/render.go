package sandbox

import (
	"encoding/json"
	"strconv"
	"strings"
)

// The answer shapes, as the document describes them. Single-credential
// answers carry the id as a string; listings and bulk answers as a number
// (the API's own inconsistency).

type credentialJSON struct {
	ID                          any             `json:"id"`
	Name                        string          `json:"name"`
	Description                 string          `json:"description"`
	Approve                     bool            `json:"approve"`
	Grade                       *string         `json:"grade"`
	Complete                    bool            `json:"complete"`
	IssuedOn                    string          `json:"issued_on"`
	CourseLink                  string          `json:"course_link"`
	CustomAttributes            map[string]any  `json:"custom_attributes"`
	ExpiredOn                   *string         `json:"expired_on"`
	GroupName                   string          `json:"group_name"`
	GroupID                     int64           `json:"group_id"`
	URL                         string          `json:"url"`
	EncodedID                   string          `json:"encoded_id"`
	Private                     bool            `json:"private"`
	SeoImage                    string          `json:"seo_image"`
	Certificate                 imageJSON       `json:"certificate"`
	Badge                       imageJSON       `json:"badge"`
	AllowSupplementalReferences *bool           `json:"allow_supplemental_references"`
	AllowSupplementalEvidence   *bool           `json:"allow_supplemental_evidence"`
	EvidenceItems               []evidenceJSON  `json:"evidence_items"`
	References                  []referenceJSON `json:"references"`
	Recipient                   recipientJSON   `json:"recipient"`
	Issuer                      issuerJSON      `json:"issuer"`
	MetaData                    map[string]any  `json:"meta_data"`
}

type imageJSON struct {
	Image struct {
		Preview string `json:"preview"`
	} `json:"image"`
}

type recipientJSON struct {
	Name        string         `json:"name"`
	Email       string         `json:"email"`
	PhoneNumber *string        `json:"phone_number"`
	ID          any            `json:"id,omitempty"`
	MetaData    map[string]any `json:"meta_data"`
}

type issuerJSON struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	URL         string `json:"url"`
	ID          int64  `json:"id"`
}

type evidenceJSON struct {
	ID              int64  `json:"id"`
	Description     string `json:"description"`
	PreviewImageURL any    `json:"preview_image_url"`
	LinkURL         any    `json:"link_url"`
	Type            string `json:"type"`
	StringObject    any    `json:"string_object"`
	Supplemental    bool   `json:"supplemental"`
	Position        int    `json:"position"`
}

type referenceJSON struct {
	ID           int64  `json:"id"`
	Description  string `json:"description"`
	Relationship string `json:"relationship"`
	Supplemental bool   `json:"supplemental"`
	Approve      bool   `json:"approve"`
	Referee      struct {
		Name   string `json:"name"`
		Email  any    `json:"email"`
		Avatar string `json:"avatar"`
	} `json:"referee"`
}

// flatJSON is a v2 search item.
type flatJSON struct {
	ID                int64          `json:"id"`
	UUID              string         `json:"uuid"`
	EncodedID         string         `json:"encoded_id"`
	Name              string         `json:"name"`
	Private           bool           `json:"private"`
	Approve           bool           `json:"approve"`
	Grade             *string        `json:"grade"`
	IssuedOn          string         `json:"issued_on"`
	ExpiredOn         *string        `json:"expired_on"`
	PublishedOn       *string        `json:"published_on"`
	CreatedAt         string         `json:"created_at"`
	UpdatedAt         string         `json:"updated_at"`
	RecipientName     string         `json:"recipient_name"`
	RecipientEmail    string         `json:"recipient_email"`
	RecipientID       *string        `json:"recipient_id"`
	RecipientMetaData map[string]any `json:"recipient_meta_data"`
	RecipientOpened   bool           `json:"recipient_opened"`
	RecipientEngaged  bool           `json:"recipient_engaged"`
	SeoImage          string         `json:"seo_image"`
	CustomAttributes  map[string]any `json:"custom_attributes"`
	MetaData          map[string]any `json:"meta_data"`
	LicenseID         *string        `json:"license_id"`
	IssuerID          int64          `json:"issuer_id"`
	Group             flatGroupJSON  `json:"group"`
}

type flatGroupJSON struct {
	ID                  int64  `json:"id"`
	Name                string `json:"name"`
	CourseName          string `json:"course_name"`
	BadgeDesignID       *int64 `json:"badge_design_id"`
	CertificateDesignID *int64 `json:"certificate_design_id"`
}

type pageMeta struct {
	CurrentPage int  `json:"current_page"`
	NextPage    *int `json:"next_page,omitempty"`
	PrevPage    *int `json:"prev_page"`
	TotalPages  int  `json:"total_pages"`
	TotalCount  int  `json:"total_count"`
}

const (
	issuerID          = 4897
	issuerName        = "Memberflow Sandbox Issuer"
	issuerURL         = "https://members.example.org"
	issuerDescription = "Certificates and badges for members."
	apiHost           = "https://api.accredible.com"
)

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// emptyObject is shared by every answer that shows an empty object; it is
// only ever encoded, never written to.
var emptyObject = map[string]any{}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return emptyObject
	}
	return m
}

// render builds the v1 credential object. list selects the listing
// variant, with numeric ids.
func (s *Server) render(c *credential, list bool) credentialJSON {
	g := s.groups[c.groupID]
	var groupName, courseLink string
	if g != nil {
		groupName, courseLink = g.name, g.courseLink
	}
	idStr := strconv.FormatInt(c.id, 10)
	out := credentialJSON{
		ID: idStr, Name: c.name, Description: c.description, Approve: c.approve, Grade: nullable(c.x().grade),
		Complete: c.complete, IssuedOn: c.issuedOn, CourseLink: courseLink,
		CustomAttributes: orEmpty(c.x().customAttributes), ExpiredOn: nullable(c.expiredOn),
		GroupName: groupName, GroupID: c.groupID, URL: "https://www.credential.net/" + idStr,
		EncodedID: encodedID(c.id), Private: c.private,
		SeoImage:      apiHost + "/v1/frontend/credential_seo_image/" + idStr,
		EvidenceItems: make([]evidenceJSON, 0, len(c.x().evidence)),
		References:    make([]referenceJSON, 0, len(c.x().references)),
		Recipient: recipientJSON{Name: c.recipientName, Email: c.recipientEmail,
			PhoneNumber: nullable(c.x().recipientPhone), MetaData: orEmpty(c.x().recipientMeta)},
		Issuer:                      issuerJSON{Name: issuerName, Description: issuerDescription, URL: issuerURL, ID: issuerID},
		MetaData:                    orEmpty(c.x().metaData),
		AllowSupplementalEvidence:   c.x().allowEvidence.json(),
		AllowSupplementalReferences: c.x().allowReferences.json(),
	}
	out.Certificate.Image.Preview = apiHost + "/v1/frontend/credential_website_embed_image/certificate/" + idStr
	out.Badge.Image.Preview = apiHost + "/v1/frontend/credential_badge_image/" + idStr
	if c.recipientID != "" {
		out.Recipient.ID = c.recipientID
	}
	if list {
		out.ID = c.id
		// Listings document recipient.id as a number: numeric ids are sent
		// as numbers, others as the string they are.
		if n, err := strconv.ParseInt(c.recipientID, 10, 64); err == nil {
			out.Recipient.ID = n
		}
	}
	for i := range c.x().evidence {
		if !c.x().evidence[i].hidden {
			out.EvidenceItems = append(out.EvidenceItems, renderEvidence(&c.x().evidence[i], false))
		}
	}
	for i := range c.x().references {
		out.References = append(out.References, renderReference(&c.x().references[i], false))
	}
	return out
}

// renderEvidence builds an evidence item. Inside a credential the
// document has empty URLs as null; the evidence endpoints' own answers
// type them as strings.
func renderEvidence(e *evidenceItem, standalone bool) evidenceJSON {
	out := evidenceJSON{ID: e.id, Description: e.description, Type: e.kind, Supplemental: e.supplemental, Position: e.position,
		LinkURL: maybeNull(e.url, standalone), PreviewImageURL: maybeNull(e.preview, standalone)}
	if e.stringObject != "" {
		var obj map[string]any
		if json.Unmarshal([]byte(e.stringObject), &obj) == nil {
			out.StringObject = obj
		} else if n, err := strconv.ParseFloat(strings.TrimSpace(e.stringObject), 64); err == nil && e.kind == "grade" {
			out.StringObject = map[string]any{"grade": n}
		}
	}
	return out
}

func renderReference(r *reference, standalone bool) referenceJSON {
	out := referenceJSON{ID: r.id, Description: r.description, Relationship: r.relationship, Supplemental: r.supplemental, Approve: true}
	out.Referee.Name, out.Referee.Email, out.Referee.Avatar = r.refereeName, maybeNull(r.refereeEmail, standalone), r.refereeAvatar
	return out
}

func maybeNull(s string, asString bool) any {
	if s == "" && !asString {
		return nil
	}
	return s
}

// renderFlat builds a v2 search item.
func (s *Server) renderFlat(c *credential) flatJSON {
	idStr := strconv.FormatInt(c.id, 10)
	out := flatJSON{
		ID: c.id, UUID: credentialUUID(c.id), EncodedID: encodedID(c.id), Name: c.name, Private: c.private,
		Approve: c.approve, Grade: nullable(c.x().grade), IssuedOn: c.issuedOn, ExpiredOn: nullable(c.expiredOn),
		CreatedAt: formatStamp(c.createdAt), UpdatedAt: formatStamp(c.updatedAt),
		RecipientName: c.recipientName, RecipientEmail: c.recipientEmail, RecipientID: nullable(c.recipientID),
		RecipientMetaData: orEmpty(c.x().recipientMeta), SeoImage: apiHost + "/v1/frontend/credential_seo_image/" + idStr,
		CustomAttributes: orEmpty(c.x().customAttributes), MetaData: orEmpty(c.x().metaData), LicenseID: nullable(c.x().licenseID),
		IssuerID: issuerID,
	}
	if c.approve {
		out.PublishedOn = nullable(c.issuedOn)
	}
	out.Group.ID = c.groupID
	if g := s.groups[c.groupID]; g != nil {
		out.Group.Name, out.Group.CourseName = g.name, g.courseName
		if g.certificateDesignID != 0 {
			id := g.certificateDesignID
			out.Group.CertificateDesignID = &id
		}
		if g.badgeDesignID != 0 {
			id := g.badgeDesignID
			out.Group.BadgeDesignID = &id
		}
	}
	return out
}

// pageOf computes the v1 listing page and its meta.
func pageOf(total, page, size int) (from, to int, meta pageMeta) {
	pages := (total + size - 1) / size
	meta = pageMeta{CurrentPage: page, TotalPages: pages, TotalCount: total}
	if page > 1 {
		p := page - 1
		meta.PrevPage = &p
	}
	if page < pages {
		n := page + 1
		meta.NextPage = &n
	}
	from = min((page-1)*size, total)
	to = min(from+size, total)
	return from, to, meta
}
