package engine_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// fakeService is an in-memory membership and certificate service whose
// behaviour a test controls. It counts the writes that took effect, so a
// test can prove there is no duplicate effect.
type fakeService struct {
	mu      sync.Mutex
	members map[string]*member
	sorted  []string          // member ids, sorted, for paging
	creds   map[string]string // credential id -> member id
	nextID  int

	calls   map[string]int // per action, every call
	creates int            // credentials created (effects)
	updates int            // member updates (effects)

	// Faults, consumed one per call.
	createRetryable int  // fail with a retryable 503 before acting
	createInDoubt   int  // create, then answer in doubt
	createLostReq   int  // answer in doubt without creating
	createPermanent bool // fail with a 422
	settleFail      bool // Settle fails permanently
	pollFailures    int  // polls that fail with a retryable 503 first
	// passPace is the PollResult.MinInterval of the page that ends a pass.
	passPace time.Duration
	block    chan struct{}
	// pollHold, when set, runs at the start of each poll with its cursor.
	pollHold func(cursor string)

	// Batch form of create_cert.
	batches              []int                               // size of each batch call
	itemPermanent        map[string]bool                     // members whose item fails with a 422
	itemRetryable        map[string]int                      // members whose item fails transiently first
	batchInDoubtMulti    bool                                // the first call of several inputs creates, then answers in doubt
	inDoubtSize          int                                 // how many inputs that call carried
	batchHold            func(ctx context.Context, size int) // runs inside the first batch call
	entered              chan string                         // receives the member id when a create starts
	createDelay          time.Duration                       // how long a create takes
	creating, mostAtOnce int                                 // creates in flight, and their most at once

	// per-subject execution log, for ordering tests
	active  map[string]int
	log     map[string][]int
	overlap bool
}

type member struct {
	ID      string
	Status  string
	Cert    string
	Version int
}

func newFakeService(n int, eligible func(i int) bool) *fakeService {
	f := &fakeService{members: map[string]*member{}, creds: map[string]string{}, calls: map[string]int{},
		active: map[string]int{}, log: map[string][]int{}, itemPermanent: map[string]bool{}, itemRetryable: map[string]int{}}
	for i := 1; i <= n; i++ {
		st := "lapsed"
		if eligible(i) {
			st = "active"
		}
		id := fmt.Sprintf("m%03d", i)
		f.members[id] = &member{ID: id, Status: st, Version: 1}
	}
	return f
}

func (m *member) fingerprint() string { return fmt.Sprintf("%s|%s|%d", m.Status, m.Cert, m.Version) }

func (m *member) data() map[string]any {
	return map[string]any{"id": m.ID, "status": m.Status, "cert": m.Cert, "version": m.Version}
}

// certsFor lists the credentials of a member.
func (f *fakeService) certsFor(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for c, m := range f.creds {
		if m == id {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

func (f *fakeService) count(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[action]
}

var errTransient = &connectors.APIError{Service: "fake", Status: 503, Message: "unavailable", Retryable: true}

func (f *fakeService) create(ctx context.Context, input map[string]any) (*connectors.Result, error) {
	id, _ := input["member"].(string)
	f.mu.Lock()
	f.calls["create_cert"]++
	entered, block, delay := f.entered, f.block, f.createDelay
	f.creating++
	f.mostAtOnce = max(f.mostAtOnce, f.creating)
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.creating--; f.mu.Unlock() }()
	if delay > 0 {
		time.Sleep(delay)
	}
	if entered != nil {
		entered <- id
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.createRetryable > 0:
		f.createRetryable--
		return nil, errTransient
	case f.createPermanent:
		return nil, &connectors.APIError{Service: "fake", Status: 422, Code: "credential_invalid", Message: fmt.Sprintf("recipient %s is invalid", id)}
	case f.createLostReq > 0:
		f.createLostReq--
		return nil, &connectors.InDoubtError{Method: "POST", Path: "/credentials", Err: errors.New("connection reset")}
	}
	f.nextID++
	cid := fmt.Sprintf("c%d", f.nextID)
	f.creds[cid] = id
	f.creates++
	if f.createInDoubt > 0 {
		f.createInDoubt--
		return nil, &connectors.InDoubtError{Method: "POST", Path: "/credentials", Err: errors.New("timeout awaiting headers")}
	}
	return &connectors.Result{Output: map[string]any{"id": cid, "member": id}}, nil
}

// createBatch is create_cert's batch form: one call, one result per
// input, with per-item and per-call faults.
func (f *fakeService) createBatch(ctx context.Context, inputs []map[string]any) ([]connectors.ItemResult, error) {
	f.mu.Lock()
	f.calls["create_batch"]++
	f.batches = append(f.batches, len(inputs))
	hold := f.batchHold
	f.batchHold = nil
	f.mu.Unlock()
	if hold != nil {
		hold(ctx, len(inputs))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]connectors.ItemResult, len(inputs))
	for i, in := range inputs {
		id, _ := in["member"].(string)
		switch {
		case f.itemPermanent[id]:
			out[i].Err = &connectors.APIError{Service: "fake", Status: 422, Code: "credential_invalid", Message: fmt.Sprintf("recipient %s is invalid", id)}
			continue
		case f.itemRetryable[id] > 0:
			f.itemRetryable[id]--
			out[i].Err = errTransient
			continue
		}
		f.nextID++
		cid := fmt.Sprintf("c%d", f.nextID)
		f.creds[cid] = id
		f.creates++
		out[i].Result = &connectors.Result{Output: map[string]any{"id": cid, "member": id}}
	}
	if f.batchInDoubtMulti && f.inDoubtSize == 0 && len(inputs) > 1 {
		f.inDoubtSize = len(inputs)
		return nil, &connectors.InDoubtError{Method: "POST", Path: "/credentials/bulk", Err: errors.New("timeout awaiting headers")}
	}
	return out, nil
}

func (f *fakeService) batchSizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.batches...)
}

func (f *fakeService) settle(_ context.Context, input map[string]any) (*connectors.Result, bool, error) {
	id, _ := input["member"].(string)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["settle"]++
	if f.settleFail {
		return nil, false, &connectors.APIError{Service: "fake", Status: 400, Message: "bad search"}
	}
	for c, m := range f.creds {
		if m == id {
			return &connectors.Result{Output: map[string]any{"id": c, "member": id}}, true, nil
		}
	}
	return nil, false, nil
}

func (f *fakeService) setCert(_ context.Context, input map[string]any) (*connectors.Result, error) {
	id, _ := input["member"].(string)
	cert, _ := input["cert"].(string)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["set_cert"]++
	m, ok := f.members[id]
	if !ok {
		return nil, &connectors.APIError{Service: "fake", Status: 404, Message: "no member " + id}
	}
	if m.Cert != cert {
		m.Cert = cert
		m.Version++
		f.updates++
	}
	return &connectors.Result{Output: m.data(), Wrote: []connectors.Record{{Subject: "member/" + id, State: m.fingerprint()}}}, nil
}

// record logs the execution order of a member's events and notices two
// at once.
func (f *fakeService) record(ctx context.Context, input map[string]any) (*connectors.Result, error) {
	id, _ := input["member"].(string)
	seq := toInt(input["seq"])
	f.mu.Lock()
	f.calls["record"]++
	f.active[id]++
	if f.active[id] > 1 {
		f.overlap = true
	}
	f.mu.Unlock()
	time.Sleep(time.Duration(seq%3) * time.Millisecond)
	f.mu.Lock()
	f.active[id]--
	f.log[id] = append(f.log[id], seq)
	f.mu.Unlock()
	return &connectors.Result{Output: map[string]any{"ok": true}}, nil
}

func toInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return -1
}

// poll pages through members in id order, pageSize at a time, and emits
// an event for each member whose fingerprint differs from the remembered
// state. The cursor is the next offset; a full pass ends with More false.
func (f *fakeService) poll(ctx context.Context, req connectors.PollRequest) (*connectors.PollResult, error) {
	size := toInt(req.Params["page_size"])
	if size <= 0 {
		size = 2
	}
	off, _ := strconv.Atoi(req.Cursor)
	f.mu.Lock()
	hold := f.pollHold
	f.mu.Unlock()
	if hold != nil {
		hold(req.Cursor)
	}
	f.mu.Lock()
	f.calls["poll"]++
	if f.pollFailures > 0 {
		f.pollFailures--
		f.mu.Unlock()
		return nil, &connectors.APIError{Service: "fake", Status: 503, Message: "busy", Retryable: true}
	}
	if len(f.sorted) != len(f.members) {
		f.sorted = f.sorted[:0]
		for id := range f.members {
			f.sorted = append(f.sorted, id)
		}
		sort.Strings(f.sorted)
	}
	ids := f.sorted
	end := min(off+size, len(ids))
	page := make([]*member, 0, end-off)
	for _, id := range ids[off:end] {
		m := *f.members[id]
		page = append(page, &m)
	}
	total := len(ids)
	f.mu.Unlock()
	subjects := make([]string, len(page))
	for i, m := range page {
		subjects[i] = "member/" + m.ID
	}
	prior, err := req.Prior.Lookup(ctx, subjects)
	if err != nil {
		return nil, err
	}
	res := &connectors.PollResult{Total: total}
	for i, m := range page {
		fp := m.fingerprint()
		res.States = append(res.States, connectors.Record{Subject: subjects[i], State: fp})
		if prior[subjects[i]] == fp {
			continue
		}
		if req.Cursor == "" && req.Start == connectors.StartNow {
			continue
		}
		res.Events = append(res.Events, connectors.Event{ID: m.ID + "@" + fp, Subject: subjects[i], Fingerprint: fp, Data: m.data()})
	}
	if end < total {
		res.Cursor, res.More = strconv.Itoa(end), true
	} else {
		res.Cursor = "0"
		f.mu.Lock()
		res.MinInterval = f.passPace
		f.mu.Unlock()
	}
	return res, nil
}

const webhookSecret = "whsec-fake-0123456789"

func sign(body []byte) string {
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func verify(_ connectors.Conn, h http.Header, body []byte, _ time.Time) error {
	if !hmac.Equal([]byte(h.Get("X-Fake-Signature")), []byte(sign(body))) {
		return fmt.Errorf("X-Fake-Signature: %w", connectors.ErrUnauthorized)
	}
	return nil
}

type delivery struct {
	ID     string         `json:"id"`
	Member map[string]any `json:"member"`
}

func parse(_ context.Context, _ connectors.Conn, body []byte, _ connectors.WebhookRequest) ([]connectors.Event, error) {
	var d delivery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("decoding the delivery: %w", err)
	}
	if d.ID == "" {
		return nil, errors.New("the delivery has no id")
	}
	id, _ := d.Member["id"].(string)
	return []connectors.Event{{ID: d.ID, Subject: "member/" + id, Data: d.Member}}, nil
}

var anyObject = json.RawMessage(`{"type":"object"}`)

func op(name string) connectors.Operation {
	return connectors.Operation{Name: name, Summary: name, Input: anyObject, Output: anyObject}
}

// fakeSpec is the fake service as a connector. Every connection opened on
// it talks to svc.
func fakeSpec(svc *fakeService) *connectors.Spec {
	bind := func(f func(context.Context, map[string]any) (*connectors.Result, error)) func(context.Context, connectors.Conn, map[string]any) (*connectors.Result, error) {
		return func(ctx context.Context, _ connectors.Conn, in map[string]any) (*connectors.Result, error) {
			return f(ctx, in)
		}
	}
	return &connectors.Spec{
		Name:  "fake",
		Title: "Fake",
		Auth:  []connectors.AuthKind{connectors.AuthAPIKey},
		Open:  func(cfg connectors.ConnectionConfig) (connectors.Conn, error) { return svc, nil },
		Actions: []*connectors.ActionSpec{
			{Operation: op("create_cert"), Run: bind(svc.create),
				Settle: func(ctx context.Context, _ connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
					return svc.settle(ctx, in)
				}},
			{Operation: op("create_cert_nosettle"), Run: bind(svc.create)},
			// The single form is the batch form of one, so that a lone call
			// (which the engine sends by Run) is held and counted alike.
			{Operation: op("create_cert_batch"), Run: func(ctx context.Context, _ connectors.Conn, in map[string]any) (*connectors.Result, error) {
				out, err := svc.createBatch(ctx, []map[string]any{in})
				if err != nil {
					return nil, err
				}
				return out[0].Result, out[0].Err
			},
				Settle: func(ctx context.Context, _ connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
					return svc.settle(ctx, in)
				},
				Batch: &connectors.BatchForm{Max: 30, Run: func(ctx context.Context, _ connectors.Conn, in []map[string]any) ([]connectors.ItemResult, error) {
					return svc.createBatch(ctx, in)
				}}},
			{Operation: op("set_cert"), Idempotent: true, Run: bind(svc.setCert)},
			{Operation: op("record"), Idempotent: true, Run: bind(svc.record)},
		},
		Triggers: []*connectors.TriggerSpec{
			{Operation: op("member_updated"),
				Poll: func(ctx context.Context, _ connectors.Conn, req connectors.PollRequest) (*connectors.PollResult, error) {
					return svc.poll(ctx, req)
				},
				Webhook:         &connectors.WebhookSpec{Verify: verify, Parse: parse},
				DefaultInterval: 20 * time.Millisecond},
		},
	}
}
