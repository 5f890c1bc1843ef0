package sandbox

import (
	"bufio"
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Users are served in creation order unless sort=dateUpdated (our
// extension for incremental pollers) asks for the order of last change.
const (
	searchDefaultLimit = 25
	searchMaxLimit     = 100
)

// checkLocation answers 400 when a request names another location or
// company than the demo one, as GoHighLevel does for a token without
// access.
func checkScope(w http.ResponseWriter, key, got, want string) bool {
	if got != "" && got != want {
		writeError(w, http.StatusBadRequest, "The token does not have access to this "+strings.TrimSuffix(key, "Id")+".")
		return false
	}
	return true
}

// listUsers is GET /users/?locationId=: every user of the location, no
// paging.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	loc := r.URL.Query().Get("locationId")
	if loc == "" {
		writeInvalid(w, []string{"locationId should not be empty"})
		return
	}
	s.mu.RLock()
	st := s.locationStore(w, r, loc)
	s.mu.RUnlock()
	if st == nil {
		return
	}
	// Streamed in batches: with a million members the answer is large,
	// and neither it nor the lock should be held whole.
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.WriteString(`{"users":[`)
	enc := json.NewEncoder(bw)
	batch := make([]userJSON, 0, 1000)
	first := true
	for pos := 0; ; {
		batch = batch[:0]
		s.mu.RLock()
		for ; pos < len(st.users) && len(batch) < cap(batch); pos++ {
			if u := &st.users[pos]; !u.deleted {
				batch = append(batch, st.wire(u))
			}
		}
		done := pos >= len(st.users)
		s.mu.RUnlock()
		for i := range batch {
			if !first {
				_ = bw.WriteByte(',')
			}
			first = false
			_ = enc.Encode(&batch[i]) // Encode's newline is JSON whitespace
		}
		if done {
			break
		}
	}
	_, _ = bw.WriteString("]}\n")
	_ = bw.Flush()
}

// userFilter is a search's conditions.
type userFilter struct {
	query        string
	ids          map[id20]bool
	status       int // -1: any
	role, typ    string
	updatedAfter int64
}

func (f *userFilter) match(u *user) bool {
	if u.deleted {
		return false
	}
	if f.status >= 0 && int(u.status) != f.status {
		return false
	}
	if f.updatedAfter != 0 && u.dateUpdated < f.updatedAfter {
		return false
	}
	if f.ids != nil && !f.ids[u.id] {
		return false
	}
	if f.role != "" && u.role != f.role {
		return false
	}
	if f.typ != "" && u.roleType != f.typ {
		return false
	}
	if f.query != "" && !containsFold(u.email, f.query) && !containsFold(u.phone, f.query) &&
		!containsFold(u.firstName, f.query) && !containsFold(u.lastName, f.query) &&
		(!strings.Contains(f.query, " ") || !containsFold(u.firstName+" "+u.lastName, f.query)) {
		return false
	}
	return true
}

// searchUsers is GET /users/search.
func (s *Server) searchUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var invalid []string
	if !s.opts.AllowUndocumented {
		// GoHighLevel validates with a whitelist: a parameter it does
		// not document is refused, in NestJS's words.
		for _, name := range []string{"updatedAfter", "order"} {
			if q.Has(name) {
				invalid = append(invalid, "property "+name+" should not exist")
			}
		}
	}
	if q.Get("companyId") == "" {
		invalid = append(invalid, "companyId should not be empty")
	}
	f := userFilter{query: strings.TrimSpace(q.Get("query")), status: -1, role: q.Get("role"), typ: q.Get("type")}
	if v := q.Get("membershipStatus"); v != "" {
		i, ok := indexOf(membershipStatuses, v)
		if !ok {
			invalid = append(invalid, "membershipStatus must be one of the following values: "+strings.Join(membershipStatuses, ", "))
		}
		f.status = int(i)
	}
	if v := q.Get("updatedAfter"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			invalid = append(invalid, "updatedAfter must be a valid ISO 8601 date string")
		}
		f.updatedAfter = t.UnixNano()
	}
	sortBy := q.Get("sort")
	switch sortBy {
	case "", "dateAdded", "dateUpdated":
	default:
		invalid = append(invalid, "sort must be one of the following values: dateAdded, dateUpdated")
	}
	order := q.Get("order")
	if order == "" {
		order = q.Get("sortDirection")
	}
	if order != "" && order != "asc" && order != "desc" {
		invalid = append(invalid, "order must be one of the following values: asc, desc")
	}
	if len(invalid) > 0 {
		writeInvalid(w, invalid)
		return
	}
	if !checkScope(w, "companyId", q.Get("companyId"), DemoCompanyID) {
		return
	}
	// The location asked, else every location the token reaches: a
	// location token's own, an agency token's whole company.
	s.mu.RLock()
	stores := s.reach(r)
	if loc := q.Get("locationId"); loc != "" {
		st := s.locationStore(w, r, loc)
		stores = []*store{st}
		if st == nil {
			stores = nil
		}
	}
	s.mu.RUnlock()
	if stores == nil {
		return
	}
	skip, limit, ok := paging(w, q.Get, searchDefaultLimit, searchMaxLimit)
	if !ok {
		return
	}
	if v := q.Get("ids"); v != "" {
		f.ids = map[id20]bool{}
		for _, id := range strings.Split(v, ",") {
			if key, ok := parseID(strings.TrimSpace(id)); ok {
				f.ids[key] = true
			}
		}
	}
	desc := order == "desc"

	// Several locations are listed one after the other, each in the
	// order asked.
	page := make([]userJSON, 0, min(limit, 100))
	count := 0
	s.mu.RLock()
	for _, st := range stores {
		found, n := st.searchUsers(&f, sortBy == "dateUpdated", desc, max(skip-count, 0), limit-len(page))
		for _, idx := range found {
			page = append(page, st.wire(&st.users[idx]))
		}
		count += n
	}
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, map[string]any{"users": page, "count": count})
}

// onlyUpdatedAfter reports whether f filters on nothing but the last
// change (and, as every search, leaves deleted users out).
func (f *userFilter) onlyUpdatedAfter() bool {
	return f.query == "" && f.ids == nil && f.status < 0 && f.role == "" && f.typ == ""
}

// searchUsers returns a search's page (user positions) and its count of
// matches. In the order of last change with no filter but updatedAfter
// (what pollers ask), the count comes from the log's block counts and
// the page walk stops once the page is full; otherwise every record
// after the cursor is visited.
func (st *store) searchUsers(f *userFilter, byUpdate, desc bool, skip, limit int) ([]int32, int) {
	if !byUpdate && !desc && f.onlyUpdatedAfter() && f.updatedAfter == 0 {
		return st.scanAdded(skip, limit), st.liveUsers
	}
	if !byUpdate || !f.onlyUpdatedAfter() {
		return st.walkUsers(f, byUpdate, desc, skip, limit)
	}
	return changedSince(st.userLog, &st.userLive, st.userCounted, f.updatedAfter, desc, skip, limit)
}

// scanAdded is the page of a search with no filter in the order users
// were added (what a poller scanning the documented search asks): whole
// blocks before skip are stepped over by their live counts.
func (st *store) scanAdded(skip, limit int) []int32 {
	page := make([]int32, 0, min(limit, 100))
	i := 0
	for b := 0; b < len(st.addedLive) && skip >= int(st.addedLive[b]); b++ {
		skip -= int(st.addedLive[b])
		i = (b + 1) * logBlock
	}
	for ; i < len(st.users) && len(page) < limit; i++ {
		if st.users[i].deleted {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		page = append(page, int32(i))
	}
	return page
}

// walkUsers is searchUsers visiting every record that may match.
func (st *store) walkUsers(f *userFilter, byUpdate, desc bool, skip, limit int) ([]int32, int) {
	page := make([]int32, 0, min(limit, 100))
	count := 0
	visit := func(idx int32) {
		if !f.match(&st.users[idx]) {
			return
		}
		if count >= skip && len(page) < limit {
			page = append(page, idx)
		}
		count++
	}
	if byUpdate {
		log := st.userLog
		start := 0
		if f.updatedAfter != 0 {
			start = since(log, f.updatedAfter)
		}
		live := func(e logEntry) bool { return st.users[e.idx].dateUpdated == e.at }
		if desc {
			for i := len(log) - 1; i >= start; i-- {
				if live(log[i]) {
					visit(log[i].idx)
				}
			}
		} else {
			for i := start; i < len(log); i++ {
				if live(log[i]) {
					visit(log[i].idx)
				}
			}
		}
	} else if desc {
		for i := len(st.users) - 1; i >= 0; i-- {
			visit(int32(i))
		}
	} else {
		for i := range st.users {
			visit(int32(i))
		}
	}
	return page, count
}

// filterByEmail is POST /users/search/filter-by-email. Without
// projection=all it answers only id and email, as GoHighLevel does. The
// document secures it with Agency-Access alone: a location token (the
// README's private integration token) is refused before the body is read.
func (s *Server) filterByEmail(w http.ResponseWriter, r *http.Request) {
	if agencyOnly(w, r) {
		return
	}
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	b.required("companyId", "emails")
	company, _ := b.str("companyId")
	emails, _ := b.str("emails")
	projection, _ := b.str("projection")
	wantDeleted := false
	if v, ok := b.m["deleted"]; ok {
		d, isBool := v.(bool)
		if !isBool {
			b.invalid = append(b.invalid, "deleted must be a boolean value")
		}
		wantDeleted = d
	}
	get := func(k string) string { s, _ := b.str(k); return s }
	if len(b.invalid) > 0 {
		writeInvalid(w, b.invalid)
		return
	}
	skip, limit, ok := paging(w, get, searchDefaultLimit, searchMaxLimit)
	if !ok || !checkScope(w, "companyId", company, DemoCompanyID) {
		return
	}
	type idEmail struct {
		ID    string `json:"id"`
		Email string `json:"email"`
	}
	// Every location of the company: the route searches the company, not
	// a location. Each email's users are listed oldest first.
	type hit struct {
		st  *store
		idx int32
	}
	var page []any
	var hits []hit
	count := 0
	s.mu.RLock()
	for _, e := range strings.Split(emails, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		hits = hits[:0]
		for _, st := range s.reach(r) {
			for p := range chain(st.userByEmail, st.users, emailKey(e)) {
				if st.users[p].deleted == wantDeleted {
					hits = append(hits, hit{st, p})
				}
			}
		}
		slices.SortStableFunc(hits, func(a, b hit) int {
			return cmp.Compare(a.st.users[a.idx].dateAdded, b.st.users[b.idx].dateAdded)
		})
		for _, h := range hits {
			u := &h.st.users[h.idx]
			if count >= skip && len(page) < limit {
				if projection == "all" {
					page = append(page, h.st.wire(u))
				} else {
					page = append(page, idEmail{u.id.String(), u.email})
				}
			}
			count++
		}
	}
	s.mu.RUnlock()
	if page == nil {
		page = []any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": page, "count": count})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	st, idx, ok := s.findUser(r.PathValue("userId"))
	reached := ok && slices.Contains(s.reach(r), st)
	var out userJSON
	if reached {
		out = st.wire(&st.users[idx])
	}
	s.mu.RUnlock()
	switch {
	case !ok:
		userNotFound(w)
	case !reached:
		noAccess(w)
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// membershipFields applies our membership fields from a body to u.
func membershipFields(b *body, u *user) {
	if v, ok := b.enum("membershipStatus", membershipStatuses); ok {
		u.status = v
	}
	if v, ok := b.enum("registrationStatus", registrationStatuses); ok {
		u.registration = v
	}
	if v, ok := b.enum("certificateStatus", certificateStatuses); ok {
		u.certSt = v
	}
	if v, ok := b.date("enrollmentDate"); ok {
		u.enrollment = v
	}
	if v, ok := b.date("eligibilityDate"); ok {
		u.eligibility = v
	}
	if v, ok := b.date("issuanceDate"); ok {
		u.issuance = v
	}
	if v, ok := b.str("planId"); ok {
		u.plan = v
	}
	if v, ok := b.str("certificateId"); ok {
		u.certificateID = v
	}
}

// createUser is POST /users/ (201).
func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	b.required("companyId", "firstName", "lastName", "email", "password", "type", "role", "locationIds")
	var u user
	company, _ := b.str("companyId")
	u.firstName, _ = b.str("firstName")
	u.lastName, _ = b.str("lastName")
	u.email, _ = b.email("email")
	_, _ = b.str("password")
	u.phone, _ = b.str("phone")
	u.roleType, _ = b.str("type")
	u.role, _ = b.str("role")
	locations, _ := b.strings("locationIds")
	membershipFields(b, &u)
	if len(b.invalid) > 0 {
		writeInvalid(w, b.invalid)
		return
	}
	if !checkScope(w, "companyId", company, DemoCompanyID) {
		return
	}
	locations = slices.Compact(slices.Sorted(slices.Values(locations)))
	if len(locations) == 0 {
		writeInvalid(w, []string{"locationIds should not be empty"})
		return
	}
	if len(locations) > 1 {
		// GoHighLevel lets a user reach several locations; the sandbox
		// keeps each user in one.
		writeInvalid(w, []string{"the sandbox keeps each user in one location: locationIds must name one location"})
		return
	}
	s.mu.Lock()
	st := s.locationStore(w, r, locations[0])
	if st == nil {
		s.mu.Unlock()
		return
	}
	now := s.now()
	u.id = s.newID()
	u.dateAdded = st.tick(now)
	u.dateUpdated = u.dateAdded
	idx := st.addUser(u)
	out := st.wire(&st.users[idx])
	hook := s.userHook("UserCreate", st, idx, "")
	s.mu.Unlock()
	s.send(hook)
	writeJSON(w, http.StatusCreated, out)
}

// updateUser is PUT /users/{userId}: a partial update.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var patch user
	first, hasFirst := b.str("firstName")
	last, hasLast := b.str("lastName")
	email, hasEmail := b.email("email")
	phone, hasPhone := b.str("phone")
	typ, hasType := b.str("type")
	role, hasRole := b.str("role")
	company, _ := b.str("companyId")
	_, _ = b.str("password")
	_, _ = b.strings("locationIds")
	// UpdateUserDto: companyId is "Required for Agency Level access". The
	// service validates its DTOs with class-validator, whose answer to a
	// missing field is the 422 "<field> should not be empty" (as for
	// createUser's required fields); the route documents 422 with
	// UnprocessableDTO, so that is the answer to an agency token without it.
	if company == "" && tokenOf(r.Context()).userType == "Company" {
		b.invalid = append(b.invalid, "companyId should not be empty")
	}
	if len(b.invalid) > 0 {
		writeInvalid(w, b.invalid)
		return
	}
	if !checkScope(w, "companyId", company, DemoCompanyID) {
		return
	}
	st, idx, found := s.lockUser(w, r)
	if !found {
		return
	}
	u := &st.users[idx]
	patch = *u
	membershipFields(b, &patch)
	if len(b.invalid) > 0 {
		s.mu.Unlock()
		writeInvalid(w, b.invalid)
		return
	}
	if hasFirst {
		patch.firstName = first
	}
	if hasLast {
		patch.lastName = last
	}
	if hasPhone {
		patch.phone = phone
	}
	if hasType {
		patch.roleType = typ
	}
	if hasRole {
		patch.role = role
	}
	before := u.status
	if hasEmail {
		if emailKey(email) != emailKey(u.email) {
			st.unlinkEmail(idx)
			u.email = email
			st.linkEmail(idx)
		}
		u.email = email
	}
	patch.email, patch.nextSameEmail = u.email, u.nextSameEmail
	*u = patch
	st.touchUser(idx, s.now())
	out := st.wire(u)
	prev := ""
	if u.status != before {
		prev = membershipStatuses[before]
	}
	hook := s.userHook("UserUpdate", st, idx, prev)
	s.mu.Unlock()
	s.send(hook)
	writeJSON(w, http.StatusOK, out)
}

// deleteUser is DELETE /users/{userId}. GoHighLevel queues the deletion;
// the sandbox applies it at once.
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	st, idx, found := s.lockUser(w, r)
	if !found {
		return
	}
	st.deleteUser(idx, s.now())
	u := &st.users[idx]
	msg := "Queued deleting user with e-mail " + u.email + " and name " + strings.TrimSpace(u.firstName+" "+u.lastName) + ". Will take effect in a few minutes."
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"succeded": true, "message": msg})
}

// lockUser takes s.mu and finds the user of the route in the locations
// the token reaches; when there is none it lets go of s.mu and answers so.
func (s *Server) lockUser(w http.ResponseWriter, r *http.Request) (*store, int32, bool) {
	s.mu.Lock()
	st, idx, ok := s.findUser(r.PathValue("userId"))
	switch {
	case !ok:
		s.mu.Unlock()
		userNotFound(w)
	case !slices.Contains(s.reach(r), st):
		s.mu.Unlock()
		noAccess(w)
		ok = false
	}
	return st, idx, ok
}

func userNotFound(w http.ResponseWriter) {
	writeError(w, http.StatusBadRequest, "User not found")
}

// noAccess answers a location token that names a user (or location) of
// another location, in the words checkScope uses.
func noAccess(w http.ResponseWriter) {
	writeError(w, http.StatusBadRequest, "The token does not have access to this location.")
}
