package connectors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// Registry holds connector specs by name. The zero value is not usable:
// use [NewRegistry]. Tests build their own; the binary uses [Default].
type Registry struct {
	mu    sync.RWMutex
	specs map[string]*Spec
	// lazy holds specs registered by name and built at first use.
	lazy map[string]func() *Spec
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{specs: map[string]*Spec{}, lazy: map[string]func() *Spec{}}
}

// Default is the registry connector packages add themselves to at init;
// import connectors/all to fill it.
var Default = NewRegistry()

// Register adds a spec to the default registry.
func Register(s *Spec) error { return Default.Register(s) }

// MustRegister adds a spec to the default registry and panics on error.
func MustRegister(s *Spec) { Default.MustRegister(s) }

// MustRegisterLazy adds a connector to the default registry by name; its
// spec is built at first use (see [Registry.MustRegisterLazy]).
func MustRegisterLazy(name string, build func() *Spec) { Default.MustRegisterLazy(name, build) }

// Register checks a spec and adds it. It fails on a duplicate connector,
// a malformed or duplicate operation name, or a schema that is not JSON.
// Schemas are compiled when first used, not here: connectors register at
// init, and compiling every schema of every connector there made each
// start (even `--help`) pay for all of them. [CheckSchemas] compiles them
// all, for tests.
func (r *Registry) Register(s *Spec) error {
	if err := Check(s); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.has(s.Name) {
		return fmt.Errorf("connector %q is already registered", s.Name)
	}
	r.specs[s.Name] = s
	return nil
}

func (r *Registry) has(name string) bool {
	_, built := r.specs[name]
	_, lazy := r.lazy[name]
	return built || lazy
}

// MustRegisterLazy adds a connector whose spec is built, and checked, the
// first time it is looked up or listed: a connector's spec is derived from
// its OpenAPI document, and a process that never uses it (`--help`, a
// recipe of other connectors) should not pay for that at start. It panics
// on a duplicate name now, and at first use when build returns a spec
// that fails [Check] or has another name, as [Registry.MustRegister] does
// at init.
func (r *Registry) MustRegisterLazy(name string, build func() *Spec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.has(name) {
		panic(fmt.Sprintf("connector %q is already registered", name))
	}
	r.lazy[name] = build
}

// build turns lazily registered connectors into specs; r.mu is held.
func (r *Registry) build(names ...string) {
	for _, name := range names {
		b, ok := r.lazy[name]
		if !ok {
			continue
		}
		s := b()
		if err := Check(s); err != nil {
			panic(fmt.Sprintf("connector %q: %v", name, err))
		}
		if s.Name != name {
			panic(fmt.Sprintf("connector registered as %q builds a spec named %q", name, s.Name))
		}
		delete(r.lazy, name)
		r.specs[name] = s
	}
}

func (r *Registry) buildAll() {
	r.mu.RLock()
	n := len(r.lazy)
	r.mu.RUnlock()
	if n == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name := range r.lazy {
		r.build(name)
	}
}

// MustRegister is Register that panics, for init functions.
func (r *Registry) MustRegister(s *Spec) {
	if err := r.Register(s); err != nil {
		panic(err)
	}
}

// Lookup returns the named connector's spec.
func (r *Registry) Lookup(name string) (*Spec, bool) {
	r.mu.RLock()
	s, ok := r.specs[name]
	_, lazy := r.lazy[name]
	r.mu.RUnlock()
	if ok || !lazy {
		return s, ok
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.build(name)
	s, ok = r.specs[name]
	return s, ok
}

// List returns every spec, sorted by name.
func (r *Registry) List() []*Spec {
	r.buildAll()
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Spec, 0, len(r.specs))
	for _, s := range r.specs {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names returns the registered connector names, sorted, without building
// a lazily registered spec.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.specs)+len(r.lazy))
	for n := range r.specs {
		names = append(names, n)
	}
	for n := range r.lazy {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Check validates a spec on its own: names, required functions, and
// schemas present and well-formed JSON (cheap: it runs at every start).
// Every problem is reported, joined.
func Check(s *Spec) error {
	if s == nil {
		return errors.New("nil connector spec")
	}
	var errs []error
	if !namePattern.MatchString(s.Name) {
		errs = append(errs, fmt.Errorf("connector name %q must be snake_case", s.Name))
	}
	if s.Open == nil {
		errs = append(errs, fmt.Errorf("connector %q: Open is nil", s.Name))
	}
	seen := map[string]bool{}
	checkOp := func(kind string, op *Operation) {
		where := fmt.Sprintf("connector %q: %s %q", s.Name, kind, op.Name)
		if !namePattern.MatchString(op.Name) {
			errs = append(errs, fmt.Errorf("%s: name must be snake_case", where))
		}
		if seen[op.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate operation name", where))
		}
		seen[op.Name] = true
		if op.Summary == "" {
			errs = append(errs, fmt.Errorf("%s: summary is empty", where))
		}
		for _, sch := range []struct {
			name string
			raw  json.RawMessage
		}{{"input", op.Input}, {"output", op.Output}} {
			if len(sch.raw) == 0 {
				errs = append(errs, fmt.Errorf("%s: %s schema is missing", where, sch.name))
				continue
			}
			if !json.Valid(sch.raw) {
				errs = append(errs, fmt.Errorf("%s: %s schema is not valid JSON", where, sch.name))
			}
		}
	}
	for _, a := range s.Actions {
		checkOp("action", &a.Operation)
		if a.Run == nil {
			errs = append(errs, fmt.Errorf("connector %q: action %q: Run is nil", s.Name, a.Name))
		}
		if b := a.Batch; b != nil && (b.Run == nil || b.Max < 1) {
			errs = append(errs, fmt.Errorf("connector %q: action %q: a batch form needs Run and a Max of at least 1", s.Name, a.Name))
		}
	}
	for _, t := range s.Triggers {
		checkOp("trigger", &t.Operation)
		if t.Poll == nil && t.Webhook == nil && !t.Engine {
			errs = append(errs, fmt.Errorf("connector %q: trigger %q: neither Poll nor Webhook", s.Name, t.Name))
		}
	}
	errs = append(errs, checkRecords(s)...)
	return errors.Join(errs...)
}

// CheckSchemas compiles every schema of a spec (options, and each
// operation's input and output) and reports those that do not compile,
// joined. Tests call it for every connector; recipes compile only the
// schemas they use, once per process.
func CheckSchemas(s *Spec) error {
	var errs []error
	compile := func(where, name string, raw json.RawMessage) {
		if len(raw) == 0 {
			return
		}
		if _, err := CompileSchema(name, raw); err != nil {
			errs = append(errs, fmt.Errorf("connector %q: %s: %w", s.Name, where, err))
		}
	}
	compile("options schema", s.Name+"/options", s.Options)
	for _, a := range s.Actions {
		compile(fmt.Sprintf("action %q: input schema", a.Name), s.Name+"/"+a.Name+"/input", a.Input)
		compile(fmt.Sprintf("action %q: output schema", a.Name), s.Name+"/"+a.Name+"/output", a.Output)
	}
	for _, t := range s.Triggers {
		compile(fmt.Sprintf("trigger %q: input schema", t.Name), s.Name+"/"+t.Name+"/input", t.Input)
		compile(fmt.Sprintf("trigger %q: output schema", t.Name), s.Name+"/"+t.Name+"/output", t.Output)
	}
	return errors.Join(errs...)
}

// CompileSchema compiles a JSON Schema document (draft 2020-12 unless it
// says otherwise). name only has to be unique enough for error messages.
func CompileSchema(name string, raw json.RawMessage) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	url := "mem:///" + name + ".json"
	if err := c.AddResource(url, bytes.NewReader(raw)); err != nil {
		return nil, err
	}
	return c.Compile(url)
}
