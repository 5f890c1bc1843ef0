package sandbox

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// routes registers every endpoint of the document; anything else answers
// 404 with the API's `{"error":"Not found"}`.
func (s *Server) routes() {
	rt := s.router
	rt.HandleFunc("POST /v1/credentials", s.createCredential)
	rt.HandleFunc("GET /v1/credentials/{id}", s.getCredential)
	rt.HandleFunc("PUT /v1/credentials/{id}", s.updateCredential)
	rt.HandleFunc("DELETE /v1/credentials/{id}", s.deleteCredential)
	rt.HandleFunc("POST /v1/credentials/bulk_create", s.bulkCreateV1)
	rt.HandleFunc("POST /v2/credentials/bulk_create", s.bulkCreateV2)
	rt.HandleFunc("GET /v1/all_credentials", s.allCredentials)
	rt.HandleFunc("POST /v1/credentials/search", s.searchV1)
	rt.HandleFunc("POST /v2/credentials/search", s.searchV2)

	// POST /v1/credentials/{x}/{y} is four operations the ServeMux
	// cannot tell apart by pattern; postCredentialPart dispatches them.
	rt.HandleFunc("POST /v1/credentials/{credential_id}/{part}", s.postCredentialPart)
	rt.HandleFunc("GET /v1/credentials/{credential_id}/evidence_items/{evidence_item_id}", evidenceItems.get(s))
	rt.HandleFunc("PUT /v1/credentials/{credential_id}/evidence_items/{evidence_item_id}", evidenceItems.update(s))
	rt.HandleFunc("DELETE /v1/credentials/{credential_id}/evidence_items/{evidence_item_id}", evidenceItems.delete(s))
	rt.HandleFunc("GET /v1/credentials/{credential_id}/references/{reference_id}", references.get(s))
	rt.HandleFunc("PUT /v1/credentials/{credential_id}/references/{reference_id}", references.update(s))
	rt.HandleFunc("DELETE /v1/credentials/{credential_id}/references/{reference_id}", references.delete(s))

	rt.HandleFunc("POST /v1/issuer/groups", groups.create(s))
	rt.HandleFunc("GET /v1/issuer/groups/{group_id}", groups.get(s))
	rt.HandleFunc("PUT /v1/issuer/groups/{group_id}", groups.update(s))
	rt.HandleFunc("DELETE /v1/issuer/groups/{group_id}", groups.delete(s))
	rt.HandleFunc("GET /v1/issuer/all_groups", s.allGroups)
	rt.HandleFunc("POST /v1/issuer/groups/search", s.searchGroups)
	rt.HandleFunc("GET /v1/issuer/details", s.issuerDetails)

	rt.HandleFunc("POST /v1/departments", departments.create(s))
	rt.HandleFunc("GET /v1/departments/{department_id}", departments.get(s))
	rt.HandleFunc("PUT /v1/departments/{department_id}", departments.update(s))
	rt.HandleFunc("DELETE /v1/departments/{department_id}", departments.delete(s))
	rt.HandleFunc("POST /v1/departments/search", s.searchDepartments)

	rt.HandleFunc("POST /v1/designs", designs.create(s))
	rt.HandleFunc("GET /v1/designs", s.listDesigns)
	rt.HandleFunc("GET /v1/designs/{design_id}", designs.get(s))
	rt.HandleFunc("PUT /v1/designs/{design_id}", designs.update(s))
	rt.HandleFunc("DELETE /v1/designs/{design_id}", designs.delete(s))
	rt.HandleFunc("POST /v1/designs/search", s.searchDesigns)

	s.moreRoutes()

	rt.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notFound(w) })
}

// --- groups ---

type group struct {
	id                                  int64
	name, courseName, courseDescription string
	courseLink, language, achievement   string
	designID, certificateDesignID       int64
	badgeDesignID, primaryDesignID      int64
	departmentID                        int64
	attachPDF, blockchain, private      bool
	metaData                            map[string]any
	learningOutcomes                    []string
	createdAt, updatedAt                int64
}

type groupJSON struct {
	ID                        int64          `json:"id"`
	Name                      string         `json:"name"`
	CourseName                string         `json:"course_name"`
	CourseDescription         string         `json:"course_description"`
	CourseLink                string         `json:"course_link"`
	Language                  string         `json:"language"`
	LearningOutcomes          []string       `json:"learning_outcomes"`
	AttachPDF                 bool           `json:"attach_pdf"`
	DesignName                string         `json:"design_name"`
	DesignID                  int64          `json:"design_id"`
	CertificateDesignID       *int64         `json:"certificate_design_id"`
	BadgeDesignID             *int64         `json:"badge_design_id"`
	PrimaryDesignID           *int64         `json:"primary_design_id"`
	Blockchain                bool           `json:"blockchain"`
	DepartmentID              int64          `json:"department_id"`
	MetaData                  map[string]any `json:"meta_data"`
	GeneratePrivateCredential bool           `json:"generate_private_credential"`
	AutoExpiry                int            `json:"auto_expiry"`
	SignupURLShow             bool           `json:"signup_url_show"`
	SignupURL                 string         `json:"signup_url"`
	CourseLinkShow            bool           `json:"course_link_show"`
	OrganizationLinkShow      bool           `json:"organization_link_show"`
	SkillCategory             map[string]any `json:"skill_category"`
	AchievementType           string         `json:"achievement_type"`
	Collections               []any          `json:"collections"`
	CreatedAt                 string         `json:"created_at"`
	UpdatedAt                 string         `json:"updated_at"`
}

func idPtr(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

func (s *Server) renderGroup(g *group) groupJSON {
	out := groupJSON{ID: g.id, Name: g.name, CourseName: g.courseName, CourseDescription: g.courseDescription,
		CourseLink: g.courseLink, Language: g.language, LearningOutcomes: g.learningOutcomes, AttachPDF: g.attachPDF,
		DesignID: g.designID, CertificateDesignID: idPtr(g.certificateDesignID), BadgeDesignID: idPtr(g.badgeDesignID),
		PrimaryDesignID: idPtr(g.primaryDesignID), Blockchain: g.blockchain, DepartmentID: g.departmentID,
		MetaData: orEmpty(g.metaData), GeneratePrivateCredential: g.private, SkillCategory: map[string]any{},
		AchievementType: g.achievement, Collections: []any{},
		CreatedAt: formatStamp(g.createdAt), UpdatedAt: formatStamp(g.updatedAt)}
	if out.LearningOutcomes == nil {
		out.LearningOutcomes = []string{}
	}
	if out.AchievementType == "" {
		out.AchievementType = "Certificate"
	}
	if d := s.designs[g.designID]; d != nil {
		out.DesignName = d.name
	}
	return out
}

func groupMissing(w http.ResponseWriter) {
	sandboxkit.WriteJSON(w, http.StatusNotFound, map[string]any{"success": false, "data": "Group does not exist"})
}

// groups: a name is unique, and a group with credentials stays.
var groups = resource[group]{
	key: "group", idParam: "group_id",
	table:   func(s *Server) map[int64]*group { return s.groups },
	blank:   func() *group { return &group{language: "en"} },
	apply:   applyGroup,
	render:  func(s *Server, g *group) any { return s.renderGroup(g) },
	missing: groupMissing,
	created: func(g *group, id, now int64) { g.id, g.createdAt, g.updatedAt = id, now, now },
	updated: func(g *group, now int64) { g.updatedAt = now },
	createConflict: func(s *Server, g *group) any {
		if s.groupByName(g.name) != nil {
			return map[string][]string{"name": {"has already been taken"}}
		}
		return nil
	},
	deleteConflict: func(s *Server, id int64) any {
		if len(s.creds.byGroup[id]) > 0 {
			return "Group has credentials and cannot be deleted"
		}
		return nil
	},
}

// applyGroup copies the input onto g and reports blank required fields.
func applyGroup(in map[string]any, g *group) map[string][]string {
	for key, dst := range map[string]*string{"name": &g.name, "course_name": &g.courseName,
		"course_description": &g.courseDescription, "course_link": &g.courseLink, "language": &g.language,
		"achievement_type": &g.achievement} {
		if v, ok := in[key]; ok {
			*dst = str(v)
		}
	}
	for key, dst := range map[string]*int64{"design_id": &g.designID, "certificate_design_id": &g.certificateDesignID,
		"badge_design_id": &g.badgeDesignID, "primary_design_id": &g.primaryDesignID, "department_id": &g.departmentID} {
		if v, ok := argInt(in, key); ok {
			*dst = v
		}
	}
	for key, dst := range map[string]*bool{"attach_pdf": &g.attachPDF, "blockchain": &g.blockchain, "generate_private_credential": &g.private} {
		if v, ok := in[key].(bool); ok {
			*dst = v
		}
	}
	if v, ok := in["meta_data"].(map[string]any); ok {
		g.metaData = v
	}
	if v, ok := in["learning_outcomes"].([]any); ok {
		g.learningOutcomes = make([]string, 0, len(v)) // a fresh slice: the draft must not write into the stored group
		for _, x := range v {
			g.learningOutcomes = append(g.learningOutcomes, str(x))
		}
	}
	errs := map[string][]string{}
	for key, v := range map[string]string{"name": g.name, "course_name": g.courseName, "course_description": g.courseDescription} {
		if strings.TrimSpace(v) == "" {
			errs[key] = []string{"can't be blank"}
		}
	}
	return errs
}

func wrapped(body map[string]any, key string) map[string]any {
	if in, ok := body[key].(map[string]any); ok {
		return in
	}
	return body
}

// allGroups lists groups; the document gives its filters as a body on a
// GET, so they are read from the query string and from a body.
func (s *Server) allGroups(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	get := queryGetter(q)
	if r.ContentLength > 0 {
		if body, err := readBody(r); err == nil {
			get = func(k string) (any, bool) {
				if q.Has(k) {
					return q.Get(k), true
				}
				v, ok := body[k]
				return v, ok
			}
		}
	}
	s.listGroups(w, get)
}

func (s *Server) searchGroups(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badJSON(w, err)
		return
	}
	s.listGroups(w, bodyGetter(body))
}

func (s *Server) listGroups(w http.ResponseWriter, get func(string) (any, bool)) {
	page, size, err := pageParams(get)
	if err != nil {
		unprocessable(w, err.Error())
		return
	}
	name, _ := get("name")
	course, _ := get("course_name")
	meta, _ := get("meta_data")
	metaMap, _ := meta.(map[string]any)
	ids := map[int64]bool{}
	if l, ok := get("ids"); ok {
		if list, ok := l.([]any); ok {
			for _, v := range list {
				if n, ok := v.(float64); ok {
					ids[int64(n)] = true
				}
			}
		}
	}
	var lo, hi int64 = 0, 1 << 62
	for key, dst := range map[string]*int64{"start_updated_date": &lo, "end_updated_date": &hi} {
		if v, ok := get(key); ok && str(v) != "" {
			t, err := time.Parse("2006-01-02", str(v))
			if err != nil {
				unprocessable(w, map[string][]string{key: {"is not a valid date"}})
				return
			}
			if key == "end_updated_date" {
				t = t.AddDate(0, 0, 1)
			}
			*dst = t.UnixMilli()
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	writePage(w, "groups", s.groups, page, size, func(id int64, g *group) bool {
		return (len(ids) == 0 || ids[id]) && (str(name) == "" || strings.Contains(strings.ToLower(g.name), strings.ToLower(str(name)))) &&
			(str(course) == "" || strings.Contains(strings.ToLower(g.courseName), strings.ToLower(str(course)))) &&
			subset(metaMap, g.metaData) && g.updatedAt >= lo && g.updatedAt < hi
	}, s.renderGroup)
}

func (s *Server) issuerDetails(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	credits := s.credits
	s.mu.RUnlock()
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"issuer": map[string]any{
		"id": issuerID, "name": issuerName, "email": "certificates@members.example.org", "certificate_left": credits,
		"language": "en", "url": issuerURL, "spiderable": true, "whitelisted_domain": issuerURL + "/",
		"linkedin_company_id": nil, "linkedin_school_id": nil,
	}})
}

// --- evidence items and references ---

func applyEvidence(in map[string]any, e *evidenceItem) {
	for key, dst := range map[string]*string{"description": &e.description, "category": &e.kind, "url": &e.url,
		"string_object": &e.stringObject, "preview": &e.preview, "custom_insight": &e.insight} {
		if v, ok := in[key]; ok {
			*dst = str(v)
		}
	}
	if v, ok := argInt(in, "position"); ok {
		e.position = int(v)
	}
	if v, ok := in["supplemental"].(bool); ok {
		e.supplemental = v
	}
	if v, ok := in["hidden"].(bool); ok {
		e.hidden = v
	}
}

func validEvidence(e *evidenceItem) map[string][]string {
	errs := map[string][]string{}
	if strings.TrimSpace(e.description) == "" {
		errs["description"] = []string{"can't be blank"}
	}
	switch e.kind {
	case "file", "url", "video", "grade", "transcript":
	case "":
		errs["category"] = []string{"can't be blank"}
	default:
		errs["category"] = []string{"is not included in the list"}
	}
	return errs
}

var evidenceItems = credentialPart[evidenceItem]{
	key: "evidence_item", idParam: "evidence_item_id",
	list:   func(x *credentialExtra) *[]evidenceItem { return &x.evidence },
	id:     func(e *evidenceItem) *int64 { return &e.id },
	apply:  applyEvidence,
	valid:  validEvidence,
	render: func(e *evidenceItem) any { return renderEvidence(e, true) },
	added: func(e *evidenceItem, c *credential) {
		if e.position == 0 {
			e.position = len(c.x().evidence) + 1
		}
	},
}

var references = credentialPart[reference]{
	key: "reference", idParam: "reference_id",
	list:   func(x *credentialExtra) *[]reference { return &x.references },
	id:     func(ref *reference) *int64 { return &ref.id },
	apply:  applyReference,
	valid:  validReference,
	render: func(ref *reference) any { return renderReference(ref, true) },
}

// credentialAt finds the credential whose id is in the path wildcard
// param; it writes the 404.
func (s *Server) credentialAt(w http.ResponseWriter, r *http.Request, param string) (*credential, bool) {
	id, _ := pathID(r, param)
	c, ok := s.creds.get(id)
	if !ok {
		notFoundCredential(w)
	}
	return c, ok
}

func applyReference(in map[string]any, ref *reference) {
	for key, dst := range map[string]*string{"description": &ref.description, "relationship": &ref.relationship} {
		if v, ok := in[key]; ok {
			*dst = str(v)
		}
	}
	if re, ok := in["referee"].(map[string]any); ok {
		for key, dst := range map[string]*string{"name": &ref.refereeName, "email": &ref.refereeEmail, "avatar": &ref.refereeAvatar, "url": &ref.refereeURL} {
			if v, ok := re[key]; ok {
				*dst = str(v)
			}
		}
	}
	if v, ok := argInt(in, "position"); ok {
		ref.position = int(v)
	}
	if v, ok := in["supplemental"].(bool); ok {
		ref.supplemental = v
	}
}

func validReference(ref *reference) map[string][]string {
	errs := map[string][]string{}
	if strings.TrimSpace(ref.description) == "" {
		errs["description"] = []string{"can't be blank"}
	}
	switch ref.relationship {
	case "taught", "managed", "mentored", "worked", "studied", "friends", "stranger", "professor":
	default:
		errs["relationship"] = []string{"is not included in the list"}
	}
	return errs
}

// --- departments ---

type department struct {
	id                                 int64
	name, description, url, logo       string
	pageBanner, whitelabelLogo, linkID string
	private                            bool
	metaData                           map[string]any
	createdAt                          int64
}

func renderDepartment(d *department) map[string]any {
	return map[string]any{"id": d.id, "name": d.name, "description": d.description, "url": d.url, "logo": d.logo,
		"page_banner": d.pageBanner, "whitelabel_logo": d.whitelabelLogo, "linkedin_company_id": d.linkID,
		"meta_data": orEmpty(d.metaData), "generate_private_credential": d.private}
}

var departments = resource[department]{
	key: "department", idParam: "department_id",
	table:   func(s *Server) map[int64]*department { return s.departments },
	blank:   func() *department { return &department{} },
	apply:   applyDepartment,
	render:  func(_ *Server, d *department) any { return renderDepartment(d) },
	missing: notFound,
	created: func(d *department, id, now int64) { d.id, d.createdAt = id, now },
}

func applyDepartment(in map[string]any, d *department) map[string][]string {
	for key, dst := range map[string]*string{"name": &d.name, "description": &d.description, "url": &d.url, "logo": &d.logo,
		"page_banner": &d.pageBanner, "whitelabel_logo": &d.whitelabelLogo, "linkedin_company_id": &d.linkID} {
		if v, ok := in[key]; ok {
			*dst = str(v)
		}
	}
	if v, ok := in["meta_data"].(map[string]any); ok {
		d.metaData = v
	}
	if v, ok := in["generate_private_credential"].(bool); ok {
		d.private = v
	}
	errs := map[string][]string{}
	for key, v := range map[string]string{"name": d.name, "url": d.url, "logo": d.logo} {
		if strings.TrimSpace(v) == "" {
			errs[key] = []string{"can't be blank"}
		}
	}
	return errs
}

// searchDepartments answers a list; the document's schema shows a single
// object under `departments`, which cannot be what a search returns.
func (s *Server) searchDepartments(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badJSON(w, err)
		return
	}
	get := bodyGetter(body)
	page, size, err := pageParams(get)
	if err != nil {
		unprocessable(w, err.Error())
		return
	}
	meta, _ := body["meta_data"].(map[string]any)
	s.mu.RLock()
	defer s.mu.RUnlock()
	writePage(w, "departments", s.departments, page, size, func(_ int64, d *department) bool {
		return subset(meta, d.metaData)
	}, renderDepartment)
}

// --- designs ---

type design struct {
	id                  int64
	name, kind, content string
	orientation, size   string
	backgroundBleeds    bool
	departmentID        int64
	metaData            map[string]any
	createdAt           int64
}

func renderDesign(d *design) map[string]any {
	return map[string]any{"id": d.id, "name": d.name, "kind": d.kind, "orientation": d.orientation, "size": d.size,
		"background_bleeds": d.backgroundBleeds, "department_id": d.departmentID, "meta_data": orEmpty(d.metaData),
		"preview_image_url": apiHost + "/v1/frontend/design_preview/" + strconv.FormatInt(d.id, 10), "created_at": formatStamp(d.createdAt)}
}

var designs = resource[design]{
	key: "design", idParam: "design_id",
	table:   func(s *Server) map[int64]*design { return s.designs },
	blank:   func() *design { return &design{orientation: "landscape", size: "a4"} },
	apply:   applyDesign,
	render:  func(_ *Server, d *design) any { return renderDesign(d) },
	missing: notFound,
	created: func(d *design, id, now int64) { d.id, d.createdAt = id, now },
}

func applyDesign(in map[string]any, d *design) map[string][]string {
	for key, dst := range map[string]*string{"name": &d.name, "kind": &d.kind, "encoded_content": &d.content,
		"orientation": &d.orientation, "size": &d.size} {
		if v, ok := in[key]; ok {
			*dst = str(v)
		}
	}
	if v, ok := in["background_bleeds"].(bool); ok {
		d.backgroundBleeds = v
	}
	if v, ok := argInt(in, "department_id"); ok {
		d.departmentID = v
	}
	if v, ok := in["meta_data"].(map[string]any); ok {
		d.metaData = v
	}
	errs := map[string][]string{}
	if strings.TrimSpace(d.name) == "" {
		errs["name"] = []string{"can't be blank"}
	}
	switch d.kind {
	case "certificate", "badge":
	default:
		errs["kind"] = []string{"is not included in the list"}
	}
	return errs
}

func (s *Server) listDesigns(w http.ResponseWriter, r *http.Request) {
	s.serveDesigns(w, queryGetter(r.URL.Query()))
}

func (s *Server) searchDesigns(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badJSON(w, err)
		return
	}
	s.serveDesigns(w, bodyGetter(body))
}

func (s *Server) serveDesigns(w http.ResponseWriter, get func(string) (any, bool)) {
	page, size, err := pageParams(get)
	if err != nil {
		unprocessable(w, err.Error())
		return
	}
	kind, _ := get("kind")
	meta, _ := get("meta_data")
	metaMap, _ := meta.(map[string]any)
	s.mu.RLock()
	defer s.mu.RUnlock()
	writePage(w, "designs", s.designs, page, size, func(_ int64, d *design) bool {
		return (str(kind) == "" || d.kind == str(kind)) && subset(metaMap, d.metaData)
	}, renderDesign)
}
