// Package demo sets up what `memberflow run --sandbox --once examples/`
// does, in process: the seeded sandbox, the example recipes pointed at
// it, a SQLite store and an engine, run until nothing new happens. The
// reconcile and console tests start from it.
package demo

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
	"github.com/memberflow/memberflow/recipes"
)

// Options configures a demo.
type Options struct {
	Examples string // the examples folder
	Dir      string // for the store and the files connection's output
	Members  int
	Seed     int64
	Logger   hclog.Logger
}

// Demo is a sandbox with the examples wired to it.
type Demo struct {
	Sandbox     *sandbox.Server
	URL         string
	Store       *sqlitestore.Store
	Recipes     []*recipes.Recipe
	Connections map[string]map[string]engine.Connection // by recipe name
	log         hclog.Logger
}

// Start seeds and starts the sandbox (rate limits off: tests measure
// correctness, not waiting), loads the examples and opens the store.
func Start(o Options) (*Demo, error) {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	sb, err := sandbox.New(sandbox.Options{Members: o.Members, Seed: o.Seed, RateLimit: &sandboxkit.Limit{}})
	if err != nil {
		return nil, err
	}
	base, err := sb.Start("127.0.0.1:0")
	if err != nil {
		sb.Close()
		return nil, err
	}
	d := &Demo{Sandbox: sb, URL: base, Connections: map[string]map[string]engine.Connection{}, log: o.Logger}
	rs, diags := recipes.Load(recipes.Options{Registry: connectors.Default,
		Connections: []string{filepath.Join(o.Examples, "connections.sandbox.yaml")}}, o.Examples)
	if diags.HasErrors() {
		d.Close()
		return nil, fmt.Errorf("demo: the examples do not load: %v", diags)
	}
	d.Recipes = rs
	secretMap := recipes.SecretMap(sandbox.DemoSecrets())
	secretMap["SANDBOX_NOTIFY_SECRET"] = sandbox.NotifySecret
	secrets := demoSecrets{secretMap}
	services := sb.Services()
	for _, r := range rs {
		conns := map[string]engine.Connection{}
		for name, c := range r.Connections {
			spec, ok := connectors.Default.Lookup(c.Connector)
			if !ok {
				d.Close()
				return nil, fmt.Errorf("demo: %s: unknown connector %q", r.File, c.Connector)
			}
			cfg, err := c.Resolve(secrets)
			if err != nil {
				d.Close()
				return nil, fmt.Errorf("demo: %s: %w", r.File, err)
			}
			if slices.Contains(services, spec.Name) {
				cfg.BaseURL = sb.URL(spec.Name)
			}
			switch spec.Name {
			case "file":
				cfg.Options = map[string]any{"baseDir": filepath.Join(o.Dir, "out")}
			case "notify":
				// Notifications go to the sandbox's alert sink, as with
				// run --sandbox.
				if strings.HasPrefix(cfg.BaseURL, "smtp://") {
					cfg.BaseURL, cfg.Auth = sb.SMTPURL(), connectors.Auth{}
					cfg.Options = map[string]any{"tls": "none", "from": cfg.Options["from"]}
				} else {
					cfg.BaseURL = base + "/_sandbox/notifications"
				}
			}
			cfg.Logger = o.Logger.Named(name)
			conns[name] = engine.Connection{Spec: spec, Config: cfg}
		}
		d.Connections[r.Name] = conns
	}
	d.Store, err = sqlitestore.Open(filepath.Join(o.Dir, "memberflow.db"), sqlitestore.Options{})
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Run runs every example until a pass finds no new event, as `run
// --once` does, and returns the last pass's summary.
func (d *Demo) Run(ctx context.Context) (*engine.Summary, error) {
	// One run at a time: two examples upsert the same attendee and the
	// engine orders runs per recipe, not across recipes.
	eng, err := engine.New(engine.Options{Store: d.Store, Logger: d.log, Concurrency: 1, Owner: "demo"})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	for _, r := range d.Recipes {
		if err := eng.Add(r, d.Connections[r.Name]); err != nil {
			return nil, err
		}
	}
	var sum *engine.Summary
	seen := int64(-1)
	for pass := 0; pass < 10; pass++ {
		s, err := eng.RunOnce(ctx)
		if err != nil {
			return s, err
		}
		sum = s
		var events int64
		for _, r := range s.Recipes {
			events += r.Events
		}
		if events == seen {
			break
		}
		seen = events
	}
	return sum, nil
}

// demoSecrets answers the sandbox's secrets, and a placeholder for any
// other (the sandbox ignores them).
type demoSecrets struct{ recipes.SecretMap }

func (d demoSecrets) Lookup(name string) (string, bool) {
	if v, ok := d.SecretMap.Lookup(name); ok {
		return v, true
	}
	return "sandbox-placeholder", true
}

// Close stops the sandbox and closes the store.
func (d *Demo) Close() {
	if d.Store != nil {
		d.Store.Close()
	}
	d.Sandbox.Close()
}
