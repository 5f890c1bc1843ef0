package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// Error bodies, each where the real API uses it.
func notFoundCredential(w http.ResponseWriter) {
	sandboxkit.WriteJSON(w, http.StatusNotFound, map[string]any{"errors": "Doesn't exist"})
}

func notFound(w http.ResponseWriter) {
	sandboxkit.WriteJSON(w, http.StatusNotFound, map[string]any{"error": "Not found"})
}

func unprocessable(w http.ResponseWriter, errs any) {
	sandboxkit.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": errs})
}

func invalidSearch(w http.ResponseWriter, msg string) {
	sandboxkit.WriteJSON(w, http.StatusBadRequest, map[string]any{"code": 400, "message": msg, "status": "invalid_search_query", "errors": map[string]any{}})
}

// readBody decodes a JSON object body; an empty body is an empty object.
func readBody(r *http.Request) (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 16<<20))
	if err := dec.Decode(&m); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]any{}, nil
		}
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

func badJSON(w http.ResponseWriter, err error) {
	sandboxkit.WriteJSON(w, http.StatusBadRequest, map[string]any{"errors": "Invalid JSON: " + err.Error()})
}

func pathID(r *http.Request, name string) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	return id, err == nil
}

// invalidCredential is what the API answers about a credential it will
// not store: a message (v1) and the bulk v2 details.
type invalidCredential struct {
	v1      any // the v1 `errors` value
	details []map[string]any
}

// applyCredential copies the input fields onto c. create requires the
// recipient and the group. The caller holds s.mu.
func (s *Server) applyCredential(in map[string]any, c *credential, create bool) *invalidCredential {
	fieldErrs := map[string][]string{}
	var details []map[string]any
	invalid := func(field, msg string) {
		fieldErrs[field] = append(fieldErrs[field], msg)
		details = append(details, map[string]any{"property": field, "message": msg})
	}
	blank := func(field string) { invalid(field, "can't be blank") }
	rec, hasRec := in["recipient"].(map[string]any)
	if create && !hasRec {
		return &invalidCredential{v1: "Can not create credential without recipient data",
			details: []map[string]any{{"property": "recipient", "message": "can't be blank"}}}
	}
	if hasRec {
		if v, ok := rec["name"]; ok || create {
			c.recipientName = str(v)
			if strings.TrimSpace(c.recipientName) == "" {
				blank("recipient.name")
			}
		}
		if v, ok := rec["email"]; ok || create {
			c.recipientEmail = strings.TrimSpace(str(v))
			if c.recipientEmail == "" {
				blank("recipient.email")
			} else if !strings.Contains(c.recipientEmail, "@") {
				invalid("recipient.email", "is invalid")
			}
		}
		if v, ok := rec["phone_number"]; ok {
			c.mx().recipientPhone = str(v)
		}
		if v, ok := rec["id"]; ok {
			c.recipientID = scalarOrEmpty(v)
		}
		if v, ok := rec["meta_data"]; ok && v != nil {
			if m, ok := stringPairs(v); ok {
				c.mx().recipientMeta = m
			} else {
				invalid("recipient.meta_data", "must be key-value strings")
			}
		}
	}
	groupGiven := false
	if v, ok := in["group_id"]; ok && v != nil {
		groupGiven = true
		id, err := strconv.ParseInt(scalarString(v), 10, 64)
		if g := s.groups[id]; err == nil && g != nil {
			c.groupID = id
		} else {
			return &invalidCredential{v1: "Invalid Group", details: []map[string]any{{"property": "group_id", "message": "is invalid"}}}
		}
	} else if name, ok := in["group_name"].(string); ok && name != "" {
		groupGiven = true
		g := s.groupByName(name)
		if g == nil {
			return &invalidCredential{v1: "Invalid Group", details: []map[string]any{{"property": "group_name", "message": "is invalid"}}}
		}
		c.groupID = g.id
	}
	if create && !groupGiven {
		blank("group_id")
	}
	g := s.groups[c.groupID]
	if v, ok := in["name"]; ok {
		c.name = str(v)
	} else if create && g != nil {
		c.name = g.courseName
	}
	if v, ok := in["description"]; ok {
		c.description = str(v)
	} else if create && g != nil {
		c.description = g.courseDescription
	}
	for _, d := range []struct {
		key string
		dst *string
		nul bool
	}{{"issued_on", &c.issuedOn, false}, {"expired_on", &c.expiredOn, true}} {
		v, ok := in[d.key]
		if !ok {
			continue
		}
		if v == nil && d.nul {
			*d.dst = ""
			continue
		}
		sv, ok := documentedDate(str(v))
		if !ok {
			invalid(d.key, "is not a valid date")
			continue
		}
		*d.dst = sv
	}
	if v, ok := in["id"]; ok {
		c.mx().licenseID = scalarOrEmpty(v)
	}
	// grade is not a field of the document's create or update bodies (it is
	// read-only: the dashboard sets it, as Mutate does), and private is a
	// create field the update body does not take. A field the document does
	// not define for the call is not stored: what the real API does with
	// one is not documented, and a test that counts on it must fail here.
	// The document types these as booleans: another value is refused
	// [design]; null leaves complete, approve and private as they are and
	// unsets allow_supplemental_* (answered null, Accredible's default).
	bools := map[string]*bool{"complete": &c.complete, "approve": &c.approve}
	if create {
		bools["private"] = &c.private
	}
	for key, dst := range bools {
		switch v := in[key].(type) {
		case bool:
			*dst = v
		case nil:
		default:
			invalid(key, "is not a boolean")
		}
	}
	for _, key := range []string{"allow_supplemental_evidence", "allow_supplemental_references"} {
		v, ok := in[key]
		if !ok {
			continue
		}
		dst := &c.mx().allowEvidence
		if key == "allow_supplemental_references" {
			dst = &c.mx().allowReferences
		}
		switch v := v.(type) {
		case bool:
			*dst = optBoolOf(v)
		case nil:
			*dst = unset
		default:
			invalid(key, "is not a boolean")
		}
	}
	if v, ok := in["custom_attributes"].(map[string]any); ok {
		c.mx().customAttributes = v
	}
	if v, ok := in["meta_data"]; ok && v != nil {
		if m, ok := stringPairs(v); ok {
			c.mx().metaData = m
		} else {
			invalid("meta_data", "must be key-value strings")
		}
	}
	// "Evidence to add", "References to add": an update adds them to the
	// credential's own (a create starts with none).
	if items, ok := in["evidence_items"]; ok && items != nil {
		list, _ := items.([]any)
		if list == nil {
			invalid("evidence_items", "is invalid")
		}
		for _, it := range list {
			m, _ := it.(map[string]any)
			var e evidenceItem
			applyEvidence(m, &e)
			for field, msgs := range validEvidence(&e) {
				invalid("evidence_items."+field, msgs[0])
			}
			e.id = s.newID()
			c.mx().evidence = append(c.x().evidence, e)
		}
	}
	if items, ok := in["references"]; ok && items != nil {
		list, _ := items.([]any)
		if list == nil {
			invalid("references", "is invalid")
		}
		for _, it := range list {
			m, _ := it.(map[string]any)
			var r reference
			applyReference(m, &r)
			for field, msgs := range validReference(&r) {
				invalid("references."+field, msgs[0])
			}
			r.id = s.newID()
			c.mx().references = append(c.x().references, r)
		}
	}
	if len(fieldErrs) > 0 {
		return &invalidCredential{v1: fieldErrs, details: details}
	}
	return nil
}

// stringPairs reads a meta_data object: "key-value strings", as the
// document describes it. Anything else is refused [design]: what
// Accredible does with a number or an object there is not documented.
func stringPairs(v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	for _, e := range m {
		if _, ok := e.(string); !ok {
			return nil, false
		}
	}
	return m, true
}

// documentedDate reads a date of the v1 bodies and filters: "Format:
// YYYY-MM-DD (DD/MM/YYYY also works but is deprecated)". It returns it as
// YYYY-MM-DD, the form the answers show.
func documentedDate(s string) (string, bool) {
	if _, err := time.Parse("2006-01-02", s); err == nil {
		return s, true
	}
	if t, err := time.Parse("02/01/2006", s); err == nil {
		return t.Format("2006-01-02"), true
	}
	return "", false
}

func str(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return scalarString(v)
	}
}

func scalarOrEmpty(v any) string {
	if v == nil {
		return ""
	}
	return scalarString(v)
}

func (s *Server) groupByName(name string) *group {
	for _, g := range s.groups {
		if g.name == name {
			return g
		}
	}
	return nil
}

// newCredential validates and issues one credential. The caller holds s.mu.
func (s *Server) newCredential(in map[string]any, now time.Time) (*credential, *invalidCredential) {
	c := credential{approve: true, complete: true, issuedOn: now.Format("2006-01-02")}
	if bad := s.applyCredential(in, &c, true); bad != nil {
		return nil, bad
	}
	return s.issue(c, now), nil
}

func (s *Server) createCredential(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badJSON(w, err)
		return
	}
	in, ok := body["credential"].(map[string]any)
	if !ok {
		unprocessable(w, "Can not create credential without recipient data")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, bad := s.newCredential(in, s.now())
	if bad != nil {
		unprocessable(w, bad.v1)
		return
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"credential": s.render(c, false)})
}

func (s *Server) getCredential(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.credentialAt(w, r, "id")
	if !ok {
		return
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"credential": s.render(c, false)})
}

// updateCredential is a partial update: only the fields sent change.
func (s *Server) updateCredential(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badJSON(w, err)
		return
	}
	in, _ := body["credential"].(map[string]any)
	if in == nil {
		in = map[string]any{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.credentialAt(w, r, "id")
	if !ok {
		return
	}
	draft := *c
	draft.extra = c.extra.clone()
	wasApproved := c.approve
	if bad := s.applyCredential(in, &draft, false); bad != nil {
		unprocessable(w, bad.v1)
		return
	}
	if draft.approve && !wasApproved {
		// Publishing costs a credit; without one it stays unpublished.
		if s.credits > 0 {
			s.credits--
		} else {
			draft.approve = false
		}
	}
	s.creds.update(c, s.now(), func(c *credential) { *c = draft })
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"credential": s.render(c, false)})
}

func (s *Server) deleteCredential(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.credentialAt(w, r, "id")
	if !ok {
		return
	}
	out := s.render(c, false)
	s.creds.remove(c)
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"credential": out})
}

// bulkCreateV1 creates up to 100 credentials; any invalid one fails the
// whole request, as a v1 create would.
func (s *Server) bulkCreateV1(w http.ResponseWriter, r *http.Request) {
	items, ok := s.bulkItems(w, r, 100)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		var probe credential
		if bad := s.applyCredentialDry(it, &probe); bad != nil {
			unprocessable(w, bad.v1)
			return
		}
	}
	now := s.now()
	out := make([]credentialJSON, 0, len(items))
	for _, it := range items {
		c, _ := s.newCredential(it, now)
		out = append(out, s.render(c, false))
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"credentials": out})
}

// applyCredentialDry validates without allocating ids or storing.
func (s *Server) applyCredentialDry(in map[string]any, c *credential) *invalidCredential {
	saved := s.nextID
	defer func() { s.nextID = saved }()
	return s.applyCredential(in, c, true)
}

func (s *Server) bulkItems(w http.ResponseWriter, r *http.Request, max int) ([]map[string]any, bool) {
	body, err := readBody(r)
	if err != nil {
		badJSON(w, err)
		return nil, false
	}
	list, ok := body["credentials"].([]any)
	if !ok || len(list) == 0 {
		unprocessable(w, map[string][]string{"credentials": {"can't be blank"}})
		return nil, false
	}
	if len(list) > max {
		unprocessable(w, fmt.Sprintf("Each request can accommodate up to %d credentials", max))
		return nil, false
	}
	items := make([]map[string]any, len(list))
	for i, it := range list {
		m, _ := it.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		if inner, ok := m["credential"].(map[string]any); ok {
			m = inner
		}
		items[i] = m
	}
	return items, true
}

// bulkCreateV2 creates up to 30 credentials with per-item results: 200
// when all were created and published, 207 when mixed, 422 when none was
// created. An item's error is under "errors" with details
// {property, message}, as the endpoint's 207 and 422 schemas and examples
// show (the document's overview writes "error" and {property, reason}).
func (s *Server) bulkCreateV2(w http.ResponseWriter, r *http.Request) {
	items, ok := s.bulkItems(w, r, 30)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	results := make([]map[string]any, 0, len(items))
	created, clean := 0, 0
	for _, it := range items {
		wantPublished := true
		if v, ok := it["approve"].(bool); ok {
			wantPublished = v
		}
		c, bad := s.newCredential(it, now)
		if bad != nil {
			results = append(results, map[string]any{"errors": map[string]any{
				"code": "credential_invalid", "message": "The credential is not valid", "details": bad.details}})
			continue
		}
		created++
		res := map[string]any{"credential": s.render(c, true)}
		if wantPublished && !c.approve {
			res["errors"] = map[string]any{"code": "insufficient_credits", "message": "The credential was created but not published."}
		} else {
			clean++
		}
		results = append(results, res)
	}
	status := http.StatusMultiStatus
	switch {
	case clean == len(items):
		status = http.StatusOK
	case created == 0:
		status = http.StatusUnprocessableEntity
	}
	sandboxkit.WriteJSON(w, status, map[string]any{"results": results})
}

// searchV2 is POST /v2/credentials/search.
func (s *Server) searchV2(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		invalidSearch(w, "Invalid JSON")
		return
	}
	q, ok := body["query"].(map[string]any)
	if !ok {
		invalidSearch(w, "query is required")
		return
	}
	preds, err := parseQuery(q, !s.allowUndocumented)
	if err != nil {
		invalidSearch(w, err.Error())
		return
	}
	sortKey, desc := "id", false
	if so, ok := body["sort"].(map[string]any); ok {
		if len(so) > 1 {
			invalidSearch(w, "Sort by one field at a time")
			return
		}
		for k, v := range so {
			if !sortKeys[k] && (!s.allowUndocumented || !undocumentedSortKeys[k]) {
				invalidSearch(w, "Sort field "+k+" is not supported")
				return
			}
			order, _ := v.(string)
			if order != "asc" && order != "desc" {
				invalidSearch(w, fmt.Sprintf("Sort order %v is not supported", v))
				return
			}
			sortKey, desc = k, order == "desc"
		}
	}
	from, size, cursor := 0, 50, false
	if pg, ok := body["page"].(map[string]any); ok {
		if v, ok := pg["size"]; ok {
			n, ok := v.(float64)
			if !ok || n < 1 || n > 1000 || n != float64(int(n)) {
				invalidSearch(w, "page.size must be between 1 and 1000")
				return
			}
			size = int(n)
		}
		_, hasFrom := pg["from"]
		if c, ok := pg["cursor"].(string); ok && c != "" {
			if hasFrom {
				invalidSearch(w, "page.from cannot be used together with page.cursor")
				return
			}
			if from, err = decodeCursor(c); err != nil {
				invalidSearch(w, err.Error())
				return
			}
			cursor = true
		} else if hasFrom {
			n, ok := pg["from"].(float64)
			if !ok || n < 0 || n != float64(int(n)) {
				invalidSearch(w, "page.from must be a whole number, 0 or more")
				return
			}
			from = int(n)
		}
	}
	if !cursor && from+size > 10000 {
		invalidSearch(w, "Offset-based pagination is limited to the first 10,000 results; use page.cursor to go further")
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	page, count := s.creds.search(preds, sortKey, desc, from, size, s.groupName)
	items := make([]flatJSON, 0, len(page))
	for _, idx := range page {
		items = append(items, s.renderFlat(&s.creds.creds[idx]))
	}
	meta := map[string]any{"count": count, "from": from, "size": size}
	if next := from + len(page); next < count {
		meta["cursor"] = encodeCursor(next)
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"credentials": items, "meta": meta})
}

func (s *Server) groupName(id int64) string {
	if g := s.groups[id]; g != nil {
		return g.name
	}
	return ""
}

// v1Filters maps the v1 search and all_credentials filters onto v2
// predicates. get reads one filter by name.
func v1Filters(get func(string) (any, bool)) ([]predicate, error) {
	q := map[string]any{}
	pairs := []struct{ v1, v2 string }{
		{"group_id", "group.id"}, {"email", "recipient_email"}, {"recipient.email", "recipient_email"},
		{"recipient_id", "recipient_id"}, {"recipient.id", "recipient_id"}, {"recipient.name", "recipient_name"},
		{"license_id", "license_id"}, {"start_date", "issued_on[gte]"}, {"end_date", "issued_on[lte]"},
		{"start_updated_date", "updated_at[gte]"}, {"end_updated_date", "updated_at[lte]"},
	}
	for _, p := range pairs {
		if v, ok := get(p.v1); ok && v != nil && v != "" {
			if strings.Contains(p.v2, "[") {
				// The v1 date filters take YYYY-MM-DD or the deprecated
				// DD/MM/YYYY.
				d, ok := documentedDate(scalarString(v))
				if !ok {
					return nil, badQuery("%s must be a date, YYYY-MM-DD or DD/MM/YYYY", p.v1)
				}
				v = d
			}
			q[p.v2] = v
		}
	}
	if v, ok := get("meta_data"); ok {
		if m, ok := v.(map[string]any); ok {
			q["meta_data"] = m
		}
	}
	return parseQuery(q, false)
}

func (s *Server) listV1(w http.ResponseWriter, preds []predicate, page, size int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	items, count := s.creds.search(preds, "id", false, (page-1)*size, size, s.groupName)
	_, _, meta := pageOf(count, page, size)
	out := make([]credentialJSON, 0, len(items))
	for _, idx := range items {
		out = append(out, s.render(&s.creds.creds[idx], true))
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{"credentials": out, "meta": meta})
}

// pageParams reads page (1-based, default 1) and page_size (default 50,
// at most 100).
func pageParams(get func(string) (any, bool)) (int, int, error) {
	page, size := 1, 50
	for _, p := range []struct {
		name string
		dst  *int
		max  int
	}{{"page", &page, 1 << 30}, {"page_size", &size, 100}} {
		v, ok := get(p.name)
		if !ok || v == nil || v == "" {
			continue
		}
		n, err := strconv.Atoi(scalarString(v))
		if err != nil || n < 1 || n > p.max {
			return 0, 0, fmt.Errorf("%s must be a whole number from 1 to %d", p.name, p.max)
		}
		*p.dst = n
	}
	return page, size, nil
}

func (s *Server) searchV1(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badJSON(w, err)
		return
	}
	get := func(k string) (any, bool) {
		if v, ok := body[k]; ok {
			return v, true
		}
		// recipient.email may come nested: {"recipient":{"email":...}}.
		if rest, ok := strings.CutPrefix(k, "recipient."); ok {
			if rec, ok := body["recipient"].(map[string]any); ok {
				v, ok := rec[rest]
				return v, ok
			}
		}
		return nil, false
	}
	s.serveV1(w, get)
}

func (s *Server) allCredentials(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.serveV1(w, queryGetter(q))
}

func queryGetter(q url.Values) func(string) (any, bool) {
	return func(k string) (any, bool) {
		if !q.Has(k) {
			return nil, false
		}
		return q.Get(k), true
	}
}

func (s *Server) serveV1(w http.ResponseWriter, get func(string) (any, bool)) {
	preds, err := v1Filters(get)
	if err != nil {
		var se *searchError
		if errors.As(err, &se) {
			unprocessable(w, se.msg)
			return
		}
		unprocessable(w, err.Error())
		return
	}
	page, size, err := pageParams(get)
	if err != nil {
		unprocessable(w, err.Error())
		return
	}
	s.listV1(w, preds, page, size)
}

// sortedIDs returns map keys in order, for stable listings.
func sortedIDs[V any](m map[int64]V) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
