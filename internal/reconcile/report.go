package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/recipes"
)

// Report is one reconciliation: what was read, the rules and the drift.
type Report struct {
	Taken    time.Time      `json:"taken"`
	Counts   map[string]int `json:"counts"`
	Calls    int            `json:"calls"`
	Rules    []RuleInfo     `json:"rules"`
	Findings []Finding      `json:"findings"`
}

// Run reads the systems and checks every rule.
func (r *Reconciler) Run(ctx context.Context) (*Report, *Snapshot, error) {
	s, err := r.Read(ctx)
	if err != nil {
		return nil, nil, err
	}
	return r.Report(s), s, nil
}

// Report checks a snapshot.
func (r *Reconciler) Report(s *Snapshot) *Report {
	rep := &Report{Taken: s.Taken, Calls: s.Calls, Rules: r.Rules(), Findings: r.Check(s),
		Counts: map[string]int{"members": len(s.Members), "payments": len(s.Payments), "credentials": len(s.Credentials),
			"attendees": len(s.Attendees), "orders": len(s.Orders)}}
	if rep.Findings == nil {
		rep.Findings = []Finding{}
	}
	return rep
}

// ByRule counts findings per rule.
func (rep *Report) ByRule() map[string]int {
	out := map[string]int{}
	for _, f := range rep.Findings {
		out[f.Rule]++
	}
	return out
}

// WriteText prints the findings as a table, then a line per rule.
func (rep *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(rep.Findings) > 0 {
		fmt.Fprintln(tw, "RULE\tRECORDS\tFIX\tSINCE\tDRIFT")
		for _, f := range rep.Findings {
			fix := "-"
			switch {
			case f.Fix != nil:
				fix = f.Recipe
			case f.Recipe != "":
				fix = f.Recipe + " (its when is false)"
			}
			sinceTxt := "-"
			if f.Since != nil {
				sinceTxt = f.Since.Format("2006-01-02")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Rule, strings.Join(f.Records, " "), fix, sinceTxt, f.Summary)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	by := rep.ByRule()
	for _, ru := range rep.Rules {
		state := fmt.Sprintf("%d drift", by[ru.ID])
		if !ru.Checked {
			state = "not checked: no loaded recipe makes it apply"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", ru.ID, state, dash(ru.Recipe))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	keys := make([]string, 0, len(rep.Counts))
	for k := range rep.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", rep.Counts[k], k))
	}
	_, err := fmt.Fprintf(w, "\n%d drift · read %s in %d polls\n", len(rep.Findings), strings.Join(parts, ", "), rep.Calls)
	return err
}

// WriteJSON prints the report as JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// Planned is a fix run as planned or enqueued.
type Planned struct {
	Recipe  string `json:"recipe"`
	EventID string `json:"event_id"`
	Subject string `json:"subject"`
	Rule    string `json:"rule"`
	// RunID is the enqueued run; 0 in a dry run or when the event was
	// already enqueued by an earlier --fix of the same reconciliation.
	RunID int64 `json:"run_id,omitempty"`
}

// Fix enqueues, in store, the run each fixable finding names: the
// recipe's own event for the drifting record, under an ID of this
// reconciliation, so that the next `memberflow run` runs it through the
// recipe's condition and steps like any other event. One run per recipe
// and subject, however many rules the record breaks. With dryRun, it
// only plans. The event has no fingerprint: echo suppression must not
// drop a repair of memberflow's own earlier write.
func Fix(ctx context.Context, store engine.TriggerStore, rep *Report, dryRun bool) ([]Planned, error) {
	byRecipe := map[string][]engine.NewEvent{}
	var plans []Planned
	seen := map[string]bool{}
	stamp := rep.Taken.UTC().Format("20060102T150405Z")
	for _, f := range rep.Findings {
		if f.Fix == nil {
			continue
		}
		key := f.Fix.Recipe + "\x00" + f.Fix.Subject
		if seen[key] {
			continue
		}
		seen[key] = true
		data, err := json.Marshal(f.Fix.Data)
		if err != nil {
			return nil, fmt.Errorf("reconcile: fix of %s: %w", f.Fix.Subject, err)
		}
		ev := engine.NewEvent{ID: "reconcile/" + stamp + "/" + f.Fix.Subject, Subject: f.Fix.Subject, Connector: f.Fix.Connector,
			OrderingKey: f.Fix.Subject, Time: rep.Taken, Data: data}
		if f.Fix.orderBy != nil {
			if v, err := f.Fix.orderBy.Eval(recipes.Env{"trigger": f.Fix.Data, "vars": f.Fix.vars}); err == nil {
				if s := fmt.Sprint(v); s != "" {
					ev.OrderingKey = s
				}
			}
		}
		byRecipe[f.Fix.Recipe] = append(byRecipe[f.Fix.Recipe], ev)
		plans = append(plans, Planned{Recipe: f.Fix.Recipe, EventID: ev.ID, Subject: ev.Subject, Rule: f.Rule})
	}
	if dryRun {
		return plans, nil
	}
	names := make([]string, 0, len(byRecipe))
	for n := range byRecipe {
		names = append(names, n)
	}
	sort.Strings(names)
	runs := map[string]int64{}
	for _, n := range names {
		enq, err := store.Advance(ctx, n, engine.Advance{Events: byRecipe[n]})
		if err != nil {
			return nil, fmt.Errorf("reconcile: enqueueing the fixes of %s: %w", n, err)
		}
		for _, e := range enq {
			runs[n+"\x00"+e.EventID] = e.RunID
		}
	}
	for i := range plans {
		plans[i].RunID = runs[plans[i].Recipe+"\x00"+plans[i].EventID]
	}
	return plans, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
