package files

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/memberflow/memberflow/connectors"
)

func open(t *testing.T, dir string) *Files {
	t.Helper()
	c, err := Open(connectors.ConnectionConfig{Name: "files", Options: map[string]any{"baseDir": dir}})
	if err != nil {
		t.Fatal(err)
	}
	f := c.(*Files)
	t.Cleanup(func() { f.Close() })
	return f
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func poll(t *testing.T, f *Files, params map[string]any, cursor string) (*connectors.PollResult, error) {
	t.Helper()
	return Spec().Trigger("records").Poll(context.Background(), f, connectors.PollRequest{Params: params, Cursor: cursor, Start: connectors.StartNow})
}

func TestSpecRegisters(t *testing.T) {
	if err := connectors.NewRegistry().Register(Spec()); err != nil {
		t.Fatal(err)
	}
}

func TestRecordsReadsFormats(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "members.jsonl", "{\"id\":\"a\",\"n\":1}\n\n{\"id\":\"b\",\"n\":2}\n{\"id\":\"c\",\"n\":3}")
	write(t, dir, "members.csv", "\ufeffid,name,email\na,\"Lovelace, Ada\",ada@example.com\nb,Grace,grace@example.com\n")
	write(t, dir, "noext", "id,name\nx,y\n")
	write(t, dir, "noext2", "  {\"id\":\"x\"}\n")
	write(t, dir, "numbers.jsonl", "{\"id\":7}\n{\"id\":true}\n{\"id\":1.5}\n")
	cases := []struct {
		name     string
		params   map[string]any
		subjects string
		first    map[string]any
	}{
		{"jsonl by extension", map[string]any{"path": "members.jsonl"}, "[line/1 line/3 line/4]", map[string]any{"id": "a", "n": float64(1)}},
		{"jsonl keyed", map[string]any{"path": "members.jsonl", "key": "id"}, "[record/a record/b record/c]", nil},
		{"jsonl keyed by other values", map[string]any{"path": "numbers.jsonl", "key": "id"}, "[record/7 record/true record/1.5]", nil},
		{"csv by extension", map[string]any{"path": "members.csv", "key": "email"}, "[record/ada@example.com record/grace@example.com]", map[string]any{"id": "a", "name": "Lovelace, Ada", "email": "ada@example.com"}},
		{"csv sniffed", map[string]any{"path": "noext"}, "[line/2]", map[string]any{"id": "x", "name": "y"}},
		{"jsonl sniffed", map[string]any{"path": "noext2"}, "[line/1]", map[string]any{"id": "x"}},
		{"format forced", map[string]any{"path": "noext", "format": "csv"}, "[line/2]", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := poll(t, open(t, dir), tc.params, "")
			if err != nil {
				t.Fatal(err)
			}
			var subjects []string
			for _, e := range res.Events {
				subjects = append(subjects, e.Subject)
			}
			if fmt.Sprint(subjects) != tc.subjects {
				t.Fatalf("subjects %v, want %s", subjects, tc.subjects)
			}
			if tc.first != nil && fmt.Sprint(res.Events[0].Data) != fmt.Sprint(tc.first) {
				t.Fatalf("first record %v, want %v", res.Events[0].Data, tc.first)
			}
		})
	}
}

func TestRecordsErrorsSayWhere(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "bad.jsonl", "{\"id\":1}\n{oops\n")
	write(t, dir, "ragged.csv", "a,b\n1,2\n3\n")
	write(t, dir, "dup.csv", "a,a\n1,2\n")
	write(t, dir, "nokey.jsonl", "{\"id\":1}\n{\"other\":2}\n")
	write(t, dir, "emptykey.jsonl", "{\"id\":\"a\"}\n{\"id\":\"\"}\n")
	write(t, dir, "nullkey.jsonl", "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":null}\n")
	cases := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"bad json line", map[string]any{"path": "bad.jsonl"}, "bad.jsonl: line 2: not a JSON object"},
		{"ragged csv", map[string]any{"path": "ragged.csv"}, "ragged.csv: line 3"},
		{"duplicate header", map[string]any{"path": "dup.csv"}, "header names must be non-empty and unique"},
		{"missing key", map[string]any{"path": "nokey.jsonl", "key": "id"}, `line 2: record has no field "id"`},
		{"empty key", map[string]any{"path": "emptykey.jsonl", "key": "id"}, `line 2: record has no field "id"`},
		{"null key", map[string]any{"path": "nullkey.jsonl", "key": "id"}, `line 3: record has no field "id"`},
		{"missing file", map[string]any{"path": "nope.jsonl"}, "no such file"},
		{"a directory", map[string]any{"path": "."}, "is a directory; path names the file to read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The records before the bad one come as a page of their own;
			// the poll after it fails, again and again.
			f := open(t, dir)
			res, err := poll(t, f, tc.params, "")
			if err == nil {
				if !res.More || len(res.Events) == 0 {
					t.Fatalf("a page before the bad record that says no more: %+v", res)
				}
				cursor := res.Cursor
				for range 2 {
					if res, err = poll(t, f, tc.params, cursor); err == nil {
						t.Fatalf("the poll at the bad record succeeded: %+v", res)
					}
				}
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRecordsBeforeABadOneRunAndNothingAfter: a record that cannot be read
// stops the trigger at it. The records before it are a page; nothing after
// it is read. Stdin, which cannot be read again, keeps failing on it
// rather than go on past it (it once lost the page and the record).
func TestRecordsBeforeABadOneRunAndNothingAfter(t *testing.T) {
	const input = "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\": broken\n{\"id\":\"c\"}\n"
	dir := t.TempDir()
	write(t, dir, "m.jsonl", input)
	for _, path := range []string{"m.jsonl", "-"} {
		t.Run(path, func(t *testing.T) {
			f := open(t, dir)
			f.Stdin = strings.NewReader(input)
			params := map[string]any{"path": path, "key": "id", "batch": float64(10)}
			res, err := poll(t, f, params, "")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range res.Events {
				got = append(got, ev.Subject)
			}
			if fmt.Sprint(got) != "[record/a record/b]" || !res.More {
				t.Fatalf("first page %v (more %v), want the two records before the bad one and more", got, res.More)
			}
			for range 3 {
				res, err := poll(t, f, params, res.Cursor)
				if err == nil || !strings.Contains(err.Error(), "line 3: not a JSON object") {
					t.Fatalf("the poll after the page: %+v, %v; want line 3's error", res, err)
				}
			}
		})
	}
}

func TestRecordsCursorResumes(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&b, "{\"i\":%d}\n", i)
	}
	write(t, dir, "r.jsonl", b.String())
	params := map[string]any{"path": "r.jsonl", "batch": float64(2)}
	var all []string
	cursor := ""
	for round := 0; round < 5; round++ {
		// A fresh connection each time: a re-run resumes from the cursor.
		res, err := poll(t, open(t, dir), params, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Events {
			all = append(all, fmt.Sprint(e.Data["i"]))
		}
		cursor = res.Cursor
		if !res.More {
			break
		}
	}
	if c, err := parseCursor(cursor); strings.Join(all, ",") != "1,2,3,4,5" || err != nil || c.Records != 5 || c.Line != 5 {
		t.Fatalf("read %v, cursor %s", all, cursor)
	}
	// Records appended later are read next, with the same IDs each time.
	f, _ := os.OpenFile(filepath.Join(dir, "r.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("{\"i\":6}\n")
	f.Close()
	a, _ := poll(t, open(t, dir), params, cursor)
	b2, _ := poll(t, open(t, dir), params, cursor)
	if c, _ := parseCursor(a.Cursor); len(a.Events) != 1 || a.Events[0].ID != b2.Events[0].ID || c.Records != 6 || a.Events[0].Subject != "line/6" {
		t.Fatalf("after append: %+v", a)
	}
	if _, err := poll(t, open(t, dir), params, "x"); err == nil {
		t.Fatal("a bad cursor must fail")
	}
}

func TestRecordsFromStdin(t *testing.T) {
	f := open(t, t.TempDir())
	f.Stdin = strings.NewReader("{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n")
	params := map[string]any{"path": "-", "batch": float64(2)}
	first, err := poll(t, f, params, "")
	if err != nil || len(first.Events) != 2 || !first.More {
		t.Fatalf("%+v %v", first, err)
	}
	second, err := poll(t, f, params, first.Cursor)
	if err != nil || len(second.Events) != 1 || second.Events[0].Data["a"] != float64(3) {
		t.Fatalf("%+v %v", second, err)
	}
	if _, err := poll(t, f, params, "0"); err == nil || !strings.Contains(err.Error(), "cannot rewind") {
		t.Fatalf("rewind: %v", err)
	}
}

func TestAppendIsSafeUnderConcurrentSteps(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir)
	run := Spec().Action("append").Run
	var wg sync.WaitGroup
	const workers, each = 20, 50
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				rec := map[string]any{"worker": w, "i": i, "pad": strings.Repeat("x", 3000)}
				if _, err := run(context.Background(), f, map[string]any{"path": "out/log.jsonl", "record": rec}); err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	file, err := os.Open(filepath.Join(dir, "out/log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %d is torn: %v", n+1, err)
		}
		n++
	}
	if n != workers*each {
		t.Fatalf("%d lines, want %d", n, workers*each)
	}
	// A new connection continues the line count of the existing file.
	g := open(t, dir)
	res, err := run(context.Background(), g, map[string]any{"path": "out/log.jsonl", "record": map[string]any{"last": true}})
	if err != nil || res.Output.(map[string]any)["line"] != workers*each+1 {
		t.Fatalf("%v %v", res, err)
	}
}

func TestAppendSettleAndDryRun(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir)
	a := Spec().Action("append")
	in := map[string]any{"path": "s.jsonl", "record": map[string]any{"b": 2, "a": 1}}
	if _, happened, err := a.Settle(context.Background(), f, in); err != nil || happened {
		t.Fatalf("before: %v %v", happened, err)
	}
	if _, err := a.Run(context.Background(), f, in); err != nil {
		t.Fatal(err)
	}
	res, happened, err := a.Settle(context.Background(), f, in)
	if err != nil || !happened || res.Output.(map[string]any)["line"] != 1 {
		t.Fatalf("after: %v %v %v", res, happened, err)
	}
	var planned []connectors.PlannedWrite
	c, _ := Open(connectors.ConnectionConfig{Name: "dry", Options: map[string]any{"baseDir": dir}, DryRun: func(p connectors.PlannedWrite) { planned = append(planned, p) }})
	if _, err := a.Run(context.Background(), c, map[string]any{"path": "dry.jsonl", "record": map[string]any{"x": 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dry.jsonl")); !os.IsNotExist(err) || len(planned) != 1 {
		t.Fatalf("dry run wrote a file or planned %d writes", len(planned))
	}
}
