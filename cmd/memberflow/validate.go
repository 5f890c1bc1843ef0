package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/recipes"
)

func init() {
	register(&command{
		name:    "validate",
		summary: "check recipes: YAML, schema, connectors and typed expressions",
		usage:   "[--format text|json] [--connections FILE]... PATH...",
		help: `Checks recipe files and folders (recursively, *.yaml and *.yml; *.test.yaml
files are left to "memberflow test"). Every problem is reported, at its line
and column: "path:line:col: error|warning: message", then the source line
and a caret. --format json prints [{file, line, column, severity, message}].

Exit status: 0 when valid (warnings allowed), 1 when any error, 2 for usage
or I/O errors (a folder holding no recipe file is one: a wrong path must not
pass).`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			format := fs.String("format", "text", "output format: text or json")
			var conns stringList
			fs.Var(&conns, "connections", "shared connections `file` replacing the recipes' connections_file (repeatable)")
			verbose := fs.Bool("v", false, "log each loaded recipe to stderr")
			return func(_ context.Context, args []string, io stdio) int {
				logger := hclog.NewNullLogger()
				if *verbose {
					logger = hclog.New(&hclog.LoggerOptions{Name: "memberflow", Level: hclog.Debug, Output: io.err})
				}
				opts := recipes.Options{Registry: connectors.Default, Connections: conns, Logger: logger}
				return runValidate(opts, *format, args, io)
			}
		},
	})
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runValidate(opts recipes.Options, format string, paths []string, io stdio) int {
	if format != "text" && format != "json" {
		fmt.Fprintf(io.err, "memberflow validate: --format must be text or json, got %q\n", format)
		return exitUsage
	}
	if len(paths) == 0 {
		fmt.Fprintln(io.err, "memberflow validate: name at least one recipe file or folder (memberflow validate --help)")
		return exitUsage
	}
	rs, diags := recipes.Load(opts, paths...)
	var err error
	if format == "json" {
		err = diags.WriteJSON(io.out)
	} else {
		err = diags.WriteText(io.out)
	}
	if err != nil {
		fmt.Fprintf(io.err, "memberflow validate: %v\n", err)
		return exitUsage
	}
	switch {
	case diags.HasIOErrors():
		return exitUsage
	case diags.HasErrors():
		if format == "text" {
			fmt.Fprintf(io.err, "%s\n", countSummary(diags))
		}
		return exitFail
	}
	if format == "text" {
		fmt.Fprintf(io.err, "%d recipe(s) valid%s\n", len(rs), warningSuffix(diags))
	}
	return exitOK
}

func countSummary(diags recipes.Diagnostics) string {
	errs := 0
	for _, d := range diags {
		if d.Severity == recipes.Error {
			errs++
		}
	}
	return fmt.Sprintf("%d error(s)%s", errs, warningSuffix(diags))
}

func warningSuffix(diags recipes.Diagnostics) string {
	w := 0
	for _, d := range diags {
		if d.Severity == recipes.Warning {
			w++
		}
	}
	if w == 0 {
		return ""
	}
	return fmt.Sprintf(", %d warning(s)", w)
}
