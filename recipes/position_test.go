package recipes

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestScalarPos checks that an offset in a scalar's decoded value maps to
// the line and column it was written at, in every scalar style.
func TestScalarPos(t *testing.T) {
	cases := []struct {
		name     string
		doc      string
		at       string // the decoded text whose first byte is looked up
		wantLine int
		wantCol  int
	}{
		{"plain", "k: hello world", "world", 1, 10},
		{"plain after a flow mapping key", "a: { k: x y }", "y", 1, 11},
		{"plain folded over lines", "k: first\n  second", "second", 2, 3},
		{"plain after an empty line", "k: first\n\n  second", "second", 3, 3},
		{"single quoted with a doubled quote", "k: 'it''s ok'", "ok", 1, 11},
		{"double quoted with escapes", `k: "a\tb\u00e9c"`, "c", 1, 15},
		{"double quoted escaped quote", `k: "say \"hi\" ${{ x }}"`, "x }}", 1, 20},
		{"double quoted escaped line break", "k: \"ab\\\n   cd\"", "cd", 2, 4},
		{"double quoted folded", "k: \"ab\n   cd\"", "cd", 2, 4},
		{"unicode counts runes", "k: \"日本 ${{ x }}\"", "${{", 1, 8},
		{"literal block", "k: |\n  line one\n  line two\n", "line two", 3, 3},
		{"literal block keep", "k: |+\n  one\n\n  two\n\n", "two", 4, 3},
		{"literal block explicit indentation", "k: |2\n    indented\n  x\n", "x", 3, 3},
		{"literal block explicit indentation, first line", "k: |2\n    indented\n  x\n", "indented", 2, 5},
		{"literal block nested", "a:\n  k: |\n    one\n    two ${{ y }}\n", "${{", 4, 9},
		{"folded block", "k: >\n  a b\n  c\n\n  d\n", "d", 5, 3},
		{"folded block second line", "k: >\n  a b\n  c\n\n  d\n", "c", 3, 3},
		{"folded block more indented", "k: >\n  a\n    b\n  c\n", "b", 3, 5},
		{"folded strip", "k: >-\n  one\n  two\n", "two", 3, 3},
		{"crlf plain", "k: a\r\n  b\r\n", "b", 2, 3},
		{"crlf literal", "k: |\r\n  one\r\n  two\r\n", "two", 3, 3},
		{"tagged", "k: !!str yes ${{ z }}", "${{", 1, 14},
		{"anchored", "k: &a val ${{ z }}", "${{", 1, 11},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var diags Diagnostics
			s := newSource("f.yaml", []byte(tc.doc), &diags, nil)
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tc.doc), &doc); err != nil {
				t.Fatal(err)
			}
			n := findScalar(&doc, tc.at)
			if n == nil {
				t.Fatalf("no scalar holds %q", tc.at)
			}
			if s.scalarOffsets(n) == nil {
				t.Fatalf("scalar %q could not be mapped to the source", n.Value)
			}
			p := s.scalarPos(n, strings.Index(n.Value, tc.at))
			if p.Line != tc.wantLine || p.Column != tc.wantCol {
				t.Errorf("%q at %d:%d, want %d:%d", tc.at, p.Line, p.Column, tc.wantLine, tc.wantCol)
			}
		})
	}
}

func findScalar(n *yaml.Node, sub string) *yaml.Node {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, sub) && n.Value != "k" {
		return n
	}
	for _, c := range n.Content {
		if f := findScalar(c, sub); f != nil {
			return f
		}
	}
	return nil
}

// TestScalarOffsetsAgree maps every byte of many scalars and checks that a
// plain character is found where it was written.
func TestScalarOffsetsAgree(t *testing.T) {
	docs := []string{
		"k: \"a\\\"b\\\\c\\x41\\U0001F600d\"",
		"k: 'x''y''z'",
		"k: |\n  a\n\n  b\n   c\n",
		"k: >\n  a\n  b\n\n\n  c\n",
		"k: plain\n  more\n\n\n  text",
	}
	for i, doc := range docs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			var diags Diagnostics
			s := newSource("f.yaml", []byte(doc), &diags, nil)
			var root yaml.Node
			if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
				t.Fatal(err)
			}
			n := root.Content[0].Content[1]
			offs := s.scalarOffsets(n)
			if offs == nil {
				t.Fatalf("scalar %q not mapped", n.Value)
			}
			for j := 0; j < len(n.Value); j++ {
				c := n.Value[j]
				if c >= 'a' && c <= 'z' && doc[offs[j]] != c {
					t.Errorf("byte %d %q maps to %q", j, c, doc[offs[j]])
				}
			}
		})
	}
}
