package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// Recorded is one API request the sandbox received while recording: what
// a client sent, so that another client can send exactly the same
// (memberflow bench --ceiling replays the engine's requests). It holds
// the demo credentials the request carried: the recording lives in the
// sandbox's memory and is answered only to whoever asks the sandbox.
type Recorded struct {
	Method string `json:"method"`
	// Target is the path under the sandbox's base URL, service prefix
	// included, with the query as sent ("/<service>/users?limit=100").
	Target string      `json:"target"`
	Header http.Header `json:"header"`
	Body   []byte      `json:"body,omitempty"`
}

// maxRecorded bounds a recording (about a million requests: a 300,000
// member backfill); requests beyond it are counted, not kept.
const maxRecorded = 1 << 20

// recording keeps the API requests while it is on.
type recording struct {
	on   atomic.Bool
	mu   sync.Mutex
	reqs []Recorded
	lost int
}

// hopHeaders are set by the transport for each connection, not by the
// client: a replay's transport sets them again.
var hopHeaders = []string{"Connection", "Content-Length", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// record keeps r (its body is read and put back for the service).
func (rc *recording) record(r *http.Request) {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	h := r.Header.Clone()
	for _, k := range hopHeaders {
		h.Del(k)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !rc.on.Load() {
		return
	}
	if len(rc.reqs) >= maxRecorded {
		rc.lost++
		return
	}
	rc.reqs = append(rc.reqs, Recorded{Method: r.Method, Target: r.URL.RequestURI(), Header: h, Body: body})
}

// StartRecording forgets any earlier recording and keeps every API
// request from now on (POST /_sandbox/recording).
func (s *Server) StartRecording() {
	s.rec.mu.Lock()
	s.rec.reqs, s.rec.lost = nil, 0
	s.rec.on.Store(true)
	s.rec.mu.Unlock()
}

// StopRecording stops and returns the requests received since
// StartRecording, in the order they arrived, and how many were not kept
// (beyond the bound) (DELETE /_sandbox/recording).
func (s *Server) StopRecording() ([]Recorded, int) {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.rec.on.Store(false)
	reqs, lost := s.rec.reqs, s.rec.lost
	s.rec.reqs, s.rec.lost = nil, 0
	return reqs, lost
}

// RecordingAnswer is the answer of DELETE /_sandbox/recording.
type RecordingAnswer struct {
	Requests []Recorded `json:"requests"`
	// Lost counts the requests received beyond the bound, not kept.
	Lost int `json:"lost"`
}

func (s *Server) handleStartRecording(w http.ResponseWriter, _ *http.Request) {
	s.StartRecording()
	writeJSON(w, http.StatusOK, map[string]any{"recording": true})
}

func (s *Server) handleStopRecording(w http.ResponseWriter, _ *http.Request) {
	reqs, lost := s.StopRecording()
	if reqs == nil {
		reqs = []Recorded{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(RecordingAnswer{Requests: reqs, Lost: lost})
}
