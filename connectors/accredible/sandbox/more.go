package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// The rest of the document: PDFs, redirects, blockchain receipts,
// analytics, group clones, skill categories, collections, design copies
// and previews, the embedded designers, custom attribute keys, data
// exports, team members and SSO links. Each reads and changes the same
// state as the credential and group endpoints.

func (s *Server) moreRoutes() {
	rt := s.router
	rt.HandleFunc("POST /v1/credentials/generate_pdf", s.generatePDFs)
	rt.HandleFunc("GET /v1/issuer/credential_redirect", s.credentialRedirect)
	rt.HandleFunc("GET /v1/credentials/blockchain_data/{id}", s.blockchainV1)
	rt.HandleFunc("GET /v2/credentials/{id}/blockchain_data", s.blockchainV2)
	rt.HandleFunc("POST /v1/issuer/groups/{group_id}/clone", groups.copyOf(s, cloneGroup))
	rt.HandleFunc("GET /v1/skill_categories", s.skillCategories)
	rt.HandleFunc("POST /v1/collections", collections.create(s))
	rt.HandleFunc("PUT /v1/collections/{collection_id}", collections.update(s))
	rt.HandleFunc("DELETE /v1/collections/{collection_id}", collections.delete(s))
	rt.HandleFunc("POST /v1/collections/search", s.searchCollections)
	rt.HandleFunc("POST /v1/designs/{design_id}/copy", designs.copyOf(s, copyDesign))
	rt.HandleFunc("POST /v1/designs/{design_id}/preview", s.previewDesign)
	rt.HandleFunc("POST /v1/designers/badge/initialize", s.initializeDesigner("badge"))
	rt.HandleFunc("POST /v1/designers/certificate/initialize", s.initializeDesigner("certificate"))
	rt.HandleFunc("POST /v1/attribute_keys", attributeKeys.create(s))
	rt.HandleFunc("POST /v1/attribute_keys/search", s.searchAttributeKeys)
	rt.HandleFunc("GET /v1/analytics", s.analytics)
	rt.HandleFunc("GET /v1/data_exports", s.listDataExports)
	rt.HandleFunc("POST /v1/data_exports", s.createDataExport)
	rt.HandleFunc("GET /v1/data_exports/{id}", s.getDataExport)
	rt.HandleFunc("POST /v1/team_members", teamMembers.create(s))
	rt.HandleFunc("GET /v1/team_members/{id}", teamMembers.get(s))
	rt.HandleFunc("PUT /v1/team_members/{id}", teamMembers.update(s))
	rt.HandleFunc("DELETE /v1/team_members/{id}", teamMembers.delete(s))
	rt.HandleFunc("POST /v1/sso/generate_link", s.ssoLink)
}

// postCredentialPart serves POST /v1/credentials/generate_single_pdf/{id},
// /analytics/{id}, /{credential_id}/evidence_items and
// /{credential_id}/references.
func (s *Server) postCredentialPart(w http.ResponseWriter, r *http.Request) {
	first, part := r.PathValue("credential_id"), r.PathValue("part")
	switch {
	case first == "generate_single_pdf":
		r.SetPathValue("id", part)
		s.generatePDF(w, r)
	case first == "analytics":
		r.SetPathValue("id", part)
		s.credentialAnalytics(w, r)
	case part == "evidence_items":
		evidenceItems.create(s)(w, r)
	case part == "references":
		references.create(s)(w, r)
	default:
		notFound(w)
	}
}

// digest is a stable opaque token for a value (file names, tokens).
func digest(parts ...any) string {
	h := sha256.Sum256([]byte(fmt.Sprint(parts...)))
	return hex.EncodeToString(h[:])
}

// --- PDFs ---

func (s *Server) generatePDFs(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badJSON(w, err)
		return
	}
	list, ok := body["credential_ids"].([]any)
	if !ok || len(list) == 0 {
		unprocessable(w, map[string][]string{"credential_ids": {"can't be blank"}})
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []int64
	for _, v := range list {
		id, err := strconv.ParseInt(str(v), 10, 64)
		if _, found := s.creds.get(id); err != nil || !found {
			notFoundCredential(w)
			return
		}
		ids = append(ids, id)
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"file": "https://s3.amazonaws.com/accredible-sandbox-pdfs/" + digest(ids)[:24] + ".zip"})
}

func (s *Server) generatePDF(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.credentialAt(w, r, "id")
	if !ok {
		return
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"file": "https://s3.amazonaws.com/accredible-sandbox-pdfs/" + strconv.FormatInt(c.id, 10) + "-" + digest(c.id, c.updatedAt)[:16] + ".pdf"})
}

// credentialRedirect sends the browser to the credential whose own
// reference (the id given on create) or Accredible id is ?id=.
func (s *Server) credentialRedirect(w http.ResponseWriter, r *http.Request) {
	ref := r.URL.Query().Get("id")
	if ref == "" {
		unprocessable(w, map[string][]string{"id": {"can't be blank"}})
		return
	}
	if iss := r.URL.Query().Get("issuer_id"); iss != "" && iss != strconv.Itoa(issuerID) {
		notFound(w)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var found *credential
	for _, idx := range s.creds.byLicense.get(ref) {
		if c := &s.creds.creds[idx]; !c.deleted {
			found = c
			break
		}
	}
	if found == nil {
		if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
			found, _ = s.creds.get(id)
		}
	}
	if found == nil {
		notFoundCredential(w)
		return
	}
	http.Redirect(w, r, "https://www.credential.net/"+strconv.FormatInt(found.id, 10), http.StatusFound)
}

// --- blockchain receipts ---

// onChain finds a credential whose group records credentials on a
// blockchain; others have no receipt (422).
func (s *Server) onChain(w http.ResponseWriter, r *http.Request) (*credential, *group, bool) {
	c, ok := s.credentialAt(w, r, "id")
	if !ok {
		return nil, nil, false
	}
	g := s.groups[c.groupID]
	if g == nil || !g.blockchain {
		unprocessable(w, "Credential is not recorded on a blockchain")
		return nil, nil, false
	}
	return c, g, true
}

func (s *Server) blockchainV1(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, g, ok := s.onChain(w, r)
	if !ok {
		return
	}
	id := strconv.FormatInt(c.id, 10)
	hash := digest("v1", c.id, c.recipientEmail, c.issuedOn)
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"credential_json_data": map[string]any{
			"@context": "https://w3id.org/blockcerts/v1", "type": "Assertion",
			"certificate": map[string]any{"name": g.courseName, "type": "Certificate", "id": "https://www.credential.net/" + id,
				"issuer": map[string]any{"name": issuerName, "url": issuerURL, "id": issuerURL + "/issuer.json", "type": "Issuer", "email": "certificates@members.example.org"}},
			"verify":    map[string]any{"signer": issuerURL + "/keys/public.pem", "attribute-signed": "uid", "type": "ECDSA(secp256k1)"},
			"assertion": map[string]any{"issuedOn": c.issuedOn, "type": "Assertion", "uid": id, "id": "https://www.credential.net/" + id},
			"recipient": map[string]any{"familyName": lastName(c.recipientName), "hashed": true, "type": "email", "identity": "sha256$" + digest(strings.ToLower(c.recipientEmail))},
		},
		"receipt": map[string]any{"@context": "https://w3id.org/chainpoint/v2", "type": "ChainpointSHA256v2", "targetHash": hash, "merkleRoot": hash,
			"proof": []any{}, "anchors": []any{map[string]any{"type": "ETHData", "sourceId": "0x" + digest("tx", c.id)}}},
	}})
}

func (s *Server) blockchainV2(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, g, ok := s.onChain(w, r)
	if !ok {
		return
	}
	id := "https://www.credential.net/" + strconv.FormatInt(c.id, 10)
	doc := map[string]any{
		"@context": []any{"https://www.w3.org/ns/credentials/v2"}, "type": []any{"VerifiableCredential", "OpenBadgeCredential"},
		"id": id, "issuer": issuerURL, "issuanceDate": c.issuedOn + "T00:00:00Z",
		"credentialSubject": map[string]any{"name": c.recipientName, "claim": map[string]any{"name": g.courseName}},
		"display":           map[string]any{"contentMediaType": "text/html", "content": "<p>" + g.courseName + "</p>"},
	}
	body := map[string]any{}
	for k, v := range doc {
		body[k] = v
	}
	body["proof"] = map[string]any{"id": id + "#proof", "type": "DataIntegrityProof", "cryptosuite": "ecdsa-rdfc-2019",
		"proofPurpose": "assertionMethod", "created": formatStamp(c.createdAt), "proofValue": "z" + digest("proof", c.id),
		"verificationMethod": issuerURL + "/keys/1"}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"chain": "ethereum", "credential_json_data": doc,
		"receipt": map[string]any{"txn_id": "0x" + digest("tx", c.id), "body": body},
	}})
}

func lastName(full string) string {
	f := strings.Fields(full)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// credentialAnalytics lists what the sandbox knows happened to a
// credential: its issue and its last change.
func (s *Server) credentialAnalytics(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.credentialAt(w, r, "id")
	if !ok {
		return
	}
	events := []any{map[string]any{"credential_id": c.id, "event": "issued", "created_at": formatStamp(c.createdAt)}}
	if c.updatedAt > c.createdAt {
		events = append(events, map[string]any{"credential_id": c.id, "event": "updated", "created_at": formatStamp(c.updatedAt)})
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"analytics": events})
}

// --- groups: clone, skill categories, analytics ---

// cloneGroup puts the body's fields on a group's copy; the copy needs a
// name of its own.
func cloneGroup(s *Server, body map[string]any, src, cp *group) any {
	cp.learningOutcomes = append([]string(nil), src.learningOutcomes...)
	if errs := applyGroup(wrapped(body, "group"), cp); len(errs) > 0 {
		return errs
	}
	if cp.name == src.name || s.groupByName(cp.name) != nil {
		return map[string][]string{"name": {"has already been taken"}}
	}
	return nil
}

var skillCategories = []map[string]any{
	{"id": 1, "name": "Business"}, {"id": 2, "name": "Health Care"}, {"id": 3, "name": "Information Technology"},
	{"id": 4, "name": "Leadership"}, {"id": 5, "name": "Professional Development"},
}

func (s *Server) skillCategories(w http.ResponseWriter, _ *http.Request) {
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"skill_categories": skillCategories})
}

// analytics counts credentials issued per group between two dates
// (issued_on, inclusive), a page of groups at a time.
func (s *Server) analytics(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, size, err := pageParams(queryGetter(q))
	if err != nil {
		unprocessable(w, err.Error())
		return
	}
	from, to := q.Get("start_date"), q.Get("end_date")
	for _, d := range []string{from, to} {
		if d != "" && !isDate(d) {
			unprocessable(w, "start_date and end_date must be dates in the format YYYY-MM-DD")
			return
		}
	}
	groupID, _ := strconv.ParseInt(q.Get("group_id"), 10, 64)
	depID, _ := strconv.ParseInt(q.Get("department_id"), 10, 64)
	s.mu.RLock()
	defer s.mu.RUnlock()
	type row struct {
		group                  *group
		issued, published, exp int
	}
	rows := map[int64]*row{}
	for gid, idxs := range s.creds.byGroup {
		g := s.groups[gid]
		if g == nil || (groupID != 0 && gid != groupID) || (depID != 0 && g.departmentID != depID) {
			continue
		}
		rw := &row{group: g}
		for _, idx := range idxs {
			c := &s.creds.creds[idx]
			if c.deleted || (from != "" && c.issuedOn < from) || (to != "" && c.issuedOn > to) {
				continue
			}
			rw.issued++
			if c.approve {
				rw.published++
			}
			if c.expiredOn != "" {
				rw.exp++
			}
		}
		rows[gid] = rw
	}
	writePage(w, "analytics", rows, page, size, func(int64, *row) bool { return true }, func(rw *row) map[string]any {
		return map[string]any{"group_id": rw.group.id, "group_name": rw.group.name, "department_id": rw.group.departmentID,
			"credentials_issued": rw.issued, "credentials_published": rw.published, "credentials_with_expiry": rw.exp}
	})
}

// --- collections ---

type collection struct {
	id                int64
	name, description string
	public            bool
	groups            []int64
	createdAt         int64
}

func (s *Server) renderCollection(c *collection) map[string]any {
	gs := make([]any, 0, len(c.groups))
	for _, id := range c.groups {
		gs = append(gs, map[string]any{"id": id})
	}
	return map[string]any{"id": strconv.FormatInt(c.id, 10), "name": c.name, "description": c.description,
		"organization_id": issuerID, "public": c.public, "groups_count": len(c.groups), "groups": gs}
}

var collections = resource[collection]{
	key: "collection", idParam: "collection_id",
	table:   func(s *Server) map[int64]*collection { return s.collections },
	blank:   func() *collection { return &collection{} },
	apply:   nil, // set in init: it needs the server's groups
	render:  func(s *Server, c *collection) any { return s.renderCollection(c) },
	missing: notFound,
	created: func(c *collection, id, now int64) { c.id, c.createdAt = id, now },
}

func init() {
	collections.apply = applyCollection
	collections.createConflict = func(s *Server, c *collection) any {
		for _, id := range c.groups {
			if s.groups[id] == nil {
				return map[string][]string{"groups": {fmt.Sprintf("group %d does not exist", id)}}
			}
		}
		return nil
	}
}

func applyCollection(in map[string]any, c *collection) map[string][]string {
	if v, ok := in["name"]; ok {
		c.name = str(v)
	}
	if v, ok := in["description"]; ok {
		c.description = str(v)
	}
	if v, ok := in["public"].(bool); ok {
		c.public = v
	}
	if list, ok := in["groups"].([]any); ok {
		c.groups = nil
		for _, g := range list {
			if m, ok := g.(map[string]any); ok {
				if id, ok := argInt(m, "id"); ok {
					c.groups = append(c.groups, id)
				}
			}
		}
	}
	if strings.TrimSpace(c.name) == "" {
		return map[string][]string{"name": {"can't be blank"}}
	}
	return nil
}

// idSet reads a list of ids, as numbers or strings, skipping what is not
// one.
func idSet(v any) map[int64]bool {
	set := map[int64]bool{}
	list, _ := v.([]any)
	for _, x := range list {
		if id, err := strconv.ParseInt(str(x), 10, 64); err == nil {
			set[id] = true
		}
	}
	return set
}

func (s *Server) searchCollections(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badJSON(w, err)
		return
	}
	q, _ := body["query"].(map[string]any)
	meta, _ := body["meta"].(map[string]any)
	page, size := 1, 50
	if n, err := strconv.Atoi(str(meta["page_number"])); err == nil && n > 0 {
		page = n
	}
	if n, err := strconv.Atoi(str(meta["per_page"])); err == nil && n > 0 {
		size = min(n, 100)
	}
	want, excluded := idSet(q["ids"]), idSet(q["exclusion_list"])
	name := strings.ToLower(str(q["name"]))
	public, hasPublic := q["public"].(bool)
	s.mu.RLock()
	defer s.mu.RUnlock()
	out, pm := pageItems(s.collections, page, size, func(id int64, c *collection) bool {
		return (len(want) == 0 || want[id]) && !excluded[id] && (name == "" || strings.Contains(strings.ToLower(c.name), name)) && (!hasPublic || c.public == public)
	}, s.renderCollection)
	// This meta documents its page numbers as numbers, never null: a
	// missing neighbour is left out.
	m := map[string]any{"current_page": pm.CurrentPage, "total_pages": pm.TotalPages, "total_count": pm.TotalCount, "page_size": size}
	if pm.NextPage != nil {
		m["next_page"] = *pm.NextPage
	}
	if pm.PrevPage != nil {
		m["prev_page"] = *pm.PrevPage
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"collections": out, "meta": m})
}

// --- designs: copy, preview, the embedded designers ---

// copyDesign names a design's copy after it and may move it to another
// department.
func copyDesign(s *Server, body map[string]any, src, cp *design) any {
	if dep, ok := argInt(wrapped(body, "design"), "department_id"); ok {
		if s.departments[dep] == nil {
			return map[string][]string{"department_id": {"does not exist"}}
		}
		cp.departmentID = dep
	}
	cp.name = src.name + " (copy)"
	return nil
}

func (s *Server) previewDesign(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badJSON(w, err)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, _, ok := designs.lookup(w, r, s)
	if !ok {
		return
	}
	var vals []any
	for _, k := range slices.Sorted(maps.Keys(body)) {
		vals = append(vals, k, body[k])
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"link": apiHost + "/v1/frontend/design_preview/" + strconv.FormatInt(id, 10) + "?token=" + digest(vals...)[:32]})
}

// initializeDesigner opens the embedded designer on a design of the kind,
// making a blank one when none is given.
func (s *Server) initializeDesigner(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			badJSON(w, err)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		dep, hasDep := argInt(body, "department_id")
		if hasDep && s.departments[dep] == nil {
			unprocessable(w, map[string][]string{"department_id": {"does not exist"}})
			return
		}
		id, ok := argInt(body, "design_id")
		if ok {
			d := s.designs[id]
			if d == nil {
				notFound(w)
				return
			}
			if d.kind != kind {
				unprocessable(w, map[string][]string{"design_id": {"is not a " + kind + " design"}})
				return
			}
		} else {
			d := &design{id: s.newID(), name: "Untitled " + kind, kind: kind, orientation: "landscape", size: "a4",
				departmentID: dep, createdAt: s.now().UnixMilli()}
			s.designs[d.id] = d
			id = d.id
		}
		sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"token": digest("designer", kind, id, s.now().UnixNano())[:40], "design_id": id})
	}
}

// --- custom attribute keys ---

type attributeKey struct {
	id, departmentID int64
	name, kind       string
}

var attributeKinds = []string{"text", "date", "image", "url", "number"}

var attributeKeys = resource[attributeKey]{
	key: "attribute_key", idParam: "attribute_key_id",
	table: func(s *Server) map[int64]*attributeKey { return s.attributeKeys },
	blank: func() *attributeKey { return &attributeKey{} },
	apply: func(in map[string]any, k *attributeKey) map[string][]string {
		k.name, k.kind = str(in["name"]), str(in["kind"])
		k.departmentID, _ = argInt(in, "department_id")
		errs := map[string][]string{}
		if strings.TrimSpace(k.name) == "" {
			errs["name"] = []string{"can't be blank"}
		}
		if !contains(attributeKinds, k.kind) {
			errs["kind"] = []string{"is not included in the list"}
		}
		if k.departmentID == 0 {
			errs["department_id"] = []string{"can't be blank"}
		}
		return errs
	},
	render:  func(_ *Server, k *attributeKey) any { return renderAttributeKey(k) },
	missing: notFound,
	created: func(k *attributeKey, id, _ int64) { k.id = id },
	createConflict: func(s *Server, k *attributeKey) any {
		if s.departments[k.departmentID] == nil {
			return map[string][]string{"department_id": {"does not exist"}}
		}
		for _, o := range s.attributeKeys {
			if o.departmentID == k.departmentID && strings.EqualFold(o.name, k.name) {
				return map[string][]string{"name": {"has already been taken"}}
			}
		}
		return nil
	},
}

func renderAttributeKey(k *attributeKey) map[string]any {
	return map[string]any{"id": k.id, "name": k.name, "kind": k.kind, "department_id": k.departmentID}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func (s *Server) searchAttributeKeys(w http.ResponseWriter, r *http.Request) {
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
	name, kind := strings.ToLower(str(body["name"])), str(body["kind"])
	dep, _ := argInt(body, "department_id")
	s.mu.RLock()
	defer s.mu.RUnlock()
	writePage(w, "attribute_keys", s.attributeKeys, page, size, func(_ int64, k *attributeKey) bool {
		return (name == "" || strings.Contains(strings.ToLower(k.name), name)) && (kind == "" || k.kind == kind) && (dep == 0 || k.departmentID == dep)
	}, renderAttributeKey)
}

// --- data exports ---

type dataExport struct {
	id, departmentID int64
	entity           string
	years            []int
}

var exportEntities = []string{"credentials", "groups", "analytics"}

func (s *Server) renderExport(e *dataExport) map[string]any {
	urls := make([]any, 0, len(e.years))
	for _, y := range e.years {
		urls = append(urls, map[string]any{"status": "completed", "year": y,
			"url": fmt.Sprintf("https://s3.amazonaws.com/accredible-sandbox-exports/%d/%s-%d.csv", e.id, e.entity, y)})
	}
	return map[string]any{"id": e.id, "department_id": e.departmentID, "entity": e.entity, "status": "completed", "urls": urls}
}

// createDataExport exports one entity of a department, a file per year
// of credentials issued; the sandbox finishes it at once.
func (s *Server) createDataExport(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badJSON(w, err)
		return
	}
	in := wrapped(body, "data_export")
	e := &dataExport{entity: str(in["entity"])}
	e.departmentID, _ = argInt(in, "department_id")
	errs := map[string][]string{}
	if !contains(exportEntities, e.entity) {
		errs["entity"] = []string{"is not included in the list"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.departments[e.departmentID] == nil {
		errs["department_id"] = []string{"does not exist"}
	}
	if len(errs) > 0 {
		unprocessable(w, errs)
		return
	}
	years := map[int]bool{s.now().UTC().Year(): true}
	for i := range s.creds.creds {
		c := &s.creds.creds[i]
		if g := s.groups[c.groupID]; !c.deleted && g != nil && g.departmentID == e.departmentID && len(c.issuedOn) >= 4 {
			if y, err := strconv.Atoi(c.issuedOn[:4]); err == nil {
				years[y] = true
			}
		}
	}
	for y := range years {
		e.years = append(e.years, y)
	}
	sort.Ints(e.years)
	e.id = s.newID()
	s.exports[e.id] = e
	sandboxkit.WriteJSON(w, http.StatusCreated, s.renderExport(e))
}

func (s *Server) listDataExports(w http.ResponseWriter, _ *http.Request) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []any{}
	for _, id := range sortedIDs(s.exports) {
		out = append(out, s.renderExport(s.exports[id]))
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"data_exports": out})
}

func (s *Server) getDataExport(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, _ := pathID(r, "id")
	e := s.exports[id]
	if e == nil {
		notFound(w)
		return
	}
	sandboxkit.WriteJSON(w, http.StatusOK, s.renderExport(e))
}

// --- team members ---

type permissions struct {
	departmentID                                         int64
	designs, emails, credentialAttributes, analytics, st bool
	role                                                 string
	groups                                               []int64 // nil: every group
}

type teamMember struct {
	id          int64
	name, email string
	perms       []permissions
}

var roles = []string{"admin", "editor", "viewer"}

var teamMembers = resource[teamMember]{
	key: "team_member", idParam: "id",
	table:   func(s *Server) map[int64]*teamMember { return s.teamMembers },
	blank:   func() *teamMember { return &teamMember{} },
	apply:   applyTeamMember,
	render:  func(_ *Server, m *teamMember) any { return renderTeamMember(m) },
	missing: notFound,
	created: func(m *teamMember, id, _ int64) { m.id = id },
	createConflict: func(s *Server, m *teamMember) any {
		for _, o := range s.teamMembers {
			if strings.EqualFold(o.email, m.email) {
				return map[string][]string{"email": {"has already been taken"}}
			}
		}
		for _, p := range m.perms {
			if s.departments[p.departmentID] == nil {
				return map[string][]string{"department_permissions": {fmt.Sprintf("department %d does not exist", p.departmentID)}}
			}
		}
		return nil
	},
}

func applyTeamMember(in map[string]any, m *teamMember) map[string][]string {
	if v, ok := in["name"]; ok {
		m.name = str(v)
	}
	if v, ok := in["email"]; ok {
		m.email = strings.TrimSpace(str(v))
	}
	errs := map[string][]string{}
	if list, ok := in["department_permissions"].([]any); ok {
		m.perms = nil
		for i, it := range list {
			dp, _ := it.(map[string]any)
			pm, _ := dp["permissions"].(map[string]any)
			dep, ok := argInt(dp, "department_id")
			if !ok || pm == nil {
				errs["department_permissions"] = append(errs["department_permissions"], fmt.Sprintf("item %d needs department_id and permissions", i))
				continue
			}
			p := permissions{departmentID: dep, role: str(pm["role"])}
			p.designs, _ = pm["designs"].(bool)
			p.emails, _ = pm["emails"].(bool)
			p.credentialAttributes, _ = pm["credential_attributes"].(bool)
			p.analytics, _ = pm["analytics"].(bool)
			p.st, _ = pm["settings"].(bool)
			if gs, ok := pm["groups"].([]any); ok {
				p.groups = []int64{}
				for _, g := range gs {
					if n, err := strconv.ParseInt(str(g), 10, 64); err == nil {
						p.groups = append(p.groups, n)
					}
				}
			}
			if !contains(roles, p.role) {
				errs["department_permissions"] = append(errs["department_permissions"], fmt.Sprintf("item %d: role is not included in the list", i))
			}
			m.perms = append(m.perms, p)
		}
	}
	if strings.TrimSpace(m.name) == "" {
		errs["name"] = []string{"can't be blank"}
	}
	if !strings.Contains(m.email, "@") {
		errs["email"] = []string{"is invalid"}
	}
	return errs
}

func renderTeamMember(m *teamMember) map[string]any {
	perms := make([]any, 0, len(m.perms))
	for _, p := range m.perms {
		var groups any
		if p.groups != nil {
			groups = p.groups
		}
		perms = append(perms, map[string]any{"department_id": p.departmentID, "permissions": map[string]any{
			"designs": p.designs, "emails": p.emails, "credential_attributes": p.credentialAttributes,
			"analytics": p.analytics, "settings": p.st, "role": p.role, "groups": groups}})
	}
	return map[string]any{"id": m.id, "name": m.name, "email": m.email, "department_permissions": perms}
}

// --- SSO ---

// ssoLink signs a recipient in to their credential (or wallet): the
// credential is found by id, recipient id or email.
func (s *Server) ssoLink(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badJSON(w, err)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var found *credential
	if id, err := strconv.ParseInt(str(body["credential_id"]), 10, 64); err == nil {
		found, _ = s.creds.get(id)
	}
	for _, key := range []struct {
		idx multiIndex
		v   string
	}{{s.creds.byRecipient, str(body["recipient_id"])}, {s.creds.byEmail, strings.ToLower(str(body["recipient_email"]))}} {
		if found != nil || key.v == "" {
			continue
		}
		for _, idx := range key.idx.get(key.v) {
			if c := &s.creds.creds[idx]; !c.deleted {
				found = c
				break
			}
		}
	}
	if found == nil {
		notFoundCredential(w)
		return
	}
	target := "https://www.credential.net/" + strconv.FormatInt(found.id, 10)
	if wallet, _ := body["wallet_view"].(bool); wallet {
		target = "https://www.credential.net/wallet"
	}
	token := digest("sso", found.id, s.now().UnixNano())[:40]
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"link": target + "?sso_token=" + token + "&expires=" + strconv.FormatInt(s.now().Add(5*time.Minute).Unix(), 10)})
}
