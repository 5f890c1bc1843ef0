package recipes

import (
	"strconv"
	"strings"
	"testing"
)

// TestHostileInput checks that inputs built to explode (aliases, merges,
// nesting) end with a diagnostic or a bounded result, not a hang or a
// crash.
func TestHostileInput(t *testing.T) {
	chain := func(line string, n int) string {
		var b strings.Builder
		b.WriteString("a0: &a0 {x: [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n")
		for i := 1; i < n; i++ {
			b.WriteString(strings.NewReplacer("I", strconv.Itoa(i), "J", strconv.Itoa(i-1)).Replace(line))
		}
		return b.String()
	}
	cases := []struct {
		name string
		doc  string
		want string // a substring of the diagnostics
	}{
		{"alias bomb", chain("aI: &aI [*aJ, *aJ, *aJ, *aJ, *aJ, *aJ, *aJ, *aJ, *aJ]\n", 12), "too many values"},
		{"merge bomb", chain("aI: &aI { <<: [*aJ, *aJ, *aJ] }\n", 40), "missing required key"},
		{"deep nesting", strings.Repeat("[", 5000) + strings.Repeat("]", 5000), "not a list"},
		{"deep mappings", strings.Repeat("{a: ", 3000) + "1" + strings.Repeat("}", 3000), "unknown key \"a\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := LoadBytes("h.yaml", []byte(tc.doc), Options{Registry: testRegistry()})
			if !strings.Contains(diags.Error(), tc.want) {
				t.Errorf("diagnostics lack %q:\n%.600s", tc.want, diags.Error())
			}
		})
	}
}
