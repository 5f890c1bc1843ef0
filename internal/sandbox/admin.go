package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/memberflow/memberflow/internal/sandboxkit"
	"github.com/memberflow/memberflow/internal/suggest"
)

// Stats is the answer of GET /_sandbox/stats.
type Stats struct {
	Services map[string]sandboxkit.ServiceStats `json:"services"`
	Totals   Totals                             `json:"totals"`
}

// Totals adds up every service's counts.
type Totals struct {
	Objects    int              `json:"objects"`
	Duplicates int              `json:"duplicates"`
	Requests   int64            `json:"requests"`
	Responses  map[string]int64 `json:"responses"`
}

// Stats gathers every service's objects, duplicates and the combined
// server's request and response counters. Dropped connections are counted
// under the response key "dropped".
func (s *Server) Stats() Stats {
	st := Stats{Services: map[string]sandboxkit.ServiceStats{}, Totals: Totals{Responses: map[string]int64{}}}
	for _, m := range s.services {
		ss := m.svc.Stats()
		if ss.Objects == nil {
			ss.Objects = map[string]int{}
		}
		if ss.Duplicates == nil {
			ss.Duplicates = map[string]int{}
		}
		ss.Requests, ss.Responses = map[string]int64{}, map[string]int64{}
		m.routes.Range(func(k, v any) bool {
			if n := v.(*atomic.Int64).Load(); n > 0 {
				ss.Requests[k.(string)] = n
				st.Totals.Requests += n
			}
			return true
		})
		for code := range m.responses {
			if n := m.responses[code].Load(); n > 0 {
				ss.Responses[strconv.Itoa(code)] = n
			}
		}
		if n := m.dropped.Load(); n > 0 {
			ss.Responses["dropped"] = n
		}
		for k, n := range ss.Responses {
			st.Totals.Responses[k] += n
		}
		for _, n := range ss.Objects {
			st.Totals.Objects += n
		}
		for _, n := range ss.Duplicates {
			st.Totals.Duplicates += n
		}
		st.Services[m.name] = ss
	}
	return st
}

// Reset empties every service, seeds it again with the same options,
// zeroes the counters and restarts the fault sequence, so that a run after
// a reset sees exactly what the first run saw.
func (s *Server) Reset() {
	s.resetMu.Lock()
	defer s.resetMu.Unlock()
	for _, m := range s.services {
		m.svc.Reset()
		m.resetCounts()
	}
	s.seedAll()
	s.injector.Store(sandboxkit.NewInjector(s.opts.Faults))
}

// MutateRequest is one entry of POST /_sandbox/mutate.
type MutateRequest struct {
	Service string         `json:"service"`
	Kind    string         `json:"kind"`
	Count   int            `json:"count"`
	Args    map[string]any `json:"args,omitempty"`
}

// MutateResult is what one mutation changed.
type MutateResult struct {
	Service string         `json:"service"`
	Kind    string         `json:"kind"`
	Changed map[string]any `json:"changed"`
}

// Mutate applies mutations in order and stops at the first that fails; the
// error names its index and service.
func (s *Server) Mutate(reqs []MutateRequest) ([]MutateResult, error) {
	out := make([]MutateResult, 0, len(reqs))
	for i, mr := range reqs {
		m, err := s.service(mr.Service)
		if err != nil {
			return out, fmt.Errorf("mutation %d: %w", i, err)
		}
		if mr.Kind == "" {
			return out, fmt.Errorf("mutation %d (%s): kind is empty", i, mr.Service)
		}
		if mr.Count < 0 {
			return out, fmt.Errorf("mutation %d (%s.%s): count must not be negative, got %d", i, mr.Service, mr.Kind, mr.Count)
		}
		if mr.Count == 0 {
			mr.Count = 1
		}
		s.resetMu.RLock()
		changed, err := m.svc.Mutate(sandboxkit.Mutation{Kind: mr.Kind, Count: mr.Count, Args: mr.Args})
		s.resetMu.RUnlock()
		if err != nil {
			return out, fmt.Errorf("mutation %d (%s.%s): %w", i, mr.Service, mr.Kind, err)
		}
		out = append(out, MutateResult{Service: mr.Service, Kind: mr.Kind, Changed: changed})
	}
	return out, nil
}

// RegisterWebhook registers a delivery URL with one service (or every
// service when service is empty) through the service's own
// POST /_sandbox/webhooks endpoint.
func (s *Server) RegisterWebhook(service, target string) ([]string, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook url %q must be an absolute http or https URL", target)
	}
	targets := s.services
	if service != "" {
		m, err := s.service(service)
		if err != nil {
			return nil, err
		}
		targets = []*mounted{m}
	}
	body, _ := json.Marshal(map[string]string{"url": target})
	var names []string
	for _, m := range targets {
		req := httptest.NewRequest(http.MethodPost, "/_sandbox/webhooks", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		m.svc.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 200 && rec.Code <= 299:
			names = append(names, m.name)
		case rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed || rec.Code == http.StatusUnauthorized:
			// The service has no webhook endpoint (a polled-only API has no
			// webhooks at all): skip it when registering everywhere.
			if service != "" {
				return nil, fmt.Errorf("%s does not deliver webhooks (its registration endpoint answered HTTP %d); poll it instead", m.name, rec.Code)
			}
		default:
			return names, fmt.Errorf("registering a webhook with %s: HTTP %d: %s", m.name, rec.Code, strings.TrimSpace(rec.Body.String()))
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no service took the webhook registration")
	}
	return names, nil
}

func (s *Server) service(name string) (*mounted, error) {
	if name == "" {
		return nil, fmt.Errorf("service is empty; one of %s", strings.Join(s.Services(), ", "))
	}
	m := s.byName[name]
	if m == nil {
		hint := ""
		if best := suggest.Closest(name, s.Services()); best != "" {
			hint = fmt.Sprintf("; did you mean %q?", best)
		}
		return nil, fmt.Errorf("unknown service %q%s (the sandbox serves %s)", name, hint, strings.Join(s.Services(), ", "))
	}
	return m, nil
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) handleReset(w http.ResponseWriter, _ *http.Request) {
	s.Reset()
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) handleMutate(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	var reqs []MutateRequest
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		writeError(w, http.StatusBadRequest, `body is empty; send {"service":"<name>","kind":"<mutation>","count":5} or a list of those`)
		return
	case trimmed[0] == '[':
		err = strictJSON(trimmed, &reqs)
	default:
		var one MutateRequest
		err = strictJSON(trimmed, &one)
		reqs = []MutateRequest{one}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "decoding the mutation: "+err.Error())
		return
	}
	res, err := s.Mutate(reqs)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error(), "applied": res})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"applied": res})
}

func (s *Server) handleWebhooks(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Service string `json:"service"`
		URL     string `json:"url"`
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err == nil {
		err = strictJSON(data, &req)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, `decoding the registration: `+err.Error()+`; send {"service":"<name>","url":"http://127.0.0.1:9000/hooks"}`)
		return
	}
	names, err := s.RegisterWebhook(req.Service, req.URL)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"registered": names, "url": req.URL})
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	base := "http://" + r.Host
	services := map[string]string{}
	for _, m := range s.services {
		services[m.name] = base + "/" + m.name
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"services": services,
		"endpoints": []string{
			"GET /_sandbox/stats", "POST /_sandbox/reset", "POST /_sandbox/mutate", "POST /_sandbox/webhooks", "POST /_sandbox/recording", "DELETE /_sandbox/recording",
		},
	})
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// failureWriter is implemented by services that answer an injected failure
// with their own 500 body.
type failureWriter interface {
	WriteFailure(w http.ResponseWriter)
}

func writeFailure(m *mounted, w http.ResponseWriter) {
	if f, ok := m.svc.(failureWriter); ok {
		f.WriteFailure(w)
		return
	}
	// The registered 500 shape, for services that do not write their own.
	body := `{"error":"Internal Server Error"}`
	if r, ok := sandboxkit.Lookup(m.name); ok && r.Failure != "" {
		body = r.Failure
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = io.WriteString(w, body+"\n")
}
