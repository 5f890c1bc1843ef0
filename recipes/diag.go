package recipes

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Severity of a diagnostic.
type Severity int

const (
	// Error makes a recipe invalid.
	Error Severity = iota
	// Warning is worth fixing but does not stop the recipe from loading.
	Warning
)

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// MarshalJSON writes "error" or "warning".
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Range is a span of a file; End may equal Start.
type Range struct {
	File       string
	Start, End Pos
}

// Diagnostic is one problem found while loading recipes.
type Diagnostic struct {
	Severity Severity
	// Summary is the one-line message.
	Summary string
	// Detail is optional further explanation.
	Detail string
	// Subject is where the problem is; nil for problems about no file.
	Subject *Range
	// Err is the underlying error of an I/O problem (unreadable file or
	// folder); nil for problems in a recipe's content.
	Err error
	// line is the source line at Subject.Start, for the text rendering.
	line string
}

// Error renders the diagnostic on one line.
func (d *Diagnostic) Error() string {
	var b strings.Builder
	if d.Subject != nil {
		fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.File, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	fmt.Fprintf(&b, "%s: %s", d.Severity, d.Summary)
	if d.Detail != "" {
		b.WriteString(" (" + d.Detail + ")")
	}
	return b.String()
}

// Diagnostics is every problem found; it is an error when it is not empty.
type Diagnostics []*Diagnostic

// Error joins every diagnostic, one per line.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.Error()
	}
	return strings.Join(lines, "\n")
}

// HasErrors reports whether any diagnostic is an error (not a warning).
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// HasIOErrors reports whether a path could not be read.
func (ds Diagnostics) HasIOErrors() bool {
	for _, d := range ds {
		if d.Err != nil {
			return true
		}
	}
	return false
}

// Errs returns ds as an error, or nil when it holds no error-severity
// diagnostic (warnings alone are not an error).
func (ds Diagnostics) Errs() error {
	if ds.HasErrors() {
		return ds
	}
	return nil
}

// Sort orders diagnostics by file, line and column, keeping the order of
// discovery for equal positions.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i].Subject, ds[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.File != b.File:
			return a.File < b.File
		case a.Start.Line != b.Start.Line:
			return a.Start.Line < b.Start.Line
		default:
			return a.Start.Column < b.Start.Column
		}
	})
}

// WriteText renders each diagnostic as `path:line:col: severity: message`,
// then the source line and a caret under the column.
func (ds Diagnostics) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.Error())
		b.WriteByte('\n')
		if d.Subject != nil && d.line != "" {
			b.WriteString("    ")
			b.WriteString(d.line)
			b.WriteString("\n    ")
			b.WriteString(caretPad(d.line, d.Subject.Start.Column))
			b.WriteString("^\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// caretPad returns the indentation that puts a caret under column col of
// line: tabs are kept so that the caret lines up in any tab width.
func caretPad(line string, col int) string {
	var b strings.Builder
	i := 1
	for _, r := range line {
		if i >= col {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		i++
	}
	for ; i < col; i++ {
		b.WriteByte(' ')
	}
	return b.String()
}

// jsonDiagnostic is the JSON form of one diagnostic.
type jsonDiagnostic struct {
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Column   int      `json:"column"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

// WriteJSON renders the diagnostics as a JSON array of
// {file, line, column, severity, message}; an empty list is [].
func (ds Diagnostics) WriteJSON(w io.Writer) error {
	out := make([]jsonDiagnostic, 0, len(ds))
	for _, d := range ds {
		j := jsonDiagnostic{Severity: d.Severity, Message: d.Summary}
		if d.Detail != "" {
			j.Message += " (" + d.Detail + ")"
		}
		if d.Subject != nil {
			j.File, j.Line, j.Column = d.Subject.File, d.Subject.Start.Line, d.Subject.Start.Column
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
