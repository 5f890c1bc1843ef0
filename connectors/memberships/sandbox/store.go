package sandbox

import (
	"iter"
	"slices"
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

// PlanIDs are the ids of the seeded plans, cheapest first (the Accelevents
// sandbox seeds a members' ticket tier for each).
func PlanIDs() []string {
	ids := make([]string, len(plans))
	for i, p := range plans {
		ids[i] = p.id
	}
	return ids
}

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

// store is the in-memory state of one location. The Server's mutex
// guards it.
type store struct {
	// location is the location's id; locationIDs is the same as the
	// roles.locationIds of its users.
	location    string
	locationIDs []string

	users       []user
	userByID    map[id20]int32
	userByEmail map[string]int32 // lower-cased email -> first user; the rest chained
	userLog     []logEntry
	userLive    liveBlocks
	liveUsers   int
	// addedLive counts the live users per block of logBlock positions in
	// st.users (the order they were added), so that a scan's page at skip
	// K is found without visiting the K users before it.
	addedLive []int32

	payments    []payment
	paymentByID map[id20]int32
	paymentByRe map[string]int32 // externalRef -> first payment; the rest chained
	paymentLog  []logEntry
	paymentLive liveBlocks
	livePays    int

	// last is the newest timestamp handed out: every change gets a
	// strictly later one, so that pollers never see two changes at once.
	last int64
}

func newStore(location string) *store {
	return &store{
		location:    location,
		locationIDs: []string{location},
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
	st.userLive.add(len(st.userLog)-1, !u.deleted)
	st.liveUsers++
	for len(st.addedLive) <= int(idx)/logBlock {
		st.addedLive = append(st.addedLive, 0)
	}
	if !u.deleted {
		st.addedLive[int(idx)/logBlock]++
	}
	return idx
}

func emailKey(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func (st *store) linkEmail(idx int32) {
	link(st.userByEmail, st.users, emailKey(st.users[idx].email), idx)
}

func (st *store) unlinkEmail(idx int32) {
	unlink(st.userByEmail, st.users, emailKey(st.users[idx].email), idx)
}

// usersByEmail returns the live users with this email, oldest first.
func (st *store) usersByEmail(email string) []int32 {
	var out []int32
	for p := range chain(st.userByEmail, st.users, emailKey(email)) {
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
	st.userLive.move(idx, len(st.userLog)-1, !st.users[idx].deleted)
	st.compact()
}

// deleteUser marks a live user deleted, changed now.
func (st *store) deleteUser(idx int32, now time.Time) {
	st.touchUser(idx, now)
	st.users[idx].deleted = true
	st.userLive.uncount(idx)
	st.liveUsers--
	st.addedLive[int(idx)/logBlock]--
}

// userCounted reports whether the user log's entry at pos is its user's
// current one and the user is not deleted: what a search by last change
// without other filters lists.
func (st *store) userCounted(pos int) bool {
	e := st.userLog[pos]
	u := &st.users[e.idx]
	return u.dateUpdated == e.at && !u.deleted
}

func (st *store) lookupUser(id string) (int32, bool) { return lookup(st.userByID, st.users, id) }

func (st *store) addPayment(p payment) int32 {
	idx := int32(len(st.payments))
	p.nextSameRef = -1
	st.payments = append(st.payments, p)
	st.paymentByID[p.id] = idx
	st.linkRef(idx)
	st.paymentLog = append(st.paymentLog, logEntry{p.updatedAt, idx})
	st.paymentLive.add(len(st.paymentLog)-1, !p.deleted)
	st.livePays++
	return idx
}

// linkRef indexes a payment by its externalRef; one without is not indexed.
func (st *store) linkRef(idx int32) {
	if ref := st.payments[idx].externalRef; ref != "" {
		link(st.paymentByRe, st.payments, ref, idx)
	}
}

func (st *store) unlinkRef(idx int32) {
	if ref := st.payments[idx].externalRef; ref != "" {
		unlink(st.paymentByRe, st.payments, ref, idx)
	}
}

func (st *store) touchPayment(idx int32, now time.Time) {
	t := st.tick(now)
	st.payments[idx].updatedAt = t
	st.paymentLog = append(st.paymentLog, logEntry{t, idx})
	st.paymentLive.move(idx, len(st.paymentLog)-1, !st.payments[idx].deleted)
	st.compact()
}

// deletePayment marks a live payment deleted, changed now.
func (st *store) deletePayment(idx int32, now time.Time) {
	st.touchPayment(idx, now)
	st.payments[idx].deleted = true
	st.paymentLive.uncount(idx)
	st.livePays--
}

// paymentCounted is userCounted for the payment log.
func (st *store) paymentCounted(pos int) bool {
	e := st.paymentLog[pos]
	p := &st.payments[e.idx]
	return p.updatedAt == e.at && !p.deleted
}

func (st *store) lookupPayment(id string) (int32, bool) {
	return lookup(st.paymentByID, st.payments, id)
}

// record is what users and payments share for their indexes: an id may
// be deleted, and a record is chained to the next one sharing its key (an
// email, an externalRef). The key's index maps it to the first record and
// each record holds the next one's position (-1: none), so that a key of
// one record costs no slice.
type record[R any] interface {
	*R
	chainNext() *int32
	isDeleted() bool
}

func (u *user) chainNext() *int32    { return &u.nextSameEmail }
func (u *user) isDeleted() bool      { return u.deleted }
func (p *payment) chainNext() *int32 { return &p.nextSameRef }
func (p *payment) isDeleted() bool   { return p.deleted }

// lookup finds the live record with the id.
func lookup[R any, P record[R]](byID map[id20]int32, records []R, id string) (int32, bool) {
	key, ok := parseID(id)
	if !ok {
		return 0, false
	}
	idx, ok := byID[key]
	if !ok || P(&records[idx]).isDeleted() {
		return 0, false
	}
	return idx, true
}

// link appends idx at the end of key's chain, so that the oldest record
// stays first.
func link[R any, P record[R]](index map[string]int32, records []R, key string, idx int32) {
	first, ok := index[key]
	if !ok {
		index[key] = idx
		return
	}
	for *P(&records[first]).chainNext() >= 0 {
		first = *P(&records[first]).chainNext()
	}
	*P(&records[first]).chainNext() = idx
}

func unlink[R any, P record[R]](index map[string]int32, records []R, key string, idx int32) {
	first, ok := index[key]
	if !ok {
		return
	}
	next := *P(&records[idx]).chainNext()
	*P(&records[idx]).chainNext() = -1
	if first == idx {
		if next >= 0 {
			index[key] = next
		} else {
			delete(index, key)
		}
		return
	}
	for p := first; p >= 0; p = *P(&records[p]).chainNext() {
		if *P(&records[p]).chainNext() == idx {
			*P(&records[p]).chainNext() = next
			return
		}
	}
}

// chain yields the positions of the records with the key, oldest first,
// deleted ones included.
func chain[R any, P record[R]](index map[string]int32, records []R, key string) iter.Seq[int32] {
	return func(yield func(int32) bool) {
		first, ok := index[key]
		for p := first; ok && p >= 0; p = *P(&records[p]).chainNext() {
			if !yield(p) {
				return
			}
		}
	}
}

// duplicates counts the live records beyond the first of each key.
func duplicates[R any, P record[R]](index map[string]int32, records []R) int {
	n := 0
	for _, first := range index {
		live := 0
		for p := first; p >= 0; p = *P(&records[p]).chainNext() {
			if !P(&records[p]).isDeleted() {
				live++
			}
		}
		n += max(live-1, 0)
	}
	return n
}

// compact drops stale log entries once they outnumber the records, so
// that a long run of mutations does not grow the logs without bound.
func (st *store) compact() {
	if len(st.userLog) > 2*len(st.users)+1024 {
		st.userLog = compactLog(st.userLog, func(e logEntry) bool { return st.users[e.idx].dateUpdated == e.at })
		st.rebuildUserLive()
	}
	if len(st.paymentLog) > 2*len(st.payments)+1024 {
		st.paymentLog = compactLog(st.paymentLog, func(e logEntry) bool { return st.payments[e.idx].updatedAt == e.at })
		st.rebuildPaymentLive()
	}
}

// rebuildUserLive recounts the user log's blocks, after the log was
// sorted or compacted.
func (st *store) rebuildUserLive() {
	st.userLive.rebuild(st.userLog, len(st.users), func(e logEntry) (current, counted bool) {
		u := &st.users[e.idx]
		return u.dateUpdated == e.at, u.dateUpdated == e.at && !u.deleted
	})
}

func (st *store) rebuildPaymentLive() {
	st.paymentLive.rebuild(st.paymentLog, len(st.payments), func(e logEntry) (current, counted bool) {
		p := &st.payments[e.idx]
		return p.updatedAt == e.at, p.updatedAt == e.at && !p.deleted
	})
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

// logBlock is how many log positions share one count in liveBlocks.
const logBlock = 1024

// liveBlocks counts, per block of logBlock log positions, the entries
// that a search by last change without other filters lists (a record's
// current entry, the record not deleted), so that such a search counts
// its matches after a cursor with a scan of one block and a sum, not a
// walk to the end of the log: pollers page through every change, and a
// walk per page made that quadratic.
type liveBlocks struct {
	pos    []int32 // per record: the log position of its current entry
	counts []int32 // per block: the counted entries
}

// add records a new record whose entry was appended at pos.
func (lb *liveBlocks) add(pos int, counted bool) {
	lb.pos = append(lb.pos, int32(pos))
	lb.grow(pos)
	if counted {
		lb.counts[pos/logBlock]++
	}
}

// move records that rec's current entry is now the one appended at pos.
func (lb *liveBlocks) move(rec int32, pos int, counted bool) {
	if counted {
		lb.counts[lb.pos[rec]/logBlock]--
	}
	lb.pos[rec] = int32(pos)
	lb.grow(pos)
	if counted {
		lb.counts[pos/logBlock]++
	}
}

// uncount stops counting rec's current entry: the record was deleted.
func (lb *liveBlocks) uncount(rec int32) { lb.counts[lb.pos[rec]/logBlock]-- }

func (lb *liveBlocks) grow(pos int) {
	for len(lb.counts) <= pos/logBlock {
		lb.counts = append(lb.counts, 0)
	}
}

// rebuild recounts from the log; classify says whether an entry is its
// record's current one and whether it is counted.
func (lb *liveBlocks) rebuild(log []logEntry, records int, classify func(logEntry) (current, counted bool)) {
	lb.pos = slices.Grow(lb.pos[:0], records)[:records]
	lb.counts = slices.Grow(lb.counts[:0], (len(log)+logBlock-1)/logBlock)[:(len(log)+logBlock-1)/logBlock]
	clear(lb.counts)
	for i, e := range log {
		current, counted := classify(e)
		if current {
			lb.pos[e.idx] = int32(i)
		}
		if counted {
			lb.counts[i/logBlock]++
		}
	}
}

// countFrom counts the entries at positions start and after (of n) that
// counted reports, scanning only start's block.
func (lb *liveBlocks) countFrom(start, n int, counted func(pos int) bool) int {
	b := start / logBlock
	c := 0
	for i := start; i < min((b+1)*logBlock, n); i++ {
		if counted(i) {
			c++
		}
	}
	for b++; b < len(lb.counts); b++ {
		c += int(lb.counts[b])
	}
	return c
}

// page returns, oldest first or (desc) newest first, the counted entries
// positions from start to n, past the first skip of them and up to limit.
// Whole blocks inside the range are skipped by their counts.
func (lb *liveBlocks) page(start, n int, desc bool, skip, limit int, counted func(pos int) bool) []int {
	var out []int
	take := func(i int) {
		if !counted(i) {
			return
		}
		if skip > 0 {
			skip--
		} else {
			out = append(out, i)
		}
	}
	if !desc {
		for i := start; i < n && len(out) < limit; {
			if b := i / logBlock; i%logBlock == 0 && skip > 0 && int(lb.counts[b]) <= skip {
				skip -= int(lb.counts[b])
				i += logBlock
				continue
			}
			take(i)
			i++
		}
		return out
	}
	for i := n - 1; i >= start && len(out) < limit; {
		b := i / logBlock
		if lo := b * logBlock; lo >= start && i == min(lo+logBlock, n)-1 && skip > 0 && int(lb.counts[b]) <= skip {
			skip -= int(lb.counts[b])
			i = lo - 1
			continue
		}
		take(i)
		i--
	}
	return out
}

// changedSince is a search by last change with no filter but updatedAfter
// (0: none), for users and payments alike: the page from the log, walked
// only as far as it needs, and the count from the log's block counts.
func changedSince(log []logEntry, live *liveBlocks, counted func(pos int) bool, updatedAfter int64, desc bool, skip, limit int) ([]int32, int) {
	start := 0
	if updatedAfter != 0 {
		start = since(log, updatedAfter)
	}
	positions := live.page(start, len(log), desc, skip, limit, counted)
	page := make([]int32, len(positions))
	for i, pos := range positions {
		page[i] = log[pos].idx
	}
	return page, live.countFrom(start, len(log), counted)
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
