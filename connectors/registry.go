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
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{specs: map[string]*Spec{}} }

// Default is the registry connector packages add themselves to at init;
// import connectors/all to fill it.
var Default = NewRegistry()

// Register adds a spec to the default registry.
func Register(s *Spec) error { return Default.Register(s) }

// MustRegister adds a spec to the default registry and panics on error.
func MustRegister(s *Spec) { Default.MustRegister(s) }

// Register checks a spec and adds it. It fails on a duplicate connector,
// a malformed or duplicate operation name, or a schema that does not compile.
func (r *Registry) Register(s *Spec) error {
	if err := Check(s); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.specs[s.Name]; dup {
		return fmt.Errorf("connector %q is already registered", s.Name)
	}
	r.specs[s.Name] = s
	return nil
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
	defer r.mu.RUnlock()
	s, ok := r.specs[name]
	return s, ok
}

// List returns every spec, sorted by name.
func (r *Registry) List() []*Spec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Spec, 0, len(r.specs))
	for _, s := range r.specs {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names returns the registered connector names, sorted.
func (r *Registry) Names() []string {
	specs := r.List()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return names
}

// Check validates a spec on its own: names, required functions and schemas.
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
			if _, err := CompileSchema(s.Name+"/"+op.Name+"/"+sch.name, sch.raw); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s schema: %w", where, sch.name, err))
			}
		}
	}
	for _, a := range s.Actions {
		checkOp("action", &a.Operation)
		if a.Run == nil {
			errs = append(errs, fmt.Errorf("connector %q: action %q: Run is nil", s.Name, a.Name))
		}
	}
	for _, t := range s.Triggers {
		checkOp("trigger", &t.Operation)
		if t.Poll == nil && t.Webhook == nil && !t.Engine {
			errs = append(errs, fmt.Errorf("connector %q: trigger %q: neither Poll nor Webhook", s.Name, t.Name))
		}
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
