package memberships

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
	"github.com/memberflow/memberflow/internal/jsondec"
)

// pageSize is the most the search answers per page.
const pageSize = 100

// Pollers read a collection one of two ways.
//
// Scan (users, by default): GoHighLevel documents no "changed since"
// filter on GET /users/search, only skip/limit paging, a sort field and a
// direction. Each poll walks every user in the order they were added
// (sort=dateAdded, sortDirection=asc), one page per Poll call, and compares
// each user's fingerprint with the one remembered: only a user whose
// fingerprint changed is an event. A scan costs ScanRequests(N) requests
// for N users; ScanInterval gives the shortest interval within the
// documented limits. A user deleted while a scan is under way shifts the
// pages after it by one: a user moved across a page boundary is read
// twice (harmless) or not at all until the next scan (late, not lost).
//
// Incremental (payments, whose API is ours; users with the connection
// option incrementalSearch): records are walked in the order of their
// last change (sort by the change field, updatedAfter inclusive, order
// asc), so After is the newest change seen and IDs the records seen at
// exactly that time, skipped when the inclusive query returns them again.
//
// cursor is a polling trigger's durable position.
//
// Start is when the trigger started: records that last changed before it
// are the baseline, remembered (PollResult.States) but not emitted, so
// that later changes are compared with what they were. Starting at the
// beginning sets Start to zero: everything is emitted.
type cursor struct {
	Start int64    `json:"start"`
	After string   `json:"after,omitempty"`
	IDs   []string `json:"ids,omitempty"`
	// Skip pages past more than a page of records sharing one timestamp
	// (incremental), or is the position in the scan under way.
	Skip int `json:"skip,omitempty"`
	// Scans counts the completed scans (scan mode).
	Scans int `json:"scans,omitempty"`
}

func decodeCursor(req connectors.PollRequest) (cursor, error) {
	if req.Cursor == "" {
		c := cursor{}
		if req.Start != connectors.StartBeginning {
			now := req.Now
			if now.IsZero() {
				now = time.Now()
			}
			c.Start = now.UnixNano()
		}
		return c, nil
	}
	var c cursor
	if err := json.Unmarshal([]byte(req.Cursor), &c); err != nil {
		return c, fmt.Errorf("cursor %q is not one this trigger wrote: %w", req.Cursor, err)
	}
	return c, nil
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// source is a collection a trigger polls.
type source struct {
	path, items         string
	sortField           string // the API's name for "last changed"
	addedField, changed string // record fields: creation time, last change
	subject             func(id string) string
	fingerprint         func(map[string]any) string
	query               func(c *Client) (url.Values, error)
	// incremental reports whether the API filters this collection by
	// last change; otherwise it is scanned.
	incremental func(c *Client) bool
	// addedSort names the scan order: oldest added first.
	addedSort string
}

var usersSource = source{
	path: "/users/search", items: "users", sortField: "dateUpdated",
	addedField: "dateAdded", changed: "dateUpdated",
	subject: userSubject, fingerprint: UserFingerprint,
	query: func(c *Client) (url.Values, error) {
		company, err := c.need("user triggers", "companyId", c.companyID)
		if err != nil {
			return nil, err
		}
		q := url.Values{"companyId": {company}}
		if c.locationID != "" {
			// The search's own filter (documented, optional): with an
			// agency token it would otherwise read every sub-account of
			// the company, and fire recipes for people outside the
			// connection's location.
			q.Set("locationId", c.locationID)
		}
		return q, nil
	},
	incremental: func(c *Client) bool { return c.incrementalSearch },
	addedSort:   "dateAdded",
}

var paymentsSource = source{
	path: "/payments", items: "payments", sortField: "updatedAt",
	addedField: "createdAt", changed: "updatedAt",
	subject: paymentSubject, fingerprint: PaymentFingerprint,
	query:       func(*Client) (url.Values, error) { return url.Values{}, nil },
	incremental: func(*Client) bool { return true }, // documented in our openapi.json
}

// seen is one record as a poll found it.
type seen struct {
	rec             map[string]any
	raw             json.RawMessage // rec as the API sent it, if kept
	id, subject, fp string
	added, changed  int64
	prior           string
	hasPrior        bool
	// baseline is true for a record whose last change is older than the
	// trigger's start: remembered, never emitted.
	baseline bool
	start    int64
}

// decide turns one record into an event, or nil.
type decide func(s *seen, params map[string]any) *connectors.Event

// poller is a TriggerSpec.Poll over a source.
func poller(src source, pick decide) func(context.Context, connectors.Conn, connectors.PollRequest) (*connectors.PollResult, error) {
	return func(ctx context.Context, conn connectors.Conn, req connectors.PollRequest) (*connectors.PollResult, error) {
		return poll(ctx, conn, req, src, pick)
	}
}

// page is one answer of a search: its records and the total count.
type page struct {
	Items []map[string]any
	// Texts are the records as the API sent them (the events' Raw), when
	// the decoder kept them.
	Texts [][]byte
	Count int
}

// decoders decode pages; a decoder shares keys between the pages it
// decodes.
var decoders = sync.Pool{New: func() any { return new(jsondec.Decoder) }}

// readPage takes the records (a list of objects or nulls; null is no
// list) and the count from a decoded answer. A count that is not a
// whole number is 0.
func readPage(answer map[string]any, items string) (page, error) {
	var p page
	list, ok := answer[items].([]any)
	if !ok {
		if v, found := answer[items]; !found || v != nil {
			return p, fmt.Errorf("want a list, got %s", jsonKind(v, found))
		}
	}
	if list != nil {
		p.Items = make([]map[string]any, len(list))
	}
	for i, v := range list {
		rec, ok := v.(map[string]any)
		if !ok && v != nil {
			return page{}, fmt.Errorf("record %d: want an object, got %s", i, jsonKind(v, true))
		}
		p.Items[i] = rec
	}
	if n, ok := answer["count"].(float64); ok && n == math.Trunc(n) && math.Abs(n) <= 1<<53 {
		p.Count = int(n)
	}
	return p, nil
}

// jsonKind names the JSON type of a decoded value, for errors.
func jsonKind(v any, found bool) string {
	switch v.(type) {
	case nil:
		if !found {
			return "nothing"
		}
		return "null"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// poll fetches the next page of changes and lets decide pick the events.
func poll(ctx context.Context, conn connectors.Conn, req connectors.PollRequest, src source, pick decide) (*connectors.PollResult, error) {
	c, err := connectors.As[*Client](conn)
	if err != nil {
		return nil, err
	}
	cur, err := decodeCursor(req)
	if err != nil {
		return nil, err
	}
	q, err := src.query(c)
	if err != nil {
		return nil, err
	}
	incremental := src.incremental(c)
	if incremental {
		q.Set("sort", src.sortField)
		q.Set("order", "asc")
		if cur.After != "" {
			q.Set("updatedAfter", cur.After)
		}
	} else {
		q.Set("sort", src.addedSort)
		q.Set("sortDirection", "asc")
	}
	q.Set("limit", fmt.Sprint(pageSize))
	if cur.Skip > 0 {
		q.Set("skip", fmt.Sprint(cur.Skip))
	}
	resp, err := c.api.JSON(ctx, apiclient.Request{Method: http.MethodGet, Path: src.path, Query: q}, nil)
	if err != nil {
		return nil, err
	}
	var answer map[string]any
	var texts [][]byte
	if len(bytes.TrimSpace(resp.Body)) > 0 {
		d := decoders.Get().(*jsondec.Decoder)
		answer, texts, err = d.ObjectAndList(resp.Body, src.items)
		decoders.Put(d)
		if err != nil {
			return nil, fmt.Errorf("%s %s %s: decoding the answer: %w", c.api.Service(), http.MethodGet, src.path, err)
		}
	}
	page, err := readPage(answer, src.items)
	if err != nil {
		return nil, fmt.Errorf("memberships: GET %s: %q is not a list of records: %w", src.path, src.items, err)
	}
	if len(texts) == len(page.Items) {
		page.Texts = texts
	}

	var fresh []*seen
	for i, rec := range page.Items {
		id, _ := rec["id"].(string)
		changedAt, _ := rec[src.changed].(string)
		if id == "" || (incremental && changedAt == "") {
			return nil, fmt.Errorf("memberships: GET %s: a record has no id or %s", src.path, src.changed)
		}
		if incremental && changedAt == cur.After && slices.Contains(cur.IDs, id) {
			continue // seen by the previous poll
		}
		s := &seen{rec: rec, id: id, subject: src.subject(id), fp: src.fingerprint(rec), start: cur.Start}
		if page.Texts != nil {
			s.raw = page.Texts[i]
		}
		if a, _ := rec[src.addedField].(string); a != "" {
			s.added = parseTime(a)
		}
		if changedAt != "" {
			s.changed = parseTime(changedAt)
			s.baseline = s.changed < cur.Start
		} else {
			// GoHighLevel's own user has no change time: the first scan
			// after starting "now" is the baseline, and a user first
			// seen later counts as added then.
			s.baseline = cur.Start != 0 && cur.Scans == 0
			if s.added == 0 && !s.baseline {
				s.added = cur.Start
			}
			s.changed = s.added
		}
		fresh = append(fresh, s)
	}
	res := &connectors.PollResult{Total: page.Count, More: len(page.Items) == pageSize}
	if !incremental && page.Count > 0 && cur.Skip+len(page.Items) >= page.Count {
		// The search's count is the total: the page that reaches it ends
		// the scan, without a request for an empty page after it.
		res.More = false
	}
	if len(fresh) > 0 && req.Prior != nil {
		subjects := make([]string, len(fresh))
		for i, s := range fresh {
			subjects[i] = s.subject
		}
		prior, err := req.Prior.Lookup(ctx, subjects)
		if err != nil {
			return nil, fmt.Errorf("memberships: reading remembered states: %w", err)
		}
		for _, s := range fresh {
			s.prior, s.hasPrior = prior[s.subject]
		}
	}
	for _, s := range fresh {
		if ev := pick(s, req.Params); ev != nil && !s.baseline {
			res.Events = append(res.Events, *ev)
		}
		// Only a state that changed is remembered again: a scan of
		// unchanged users writes nothing.
		if !s.hasPrior || s.prior != s.fp {
			res.States = append(res.States, connectors.Record{Subject: s.subject, State: s.fp})
		}
	}
	if !incremental {
		// Advance the scan; a short page ends it, and the next poll
		// starts the next scan from the first user.
		next := cur
		next.Skip = cur.Skip + len(page.Items)
		if !res.More {
			next.Skip, next.Scans = 0, cur.Scans+1
			res.MinInterval = c.scanPace(req.Recipe, max(page.Count, cur.Skip+len(page.Items)), req.Now)
		}
		res.Cursor = next.encode()
		return res, nil
	}
	// Advance past this page.
	next := cur
	next.Skip = 0
	for _, rec := range page.Items {
		changedAt, _ := rec[src.changed].(string)
		id, _ := rec["id"].(string)
		if changedAt != next.After {
			next.After, next.IDs = changedAt, nil
		}
		if !slices.Contains(next.IDs, id) {
			next.IDs = append(next.IDs, id)
		}
	}
	if len(fresh) == 0 && res.More {
		// A full page of records sharing one timestamp, all seen: step
		// over them by position.
		next.Skip = cur.Skip + len(page.Items)
	}
	res.Cursor = next.encode()
	return res, nil
}

// scanShare is the part of the location's daily budget the scans may
// spend; the rest is the writes' and other connections'.
const scanShare = 0.5

// scanPace is the least time between two scans of recipe's trigger, for
// members users: the scans of the connection's recipes seen in the last
// day share scanShare of the daily budget (ScanInterval). Polled every
// minute by default, six recipes scanning 2,300 members would spend the
// whole 200,000 requests a day, and the service then pauses the
// location's writes too.
func (c *Client) scanPace(recipe string, members int, now time.Time) time.Duration {
	c.scanMu.Lock()
	defer c.scanMu.Unlock()
	if c.scanners == nil {
		c.scanners = map[string]time.Time{}
	}
	c.scanners[recipe] = now
	for r, at := range c.scanners {
		if now.Sub(at) > 25*time.Hour {
			delete(c.scanners, r)
		}
	}
	return ScanInterval(members, len(c.scanners), 1-scanShare)
}

// ScanRequests is what one scan of the users costs: one request per page
// of 100 (the search's count says which page is the last).
func ScanRequests(members int) int {
	return max(1, (members+pageSize-1)/pageSize)
}

// ScanInterval is the shortest poll interval at which triggers scanning
// user triggers stay within GoHighLevel's documented limits (100 requests
// per 10 s, 200,000 a day per location) while leaving share (0 to 1) of
// the daily budget to everything else (the writes, the other
// connections). A scan cannot be shorter than the burst limit allows.
func ScanInterval(members, triggers int, share float64) time.Duration {
	if triggers < 1 {
		triggers = 1
	}
	perPoll := float64(ScanRequests(members) * triggers)
	daily := dailyLimit * (1 - share)
	if daily <= 0 {
		return 0
	}
	byDay := time.Duration(perPoll / daily * float64(24*time.Hour))
	byBurst := time.Duration(perPoll / float64(rateLimit.Requests) * float64(rateLimit.Per))
	return max(byDay, byBurst).Round(time.Second)
}

func parseTime(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0
	}
	return t.UnixNano()
}

func timeOf(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// matches reports whether v passes a one-or-many filter (absent: all).
func matches(filter any, v string) bool {
	if filter == nil {
		return true
	}
	return slices.Contains(stringList(filter), v)
}
