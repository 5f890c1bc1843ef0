package recipes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/santhosh-tekuri/jsonschema/v5"
	"gopkg.in/yaml.v3"

	"github.com/memberflow/memberflow/connectors"
)

// maxValues bounds the values one file may expand to (aliases included).
const maxValues = 200000

// compileRecipe runs the schema, semantic and expression layers on a
// parsed recipe. Each layer reads the nodes it can make sense of and skips
// the rest, so that a typo in one place does not hide a problem elsewhere.
func (l *loader) compileRecipe(s *source, root *yaml.Node) *loadedRecipe {
	budget := maxValues
	value, err := toValue(root, &budget)
	if err != nil {
		s.errorf(root, "%v", err)
		return nil
	}
	recipeSch, _, doc, err := compiledSchemas()
	if err != nil {
		s.errorf(root, "recipe schema: %v", err)
		return nil
	}
	s.checkSchema(root, value, recipeSch, doc, "", nil)

	r := &Recipe{File: s.name, Pos: s.nodePos(root), Connections: map[string]*Connection{}}
	lr := &loadedRecipe{r: r, src: s, nameNode: get(root, "name")}
	top, _ := value.(map[string]any)
	if v, ok := top["version"].(int); ok {
		r.Version = v
	}
	r.Name, _ = top["name"].(string)
	r.ID, _ = top["id"].(string)
	if r.ID == "" {
		r.ID = r.Name
	}
	// The version a run records: the file as written.
	sum := sha256.Sum256(s.data)
	r.Hash, r.Source = hex.EncodeToString(sum[:]), s.data
	r.Description, _ = top["description"].(string)
	r.Vars, _ = top["vars"].(map[string]any)
	varsType := valueType(r.Vars, 0)
	if r.Vars == nil {
		varsType = mapType(map[string]*ftype{}, nil)
	}

	l.connections(s, root, r)
	trig := l.compileTrigger(s, root, r, varsType)
	if n := get(root, "when"); isString(n) {
		sc := (&scope{where: "when", trigger: trig, vars: varsType}).build()
		r.When = s.bareExpr(n, sc, true)
	}
	l.compileSteps(s, root, r, trig, varsType)
	for i, t := range items(get(root, "tests")) {
		raw, _ := toValue(t, &budget)
		m, _ := raw.(map[string]any)
		name, _ := m["name"].(string)
		if name == "" {
			name = fmt.Sprintf("test %d", i+1)
		}
		r.Tests = append(r.Tests, &Test{Name: name, Pos: s.nodePos(t), Raw: m})
	}
	return lr
}

// connections gathers the recipe's connections: those of its shared file
// (or of Options.Connections) and its own.
func (l *loader) connections(s *source, root *yaml.Node, r *Recipe) {
	from := map[string]string{} // connection name → file it came from
	var files []*connFile
	if len(l.opts.Connections) > 0 {
		if !l.overlaid {
			l.overlaid = true
			defined := map[string]string{} // connection name → the file that defines it
			for _, p := range l.opts.Connections {
				cf, err := l.sharedFile(p)
				if err != nil {
					l.ioError(p, err)
					continue
				}
				// Which file wins must never be a question: a connection
				// in two of them may point the recipes at another service.
				for name, key := range cf.keys {
					if first, dup := defined[name]; dup && cf.src != nil {
						cf.src.errorf(key, "connection %q is also defined in %s (an earlier --connections file); define each connection in one file", name, first)
					}
					defined[name] = cf.path
				}
				l.overlay = append(l.overlay, cf)
			}
		}
		files = l.overlay
	} else if n := get(root, "connections_file"); isString(n) && n.Value != "" {
		p := n.Value
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(s.name), p)
		}
		cf, err := l.sharedFile(p)
		if err != nil {
			s.errorf(n, "connections_file: cannot read %s: %v", p, unwrapPathError(err))
		} else {
			files = append(files, cf)
		}
	}
	for _, cf := range files {
		for name, c := range cf.conns {
			r.Connections[name] = c
			from[name] = cf.path
		}
	}
	for _, p := range pairs(get(root, "connections")) {
		name := p[0].Value
		if f, dup := from[name]; dup {
			s.errorf(p[0], "connection %q is also defined in %s; rename one of them", name, f)
			continue
		}
		if c := l.compileConnection(s, p[0], resolve(p[1])); c != nil {
			r.Connections[name] = c
		}
	}
}

// reservedHTTPPath reports whether run --http serves path itself.
func reservedHTTPPath(path string) bool {
	switch path {
	case "/metrics", "/healthz", "/readyz", "/console":
		return true
	}
	return strings.HasPrefix(path, "/console/")
}

var secretFields = map[string]bool{"key": true, "token": true, "client_secret": true, "refresh_token": true}

var authRequired = map[connectors.AuthKind][][]string{
	connectors.AuthAPIKey: {{"key"}},
	connectors.AuthBearer: {{"token"}},
	connectors.AuthOAuth2: {{"client_id"}, {"client_secret", "refresh_token"}},
}

// compileConnection checks one connection against its connector.
func (l *loader) compileConnection(s *source, key, n *yaml.Node) *Connection {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	name := key.Value
	where := fmt.Sprintf("connection %q", name)
	c := &Connection{Name: name, Pos: s.nodePos(key), Auth: map[string]*Template{}, Webhook: map[string]*Template{}}
	var spec *connectors.Spec
	if cn := get(n, "connector"); isString(cn) {
		c.Connector = cn.Value
		var ok bool
		if spec, ok = l.reg.Lookup(cn.Value); !ok {
			hint := ""
			if alt := closest(cn.Value, l.reg.Names()); alt != "" {
				hint = fmt.Sprintf("; did you mean %q?", alt)
			} else if names := l.reg.Names(); len(names) > 0 {
				hint = " (known: " + strings.Join(names, ", ") + ")"
			}
			s.errorf(cn, "%s: unknown connector %q%s", where, cn.Value, hint)
		}
	}
	if b := get(n, "base_url"); isString(b) {
		c.BaseURL = b.Value
	}
	if l.secretScope == nil {
		l.secretScope = (&scope{secrets: true}).build()
	}
	secretScope := l.secretScope
	secretScope.where = where + " auth"
	if a := get(n, "auth"); a != nil && a.Kind == yaml.MappingNode {
		for _, p := range pairs(a) {
			field, v := p[0].Value, resolve(p[1])
			if secretFields[field] && isString(v) && v.Value != "" && !strings.Contains(v.Value, "${{") {
				s.warnf(v, "%s: auth.%s is written as a literal; use ${{ secret.NAME }} so the secret stays out of the file", where, field)
			}
			if t := s.template(v, secretScope); t != nil {
				c.Auth[field] = t
			}
		}
		if t := get(a, "type"); isString(t) {
			kind := connectors.AuthKind(t.Value)
			if spec != nil && len(spec.Auth) > 0 && !containsAuth(spec.Auth, kind) {
				s.errorf(t, "%s: connector %q does not support auth type %q (it supports: %s)", where, spec.Name, t.Value, authList(spec.Auth))
			}
			for _, alts := range authRequired[kind] {
				found := false
				for _, f := range alts {
					found = found || get(a, f) != nil
				}
				if !found {
					s.errorf(getKey(n, "auth"), "%s: auth type %s needs %s", where, kind, strings.Join(alts, " or "))
				}
			}
		}
	}
	if o := get(n, "options"); o != nil && o.Kind == yaml.MappingNode {
		budget := maxValues
		v, _ := toValue(o, &budget)
		c.Options, _ = v.(map[string]any)
		if spec != nil && len(spec.Options) > 0 {
			if sch, doc := compiledOptionSchema(spec); sch != nil {
				s.checkSchema(o, v, sch, doc, fmt.Sprintf("connections.%s.options", name), nil)
			}
		}
	}
	if get(n, "options") == nil && spec != nil && len(spec.Options) > 0 {
		// Required options are required even when the block is missing.
		if sch, _ := compiledOptionSchema(spec); sch != nil {
			if err := sch.Validate(map[string]any{}); err != nil {
				s.errorf(key, "%s: connector %q needs options: %s", where, spec.Name, requiredSummary(err))
			}
		}
	}
	if rl := get(n, "rate_limit"); rl != nil {
		switch {
		case rl.Kind == yaml.ScalarNode && rl.Value == "off":
			c.RateLimit = &connectors.RateLimit{}
		case rl.Kind == yaml.MappingNode:
			budget := maxValues
			v, _ := toValue(rl, &budget)
			m, _ := v.(map[string]any)
			lim := &connectors.RateLimit{}
			lim.Requests, _ = m["requests"].(int)
			lim.Burst, _ = m["burst"].(int)
			if per, ok := m["per"].(string); ok {
				lim.Per, _ = time.ParseDuration(per)
			}
			c.RateLimit = lim
		}
	}
	if w := get(n, "webhook"); w != nil && w.Kind == yaml.MappingNode {
		for _, p := range pairs(w) {
			field, v := p[0].Value, resolve(p[1])
			if field == "secret" && isString(v) && v.Value != "" && !strings.Contains(v.Value, "${{") {
				s.warnf(v, "%s: webhook.secret is written as a literal; use ${{ secret.NAME }} so the secret stays out of the file", where)
			}
			if t := s.template(v, secretScope); t != nil {
				c.Webhook[field] = t
			}
		}
	}
	return c
}

func containsAuth(list []connectors.AuthKind, k connectors.AuthKind) bool {
	for _, a := range list {
		if a == k {
			return true
		}
	}
	return false
}

func authList(list []connectors.AuthKind) string {
	s := make([]string, len(list))
	for i, a := range list {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

type compiledSchema struct {
	sch *jsonschema.Schema
	doc any
}

var opSchemas sync.Map // schema text → *compiledSchema

// compileOpSchema compiles a connector schema once per process.
func compileOpSchema(name string, raw json.RawMessage) (*jsonschema.Schema, any) {
	if len(raw) == 0 {
		return nil, nil
	}
	if c, ok := opSchemas.Load(string(raw)); ok {
		return c.(*compiledSchema).sch, c.(*compiledSchema).doc
	}
	sch, err := connectors.CompileSchema(name, raw)
	if err != nil {
		return nil, nil // connectors.Check refuses such a spec
	}
	var doc any
	_ = json.Unmarshal(raw, &doc)
	opSchemas.Store(string(raw), &compiledSchema{sch: sch, doc: doc})
	return sch, doc
}

func compiledOptionSchema(spec *connectors.Spec) (*jsonschema.Schema, any) {
	return compileOpSchema(spec.Name+"/options", spec.Options)
}

// operation resolves `uses: connection.operation`. It reports problems at
// the part of the value they are about and returns the connection's spec
// (nil when unknown) and the operation name.
func (l *loader) operation(s *source, r *Recipe, uses *yaml.Node, where string) (*connectors.Spec, string) {
	connName, op, ok := strings.Cut(uses.Value, ".")
	if !ok {
		return nil, "" // the schema pattern reported it
	}
	c, ok := r.Connections[connName]
	if !ok {
		names := make([]string, 0, len(r.Connections))
		for n := range r.Connections {
			names = append(names, n)
		}
		sort.Strings(names)
		hint := ""
		if alt := closest(connName, names); alt != "" {
			hint = fmt.Sprintf("; did you mean %q?", alt)
		} else if len(names) == 0 {
			hint = " (the recipe defines no connections)"
		} else {
			hint = " (defined: " + strings.Join(names, ", ") + ")"
		}
		s.errorAt(s.scalarPos(uses, 0), "%s: unknown connection %q%s", where, connName, hint)
		return nil, ""
	}
	spec, ok := l.reg.Lookup(c.Connector)
	if !ok {
		return nil, "" // reported on the connection
	}
	return spec, op
}

func (s *source) unknownOperation(uses *yaml.Node, where, kind, op string, spec *connectors.Spec, names []string, other string) {
	at := s.scalarPos(uses, strings.IndexByte(uses.Value, '.')+1)
	if other != "" {
		s.errorAt(at, "%s: %s.%s is %s, not a%s %s", where, spec.Name, op, other, map[bool]string{true: "n"}[strings.HasPrefix(kind, "a")], kind)
		return
	}
	hint := ""
	if alt := closest(op, names); alt != "" {
		hint = fmt.Sprintf("; did you mean %q?", alt)
	} else if len(names) > 0 {
		hint = " (it has: " + strings.Join(names, ", ") + ")"
	}
	s.errorAt(at, "%s: connector %q has no %s %q%s", where, spec.Name, kind, op, hint)
}

func triggerNames(spec *connectors.Spec) []string {
	var n []string
	for _, t := range spec.Triggers {
		n = append(n, t.Name)
	}
	return n
}

func actionNames(spec *connectors.Spec) []string {
	var n []string
	for _, a := range spec.Actions {
		n = append(n, a.Name)
	}
	return n
}

// compileTrigger checks the trigger and returns the type of its event
// data (any when it cannot be known).
func (l *loader) compileTrigger(s *source, root *yaml.Node, r *Recipe, varsType *ftype) *ftype {
	n := get(root, "trigger")
	if n == nil || n.Kind != yaml.MappingNode {
		return anyType
	}
	t := &Trigger{Pos: s.nodePos(getKey(root, "trigger"))}
	r.Trigger = t
	out := anyType
	uses, sched := get(n, "uses"), get(n, "schedule")
	var ts *connectors.TriggerSpec
	switch {
	case uses == nil && sched == nil:
		s.errorf(getKey(root, "trigger"), "trigger: needs uses (a connector trigger) or schedule (a cron expression)")
	case uses != nil && sched != nil:
		s.errorf(getKey(n, "schedule"), "trigger: has both uses and schedule; keep one")
	case isString(sched):
		t.Schedule = sched.Value
		if _, err := cron.ParseStandard(sched.Value); err != nil {
			s.errorf(sched, "trigger.schedule: %v", err)
		}
		out = schemaType(connectors.Schedule.Output)
		for _, k := range []string{"with", "mode", "interval", "start", "path", "fallback_poll"} {
			if kn := getKey(n, k); kn != nil {
				s.errorf(kn, "trigger: %s does not apply to a schedule", k)
			}
		}
	case isString(uses):
		t.Pos = s.nodePos(uses)
		spec, op := l.operation(s, r, uses, "trigger")
		t.Connection, t.Operation, _ = strings.Cut(uses.Value, ".")
		if spec != nil {
			ts = spec.Trigger(op)
			if ts == nil {
				other := ""
				if spec.Action(op) != nil {
					other = "an action"
				}
				s.unknownOperation(uses, "trigger", "trigger", op, spec, triggerNames(spec), other)
			} else {
				out = schemaType(ts.Output)
			}
		}
	}
	sc := (&scope{where: "trigger.with", vars: varsType}).build()
	if w := get(n, "with"); w != nil && w.Kind == yaml.MappingNode {
		t.With = s.template(w, sc)
		if ts != nil {
			s.checkWith(w, ts.Input, fmt.Sprintf("%s/%s/input", r.Connections[t.Connection].Connector, ts.Name), "trigger.with")
		}
	} else if ts != nil {
		s.needsWith(uses, ts.Input, r.Connections[t.Connection].Connector+"/"+ts.Name+"/input", "trigger")
	}
	if m := get(n, "mode"); isString(m) {
		t.Mode = m.Value
	}
	if ts != nil {
		modes := ts.Modes()
		if t.Mode == "" && len(modes) > 0 {
			t.Mode = modes[0]
		} else if t.Mode != "" && !containsString(modes, t.Mode) {
			s.errorf(get(n, "mode"), "trigger: %s cannot be fed by %s (it supports: %s)", uses.Value, t.Mode, strings.Join(modes, ", "))
		}
	}
	if ts != nil && t.Mode == "webhook" && ts.Webhook != nil && ts.Webhook.Key != "" {
		// Verify needs the connection's key: without it every delivery
		// would be refused at run time.
		if c := r.Connections[t.Connection]; c != nil && c.Webhook[ts.Webhook.Key] == nil {
			at := get(n, "mode")
			if at == nil {
				at = uses
			}
			s.errorf(at, "trigger: webhooks of %s are verified with the connection's webhook.%s, and connection %q has none (add webhook: { %s: \"${{ secret.NAME }}\" })",
				uses.Value, ts.Webhook.Key, t.Connection, ts.Webhook.Key)
		}
	}
	if fp := get(n, "fallback_poll"); isString(fp) {
		t.FallbackPoll, _ = time.ParseDuration(fp.Value)
		switch {
		case t.Mode != "webhook":
			s.errorf(getKey(n, "fallback_poll"), "trigger: fallback_poll reconciles a webhook trigger (set mode: webhook); a polling trigger has interval")
		case ts != nil && ts.Poll == nil:
			s.errorf(getKey(n, "fallback_poll"), "trigger: %s cannot poll, so it has no fallback poll", uses.Value)
		}
	}
	hybrid := t.FallbackPoll > 0
	if iv := get(n, "interval"); isString(iv) {
		t.Interval, _ = time.ParseDuration(iv.Value)
		if t.Mode == "webhook" {
			s.errorf(getKey(n, "interval"), "trigger: interval applies to polling, and this trigger is a webhook (its reconciling poll is fallback_poll)")
		}
	}
	if st := get(n, "start"); isString(st) {
		t.Start = connectors.Start(st.Value)
		if t.Mode == "webhook" && !hybrid {
			s.errorf(getKey(n, "start"), "trigger: start applies to polling, and this trigger is a webhook")
		}
	} else if t.Mode == "poll" || hybrid {
		t.Start = connectors.StartNow
	}
	if p := get(n, "path"); isString(p) {
		t.WebhookPath = p.Value
		if t.Mode == "poll" {
			s.errorf(getKey(n, "path"), "trigger: path applies to webhooks, and this trigger polls (set mode: webhook)")
		}
		if reservedHTTPPath(p.Value) {
			s.errorf(p, "trigger: path %q is memberflow run --http's own (/metrics, /healthz, /readyz, /console/): its deliveries would never reach the trigger; choose another, such as /hooks/%s", p.Value, r.Name)
		}
	} else if t.Mode == "webhook" {
		t.WebhookPath = "/hooks/" + r.Name
	}
	if ob := get(n, "order_by"); isString(ob) {
		osc := (&scope{where: "trigger.order_by", trigger: out, vars: varsType}).build()
		t.OrderBy = s.bareExpr(ob, osc, false)
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkWith validates a `with` block against the operation's input
// schema. A value that holds ${{ }} is only known at run time: its type
// is not checked here, but the expression's own checks apply.
func (s *source) checkWith(w *yaml.Node, input json.RawMessage, name, where string) {
	sch, doc := compileOpSchema(name, input)
	if sch == nil {
		return
	}
	// A template stands for a value of the type its expression has, so
	// that the schema checks that type; a value of unknown type is
	// accepted as it is, and only its key is checked.
	sample := map[string]any{"string": "", "integer": 0, "number": 0, "boolean": false, "array": []any{}, "object": map[string]any{}}
	sub := func(n *yaml.Node) (any, bool) {
		v, ok := sample[s.kinds[n]]
		return v, ok
	}
	budget := maxValues
	value, _ := toValueSub(w, &budget, sub)
	skip := func(ve *jsonschema.ValidationError, n *yaml.Node) bool {
		kw := lastToken(ve.KeywordLocation)
		if kw == "required" || kw == "additionalProperties" || !isString(n) || !strings.Contains(n.Value, "${{") {
			return false
		}
		if kind := s.kinds[n]; kw == "type" && kind != "" {
			s.errorf(n, "%s: the value is %s, but the input expects %s", humanPath(where, ve.InstanceLocation), article(kind), typeList(schemaAt(doc, ve.AbsoluteKeywordLocation)))
		}
		// Other checks (enum, pattern, bounds) need the run-time
		// value: the engine makes them before the call (InputCheck).
		return true
	}
	s.checkSchema(w, value, sch, doc, where, skip)
}

func article(kind string) string {
	if strings.ContainsAny(kind[:1], "aeiou") {
		return "an " + kind
	}
	return "a " + kind
}

func typeList(t any) string {
	switch t := t.(type) {
	case []any:
		parts := make([]string, len(t))
		for i, x := range t {
			parts[i] = fmt.Sprint(x)
		}
		return strings.Join(parts, " or ")
	}
	return fmt.Sprint(t)
}

// needsWith reports, at the uses line, an operation whose input requires
// keys when the recipe gives no with block.
func (s *source) needsWith(uses *yaml.Node, input json.RawMessage, name, where string) {
	sch, _ := compileOpSchema(name, input)
	if sch == nil {
		return
	}
	if err := sch.Validate(map[string]any{}); err != nil {
		s.errorf(uses, "%s: needs a with block: %s", where, requiredSummary(err))
	}
}

// requiredSummary explains why an empty object is not valid.
func requiredSummary(err error) string {
	msg := schemaSummary(err)
	var keys []string
	for _, m := range quotedRE.FindAllStringSubmatch(msg, -1) {
		keys = append(keys, m[1])
	}
	if len(keys) > 0 {
		return "it requires " + strings.Join(keys, ", ")
	}
	return msg
}

// compileSteps checks every step in order; each sees the outputs of the
// steps before it.
func (l *loader) compileSteps(s *source, root *yaml.Node, r *Recipe, trig, varsType *ftype) {
	steps := items(get(root, "steps"))
	ids := make([]string, len(steps))
	lines := map[string]int{}
	for i, n := range steps {
		ids[i] = fmt.Sprintf("step%d", i+1)
		if id := get(n, "id"); isString(id) && id.Value != "" {
			ids[i] = id.Value
			if first, dup := lines[id.Value]; dup {
				s.errorf(id, "step id %q is already used by the step at line %d", id.Value, first)
				continue
			}
		}
		if _, dup := lines[ids[i]]; !dup {
			lines[ids[i]] = n.Line
		}
	}
	var earlier []stepOut
	for i, n := range steps {
		if n.Kind != yaml.MappingNode {
			continue
		}
		st := &Step{ID: ids[i], Pos: s.nodePos(n), OnError: "fail"}
		r.Steps = append(r.Steps, st)
		where := fmt.Sprintf("step %q", st.ID)
		later := map[string]int{}
		for j := i + 1; j < len(steps); j++ {
			later[ids[j]] = steps[j].Line
		}
		out := anyType
		var action *connectors.ActionSpec
		if uses := get(n, "uses"); isString(uses) {
			where = fmt.Sprintf("step %q (%s)", st.ID, uses.Value)
			st.Connection, st.Operation, _ = strings.Cut(uses.Value, ".")
			if spec, op := l.operation(s, r, uses, fmt.Sprintf("step %q", st.ID)); spec != nil {
				action = spec.Action(op)
				if action == nil {
					other := ""
					if spec.Trigger(op) != nil {
						other = "a trigger"
					}
					s.unknownOperation(uses, fmt.Sprintf("step %q", st.ID), "action", op, spec, actionNames(spec), other)
				} else {
					out = schemaType(action.Output)
					st.SignsWithWebhook = action.SignsWithWebhook
				}
			}
		}
		// One scope (and one typed configuration) serves the step's with
		// and when; only the place named in messages differs.
		var sc *scope
		mk := func(w string) *scope {
			if sc == nil {
				sc = (&scope{trigger: trig, vars: varsType, steps: earlier, later: later, self: st.ID}).build()
			}
			sc.where = w
			return sc
		}
		if w := get(n, "with"); w != nil && w.Kind == yaml.MappingNode {
			st.With = s.template(w, mk(where+" with"))
			if action != nil {
				s.checkWith(w, action.Input, r.Connections[st.Connection].Connector+"/"+action.Name+"/input", where+" with")
			}
		} else if action != nil {
			s.needsWith(get(n, "uses"), action.Input, r.Connections[st.Connection].Connector+"/"+action.Name+"/input", where)
		}
		if wn := get(n, "when"); isString(wn) {
			st.When = s.bareExpr(wn, mk(where+" when"), true)
		}
		if rt := get(n, "retry"); rt != nil && rt.Kind == yaml.MappingNode {
			st.Retry = &RetryPolicy{Attempts: 1}
			for _, p := range pairs(rt) {
				v := resolve(p[1])
				if v == nil || v.Kind != yaml.ScalarNode {
					continue
				}
				switch p[0].Value {
				case "attempts":
					_ = v.Decode(&st.Retry.Attempts)
				case "backoff":
					st.Retry.Backoff, _ = time.ParseDuration(v.Value)
				case "max_backoff":
					st.Retry.MaxBackoff, _ = time.ParseDuration(v.Value)
				case "timeout":
					st.Retry.Timeout, _ = time.ParseDuration(v.Value)
				}
			}
			if st.Retry.MaxBackoff > 0 && st.Retry.Backoff > st.Retry.MaxBackoff {
				s.errorf(get(rt, "backoff"), "%s: retry.backoff is longer than retry.max_backoff", where)
			}
		}
		if oe := get(n, "on_error"); isString(oe) {
			st.OnError = oe.Value
		}
		earlier = append(earlier, stepOut{id: st.ID, out: out})
	}
}

// schemaSummary is a one-line form of a validation error.
func schemaSummary(err error) string {
	if ve, ok := err.(*jsonschema.ValidationError); ok {
		var msgs []string
		for _, leaf := range schemaLeaves(ve, nil) {
			msgs = append(msgs, leaf.Message)
		}
		return strings.Join(msgs, "; ")
	}
	return err.Error()
}

// bareExpr compiles a condition or key written without ${{ }} (also
// accepted with them, as a whole).
func (s *source) bareExpr(n *yaml.Node, sc *scope, asBool bool) *Expr {
	src, off := n.Value, 0
	if segs, err := SplitInterpolation(n.Value); err == nil && len(segs) == 1 && segs[0].Expr &&
		strings.HasPrefix(strings.TrimSpace(n.Value), "${{") && strings.HasSuffix(strings.TrimSpace(n.Value), "}}") {
		src, off = segs[0].Text, segs[0].Offset
	} else {
		trimmed := strings.TrimLeft(src, " \t\n")
		off = len(src) - len(trimmed)
		src = strings.TrimRight(trimmed, " \t\n")
	}
	if src == "" {
		s.errorf(n, "%s: empty expression", sc.where)
		return nil
	}
	return s.compileAt(n, src, off, sc, asBool)
}

// template compiles a value whose strings may hold ${{ }}, node by node,
// so that each expression knows its own position. It returns nil when an
// expression in it is invalid (the problem is reported).
func (s *source) template(n *yaml.Node, sc *scope) *Template {
	ok := true
	root := s.tnode(n, sc, &ok, 0)
	if !ok {
		return nil
	}
	return &Template{root: root}
}

func (s *source) tnode(n *yaml.Node, sc *scope, ok *bool, depth int) tnode {
	n = resolve(n)
	if n == nil || depth > 100 {
		return tconst{nil}
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := tmap{}
		for _, p := range pairs(n) {
			m.keys = append(m.keys, p[0].Value)
			m.vals = append(m.vals, s.tnode(p[1], sc, ok, depth+1))
		}
		return m
	case yaml.SequenceNode:
		l := tlist{}
		for _, it := range n.Content {
			l.items = append(l.items, s.tnode(it, sc, ok, depth+1))
		}
		return l
	}
	v := scalarValue(n)
	str, isStr := v.(string)
	if !isStr || !strings.Contains(str, "${{") {
		return tconst{v}
	}
	segs, err := SplitInterpolation(str)
	if err != nil {
		off := 0
		msg := err.Error()
		if ie, isIE := err.(*InterpolationError); isIE {
			off, msg = ie.Offset, ie.Msg
		}
		s.errorAt(s.scalarPos(n, off), "%s: %s", sc.where, msg)
		*ok = false
		return tconst{nil}
	}
	var parts []tnode
	for _, sg := range segs {
		if !sg.Expr {
			parts = append(parts, tconst{sg.Text})
			continue
		}
		e := s.compileAt(n, sg.Text, sg.Offset, sc, false)
		if e == nil {
			*ok = false
			return tconst{nil}
		}
		parts = append(parts, texpr{e})
	}
	if s.kinds == nil {
		s.kinds = map[*yaml.Node]string{}
	}
	if len(parts) == 1 {
		if te, ok := parts[0].(texpr); ok {
			s.kinds[n] = te.e.kind
		}
		return parts[0]
	}
	s.kinds[n] = "string" // text around an expression makes a string
	return tconcat{parts}
}
