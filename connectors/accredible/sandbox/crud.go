package sandbox

import (
	"net/http"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// resource is the create/get/update/delete shape that groups, departments
// and designs share: items live in a map of the server by id, a request
// carries one item (optionally wrapped under key) and every answer is
// `{key: item}`. What differs between them is in the funcs.
type resource[T any] struct {
	key     string // the item's JSON key in requests and answers
	idParam string // the path wildcard holding the item's id
	table   func(s *Server) map[int64]*T
	// blank returns a new item with the API's defaults.
	blank func() *T
	// apply copies a request onto an item and reports blank or invalid fields.
	apply  func(in map[string]any, item *T) map[string][]string
	render func(s *Server, item *T) any
	// missing writes the 404 of an unknown id.
	missing func(w http.ResponseWriter)
	// created stamps a new item with its id and creation time (ms).
	created func(item *T, id, now int64)
	// updated, when set, stamps a changed item with its update time (ms).
	updated func(item *T, now int64)
	// createConflict and deleteConflict, when set, return the 422 errors
	// that forbid the change, or nil.
	createConflict func(s *Server, item *T) any
	deleteConflict func(s *Server, id int64) any
}

func (rs resource[T]) answer(w http.ResponseWriter, s *Server, item *T) {
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{rs.key: rs.render(s, item)})
}

// lookup finds the item of the route; it writes the 404. The caller holds
// s.mu.
func (rs resource[T]) lookup(w http.ResponseWriter, r *http.Request, s *Server) (int64, *T, bool) {
	id, _ := pathID(r, rs.idParam)
	item := rs.table(s)[id]
	if item == nil {
		rs.missing(w)
	}
	return id, item, item != nil
}

func (rs resource[T]) create(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			badJSON(w, err)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		item := rs.blank()
		if errs := rs.apply(wrapped(body, rs.key), item); len(errs) > 0 {
			unprocessable(w, errs)
			return
		}
		if rs.createConflict != nil {
			if errs := rs.createConflict(s, item); errs != nil {
				unprocessable(w, errs)
				return
			}
		}
		id := s.newID()
		rs.created(item, id, s.now().UnixMilli())
		rs.table(s)[id] = item
		rs.answer(w, s, item)
	}
}

func (rs resource[T]) get(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.RLock()
		defer s.mu.RUnlock()
		_, item, ok := rs.lookup(w, r, s)
		if !ok {
			return
		}
		rs.answer(w, s, item)
	}
}

// update is a partial update: apply works on a draft, so that an invalid
// request leaves the item as it was.
func (rs resource[T]) update(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			badJSON(w, err)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		_, item, ok := rs.lookup(w, r, s)
		if !ok {
			return
		}
		draft := *item
		if errs := rs.apply(wrapped(body, rs.key), &draft); len(errs) > 0 {
			unprocessable(w, errs)
			return
		}
		if rs.updated != nil {
			rs.updated(&draft, s.now().UnixMilli())
		}
		*item = draft
		rs.answer(w, s, item)
	}
}

// copyOf serves a copy of the route's item as a new item: change fills
// the copy from the request and returns the 422 errors that forbid it, or
// nil.
func (rs resource[T]) copyOf(s *Server, change func(s *Server, body map[string]any, src, cp *T) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			badJSON(w, err)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		_, src, ok := rs.lookup(w, r, s)
		if !ok {
			return
		}
		cp := *src
		if errs := change(s, body, src, &cp); errs != nil {
			unprocessable(w, errs)
			return
		}
		id := s.newID()
		rs.created(&cp, id, s.now().UnixMilli())
		rs.table(s)[id] = &cp
		rs.answer(w, s, &cp)
	}
}

// delete answers the item as it was before it went.
func (rs resource[T]) delete(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		id, item, ok := rs.lookup(w, r, s)
		if !ok {
			return
		}
		if rs.deleteConflict != nil {
			if errs := rs.deleteConflict(s, id); errs != nil {
				unprocessable(w, errs)
				return
			}
		}
		out := rs.render(s, item)
		delete(rs.table(s), id)
		sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{rs.key: out})
	}
}

// credentialPart is the create/get/update/delete shape of the items a
// credential holds in a list (evidence items, references): they are
// reached through the credential's route, changed through the credential
// store (which moves the credential's updated_at), and answered as
// `{key: item}`.
type credentialPart[T any] struct {
	key     string // the item's JSON key in requests and answers
	idParam string // the path wildcard holding the item's id
	list    func(x *credentialExtra) *[]T
	id      func(item *T) *int64
	apply   func(in map[string]any, item *T)
	valid   func(item *T) map[string][]string
	render  func(item *T) any
	// added, when set, fills defaults of a new item that depend on the
	// credential's other items.
	added func(item *T, c *credential)
}

func (p credentialPart[T]) answer(w http.ResponseWriter, item *T) {
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{p.key: p.render(item)})
}

func (p credentialPart[T]) create(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			badJSON(w, err)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		c, ok := s.credentialAt(w, r, "credential_id")
		if !ok {
			return
		}
		var item T
		p.apply(wrapped(body, p.key), &item)
		if errs := p.valid(&item); len(errs) > 0 {
			unprocessable(w, errs)
			return
		}
		*p.id(&item) = s.newID()
		if p.added != nil {
			p.added(&item, c)
		}
		s.creds.update(c, s.now(), func(c *credential) { l := p.list(c.mx()); *l = append(*l, item) })
		items := *p.list(c.x())
		p.answer(w, &items[len(items)-1])
	}
}

// locate finds the credential of the route and the index of the item in
// its list; it writes the 404 of either. The caller holds s.mu.
func (p credentialPart[T]) locate(w http.ResponseWriter, r *http.Request, s *Server) (*credential, int, bool) {
	c, ok := s.credentialAt(w, r, "credential_id")
	if !ok {
		return nil, 0, false
	}
	id, _ := pathID(r, p.idParam)
	items := *p.list(c.x())
	for i := range items {
		if *p.id(&items[i]) == id {
			return c, i, true
		}
	}
	notFound(w)
	return nil, 0, false
}

func (p credentialPart[T]) get(s *Server) http.HandlerFunc { return p.getOrUpdate(s, false) }

func (p credentialPart[T]) update(s *Server) http.HandlerFunc { return p.getOrUpdate(s, true) }

func (p credentialPart[T]) getOrUpdate(s *Server, update bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if update {
			var err error
			if body, err = readBody(r); err != nil {
				badJSON(w, err)
				return
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		c, i, ok := p.locate(w, r, s)
		if !ok {
			return
		}
		if update {
			draft := (*p.list(c.x()))[i]
			p.apply(wrapped(body, p.key), &draft)
			if errs := p.valid(&draft); len(errs) > 0 {
				unprocessable(w, errs)
				return
			}
			s.creds.update(c, s.now(), func(c *credential) { (*p.list(c.mx()))[i] = draft })
		}
		p.answer(w, &(*p.list(c.x()))[i])
	}
}

// delete answers the item as it was before it went.
func (p credentialPart[T]) delete(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		c, i, ok := p.locate(w, r, s)
		if !ok {
			return
		}
		out := p.render(&(*p.list(c.x()))[i])
		s.creds.update(c, s.now(), func(c *credential) { l := p.list(c.mx()); *l = append((*l)[:i], (*l)[i+1:]...) })
		sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{p.key: out})
	}
}

// writePage answers the page of the table's items that keep accepts, in
// id order, as `{key: [...], "meta": ...}`. The caller holds s.mu.
func writePage[T, J any](w http.ResponseWriter, key string, table map[int64]*T, page, size int, keep func(id int64, item *T) bool, render func(*T) J) {
	out, pm := pageItems(table, page, size, keep, render)
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]any{key: out, "meta": pm})
}

// pageItems renders the page of the table's items that keep accepts, in
// id order, for an answer whose meta has a shape of its own.
func pageItems[T, J any](table map[int64]*T, page, size int, keep func(id int64, item *T) bool, render func(*T) J) ([]J, pageMeta) {
	var match []*T
	for _, id := range sortedIDs(table) {
		if item := table[id]; keep(id, item) {
			match = append(match, item)
		}
	}
	from, to, pm := pageOf(len(match), page, size)
	out := make([]J, 0, to-from)
	for _, item := range match[from:to] {
		out = append(out, render(item))
	}
	return out, pm
}

// bodyGetter reads list parameters from a JSON body, as queryGetter does
// from a query string.
func bodyGetter(body map[string]any) func(string) (any, bool) {
	return func(k string) (any, bool) { v, ok := body[k]; return v, ok }
}
