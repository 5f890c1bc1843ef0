package sandboxkit

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"github.com/memberflow/memberflow/connectors"
)

// Registration is what a service sandbox tells the combined sandbox and
// the CLI about itself, so that neither names a concrete API: a connector
// with a sandbox is one folder (connectors/<name>/sandbox registers in its
// init; connectors/all imports it).
type Registration struct {
	// Name is the connector's name and the mount prefix (/<name>).
	Name string
	// New builds the service.
	New func(Options) Service
	// Auth is the demo credentials the sandbox accepts, in the form the
	// connector of that name sends them.
	Auth connectors.Auth
	// Options are the connection options naming the demo account.
	Options map[string]any
	// Webhook returns the webhook settings that verify the service's
	// deliveries; serviceURL is where the service is mounted (a public
	// key may have to be fetched from it). Nil: nothing to verify with.
	Webhook func(ctx context.Context, client *http.Client, serviceURL string) (connectors.Webhook, error)
	// Limits describes the documented rate limits for help texts
	// ("100 per 10 s").
	Limits string
	// Hints are the lines the CLI prints under the service's URL: demo
	// keys and a request to try.
	Hints func(serviceURL string) []string
	// Failure is the body of an injected 500, in the service's format.
	Failure string
}

var (
	regMu         sync.RWMutex
	registrations = map[string]Registration{}
)

// Register adds a service sandbox. It panics on a duplicate or nameless
// registration: both are build defects.
func Register(r Registration) {
	if r.Name == "" || r.New == nil {
		panic("sandboxkit: a registration needs a name and New")
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registrations[r.Name]; dup {
		panic(fmt.Sprintf("sandboxkit: service %q registered twice", r.Name))
	}
	registrations[r.Name] = r
}

// Registered returns every registration, by name.
func Registered() []Registration {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]Registration, 0, len(registrations))
	for _, r := range registrations {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the registration of a service.
func Lookup(name string) (Registration, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	r, ok := registrations[name]
	return r, ok
}
