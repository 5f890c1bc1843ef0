package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := runCLI([]string{"completion", shell}, stdio{out: &out, err: &errOut}); code != exitOK {
		t.Fatalf("completion %s: exit %d: %s", shell, code, errOut.String())
	}
	return out.String()
}

// TestBashCompletion runs the generated script in bash and checks what it
// offers.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "memberflow.bash")
	if err := os.WriteFile(script, []byte(completionScript(t, "bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "recipe.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		words []string // the command line, the last word being completed
		want  []string
		not   []string
	}{
		{"commands", []string{"memberflow", "va"}, []string{"validate"}, []string{"schema"}},
		{"all commands", []string{"memberflow", ""}, []string{"completion", "schema", "validate", "help"}, nil},
		{"flags", []string{"memberflow", "validate", "--f"}, []string{"--format"}, []string{"--connections"}},
		{"flag values", []string{"memberflow", "validate", "--format", ""}, []string{"text", "json"}, nil},
		{"files", []string{"memberflow", "validate", "rec"}, []string{"recipe.yaml"}, nil},
		{"shells", []string{"memberflow", "completion", ""}, []string{"bash", "zsh", "fish"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			quoted := make([]string, len(tc.words))
			for i, w := range tc.words {
				quoted[i] = "'" + w + "'"
			}
			prog := "source " + script + "; COMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=" +
				strconv.Itoa(len(tc.words)-1) + "; _memberflow; printf '%s\\n' \"${COMPREPLY[@]}\""
			cmd := exec.Command(bash, "--norc", "--noprofile", "-c", prog)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			got := strings.Fields(string(out))
			for _, w := range tc.want {
				if !containsWord(got, w) {
					t.Errorf("offers %v, want %q among them", got, w)
				}
			}
			for _, w := range tc.not {
				if containsWord(got, w) {
					t.Errorf("offers %q, which does not fit", w)
				}
			}
		})
	}
}

func TestZshAndFishCompletion(t *testing.T) {
	zsh := completionScript(t, "zsh")
	for _, want := range []string{"#compdef memberflow", "'validate:check recipes", "'*--format[output format - text or json]:format:(text json)'", "'1:argument:(bash zsh fish)'"} {
		if !strings.Contains(zsh, want) {
			t.Errorf("zsh script lacks %q", want)
		}
	}
	fish := completionScript(t, "fish")
	for _, want := range []string{"complete -c memberflow -n __fish_use_subcommand -a validate", "-l format -x -a 'text json'", "-l connections -r -F"} {
		if !strings.Contains(fish, want) {
			t.Errorf("fish script lacks %q", want)
		}
	}
	for shell, script := range map[string]string{"zsh": zsh, "fish": fish} {
		if path, err := exec.LookPath(shell); err == nil {
			cmd := exec.Command(path, "-n")
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", shell, err, out)
			}
		}
	}
}

func containsWord(list []string, w string) bool {
	for _, x := range list {
		if x == w {
			return true
		}
	}
	return false
}
