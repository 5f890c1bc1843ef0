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
	"sync/atomic"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/jsonenc"
)

func appendAction() *connectors.ActionSpec {
	return &connectors.ActionSpec{
		Operation: connectors.Operation{
			Name:        "append",
			Summary:     "Append a record as one JSON line to a file, creating it (and its directory).",
			Description: "Concurrent steps appending to one path are serialised by a single writer per path, so lines never interleave.",
			Effect:      "records written",
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
		Batch:  &connectors.BatchForm{Max: appendBatchMax, Run: connectors.BindBatch(appendBatch)},
	}
}

// appendBatchMax bounds the records of one batch write: enough to make a
// write serve many runs, few enough to keep the buffer small.
const appendBatchMax = 256

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

func line(record any) ([]byte, error) { return appendLine(nil, record) }

// appendLine appends record to b as one line, as json.Marshal encodes it
// (settleAppend compares lines byte for byte), without reflection for
// the values a mapping produces.
func appendLine(b []byte, record any) ([]byte, error) {
	b, err := jsonenc.AppendMarshal(b, record)
	if err != nil {
		return b, err
	}
	return append(b, '\n'), nil
}

// prepare resolves an input's path and encodes its record as one line.
func (f *Files) prepare(in map[string]any) (path string, data []byte, err error) {
	path, record, err := f.target(in, nil)
	if err != nil {
		return "", nil, err
	}
	if data, err = appendLine(nil, record); err != nil {
		return "", nil, fmt.Errorf("file.append %s: encoding the record: %w", path, err)
	}
	return path, data, nil
}

// target resolves an input's path (through resolved, the paths of a
// batch resolved so far, when not nil) and returns its record.
func (f *Files) target(in map[string]any, resolved map[string]string) (path string, record map[string]any, err error) {
	raw := str(in, "path")
	path, known := resolved[raw]
	if !known {
		if path, err = f.resolve(raw); err != nil {
			return "", nil, fmt.Errorf("file.append: %w", err)
		}
		if resolved != nil {
			resolved[raw] = path
		}
	}
	record, ok := in["record"].(map[string]any)
	if !ok {
		return "", nil, fmt.Errorf("file.append %s: record must be an object", path)
	}
	return path, record, nil
}

func appendRecord(_ context.Context, f *Files, in map[string]any) (*connectors.Result, error) {
	path, data, err := f.prepare(in)
	if err != nil {
		return nil, err
	}
	if f.dryRun != nil {
		f.dryRun(connectors.PlannedWrite{Connection: f.name, Method: "APPEND", Path: path, Body: in["record"]})
		return &connectors.Result{Output: map[string]any{"path": path, "line": 0, "bytes": len(data)}}, nil
	}
	first, err := f.writer(path).write(path, data)
	if err != nil {
		return nil, err
	}
	return &connectors.Result{Output: map[string]any{"path": path, "line": first, "bytes": len(data)}}, nil
}

// batchBuffers recycles the buffers batches are encoded into: a batch
// of 256 credentials is about 80 KB, grown from nothing each time before.
var batchBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxBatchBuffer bounds the buffers kept for reuse.
const maxBatchBuffer = 1 << 20

// appendBatch is append's batch form: the lines of all inputs for one
// path go out in one write, each with its own line number. A dry run
// plans each write as Run does.
func appendBatch(ctx context.Context, f *Files, inputs []map[string]any) ([]connectors.ItemResult, error) {
	out := make([]connectors.ItemResult, len(inputs))
	if f.dryRun != nil {
		for i, in := range inputs {
			out[i].Result, out[i].Err = appendRecord(ctx, f, in)
		}
		return out, nil
	}
	type batch struct {
		idx   []int
		sizes []int
		buf   []byte
	}
	var paths []string
	byPath := map[string]*batch{}
	resolved := map[string]string{} // each path of the batch resolved once
	for i, in := range inputs {
		path, record, err := f.target(in, resolved)
		if err != nil {
			out[i].Err = err
			continue
		}
		b := byPath[path]
		if b == nil {
			b = &batch{buf: (*batchBuffers.Get().(*[]byte))[:0]}
			byPath[path] = b
			paths = append(paths, path)
		}
		// Encoded straight into the write's buffer.
		start := len(b.buf)
		if b.buf, err = appendLine(b.buf, record); err != nil {
			out[i].Err = fmt.Errorf("file.append %s: encoding the record: %w", path, err)
			continue
		}
		b.idx, b.sizes = append(b.idx, i), append(b.sizes, len(b.buf)-start)
	}
	for _, path := range paths {
		b := byPath[path]
		first, err := f.writer(path).write(path, b.buf)
		if cap(b.buf) <= maxBatchBuffer {
			batchBuffers.Put(&b.buf) // written: nothing holds it
		}
		for j, i := range b.idx {
			if err != nil {
				out[i].Err = err
				continue
			}
			out[i].Result = &connectors.Result{Output: map[string]any{"path": path, "line": first + j, "bytes": b.sizes[j]}}
		}
	}
	return out, nil
}

// write appends whole lines in one Write on the O_APPEND file (opening it
// the first time) and returns the line number of the first. With
// O_APPEND and this writer's lock the lines land whole and in order.
func (w *writer) write(path string, data []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file == nil {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return 0, fmt.Errorf("file.append: %w", err)
		}
		file, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_RDWR, 0o644)
		if err != nil {
			return 0, fmt.Errorf("file.append: %w", err)
		}
		n, err := countLines(file)
		if err != nil {
			file.Close()
			return 0, fmt.Errorf("file.append %s: counting lines: %w", path, err)
		}
		w.file, w.lines = file, n
	}
	n, err := w.file.Write(data)
	if err != nil {
		if n > 0 {
			// Part of it landed: which lines is for Settle to find. The
			// count is unknown now: the next write reopens and counts.
			w.file.Close()
			w.file = nil
			return 0, &connectors.InDoubtError{Method: "APPEND", Path: path, Err: err}
		}
		return 0, fmt.Errorf("file.append %s: %w", path, err)
	}
	first := w.lines + 1
	w.lines += bytes.Count(data, []byte{'\n'})
	return first, nil
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

// settleAppend: the append happened when the file holds the record's
// line. The look-ups of one path that wait at the same moment (the
// in-doubt items of a batch, resumed together after a crash) share one
// scan of the file.
func settleAppend(ctx context.Context, conn connectors.Conn, in map[string]any) (*connectors.Result, bool, error) {
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
	found, err := f.finder(path).find(ctx, path, want[:len(want)-1])
	if err != nil || found == 0 {
		return nil, false, err
	}
	return &connectors.Result{Output: map[string]any{"path": path, "line": found, "bytes": len(want)}}, true, nil
}

// finder gathers the look-ups of one path into shared scans.
type finder struct {
	mu    sync.Mutex
	queue []*lookFor
	busy  bool
	scans atomic.Int64 // for tests
}

// lookFor is one look-up: the line (without its newline) and, once the
// scan is done, the number of its last occurrence (0: absent).
type lookFor struct {
	line  []byte
	found int
	err   error
	done  chan struct{}
}

func (f *Files) finder(path string) *finder {
	f.mu.Lock()
	defer f.mu.Unlock()
	fd, ok := f.finders[path]
	if !ok {
		fd = &finder{}
		f.finders[path] = fd
	}
	return fd
}

// find waits for a scan that looks for line: the next one to start.
func (fd *finder) find(ctx context.Context, path string, line []byte) (int, error) {
	l := &lookFor{line: line, done: make(chan struct{})}
	fd.mu.Lock()
	fd.queue = append(fd.queue, l)
	start := !fd.busy
	fd.busy = true
	fd.mu.Unlock()
	if start {
		go fd.scanLoop(path)
	}
	select {
	case <-l.done:
		return l.found, l.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// scanLoop scans the file for every queued look-up at once, until none
// is left.
func (fd *finder) scanLoop(path string) {
	for {
		fd.mu.Lock()
		batch := fd.queue
		fd.queue = nil
		if len(batch) == 0 {
			fd.busy = false
			fd.mu.Unlock()
			return
		}
		fd.mu.Unlock()
		fd.scans.Add(1)
		err := scanFor(path, batch)
		for _, l := range batch {
			l.err = err
			close(l.done)
		}
	}
}

func scanFor(path string, batch []*lookFor) error {
	want := make(map[string][]*lookFor, len(batch))
	for _, l := range batch {
		want[string(l.line)] = append(want[string(l.line)], l)
	}
	file, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		for _, l := range want[string(sc.Bytes())] {
			l.found = n
		}
	}
	return sc.Err()
}

func str(in map[string]any, k string) string {
	s, _ := in[k].(string)
	return s
}
