package files

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readAll polls until the file is consumed, one fresh connection per poll.
func readAll(t *testing.T, dir string, params map[string]any, cursor string) (ids, data []string, end string) {
	t.Helper()
	for round := 0; round < 100; round++ {
		res, err := poll(t, open(t, dir), params, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Events {
			ids = append(ids, e.ID)
			data = append(data, fmt.Sprint(e.Subject, e.Data))
		}
		cursor = res.Cursor
		if !res.More {
			return ids, data, cursor
		}
	}
	t.Fatal("no end")
	return
}

func TestRecordsCursorGuards(t *testing.T) {
	lines := func(from, to int) string {
		var b strings.Builder
		for i := from; i <= to; i++ {
			fmt.Fprintf(&b, "{\"i\":%d}\n", i)
		}
		return b.String()
	}
	params := map[string]any{"path": "r.jsonl", "batch": float64(3)}
	cases := []struct {
		name string
		// change is done to the file between the first full read and the second.
		change func(t *testing.T, path string)
		want   string // subjects and data read after the change
	}{
		{"grown", func(t *testing.T, p string) { appendTo(t, p, lines(6, 7)) },
			"line/6map[i:6] line/7map[i:7]"},
		{"unchanged", func(t *testing.T, p string) {}, ""},
		{"truncated then grown", func(t *testing.T, p string) {
			os.WriteFile(p, []byte(lines(1, 2)), 0o644)
		}, "line/1map[i:1] line/2map[i:2]"},
		{"rewritten in place, same size", func(t *testing.T, p string) {
			os.WriteFile(p, []byte(strings.Replace(lines(1, 5), `"i":1}`, `"i":9}`, 1)), 0o644)
		}, "line/1map[i:9] line/2map[i:2] line/3map[i:3] line/4map[i:4] line/5map[i:5]"},
		{"replaced by rename", func(t *testing.T, p string) {
			tmp := p + ".new"
			os.WriteFile(tmp, []byte(lines(1, 5)+lines(6, 6)), 0o644)
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		}, "line/1map[i:1] line/2map[i:2] line/3map[i:3] line/4map[i:4] line/5map[i:5] line/6map[i:6]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "r.jsonl")
			write(t, dir, "r.jsonl", lines(1, 5))
			firstIDs, _, cur := readAll(t, dir, params, "")
			if len(firstIDs) != 5 {
				t.Fatalf("first read %d records", len(firstIDs))
			}
			tc.change(t, path)
			ids, data, _ := readAll(t, dir, params, cur)
			if got := strings.Join(data, " "); got != tc.want {
				t.Fatalf("after the change read %q, want %q", got, tc.want)
			}
			// A record read again at its place with its content keeps its ID:
			// the store runs it once.
			for i, id := range ids {
				if strings.Contains(tc.name, "replaced") && i < 5 && id != firstIDs[i] {
					t.Errorf("record %d re-read with ID %s, first %s", i+1, id, firstIDs[i])
				}
			}
		})
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestRecordsCSVResumesAcrossQuotedLines(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "m.csv", "\ufeffid,note\r\na,\"two\r\nlines\"\r\n\r\nb,plain\r\nc,\"x, y\"\r\nd,\"3\n4\n5\"\ne,last\n")
	params := map[string]any{"path": "m.csv", "batch": float64(1)}
	_, data, cur := readAll(t, dir, params, "")
	want := "line/2map[id:a note:two\nlines] line/5map[id:b note:plain] line/6map[id:c note:x, y] line/7map[id:d note:3\n4\n5] line/10map[id:e note:last]"
	if got := strings.Join(data, " "); got != want {
		t.Fatalf("read %q\nwant %q", got, want)
	}
	appendTo(t, filepath.Join(dir, "m.csv"), "f,more\ng\n")
	res, err := poll(t, open(t, dir), params, cur)
	if err != nil || len(res.Events) != 1 || res.Events[0].Subject != "line/11" || res.Events[0].Data["note"] != "more" {
		t.Fatalf("after append: %+v %v", res, err)
	}
	// The header's width still applies after a resume.
	_, err = poll(t, open(t, dir), params, res.Cursor)
	if err == nil || !strings.Contains(err.Error(), "line 12") {
		t.Fatalf("ragged row after resume: %v", err)
	}
}

func TestRecordsLegacyCursorAndLongLines(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", 200<<10)
	write(t, dir, "r.jsonl", "{\"i\":1}\n{\"i\":2,\"pad\":\""+long+"\"}\n{\"i\":3}\n{\"i\":4}")
	params := map[string]any{"path": "r.jsonl", "batch": float64(1)}
	// A cursor of the first format (a record count) resumes after that many.
	_, data, cur := readAll(t, dir, params, "1")
	if len(data) != 3 || !strings.HasPrefix(data[0], "line/2") || data[2] != "line/4map[i:4]" {
		t.Fatalf("legacy resume read %d records: %.40q", len(data), data)
	}
	c, err := parseCursor(cur)
	if err != nil || c.Records != 4 || c.Line != 4 || c.Offset != int64(len(long))+40 {
		t.Fatalf("cursor %q %+v %v", cur, c, err)
	}
	// An earlier version read the records the count covers: its lines'
	// fingerprints stay SHA-256 (TestRecordsUpgradeMidFileKeepsIDs).
	if !strings.HasPrefix(cur, "v2:") || c.Lines != lineSHA256 {
		t.Fatalf("cursor after a legacy resume %q, want v2 (SHA-256 fingerprints)", cur)
	}
	for _, bad := range []string{"x", "-1", "v2:1:2:3", "v4:0:0:0:0:", "v2:-5:0:0:0:", "v3:1:x:0:0:"} {
		if _, err := poll(t, open(t, dir), params, bad); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

func TestRecordsKeepTheirLine(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "r.jsonl", "  {\"b\":2, \"a\":1}  \r\n")
	write(t, dir, "r.csv", "a,b\n1,2\n")
	res, err := poll(t, open(t, dir), map[string]any{"path": "r.jsonl"}, "")
	if err != nil || len(res.Events) != 1 || string(res.Events[0].Raw) != `{"b":2, "a":1}` {
		t.Fatalf("jsonl: %+v %v", res, err)
	}
	if res.Events[0].Fingerprint != fingerprint(lineXXH64, nil, []byte(`{"b":2, "a":1}`)) {
		t.Fatal("a JSON line's fingerprint is not its text's")
	}
	res, err = poll(t, open(t, dir), map[string]any{"path": "r.csv"}, "")
	if err != nil || len(res.Events) != 1 || res.Events[0].Raw != nil || res.Events[0].Fingerprint != fingerprint(lineXXH64, map[string]any{"a": "1", "b": "2"}, nil) {
		t.Fatalf("csv: %+v %v", res, err)
	}
}

// TestRecordsEventIDs: a file first read by this version names its
// events where#n:XXH64 of the line, and its cursor says so (v3). The
// golden fingerprints are XXH64 of the lines, in hex.
func TestRecordsEventIDs(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "r.jsonl", "{\"id\":\"a\"}\n{\"id\":\"b\"}\n")
	ids, _, cur := readAll(t, dir, map[string]any{"path": "r.jsonl"}, "")
	where := filepath.Join(dir, "r.jsonl")
	want := []string{where + "#1:1463473e61e91c72", where + "#2:1ed807ed51fa1aaf"}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Fatalf("IDs %q, want %q", ids, want)
	}
	if !strings.HasPrefix(cur, "v3:") {
		t.Fatalf("cursor %q, want v3 (XXH64 fingerprints)", cur)
	}
}

// TestRecordsUpgradeMidFileKeepsIDs: a file an earlier version was
// reading (a v2 cursor) keeps SHA-256 fingerprints, for the records
// after its cursor and for those read again when the file changes under
// it: a record read again at its place with its content has the ID it
// was stored under, so it does not run twice after an upgrade.
func TestRecordsUpgradeMidFileKeepsIDs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.jsonl")
	lines := []string{`{"i":1}`, `{"i":2}`, `{"i":3}`, `{"i":4}`}
	write(t, dir, "r.jsonl", strings.Join(lines[:2], "\n")+"\n")
	params := map[string]any{"path": "r.jsonl", "batch": float64(10)}
	_, _, cur := readAll(t, dir, params, "")
	// The cursor the earlier version wrote there: the same fields.
	cur = "v2:" + strings.TrimPrefix(cur, "v3:")
	oldID := func(n int) string { // the earlier version's formula
		sum := sha256.Sum256([]byte(lines[n-1]))
		return fmt.Sprintf("%s#%d:%s", path, n, hex.EncodeToString(sum[:8]))
	}
	appendTo(t, path, lines[2]+"\n")
	ids, _, cur := readAll(t, dir, params, cur)
	if len(ids) != 1 || ids[0] != oldID(3) || !strings.HasPrefix(cur, "v2:") {
		t.Fatalf("after the upgrade read %q (cursor %q), want [%s] and a v2 cursor", ids, cur, oldID(3))
	}
	// Rewritten under the cursor: read again from the start, same IDs.
	os.WriteFile(path, []byte(strings.Replace(strings.Join(lines, "\n")+"\n", `{"i":2}`, `{"i":2} `, 1)), 0o644)
	ids, _, cur = readAll(t, dir, params, cur)
	want := []string{oldID(1), oldID(2), oldID(3), oldID(4)}
	if strings.Join(ids, " ") != strings.Join(want, " ") || !strings.HasPrefix(cur, "v2:") {
		t.Fatalf("re-read %q (cursor %q), want %q", ids, cur, want)
	}
}
