package engine

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/robfig/cron/v3"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/jsonenc"
	"github.com/memberflow/memberflow/recipes"
)

// recipeRT is a recipe ready to run: everything looked up once.
type recipeRT struct {
	r        *recipes.Recipe
	trigger  *connectors.TriggerSpec // nil for a schedule
	trigConn *openConn
	params   map[string]any // the trigger's evaluated `with`
	mode     string         // poll, webhook or schedule
	interval time.Duration
	schedule cron.Schedule
	hookPath string
	// fallbackPoll: a webhook trigger also polled every interval.
	fallbackPoll bool
	steps        []*stepRT
	// alert holds the parameters of an alert recipe (mode engine).
	alert alertParams
	// condReads are the env paths the recipe's when reads, for the audit.
	condReads []condRead
	// whenFields are the top-level fields of the trigger's records the
	// when reads (PollRequest.Fields); nil when it reads a record whole.
	whenFields []string
	// version is the recipe's hash; conns its connections, to compile an
	// earlier version of it (versions.go).
	version string
	conns   map[string]Connection
}

// polls reports whether the recipe's trigger is polled: a polling trigger,
// or a webhook trigger with a fallback poll.
func (rt *recipeRT) polls() bool { return rt.mode == "poll" || rt.fallbackPoll }

type stepRT struct {
	s      *recipes.Step
	index  int
	name   string // connection.operation
	action *connectors.ActionSpec
	conn   *openConn
	retry  recipes.RetryPolicy
	// intent: the action is a write that must not be sent twice, so its
	// intent is journaled before the call.
	intent bool
	// absent: the input keys a nil leaves out (nulls.go).
	absent *absentKeys
	// check: the computed input against the action's input schema; nil
	// when `with` computes nothing.
	check *recipes.InputCheck
}

func (e *Engine) compile(r *recipes.Recipe, conns map[string]Connection) (*recipeRT, error) {
	if r.Trigger == nil {
		return nil, fmt.Errorf("no trigger")
	}
	rt := &recipeRT{r: r}
	opened := map[string]*openConn{}
	get := func(name, where string) (*openConn, *connectors.Spec, error) {
		c, ok := conns[name]
		if !ok {
			return nil, nil, fmt.Errorf("%s: connection %q is not provided", where, name)
		}
		if oc, ok := opened[name]; ok {
			return oc, c.Spec, nil
		}
		oc, err := e.open(name, c)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		opened[name] = oc
		return oc, c.Spec, nil
	}
	env := recipes.Env{"vars": r.Vars}
	tr := r.Trigger
	switch {
	case tr.Schedule != "":
		s, err := cron.ParseStandard(tr.Schedule)
		if err != nil {
			return nil, fmt.Errorf("trigger: schedule %q: %w", tr.Schedule, err)
		}
		rt.mode, rt.schedule = "schedule", s
	default:
		oc, spec, err := get(tr.Connection, "trigger")
		if err != nil {
			return nil, err
		}
		t := spec.Trigger(tr.Operation)
		if t == nil {
			return nil, fmt.Errorf("trigger: connector %q has no trigger %q", spec.Name, tr.Operation)
		}
		rt.trigger, rt.trigConn = t, oc
		params, err := tr.With.EvalMap(env)
		if err != nil {
			return nil, fmt.Errorf("trigger (%s.%s): with: %w", tr.Connection, tr.Operation, err)
		}
		rt.params = params
		rt.mode = tr.Mode
		if rt.mode == "" {
			rt.mode = "poll"
			if t.Poll == nil {
				rt.mode = "webhook"
			}
			if t.Engine {
				rt.mode = "engine"
			}
		}
		switch rt.mode {
		case "engine":
			if !t.Engine {
				return nil, fmt.Errorf("trigger (%s.%s): the trigger is not fed by the engine (modes: %v)", tr.Connection, tr.Operation, t.Modes())
			}
			ap, err := parseAlertParams(t.Name, params)
			if err != nil {
				return nil, err
			}
			rt.alert = ap
		case "poll":
			if t.Poll == nil {
				return nil, fmt.Errorf("trigger (%s.%s): the trigger cannot poll (modes: %v)", tr.Connection, tr.Operation, t.Modes())
			}
			rt.interval = tr.Interval
			if rt.interval <= 0 {
				rt.interval = t.DefaultInterval
			}
			if rt.interval <= 0 {
				rt.interval = time.Minute
			}
		case "webhook":
			if t.Webhook == nil {
				return nil, fmt.Errorf("trigger (%s.%s): the trigger takes no webhooks (modes: %v)", tr.Connection, tr.Operation, t.Modes())
			}
			rt.hookPath = tr.WebhookPath
			if rt.hookPath == "" {
				rt.hookPath = "/hooks/" + r.Name
			}
			if tr.FallbackPoll > 0 {
				// Hybrid: a reconciling poll catches lost deliveries; the
				// trigger names a change alike both ways, so the store
				// drops the second sighting.
				if t.Poll == nil {
					return nil, fmt.Errorf("trigger (%s.%s): fallback_poll: the trigger cannot poll (modes: %v)", tr.Connection, tr.Operation, t.Modes())
				}
				rt.fallbackPoll, rt.interval = true, tr.FallbackPoll
			}
		default:
			return nil, fmt.Errorf("trigger: unknown mode %q (poll or webhook)", rt.mode)
		}
	}
	for i, s := range r.Steps {
		where := fmt.Sprintf("step %q (%s.%s)", s.ID, s.Connection, s.Operation)
		oc, spec, err := get(s.Connection, where)
		if err != nil {
			return nil, err
		}
		a := spec.Action(s.Operation)
		if a == nil {
			return nil, fmt.Errorf("%s: connector %q has no action %q", where, spec.Name, s.Operation)
		}
		st := &stepRT{s: s, index: i, name: s.Connection + "." + s.Operation, action: a, conn: oc,
			retry: e.opts.Retry, intent: !a.ReadOnly && !a.Idempotent, absent: absentKeysOf(a.Input),
		}
		if !e.opts.PlannedWrites {
			st.check = recipes.NewInputCheck(spec.Name+"/"+a.Name+"/input", s.With, a.Input)
		}
		if p := s.Retry; p != nil {
			if p.Attempts > 0 {
				st.retry.Attempts = p.Attempts
			}
			if p.Backoff > 0 {
				st.retry.Backoff = p.Backoff
			}
			if p.MaxBackoff > 0 {
				st.retry.MaxBackoff = p.MaxBackoff
			}
			st.retry.Timeout = p.Timeout
		}
		rt.steps = append(rt.steps, st)
	}
	if rt.mode != "engine" {
		// Failures of the connections the work uses are incidents; an
		// alert's own notification failing is not (no alert loops).
		if rt.trigConn != nil {
			rt.trigConn.watched = true
		}
		for _, st := range rt.steps {
			st.conn.watched = true
		}
	}
	if r.When != nil {
		paths, err := exprPaths(r.When.Source)
		if err != nil {
			return nil, fmt.Errorf("when: %w", err)
		}
		rt.condReads = condReads(paths)
		rt.whenFields = whenFields(paths)
	}
	return rt, nil
}

// exprPaths lists the member chains an expression reads from its
// environment (trigger.user.status, vars.plan), outermost only.
func exprPaths(src string) ([][]string, error) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, err
	}
	v := &pathVisitor{seen: map[string]bool{}}
	ast.Walk(&tree.Node, v)
	return v.paths, nil
}

type pathVisitor struct {
	paths [][]string
	seen  map[string]bool
}

func (v *pathVisitor) Visit(node *ast.Node) {
	// Walk visits children first, so a chain's prefixes come before it;
	// add keeps only the longest.
	switch n := (*node).(type) {
	case *ast.MemberNode:
		if p, ok := memberPath(n); ok {
			v.add(p)
		}
	case *ast.IdentifierNode:
		v.add([]string{n.Value})
	}
}

func (v *pathVisitor) add(p []string) {
	// Drop the prefixes of p already recorded: the longest chain wins.
	out := v.paths[:0]
	for _, q := range v.paths {
		if !isPrefix(q, p) {
			out = append(out, q)
		} else {
			delete(v.seen, fmt.Sprint(q))
		}
	}
	v.paths = out
	for _, q := range v.paths {
		if isPrefix(p, q) {
			return
		}
	}
	k := fmt.Sprint(p)
	if !v.seen[k] {
		v.seen[k] = true
		v.paths = append(v.paths, p)
	}
}

func isPrefix(a, b []string) bool {
	if len(a) > len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func memberPath(n *ast.MemberNode) ([]string, bool) {
	prop, ok := n.Property.(*ast.StringNode)
	if !ok {
		return nil, false
	}
	switch base := n.Node.(type) {
	case *ast.IdentifierNode:
		return []string{base.Value, prop.Value}, true
	case *ast.MemberNode:
		p, ok := memberPath(base)
		if !ok {
			return nil, false
		}
		return append(p, prop.Value), true
	}
	return nil, false
}

// whenFields are the top-level fields of the event a condition reads,
// from its paths: nil when it reads the event whole (trigger alone, as
// in len(trigger) or trigger[key], or through $env), or nothing of it.
func whenFields(paths [][]string) []string {
	var fields []string
	for _, p := range paths {
		switch {
		case p[0] == "$env" || (p[0] == "trigger" && len(p) < 2):
			return nil
		case p[0] == "trigger" && !slices.Contains(fields, p[1]):
			fields = append(fields, p[1])
		}
	}
	return fields
}

// condRead is one value a condition read, as the audit keeps it: its
// dotted path (the key) and the path.
type condRead struct {
	key  string
	path []string
}

// condReads orders a condition's paths as the audit's JSON object has
// them, by key; of paths that join to one key, the last is read (as a
// map's last assignment wins).
func condReads(paths [][]string) []condRead {
	var reads []condRead
	at := map[string]int{}
	for _, p := range paths {
		key := strings.Join(p, ".")
		if i, ok := at[key]; ok {
			reads[i].path = p
			continue
		}
		at[key] = len(reads)
		reads = append(reads, condRead{key: key, path: p})
	}
	slices.SortFunc(reads, func(a, b condRead) int { return strings.Compare(a.key, b.key) })
	return reads
}

// conditionValues reads the paths a condition used, for the audit: a
// JSON object of each path's value by its dotted path, encoded as
// encoding/json encodes such a map.
func conditionValues(reads []condRead, env recipes.Env) []byte {
	if len(reads) == 0 {
		return nil
	}
	var stack [256]byte
	b := append(stack[:0], '{')
	for i, r := range reads {
		if i > 0 {
			b = append(b, ',')
		}
		b, _ = jsonenc.Append(b, r.key)
		b = append(b, ':')
		var ok bool
		if b, ok = jsonenc.Append(b, readPath(env, r.path)); !ok {
			return conditionValuesMap(reads, env) // a value jsonenc leaves to encoding/json
		}
	}
	return bytes.Clone(append(b, '}'))
}

// conditionValuesMap is conditionValues through a map and Marshal.
func conditionValuesMap(reads []condRead, env recipes.Env) []byte {
	vals := make(map[string]any, len(reads))
	for _, r := range reads {
		vals[r.key] = readPath(env, r.path)
	}
	b, err := jsonenc.Marshal(vals)
	if err != nil {
		return nil
	}
	return b
}

// readPath is the value at path in env; nil when a value on the way is
// not an object.
func readPath(env recipes.Env, path []string) any {
	var cur any = map[string]any(env)
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}
