package ops

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Checker is what /readyz asks: the engine's checks.
type Checker interface {
	Checks(ctx context.Context) []Check
}

// Check mirrors engine.Check, so that this package's handlers can be
// tested with a fake checker. (engine.Engine satisfies Checker through
// EngineChecker.)
type Check struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Health is the body of /healthz and /readyz.
type Health struct {
	Status string `json:"status"` // ok, ready or unready
	// Failing names the failing checks.
	Failing []string `json:"failing,omitempty"`
	Checks  []Check  `json:"checks,omitempty"`
}

// Healthz answers 200 while the process serves HTTP at all.
func Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, Health{Status: "ok"})
	})
}

// Readyz answers 200 when every check passes, else 503; the body lists
// the checks and names the failing ones.
func Readyz(c Checker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks := c.Checks(r.Context())
		h := Health{Status: "ready", Checks: checks}
		for _, ck := range checks {
			if !ck.OK {
				h.Failing = append(h.Failing, ck.Name)
			}
		}
		status := http.StatusOK
		if len(h.Failing) > 0 {
			h.Status, status = "unready", http.StatusServiceUnavailable
		}
		writeJSON(w, status, h)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Mount adds /metrics, /healthz and /readyz to mux. Other handlers (the
// webhook triggers, a console) are mounted beside them by the caller.
func Mount(mux *http.ServeMux, m *Metrics, c Checker) {
	if m != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	}
	mux.Handle("GET /healthz", Healthz())
	mux.Handle("GET /readyz", Readyz(c))
}
