package accredible

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/accredible/sandbox"
)

// countRequests counts requests by method and path.
type countRequests struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *countRequests) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

func (c *countRequests) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

func counted(e *env) *countRequests {
	c := &countRequests{base: e.lose.base, n: map[string]int{}}
	e.lose.base = c
	return c
}

func decoded(in map[string]any) map[string]any {
	b, _ := json.Marshal(in)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// upsertInputs is a batch with every path through upsert: new
// credentials, one to update, one unchanged, one the API refuses (an
// unknown group), one without an email (Run's error), and two inputs
// with one reference.
func upsertInputs() []map[string]any {
	in := func(n int, ref string) map[string]any {
		return decoded(map[string]any{"recipient": member(n), "group_id": 100001, "reference": ref, "issued_on": "2026-02-01", "expired_on": nil})
	}
	list := []map[string]any{in(1, "M1/2026"), in(2, "M2/2026"), in(3, "M3/2026"), in(4, "M4/2026")}
	updated := in(5, "M5/2026")
	updated["custom_attributes"] = map[string]any{"cpd_hours": "12"}
	unchanged := in(6, "M6/2026")
	badGroup := in(7, "M7/2026")
	badGroup["group_id"] = float64(999999)
	noEmail := in(8, "M8/2026")
	delete(noEmail["recipient"].(map[string]any), "email")
	again := in(1, "M1/2026")
	return append(list, updated, unchanged, badGroup, noEmail, again, in(9, "M9/2026"))
}

// prepare issues M5 and M6 first, so that the batch finds them.
func prepare(t *testing.T, e *env) {
	t.Helper()
	for _, n := range []int{5, 6} {
		e.run(t, "create_credential", map[string]any{"recipient": member(n), "group_id": 100001, "reference": fmt.Sprintf("M%d/2026", n), "issued_on": "2026-02-01"})
	}
}

// comparable drops what differs between two sandboxes issuing in another
// order: ids and what is made of them.
func comparable(o any) any {
	m, ok := o.(map[string]any)
	if !ok {
		return o
	}
	c := map[string]any{}
	for k, v := range m {
		switch k {
		case "id", "url", "encoded_id", "created_at", "updated_at":
		default:
			c[k] = v
		}
	}
	return c
}

func TestUpsertBatchHasRunsEffectInTwoRequests(t *testing.T) {
	inputs := upsertInputs()
	byRun, byBatch := setup(t), setup(t)
	prepare(t, byRun)
	prepare(t, byBatch)
	runCount, batchCount := counted(byRun), counted(byBatch)
	a := testSpec.Action("upsert_credential")

	var want []connectors.ItemResult
	for _, in := range inputs {
		res, err := a.Run(context.Background(), byRun.c, in)
		want = append(want, connectors.ItemResult{Result: res, Err: err})
	}
	got, err := a.Batch.Run(context.Background(), byBatch.c, inputs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(inputs) {
		t.Fatalf("%d results for %d inputs", len(got), len(inputs))
	}
	for i := range inputs {
		w, g := want[i], got[i]
		if (w.Err == nil) != (g.Err == nil) {
			t.Errorf("item %d: Run's error %v, the batch's %v", i, w.Err, g.Err)
			continue
		}
		if w.Err != nil {
			var wa, ga *connectors.APIError
			if errors.As(w.Err, &wa) != errors.As(g.Err, &ga) || (wa != nil && (wa.Status != ga.Status || wa.Retryable != ga.Retryable)) {
				t.Errorf("item %d: Run's error %v, the batch's %v", i, w.Err, g.Err)
			}
			continue
		}
		if !reflect.DeepEqual(comparable(w.Result.Output), comparable(g.Result.Output)) {
			t.Errorf("item %d:\nRun   %v\nbatch %v", i, w.Result.Output, g.Result.Output)
		}
		if len(w.Result.Wrote) != len(g.Result.Wrote) || (len(w.Result.Wrote) == 1 && w.Result.Wrote[0].State != g.Result.Wrote[0].State) {
			t.Errorf("item %d: Run wrote %v, the batch %v", i, w.Result.Wrote, g.Result.Wrote)
		}
	}
	for i, wantAction := range map[int]string{0: "created", 4: "updated", 5: "unchanged", 8: "unchanged", 9: "created"} {
		if got[i].Err != nil || out(got[i].Result)["action"] != wantAction {
			t.Errorf("item %d: %v %v, want %s", i, got[i].Result, got[i].Err, wantAction)
		}
	}
	if got[6].Err == nil || !strings.Contains(got[6].Err.Error(), "group_id is invalid") {
		t.Errorf("item 6 (unknown group): %v", got[6].Err)
	}
	// Each credential exists once: the repeated reference found the first.
	if n := credCount(byBatch); n != credCount(byRun) {
		t.Errorf("%d credentials by batch, %d by Run", n, credCount(byRun))
	}
	rc, bc := runCount.take(), batchCount.take()
	// One bulk create; Run's own create for the input without an email.
	if bc["POST /v2/credentials/bulk_create"] != 1 || bc["POST /v1/credentials"] != 1 {
		t.Errorf("batch requests %v: want one bulk create", bc)
	}
	// One search per group in the batch (the unknown group's too); Run's
	// own for the inputs sent alone (no email, the repeated reference).
	if bc["POST /v2/credentials/search"] != 4 || rc["POST /v2/credentials/search"] != len(inputs) {
		t.Errorf("searches: batch %v, Run %v", bc, rc)
	}
	// The trigger sees the batch's writes as their echo.
	p := byBatch.poll(t, triggerCreated, nil, connectors.StartBeginning, "")
	states := map[string]string{}
	for _, ev := range p.Events {
		states[ev.Subject] = ev.Fingerprint
	}
	for i, r := range got {
		if r.Err == nil && len(r.Result.Wrote) == 1 && out(r.Result)["action"] == "created" {
			if w := r.Result.Wrote[0]; states[w.Subject] != w.State {
				t.Errorf("item %d wrote %v; the trigger saw %q", i, w, states[w.Subject])
			}
		}
	}
}

func TestUpsertBatchAllRefusedEachItsReason(t *testing.T) {
	e := setup(t)
	a := testSpec.Action("upsert_credential")
	inputs := []map[string]any{
		decoded(map[string]any{"recipient": member(1), "group_id": 999998, "reference": "X1"}),
		decoded(map[string]any{"recipient": member(2), "group_id": 999999, "reference": "X2"}),
	}
	before := credCount(e)
	got, err := a.Batch.Run(context.Background(), e.c, inputs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		var api *connectors.APIError
		if !errors.As(r.Err, &api) || api.Status != http.StatusUnprocessableEntity || api.Retryable || !strings.Contains(r.Err.Error(), fmt.Sprintf("X%d", i+1)) || strings.Contains(api.Message, "item ") {
			t.Errorf("item %d: %v", i, r.Err)
		}
	}
	if credCount(e) != before {
		t.Errorf("%d credentials, was %d", credCount(e), before)
	}
}

// TestUpsertBatchInDoubtSettlesPerItem: the bulk create's answer is lost
// after it applied; each item is in doubt, and Settle finds each.
func TestUpsertBatchInDoubtSettlesPerItem(t *testing.T) {
	e := setup(t)
	a := testSpec.Action("upsert_credential")
	var inputs []map[string]any
	for n := 1; n <= 5; n++ {
		inputs = append(inputs, decoded(map[string]any{"recipient": member(n), "group_id": 100001, "reference": fmt.Sprintf("D%d", n), "issued_on": "2026-02-01"}))
	}
	before := credCount(e)
	e.lose.arm("/v2/credentials/bulk_create")
	got, err := a.Batch.Run(context.Background(), e.c, inputs)
	e.lose.arm("")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if !errors.Is(r.Err, connectors.ErrInDoubt) {
			t.Fatalf("item %d: %v, want in doubt", i, r.Err)
		}
		res, happened, err := a.Settle(context.Background(), e.c, inputs[i])
		if err != nil || !happened || out(res)["reference"] != nil && out(res)["license_id"] != inputs[i]["reference"] {
			t.Errorf("item %d: settle %v %v %v", i, res, happened, err)
		}
	}
	if credCount(e) != before+len(inputs) {
		t.Errorf("%d credentials, want %d", credCount(e), before+len(inputs))
	}
}

func TestUpsertBatchDryRunPlansAsRun(t *testing.T) {
	e := setup(t)
	prepare(t, e)
	inputs := upsertInputs()
	a := testSpec.Action("upsert_credential")
	plan := func(batch bool) []connectors.PlannedWrite {
		var planned []connectors.PlannedWrite
		conn, err := Open(connectors.ConnectionConfig{Name: "dry", BaseURL: e.url, Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: sandbox.DemoKey},
			RateLimit: &connectors.RateLimit{}, DryRun: func(p connectors.PlannedWrite) { planned = append(planned, p) }})
		if err != nil {
			t.Fatal(err)
		}
		if batch {
			if _, err := a.Batch.Run(context.Background(), conn, inputs); err != nil {
				t.Fatal(err)
			}
		} else {
			for _, in := range inputs {
				a.Run(context.Background(), conn, in)
			}
		}
		return planned
	}
	runPlan, batchPlan := plan(false), plan(true)
	if len(runPlan) == 0 || !reflect.DeepEqual(runPlan, batchPlan) {
		t.Errorf("batch planned %v\nRun planned %v", batchPlan, runPlan)
	}
}

func credCount(e *env) int { return e.sb.Stats().Objects["credentials"] }

// A credential issued elsewhere to an email in mixed case is found by an
// upsert of that email, alone and in a batch. The document calls a search
// an "exact match" (the sandbox matches so) and says nothing of the case
// of emails; the batch form looked up the lower case only and issued the
// member a second credential.
func TestUpsertFindsAnEmailInTheCaseItWasIssuedIn(t *testing.T) {
	const mixed = "Ada.Lovelace@Example.org"
	in := func(email string) map[string]any {
		return decoded(map[string]any{"recipient": map[string]any{"name": "Ada Lovelace", "email": email}, "group_id": 100001, "issued_on": "2026-02-01"})
	}
	a := testSpec.Action("upsert_credential")
	for _, how := range []string{"alone", "batch"} {
		t.Run(how, func(t *testing.T) {
			e := setup(t)
			e.run(t, "create_credential", in(mixed))
			before := credCount(e)
			var res *connectors.Result
			var err error
			if how == "alone" {
				res, err = a.Run(context.Background(), e.c, in(mixed))
			} else {
				var got []connectors.ItemResult
				got, err = a.Batch.Run(context.Background(), e.c, []map[string]any{in(mixed), in("grace.hopper@example.org")})
				if err == nil {
					res, err = got[0].Result, got[0].Err
				}
				before++ // Grace is new
			}
			if err != nil {
				t.Fatal(err)
			}
			if action := out(res)["action"]; action == "created" || credCount(e) != before {
				t.Errorf("the upsert %s: %v, credentials %d → %d; want the existing one found", how, action, before, credCount(e))
			}
		})
	}
}
