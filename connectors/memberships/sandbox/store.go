package sandbox

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// id20 is a GoHighLevel-style id: 20 alphanumeric characters. Stored as an
// array, it needs no allocation and makes a compact map key.
type id20 [20]byte

func (id id20) String() string { return string(id[:]) }

func parseID(s string) (id20, bool) {
	var id id20
	if len(s) != len(id) {
		return id, false
	}
	copy(id[:], s)
	return id, true
}

// Membership, registration, certificate and payment states are stored as
// small integers; these tables name them on the wire.
var (
	membershipStatuses   = []string{"pending", "active", "eligible", "lapsed", "cancelled"}
	registrationStatuses = []string{"none", "registered", "attended", "no_show"}
	certificateStatuses  = []string{"none", "issued", "expired", "revoked"}
	paymentStatuses      = []string{"pending", "paid", "refunded", "failed"}
	// Plans is the seeded plans, with their yearly fee in cents.
	plans = []struct {
		id    string
		cents int64
	}{{"plan_associate", 9500}, {"plan_professional", 18000}, {"plan_fellow", 32000}}
)

const (
	statusPending uint8 = iota
	statusActive
	statusEligible
	statusLapsed
	statusCancelled
)

func indexOf(table []string, s string) (uint8, bool) {
	for i, v := range table {
		if v == s {
			return uint8(i), true
		}
	}
	return 0, false
}

// user is one member, compact: 1,000,000 of them must fit well under 2 GB
// with their indexes. Dates are days since the Unix epoch (0: unset);
// times are Unix nanoseconds.
type user struct {
	id                           id20
	firstName, lastName          string
	email, phone                 string
	roleType, role               string
	certificateID                string
	plan                         string
	dateAdded, dateUpdated       int64
	enrollment, eligibility      int32
	issuance                     int32
	nextSameEmail                int32 // the next user with the same email, -1: none
	status, registration, certSt uint8
	deleted                      bool
}

// payment is one membership payment.
type payment struct {
	id                   id20
	user                 int32 // index in users
	amountCents          int64
	createdAt, updatedAt int64
	externalRef, source  string
	nextSameRef          int32 // the next payment with the same externalRef, -1: none
	currency             [3]byte
	status               uint8
	deleted              bool
}

// logEntry records that a record changed at a time. Entries are appended
// in time order (the store's clock never goes back), so that "changed
// after T, oldest first" is a binary search and a scan; an entry is stale
// when its record changed again later.
type logEntry struct {
	at  int64
	idx int32
}

// store is the in-memory state. The Server's mutex guards it.
type store struct {
	users       []user
	userByID    map[id20]int32
	userByEmail map[string]int32 // lower-cased email -> first user; the rest chained
	userLog     []logEntry
	liveUsers   int

	payments    []payment
	paymentByID map[id20]int32
	paymentByRe map[string]int32 // externalRef -> first payment; the rest chained
	paymentLog  []logEntry
	livePays    int

	// last is the newest timestamp handed out: every change gets a
	// strictly later one, so that pollers never see two changes at once.
	last int64
}

func newStore() *store {
	return &store{
		userByID:    map[id20]int32{},
		userByEmail: map[string]int32{},
		paymentByID: map[id20]int32{},
		paymentByRe: map[string]int32{},
	}
}

// tick returns a change time at or after now, strictly after the last one.
func (st *store) tick(now time.Time) int64 {
	t := now.UnixNano()
	if t <= st.last {
		t = st.last + 1000 // one microsecond
	}
	st.last = t
	return t
}

func (st *store) addUser(u user) int32 {
	idx := int32(len(st.users))
	u.nextSameEmail = -1
	st.users = append(st.users, u)
	st.userByID[u.id] = idx
	st.linkEmail(idx)
	st.userLog = append(st.userLog, logEntry{u.dateUpdated, idx})
	st.liveUsers++
	return idx
}

func emailKey(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func (st *store) linkEmail(idx int32) {
	key := emailKey(st.users[idx].email)
	if first, ok := st.userByEmail[key]; ok {
		// Append at the end, so that the oldest user stays first.
		for st.users[first].nextSameEmail >= 0 {
			first = st.users[first].nextSameEmail
		}
		st.users[first].nextSameEmail = idx
		return
	}
	st.userByEmail[key] = idx
}

func (st *store) unlinkEmail(idx int32) {
	key := emailKey(st.users[idx].email)
	first, ok := st.userByEmail[key]
	if !ok {
		return
	}
	next := st.users[idx].nextSameEmail
	st.users[idx].nextSameEmail = -1
	if first == idx {
		if next >= 0 {
			st.userByEmail[key] = next
		} else {
			delete(st.userByEmail, key)
		}
		return
	}
	for p := first; p >= 0; p = st.users[p].nextSameEmail {
		if st.users[p].nextSameEmail == idx {
			st.users[p].nextSameEmail = next
			return
		}
	}
}

// usersByEmail returns the live users with this email, oldest first.
func (st *store) usersByEmail(email string) []int32 {
	var out []int32
	first, ok := st.userByEmail[emailKey(email)]
	for p := first; ok && p >= 0; p = st.users[p].nextSameEmail {
		if !st.users[p].deleted {
			out = append(out, p)
		}
	}
	return out
}

// touchUser marks a user changed now.
func (st *store) touchUser(idx int32, now time.Time) {
	t := st.tick(now)
	st.users[idx].dateUpdated = t
	st.userLog = append(st.userLog, logEntry{t, idx})
	st.compact()
}

func (st *store) lookupUser(id string) (int32, bool) {
	key, ok := parseID(id)
	if !ok {
		return 0, false
	}
	idx, ok := st.userByID[key]
	if !ok || st.users[idx].deleted {
		return 0, false
	}
	return idx, true
}

func (st *store) addPayment(p payment) int32 {
	idx := int32(len(st.payments))
	p.nextSameRef = -1
	st.payments = append(st.payments, p)
	st.paymentByID[p.id] = idx
	st.linkRef(idx)
	st.paymentLog = append(st.paymentLog, logEntry{p.updatedAt, idx})
	st.livePays++
	return idx
}

func (st *store) linkRef(idx int32) {
	ref := st.payments[idx].externalRef
	if ref == "" {
		return
	}
	if first, ok := st.paymentByRe[ref]; ok {
		for st.payments[first].nextSameRef >= 0 {
			first = st.payments[first].nextSameRef
		}
		st.payments[first].nextSameRef = idx
		return
	}
	st.paymentByRe[ref] = idx
}

func (st *store) unlinkRef(idx int32) {
	ref := st.payments[idx].externalRef
	first, ok := st.paymentByRe[ref]
	if ref == "" || !ok {
		return
	}
	next := st.payments[idx].nextSameRef
	st.payments[idx].nextSameRef = -1
	if first == idx {
		if next >= 0 {
			st.paymentByRe[ref] = next
		} else {
			delete(st.paymentByRe, ref)
		}
		return
	}
	for p := first; p >= 0; p = st.payments[p].nextSameRef {
		if st.payments[p].nextSameRef == idx {
			st.payments[p].nextSameRef = next
			return
		}
	}
}

func (st *store) touchPayment(idx int32, now time.Time) {
	t := st.tick(now)
	st.payments[idx].updatedAt = t
	st.paymentLog = append(st.paymentLog, logEntry{t, idx})
	st.compact()
}

func (st *store) lookupPayment(id string) (int32, bool) {
	key, ok := parseID(id)
	if !ok {
		return 0, false
	}
	idx, ok := st.paymentByID[key]
	if !ok || st.payments[idx].deleted {
		return 0, false
	}
	return idx, true
}

// compact drops stale log entries once they outnumber the records, so
// that a long run of mutations does not grow the logs without bound.
func (st *store) compact() {
	if len(st.userLog) > 2*len(st.users)+1024 {
		st.userLog = compactLog(st.userLog, func(e logEntry) bool { return st.users[e.idx].dateUpdated == e.at })
	}
	if len(st.paymentLog) > 2*len(st.payments)+1024 {
		st.paymentLog = compactLog(st.paymentLog, func(e logEntry) bool { return st.payments[e.idx].updatedAt == e.at })
	}
}

func compactLog(log []logEntry, live func(logEntry) bool) []logEntry {
	out := log[:0]
	for _, e := range log {
		if live(e) {
			out = append(out, e)
		}
	}
	return out
}

// since returns the position of the first log entry at or after t.
func since(log []logEntry, t int64) int {
	return sort.Search(len(log), func(i int) bool { return log[i].at >= t })
}

// Dates on the wire.

const day = 24 * time.Hour

func dayNumber(t time.Time) int32 { return int32(t.UTC().Unix() / int64(day/time.Second)) }

func formatDay(d int32) string {
	if d == 0 {
		return ""
	}
	return time.Unix(int64(d)*int64(day/time.Second), 0).UTC().Format(time.DateOnly)
}

func parseDay(s string) (int32, bool) {
	if s == "" {
		return 0, true
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, false
	}
	return dayNumber(t), true
}

func formatTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func formatAmount(cents int64) float64 { return float64(cents) / 100 }

func centsOf(amount float64) int64 {
	if amount < 0 {
		return -int64(-amount*100 + 0.5)
	}
	return int64(amount*100 + 0.5)
}

func itoa(i int) string { return strconv.Itoa(i) }
