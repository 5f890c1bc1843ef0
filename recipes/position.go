package recipes

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// scalarPos returns the file position of byte off of the scalar's decoded
// value. It follows the scalar's style: quotes, escapes of double-quoted
// strings, line folding, and the indentation of literal (|) and folded (>)
// block scalars. When the source cannot be matched with the value (it
// should not happen) it falls back to the scalar's start.
func (s *source) scalarPos(n *yaml.Node, off int) Pos {
	offs := s.scalarOffsets(n)
	if offs == nil {
		return s.nodePos(n)
	}
	if off < 0 {
		off = 0
	}
	if off >= len(offs) {
		off = len(offs) - 1
	}
	return s.posAt(offs[off])
}

// scalarOffsets maps each byte of n.Value, and the end, to the offset in
// the file it comes from; nil when the mapping fails.
func (s *source) scalarOffsets(n *yaml.Node) []int {
	if n == nil || n.Kind != yaml.ScalarNode || n.Line < 1 {
		return nil
	}
	start := s.offset(n.Line, n.Column)
	// A tag or anchor before the scalar moves its text right.
	for start < len(s.data) && (s.data[start] == '!' || s.data[start] == '&') {
		for start < len(s.data) && s.data[start] != ' ' && s.data[start] != '\n' {
			start++
		}
		for start < len(s.data) && s.data[start] == ' ' {
			start++
		}
	}
	switch {
	case n.Style&yaml.LiteralStyle != 0, n.Style&yaml.FoldedStyle != 0:
		return blockOffsets(s.data, start, n.Value)
	case n.Style&yaml.DoubleQuotedStyle != 0:
		return flowOffsets(s.data, start+1, n.Value, '"')
	case n.Style&yaml.SingleQuotedStyle != 0:
		return flowOffsets(s.data, start+1, n.Value, '\'')
	default:
		return flowOffsets(s.data, start, n.Value, 0)
	}
}

// flowOffsets maps a plain or quoted scalar starting at i.
func flowOffsets(data []byte, i int, val string, quote byte) []int {
	out := make([]int, 0, len(val)+1)
	for len(out) < len(val) {
		if i >= len(data) {
			return nil
		}
		c := data[i]
		switch {
		case quote == '"' && c == '\\':
			if i+1 < len(data) && (data[i+1] == '\n' || data[i+1] == '\r') {
				// An escaped line break joins the lines with nothing.
				i = skipBreakAndIndent(data, i+1)
				continue
			}
			srcLen, r := decodeEscape(data[i:])
			if srcLen == 0 {
				return nil
			}
			for range utf8.RuneLen(r) {
				out = append(out, i)
			}
			i += srcLen
			continue
		case quote == '\'' && c == '\'' && i+1 < len(data) && data[i+1] == '\'':
			out = append(out, i)
			i += 2
			continue
		case c == '\n' || c == '\r' || ((c == ' ' || c == '\t') && restIsBlank(data, i)):
			// Line folding: a break becomes a space, or n-1 newlines
			// when n-1 empty lines follow.
			j := i
			for j < len(data) && (data[j] == ' ' || data[j] == '\t') {
				j++
			}
			empties := 0
			j = skipBreakAndIndent(data, j)
			for j < len(data) && (data[j] == '\n' || data[j] == '\r') {
				empties++
				j = skipBreakAndIndent(data, j)
			}
			folded := max(empties, 1)
			for k := 0; k < folded && len(out) < len(val); k++ {
				if w := val[len(out)]; w != ' ' && w != '\n' {
					return nil
				}
				out = append(out, i)
			}
			i = j
			continue
		}
		if val[len(out)] != c {
			return nil
		}
		out = append(out, i)
		i++
	}
	return append(out, i)
}

// restIsBlank reports whether only spaces or tabs follow i up to a line
// break.
func restIsBlank(data []byte, i int) bool {
	for ; i < len(data); i++ {
		switch data[i] {
		case ' ', '\t':
		case '\n', '\r':
			return true
		default:
			return false
		}
	}
	return false
}

// skipBreakAndIndent skips one line break at i and the next line's
// indentation.
func skipBreakAndIndent(data []byte, i int) int {
	if i < len(data) && data[i] == '\r' {
		i++
	}
	if i < len(data) && data[i] == '\n' {
		i++
	}
	for i < len(data) && (data[i] == ' ' || data[i] == '\t') {
		i++
	}
	return i
}

// decodeEscape decodes the double-quoted escape at b[0] ('\\'): its length
// in the source and the rune it stands for; 0 when it is not valid.
func decodeEscape(b []byte) (int, rune) {
	if len(b) < 2 {
		return 0, 0
	}
	simple := map[byte]rune{'0': 0, 'a': '\a', 'b': '\b', 't': '\t', '\t': '\t', 'n': '\n', 'v': '\v', 'f': '\f',
		'r': '\r', 'e': 0x1b, ' ': ' ', '"': '"', '/': '/', '\\': '\\', 'N': 0x85, '_': 0xa0, 'L': 0x2028, 'P': 0x2029}
	if r, ok := simple[b[1]]; ok {
		return 2, r
	}
	width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[b[1]]
	if width == 0 || len(b) < 2+width {
		return 0, 0
	}
	v, err := strconv.ParseUint(string(b[2:2+width]), 16, 32)
	if err != nil {
		return 0, 0
	}
	r := rune(v)
	if !utf8.ValidRune(r) {
		r = utf8.RuneError
	}
	return 2 + width, r
}

// blockOffsets maps a literal or folded block scalar whose indicator is at
// start. Lines are matched against the decoded value, so that folding,
// chomping and explicit indentation need no re-implementation.
func blockOffsets(data []byte, start int, val string) []int {
	i := start
	for i < len(data) && data[i] != '\n' {
		i++
	}
	if i >= len(data) {
		return nil
	}
	i++
	var lines [][2]int // [start, end) of each line of the block
	for i < len(data) {
		end := i
		for end < len(data) && data[end] != '\n' {
			end++
		}
		lines = append(lines, [2]int{i, end})
		i = end + 1
	}
	indent := -1
	for _, l := range lines {
		text := strings.TrimRight(string(data[l[0]:l[1]]), "\r")
		if strings.TrimLeft(text, " ") == "" {
			continue
		}
		lead := len(text) - len(strings.TrimLeft(text, " "))
		firstLine, _, _ := strings.Cut(val, "\n")
		indent = lead - (len(firstLine) - len(strings.TrimLeft(firstLine, " ")))
		break
	}
	if indent < 0 {
		return nil
	}
	out := make([]int, 0, len(val)+1)
	prevEnd := start
	empties := 0
	first := true
	for _, l := range lines {
		text := strings.TrimRight(string(data[l[0]:l[1]]), "\r")
		lead := len(text) - len(strings.TrimLeft(text, " "))
		if strings.TrimSpace(text) == "" && lead <= indent {
			empties++
			continue
		}
		if lead < indent {
			break // the block ended
		}
		content := text[indent:]
		if !first {
			k := 1
			for ; k <= empties+1; k++ {
				at := len(out) + k
				if at <= len(val) && strings.Trim(val[len(out):at], "\n ") == "" && strings.HasPrefix(val[at:], content) {
					break
				}
			}
			if k > empties+1 {
				return nil
			}
			for range k {
				out = append(out, prevEnd)
			}
		} else {
			for range min(empties, len(val)) {
				out = append(out, l[0])
			}
		}
		if !strings.HasPrefix(val[len(out):], content) {
			return nil
		}
		for j := range len(content) {
			out = append(out, l[0]+indent+j)
		}
		prevEnd = l[0] + len(text)
		first, empties = false, 0
		if len(out) >= len(val) {
			break
		}
	}
	for len(out) < len(val) {
		out = append(out, prevEnd)
	}
	return append(out, prevEnd)
}
