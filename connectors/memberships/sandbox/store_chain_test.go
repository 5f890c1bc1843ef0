package sandbox

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

func testID(n int) id20 {
	id, _ := parseID(fmt.Sprintf("ID%018d", n))
	return id
}

// TestEmailChainKeepsOrderThroughChanges links users sharing an email and
// unlinks them from the front, the middle and the end: the look-up must
// keep the oldest first, and the duplicate count must follow.
func TestEmailChainKeepsOrderThroughChanges(t *testing.T) {
	cases := []struct {
		name      string
		unlink    []int32 // positions unlinked in turn
		relink    []int32 // then linked again, in turn (they go last)
		want      []int32
		wantDupes int
	}{
		{"untouched", nil, nil, []int32{0, 1, 2, 3}, 3},
		{"first out", []int32{0}, nil, []int32{1, 2, 3}, 2},
		{"middle out", []int32{2}, nil, []int32{0, 1, 3}, 2},
		{"last out", []int32{3}, nil, []int32{0, 1, 2}, 2},
		{"all out", []int32{1, 0, 3, 2}, nil, nil, 0},
		{"first out and back", []int32{0}, []int32{0}, []int32{1, 2, 3, 0}, 3},
		{"middle out and back", []int32{1}, []int32{1}, []int32{0, 2, 3, 1}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := newStore(DemoLocationID)
			for i := range 4 {
				st.addUser(user{id: testID(i), email: "Same@Example.org"})
			}
			st.addUser(user{id: testID(9), email: "other@example.org"})
			for _, idx := range c.unlink {
				st.unlinkEmail(idx)
			}
			for _, idx := range c.relink {
				st.linkEmail(idx)
			}
			if got := st.usersByEmail(" same@example.ORG "); !slices.Equal(got, c.want) {
				t.Errorf("users by email %v, want %v", got, c.want)
			}
			if got := st.usersByEmail("other@example.org"); !slices.Equal(got, []int32{4}) {
				t.Errorf("the other email finds %v, want [4]", got)
			}
			if got := duplicates(st.userByEmail, st.users); got != c.wantDupes {
				t.Errorf("duplicates %d, want %d", got, c.wantDupes)
			}
		})
	}
}

// TestRefChainSkipsPaymentsWithoutRef checks the externalRef index: a
// payment without one is in no chain, and unlinking it changes nothing.
func TestRefChainSkipsPaymentsWithoutRef(t *testing.T) {
	st := newStore(DemoLocationID)
	for i, ref := range []string{"r1", "", "r1", "r2", "r1"} {
		st.addPayment(payment{id: testID(i), externalRef: ref})
	}
	walk := func(ref string) []int32 { return slices.Collect(chain(st.paymentByRe, st.payments, ref)) }
	if got := walk("r1"); !slices.Equal(got, []int32{0, 2, 4}) {
		t.Fatalf("r1 chain %v, want [0 2 4]", got)
	}
	if got := walk(""); got != nil {
		t.Errorf("the empty ref has a chain %v", got)
	}
	st.unlinkRef(1)
	st.unlinkRef(2)
	if got := walk("r1"); !slices.Equal(got, []int32{0, 4}) {
		t.Errorf("r1 chain after unlinking 2: %v, want [0 4]", got)
	}
	st.payments[4].deleted = true
	if got := duplicates(st.paymentByRe, st.payments); got != 0 {
		t.Errorf("duplicates %d with one live payment a ref, want 0", got)
	}
	if _, ok := st.lookupPayment(testID(4).String()); ok {
		t.Error("a deleted payment is found by id")
	}
	if idx, ok := st.lookupPayment(testID(3).String()); !ok || idx != 3 {
		t.Errorf("payment 3 found at %d, %v", idx, ok)
	}
	if _, ok := st.lookupPayment("short"); ok {
		t.Error("a malformed id is found")
	}
}

func TestWritesToUnknownRecordsAnswerNotFound(t *testing.T) {
	e := newEnv(t, 5, sandboxkit.Options{})
	unknown := strings.Repeat("A", 20)
	cases := []struct {
		name         string
		method, path string
		body         any
		status       int
		want         string
	}{
		{"update user", "PUT", "/users/" + unknown, map[string]any{"firstName": "Ann"}, 400, `{"statusCode":400,"message":"User not found"}`},
		{"delete user", "DELETE", "/users/" + unknown, nil, 400, `{"statusCode":400,"message":"User not found"}`},
		{"update payment", "PUT", "/payments/" + unknown, map[string]any{"amount": 10}, 404, `{"statusCode":404,"message":"Payment not found","error":"Not Found"}`},
		{"delete payment", "DELETE", "/payments/" + unknown, nil, 404, `{"statusCode":404,"message":"Payment not found","error":"Not Found"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := e.call(c.method, c.path, c.body, nil)
			if a.status != c.status || strings.TrimSpace(string(a.body)) != c.want {
				t.Errorf("got %d %s\nwant %d %s", a.status, a.body, c.status, c.want)
			}
		})
	}
	// The lock must have been let go: a read after the misses answers.
	if a := e.call("GET", "/users/search?companyId="+DemoCompanyID+"&limit=1", nil, nil); a.status != 200 {
		t.Errorf("search after the misses: %d %s", a.status, a.body)
	}
}
