package recipetest

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteText prints one line per case, the failures under the failed ones,
// and a total. With verbose, passing cases list the requests they sent.
func (r *Report) WriteText(w io.Writer, verbose bool) error {
	var b strings.Builder
	for _, s := range r.Suites {
		for _, p := range s.Problems {
			fmt.Fprintf(&b, "ERROR %s\n", p)
		}
		for _, c := range s.Cases {
			status := "PASS"
			if !c.Passed() {
				status = "FAIL"
			}
			fmt.Fprintf(&b, "%s  %s:%d: %s (%s, %s)\n", status, c.Pos.File, c.Pos.Line, c.Name, c.Outcome, c.Duration.Round(time.Millisecond))
			for _, f := range c.Failures {
				fmt.Fprintf(&b, "      %s\n", indentRest(f.String(), "      "))
			}
			if verbose {
				for i, x := range c.Requests {
					fmt.Fprintf(&b, "      %d. %s", i+1, x)
					if x.Body != nil {
						fmt.Fprintf(&b, " %s", compact(x.Body))
					}
					b.WriteString("\n")
				}
			}
		}
	}
	for _, u := range r.Untested() {
		fmt.Fprintf(&b, "NOTE  %s has no tests\n", u)
	}
	passed, failed, broken := r.Counts()
	verdict := "ok"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "%s: %d passed, %d failed", verdict, passed, failed)
	if broken > 0 {
		fmt.Fprintf(&b, ", %d files with errors", broken)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func indentRest(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// WriteJSON prints the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	passed, failed, broken := r.Counts()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		OK       bool          `json:"ok"`
		Passed   int           `json:"passed"`
		Failed   int           `json:"failed"`
		Broken   int           `json:"files_with_errors"`
		Untested []string      `json:"untested,omitempty"`
		Suites   []SuiteResult `json:"suites"`
	}{r.OK(), passed, failed, broken, r.Untested(), r.Suites})
}
