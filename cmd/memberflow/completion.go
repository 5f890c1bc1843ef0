package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

func init() {
	register(&command{
		name:    "completion",
		summary: "print a shell completion script (bash, zsh or fish)",
		usage:   "bash|zsh|fish",
		help: `Completes commands, their flags and flag values. Install:
  bash:  source <(memberflow completion bash)   (or save it to /etc/bash_completion.d/memberflow)
  zsh:   memberflow completion zsh > "${fpath[1]}/_memberflow"
  fish:  memberflow completion fish > ~/.config/fish/completions/memberflow.fish`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			return func(_ context.Context, args []string, std stdio) int {
				if len(args) != 1 {
					fmt.Fprintln(std.err, "memberflow completion: name one shell: bash, zsh or fish")
					return exitUsage
				}
				gen, ok := map[string]func(io.Writer, []cmdInfo){"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}[args[0]]
				if !ok {
					fmt.Fprintf(std.err, "memberflow completion: unknown shell %q%s; use bash, zsh or fish\n", args[0], didYouMean(args[0], []string{"bash", "zsh", "fish"}))
					return exitUsage
				}
				gen(std.out, completionInfo())
				return exitOK
			}
		},
	})
}

// cmdInfo is what completion knows of a command, read from its own flag
// declarations and usage line, so that a new command completes without
// touching this file.
type cmdInfo struct {
	name, summary string
	flags         []flagInfo
	// args are the fixed values of the positional argument (completion's
	// shells), and files whether positional arguments are paths.
	args  []string
	files bool
}

type flagInfo struct {
	name, usage string
	boolean     bool
	values      []string // from "--name a|b" in the usage line
}

var enumFlagRE = regexp.MustCompile(`--([A-Za-z][\w-]*) ([\w-]+(?:\|[\w-]+)+)`)
var enumArgRE = regexp.MustCompile(`^([\w-]+(?:\|[\w-]+)+)$`)

func completionInfo() []cmdInfo {
	var out []cmdInfo
	for _, name := range commandNames() {
		c := commands[name]
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.flags(fs)
		info := cmdInfo{name: name, summary: c.summary}
		enums := map[string][]string{}
		for _, m := range enumFlagRE.FindAllStringSubmatch(c.usage, -1) {
			if vals := literalValues(m[2]); len(vals) > 1 {
				enums[m[1]] = vals
			}
		}
		fs.VisitAll(func(f *flag.Flag) {
			bf, ok := f.Value.(interface{ IsBoolFlag() bool })
			_, usage := flag.UnquoteUsage(f)
			info.flags = append(info.flags, flagInfo{name: f.Name, usage: firstLine(usage), boolean: ok && bf.IsBoolFlag(), values: enums[f.Name]})
		})
		info.flags = append(info.flags, flagInfo{name: "help", usage: "show help", boolean: true})
		rest := strings.TrimSpace(enumFlagRE.ReplaceAllString(c.usage, ""))
		if m := enumArgRE.FindStringSubmatch(rest); m != nil {
			info.args = strings.Split(m[1], "|")
		}
		info.files = strings.Contains(rest, "PATH") || strings.Contains(rest, "FILE") || strings.Contains(rest, "DIR")
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// literalValues splits "a|b|N" and drops upper-case placeholders (N).
func literalValues(alts string) []string {
	var out []string
	for _, v := range strings.Split(alts, "|") {
		if v != strings.ToUpper(v) {
			out = append(out, v)
		}
	}
	return out
}

// takesPath guesses from a flag's usage whether its value is a path.
func takesPath(usage string) bool {
	u := strings.ToLower(usage)
	return strings.Contains(u, "file") || strings.Contains(u, "path") || strings.Contains(u, "dir")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func bashCompletion(w io.Writer, cmds []cmdInfo) {
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
	}
	fmt.Fprintf(w, `# bash completion for memberflow; source it, or save it to /etc/bash_completion.d/memberflow
_memberflow() {
    local cur prev
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    COMPREPLY=()
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=( $(compgen -W "%s help" -- "$cur") )
        return 0
    fi
    case "${COMP_WORDS[1]}" in
`, strings.Join(names, " "))
	for _, c := range cmds {
		fmt.Fprintf(w, "    %s)\n        case \"$prev\" in\n", c.name)
		var flagWords []string
		for _, f := range c.flags {
			flagWords = append(flagWords, "--"+f.name)
			switch {
			case f.boolean:
			case len(f.values) > 0:
				fmt.Fprintf(w, "        --%[1]s|-%[1]s) COMPREPLY=( $(compgen -W %q -- \"$cur\") ); return 0;;\n", f.name, strings.Join(f.values, " "))
			case takesPath(f.usage):
				fmt.Fprintf(w, "        --%[1]s|-%[1]s) COMPREPLY=( $(compgen -f -- \"$cur\") ); return 0;;\n", f.name)
			default:
				fmt.Fprintf(w, "        --%[1]s|-%[1]s) return 0;;\n", f.name)
			}
		}
		fmt.Fprintf(w, "        esac\n        if [[ \"$cur\" == -* ]]; then\n            COMPREPLY=( $(compgen -W %q -- \"$cur\") )\n", strings.Join(flagWords, " "))
		switch {
		case len(c.args) > 0:
			fmt.Fprintf(w, "        else\n            COMPREPLY=( $(compgen -W %q -- \"$cur\") )\n", strings.Join(c.args, " "))
		case c.files:
			fmt.Fprintf(w, "        else\n            COMPREPLY=( $(compgen -f -- \"$cur\") )\n")
		}
		fmt.Fprintf(w, "        fi\n        ;;\n")
	}
	fmt.Fprint(w, `    esac
    return 0
}
complete -o filenames -F _memberflow memberflow
`)
}

// zshQuote makes text safe inside a zsh completion spec.
func zshQuote(s string) string {
	return strings.NewReplacer("'", "'\\''", "[", "(", "]", ")", ":", " -").Replace(s)
}

func zshCompletion(w io.Writer, cmds []cmdInfo) {
	fmt.Fprint(w, "#compdef memberflow\n# zsh completion for memberflow; save it as _memberflow in a directory of $fpath\n_memberflow() {\n    local -a commands\n    commands=(\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "        '%s:%s'\n", c.name, zshQuote(c.summary))
	}
	fmt.Fprint(w, "    )\n    if (( CURRENT == 2 )); then\n        _describe 'command' commands\n        return\n    fi\n    shift words\n    (( CURRENT-- ))\n    case $words[1] in\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "    %s)\n        _arguments", c.name)
		for _, f := range c.flags {
			switch {
			case f.boolean:
				fmt.Fprintf(w, " \\\n            '--%s[%s]'", f.name, zshQuote(f.usage))
			case len(f.values) > 0:
				fmt.Fprintf(w, " \\\n            '*--%s[%s]:%s:(%s)'", f.name, zshQuote(f.usage), f.name, strings.Join(f.values, " "))
			case takesPath(f.usage):
				fmt.Fprintf(w, " \\\n            '*--%s[%s]:%s:_files'", f.name, zshQuote(f.usage), f.name)
			default:
				fmt.Fprintf(w, " \\\n            '*--%s[%s]:%s: '", f.name, zshQuote(f.usage), f.name)
			}
		}
		switch {
		case len(c.args) > 0:
			fmt.Fprintf(w, " \\\n            '1:argument:(%s)'", strings.Join(c.args, " "))
		case c.files:
			fmt.Fprint(w, " \\\n            '*:file:_files'")
		}
		fmt.Fprint(w, "\n        ;;\n")
	}
	fmt.Fprint(w, "    esac\n}\nif [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n    _memberflow \"$@\"\nelse\n    compdef _memberflow memberflow\nfi\n")
}

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

func fishCompletion(w io.Writer, cmds []cmdInfo) {
	fmt.Fprint(w, "# fish completion for memberflow; save it as ~/.config/fish/completions/memberflow.fish\ncomplete -c memberflow -f\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "complete -c memberflow -n __fish_use_subcommand -a %s -d %s\n", c.name, fishQuote(c.summary))
	}
	for _, c := range cmds {
		cond := fishQuote("__fish_seen_subcommand_from " + c.name)
		for _, f := range c.flags {
			switch {
			case f.boolean:
				fmt.Fprintf(w, "complete -c memberflow -n %s -l %s -d %s\n", cond, f.name, fishQuote(f.usage))
			case len(f.values) > 0:
				fmt.Fprintf(w, "complete -c memberflow -n %s -l %s -x -a %s -d %s\n", cond, f.name, fishQuote(strings.Join(f.values, " ")), fishQuote(f.usage))
			case takesPath(f.usage):
				fmt.Fprintf(w, "complete -c memberflow -n %s -l %s -r -F -d %s\n", cond, f.name, fishQuote(f.usage))
			default:
				fmt.Fprintf(w, "complete -c memberflow -n %s -l %s -x -d %s\n", cond, f.name, fishQuote(f.usage))
			}
		}
		switch {
		case len(c.args) > 0:
			fmt.Fprintf(w, "complete -c memberflow -n %s -a %s\n", cond, fishQuote(strings.Join(c.args, " ")))
		case c.files:
			fmt.Fprintf(w, "complete -c memberflow -n %s -F\n", cond)
		}
	}
}
