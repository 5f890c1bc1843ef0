package files

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/memberflow/memberflow/connectors"
)

func appendAction() *connectors.ActionSpec {
	return &connectors.ActionSpec{
		Operation: connectors.Operation{
			Name:        "append",
			Summary:     "Append a record as one JSON line to a file, creating it (and its directory).",
			Description: "Concurrent steps appending to one path are serialised by a single writer per path, so lines never interleave.",
			Input: json.RawMessage(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["path", "record"],
  "properties": {
    "path": {"type": "string", "minLength": 1, "description": "File to append to; relative to the connection's baseDir."},
    "record": {"type": "object", "description": "The record, written as one line of JSON."}
  }
}`),
			Output: json.RawMessage(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["path", "line", "bytes"],
  "properties": {
    "path": {"type": "string", "description": "The absolute path written."},
    "line": {"type": "integer", "description": "The 1-based line number of the record in the file."},
    "bytes": {"type": "integer", "description": "Bytes written, newline included."}
  }
}`),
			Example: map[string]any{"path": "out/issued.jsonl", "record": map[string]any{"memberId": "member-42", "credentialId": 1001}},
		},
		Run:    connectors.Bind(appendRecord),
		Settle: settleAppend,
	}
}

// writer is the one writer of a path: its open file and line count.
type writer struct {
	mu    sync.Mutex
	file  *os.File
	lines int
}

func (f *Files) writer(path string) *writer {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.writers[path]
	if !ok {
		w = &writer{}
		f.writers[path] = w
	}
	return w
}

func line(record any) ([]byte, error) {
	b, err := json.Marshal(record)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func appendRecord(_ context.Context, f *Files, in map[string]any) (*connectors.Result, error) {
	path, err := f.resolve(str(in, "path"))
	if err != nil {
		return nil, fmt.Errorf("file.append: %w", err)
	}
	record, ok := in["record"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("file.append %s: record must be an object", path)
	}
	data, err := line(record)
	if err != nil {
		return nil, fmt.Errorf("file.append %s: encoding the record: %w", path, err)
	}
	if f.dryRun != nil {
		f.dryRun(connectors.PlannedWrite{Connection: f.name, Method: "APPEND", Path: path, Body: record})
		return &connectors.Result{Output: map[string]any{"path": path, "line": 0, "bytes": len(data)}}, nil
	}
	w := f.writer(path)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file == nil {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("file.append: %w", err)
		}
		file, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_RDWR, 0o644)
		if err != nil {
			return nil, fmt.Errorf("file.append: %w", err)
		}
		n, err := countLines(file)
		if err != nil {
			file.Close()
			return nil, fmt.Errorf("file.append %s: counting lines: %w", path, err)
		}
		w.file, w.lines = file, n
	}
	// One Write per record: with O_APPEND the line lands whole.
	if _, err := w.file.Write(data); err != nil {
		return nil, fmt.Errorf("file.append %s: %w", path, err)
	}
	w.lines++
	return &connectors.Result{Output: map[string]any{"path": path, "line": w.lines, "bytes": len(data)}}, nil
}

// countLines counts the newline-terminated lines of a file; a last line
// without a newline counts too.
func countLines(file *os.File) (int, error) {
	if _, err := file.Seek(0, 0); err != nil {
		return 0, err
	}
	r := bufio.NewReaderSize(file, 64<<10)
	n, last := 0, byte('\n')
	buf := make([]byte, 64<<10)
	for {
		k, err := r.Read(buf)
		if k > 0 {
			n += bytes.Count(buf[:k], []byte{'\n'})
			last = buf[k-1]
		}
		if err != nil {
			break
		}
	}
	if last != '\n' {
		n++
	}
	return n, nil
}

// settleAppend: the append happened when the file holds the record's line.
func settleAppend(_ context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
	f, err := connectors.As[*Files](conn)
	if err != nil {
		return nil, false, err
	}
	path, err := f.resolve(str(in, "path"))
	if err != nil {
		return nil, false, err
	}
	want, err := line(in["record"])
	if err != nil {
		return nil, false, err
	}
	file, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	found, n := 0, 0
	for sc.Scan() {
		n++
		if bytes.Equal(sc.Bytes(), want[:len(want)-1]) {
			found = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, false, err
	}
	if found == 0 {
		return nil, false, nil
	}
	return &connectors.Result{Output: map[string]any{"path": path, "line": found, "bytes": len(want)}}, true, nil
}

func str(in map[string]any, k string) string {
	s, _ := in[k].(string)
	return s
}
