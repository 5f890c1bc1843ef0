package accelevents

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

// countingTransport counts the requests a connection sends.
type countingTransport struct {
	n    atomic.Int64
	base http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

// countedEnv is newEnv with the connection's requests counted.
func countedEnv(t *testing.T, members int) (*env, *countingTransport) {
	ct := &countingTransport{base: http.DefaultTransport}
	return newEnv(t, members, func(cfg *connectors.ConnectionConfig) { cfg.HTTPClient = &http.Client{Transport: ct} }), ct
}

// allAttendees reads every attendee, without the times a write stamps.
func allAttendees(t *testing.T, e *env) []map[string]any {
	t.Helper()
	var out []map[string]any
	for page := 0; ; page++ {
		list := e.must("list_attendees", map[string]any{"page": page, "size": 500})
		data, _ := list["data"].([]any)
		for _, a := range data {
			m := a.(map[string]any)
			delete(m, "updatedAt")
			delete(m, "createdAt")
			out = append(out, m)
		}
		if len(data) < 500 {
			return out
		}
	}
}

// TestUpsertBatchMatchesEachAsOneAtATime runs the same upserts one at a
// time on one sandbox and as one batch on a twin: each person is matched
// the same way (external id first, then email whatever its case, a
// person the batch created found by a later input), every output and the
// attendees left are the same, and the batch sends fewer requests.
func TestUpsertBatchMatchesEachAsOneAtATime(t *testing.T) {
	one, oneReqs := countedEnv(t, 60)
	batch, batchReqs := countedEnv(t, 60)
	seeded := allAttendees(t, one)
	var withExt []map[string]any
	for _, a := range seeded {
		if a["externalId"] != "" && a["externalId"] != nil {
			withExt = append(withExt, a)
		}
	}
	if len(withExt) < 4 {
		t.Fatalf("the seed has %d attendees with an external id, want 4", len(withExt))
	}
	person := func(a map[string]any, change map[string]any) map[string]any {
		in := map[string]any{"externalId": a["externalId"], "email": a["email"], "firstName": a["firstName"], "lastName": a["lastName"], "ticketTypeId": 145680}
		for k, v := range change {
			if v == nil {
				delete(in, k)
			} else {
				in[k] = v
			}
		}
		return in
	}
	inputs := []map[string]any{
		person(withExt[0], nil), // as it is: unchanged
		person(withExt[1], map[string]any{"lastName": "Renamed"}),
		// No external id, the email in upper case: found by email.
		person(withExt[2], map[string]any{"externalId": nil, "email": strings.ToUpper(withExt[2]["email"].(string))}),
		person(withExt[3], map[string]any{"externalId": "member-moved", "email": strings.ToUpper(withExt[3]["email"].(string))}),
		{"externalId": "member-new-1", "email": "new.one@example.com", "firstName": "New", "lastName": "One", "ticketTypeId": 145680},
		// The same email again: finds the attendee the batch just created.
		{"externalId": "member-new-1b", "email": "NEW.ONE@example.com", "firstName": "New", "lastName": "One", "ticketTypeId": 145680},
		{"email": "new.two@example.com", "firstName": "New", "lastName": "Two", "ticketTypeId": 145680},
		// The external id wins over another person's email.
		person(withExt[0], map[string]any{"email": "changed.address@example.com"}),
	}
	oneReqs.n.Store(0)
	var want []connectors.ItemResult
	for _, in := range inputs {
		res, err := one.run("upsert_attendee", in)
		want = append(want, connectors.ItemResult{Result: res, Err: err})
	}
	batchReqs.n.Store(0)
	a := batch.spec.Action("upsert_attendee")
	if a.Batch == nil || a.Batch.Max < len(inputs) {
		t.Fatalf("upsert_attendee's batch form: %+v", a.Batch)
	}
	got, err := a.Batch.Run(context.Background(), batch.conn, inputs)
	if err != nil {
		t.Fatal(err)
	}
	batchSent, oneSent := batchReqs.n.Load(), oneReqs.n.Load()
	if len(got) != len(inputs) {
		t.Fatalf("%d results for %d inputs", len(got), len(inputs))
	}
	strip := func(r *connectors.Result) any {
		if r == nil {
			return nil
		}
		out := r.Output.(map[string]any)
		att := out["attendee"].(map[string]any)
		delete(att, "updatedAt")
		delete(att, "createdAt")
		return fmt.Sprint(out["action"], att, r.Wrote)
	}
	for i := range inputs {
		if (got[i].Err == nil) != (want[i].Err == nil) {
			t.Errorf("input %d: batch error %v, one at a time %v", i, got[i].Err, want[i].Err)
			continue
		}
		if g, w := strip(got[i].Result), strip(want[i].Result); !reflect.DeepEqual(g, w) {
			t.Errorf("input %d (%v):\n batch        %v\n one at a time %v", i, inputs[i], g, w)
		}
	}
	if g, w := allAttendees(t, batch), allAttendees(t, one); !reflect.DeepEqual(g, w) {
		t.Errorf("the batch left other attendees than one at a time (%d against %d)", len(g), len(w))
	}
	// One at a time: one or two look-ups per input, plus the writes. The
	// batch: one page of the list, plus the same writes.
	writes := int64(0)
	for _, w := range want {
		if w.Result.Output.(map[string]any)["action"] != "unchanged" {
			writes++
		}
	}
	if batchSent != 1+writes || batchSent >= oneSent {
		t.Errorf("the batch sent %d requests, want %d (one list page and %d writes); one at a time sent %d", batchSent, 1+writes, writes, oneSent)
	}
}

// TestUpsertBatchReadsTheListOnlyWithinBudget: a batch of one sends what
// Run sends (its look-ups and its write); a batch of two whose list fits a
// page costs that page and its writes; when the list last counted more
// pages than the batch's look-ups would cost, the batch looks each person
// up instead, without reading a page of the list.
func TestUpsertBatchReadsTheListOnlyWithinBudget(t *testing.T) {
	e, reqs := countedEnv(t, 60)
	a := e.spec.Action("upsert_attendee")
	people := func(from, n int) []map[string]any {
		var in []map[string]any
		for i := from; i < from+n; i++ {
			in = append(in, map[string]any{"externalId": fmt.Sprintf("member-solo-%d", i), "email": fmt.Sprintf("solo%d@example.com", i), "firstName": "So", "lastName": "Lo", "ticketTypeId": 145680})
		}
		return in
	}
	for _, tc := range []struct {
		name      string
		from, n   int
		listTotal int // the list's count as last seen; 0: none seen
		want      int64
	}{
		{"a batch of one: two look-ups and a create, as Run", 1, 1, 0, 3},
		{"two: one page of the list and two creates", 2, 2, 0, 3},
		{"two against a list of 5,000 (10 pages): four look-ups and two creates", 4, 2, 5000, 6},
	} {
		c := e.conn.(*Client)
		if tc.listTotal > 0 {
			c.listTotals.Store(c.EventURL(), tc.listTotal)
		}
		reqs.n.Store(0)
		res, err := a.Batch.Run(context.Background(), e.conn, people(tc.from, tc.n))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil || r.Result.Output.(map[string]any)["action"] != "created" {
				t.Fatalf("%s: %+v", tc.name, r)
			}
		}
		if n := reqs.n.Load(); n != tc.want {
			t.Errorf("%s: %d requests, want %d", tc.name, n, tc.want)
		}
	}
}
