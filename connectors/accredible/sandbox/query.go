package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// searchError is a v2 search request the API rejects with 400
// invalid_search_query.
type searchError struct{ msg string }

func (e *searchError) Error() string { return e.msg }

func badQuery(format string, a ...any) error { return &searchError{msg: fmt.Sprintf(format, a...)} }

// predicate is one `field[op]: value` of a v2 search query.
type predicate struct {
	field string
	op    string
	vals  []any
	obj   map[string]any // meta_data, custom_attributes, recipient_meta_data
	// lo/hi bound timestamps in milliseconds for created_at/updated_at:
	// the predicate holds for lo <= t < hi.
	lo, hi int64
}

// fieldOps lists the operations each query field supports, as documented.
var fieldOps = map[string]string{
	"uuid":                "eq in",
	"group.id":            "eq in",
	"recipient_name":      "eq in",
	"approve":             "eq",
	"recipient_email":     "eq in",
	"recipient_id":        "eq in",
	"recipient_meta_data": "",
	"license_id":          "eq in",
	"meta_data":           "",
	"custom_attributes":   "",
	"issued_on":           "eq in lt lte gt gte",
	"expired_on":          "eq in lt lte gt gte",
	"updated_at":          "eq in lt lte gt gte",
	"created_at":          "eq in lt lte gt gte",
}

// sortKeys are the documented sort keys; undocumentedSortKeys are
// accepted only with sandboxkit.Options.AllowUndocumented.
var (
	sortKeys = map[string]bool{
		"id": true, "recipient_name": true, "group.name": true, "issued_on": true, "expired_on": true,
	}
	undocumentedSortKeys = map[string]bool{"updated_at": true, "created_at": true}
)

// dateFields are documented as dates (YYYY-MM-DD); a timestamp in their
// filters is accepted only with AllowUndocumented.
var dateFields = map[string]bool{"issued_on": true, "expired_on": true, "updated_at": true, "created_at": true}

// parseQuery reads a v2 search query; strict refuses what the document
// does not offer.
func parseQuery(q map[string]any, strict bool) ([]predicate, error) {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var preds []predicate
	for _, key := range keys {
		v := q[key]
		field, op := key, "eq"
		if i := strings.IndexByte(key, '['); i > 0 && strings.HasSuffix(key, "]") {
			field, op = key[:i], key[i+1:len(key)-1]
		}
		ops, known := fieldOps[field]
		if !known {
			return nil, badQuery("Unsupported query field %s", field)
		}
		p := predicate{field: field, op: op}
		if ops == "" {
			obj, ok := v.(map[string]any)
			if !ok || op != "eq" {
				return nil, badQuery("Query field %s takes an object of key/value pairs", field)
			}
			p.obj = obj
			preds = append(preds, p)
			continue
		}
		if !strings.Contains(" "+ops+" ", " "+op+" ") {
			return nil, badQuery("Operation %s is not supported for %s", op, field)
		}
		if op == "in" {
			l, ok := v.([]any)
			if !ok {
				return nil, badQuery("Operation in on %s needs an array of values", field)
			}
			p.vals = l
		} else {
			if _, isList := v.([]any); isList {
				return nil, badQuery("Operation %s on %s needs a single value", op, field)
			}
			p.vals = []any{v}
		}
		if strict && dateFields[field] {
			for _, v := range p.vals {
				if str, _ := v.(string); !isDate(str) {
					return nil, badQuery("%s must be a date in the format YYYY-MM-DD, got %v", field, v)
				}
			}
		}
		if field == "updated_at" || field == "created_at" {
			if err := p.timeBounds(); err != nil {
				return nil, err
			}
		}
		if field == "approve" {
			if _, ok := v.(bool); !ok {
				return nil, badQuery("approve must be true or false")
			}
		}
		preds = append(preds, p)
	}
	return preds, nil
}

func isDate(s string) bool {
	_, err := time.Parse("2006-01-02", s)
	return err == nil
}

// timeBounds turns a created_at/updated_at predicate into [lo, hi). A date
// (YYYY-MM-DD) stands for its whole UTC day; a timestamp for its
// millisecond. For `in`, only the bounds of a single value are kept and
// matching checks each value.
func (p *predicate) timeBounds() error {
	if p.op == "in" {
		for _, v := range p.vals {
			if _, _, err := instant(p.field, v); err != nil {
				return err
			}
		}
		p.lo, p.hi = math.MinInt64, math.MaxInt64
		return nil
	}
	start, end, err := instant(p.field, p.vals[0])
	if err != nil {
		return err
	}
	p.lo, p.hi = math.MinInt64, math.MaxInt64
	switch p.op {
	case "eq":
		p.lo, p.hi = start, end
	case "lt":
		p.hi = start
	case "lte":
		p.hi = end
	case "gt":
		p.lo = end
	case "gte":
		p.lo = start
	}
	return nil
}

// instant parses a date or timestamp into [start, end) milliseconds.
func instant(field string, v any) (int64, int64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, 0, badQuery("%s must be a date (YYYY-MM-DD) or a timestamp", field)
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UnixMilli(), t.AddDate(0, 0, 1).UnixMilli(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixMilli(), t.UnixMilli() + 1, nil
	}
	return 0, 0, badQuery("Invalid date %q for %s", s, field)
}

// matches reports whether the credential satisfies the predicate.
func (p *predicate) matches(c *credential, groupName func(int64) string) bool {
	switch p.field {
	case "updated_at", "created_at":
		t := c.updatedAt
		if p.field == "created_at" {
			t = c.createdAt
		}
		if p.op == "in" {
			for _, v := range p.vals {
				lo, hi, _ := instant(p.field, v)
				if t >= lo && t < hi {
					return true
				}
			}
			return false
		}
		return t >= p.lo && t < p.hi
	case "meta_data":
		return subset(p.obj, c.x().metaData)
	case "custom_attributes":
		return subset(p.obj, c.x().customAttributes)
	case "recipient_meta_data":
		return subset(p.obj, c.x().recipientMeta)
	case "approve":
		b, _ := p.vals[0].(bool)
		return c.approve == b
	case "issued_on", "expired_on":
		have := c.issuedOn
		if p.field == "expired_on" {
			have = c.expiredOn
			if have == "" {
				return false
			}
		}
		for _, v := range p.vals {
			want := fmt.Sprint(v)
			switch p.op {
			case "eq", "in":
				if have == want {
					return true
				}
			case "lt":
				return have < want
			case "lte":
				return have <= want
			case "gt":
				return have > want
			case "gte":
				return have >= want
			}
		}
		return false
	}
	have := p.stringField(c)
	for _, v := range p.vals {
		want := scalarString(v)
		if have == want {
			return true
		}
	}
	return false
}

func (p *predicate) stringField(c *credential) string {
	switch p.field {
	case "uuid":
		return credentialUUID(c.id)
	case "group.id":
		return strconv.FormatInt(c.groupID, 10)
	case "recipient_name":
		return c.recipientName
	case "recipient_email":
		return c.recipientEmail
	case "recipient_id":
		return c.recipientID
	case "license_id":
		return c.x().licenseID
	}
	return ""
}

// scalarString renders a query value as the API compares it: group ids
// may arrive as numbers or strings.
func scalarString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case json.Number:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}

// subset reports whether every key of want has the same value in have.
func subset(want, have map[string]any) bool {
	for k, v := range want {
		h, ok := have[k]
		if !ok || fmt.Sprint(h) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// candidates picks the smallest index that can answer the query, so the
// common look-ups (by recipient, by reference, by updated_at) never scan
// every credential. The result is a superset of the matches; it may share
// memory with an index and must not be changed.
func (s *credentialStore) candidates(preds []predicate, sortKey string) (list []int32, natural string) {
	var best []int32
	found := false
	consider := func(lists [][]int32) {
		var l []int32
		if len(lists) == 1 {
			l = lists[0]
		} else {
			for _, x := range lists {
				l = append(l, x...)
			}
			l = dedupe(l)
		}
		if !found || len(l) < len(best) {
			best, found = l, true
		}
	}
	for i := range preds {
		p := &preds[i]
		var lists [][]int32
		switch {
		case p.obj != nil && p.field == "meta_data":
			// Every string entry must match: the rarest entry bounds it.
			for k, v := range p.obj {
				if sv, ok := v.(string); ok {
					consider([][]int32{s.byMeta.get(metaKey(k, sv))})
				}
			}
			continue
		case p.op != "eq" && p.op != "in":
			continue
		}
		for _, v := range p.vals {
			k := scalarString(v)
			switch p.field {
			case "recipient_email":
				lists = append(lists, s.byEmail.get(strings.ToLower(k)))
			case "recipient_id":
				lists = append(lists, s.byRecipient.get(k))
			case "license_id":
				lists = append(lists, s.byLicense.get(k))
			case "group.id":
				g, err := strconv.ParseInt(k, 10, 64)
				if err == nil {
					lists = append(lists, s.byGroup[g])
				}
			case "uuid":
				if id, ok := parseUUID(k); ok {
					if c, ok := s.get(id); ok {
						lists = append(lists, []int32{int32(c.id - firstCredentialID)})
					}
				}
			}
		}
		switch p.field {
		case "recipient_email", "recipient_id", "license_id", "group.id", "uuid":
			if len(lists) == 0 {
				lists = [][]int32{nil}
			}
			consider(lists)
		}
	}
	// Index lists are in id order: ids are handed out in creation order
	// and lists only ever append (or are merged and sorted by dedupe).
	if found {
		return best, "id"
	}
	for i := range preds {
		p := &preds[i]
		if p.field == "updated_at" && p.lo != math.MinInt64 {
			return s.updatedSince(p.lo), "updated_at"
		}
	}
	if sortKey == "updated_at" {
		return s.updatedSince(math.MinInt64), "updated_at"
	}
	for i := range preds {
		p := &preds[i]
		if p.field == "created_at" && p.lo != math.MinInt64 {
			return s.createdSince(p.lo), "id"
		}
	}
	return s.all(), "id"
}

func dedupe(l []int32) []int32 {
	if len(l) < 2 {
		return l
	}
	out := append([]int32(nil), l...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	w := 1
	for i := 1; i < len(out); i++ {
		if out[i] != out[w-1] {
			out[w] = out[i]
			w++
		}
	}
	return out[:w]
}

// search runs a v2 query and returns the page [from, from+size) of the
// sorted matches and how many match in all. When the candidates already
// come in the requested order (id or created_at from an index, updated_at
// from the log), nothing is sorted and only the page is kept, so a poll
// through a large backlog costs a pass of cheap checks per page.
func (s *credentialStore) search(preds []predicate, sortKey string, desc bool, from, size int, groupName func(int64) string) ([]int32, int) {
	cands, natural := s.candidates(preds, sortKey)
	inOrder := sortKey == natural || (sortKey == "created_at" && natural == "id")
	match := func(idx int32) bool {
		c := &s.creds[idx]
		for i := range preds {
			if !preds[i].matches(c, groupName) {
				return false
			}
		}
		return true
	}
	if inOrder {
		var page []int32
		count := 0
		for i := range cands {
			idx := cands[i]
			if desc {
				idx = cands[len(cands)-1-i]
			}
			if !match(idx) {
				continue
			}
			if count >= from && count < from+size {
				page = append(page, idx)
			}
			count++
		}
		return page, count
	}
	var out []int32
	for _, idx := range cands {
		if match(idx) {
			out = append(out, idx)
		}
	}
	cmp := func(a, b *credential) int {
		switch sortKey {
		case "recipient_name":
			return strings.Compare(a.recipientName, b.recipientName)
		case "group.name":
			return strings.Compare(groupName(a.groupID), groupName(b.groupID))
		case "issued_on":
			return strings.Compare(a.issuedOn, b.issuedOn)
		case "expired_on":
			return strings.Compare(a.expiredOn, b.expiredOn)
		case "updated_at":
			return cmpInt(a.updatedAt, b.updatedAt)
		case "created_at":
			return cmpInt(a.createdAt, b.createdAt)
		}
		return 0
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := &s.creds[out[i]], &s.creds[out[j]]
		c := cmp(a, b)
		if c == 0 {
			c = cmpInt(a.id, b.id) // ties in id order, so pages are stable
		}
		if desc {
			return c > 0
		}
		return c < 0
	})
	lo, hi := min(from, len(out)), min(from+size, len(out))
	return out[lo:hi], len(out)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// credentialUUID derives a stable UUID from the id.
func credentialUUID(id int64) string {
	return fmt.Sprintf("a8307173-e4e6-4eb4-991c-%012x", id)
}

func parseUUID(s string) (int64, bool) {
	const prefix = "a8307173-e4e6-4eb4-991c-"
	if !strings.HasPrefix(s, prefix) {
		return 0, false
	}
	id, err := strconv.ParseInt(s[len(prefix):], 16, 64)
	return id, err == nil
}

// Cursors are opaque to clients; the sandbox encodes the offset of the
// next result, as base64 JSON like the real API's search-after tokens.
func encodeCursor(offset int) string {
	return base64.StdEncoding.EncodeToString([]byte("[" + strconv.Itoa(offset) + "]"))
}

func decodeCursor(c string) (int, error) {
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return 0, badQuery("Invalid cursor")
	}
	var v []int
	if err := json.Unmarshal(b, &v); err != nil || len(v) != 1 || v[0] < 0 {
		return 0, badQuery("Invalid cursor")
	}
	return v[0], nil
}
