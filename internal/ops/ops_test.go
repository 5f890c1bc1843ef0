package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeChecker []Check

func (f fakeChecker) Checks(context.Context) []Check { return f }

func TestReadyzNamesTheFailingChecks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		checks  fakeChecker
		status  int
		failing []string
	}{
		{"all pass", fakeChecker{{Name: "store", OK: true}, {Name: "auth:accredible", OK: true}}, 200, nil},
		{"auth fails", fakeChecker{{Name: "store", OK: true}, {Name: "auth:accredible", Error: "HTTP 401"}}, 503, []string{"auth:accredible"}},
		{"two fail", fakeChecker{{Name: "store", Error: "locked"}, {Name: "trigger:sync", Error: "no poll"}}, 503, []string{"store", "trigger:sync"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			Mount(mux, nil, tc.checks)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			var h Health
			if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.status || len(h.Failing) != len(tc.failing) || len(h.Checks) != len(tc.checks) {
				t.Fatalf("HTTP %d %+v, want %d failing %v", rec.Code, h, tc.status, tc.failing)
			}
			for i, f := range tc.failing {
				if h.Failing[i] != f {
					t.Errorf("failing %v, want %v", h.Failing, tc.failing)
				}
			}
			if want := map[int]string{200: "ready", 503: "unready"}[tc.status]; h.Status != want {
				t.Errorf("status %q, want %q", h.Status, want)
			}
		})
	}
	rec := httptest.NewRecorder()
	Healthz().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("/healthz: %d %v", rec.Code, rec.Header())
	}
}

func TestObserverCounts(t *testing.T) {
	m := NewMetrics()
	m.EventsSeen("r", 3, 1)
	m.RunFinished("r", "succeeded", time.Millisecond)
	m.RunFinished("r", "suppressed", 0)
	m.StepAttempt("r", "s", "c.op", "retry", time.Millisecond)
	m.StepAttempt("r", "s", "c.op", "succeeded", time.Millisecond)
	for _, st := range []int{200, 201, 429, 500, 0, 302} {
		m.HTTPRequest("accredible", "get_credential", st, time.Millisecond)
	}
	m.RateLimitPause("accredible", 250*time.Millisecond)
	m.WebhookDelivery("r", "unauthorized")
	m.AlertFed("alert", "run_failed", true)
	m.BatchCall("r", "s", "c.op", 7, time.Millisecond)
	m.BatchCall("r", "s", "c.op", 30, time.Millisecond)
	for _, tc := range []struct {
		got  float64
		want float64
		what string
	}{
		{testutil.ToFloat64(m.events.WithLabelValues("r")), 3, "events"},
		{testutil.ToFloat64(m.duplicates.WithLabelValues("r")), 1, "duplicates"},
		{testutil.ToFloat64(m.runs.WithLabelValues("r", "succeeded")), 1, "succeeded"},
		{testutil.ToFloat64(m.echoes.WithLabelValues("r")), 1, "echoes"},
		{testutil.ToFloat64(m.stepRetries.WithLabelValues("r", "s", "c.op")), 1, "retries"},
		{testutil.ToFloat64(m.httpRequests.WithLabelValues("accredible", "get_credential", "2xx")), 2, "2xx"},
		{testutil.ToFloat64(m.httpRequests.WithLabelValues("accredible", "get_credential", "4xx")), 1, "4xx"},
		{testutil.ToFloat64(m.httpRequests.WithLabelValues("accredible", "get_credential", "5xx")), 1, "5xx"},
		{testutil.ToFloat64(m.httpRequests.WithLabelValues("accredible", "get_credential", "error")), 1, "no answer"},
		{testutil.ToFloat64(m.httpRequests.WithLabelValues("accredible", "get_credential", "3xx")), 1, "3xx"},
		{testutil.ToFloat64(m.http429.WithLabelValues("accredible")), 1, "429s"},
		{testutil.ToFloat64(m.pauseSeconds.WithLabelValues("accredible")), 0.25, "pause seconds"},
		{testutil.ToFloat64(m.webhooks.WithLabelValues("r", "unauthorized")), 1, "webhooks"},
		{testutil.ToFloat64(m.alerts.WithLabelValues("alert", "run_failed", "duplicate")), 1, "alerts"},
		{testutil.ToFloat64(m.batchCalls.WithLabelValues("r", "s", "c.op")), 2, "batch calls"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.what, tc.got, tc.want)
		}
	}
	if n, err := testutil.GatherAndCount(m.reg, "memberflow_batch_size"); err != nil || n != 1 {
		t.Errorf("batch_size series: %d %v", n, err)
	}
}

// BenchmarkObserverPerRun is what the backfill benchmark's run costs the
// metrics: an event, two steps, three HTTP requests, three store writes,
// an outcome.
func BenchmarkObserverPerRun(b *testing.B) {
	m := NewMetrics()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.EventsSeen("bench-certificates", 1, 0)
			m.StoreWrite("advance", 300*time.Microsecond)
			m.HTTPRequest("accredible", "upsert_credential", 200, 2*time.Millisecond)
			m.HTTPRequest("accredible", "other", 200, 2*time.Millisecond)
			m.StepAttempt("bench-certificates", "certificate", "accredible.upsert_credential", "succeeded", 4*time.Millisecond)
			m.StoreWrite("record", 300*time.Microsecond)
			m.HTTPRequest("memberships", "update_user", 200, 2*time.Millisecond)
			m.StepAttempt("bench-certificates", "member", "members.update_user", "succeeded", 2*time.Millisecond)
			m.StoreWrite("record", 300*time.Microsecond)
			m.RunFinished("bench-certificates", "succeeded", 8*time.Millisecond)
		}
	})
}
