package files

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestJSONLinesRawStaysTheLine: each record's raw text is its line, and
// stays so after every later line is read (the copies share blocks; a
// line longer than a block is copied alone).
func TestJSONLinesRawStaysTheLine(t *testing.T) {
	var want []string
	var in strings.Builder
	for i := range 3000 {
		line := fmt.Sprintf(`{"id":%d,"pad":"%s"}`, i, strings.Repeat("x", i%97))
		if i%1000 == 999 {
			line = fmt.Sprintf(`{"id":%d,"long":"%s"}`, i, strings.Repeat("y", lineCopies)) // longer than a block
		}
		want = append(want, line)
		in.WriteString(line + "\n")
	}
	j := &jsonlReader{r: bufio.NewReaderSize(strings.NewReader(in.String()), 4096)}
	var raws [][]byte
	for {
		_, _, raw, err := j.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	if len(raws) != len(want) {
		t.Fatalf("%d records, want %d", len(raws), len(want))
	}
	for i, raw := range raws {
		if string(raw) != want[i] {
			t.Fatalf("record %d's raw text is %.60q…, want %.60q…", i, raw, want[i])
		}
	}
	// Appending to one record's text does not reach the next's.
	_ = append(raws[0], "!!!"...)
	if string(raws[1]) != want[1] {
		t.Fatalf("record 1's text changed when record 0's grew: %q", raws[1])
	}
}
