package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/memberflow/memberflow/schemas"
)

func init() {
	register(&command{
		name:    "schema",
		summary: "print the recipe JSON Schema (for editors)",
		usage:   "",
		help: `Prints schemas/recipe.schema.json (JSON Schema draft 2020-12). Point your
editor at it, e.g. with the YAML language server:
  # yaml-language-server: $schema=path/to/recipe.schema.json
A shared connections file uses #/$defs/connectionsFile.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			return func(_ context.Context, args []string, io stdio) int {
				if len(args) > 0 {
					fmt.Fprintf(io.err, "memberflow schema: takes no arguments, got %q\n", args)
					return exitUsage
				}
				if _, err := io.out.Write(schemas.Recipe); err != nil {
					fmt.Fprintf(io.err, "memberflow schema: %v\n", err)
					return exitUsage
				}
				return exitOK
			}
		},
	})
}
