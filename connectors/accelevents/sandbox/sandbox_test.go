package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors/openapi"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func loadDoc(t testing.TB) *openapi.Document {
	t.Helper()
	b, err := os.ReadFile("../openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	d, err := openapi.Load(b)
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return d
}

// harness is a seeded sandbox behind httptest; every answer to an API
// route is validated against openapi.json.
type harness struct {
	t   *testing.T
	srv *Server
	url string
	doc *openapi.Document
}

func newHarness(t *testing.T, members int, opts sandboxkit.Options) *harness {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	if opts.RateLimit == nil {
		opts.RateLimit = &sandboxkit.Limit{} // off unless a test wants it
	}
	s := New(opts)
	s.Seed(sandboxkit.Seed{Members: members, Seed: 7, Now: fixedNow})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &harness{t: t, srv: s, url: ts.URL, doc: loadDoc(t)}
}

func (h *harness) do(method, path string, header http.Header, body any) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.url+path, rd)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	p := strings.SplitN(path, "?", 2)[0]
	if !strings.HasPrefix(p, "/_sandbox") {
		if err := h.doc.ValidateResponse(method, p, res.StatusCode, data); err != nil {
			h.t.Errorf("answer not valid against openapi.json: %v\n%s", err, data)
		}
	}
	return res.StatusCode, data
}

func bearer() http.Header { return http.Header{"Authorization": {"Bearer " + DemoKey}} }

func (h *harness) api(method, path string, body any, out any) int {
	h.t.Helper()
	status, data := h.do(method, path, bearer(), body)
	if out != nil && status < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: %v\n%s", method, path, err, data)
		}
	}
	if out != nil && status >= 300 {
		_ = json.Unmarshal(data, out)
	}
	return status
}

const E = "/rest/events/" + DemoEventURL

func TestAuthHeaders(t *testing.T) {
	h := newHarness(t, 50, sandboxkit.Options{})
	cases := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"authorization bare key", http.Header{"Authorization": {DemoKey}}, 200},
		{"authorization bearer", http.Header{"Authorization": {"Bearer " + DemoKey}}, 200},
		{"key header", http.Header{"Key": {DemoKey}}, 200},
		{"wrong key", http.Header{"Authorization": {"Bearer nope"}}, 401},
		{"no key", nil, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.do("GET", E+"/staff/ticketing/settings", tc.header, nil)
			if status != tc.want {
				t.Fatalf("status %d, want %d: %s", status, tc.want, body)
			}
			if tc.want == 401 && !bytes.Contains(body, []byte(`"errorCode":"4010101"`)) {
				t.Errorf("401 body %s lacks errorCode 4010101", body)
			}
		})
	}
}

func TestErrorsCarrySevenDigitCodes(t *testing.T) {
	h := newHarness(t, 50, sandboxkit.Options{})
	var first attendeePageT
	h.api("GET", E+"/staff/allAttendees?page=0&size=1", nil, &first)
	barcode := first.Data[0].Barcode
	cases := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"event not found", "GET", "/rest/events/nope/staff/ticketing/settings", 404, "4040200"},
		{"barcode does not exist", "GET", E + "/staff/checkin/barcode/AE-NOPE/checkin/true", 406, "4060405"},
		{"first check-in", "GET", E + "/staff/checkin/barcode/" + barcode + "/checkin/true", 200, ""},
		{"ticket already used", "GET", E + "/staff/checkin/barcode/" + barcode + "/checkin/true", 406, "4060406"},
		{"bad page", "GET", E + "/staff/allAttendees?page=-1", 400, "4000001"},
		{"attendee not found", "GET", E + "/staff/attendees/1", 404, "4040400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e struct{ ErrorCode, ErrorMessage string }
			status := h.api(tc.method, tc.path, nil, &e)
			if status != tc.status || e.ErrorCode != tc.code {
				t.Fatalf("got %d %q, want %d %q", status, e.ErrorCode, tc.status, tc.code)
			}
		})
	}
}

type attendeePageT struct {
	Data []struct {
		AttendeeID int64  `json:"attendeeId"`
		Barcode    string `json:"barcode"`
		Email      string `json:"email"`
		Status     string `json:"status"`
	} `json:"data"`
	RecordsTotal    int `json:"recordsTotal"`
	RecordsFiltered int `json:"recordsFiltered"`
}

func TestPaginationIsZeroBased(t *testing.T) {
	h := newHarness(t, 500, sandboxkit.Options{})
	var all []int64
	total := -1
	for page := 0; ; page++ {
		var p attendeePageT
		if s := h.api("GET", fmt.Sprintf("%s/staff/allAttendees?page=%d&size=30", E, page), nil, &p); s != 200 {
			t.Fatalf("status %d", s)
		}
		total = p.RecordsTotal
		for _, a := range p.Data {
			all = append(all, a.AttendeeID)
		}
		if len(p.Data) < 30 {
			break
		}
	}
	if len(all) != total || total < 100 {
		t.Fatalf("walked %d attendees, recordsTotal %d", len(all), total)
	}
	for i := 1; i < len(all); i++ {
		if all[i] <= all[i-1] {
			t.Fatalf("ids not ascending at %d: %d after %d", i, all[i], all[i-1])
		}
	}
	var p attendeePageT
	h.api("GET", E+"/staff/allAttendees?searchString=member-1&size=500", nil, &p)
	if p.RecordsFiltered == 0 || p.RecordsFiltered == p.RecordsTotal {
		t.Errorf("search filtered %d of %d", p.RecordsFiltered, p.RecordsTotal)
	}
}

func TestRegistrationFlowAndWebhooks(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts := strings.TrimPrefix(strings.Split(r.Header.Get(SignatureHeader), ",")[0], "t=")
		var unix int64
		fmt.Sscan(ts, &unix)
		if r.Header.Get(SignatureHeader) != Sign(DemoWebhookSecret, unix, body) {
			t.Errorf("bad signature %q", r.Header.Get(SignatureHeader))
		}
		var d map[string]any
		json.Unmarshal(body, &d)
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
	}))
	defer hook.Close()
	h := newHarness(t, 100, sandboxkit.Options{})
	if s, _ := h.do("POST", "/_sandbox/webhooks", nil, map[string]string{"url": hook.URL}); s != 201 {
		t.Fatalf("register webhook: %d", s)
	}
	var settings struct {
		TicketTypes []struct {
			ID               int64   `json:"id"`
			Price            float64 `json:"price"`
			RemainingTickets int     `json:"remainingTickets"`
		} `json:"ticketTypes"`
	}
	h.api("GET", E+"/staff/ticketing/settings", nil, &settings)
	if len(settings.TicketTypes) != 3+len(MemberTiers) || settings.TicketTypes[2].RemainingTickets != 1 {
		t.Fatalf("want 3 public ticket types and the members' tiers, the workshop with 1 left: %+v", settings)
	}
	ga := settings.TicketTypes[0]
	var fees []map[string]any
	if s := h.api("POST", E+"/calculateFee", []any{map[string]any{"ticketQuantity": 2, "ticketingTypeId": ga.ID, "ticketPrice": ga.Price}}, &fees); s != 200 || len(fees) != 1 {
		t.Fatalf("calculateFee: %d %v", s, fees)
	}
	var created struct{ OrderID int64 }
	if s := h.api("POST", E+"/staff/ticketing/order", map[string]any{"clientDate": "22/02/2026 22:39:46", "paymentType": "UNPAID", "ticketings": []any{map[string]any{"numberOfTicket": 1, "ticketTypeId": ga.ID, "price": ga.Price}}}, &created); s != 200 {
		t.Fatalf("order: %d", s)
	}
	var form struct {
		Tickets []struct{ TicketID int64 }
	}
	h.api("GET", fmt.Sprintf("%s/staff/ticketing/order/%d/formattributes", E, created.OrderID), nil, &form)
	if len(form.Tickets) != 1 {
		t.Fatalf("form: %+v", form)
	}
	if s := h.api("POST", fmt.Sprintf("%s/staff/ticketing/order/%d/holders", E, created.OrderID), map[string]any{"holders": []any{map[string]any{"firstName": "Ada", "lastName": "Lovelace", "emailAddress": "ada@example.com", "externalId": "member-x"}}}, nil); s != 200 {
		t.Fatalf("holders: %d", s)
	}
	var pay map[string]any
	if s := h.api("POST", fmt.Sprintf("%s/staff/orders/%d/payments", E, created.OrderID), map[string]any{"amount": 500, "externalRef": "ref-1"}, &pay); s != 201 {
		t.Fatalf("payment: %d", s)
	}
	// The last workshop seat, then none.
	ws := settings.TicketTypes[2]
	line := map[string]any{"paymentType": "CC", "ticketings": []any{map[string]any{"numberOfTicket": 1, "ticketTypeId": ws.ID}}}
	if s := h.api("POST", E+"/staff/ticketing/order", line, nil); s != 200 {
		t.Fatalf("last seat: %d", s)
	}
	var e struct{ ErrorCode string }
	if s := h.api("POST", E+"/staff/ticketing/order", line, &e); s != 406 || e.ErrorCode != "4060301" {
		t.Fatalf("sold out: %d %v", s, e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.srv.WaitDeliveries(ctx)
	mu.Lock()
	defer mu.Unlock()
	topics := map[string]int{}
	for _, d := range got {
		topics[d["topic"].(string)]++
	}
	if topics[TopicRegistration] != 1 || topics[TopicOrderPaid] != 2 {
		t.Errorf("deliveries by topic: %v", topics)
	}
}

func TestRateLimitAnswers429(t *testing.T) {
	now := fixedNow
	h := newHarness(t, 10, sandboxkit.Options{RateLimit: &sandboxkit.Limit{Requests: 3, Per: time.Second}, Now: func() time.Time { return now }})
	var codes []int
	for range 5 {
		s, body := h.do("GET", E+"/staff/ticketing/settings", bearer(), nil)
		codes = append(codes, s)
		if s == 429 && !bytes.Contains(body, []byte("4290001")) {
			t.Errorf("429 body: %s", body)
		}
	}
	if fmt.Sprint(codes) != "[200 200 200 429 429]" {
		t.Fatalf("codes %v", codes)
	}
}

func TestFaultsAreDeterministicForASeed(t *testing.T) {
	run := func() []int {
		h := newHarness(t, 10, sandboxkit.Options{Faults: sandboxkit.Faults{FailRate: 0.3, Seed: 42}})
		var codes []int
		for range 20 {
			s, _ := h.do("GET", E+"/staff/ticketing/settings", bearer(), nil)
			codes = append(codes, s)
		}
		return codes
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("faults differ for one seed:\n%v\n%v", a, b)
	}
	if !strings.Contains(fmt.Sprint(a), "500") {
		t.Fatalf("no 500 in %v", a)
	}
}

func TestSeedIsDeterministic(t *testing.T) {
	dump := func(seed int64) string {
		s := New(sandboxkit.Options{})
		s.Seed(sandboxkit.Seed{Members: 300, Seed: seed, Now: fixedNow})
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", E+"/staff/allAttendees?size=500", nil)
		req.Header.Set("Key", DemoKey)
		s.ServeHTTP(rec, req)
		return rec.Body.String()
	}
	if dump(1) != dump(1) {
		t.Fatal("same seed, different data")
	}
	if dump(1) == dump(2) {
		t.Fatal("different seeds, same data")
	}
}

func TestMutateKindsAndStats(t *testing.T) {
	h := newHarness(t, 1000, sandboxkit.Options{})
	st := h.srv.Stats()
	if st.Objects["events"] != 1 || st.Objects["attendees"] < 200 || st.Objects["orders"] < 200 {
		t.Fatalf("objects %v", st.Objects)
	}
	before := st.Duplicates["attendees"]
	cases := []struct {
		m    sandboxkit.Mutation
		want int
	}{
		{sandboxkit.Mutation{Kind: MutateRegister, Count: 3}, 3},
		{sandboxkit.Mutation{Kind: MutateCheckIn, Count: 2}, 2},
		{sandboxkit.Mutation{Kind: MutatePay, Count: 4}, 4},
		{sandboxkit.Mutation{Kind: MutateRegister, Count: 2, Args: map[string]any{"email": "dup@example.com"}}, 2},
		{sandboxkit.Mutation{Kind: MutateReprice, Args: map[string]any{"price": 249.0}}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.m.Kind, func(t *testing.T) {
			out, err := h.srv.Mutate(tc.m)
			if err != nil || out["changed"] != tc.want {
				t.Fatalf("%v %v", out, err)
			}
		})
	}
	if _, err := h.srv.Mutate(sandboxkit.Mutation{Kind: "explode"}); err == nil || !strings.Contains(err.Error(), "check_in, pay, register") {
		t.Errorf("unknown kind: %v", err)
	}
	st = h.srv.Stats()
	if st.Duplicates["attendees"] != before+1 {
		t.Errorf("duplicates %d, want %d", st.Duplicates["attendees"], before+1)
	}
	var sum struct{ CheckedIn int }
	h.api("GET", E+"/staff/checkin/summary", nil, &sum)
	if sum.CheckedIn != 2 {
		t.Errorf("checked in %d", sum.CheckedIn)
	}
	if n := h.srv.Stats().Requests["GET /rest/events/{eventUrl}/staff/checkin/summary"]; n != 1 {
		t.Errorf("summary requests counted %d, want 1", n)
	}
}

func TestEveryDocumentedRouteAnswersValidly(t *testing.T) {
	h := newHarness(t, 100, sandboxkit.Options{})
	var p attendeePageT
	h.api("GET", E+"/staff/allAttendees?size=5", nil, &p)
	a := p.Data[0]
	var orders struct {
		Data []struct{ OrderID int64 }
	}
	h.api("GET", E+"/staff/orders?size=5", nil, &orders)
	o := orders.Data[0].OrderID
	var typ struct{ ID int64 }
	h.api("POST", E+"/staff/ticketTypes", map[string]any{"name": "Day Pass", "price": 49, "totalTickets": 10}, &typ)
	var hook struct{ WebhookID int64 }
	h.api("POST", E+"/webhooks", map[string]any{"url": "http://127.0.0.1:1/hook", "topics": []string{TopicCheckedIn}}, &hook)
	calls := []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/rest/events", nil, 200},
		{"GET", E, nil, 200},
		{"GET", E + "/staff/orders?searchDate=2026-01-01", nil, 200},
		{"GET", fmt.Sprintf("%s/staff/orders/%d", E, o), nil, 200},
		{"GET", fmt.Sprintf("%s/staff/orders/%d/payments", E, o), nil, 200},
		{"GET", E + "/staff/payments?externalRef=x", nil, 200},
		{"GET", fmt.Sprintf("%s/staff/attendees?email=%s", E, a.Email), nil, 200},
		{"GET", fmt.Sprintf("%s/staff/attendees/%d", E, a.AttendeeID), nil, 200},
		{"PUT", fmt.Sprintf("%s/staff/attendees/%d", E, a.AttendeeID), map[string]any{"seatNumber": "A1"}, 200},
		{"GET", E + "/staff/checkin/barcode/" + a.Barcode, nil, 200},
		{"POST", E + "/staff/attendees", map[string]any{"ticketTypeId": typ.ID, "firstName": "Grace", "lastName": "Hopper", "email": "grace@example.com"}, 200},
		{"POST", E + "/staff/attendees", map[string]any{"ticketTypeId": typ.ID, "firstName": "", "lastName": "Hopper", "email": "grace@example.com"}, 400},
		{"GET", E + "/staff/ticketTypes", nil, 200},
		{"GET", fmt.Sprintf("%s/staff/ticketTypes/%d", E, typ.ID), nil, 200},
		{"PUT", fmt.Sprintf("%s/staff/ticketTypes/%d", E, typ.ID), map[string]any{"price": 59}, 200},
		{"DELETE", fmt.Sprintf("%s/staff/ticketTypes/%d", E, typ.ID), nil, 400},
		{"GET", E + "/webhooks", nil, 200},
		{"GET", fmt.Sprintf("%s/webhooks/%d", E, hook.WebhookID), nil, 200},
		{"PUT", fmt.Sprintf("%s/webhooks/%d", E, hook.WebhookID), map[string]any{"url": "http://127.0.0.1:1/other"}, 200},
		{"DELETE", fmt.Sprintf("%s/webhooks/%d", E, hook.WebhookID), nil, 200},
		{"POST", fmt.Sprintf("%s/staff/orders/%d/refund", E, o), map[string]any{"reason": "test"}, 200},
		{"DELETE", fmt.Sprintf("%s/staff/attendees/%d", E, a.AttendeeID), nil, 200},
	}
	for _, c := range calls {
		if s, body := h.do(c.method, c.path, bearer(), c.body); s != c.want {
			t.Errorf("%s %s: %d, want %d: %s", c.method, c.path, s, c.want, body)
		}
	}
}

func BenchmarkSimpleGET(b *testing.B) {
	s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
	s.Seed(sandboxkit.Seed{Members: 10000, Seed: 1, Now: fixedNow})
	ts := httptest.NewServer(s)
	defer ts.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64}
	client := &http.Client{Transport: tr}
	url := ts.URL + E + "/staff/attendees/900001"
	b.SetParallelism(16) // many connections in flight, as a worker pool makes
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+DemoKey)
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Fatalf("status %d", res.StatusCode)
			}
		}
	})
}

func BenchmarkSeedMillionMembers(b *testing.B) {
	s := New(sandboxkit.Options{})
	var before, after runtime.MemStats
	for b.Loop() {
		b.StopTimer()
		s.Reset()
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		s.Seed(sandboxkit.Seed{Members: 1_000_000, Seed: 1, Now: fixedNow})
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.StartTimer()
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "live-B/member")
	b.ReportMetric(float64(len(s.events[DemoEventURL].atts)), "attendees")
}

func BenchmarkSimpleGETHandler(b *testing.B) {
	s := New(sandboxkit.Options{RateLimit: &sandboxkit.Limit{}})
	s.Seed(sandboxkit.Seed{Members: 10000, Seed: 1, Now: fixedNow})
	req := httptest.NewRequest("GET", E+"/staff/attendees/900001", nil)
	req.Header.Set("Authorization", "Bearer "+DemoKey)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}

func BenchmarkLoopbackBaseline(b *testing.B) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) }))
	defer ts.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64}}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := client.Get(ts.URL)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}
