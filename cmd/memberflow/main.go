// Command memberflow runs declarative integration recipes between the
// APIs of its connectors (connectors/all). Each subcommand lives in a
// file of its own and calls into recipes/, engine/ and connectors/.
package main

import (
	"os"

	_ "github.com/memberflow/memberflow/connectors/all"
)

func main() {
	os.Exit(runCLI(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
}
