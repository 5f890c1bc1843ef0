package recipes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// parseYAML parses the file's single YAML document. A syntax error is
// reported at its line and column; yaml.v3 gives at best a line (often the
// line of the enclosing construct), so the position is found again here.
func parseYAML(s *source) (doc *yaml.Node) {
	root, err := decodeDoc(s.data)
	if err == nil {
		if root == nil || len(root.Content) == 0 || root.Content[0].ShortTag() == "!!null" {
			s.errorAt(s.pos(1, 1), "the file is empty: a recipe needs version, name, trigger and steps")
			return nil
		}
		return root.Content[0]
	}
	var multi *multiDocError
	if errors.As(err, &multi) {
		s.errorAt(s.posAt(multi.offset), "a recipe file holds one YAML document; remove this second one")
		return nil
	}
	msg, reported := yamlMessage(err)
	p := locateSyntaxError(s, msg, reported)
	s.errorAt(p, "YAML syntax: %s", msg)
	return nil
}

type multiDocError struct{ offset int }

func (e *multiDocError) Error() string { return "more than one document" }

// decodeDoc decodes the first document and makes sure there is no other.
// yaml.v3 has panicked on hostile input before: a panic is an error here.
func decodeDoc(data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if err == io.EOF {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &multiDocError{offset: secondDocOffset(data)}
	} else if err != io.EOF {
		return nil, err
	}
	return &n, nil
}

func secondDocOffset(data []byte) int {
	seen := 0
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		line := data[off:]
		if end >= 0 {
			line = data[off : off+end]
		}
		if bytes.HasPrefix(line, []byte("---")) {
			seen++
			// A leading "---" opens the first document, not a second one.
			if seen == 2 || off > 0 && !onlyCommentsBefore(data[:off]) {
				return off
			}
		}
		if end < 0 {
			break
		}
		off += end + 1
	}
	return 0
}

func onlyCommentsBefore(b []byte) bool {
	for _, l := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") && !strings.HasPrefix(t, "%") {
			return false
		}
	}
	return true
}

// yamlMessage strips yaml.v3's "yaml: line N: " prefix; reported is N or 0.
func yamlMessage(err error) (msg string, reported int) {
	msg = err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if m[1] != "" {
			reported, _ = strconv.Atoi(m[1])
		}
		msg = msg[len(m[0]):]
	}
	return msg, reported
}

// locateSyntaxError finds the line the parser stumbled on: a line k such
// that the file cut after line k-1 does not fail with the same message
// and the file cut after line k does. The whole file fails with it and
// the empty prefix does not, so a binary search finds such a k in a few
// parses. The column comes from what the message is about.
func locateSyntaxError(s *source, msg string, reported int) Pos {
	fails := func(k int) bool {
		end := len(s.data)
		if k < len(s.lines) {
			end = s.lines[k]
		}
		_, err := decodeDoc(s.data[:end])
		if err == nil {
			return false
		}
		m, _ := yamlMessage(err)
		return m == msg
	}
	lo, hi := 0, len(s.lines)
	if !fails(hi) {
		// A message that depends on the end of the file: trust yaml.v3.
		hi = max(1, min(reported, len(s.lines)))
	} else {
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if fails(mid) {
				hi = mid
			} else {
				lo = mid
			}
		}
	}
	line, col := syntaxColumn(s, hi, msg)
	return s.pos(line, col)
}

var anchorRE = regexp.MustCompile(`unknown anchor '([^']*)' referenced`)

// syntaxColumn guesses the column on line a message is about, 1-based;
// an unclosed bracket may move the position to an earlier line.
func syntaxColumn(s *source, line int, msg string) (int, int) {
	l, c := line, syntaxColumnOn(s, &line, msg)
	if line != l {
		return line, c
	}
	return l, c
}

func syntaxColumnOn(s *source, lineRef *int, msg string) int {
	line := *lineRef
	text := s.line(line)
	col := func(byteIdx int) int { return 1 + len([]rune(text[:byteIdx])) }
	firstNonSpace := func() int {
		return col(len(text) - len(strings.TrimLeft(text, " \t")))
	}
	switch {
	case strings.Contains(msg, "cannot start any token"):
		if i := strings.IndexAny(text, "\t@`"); i >= 0 {
			return col(i)
		}
	case strings.Contains(msg, "mapping values are not allowed"):
		if i := secondMappingColon(text); i >= 0 {
			return col(i)
		}
	case strings.Contains(msg, "did not find expected ',' or ']'"),
		strings.Contains(msg, "did not find expected ',' or '}'"):
		// Point at the bracket left open, on this line or above.
		for l := line; l >= 1 && l > line-50; l-- {
			t := s.line(l)
			if i := unclosedBracket(t); i >= 0 {
				*lineRef = l
				return 1 + len([]rune(t[:i]))
			}
		}
	case strings.Contains(msg, "unknown escape"), strings.Contains(msg, "escape"):
		if i := strings.IndexByte(text, '\\'); i >= 0 {
			return col(i)
		}
	case strings.Contains(msg, "end of stream"), strings.Contains(msg, "quoted scalar"):
		if i := unclosedQuote(text); i >= 0 {
			return col(i)
		}
	case anchorRE.MatchString(msg):
		name := anchorRE.FindStringSubmatch(msg)[1]
		if i := strings.Index(text, "*"+name); i >= 0 {
			return col(i)
		}
	}
	return firstNonSpace()
}

// secondMappingColon finds the ':' that starts a second mapping value on
// a line ("a: b: c"), outside quotes.
func secondMappingColon(text string) int {
	seen := 0
	var quote byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || text[i-1] == ' '):
			return -1
		case c == ':' && (i+1 == len(text) || text[i+1] == ' '):
			seen++
			if seen == 2 {
				return i
			}
		}
	}
	return -1
}

// unclosedBracket returns the offset of the last '[' or '{' on the line
// that the line does not close, or -1.
func unclosedBracket(text string) int {
	var stack []int
	var quote byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || text[i-1] == ' '):
			i = len(text)
		case c == '[' || c == '{':
			stack = append(stack, i)
		case (c == ']' || c == '}') && len(stack) > 0:
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) == 0 {
		return -1
	}
	return stack[0]
}

// unclosedQuote returns the offset of a quote the line opens and does not
// close, or -1.
func unclosedQuote(text string) int {
	open := -1
	var quote byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote == '"' && c == '\\':
			i++
		case quote != 0 && c == quote:
			if quote == '\'' && i+1 < len(text) && text[i+1] == '\'' {
				i++
				continue
			}
			quote, open = 0, -1
		case quote == 0 && (c == '\'' || c == '"'):
			quote, open = c, i
		case quote == 0 && c == '#' && (i == 0 || text[i-1] == ' '):
			return -1
		}
	}
	return open
}

// resolve follows an alias to its anchor.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// pairs returns a mapping's key/value nodes with aliases resolved and
// `<<` merges applied (explicit keys win over merged ones). Merges are
// bounded in depth and size: nested merges of merges could otherwise
// grow exponentially, like alias expansion.
func pairs(n *yaml.Node) [][2]*yaml.Node {
	budget := maxMergedPairs
	return mergedPairs(n, 0, &budget)
}

const (
	maxMergeDepth  = 8
	maxMergedPairs = 10000
)

func mergedPairs(n *yaml.Node, depth int, budget *int) [][2]*yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode || depth > maxMergeDepth {
		return nil
	}
	var out, merged [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if *budget--; *budget < 0 {
			return out
		}
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && (k.Tag == "!!merge" || (k.Value == "<<" && k.Style == 0)) {
			v = resolve(v)
			if v != nil && v.Kind == yaml.MappingNode && v != n {
				merged = append(merged, mergedPairs(v, depth+1, budget)...)
			} else if v != nil && v.Kind == yaml.SequenceNode {
				for _, m := range v.Content {
					if m = resolve(m); m != nil && m != n {
						merged = append(merged, mergedPairs(m, depth+1, budget)...)
					}
				}
			}
			continue
		}
		out = append(out, [2]*yaml.Node{k, v})
	}
	if len(merged) > 0 {
		seen := make(map[string]bool, len(out))
		for _, p := range out {
			seen[p[0].Value] = true
		}
		for _, m := range merged {
			if !seen[m[0].Value] {
				seen[m[0].Value] = true
				out = append(out, m)
			}
		}
	}
	return out
}

func find(ps [][2]*yaml.Node, key string) *yaml.Node {
	for _, p := range ps {
		if p[0].Value == key {
			return resolve(p[1])
		}
	}
	return nil
}

// get returns the value node of key in mapping n, resolved, or nil.
func get(n *yaml.Node, key string) *yaml.Node { return find(pairs(n), key) }

// getKey returns the key node of key in mapping n, or nil.
func getKey(n *yaml.Node, key string) *yaml.Node {
	for _, p := range pairs(n) {
		if p[0].Value == key {
			return p[0]
		}
	}
	return nil
}

// items returns a sequence's resolved items.
func items(n *yaml.Node) []*yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for _, it := range n.Content {
		if r := resolve(it); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// checkKeys reports duplicate keys and non-scalar keys in every mapping.
func checkKeys(s *source, n *yaml.Node, depth int) {
	if n == nil || depth > 200 || n.Kind == yaml.AliasNode {
		return
	}
	if n.Kind == yaml.MappingNode {
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				s.errorf(k, "a mapping key must be a plain string, not a %s", kindName(k))
				continue
			}
			if first, dup := seen[k.Value]; dup && k.Value != "<<" {
				s.errorf(k, "duplicate key %q (first at line %d)", k.Value, first.Line)
				continue
			}
			seen[k.Value] = k
		}
	}
	for _, c := range n.Content {
		checkKeys(s, c, depth+1)
	}
}

func kindName(n *yaml.Node) string {
	switch resolve(n).Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "scalar"
}

// errBudget stops alias expansion from blowing up ("billion laughs").
var errBudget = errors.New("too many values (alias expansion)")

// toValue converts a node to plain Go values as JSON would decode them
// (map[string]any, []any, string, bool, int or float64, nil). Timestamps
// stay the text written and keys are strings, so that JSON Schema sees
// what the user wrote.
func toValue(n *yaml.Node, budget *int) (any, error) {
	return toValueSub(n, budget, nil)
}

// toValueSub is toValue with scalars replaced where sub says so.
func toValueSub(n *yaml.Node, budget *int, sub func(*yaml.Node) (any, bool)) (any, error) {
	n = resolve(n)
	if n == nil {
		return nil, nil
	}
	if *budget--; *budget < 0 {
		return nil, errBudget
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return toValueSub(n.Content[0], budget, sub)
	case yaml.MappingNode:
		ps := pairs(n)
		m := make(map[string]any, len(ps))
		for _, p := range ps {
			v, err := toValueSub(p[1], budget, sub)
			if err != nil {
				return nil, err
			}
			m[p[0].Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, it := range n.Content {
			v, err := toValueSub(it, budget, sub)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	default:
		if sub != nil {
			if v, ok := sub(n); ok {
				return v, nil
			}
		}
		return scalarValue(n), nil
	}
}

func scalarValue(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b
		}
	case "!!int":
		var i int
		if n.Decode(&i) == nil {
			return i
		}
		var f float64
		if n.Decode(&f) == nil {
			return f
		}
	case "!!float":
		var f float64
		if n.Decode(&f) == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f
		}
	}
	return n.Value
}

// isString reports whether the node is a string scalar.
func isString(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str"
}

// nodeAt follows a JSON Pointer from root, returning the deepest node
// reached and, when the last token named a mapping key, that key's node.
func nodeAt(root *yaml.Node, pointer string) (node, key *yaml.Node) {
	node = resolve(root)
	if pointer == "" || pointer == "/" {
		return node, nil
	}
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch {
		case node == nil:
			return nil, nil
		case node.Kind == yaml.MappingNode:
			found := false
			for _, p := range pairs(node) {
				if p[0].Value == tok {
					node, key, found = resolve(p[1]), p[0], true
					break
				}
			}
			if !found {
				return node, nil
			}
		case node.Kind == yaml.SequenceNode:
			i, err := strconv.Atoi(tok)
			its := items(node)
			if err != nil || i < 0 || i >= len(its) {
				return node, nil
			}
			node, key = its[i], nil
		default:
			return node, key
		}
	}
	return node, key
}

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}
