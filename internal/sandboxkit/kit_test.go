package sandboxkit

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestInjectorIsDeterministicForASeed(t *testing.T) {
	draw := func(seed int64) []Fault {
		in := NewInjector(Faults{FailRate: 0.2, DropRate: 0.2, Seed: seed})
		out := make([]Fault, 200)
		for i := range out {
			out[i] = in.Next()
		}
		return out
	}
	a, b, c := draw(7), draw(7), draw(8)
	counts := map[Fault]int{}
	same := true
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("draw %d differs for the same seed: %v vs %v", i, a[i], b[i])
		}
		if a[i] != c[i] {
			same = false
		}
		counts[a[i]]++
	}
	if same {
		t.Error("seeds 7 and 8 drew the same faults")
	}
	for _, f := range []Fault{NoFault, Fail, DropBefore, DropAfter} {
		if counts[f] == 0 {
			t.Errorf("fault %v never drawn in 200 requests: %v", f, counts)
		}
	}
	if got := NewInjector(Faults{}).Next(); got != NoFault {
		t.Errorf("no faults configured, drew %v", got)
	}
}

func TestInjectorWrap(t *testing.T) {
	var applied atomic.Int32
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		applied.Add(1)
		io.WriteString(w, "ok")
	})
	for _, tc := range []struct {
		name        string
		f           Faults
		wantApplied int32
		wantStatus  int // 0: the connection is dropped
	}{
		{"every request fails", Faults{FailRate: 1}, 0, 500},
		{"no fault", Faults{}, 1, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			applied.Store(0)
			srv := httptest.NewServer(NewInjector(tc.f).Wrap(next, func(w http.ResponseWriter) { w.WriteHeader(500) }))
			defer srv.Close()
			res, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.wantStatus || applied.Load() != tc.wantApplied {
				t.Fatalf("status %d, applied %d; want %d, %d", res.StatusCode, applied.Load(), tc.wantStatus, tc.wantApplied)
			}
		})
	}
	t.Run("drops close the connection, half of them after applying", func(t *testing.T) {
		applied.Store(0)
		srv := httptest.NewServer(NewInjector(Faults{DropRate: 1, Seed: 1}).Wrap(next, func(w http.ResponseWriter) {}))
		defer srv.Close()
		const n = 40
		for i := 0; i < n; i++ {
			res, err := http.Get(srv.URL)
			if err == nil {
				res.Body.Close()
				t.Fatalf("request %d got an answer, want a dropped connection", i)
			}
		}
		if a := applied.Load(); a == 0 || a == n {
			t.Fatalf("%d of %d dropped requests were applied; want some, not all", a, n)
		}
	})
}

func TestWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := &Window{Limit: 3, Length: 10 * time.Second, Now: func() time.Time { return now }}
	for i, want := range []int{2, 1, 0} {
		ok, remaining, _ := w.Take()
		if !ok || remaining != want {
			t.Fatalf("take %d: ok=%v remaining=%d, want true %d", i, ok, remaining, want)
		}
	}
	if ok, _, reset := w.Take(); ok || !reset.Equal(now.Add(10*time.Second)) {
		t.Fatalf("fourth take allowed=%v reset=%v; want refused until %v", ok, reset, now.Add(10*time.Second))
	}
	now = now.Add(10 * time.Second)
	if ok, remaining, _ := w.Take(); !ok || remaining != 2 {
		t.Fatalf("new window: ok=%v remaining=%d", ok, remaining)
	}
	var off *Window
	if ok, remaining, _ := off.Take(); !ok || remaining != -1 {
		t.Fatalf("nil window must allow everything")
	}
}

func TestRouterCounts(t *testing.T) {
	rt := NewRouter()
	rt.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "missing" {
			WriteJSON(w, 404, map[string]string{"message": "not found"})
			return
		}
		WriteJSON(w, 200, map[string]string{"id": r.PathValue("id")})
	})
	for _, p := range []string{"/users/1", "/users/2", "/users/missing", "/nowhere"} {
		rt.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	req, resp := rt.Counts()
	if req["GET /users/{id}"] != 3 || len(req) != 1 {
		t.Errorf("requests = %v", req)
	}
	if resp["200"] != 2 || resp["404"] != 2 {
		t.Errorf("responses = %v", resp)
	}
	rt.ResetCounts()
	if req, resp := rt.Counts(); len(req)+len(resp) != 0 {
		t.Errorf("after reset: %v %v", req, resp)
	}
}

func TestDelivererRetriesUntilAccepted(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Signature") != "sig" {
			t.Errorf("signature header lost")
		}
		if calls.Add(1) < 3 {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(204)
	}))
	defer srv.Close()
	d := &Deliverer{Backoff: time.Millisecond, Attempts: 5}
	d.Register(srv.URL)
	d.Register(srv.URL) // once only
	d.Send(Delivery{Body: []byte(`{}`), Header: http.Header{"X-Signature": {"sig"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.Wait(ctx)
	if sent, failed := d.Counts(); sent != 1 || failed != 0 || calls.Load() != 3 {
		t.Fatalf("sent=%d failed=%d calls=%d; want 1, 0, 3", sent, failed, calls.Load())
	}
	d.Reset()
	if len(d.URLs()) != 0 {
		t.Fatal("Reset kept URLs")
	}
}
