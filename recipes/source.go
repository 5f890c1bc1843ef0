package recipes

import (
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// source is one file being loaded, with what turns nodes and offsets into
// positioned diagnostics.
type source struct {
	name  string
	data  []byte
	lines []int // byte offset where each line starts
	diags *Diagnostics
	rt    *runtimeCompiler
	// kinds records, for scalars that are templates, the JSON type of the
	// value they produce, so that `with` checks can compare it with the
	// input schema.
	kinds map[*yaml.Node]string
}

func newSource(name string, data []byte, diags *Diagnostics, rt *runtimeCompiler) *source {
	if rt == nil {
		rt = new(runtimeCompiler)
	}
	s := &source{name: name, data: data, diags: diags, lines: []int{0}, rt: rt}
	for i, c := range data {
		if c == '\n' {
			s.lines = append(s.lines, i+1)
		}
	}
	return s
}

// line returns the text of 1-based line n, without its line break.
func (s *source) line(n int) string {
	if n < 1 || n > len(s.lines) {
		return ""
	}
	start := s.lines[n-1]
	end := len(s.data)
	if n < len(s.lines) {
		end = s.lines[n] - 1
	}
	return strings.TrimRight(string(s.data[start:end]), "\r")
}

// offset converts a 1-based line and rune column to a byte offset.
func (s *source) offset(line, col int) int {
	if line < 1 || line > len(s.lines) {
		return len(s.data)
	}
	off := s.lines[line-1]
	for c := 1; c < col && off < len(s.data) && s.data[off] != '\n'; c++ {
		_, size := utf8.DecodeRune(s.data[off:])
		off += size
	}
	return off
}

// posAt converts a byte offset to a position.
func (s *source) posAt(off int) Pos {
	if off > len(s.data) {
		off = len(s.data)
	}
	line := 1
	lo, hi := 0, len(s.lines)-1
	for lo <= hi {
		mid := (lo + hi) / 2
		if s.lines[mid] <= off {
			line = mid + 1
			lo = mid + 1
		} else {
			hi = mid - 1
		}
	}
	col := 1 + utf8.RuneCount(s.data[s.lines[line-1]:off])
	return Pos{File: s.name, Line: line, Column: col}
}

// pos makes a position, kept inside the file: yaml.v3 can place an empty
// node just past the last line.
func (s *source) pos(line, col int) Pos {
	if line < 1 {
		line, col = 1, 1
	}
	if line > len(s.lines) {
		line = len(s.lines)
		col = 1 + len([]rune(s.line(line)))
	}
	return Pos{File: s.name, Line: line, Column: max(col, 1)}
}

func (s *source) nodePos(n *yaml.Node) Pos {
	if n == nil {
		return s.pos(1, 1)
	}
	return s.pos(n.Line, n.Column)
}

func (s *source) report(sev Severity, p Pos, format string, args ...any) *Diagnostic {
	d := &Diagnostic{
		Severity: sev,
		Summary:  sprintf(format, args...),
		Subject:  &Range{File: s.name, Start: p, End: p},
		line:     s.line(p.Line),
	}
	*s.diags = append(*s.diags, d)
	return d
}

func (s *source) errorAt(p Pos, format string, args ...any) *Diagnostic {
	return s.report(Error, p, format, args...)
}

func (s *source) errorf(n *yaml.Node, format string, args ...any) *Diagnostic {
	return s.report(Error, s.nodePos(n), format, args...)
}

func (s *source) warnf(n *yaml.Node, format string, args ...any) *Diagnostic {
	return s.report(Warning, s.nodePos(n), format, args...)
}
