package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// maxOncePasses bounds `run --once`: a pass polls every trigger and runs
// what it found; the next pass sees what the previous one wrote (a
// certificate issued is news to the recipe that pushes it to the member).
// Passes repeat until one finds nothing new.
const maxOncePasses = 8

// runOnceUntilQuiet runs passes until one sees no new event, or until
// no trigger can have news: after the first pass (which polls every
// trigger), a pass polls only the triggers watching a service that
// another recipe changed something in during the pass before. A recipe's
// own writes are echoes to it (echo suppression), so they call for no
// other pass: a recipe run alone polls once.
func runOnceUntilQuiet(run func(poll func(recipe string) bool) (*engine.Summary, error), rs []*recipes.Recipe) (*engine.Summary, int, error) {
	var sum *engine.Summary
	seen := int64(-1)
	var poll func(string) bool
	prevWrites := map[string]map[string]int64{}
	for pass := 1; pass <= maxOncePasses; pass++ {
		s, err := run(poll)
		if s != nil {
			sum = s
		}
		if err != nil || s == nil {
			return sum, pass, err
		}
		var events int64
		for _, r := range s.Recipes {
			events += r.Events
		}
		if events == seen {
			return sum, pass, nil
		}
		seen = events
		next := pollAfter(s, prevWrites, rs)
		if len(next) == 0 {
			return sum, pass, nil
		}
		poll = func(recipe string) bool { return next[recipe] }
	}
	return sum, maxOncePasses, nil
}

// pollAfter returns the recipes (by the engine's name) whose trigger
// watches a connector that another recipe changed something in since
// prev (each recipe's Writes then, updated to now).
func pollAfter(s *engine.Summary, prev map[string]map[string]int64, rs []*recipes.Recipe) map[string]bool {
	byName := map[string]*recipes.Recipe{}
	for _, r := range rs {
		byName[r.Name] = r
		if r.ID != "" {
			byName[r.ID] = r
		}
	}
	wroteBy := map[string]map[string]bool{} // connector → recipes that changed something in it
	for _, rsum := range s.Recipes {
		r := byName[rsum.Recipe]
		before := prev[rsum.Recipe]
		now := map[string]int64{}
		for key, n := range rsum.Writes {
			now[key] = n
			if r == nil || n <= before[key] {
				continue
			}
			conn, _, _ := strings.Cut(key, ".")
			c := connectorOf(r, conn)
			if wroteBy[c] == nil {
				wroteBy[c] = map[string]bool{}
			}
			wroteBy[c][rsum.Recipe] = true
		}
		prev[rsum.Recipe] = now
	}
	next := map[string]bool{}
	for _, rsum := range s.Recipes {
		r := byName[rsum.Recipe]
		if r == nil || r.Trigger == nil {
			continue
		}
		for writer := range wroteBy[connectorOf(r, r.Trigger.Connection)] {
			if writer != rsum.Recipe {
				next[rsum.Recipe] = true
			}
		}
	}
	return next
}

// writeSummaryJSON prints the --once summary as one JSON object: the
// engine's counts per recipe (requests and requests per event included),
// the passes it took and the line writeGlance prints.
func writeSummaryJSON(w io.Writer, sum *engine.Summary, rs []*recipes.Recipe, passes int, dryRun bool) error {
	var line strings.Builder
	writeGlance(&line, sum, rs, dryRun)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		*engine.Summary
		Passes int    `json:"passes"`
		Line   string `json:"line"`
	}{sum, passes, strings.TrimSuffix(line.String(), "\n")})
}

// writeGlance prints one line a person can read at a glance: what the
// triggers saw, what was done (each operation's Effect) and what failed;
// in a dry run, what would have been done, and it says so first.
func writeGlance(w io.Writer, sum *engine.Summary, rs []*recipes.Recipe, dryRun bool) {
	byName := map[string]*recipes.Recipe{}
	for _, r := range rs {
		byName[r.Name] = r
		if r.ID != "" {
			byName[r.ID] = r // the engine names a renamed recipe by its id
		}
	}
	seen := map[string]int64{}
	counts := map[string]int64{}
	used := map[string]bool{} // connectors of the recipes that ran
	var dead int64
	for _, s := range sum.Recipes {
		r := byName[s.Recipe]
		if r == nil {
			continue
		}
		for _, c := range r.Connections {
			used[c.Connector] = true
		}
		dead += s.Dead
		if t := r.Trigger; t != nil {
			// A subject is seen by every recipe that watches it: the
			// largest count is the number seen, not the sum.
			if e := effectOf(connectorOf(r, t.Connection), t.Operation, true); e != "" {
				seen[e] = max(seen[e], s.Events)
			}
		}
		// The label a read-only step gives the write after it: what it
		// made is what that write stores (a QR code appended to a file is
		// a QR code made, not a record written).
		carried := ""
		labelOf := map[string]string{}
		for _, st := range r.Steps {
			key := st.Connection + "." + st.Operation
			e := effectOf(connectorOf(r, st.Connection), st.Operation, false)
			if spec, ok := connectors.Default.Lookup(connectorOf(r, st.Connection)); ok {
				if a := spec.Action(st.Operation); a != nil && a.ReadOnly {
					if e != "" {
						carried = e
					}
					continue
				}
			}
			if carried != "" {
				e, carried = carried, ""
			}
			if e != "" {
				labelOf[key] = e
			}
		}
		for key, n := range s.Writes {
			conn, op, _ := strings.Cut(key, ".")
			e := labelOf[key]
			if e == "" {
				e = effectOf(connectorOf(r, conn), op, false)
			}
			if e != "" {
				counts[e] += n
			}
		}
	}
	var parts []string
	// The first trigger effect that saw anything, in catalogue order (a
	// connector's first trigger is its broadest, "members seen"), else the
	// first there is.
	triggerLabels, actionLabels := catalogueEffects(used)
	first := ""
	for _, e := range triggerLabels {
		if _, used := seen[e]; used && (first == "" || seen[first] == 0 && seen[e] > 0) {
			first = e
		}
	}
	if first != "" {
		parts = append(parts, counted(seen[first], first))
	}
	for _, e := range actionLabels {
		if n := counts[e]; n > 0 {
			parts = append(parts, counted(n, e))
		}
	}
	// Only figures that identical inputs make identical: what changed
	// (Writes counts changes, not calls) and what failed. How many events
	// a polling trigger sees is not one of them: a record that another
	// recipe writes back before the poll reaches it is one change, after
	// it two, so the events, the runs their conditions skipped, and the
	// upserts that found their record already as asked depend on timing.
	// The table above has them.
	parts = append(parts, fmt.Sprintf("%d failed", dead))
	if dryRun {
		fmt.Fprint(w, "dry run (writes planned, not made): ")
	}
	fmt.Fprintln(w, strings.Join(parts, " · "))
}

// counted puts a count before an Effect, a plural phrase that ends with
// its noun and a participle ("QR codes made"): one of them is "1 QR code
// made".
func counted(n int64, effect string) string {
	if words := strings.Fields(effect); n == 1 && len(words) >= 2 {
		noun := &words[len(words)-2]
		if s, ok := strings.CutSuffix(*noun, "s"); ok && s != "" {
			*noun = s
			effect = strings.Join(words, " ")
		}
	}
	return fmt.Sprintf("%d %s", n, effect)
}

// effectOf is an operation's Effect, "" when it has none.
func effectOf(connector, operation string, trigger bool) string {
	spec, ok := connectors.Default.Lookup(connector)
	if !ok {
		return ""
	}
	if trigger {
		if t := spec.Trigger(operation); t != nil {
			return t.Effect
		}
		return ""
	}
	if a := spec.Action(operation); a != nil {
		return a.Effect
	}
	return ""
}

// catalogueEffects lists the distinct trigger and action effects of the
// used connectors in catalogue order: the order of the summary line. Only
// those are looked up: building a connector's spec costs tens of
// milliseconds, too much for the end of a short run.
func catalogueEffects(used map[string]bool) (triggers, actions []string) {
	seen := map[string]bool{}
	for _, name := range connectors.Default.Names() {
		if !used[name] {
			continue
		}
		spec, ok := connectors.Default.Lookup(name)
		if !ok {
			continue
		}
		for _, t := range spec.Triggers {
			if t.Effect != "" && !seen["t"+t.Effect] {
				seen["t"+t.Effect] = true
				triggers = append(triggers, t.Effect)
			}
		}
		for _, a := range spec.Actions {
			if a.Effect != "" && !seen["a"+a.Effect] {
				seen["a"+a.Effect] = true
				actions = append(actions, a.Effect)
			}
		}
	}
	return triggers, actions
}

func connectorOf(r *recipes.Recipe, connection string) string {
	if c, ok := r.Connections[connection]; ok {
		return c.Connector
	}
	return connection
}
