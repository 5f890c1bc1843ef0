// Package sandbox is a faithful in-memory Accredible Credential API for
// tests, demos and benchmarks: the real auth header and its plain-text 401,
// 200 (not 201) on create, the v2 search with its operators, offset limit
// and cursor, the v1 page/page_size listings, 207 bulk answers, each
// endpoint's own error body, and a bare 429 past 2,000 requests per five
// minutes (100 per minute on the v1 search). See the connector's README for
// the endpoints it serves.
package sandbox

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/internal/sandboxkit"
)

// DemoKey is the API key the sandbox accepts. It is a public demo value,
// not a secret: send `Authorization: Token token=accredible-sandbox-demo-key`.
const DemoKey = "accredible-sandbox-demo-key"

// DefaultCredits is the credit balance after New, Reset and Seed.
const DefaultCredits = 1_000_000

// Documented rate limits.
var (
	defaultLimit  = sandboxkit.Limit{Requests: 2000, Per: 5 * time.Minute}
	v1SearchLimit = sandboxkit.Limit{Requests: 100, Per: time.Minute}
)

// Seeded certificate templates: stable ids whatever the seed.
var seedGroups = []struct {
	id                 int64
	name, course, desc string
}{
	{100001, "Annual Membership Certificate", "Annual Membership", "Awarded to members in good standing for the membership year."},
	{100002, "CPD Completion", "Continuing Professional Development", "Awarded on completing the required CPD hours."},
	{100003, "Event Attendance Badge", "Event Attendance", "Awarded for attending a member event."},
}

// Server is the Accredible sandbox. It implements sandboxkit.Service.
type Server struct {
	log      hclog.Logger
	now      func() time.Time
	router   *sandboxkit.Router
	handler  http.Handler
	window   *sandboxkit.Window
	v1Window *sandboxkit.Window
	// allowUndocumented accepts the updated_at sort key and timestamps in
	// date filters, which the document does not offer.
	allowUndocumented bool

	mu          sync.RWMutex
	creds       *credentialStore
	groups      map[int64]*group
	departments map[int64]*department
	designs     map[int64]*design
	// The rest of the document's objects (more.go).
	collections   map[int64]*collection
	attributeKeys map[int64]*attributeKey
	exports       map[int64]*dataExport
	teamMembers   map[int64]*teamMember
	nextID        int64 // groups, departments, designs, evidence items, references
	credits       int
	rng           *rand.Rand
	seed          int64
}

var _ sandboxkit.Service = (*Server)(nil)

// New returns an empty sandbox (call Seed to fill it).
func New(opts sandboxkit.Options) *Server {
	s := &Server{log: opts.Logger, now: opts.Now, allowUndocumented: opts.AllowUndocumented}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	s.log = s.log.Named("accredible")
	if s.now == nil {
		s.now = time.Now
	}
	main, v1 := defaultLimit, v1SearchLimit
	if opts.RateLimit != nil {
		main = *opts.RateLimit
		if main.Requests <= 0 {
			v1 = sandboxkit.Limit{}
		}
	}
	s.window = &sandboxkit.Window{Limit: main.Requests, Length: main.Per, Now: s.now}
	s.v1Window = &sandboxkit.Window{Limit: v1.Requests, Length: v1.Per, Now: s.now}
	s.router = sandboxkit.NewRouter()
	s.routes()
	var h http.Handler = s.router
	if opts.Faults.Enabled() {
		h = sandboxkit.NewInjector(opts.Faults).Wrap(h, func(w http.ResponseWriter) {
			s.router.CountStatus(http.StatusInternalServerError)
			sandboxkit.WriteJSON(w, http.StatusInternalServerError, map[string]any{"errors": "Internal server error"})
		})
	}
	s.handler = h
	s.Reset()
	return s
}

// Name is the mount prefix and stats key.
func (s *Server) Name() string { return "accredible" }

// ServeHTTP checks the key and the rate limits, then serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !authorized(r.Header.Get("Authorization")) {
		s.router.CountStatus(http.StatusUnauthorized)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("HTTP Token: Access denied.\n"))
		return
	}
	ok, _, _ := s.window.Take()
	if ok && r.Method == http.MethodPost && r.URL.Path == "/v1/credentials/search" {
		ok, _, _ = s.v1Window.Take()
	}
	if !ok {
		// Accredible documents a bare 429: no rate-limit headers, no
		// Retry-After.
		s.router.CountStatus(http.StatusTooManyRequests)
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	s.handler.ServeHTTP(w, r)
}

// authorized accepts `Token token=KEY` and `Token token="KEY"`.
func authorized(h string) bool {
	v, ok := strings.CutPrefix(h, "Token ")
	if !ok {
		return false
	}
	v, ok = strings.CutPrefix(strings.TrimSpace(v), "token=")
	if !ok {
		return false
	}
	return strings.Trim(v, `"`) == DemoKey
}

// SetCredits sets the credit balance. With too few credits, credentials
// are created but left unpublished (approve: false).
func (s *Server) SetCredits(n int) {
	s.mu.Lock()
	s.credits = n
	s.mu.Unlock()
}

// Credits returns the credit balance.
func (s *Server) Credits() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.credits
}

// Reset empties all state and counters.
func (s *Server) Reset() {
	s.mu.Lock()
	s.creds = newCredentialStore()
	s.groups = map[int64]*group{}
	s.departments = map[int64]*department{}
	s.designs = map[int64]*design{}
	s.collections = map[int64]*collection{}
	s.attributeKeys = map[int64]*attributeKey{}
	s.exports = map[int64]*dataExport{}
	s.teamMembers = map[int64]*teamMember{}
	s.nextID = 200001
	s.credits = DefaultCredits
	s.seed = 0
	s.rng = rand.New(rand.NewPCG(0, 0xacc))
	s.mu.Unlock()
	s.router.ResetCounts()
}

// Seed replaces all state with the certificate templates: one department,
// a certificate design per template, and the three groups with stable ids.
// It creates no credentials: memberflow issues them.
func (s *Server) Seed(cfg sandboxkit.Seed) {
	s.Reset()
	now := cfg.Now
	if now.IsZero() {
		now = s.now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seed = cfg.Seed
	s.rng = rand.New(rand.NewPCG(uint64(cfg.Seed), 0xacc))
	at := now.UnixMilli()
	dep := &department{id: s.newID(), name: "Membership Office", url: "https://members.example.org",
		logo: "https://images.credential.net/sandbox/logo.png", createdAt: at}
	s.departments[dep.id] = dep
	for _, g := range seedGroups {
		d := &design{id: s.newID(), name: g.name + " Design", kind: "certificate", orientation: "landscape", size: "a4", departmentID: dep.id, createdAt: at}
		s.designs[d.id] = d
		s.groups[g.id] = &group{id: g.id, name: g.name, courseName: g.course, courseDescription: g.desc,
			courseLink: "https://members.example.org/certificates", language: "en", designID: d.id,
			certificateDesignID: d.id, departmentID: dep.id, createdAt: at, updatedAt: at}
	}
}

func (s *Server) newID() int64 {
	s.nextID++
	return s.nextID
}

// Stats counts objects and duplicate credentials.
func (s *Server) Stats() sandboxkit.ServiceStats {
	s.mu.RLock()
	evidence, refs := 0, 0
	for i := range s.creds.creds {
		if c := &s.creds.creds[i]; !c.deleted {
			evidence += len(c.x().evidence)
			refs += len(c.x().references)
		}
	}
	st := sandboxkit.ServiceStats{
		Objects: map[string]int{
			"credentials":    s.creds.live,
			"groups":         len(s.groups),
			"departments":    len(s.departments),
			"designs":        len(s.designs),
			"evidence_items": evidence,
			"references":     refs,
		},
		Duplicates: map[string]int{"credentials": s.creds.duplicates()},
	}
	s.mu.RUnlock()
	st.Requests, st.Responses = s.router.Counts()
	return st
}

// Mutation kinds.
const (
	MutateUpdateCredential = "update_credential" // someone edits credentials in the dashboard
	MutateIssueCredential  = "issue_credential"  // credentials issued outside memberflow
	MutateSetCredits       = "set_credits"       // args: {"credits": N}
)

// Mutate changes credentials the way people in the Accredible dashboard
// do. update_credential edits Count random credentials (args: group_id to
// pick from one group); issue_credential issues Count credentials (args:
// group_id, email, name); set_credits sets the balance.
func (s *Server) Mutate(m sandboxkit.Mutation) (map[string]any, error) {
	count := m.Count
	if count <= 0 {
		count = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	switch m.Kind {
	case MutateUpdateCredential:
		pool := s.creds.all()
		if g, ok := argInt(m.Args, "group_id"); ok {
			pool = append([]int32(nil), s.creds.byGroup[g]...)
			sort.Slice(pool, func(i, j int) bool { return pool[i] < pool[j] })
		}
		if len(pool) == 0 {
			return nil, fmt.Errorf("update_credential: there are no credentials to update")
		}
		var ids []int64
		for i := 0; i < count && len(pool) > 0; i++ {
			j := s.rng.IntN(len(pool))
			c := &s.creds.creds[pool[j]]
			pool = append(pool[:j], pool[j+1:]...)
			n := s.rng.IntN(3)
			s.creds.update(c, now, func(c *credential) {
				switch n {
				case 0:
					c.mx().grade = fmt.Sprintf("%d", 60+s.rng.IntN(41))
				case 1:
					c.expiredOn = now.AddDate(1, 0, 0).Format("2006-01-02")
				default:
					attrs := map[string]any{}
					for k, v := range c.x().customAttributes {
						attrs[k] = v
					}
					attrs["Location"] = []string{"London", "Boston", "Sydney"}[s.rng.IntN(3)]
					c.mx().customAttributes = attrs
				}
			})
			ids = append(ids, c.id)
		}
		return map[string]any{"kind": m.Kind, "updated": ids}, nil
	case MutateIssueCredential:
		gid, ok := argInt(m.Args, "group_id")
		if !ok {
			gid = seedGroups[s.rng.IntN(len(seedGroups))].id
		}
		g, exists := s.groups[gid]
		if !exists {
			return nil, fmt.Errorf("issue_credential: group %d does not exist", gid)
		}
		email, _ := m.Args["email"].(string)
		name, _ := m.Args["name"].(string)
		var ids []int64
		for i := 0; i < count; i++ {
			n := s.rng.IntN(1_000_000)
			e, nm := email, name
			if e == "" {
				e = fmt.Sprintf("walkin%06d@example.org", n)
			}
			if nm == "" {
				nm = fmt.Sprintf("Walk-in Member %06d", n)
			}
			c := s.issue(credential{groupID: g.id, name: g.courseName, description: g.courseDescription,
				recipientName: nm, recipientEmail: e, issuedOn: now.Format("2006-01-02"), approve: true, complete: true}, now)
			ids = append(ids, c.id)
		}
		return map[string]any{"kind": m.Kind, "issued": ids}, nil
	case MutateSetCredits:
		n, ok := argInt(m.Args, "credits")
		if !ok || n < 0 {
			return nil, fmt.Errorf("set_credits: args.credits must be a number of credits, 0 or more")
		}
		s.credits = int(n)
		return map[string]any{"kind": m.Kind, "credits": n}, nil
	}
	return nil, fmt.Errorf("unknown mutation kind %q: accredible supports %s, %s, %s", m.Kind, MutateUpdateCredential, MutateIssueCredential, MutateSetCredits)
}

// issue stores a new credential, publishing it only when a credit is left.
// The caller holds s.mu.
func (s *Server) issue(c credential, now time.Time) *credential {
	if c.approve {
		if s.credits > 0 {
			s.credits--
		} else {
			c.approve = false
		}
	}
	return s.creds.insert(c, now)
}

func argInt(args map[string]any, key string) (int64, bool) {
	switch v := args[key].(type) {
	case float64:
		return int64(v), true
	case int:
		return int64(v), true
	case int64:
		return v, true
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	}
	return 0, false
}
