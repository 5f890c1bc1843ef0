package files

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// guardWindow is how many bytes at each end of the consumed part of a file
// its cursor hashes: enough to tell a replaced or rewritten file from one
// that only grew, at a cost that does not grow with the file.
const guardWindow = 4096

// cursor is where a file was read up to. Offset makes a poll seek instead
// of re-reading what earlier polls consumed; File and Hash guard it: a
// file replaced (another inode), truncated (shorter than Offset) or
// rewritten (other bytes before Offset) is read again from its start.
type cursor struct {
	Offset  int64  // bytes consumed
	Records int    // records consumed: numbers the events' IDs
	Line    int    // lines consumed: numbers the events' subjects
	File    uint64 // the file's identity (inode) when known, else 0
	Hash    string // regionHash of the consumed part
	// Lines is how the lines read are fingerprinted for their event IDs:
	// lineSHA256 for a cursor an earlier version wrote (v2, or a bare
	// count), so that a record read again keeps the ID it was stored
	// under; lineXXH64 for a file first read by this version (v3).
	Lines lineHash

	// legacy is a cursor of the first format, a bare record count: the
	// next poll skips that many records once, then writes this format.
	legacy bool
}

// The cursor's versions: the same fields, and the hash of the lines'
// fingerprints (cursor.Lines) by version.
const (
	cursorSHA256 = "v2"
	cursorXXH64  = "v3"
)

func (c cursor) String() string {
	version := cursorXXH64
	if c.Lines == lineSHA256 {
		version = cursorSHA256
	}
	return fmt.Sprintf("%s:%d:%d:%d:%d:%s", version, c.Offset, c.Records, c.Line, c.File, c.Hash)
}

func parseCursor(s string) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return cursor{}, fmt.Errorf("cursor %q is not a record count", s)
		}
		return cursor{Records: n, legacy: true, Lines: lineSHA256}, nil
	}
	parts := strings.Split(s, ":")
	bad := fmt.Errorf("cursor %q is not a file position (want %s:offset:records:line:file:hash)", s, cursorXXH64)
	if len(parts) != 6 {
		return cursor{}, bad
	}
	var c cursor
	switch parts[0] {
	case cursorSHA256:
		c.Lines = lineSHA256
	case cursorXXH64:
		c.Lines = lineXXH64
	default:
		return cursor{}, bad
	}
	var err error
	if c.Offset, err = strconv.ParseInt(parts[1], 10, 64); err != nil || c.Offset < 0 {
		return cursor{}, bad
	}
	if c.Records, err = strconv.Atoi(parts[2]); err != nil || c.Records < 0 {
		return cursor{}, bad
	}
	if c.Line, err = strconv.Atoi(parts[3]); err != nil || c.Line < 0 {
		return cursor{}, bad
	}
	if c.File, err = strconv.ParseUint(parts[4], 10, 64); err != nil {
		return cursor{}, bad
	}
	c.Hash = parts[5]
	return c, nil
}

// changed says why the file no longer continues what the cursor read, or
// "" when it does (it may have grown).
func (c cursor) changed(file *os.File, fi os.FileInfo) (string, error) {
	if c.Offset == 0 {
		return "", nil
	}
	if id := fileID(fi); c.File != 0 && id != 0 && id != c.File {
		return "replaced (another file at the path)", nil
	}
	if fi.Size() < c.Offset {
		return fmt.Sprintf("truncated (%d bytes, the cursor is at %d)", fi.Size(), c.Offset), nil
	}
	h, err := regionHash(file, c.Offset)
	if err != nil {
		return "", err
	}
	if h != c.Hash {
		return "rewritten (its bytes before the cursor changed)", nil
	}
	return "", nil
}

// regionHash hashes the first and the last guardWindow bytes of
// file[0:end]: two bounded reads, whatever the file's size.
func regionHash(file io.ReaderAt, end int64) (string, error) {
	h := sha256.New()
	buf := make([]byte, min(end, guardWindow))
	if _, err := file.ReadAt(buf, 0); err != nil {
		return "", fmt.Errorf("hashing the consumed part: %w", err)
	}
	h.Write(buf)
	if _, err := file.ReadAt(buf, end-int64(len(buf))); err != nil {
		return "", fmt.Errorf("hashing the consumed part: %w", err)
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}
