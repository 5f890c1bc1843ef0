package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/memberflow/memberflow/internal/suggest"
)

// Exit codes shared by every command.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and found problems (invalid recipe, failed runs)
	exitUsage = 2 // bad flags or arguments, unreadable files
)

type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// command is one subcommand. Files register theirs in init.
type command struct {
	name    string
	summary string // one line for the command list
	usage   string // arguments, e.g. "[--format text|json] PATH..."
	help    string // longer text after the usage line
	// flags declares the command's flags on fs; it returns the function
	// that runs the command with the remaining arguments.
	flags func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("duplicate command " + c.name)
	}
	commands[c.name] = c
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func usage(w io.Writer) {
	fmt.Fprint(w, `memberflow runs integration recipes between membership, certificate and event services.

Usage:
  memberflow <command> [flags] [arguments]

Commands:
`)
	for _, n := range commandNames() {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, `
Run "memberflow <command> --help" for a command's flags.
`)
}

func runCLI(args []string, io stdio) int {
	if len(args) == 0 {
		usage(io.err)
		return exitUsage
	}
	switch args[0] {
	case "-version", "--version":
		return runCommand(commands["version"], args[1:], io)
	case "-h", "--help", "help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return runCommand(c, []string{"--help"}, io)
			}
		}
		usage(io.out)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(io.err, "memberflow: unknown command %q%s\n\n", args[0], didYouMean(args[0], commandNames()))
		usage(io.err)
		return exitUsage
	}
	return runCommand(c, args[1:], io)
}

func runCommand(c *command, args []string, io stdio) int {
	fs := flag.NewFlagSet("memberflow "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.err)
	run := c.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\n%s\n", strings.TrimSpace("memberflow "+c.name+" "+c.usage), c.summary)
		if c.help != "" {
			fmt.Fprintf(fs.Output(), "\n%s\n", strings.TrimSpace(c.help))
		}
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(fs.Output(), "\nFlags:")
			fs.PrintDefaults()
		}
	}
	// The flag package prints the usage itself on any parse error; print it
	// once, on stdout for --help and on stderr after a bad flag.
	printUsage := fs.Usage
	fs.Usage = func() {}
	if err := fs.Parse(interleaved(fs, args)); err != nil {
		if err == flag.ErrHelp {
			fs.SetOutput(io.out)
			printUsage()
			return exitOK
		}
		printUsage()
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal asks for a graceful stop; once it is under way,
	// signals get their default effect again, so a second Ctrl-C ends the
	// process at once (runs in flight then resume from their journal).
	go func() { <-ctx.Done(); stop() }()
	return run(ctx, fs.Args(), io)
}

// interleaved moves flags that follow positional arguments to the front,
// so `memberflow validate examples/ --format json` works as users expect.
func interleaved(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		}
	}
	return append(flags, positional...)
}

// didYouMean suggests the closest of names to s, or "".
func didYouMean(s string, names []string) string {
	if best := suggest.Closest(s, names); best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return ""
}
