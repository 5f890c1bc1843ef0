package guestbook

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// DemoKey is the sandbox's public demo key.
const DemoKey = "guestbook-demo-key"

func init() {
	sandboxkit.Register(sandboxkit.Registration{
		Name:   "guestbook",
		New:    func(sandboxkit.Options) sandboxkit.Service { return &server{} },
		Auth:   connectors.Auth{Type: connectors.AuthAPIKey, Key: DemoKey},
		Limits: "none",
		Hints: func(url string) []string {
			return []string{"key:    " + DemoKey, "curl -H 'Authorization: Key " + DemoKey + "' '" + url + "/entries'"}
		},
		Failure: `{"error":"guestbook failed"}`,
	})
}

// server is the guest book: entries by id, in signing order.
type server struct {
	mu      sync.Mutex
	entries []entry
}

func (s *server) Name() string { return "guestbook" }

func (s *server) Reset() {
	s.mu.Lock()
	s.entries = nil
	s.mu.Unlock()
}

// Seed has the first members sign.
func (s *server) Seed(cfg sandboxkit.Seed) {
	s.Reset()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < 3; i++ {
		name := "Visitor " + strconv.Itoa(i+1)
		if cfg.People != nil {
			if p, ok := cfg.People(i); ok {
				name = p.FirstName + " " + p.LastName
			}
		}
		s.entries = append(s.entries, entry{ID: int64(len(s.entries) + 1), Name: name})
	}
}

func (s *server) Stats() sandboxkit.ServiceStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sandboxkit.ServiceStats{Objects: map[string]int{"entries": len(s.entries)}}
}

func (s *server) Mutate(m sandboxkit.Mutation) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < max(m.Count, 1); i++ {
		s.entries = append(s.entries, entry{ID: int64(len(s.entries) + 1), Name: "Walk-in " + strconv.Itoa(len(s.entries)+1)})
	}
	return map[string]any{"kind": m.Kind, "entries": len(s.entries)}, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Key "+DemoKey {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /entries", s.list)
	mux.HandleFunc("PUT /entries/{name}", s.sign)
	mux.ServeHTTP(w, r)
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	s.mu.Lock()
	out := []entry{}
	for _, e := range s.entries {
		if e.ID > after {
			out = append(out, e)
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"entries": out})
}

func (s *server) sign(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	var e *entry
	for i := range s.entries {
		if s.entries[i].Name == name {
			e = &s.entries[i]
		}
	}
	if e == nil {
		s.entries = append(s.entries, entry{ID: int64(len(s.entries) + 1), Name: name})
		e = &s.entries[len(s.entries)-1]
	}
	out := *e
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
