package sandbox

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// outcomes sends n GETs on fresh connections and records what each got:
// a status code or "drop".
func outcomes(t *testing.T, url string, n int) []string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	out := make([]string, n)
	for i := range out {
		res, err := client.Get(url)
		if err != nil {
			out[i] = "drop"
			continue
		}
		res.Body.Close()
		out[i] = res.Status[:3]
	}
	return out
}

func TestFaultsAreDeterministicPerSeed(t *testing.T) {
	faults := sandboxkit.Faults{FailRate: 0.2, DropRate: 0.2}
	run := func(seed int64) []string {
		_, ts := newTestServer(t, Options{Members: 1, Seed: seed, Faults: faults})
		return outcomes(t, ts.URL+"/alpha/items/0", 60)
	}
	a, b, c := run(1), run(1), run(2)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("same seed, different faults:\n%v\n%v", a, b)
	}
	if strings.Join(a, ",") == strings.Join(c, ",") {
		t.Fatalf("different seeds, same faults: %v", a)
	}
	seen := map[string]int{}
	for _, o := range a {
		seen[o]++
	}
	for _, want := range []string{"200", "500", "drop"} {
		if seen[want] == 0 {
			t.Errorf("no %q in 60 requests at 20%%/20%%: %v", want, seen)
		}
	}
}

func TestFaultSeedDefaultsToSeed(t *testing.T) {
	faults := sandboxkit.Faults{FailRate: 0.5}
	_, ts1 := newTestServer(t, Options{Seed: 5, Members: 1, Faults: faults})
	faults.Seed = 5
	_, ts2 := newTestServer(t, Options{Seed: 99, Members: 1, Faults: faults})
	a, b := outcomes(t, ts1.URL+"/alpha/items/0", 30), outcomes(t, ts2.URL+"/alpha/items/0", 30)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("Faults.Seed 0 did not take Seed:\n%v\n%v", a, b)
	}
}

func TestFailureAnswersWithTheServiceBody(t *testing.T) {
	tests := []struct {
		service, want string
	}{
		{"memberships", `{"statusCode":500,"message":"Internal server error"}`},
		{"accredible", `{"error":"Internal Server Error"}`},
		{"accelevents", `"errorCode":"5000000"`},
		{"other", `{"error":"Internal Server Error"}`},
	}
	for _, tc := range tests {
		t.Run(tc.service, func(t *testing.T) {
			s, ts := newTestServer(t, Options{Members: 1, Faults: sandboxkit.Faults{FailRate: 1}, Services: []Factory{newItemService(tc.service)}})
			status, body := do(t, "POST", ts.URL+"/"+tc.service+"/items", `{"name":"x"}`)
			if status != 500 || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %s, want 500 with %s", status, body, tc.want)
			}
			st := s.Stats().Services[tc.service]
			if st.Objects["items"] != 1 {
				t.Errorf("a failed request was applied: %d items", st.Objects["items"])
			}
			if st.Responses["500"] != 1 || st.Requests["POST /items"] != 1 {
				t.Errorf("failure not counted by route and status: %+v", st)
			}
		})
	}
}

func TestDropAfterApplies(t *testing.T) {
	// With drops only, about half are applied before the connection
	// closes: the client cannot tell, which is the point.
	s, ts := newTestServer(t, Options{Members: 0, Seed: 4, Faults: sandboxkit.Faults{DropRate: 1}})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 20; i++ {
		res, err := client.Post(ts.URL+"/alpha/items", "application/json", strings.NewReader(`{"name":"x"}`))
		if err == nil {
			res.Body.Close()
			t.Fatalf("request %d answered %s; every request should drop", i, res.Status)
		}
	}
	st := s.Stats().Services["alpha"]
	applied := st.Objects["items"]
	if applied == 0 || applied == 20 {
		t.Fatalf("%d of 20 dropped creates applied; want some but not all", applied)
	}
	if st.Responses["dropped"] != 20 || st.Requests["POST /items"] != 20 {
		t.Errorf("drops not counted: %+v", st)
	}
}

func TestAdminIsNeverFaulted(t *testing.T) {
	_, ts := newTestServer(t, Options{Members: 1, Faults: sandboxkit.Faults{FailRate: 0.5, DropRate: 0.5}})
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/_sandbox/stats", ""},
		{"POST", "/_sandbox/mutate", `{"service":"alpha","kind":"rename"}`},
		{"POST", "/_sandbox/webhooks", `{"url":"http://127.0.0.1:9/h"}`},
		{"POST", "/alpha/_sandbox/webhooks", `{"url":"http://127.0.0.1:9/h"}`},
		{"POST", "/_sandbox/reset", ""},
	} {
		for i := 0; i < 10; i++ {
			if status, body := do(t, tc.method, ts.URL+tc.path, tc.body); status != 200 {
				t.Fatalf("%s %s: %d %s", tc.method, tc.path, status, body)
			}
		}
	}
}

func TestResetRestartsTheFaultSequence(t *testing.T) {
	_, ts := newTestServer(t, Options{Members: 1, Seed: 11, Faults: sandboxkit.Faults{FailRate: 0.5}})
	first := outcomes(t, ts.URL+"/alpha/items/0", 30)
	do(t, "POST", ts.URL+"/_sandbox/reset", "")
	again := outcomes(t, ts.URL+"/alpha/items/0", 30)
	if strings.Join(first, ",") != strings.Join(again, ",") {
		t.Fatalf("after reset the faults differ:\n%v\n%v", first, again)
	}
}

func TestLatency(t *testing.T) {
	// The injected latency is a lower bound on each answer, so this
	// cannot pass by being fast.
	_, ts := newTestServer(t, Options{Members: 1, Faults: sandboxkit.Faults{Latency: 30 * time.Millisecond}})
	start := time.Now()
	do(t, "GET", ts.URL+"/alpha/items/0", "")
	if took := time.Since(start); took < 30*time.Millisecond {
		t.Fatalf("answered in %s with 30ms latency", took)
	}
	start = time.Now()
	do(t, "GET", ts.URL+"/_sandbox/stats", "")
	if took := time.Since(start); took >= 30*time.Millisecond {
		t.Logf("stats took %s (no latency is injected there; the machine is slow)", took)
	}
}

// opaque hides every method but the Service interface's (no Pattern).
type opaque struct{ sandboxkit.Service }

func TestFaultedRequestsCountUnderLearnedRoutes(t *testing.T) {
	hidden := func(o sandboxkit.Options) sandboxkit.Service { return opaque{newItemService("alpha")(o)} }
	s, ts := newTestServer(t, Options{Members: 1, Seed: 3, Faults: sandboxkit.Faults{FailRate: 0.5}, Services: []Factory{hidden}})
	got := outcomes(t, ts.URL+"/alpha/items/0", 40)
	beforeFirstServed := int64(0)
	for _, o := range got {
		if o == "200" {
			break
		}
		beforeFirstServed++
	}
	req := s.Stats().Services["alpha"].Requests
	if req["GET (no route)"] != beforeFirstServed || req["GET /items/{id}"] != 40-beforeFirstServed {
		t.Fatalf("requests %v with outcomes %v: only failures before the route was first served may lack it", req, got)
	}
}
