// Package sandboxkit is what the three service sandboxes share: the
// Service interface the combined sandbox server mounts, deterministic
// fault injection, a fixed-window rate limiter, signed webhook delivery
// with retries, and request/response counters for /_sandbox/stats.
//
// Each service's sandbox lives in its connector's package
// (connectors/<name>/sandbox) and behaves like the real API; this package
// holds only what is not specific to one API.
package sandboxkit

import (
	"net/http"
	"time"
)

// Service is one simulated API, mounted by the combined sandbox under
// /<Name>. Its handler sees paths with that prefix stripped, exactly as the
// real API's paths (e.g. /v1/credentials).
type Service interface {
	http.Handler
	// Name is the path prefix and the stats key: the connector's name.
	Name() string
	// Seed replaces all state with deterministic demo data.
	Seed(cfg Seed)
	// Reset empties all state and counters (then Seed again to refill).
	Reset()
	// Stats reports object counts and duplicates, as JSON-ready values.
	// Request and status counters are added by the combined server.
	Stats() ServiceStats
	// Mutate changes data the way real users do, so that pollers and
	// webhooks see updates; it reports what it changed. An unknown kind is
	// an error naming the kinds the service supports.
	Mutate(m Mutation) (map[string]any, error)
}

// Seed is the deterministic demo-data request.
type Seed struct {
	Members int   // number of members (the PeopleSource) and the scale for the others
	Seed    int64 // same Seed, same data
	// Now anchors generated dates, so that seeded data is reproducible.
	Now time.Time
	// People, when set, returns the i-th member (0-based) of the
	// organisation as another service holds it, so that seeded records
	// of this service (attendees, registrations) belong to real members
	// instead of invented people. ok is false past the last member.
	People func(i int) (p Person, ok bool)
}

// Person is a member as other services see one.
type Person struct {
	ID, FirstName, LastName, Email string
}

// PeopleSource is implemented by a service that holds the members; the combined sandbox seeds it first and hands its
// people to the others.
type PeopleSource interface {
	Person(i int) (Person, bool)
}

// Mutation asks a service to change N records of a kind: for example
// {Kind: "become_eligible", Count: 5}. Services document their kinds.
type Mutation struct {
	Kind  string         `json:"kind"`
	Count int            `json:"count"`
	Args  map[string]any `json:"args,omitempty"`
}

// ServiceStats is one service's entry in /_sandbox/stats.
type ServiceStats struct {
	// Objects counts stored objects by kind ("users", "credentials").
	Objects map[string]int `json:"objects"`
	// Duplicates counts objects that should have been unique (credentials
	// sharing a group and recipient email, attendees sharing an email,
	// payments sharing an external reference).
	Duplicates map[string]int `json:"duplicates"`
	// Requests by "METHOD /route/template", and Responses by status code,
	// filled in by the combined server's counters.
	Requests  map[string]int64 `json:"requests"`
	Responses map[string]int64 `json:"responses"`
}
