package files

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/jsondec"
)

func recordsTrigger() *connectors.TriggerSpec {
	return &connectors.TriggerSpec{
		Operation: connectors.Operation{
			Name:    "records",
			Effect:  "records read",
			Summary: "Read a JSON Lines or CSV file (or stdin) as one event per record, resuming where the last run stopped.",
			Description: "The cursor is the byte offset after the last record consumed, so a poll seeks to it instead of re-reading the file: a re-run continues after the last record it read, and records appended later are read next. " +
				"A file replaced, truncated or rewritten under the cursor is read again from its start; records at the same place with the same content keep their event IDs, so they do not run twice. " +
				"A file is a batch input: it is always read from its first record, whatever `start` says. " +
				"A record that cannot be read stops the trigger at it: the records before it run, and every later poll fails on it, naming its line, until it is fixed.",
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

// recordReader yields records with the line they start on, and says how
// far it has read: the byte offset and line count after the last record.
type recordReader interface {
	// next returns a record, the line it starts on and, for JSON Lines,
	// its text (a copy); io.EOF at the end.
	next() (rec map[string]any, line int, raw []byte, err error)
	pos() (offset int64, lines int)
	// decodeLater makes next check a JSON record and decode only the
	// key's field and fields of it (PollRequest.DecodeLater): the record
	// it returns is then valid until the next call, and undecoded says so
	// of the last record returned (Event.Undecoded).
	decodeLater(key string, fields []string, later bool)
	undecoded() bool
	// keyValue and fieldValues are the key's value and fields' values
	// (connectors.NoField where missing) of the last record, when it is
	// undecoded; fieldValues is valid until the next call of next.
	keyValue() (any, bool)
	fieldValues() []any
}

type jsonlReader struct {
	r      *bufio.Reader
	offset int64
	lines  int
	long   []byte // a line longer than r's buffer, assembled
	dec    jsondec.Decoder
	// copies holds the copies of the lines next returned: one allocation
	// for many lines, each line a slice of it that stays valid once the
	// next copies go to a new one.
	copies []byte
	// later is set by decodeLater: next decodes only want of each
	// record, into vals by index (no map); part says the last record was
	// read so.
	later  bool
	want   []string // decodeLater's fields, then the key when not among them
	fields int      // how many of want are decodeLater's fields
	keyAt  int      // the key's index in want; -1 without a key
	vals   []any
	part   bool
}

func (j *jsonlReader) decodeLater(key string, fields []string, later bool) {
	j.later, j.fields, j.keyAt = later, len(fields), -1
	j.want = append([]string(nil), fields...)
	if key != "" {
		if j.keyAt = slices.Index(j.want, key); j.keyAt < 0 {
			j.keyAt, j.want = len(j.want), append(j.want, key)
		}
	}
	j.vals = make([]any, len(j.want))
}

func (j *jsonlReader) undecoded() bool { return j.part }

func (j *jsonlReader) keyValue() (any, bool) {
	if j.keyAt < 0 {
		return nil, false
	}
	v := j.vals[j.keyAt]
	return v, v != connectors.NoField
}

func (j *jsonlReader) fieldValues() []any { return j.vals[:j.fields] }

// lineCopies is the size of the blocks copies come in.
const lineCopies = 64 << 10

// keep returns a copy of text that stays valid.
func (j *jsonlReader) keep(text []byte) []byte {
	if len(text) > lineCopies/4 {
		return bytes.Clone(text)
	}
	if cap(j.copies)-len(j.copies) < len(text) {
		j.copies = make([]byte, 0, lineCopies)
	}
	start := len(j.copies)
	j.copies = append(j.copies, text...)
	return j.copies[start:len(j.copies):len(j.copies)]
}

// readLine returns the next line, newline included; it is valid until the
// next call.
func (j *jsonlReader) readLine() ([]byte, error) {
	text, err := j.r.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return text, err
	}
	j.long = append(j.long[:0], text...)
	for err == bufio.ErrBufferFull {
		text, err = j.r.ReadSlice('\n')
		j.long = append(j.long, text...)
	}
	return j.long, err
}

func (j *jsonlReader) next() (map[string]any, int, []byte, error) {
	for {
		text, err := j.readLine()
		if len(text) == 0 && err != nil {
			return nil, 0, nil, err
		}
		if err != nil && err != io.EOF {
			return nil, 0, nil, err
		}
		j.lines++
		line := j.lines
		j.offset += int64(len(text))
		text = bytes.TrimSpace(text)
		if len(text) == 0 {
			continue
		}
		// The record's strings share its kept copy, which nothing
		// changes: one copy of the line, not two.
		raw := j.keep(text)
		var rec map[string]any
		if j.later {
			rec, j.part, err = j.dec.SharedValues(raw, j.want, connectors.NoField, j.vals)
		} else {
			j.part = false
			rec, err = j.dec.SharedObject(raw)
		}
		if err != nil || (rec == nil && !j.part) {
			if err == nil {
				err = errors.New("want a JSON object")
			}
			return nil, line, nil, fmt.Errorf("line %d: not a JSON object: %w", line, err)
		}
		return rec, line, raw, nil
	}
}

func (j *jsonlReader) pos() (int64, int) { return j.offset, j.lines }

type csvReader struct {
	r      *csv.Reader
	header []string
	// base is where r started reading (a resumed poll seeks past the
	// header); r's offsets and lines count from there.
	baseOffset int64
	baseLines  int
	lines      int
}

func newCSV(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	return cr
}

// readHeader reads the header row; nil at the end of an empty file.
func readHeader(cr *csv.Reader) ([]string, error) {
	header, err := cr.Read()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	header = append([]string(nil), header...)
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if h == "" || seen[h] {
			return nil, fmt.Errorf("line 1: column %d: header names must be non-empty and unique, got %q", i+1, h)
		}
		seen[h] = true
		header[i] = h
	}
	return header, nil
}

func newCSVReader(r io.Reader) (*csvReader, error) {
	cr := newCSV(r)
	header, err := readHeader(cr)
	if err != nil {
		return nil, err
	}
	c := &csvReader{r: cr, header: header}
	if header != nil {
		c.lines, _ = cr.FieldPos(len(header) - 1)
	}
	return c, nil
}

func (c *csvReader) next() (map[string]any, int, []byte, error) {
	if c.header == nil {
		return nil, 0, nil, io.EOF
	}
	row, err := c.r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, c.baseLines + pe.Line, nil, fmt.Errorf("line %d: %w", c.baseLines+pe.Line, pe.Err)
		}
		return nil, 0, nil, err
	}
	line, _ := c.r.FieldPos(0)
	last, _ := c.r.FieldPos(len(row) - 1)
	// A quoted field may span lines: the record ends where its last field does.
	c.lines = last + strings.Count(row[len(row)-1], "\n")
	rec := make(map[string]any, len(row))
	for i, v := range row {
		rec[c.header[i]] = v
	}
	return rec, c.baseLines + line, nil, nil
}

func (c *csvReader) decodeLater(string, []string, bool) {}
func (c *csvReader) undecoded() bool                    { return false }
func (c *csvReader) keyValue() (any, bool)              { return nil, false }
func (c *csvReader) fieldValues() []any                 { return nil }

func (c *csvReader) pos() (int64, int) {
	return c.baseOffset + c.r.InputOffset(), c.baseLines + c.lines
}

// streamReader is stdin, read once: its position survives between polls.
type streamReader struct {
	rd       recordReader
	consumed int
	// bad is the error of the record that failed: stdin cannot read it
	// again, so every later poll fails with it rather than go on past it.
	bad error
}

// format decides the file's format; head returns its first bytes.
func format(param, path string, head func() []byte) (string, error) {
	if param != "" && param != "auto" {
		if param != "jsonl" && param != "csv" {
			return "", fmt.Errorf("format must be jsonl, csv or auto, got %q", param)
		}
		return param, nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return "csv", nil
	case ".jsonl", ".ndjson", ".json":
		return "jsonl", nil
	}
	for _, c := range head() {
		switch c {
		case ' ', '\n', '\r', '\t', 0xEF, 0xBB, 0xBF:
			continue
		case '{':
			return "jsonl", nil
		}
		return "csv", nil
	}
	return "csv", nil
}

const readBuffer = 64 << 10

// newStreamReader reads a stream (stdin) from its start.
func newStreamReader(r io.Reader, formatParam string) (recordReader, error) {
	br := bufio.NewReaderSize(r, readBuffer)
	f, err := format(formatParam, "", func() []byte { b, _ := br.Peek(4096); return b })
	if err != nil {
		return nil, err
	}
	if f == "jsonl" {
		return &jsonlReader{r: br}, nil
	}
	return newCSVReader(br)
}

// fileBuffers recycles the read buffers of file polls: each poll reads
// through one, and what it returns holds copies (a poll of 1,000 records
// is about as large as the buffer).
var fileBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBuffer) }}

// newFileReader reads file from the cursor's position: one seek, whatever
// the file's size. br is the buffer it reads through (fileBuffers), not
// to be used by the caller before it is done with the reader.
func newFileReader(file *os.File, br *bufio.Reader, cur cursor, formatParam, path string) (recordReader, error) {
	f, err := format(formatParam, path, func() []byte {
		b := make([]byte, 4096)
		n, _ := file.ReadAt(b, 0)
		return b[:n]
	})
	if err != nil {
		return nil, err
	}
	if f == "csv" && cur.Offset == 0 {
		br.Reset(file)
		return newCSVReader(br)
	}
	var header []string
	if f == "csv" {
		// The header is the file's first row, read apart.
		if header, err = readHeader(newCSV(io.NewSectionReader(file, 0, cur.Offset))); err != nil {
			return nil, err
		}
	}
	if _, err := file.Seek(cur.Offset, io.SeekStart); err != nil {
		return nil, fmt.Errorf("seeking to the cursor: %w", err)
	}
	br.Reset(file)
	if f == "jsonl" {
		return &jsonlReader{r: br, offset: cur.Offset, lines: cur.Line}, nil
	}
	cr := newCSV(br)
	cr.FieldsPerRecord = len(header)
	return &csvReader{r: cr, header: header, baseOffset: cur.Offset, baseLines: cur.Line}, nil
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
	cur, err := parseCursor(req.Cursor)
	if err != nil {
		return nil, fmt.Errorf("file.records: %w", err)
	}
	var (
		rd     recordReader
		where  string
		stream *streamReader
		file   *os.File
		skip   int // records to pass over: a legacy cursor's count
	)
	// stdin's cursor is a count that never re-reads a record (a record
	// is stored only with a cursor past it), so its IDs need not match an
	// earlier version's: its lines are hashed as a fresh file's.
	hashing := cur.Lines
	if path == "-" {
		hashing = lineXXH64
		where = "stdin"
		f.stdinMu.Lock()
		defer f.stdinMu.Unlock()
		if f.stdin == nil {
			r, err := newStreamReader(f.Stdin, formatParam)
			if err != nil {
				return nil, fmt.Errorf("file.records stdin: %w", err)
			}
			f.stdin = &streamReader{rd: r}
		}
		stream = f.stdin
		if stream.bad != nil {
			return nil, fmt.Errorf("file.records stdin: %w", stream.bad)
		}
		if cur.Records < stream.consumed {
			return nil, fmt.Errorf("file.records stdin: cursor %d is behind the %d records already read, and stdin cannot rewind", cur.Records, stream.consumed)
		}
		rd, skip = stream.rd, cur.Records-stream.consumed
		cur.Records = stream.consumed
	} else {
		abs, err := f.resolve(path)
		if err != nil {
			return nil, fmt.Errorf("file.records: %w", err)
		}
		where = abs
		if file, err = os.Open(abs); err != nil {
			return nil, fmt.Errorf("file.records: %w", err)
		}
		defer file.Close()
		fi, err := file.Stat()
		if err != nil {
			return nil, fmt.Errorf("file.records %s: %w", abs, err)
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("file.records %s: is a directory; path names the file to read", abs)
		}
		if cur.legacy {
			skip, cur = cur.Records, cursor{Lines: cur.Lines}
		} else if why, err := cur.changed(file, fi); err != nil {
			return nil, fmt.Errorf("file.records %s: %w", abs, err)
		} else if why != "" {
			// Records already seen at the same place with the same content
			// keep their IDs, so the store runs only what is new.
			f.log.Warn("file changed under its cursor: reading it again from the start", "path", abs, "why", why, "records_before", cur.Records)
			cur = cursor{Lines: cur.Lines} // the same fingerprints: the same IDs
		}
		cur.File, hashing = fileID(fi), cur.Lines
		br := fileBuffers.Get().(*bufio.Reader)
		defer func() { br.Reset(nil); fileBuffers.Put(br) }()
		if rd, err = newFileReader(file, br, cur, formatParam, abs); err != nil {
			return nil, fmt.Errorf("file.records %s: %w", abs, err)
		}
	}
	// The engine may decode records itself, as far as it needs: then
	// only the key is decoded here.
	rd.decodeLater(key, req.Fields, req.DecodeLater)
	// The values of req.Fields of the page's undecoded records, decoded
	// with their check: one slice for the page, a part of it an event.
	var fields []any
	if req.DecodeLater && len(req.Fields) > 0 {
		fields = make([]any, 0, min(batch, 1024)*len(req.Fields))
	}
	n := cur.Records
	for ; skip > 0; skip-- {
		if _, _, _, err := rd.next(); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("file.records %s: %w", where, err)
		}
		n++
	}
	res := &connectors.PollResult{Events: make([]connectors.Event, 0, min(batch, 1024))}
	// A record that cannot be read ends the page before it: the records
	// before it are the page, and the next poll fails on it (a file is
	// read again from it; stdin keeps the error). Nothing before it waits
	// for a fix, and nothing after it runs first.
	var bad error
	var idBuf []byte
	for len(res.Events) < batch {
		beforeOffset, beforeLine := rd.pos()
		rec, line, raw, err := rd.next()
		if err == io.EOF {
			break
		}
		var subject string
		switch {
		case err != nil:
			bad = err
		case key == "":
			subject = "line/" + strconv.Itoa(line)
		default:
			v, ok := rec[key]
			if rd.undecoded() {
				v, ok = rd.keyValue()
			}
			name, isString := v.(string)
			if !isString && ok && v != nil {
				name = fmt.Sprint(v)
			}
			if name == "" {
				bad = fmt.Errorf("line %d: record has no field %q (the key)", line, key)
			}
			subject = "record/" + name
		}
		if bad != nil {
			if stream != nil {
				stream.bad = bad
			}
			if len(res.Events) == 0 {
				return nil, fmt.Errorf("file.records %s: %w", where, bad)
			}
			cur.Offset, cur.Line = beforeOffset, beforeLine
			break
		}
		n++
		// The ID is where#n:fingerprint, built in one string whose tail
		// is the fingerprint.
		idBuf = strconv.AppendInt(append(append(idBuf[:0], where...), '#'), int64(n), 10)
		idBuf = appendFingerprint(append(idBuf, ':'), hashing, rec, raw)
		id := string(idBuf)
		fp := id[len(id)-fingerprintLen:]
		ev := connectors.Event{ID: id, Subject: subject, Fingerprint: fp, Data: rec, Raw: raw}
		if rd.undecoded() {
			ev.Data, ev.Undecoded = nil, true // only its key and fields were decoded
			if fields != nil {
				start := len(fields)
				fields = append(fields, rd.fieldValues()...)
				ev.Fields = fields[start:len(fields):len(fields)]
			}
		}
		res.Events = append(res.Events, ev)
	}
	cur.Records = n
	if bad == nil {
		cur.Offset, cur.Line = rd.pos()
	}
	if stream != nil {
		stream.consumed = n
		res.Cursor = strconv.Itoa(n)
	} else {
		if cur.Hash, err = regionHash(file, cur.Offset); cur.Offset > 0 && err != nil {
			return nil, fmt.Errorf("file.records %s: %w", where, err)
		}
		res.Cursor = cur.String()
	}
	res.More = len(res.Events) == batch || bad != nil
	return res, nil
}

// lineHash is the hash of a record's fingerprint, 64 bits in hex. The
// fingerprint tells a record rewritten at the same place (a new event)
// from one read again (the same event): it needs no resistance to a
// crafted collision, only speed, since every line read is hashed.
type lineHash uint8

const (
	// lineXXH64 is XXH64, about 30 times faster than SHA-256 here (SHA-256
	// of every line was 4 % of the file job's CPU).
	lineXXH64 lineHash = iota
	// lineSHA256 is the first 8 bytes of SHA-256, the hash of versions
	// before v3 cursors: a file they were reading keeps it (its cursor
	// says so), so that records read again keep their stored IDs.
	lineSHA256
)

// fingerprint is a record's content hash: of its line for JSON Lines (no
// second encoding), else of its JSON (encoding/json sorts map keys).
func fingerprint(h lineHash, rec map[string]any, raw []byte) string {
	return string(appendFingerprint(nil, h, rec, raw))
}

// appendFingerprint appends fingerprint(h, rec, raw) to b.
func appendFingerprint(b []byte, h lineHash, rec map[string]any, raw []byte) []byte {
	if raw == nil {
		raw, _ = json.Marshal(rec)
	}
	if h == lineSHA256 {
		sum := sha256.Sum256(raw)
		return hex.AppendEncode(b, sum[:8])
	}
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], xxhash.Sum64(raw))
	return hex.AppendEncode(b, sum[:])
}

// fingerprintLen is a fingerprint's length: 8 bytes in hex.
const fingerprintLen = 16
