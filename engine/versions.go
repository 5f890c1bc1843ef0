package engine

import (
	"context"
	"fmt"
	"sync"
)

// Recipe versions: each run records the hash of the recipe version that
// ran it (Completion.Version), the store keeps every version's source
// (Versions.SaveVersion), and a run resumed or replayed after a failure
// runs the version it last ran with, unless the operator unpinned it
// (dlq replay --latest). An earlier version is compiled once, with the
// recipe's current connections (Options.LoadVersion).

type versionCache struct {
	mu sync.Mutex
	m  map[string]*recipeRT // recipe + "\x00" + hash
}

func (e *Engine) versions() Versions {
	v, _ := e.store.(Versions)
	return v
}

// saveVersion remembers the version Add loaded.
func (e *Engine) saveVersion(rt *recipeRT, conns map[string]Connection) error {
	rt.version, rt.conns = rt.r.Hash, conns
	vs := e.versions()
	if vs == nil || rt.version == "" {
		return nil
	}
	return vs.SaveVersion(context.Background(), RecipeVersion{Recipe: rt.r.Name, Hash: rt.version,
		Revision: rt.r.Revision, File: rt.r.File, Source: rt.r.Source, Seen: e.now()})
}

// runtimeFor is the runtime a claimed run runs with: the loaded version,
// or, for a run that already ran (a resume, a replay), the version it ran
// with.
func (e *Engine) runtimeFor(ctx context.Context, rt *recipeRT, cr *ClaimedRun) (*recipeRT, error) {
	vs := e.versions()
	if vs == nil || cr.Attempts <= 1 || rt.version == "" {
		return rt, nil
	}
	want, err := vs.RunVersion(ctx, cr.ID)
	if err != nil || want == "" || want == rt.version {
		return rt, nil // no pin: the loaded version
	}
	key := rt.r.Name + "\x00" + want
	e.vcache.mu.Lock()
	defer e.vcache.mu.Unlock()
	if old, ok := e.vcache.m[key]; ok {
		return old, nil
	}
	fail := func(err error) (*recipeRT, error) {
		return nil, fmt.Errorf("recipe %q: run %d ran with version %.12s, which %w; replay it with the loaded version: memberflow dlq replay --latest %d",
			rt.r.Name, cr.ID, want, err, cr.ID)
	}
	if e.opts.LoadVersion == nil {
		return fail(fmt.Errorf("this runner cannot load"))
	}
	v, err := vs.LoadVersion(ctx, rt.r.Name, want)
	if err != nil {
		return fail(fmt.Errorf("the store cannot give: %w", err))
	}
	r, err := e.opts.LoadVersion(rt.r, v.Source)
	if err != nil {
		return fail(fmt.Errorf("no longer loads: %w", err))
	}
	cp := *r
	cp.Name, cp.Revision = rt.r.Name, v.Revision
	old, err := e.compile(&cp, rt.conns)
	if err != nil {
		return fail(fmt.Errorf("no longer compiles: %w", err))
	}
	old.version, old.conns = want, rt.conns
	if e.vcache.m == nil {
		e.vcache.m = map[string]*recipeRT{}
	}
	e.vcache.m[key] = old
	return old, nil
}
