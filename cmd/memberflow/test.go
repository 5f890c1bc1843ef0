package main

import (
	"context"
	"flag"
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine/recipetest"
)

func init() {
	register(&command{
		name:    "test",
		summary: "run recipes' offline tests: canned answers, expected requests and outcomes",
		usage:   "[--format text|json] [--run REGEXP] [-v] PATH...",
		help: `Runs the tests of the recipes under each PATH (files or folders): the cases
of x.test.yaml beside x.yaml and of a recipe's own tests: section. Each case
feeds its event to the real engine, which runs the real connector code against
the case's canned responses: no network, no sandbox, a temporary store. The
case then checks the run's outcome and the requests it sent.

A failure names the file:line of the expectation not met and shows the
difference; the command then exits 1. No test file found, or no case
matching --run, exits 2. See docs/testing.md for the format.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			format := fs.String("format", "text", "output format: text or json")
			run := fs.String("run", "", "run only the cases whose name matches this regular expression")
			verbose := fs.Bool("v", false, "list the requests each case sent")
			logLevel := fs.String("log-level", "off", "log level of the engine and connectors: trace, debug, info, warn, error, off")
			return func(ctx context.Context, args []string, io stdio) int {
				if *format != "text" && *format != "json" {
					fmt.Fprintf(io.err, "memberflow test: --format must be text or json, got %q\n", *format)
					return exitUsage
				}
				if len(args) == 0 {
					fmt.Fprintln(io.err, "memberflow test: give the recipes or folders to test, e.g. memberflow test examples/")
					return exitUsage
				}
				opts := recipetest.Options{Registry: connectors.Default}
				if *run != "" {
					re, err := regexp.Compile(*run)
					if err != nil {
						fmt.Fprintf(io.err, "memberflow test: --run: %v\n", err)
						return exitUsage
					}
					opts.Filter = re
				}
				if *logLevel != "off" {
					level := hclog.LevelFromString(*logLevel)
					if level == hclog.NoLevel {
						fmt.Fprintf(io.err, "memberflow test: --log-level: unknown level %q\n", *logLevel)
						return exitUsage
					}
					opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "memberflow", Level: level, Output: io.err})
				}
				rep := recipetest.Run(ctx, opts, args...)
				if passed, failed, broken := rep.Counts(); passed+failed+broken == 0 {
					// Nothing tested is most likely a wrong path or
					// pattern, not a pass.
					if *run != "" && len(rep.Suites) > 0 {
						fmt.Fprintf(io.err, "memberflow test: no test case matches --run %q in %s\n", *run, strings.Join(args, " "))
					} else {
						fmt.Fprintf(io.err, "memberflow test: no test file (*.test.yaml, *.test.yml) in %s\n", strings.Join(args, " "))
					}
					return exitUsage
				}
				var err error
				if *format == "json" {
					err = rep.WriteJSON(io.out)
				} else {
					err = rep.WriteText(io.out, *verbose)
				}
				if err != nil {
					fmt.Fprintf(io.err, "memberflow test: %v\n", err)
					return exitFail
				}
				if !rep.OK() {
					return exitFail
				}
				return exitOK
			}
		},
	})
}
