package files

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

func recordsTrigger() *connectors.TriggerSpec {
	return &connectors.TriggerSpec{
		Operation: connectors.Operation{
			Name:    "records",
			Summary: "Read a JSON Lines or CSV file (or stdin) as one event per record, resuming where the last run stopped.",
			Description: "The cursor is the number of records consumed, so a re-run continues after the last record it read. " +
				"A file is a batch input: it is always read from its first record, whatever `start` says.",
			Input: json.RawMessage(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["path"],
  "properties": {
    "path": {"type": "string", "minLength": 1, "description": "File to read, relative to the connection's baseDir; \"-\" reads stdin."},
    "format": {"type": "string", "enum": ["jsonl", "csv", "auto"], "default": "auto", "description": "jsonl (one JSON object per line), csv (first row is the header) or auto (by extension, else by the first character)."},
    "key": {"type": "string", "minLength": 1, "description": "Field whose value names the record (the event subject record/<value>); default: the line number (line/<n>)."},
    "batch": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 500, "description": "Records per poll."}
  }
}`),
			Output: json.RawMessage(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "description": "The record: a JSON object, or a CSV row as header -> text.",
  "additionalProperties": true
}`),
			Example: map[string]any{"path": "members.csv", "format": "csv", "key": "email"},
		},
		Poll:            pollRecords,
		DefaultInterval: time.Minute,
	}
}

// recordReader yields records with the line they start on.
type recordReader interface {
	next() (map[string]any, int, error) // io.EOF at the end
}

type jsonlReader struct {
	r    *bufio.Reader
	line int
}

func (j *jsonlReader) next() (map[string]any, int, error) {
	for {
		text, err := j.r.ReadBytes('\n')
		if len(text) == 0 && err != nil {
			return nil, 0, err
		}
		j.line++
		text = bytes.TrimSpace(text)
		if len(text) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(text, &rec); err != nil || rec == nil {
			if err == nil {
				err = errors.New("want a JSON object")
			}
			return nil, j.line, fmt.Errorf("line %d: not a JSON object: %w", j.line, err)
		}
		return rec, j.line, nil
	}
}

type csvReader struct {
	r      *csv.Reader
	header []string
}

func newCSVReader(r io.Reader) (*csvReader, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return &csvReader{r: cr}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if h == "" || seen[h] {
			return nil, fmt.Errorf("line 1: column %d: header names must be non-empty and unique, got %q", i+1, h)
		}
		seen[h] = true
		header[i] = h
	}
	return &csvReader{r: cr, header: header}, nil
}

func (c *csvReader) next() (map[string]any, int, error) {
	if c.header == nil {
		return nil, 0, io.EOF
	}
	row, err := c.r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, pe.Line, fmt.Errorf("line %d: %w", pe.Line, pe.Err)
		}
		return nil, 0, err
	}
	line, _ := c.r.FieldPos(0)
	rec := make(map[string]any, len(row))
	for i, v := range row {
		rec[c.header[i]] = v
	}
	return rec, line, nil
}

// streamReader is stdin, read once: its position survives between polls.
type streamReader struct {
	rd       recordReader
	consumed int
}

func format(param, path string, peek func() byte) string {
	if param != "" && param != "auto" {
		return param
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return "csv"
	case ".jsonl", ".ndjson", ".json":
		return "jsonl"
	}
	if c := peek(); c == '{' {
		return "jsonl"
	}
	return "csv"
}

func newReader(r io.Reader, formatParam, path string) (recordReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	peek := func() byte {
		for i := 1; i < 4096; i++ {
			b, err := br.Peek(i)
			if len(b) < i {
				return 0
			}
			if c := b[i-1]; c != ' ' && c != '\n' && c != '\r' && c != '\t' && c != 0xEF && c != 0xBB && c != 0xBF {
				return c
			}
			if err != nil {
				return 0
			}
		}
		return 0
	}
	switch f := format(formatParam, path, peek); f {
	case "jsonl":
		return &jsonlReader{r: br}, nil
	case "csv":
		return newCSVReader(br)
	default:
		return nil, fmt.Errorf("format must be jsonl, csv or auto, got %q", f)
	}
}

func pollRecords(_ context.Context, conn connectors.Conn, req connectors.PollRequest) (*connectors.PollResult, error) {
	f, err := connectors.As[*Files](conn)
	if err != nil {
		return nil, err
	}
	path := str(req.Params, "path")
	formatParam := str(req.Params, "format")
	key := str(req.Params, "key")
	batch := 500
	if v, ok := req.Params["batch"].(float64); ok && v >= 1 {
		batch = int(v)
	} else if v, ok := req.Params["batch"].(int); ok && v >= 1 {
		batch = v
	}
	consumed := 0
	if req.Cursor != "" {
		if consumed, err = strconv.Atoi(req.Cursor); err != nil || consumed < 0 {
			return nil, fmt.Errorf("file.records: cursor %q is not a record count", req.Cursor)
		}
	}
	var rd recordReader
	var where string
	var stream *streamReader
	skip := consumed
	if path == "-" {
		where = "stdin"
		f.stdinMu.Lock()
		defer f.stdinMu.Unlock()
		if f.stdin == nil {
			r, err := newReader(f.Stdin, formatParam, "")
			if err != nil {
				return nil, fmt.Errorf("file.records stdin: %w", err)
			}
			f.stdin = &streamReader{rd: r}
		}
		stream = f.stdin
		if consumed < stream.consumed {
			return nil, fmt.Errorf("file.records stdin: cursor %d is behind the %d records already read, and stdin cannot rewind", consumed, stream.consumed)
		}
		rd, skip = stream.rd, consumed-stream.consumed
	} else {
		abs, err := f.resolve(path)
		if err != nil {
			return nil, fmt.Errorf("file.records: %w", err)
		}
		where = abs
		file, err := os.Open(abs)
		if err != nil {
			return nil, fmt.Errorf("file.records: %w", err)
		}
		defer file.Close()
		if rd, err = newReader(file, formatParam, abs); err != nil {
			return nil, fmt.Errorf("file.records %s: %w", abs, err)
		}
	}
	// Skip what earlier polls consumed.
	n := consumed - skip
	for ; skip > 0; skip-- {
		if _, _, err := rd.next(); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("file.records %s: %w", where, err)
		}
		n++
	}
	res := &connectors.PollResult{}
	for len(res.Events) < batch {
		rec, line, err := rd.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("file.records %s: %w", where, err)
		}
		n++
		subject := "line/" + strconv.Itoa(line)
		if key != "" {
			v, ok := rec[key]
			if !ok || v == nil || fmt.Sprint(v) == "" {
				return nil, fmt.Errorf("file.records %s: line %d: record has no field %q (the key)", where, line, key)
			}
			subject = "record/" + fmt.Sprint(v)
		}
		fp := fingerprint(rec)
		res.Events = append(res.Events, connectors.Event{
			ID:          fmt.Sprintf("%s#%d:%s", where, n, fp),
			Subject:     subject,
			Fingerprint: fp,
			Data:        rec,
		})
	}
	if stream != nil {
		stream.consumed = n
	}
	res.Cursor = strconv.Itoa(n)
	res.More = len(res.Events) == batch
	return res, nil
}

// fingerprint is a record's content hash (encoding/json sorts map keys).
func fingerprint(rec map[string]any) string {
	b, _ := json.Marshal(rec)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}
