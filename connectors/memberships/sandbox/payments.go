package sandbox

import (
	"net/http"
	"regexp"
	"strings"
	"time"
)

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

func paymentNotFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, errorBody{StatusCode: 404, Message: "Payment not found", Error: "Not Found"})
}

// paymentFields applies the writable fields of a body to p.
func paymentFields(b *body, p *payment) {
	if v, ok := b.number("amount"); ok {
		if v < 0 {
			b.invalid = append(b.invalid, "amount must not be less than 0")
		}
		p.amountCents = centsOf(v)
	}
	if v, ok := b.str("currency"); ok {
		if !currencyPattern.MatchString(v) {
			b.invalid = append(b.invalid, "currency must be an ISO 4217 code (three capital letters)")
		} else {
			copy(p.currency[:], v)
		}
	}
	if v, ok := b.enum("status", paymentStatuses); ok {
		p.status = v
	}
	if v, ok := b.str("source"); ok {
		p.source = v
	}
}

// createPayment is POST /payments (201). Like every write of this API it
// has no idempotency key: the same body twice makes two payments.
func (s *Server) createPayment(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	b.required("userId", "amount", "currency")
	userID, _ := b.str("userId")
	var p payment // pending unless the body says
	paymentFields(b, &p)
	p.externalRef, _ = b.str("externalRef")
	if len(b.invalid) > 0 {
		writeInvalid(w, b.invalid)
		return
	}
	s.mu.Lock()
	uidx, found := s.st.lookupUser(userID)
	if !found {
		s.mu.Unlock()
		userNotFound(w)
		return
	}
	p.user = uidx
	p.id = s.newID()
	p.createdAt = s.st.tick(s.now())
	p.updatedAt = p.createdAt
	idx := s.st.addPayment(p)
	out := s.st.paymentWire(&s.st.payments[idx])
	hook := s.paymentHook("PaymentCreate", idx)
	s.mu.Unlock()
	s.send(hook)
	writeJSON(w, http.StatusCreated, out)
}

// listPayments is GET /payments: filters, then skip/limit.
func (s *Server) listPayments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var invalid []string
	status := -1
	if v := q.Get("status"); v != "" {
		i, ok := indexOf(paymentStatuses, v)
		if !ok {
			invalid = append(invalid, "status must be one of the following values: "+strings.Join(paymentStatuses, ", "))
		}
		status = int(i)
	}
	var after int64
	if v := q.Get("updatedAfter"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			invalid = append(invalid, "updatedAfter must be a valid ISO 8601 date string")
		}
		after = t.UnixNano()
	}
	sortBy := q.Get("sort")
	if sortBy != "" && sortBy != "createdAt" && sortBy != "updatedAt" {
		invalid = append(invalid, "sort must be one of the following values: createdAt, updatedAt")
	}
	order := q.Get("order")
	if order != "" && order != "asc" && order != "desc" {
		invalid = append(invalid, "order must be one of the following values: asc, desc")
	}
	if len(invalid) > 0 {
		writeInvalid(w, invalid)
		return
	}
	skip, limit, ok := paging(w, q.Get, searchDefaultLimit, searchMaxLimit)
	if !ok {
		return
	}
	userID, ref := q.Get("userId"), q.Get("externalRef")
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.st
	userIdx := int32(-1)
	if userID != "" {
		i, found := st.lookupUser(userID)
		if !found {
			writeJSON(w, http.StatusOK, map[string]any{"payments": []paymentJSON{}, "count": 0})
			return
		}
		userIdx = i
	}
	pf := paymentFilter{status: status, user: userIdx, ref: ref, updatedAfter: after}
	found, count := st.listPayments(&pf, sortBy == "updatedAt", order == "desc", skip, limit)
	page := make([]paymentJSON, len(found))
	for i, idx := range found {
		page[i] = st.paymentWire(&st.payments[idx])
	}
	writeJSON(w, http.StatusOK, map[string]any{"payments": page, "count": count})
}

// paymentFilter is a payment list's conditions.
type paymentFilter struct {
	status       int   // -1: any
	user         int32 // -1: any
	ref          string
	updatedAfter int64
}

func (f *paymentFilter) match(p *payment) bool {
	return !p.deleted && (f.status < 0 || int(p.status) == f.status) && (f.user < 0 || p.user == f.user) &&
		(f.ref == "" || p.externalRef == f.ref) && (f.updatedAfter == 0 || p.updatedAt >= f.updatedAfter)
}

// listPayments returns a list's page (payment positions) and its count
// of matches: from the log's block counts for a poller's query (by last
// change, no filter but updatedAfter), as searchUsers does; otherwise by
// visiting every payment that may match.
func (st *store) listPayments(f *paymentFilter, byUpdate, desc bool, skip, limit int) ([]int32, int) {
	if !byUpdate || f.status >= 0 || f.user >= 0 || f.ref != "" {
		return st.walkPayments(f, byUpdate, desc, skip, limit)
	}
	return changedSince(st.paymentLog, &st.paymentLive, st.paymentCounted, f.updatedAfter, desc, skip, limit)
}

// walkPayments is listPayments visiting every payment that may match.
func (st *store) walkPayments(f *paymentFilter, byUpdate, desc bool, skip, limit int) ([]int32, int) {
	page := make([]int32, 0, min(limit, 100))
	count := 0
	visit := func(idx int32) {
		if !f.match(&st.payments[idx]) {
			return
		}
		if count >= skip && len(page) < limit {
			page = append(page, idx)
		}
		count++
	}
	switch {
	case f.ref != "":
		// The externalRef index: a look-up, not a scan.
		for idx := range chain(st.paymentByRe, st.payments, f.ref) {
			visit(idx)
		}
	case byUpdate:
		log := st.paymentLog
		start := 0
		if f.updatedAfter != 0 {
			start = since(log, f.updatedAfter)
		}
		live := func(e logEntry) bool { return st.payments[e.idx].updatedAt == e.at }
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
	case desc:
		for i := len(st.payments) - 1; i >= 0; i-- {
			visit(int32(i))
		}
	default:
		for i := range st.payments {
			visit(int32(i))
		}
	}
	return page, count
}

func (s *Server) getPayment(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	idx, ok := s.st.lookupPayment(r.PathValue("paymentId"))
	var out paymentJSON
	if ok {
		out = s.st.paymentWire(&s.st.payments[idx])
	}
	s.mu.RUnlock()
	if !ok {
		paymentNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// updatePayment is PUT /payments/{paymentId}: a partial update.
func (s *Server) updatePayment(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	idx, found := s.lockPayment(w, r)
	if !found {
		return
	}
	p := &s.st.payments[idx]
	patch := *p
	paymentFields(b, &patch)
	ref, hasRef := b.str("externalRef")
	if len(b.invalid) > 0 {
		s.mu.Unlock()
		writeInvalid(w, b.invalid)
		return
	}
	if hasRef && ref != p.externalRef {
		s.st.unlinkRef(idx)
		p.externalRef = ref
		s.st.linkRef(idx)
	}
	patch.externalRef, patch.nextSameRef = p.externalRef, p.nextSameRef
	*p = patch
	s.st.touchPayment(idx, s.now())
	out := s.st.paymentWire(p)
	hook := s.paymentHook("PaymentUpdate", idx)
	s.mu.Unlock()
	s.send(hook)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deletePayment(w http.ResponseWriter, r *http.Request) {
	idx, found := s.lockPayment(w, r)
	if !found {
		return
	}
	s.st.deletePayment(idx, s.now())
	id := s.st.payments[idx].id.String()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"succeded": true, "message": "Deleted payment " + id})
}

// lockPayment takes s.mu and finds the payment of the route; when there is none
// it lets go of s.mu and answers so.
func (s *Server) lockPayment(w http.ResponseWriter, r *http.Request) (int32, bool) {
	s.mu.Lock()
	idx, ok := s.st.lookupPayment(r.PathValue("paymentId"))
	if !ok {
		s.mu.Unlock()
		paymentNotFound(w)
	}
	return idx, ok
}
