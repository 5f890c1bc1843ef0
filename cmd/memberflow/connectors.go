package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/memberflow/memberflow/connectors"
)

func init() {
	register(&command{
		name:    "connectors",
		summary: "list connectors and their triggers and actions, or show one operation",
		usage:   "[--format text|json] [NAME [OPERATION]]",
		help: `Without arguments, lists every connector with its triggers (and how they are
fed: poll, webhook) and actions, and the totals. With NAME, shows that
connector; with NAME OPERATION, the operation's input and output schemas and
an example 'with' block.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			format := fs.String("format", "text", "output format: text or json")
			return func(_ context.Context, args []string, io stdio) int {
				return runConnectors(connectors.Default, *format, args, io)
			}
		},
	})
}

func runConnectors(reg *connectors.Registry, format string, args []string, io stdio) int {
	if format != "text" && format != "json" {
		fmt.Fprintf(io.err, "memberflow connectors: --format must be text or json, got %q\n", format)
		return exitUsage
	}
	var err error
	switch len(args) {
	case 0:
		err = listConnectors(reg, format, io.out)
	case 1, 2:
		spec, ok := reg.Lookup(args[0])
		if !ok {
			fmt.Fprintf(io.err, "memberflow connectors: unknown connector %q%s; connectors: %s\n", args[0], didYouMean(args[0], reg.Names()), strings.Join(reg.Names(), ", "))
			return exitUsage
		}
		if len(args) == 1 {
			err = showConnector(spec, format, io.out)
			break
		}
		op := catalogueOp(spec, args[1])
		if op == nil {
			fmt.Fprintf(io.err, "memberflow connectors: connector %q has no operation %q%s; run \"memberflow connectors %s\" to list them\n", spec.Name, args[1], didYouMean(args[1], spec.OperationNames()), spec.Name)
			return exitUsage
		}
		err = showOperation(spec, op, format, io.out)
	default:
		fmt.Fprintf(io.err, "memberflow connectors: too many arguments %q; want at most NAME OPERATION\n", args)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(io.err, "memberflow connectors: %v\n", err)
		return exitFail
	}
	return exitOK
}

// catalogueEntry is one operation in the catalogue's JSON.
type catalogueEntry struct {
	Name       string          `json:"name"`
	Kind       string          `json:"kind"` // trigger or action
	Summary    string          `json:"summary"`
	Modes      []string        `json:"modes,omitempty"` // triggers: poll, webhook
	ReadOnly   bool            `json:"read_only,omitempty"`
	Idempotent bool            `json:"idempotent,omitempty"`
	Settles    bool            `json:"settles,omitempty"` // has a look-up for in-doubt writes
	HTTP       *catalogueHTTP  `json:"http,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
	Output     json.RawMessage `json:"output,omitempty"`
	Example    map[string]any  `json:"example,omitempty"`
	op         *connectors.Operation
}

type catalogueHTTP struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

type catalogueConnector struct {
	Name     string           `json:"name"`
	Title    string           `json:"title,omitempty"`
	Summary  string           `json:"summary"`
	Auth     []string         `json:"auth"`
	BaseURL  string           `json:"base_url,omitempty"`
	Triggers []catalogueEntry `json:"triggers"`
	Actions  []catalogueEntry `json:"actions"`
}

type catalogueTotals struct {
	Connectors int `json:"connectors"`
	Triggers   int `json:"triggers"`
	Actions    int `json:"actions"`
	Operations int `json:"operations"`
}

func entryOf(spec *connectors.Spec, name string, full bool) *catalogueEntry {
	var e *catalogueEntry
	if t := spec.Trigger(name); t != nil {
		e = &catalogueEntry{Name: t.Name, Kind: "trigger", Summary: t.Summary, Modes: t.Modes(), op: &t.Operation}
	} else if a := spec.Action(name); a != nil {
		e = &catalogueEntry{Name: a.Name, Kind: "action", Summary: a.Summary, ReadOnly: a.ReadOnly, Idempotent: a.Idempotent, Settles: a.Settle != nil, op: &a.Operation}
	} else {
		return nil
	}
	if h := e.op.HTTP; h != nil {
		e.HTTP = &catalogueHTTP{Method: h.Method, Path: h.Path}
	}
	if full {
		e.Input, e.Output, e.Example = e.op.Input, e.op.Output, e.op.Example
	}
	return e
}

func catalogueOp(spec *connectors.Spec, name string) *catalogueEntry {
	return entryOf(spec, name, true)
}

func connectorEntry(spec *connectors.Spec) catalogueConnector {
	c := catalogueConnector{Name: spec.Name, Title: spec.Title, Summary: spec.Summary, BaseURL: spec.BaseURL, Auth: []string{}, Triggers: []catalogueEntry{}, Actions: []catalogueEntry{}}
	for _, a := range spec.Auth {
		c.Auth = append(c.Auth, string(a))
	}
	for _, t := range spec.Triggers {
		c.Triggers = append(c.Triggers, *entryOf(spec, t.Name, false))
	}
	for _, a := range spec.Actions {
		c.Actions = append(c.Actions, *entryOf(spec, a.Name, false))
	}
	return c
}

func listConnectors(reg *connectors.Registry, format string, w io.Writer) error {
	var all []catalogueConnector
	var tot catalogueTotals
	for _, spec := range reg.List() {
		c := connectorEntry(spec)
		all = append(all, c)
		tot.Connectors++
		tot.Triggers += len(c.Triggers)
		tot.Actions += len(c.Actions)
	}
	tot.Operations = tot.Triggers + tot.Actions
	if format == "json" {
		if all == nil {
			all = []catalogueConnector{}
		}
		return catWriteJSON(w, map[string]any{"connectors": all, "totals": tot})
	}
	if tot.Connectors == 0 {
		_, err := fmt.Fprintln(w, "No connectors are registered.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, c := range all {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "%s: %s\n", c.Name, c.Summary)
		catWriteEntries(tw, c)
	}
	fmt.Fprintf(tw, "\n%d operations: %d triggers and %d actions in %d connectors.\n", tot.Operations, tot.Triggers, tot.Actions, tot.Connectors)
	fmt.Fprintln(tw, `Run "memberflow connectors NAME OPERATION" for schemas and an example.`)
	return tw.Flush()
}

func catWriteEntries(tw io.Writer, c catalogueConnector) {
	for _, t := range c.Triggers {
		fmt.Fprintf(tw, "  trigger\t%s\t%s\t%s\n", t.Name, strings.Join(t.Modes, "+"), t.Summary)
	}
	for _, a := range c.Actions {
		binding := ""
		if a.HTTP != nil {
			binding = a.HTTP.Method + " " + a.HTTP.Path
		}
		fmt.Fprintf(tw, "  action\t%s\t%s\t%s\n", a.Name, binding, a.Summary)
	}
}

func showConnector(spec *connectors.Spec, format string, w io.Writer) error {
	c := connectorEntry(spec)
	if format == "json" {
		return catWriteJSON(w, struct {
			catalogueConnector
			RateLimit *catalogueRate  `json:"rate_limit,omitempty"`
			Options   json.RawMessage `json:"options,omitempty"`
		}{c, catRate(spec.RateLimit), spec.Options})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	title := c.Name
	if c.Title != "" {
		title = c.Title + " (" + c.Name + ")"
	}
	fmt.Fprintf(tw, "%s: %s\n\n", title, c.Summary)
	fmt.Fprintf(tw, "Auth:\t%s\n", strings.Join(c.Auth, ", "))
	if c.BaseURL != "" {
		fmt.Fprintf(tw, "Base URL:\t%s\n", c.BaseURL)
	}
	if r := catRate(spec.RateLimit); r != nil {
		fmt.Fprintf(tw, "Rate limit:\t%s\n", r.Text)
	} else {
		fmt.Fprintf(tw, "Rate limit:\tnone\n")
	}
	if len(spec.Options) > 0 {
		fmt.Fprintf(tw, "Options:\t%s\n", strings.Join(catOptionNames(spec.Options), ", "))
	}
	fmt.Fprintf(tw, "\n%s, %s:\n", catPlural(len(c.Triggers), "trigger"), catPlural(len(c.Actions), "action"))
	catWriteEntries(tw, c)
	fmt.Fprintf(tw, "\nRun \"memberflow connectors %s OPERATION\" for schemas and an example.\n", c.Name)
	return tw.Flush()
}

type catalogueRate struct {
	Requests int    `json:"requests"`
	Per      string `json:"per"`
	Burst    int    `json:"burst,omitempty"`
	Text     string `json:"-"`
}

func catRate(r connectors.RateLimit) *catalogueRate {
	if r.Unlimited() {
		return nil
	}
	per := r.Per.String()
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}} {
		if r.Per >= u.d && r.Per%u.d == 0 {
			per = strings.TrimPrefix(catPlural(int(r.Per/u.d), u.name), "1 ")
			break
		}
	}
	text := fmt.Sprintf("%d requests per %s", r.Requests, per)
	if r.Burst > 0 {
		text += fmt.Sprintf(" (burst %d)", r.Burst)
	}
	return &catalogueRate{Requests: r.Requests, Per: r.Per.String(), Burst: r.Burst, Text: text}
}

func showOperation(spec *connectors.Spec, e *catalogueEntry, format string, w io.Writer) error {
	if format == "json" {
		out := struct {
			Connector   string `json:"connector"`
			Description string `json:"description,omitempty"`
			*catalogueEntry
		}{spec.Name, e.op.Description, e}
		return catWriteJSON(w, out)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s.%s (%s)\n%s\n", spec.Name, e.Name, e.Kind, e.Summary)
	if d := strings.TrimSpace(e.op.Description); d != "" {
		fmt.Fprintf(&b, "\n%s\n", d)
	}
	b.WriteString("\n")
	if e.HTTP != nil {
		fmt.Fprintf(&b, "Request:     %s %s\n", e.HTTP.Method, e.HTTP.Path)
	}
	if e.Kind == "trigger" {
		fmt.Fprintf(&b, "Modes:       %s\n", strings.Join(e.Modes, ", "))
	} else {
		fmt.Fprintf(&b, "Read-only:   %s\n", catYesNo(e.ReadOnly))
		fmt.Fprintf(&b, "Idempotent:  %s\n", catYesNo(e.Idempotent))
		if !e.ReadOnly && !e.Idempotent {
			fmt.Fprintf(&b, "Settles:     %s\n", catYesNo(e.Settles))
		}
	}
	for _, s := range []struct {
		title string
		raw   json.RawMessage
	}{{"Input schema (with)", e.Input}, {"Output schema", e.Output}} {
		fmt.Fprintf(&b, "\n%s:\n", s.title)
		if len(s.raw) == 0 {
			b.WriteString("  (none)\n")
			continue
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, s.raw, "  ", "  "); err != nil {
			return fmt.Errorf("%s.%s: %s is not valid JSON: %w", spec.Name, e.Name, strings.ToLower(s.title), err)
		}
		b.WriteString("  ")
		b.Write(pretty.Bytes())
		b.WriteString("\n")
	}
	if len(e.Example) > 0 {
		var ex bytes.Buffer
		enc := yaml.NewEncoder(&ex)
		enc.SetIndent(2)
		err := enc.Encode(map[string]any{"with": e.Example})
		if err != nil {
			return fmt.Errorf("%s.%s: example: %w", spec.Name, e.Name, err)
		}
		b.WriteString("\nExample:\n")
		for _, line := range strings.Split(strings.TrimRight(ex.String(), "\n"), "\n") {
			b.WriteString("  " + line + "\n")
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func catYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// schemaFieldNames lists a JSON Schema object's properties, required ones
// marked with *.
func catOptionNames(raw json.RawMessage) []string {
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	req := map[string]bool{}
	for _, r := range s.Required {
		req[r] = true
	}
	var names []string
	for _, k := range catSortedNames(s.Properties) {
		if req[k] {
			k += "*"
		}
		names = append(names, k)
	}
	return names
}

func catSortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func catWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return errors.New("encoding JSON: " + err.Error())
	}
	return nil
}

func catPlural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
