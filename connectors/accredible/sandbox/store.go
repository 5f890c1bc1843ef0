package sandbox

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// credential is one stored credential: a compact struct, its maps nil when
// empty. Credentials live in a slice indexed by id-firstCredentialID;
// deleted ones stay as tombstones so that indexes stay valid.
type credential struct {
	id                int64
	groupID           int64
	name, description string
	recipientName     string
	recipientEmail    string
	recipientID       string
	issuedOn          string // YYYY-MM-DD
	expiredOn         string // YYYY-MM-DD, empty for null
	approve           bool
	complete          bool
	private           bool
	deleted           bool
	createdAt         int64 // unix milliseconds
	updatedAt         int64
	// extra holds the fields most credentials leave empty; nil when all
	// are, which saves a hundred bytes a credential.
	extra *credentialExtra
}

type credentialExtra struct {
	recipientPhone   string
	licenseID        string // the caller's own `id` for the credential
	grade            string // empty for null
	customAttributes map[string]any
	metaData         map[string]any
	recipientMeta    map[string]any
	evidence         []evidenceItem
	references       []reference
	// allow_supplemental_evidence and allow_supplemental_references, as
	// set by a create or update; unset answers null.
	allowEvidence, allowReferences optBool
}

// optBool is a boolean that may be unset (null).
type optBool uint8

const (
	unset optBool = iota
	isFalse
	isTrue
)

func optBoolOf(b bool) optBool {
	if b {
		return isTrue
	}
	return isFalse
}

// json is the value as an answer shows it: nil for unset.
func (o optBool) json() *bool {
	if o == unset {
		return nil
	}
	b := o == isTrue
	return &b
}

// noExtra is what x returns for a credential without extra fields. It is
// only ever read.
var noExtra credentialExtra

// x reads the extra fields.
func (c *credential) x() *credentialExtra {
	if c.extra == nil {
		return &noExtra
	}
	return c.extra
}

// mx returns the extra fields for writing, allocating them.
func (c *credential) mx() *credentialExtra {
	if c.extra == nil {
		c.extra = &credentialExtra{}
	}
	return c.extra
}

// clone copies the extra fields so that a draft can change them without
// touching the stored credential (whose indexes depend on them).
func (e *credentialExtra) clone() *credentialExtra {
	if e == nil {
		return nil
	}
	out := *e
	out.evidence = append([]evidenceItem(nil), e.evidence...)
	out.references = append([]reference(nil), e.references...)
	return &out
}

type evidenceItem struct {
	id                   int64
	description, kind    string // kind is the category: file, url, video, grade, transcript
	url, stringObject    string
	preview, insight     string
	position             int
	supplemental, hidden bool
}

type reference struct {
	id                        int64
	description, relationship string
	refereeName, refereeEmail string
	refereeAvatar, refereeURL string
	position                  int
	supplemental              bool
}

const firstCredentialID = 10000001

// logEntry is one position of the updated_at-ordered index: the credential
// at idx was updated at `at`. A later update appends a new entry and makes
// this one stale (at no longer equals the credential's updatedAt).
type logEntry struct {
	at  int64
	idx int32
}

// credentialStore holds credentials with the indexes the common searches
// use, so that a look-up by recipient or a poll by updated_at never scans
// every credential.
type credentialStore struct {
	creds       []credential
	live        int
	byEmail     multiIndex // lower-cased recipient email
	byRecipient multiIndex
	byLicense   multiIndex
	byMeta      multiIndex // "key\x00value" of each string meta_data entry
	byGroup     map[int64][]int32
	updatedLog  []logEntry
	staleLog    int
	lastStamp   int64 // keeps timestamps monotonic, so the log stays sorted
}

func newCredentialStore() *credentialStore {
	return &credentialStore{
		byEmail:     newMultiIndex(),
		byRecipient: newMultiIndex(),
		byLicense:   newMultiIndex(),
		byMeta:      newMultiIndex(),
		byGroup:     map[int64][]int32{},
	}
}

// stamp returns a timestamp not before the previous one.
func (s *credentialStore) stamp(now time.Time) int64 {
	ms := now.UnixMilli()
	if ms < s.lastStamp {
		ms = s.lastStamp
	}
	s.lastStamp = ms
	return ms
}

func (s *credentialStore) get(id int64) (*credential, bool) {
	i := id - firstCredentialID
	if i < 0 || i >= int64(len(s.creds)) || s.creds[i].deleted {
		return nil, false
	}
	return &s.creds[i], true
}

// insert stores c, assigning its id and timestamps.
func (s *credentialStore) insert(c credential, now time.Time) *credential {
	c.id = firstCredentialID + int64(len(s.creds))
	c.createdAt = s.stamp(now)
	c.updatedAt = c.createdAt
	idx := int32(len(s.creds))
	s.creds = append(s.creds, c)
	s.live++
	s.index(idx)
	s.updatedLog = append(s.updatedLog, logEntry{at: c.updatedAt, idx: idx})
	return &s.creds[idx]
}

func (s *credentialStore) index(idx int32) {
	c := &s.creds[idx]
	s.eachKey(c, func(m multiIndex, k string) { m.add(k, idx) })
	s.byGroup[c.groupID] = append(s.byGroup[c.groupID], idx)
}

func (s *credentialStore) unindex(idx int32) {
	c := &s.creds[idx]
	s.eachKey(c, func(m multiIndex, k string) { m.remove(k, idx) })
	removeIdx(s.byGroup, c.groupID, idx)
}

// eachKey calls f with every multiIndex that files c and the key it is
// filed under, so that index and unindex cannot disagree.
func (s *credentialStore) eachKey(c *credential, f func(m multiIndex, k string)) {
	if c.recipientEmail != "" {
		f(s.byEmail, strings.ToLower(c.recipientEmail))
	}
	if c.recipientID != "" {
		f(s.byRecipient, c.recipientID)
	}
	if c.x().licenseID != "" {
		f(s.byLicense, c.x().licenseID)
	}
	for k, v := range c.x().metaData {
		if sv, ok := v.(string); ok {
			f(s.byMeta, metaKey(k, sv))
		}
	}
}

func removeIdx[K comparable](m map[K][]int32, k K, idx int32) {
	l := m[k]
	for i, v := range l {
		if v == idx {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(m, k)
	} else {
		m[k] = l
	}
}

// update applies change to the credential and moves it to the end of the
// updated_at order.
func (s *credentialStore) update(c *credential, now time.Time, change func(c *credential)) {
	idx := int32(c.id - firstCredentialID)
	s.unindex(idx)
	change(c)
	s.index(idx)
	s.touch(c, now)
}

func (s *credentialStore) touch(c *credential, now time.Time) {
	at := s.stamp(now)
	if at == c.updatedAt {
		return // its log entry at this instant is still current
	}
	c.updatedAt = at
	s.updatedLog = append(s.updatedLog, logEntry{at: at, idx: int32(c.id - firstCredentialID)})
	s.staleLog++
	s.compactLog()
}

func (s *credentialStore) remove(c *credential) {
	idx := int32(c.id - firstCredentialID)
	s.unindex(idx)
	c.deleted = true
	s.live--
	s.staleLog++
	s.compactLog()
}

// compactLog drops stale entries once they outnumber the live ones.
func (s *credentialStore) compactLog() {
	if s.staleLog < 1024 || s.staleLog < len(s.updatedLog)/2 {
		return
	}
	out := s.updatedLog[:0]
	for _, e := range s.updatedLog {
		c := &s.creds[e.idx]
		if !c.deleted && c.updatedAt == e.at {
			out = append(out, e)
		}
	}
	s.updatedLog = out
	s.staleLog = 0
}

// updatedSince returns the live credentials updated at or after ms, in
// updated_at order.
func (s *credentialStore) updatedSince(ms int64) []int32 {
	i := sort.Search(len(s.updatedLog), func(i int) bool { return s.updatedLog[i].at >= ms })
	out := make([]int32, 0, len(s.updatedLog)-i)
	for _, e := range s.updatedLog[i:] {
		c := &s.creds[e.idx]
		if !c.deleted && c.updatedAt == e.at {
			out = append(out, e.idx)
		}
	}
	return out
}

// createdSince returns the live credentials created at or after ms, in id
// order (ids are handed out in creation order).
func (s *credentialStore) createdSince(ms int64) []int32 {
	i := sort.Search(len(s.creds), func(i int) bool { return s.creds[i].createdAt >= ms })
	out := make([]int32, 0, len(s.creds)-i)
	for ; i < len(s.creds); i++ {
		if !s.creds[i].deleted {
			out = append(out, int32(i))
		}
	}
	return out
}

// all returns every live credential in id order.
func (s *credentialStore) all() []int32 {
	out := make([]int32, 0, s.live)
	for i := range s.creds {
		if !s.creds[i].deleted {
			out = append(out, int32(i))
		}
	}
	return out
}

// duplicates counts credentials beyond the first sharing a group and a
// recipient email.
func (s *credentialStore) duplicates() int {
	n := 0
	for _, l := range s.byEmail.more {
		seen := map[int64]bool{}
		for _, idx := range l {
			g := s.creds[idx].groupID
			if seen[g] {
				n++
			}
			seen[g] = true
		}
	}
	return n
}

func formatStamp(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// encodedID is the short public id in credential URLs.
func encodedID(id int64) string { return strconv.FormatInt(id*7+3, 36) }

func metaKey(k, v string) string { return k + "\x00" + v }

// multiIndex maps a key to the credentials that have it. Most keys (an
// email, a recipient id, a reference) belong to one credential: those
// cost one map entry and no slice; keys shared by several move to more.
type multiIndex struct {
	one  map[string]int32
	more map[string][]int32
}

func newMultiIndex() multiIndex {
	return multiIndex{one: map[string]int32{}, more: map[string][]int32{}}
}

func (m multiIndex) add(k string, idx int32) {
	if l, ok := m.more[k]; ok {
		m.more[k] = append(l, idx)
		return
	}
	if first, ok := m.one[k]; ok {
		delete(m.one, k)
		m.more[k] = []int32{first, idx}
		return
	}
	m.one[k] = idx
}

func (m multiIndex) remove(k string, idx int32) {
	if first, ok := m.one[k]; ok {
		if first == idx {
			delete(m.one, k)
		}
		return
	}
	removeIdx(m.more, k, idx)
	if l := m.more[k]; len(l) == 1 {
		delete(m.more, k)
		m.one[k] = l[0]
	}
}

// get returns the credentials with the key; the slice must not be changed.
func (m multiIndex) get(k string) []int32 {
	if l, ok := m.more[k]; ok {
		return l
	}
	if idx, ok := m.one[k]; ok {
		return []int32{idx}
	}
	return nil
}
