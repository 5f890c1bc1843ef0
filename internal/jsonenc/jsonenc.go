// Package jsonenc encodes the values that expressions, JSON decoding and
// connectors produce (map[string]any, []any, string, float64, int, int64,
// bool, nil) exactly as encoding/json does, without reflection. It is
// for hot paths (the journal, JSON Lines output); anything else goes to
// encoding/json (TestAppendAgreesWithMarshal, FuzzAppend).
package jsonenc

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Append appends v encoded as json.Marshal encodes it; false when v holds
// a value this package leaves to encoding/json (a struct, a typed map, a
// json.RawMessage, NaN or an infinity), with b then partly written.
func Append(b []byte, v any) ([]byte, bool) { return appendValue(b, v, 0) }

// Marshal is json.Marshal, faster for the values Append takes. It
// encodes into a recycled buffer and returns a copy of exactly the
// encoding's size: one allocation, none of it grown and left behind.
func Marshal(v any) ([]byte, error) {
	bp := scratch.Get().(*[]byte)
	b, err := AppendMarshal((*bp)[:0], v)
	var out []byte
	if err == nil {
		out = append([]byte(nil), b...)
	}
	if cap(b) <= maxScratch {
		*bp = b[:0]
		scratch.Put(bp)
	}
	return out, err
}

// scratch recycles Marshal's buffers; one that grew past maxScratch
// (a large value) is left to the collector.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxScratch = 64 << 10

// AppendMarshal appends v to b as json.Marshal encodes it, through
// encoding/json for the values Append leaves to it. On an error b comes
// back as it was.
func AppendMarshal(b []byte, v any) ([]byte, error) {
	start := len(b)
	if out, ok := Append(b, v); ok {
		return out, nil
	}
	enc, err := json.Marshal(v)
	if err != nil {
		return b[:start], err
	}
	return append(b[:start], enc...), nil
}

// maxEncodeDepth bounds appendJSON's recursion; deeper values go to
// encoding/json.
const maxEncodeDepth = 1000

func appendValue(b []byte, v any, depth int) ([]byte, bool) {
	if depth > maxEncodeDepth {
		return b, false
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case string:
		return appendString(b, x), true
	case bool:
		return strconv.AppendBool(b, x), true
	case float64:
		return appendFloat(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10), true
	case int64:
		return strconv.AppendInt(b, x, 10), true
	case map[string]any:
		if x == nil {
			return append(b, "null"...), true
		}
		// The entries sorted by key, so that each value is read once: a
		// mapping's objects are small, sorted in a stack array by
		// insertion.
		var stack smallMap
		var kvs []entry
		if len(x) <= len(stack) {
			kvs = stack[:0]
			for k, v := range x {
				kvs = append(kvs, entry{k, v})
				for j := len(kvs) - 1; j > 0 && kvs[j].k < kvs[j-1].k; j-- {
					kvs[j], kvs[j-1] = kvs[j-1], kvs[j]
				}
			}
		} else {
			kvs = make([]entry, 0, len(x))
			for k, v := range x {
				kvs = append(kvs, entry{k, v})
			}
			slices.SortFunc(kvs, func(a, b entry) int { return strings.Compare(a.k, b.k) })
		}
		b = append(b, '{')
		for i, kv := range kvs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, kv.k)
			b = append(b, ':')
			var ok bool
			if b, ok = appendValue(b, kv.v, depth+1); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	case []any:
		if x == nil {
			return append(b, "null"...), true
		}
		b = append(b, '[')
		for i, item := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendValue(b, item, depth+1); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	}
	return b, false
}

// entry is a map's entry; smallMap holds the entries of a map small
// enough to sort on the stack.
type entry struct {
	k string
	v any
}

type smallMap [16]entry

// appendFloat is encoding/json's float64 form: like %g, with
// ECMAScript's exponent cut-offs and no padded exponent.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e15 && !(f == 0 && math.Signbit(f)) {
		// An integer: the shortest form is its digits.
		return strconv.AppendInt(b, int64(f), 10), true
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

const hexDigits = "0123456789abcdef"

// safe marks the ASCII bytes a string is written with as they are.
var safe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString quotes s as encoding/json does (HTML characters,
// U+2028 and U+2029 escaped, invalid UTF-8 replaced).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		for i < len(s) && safe[s[i]] {
			i++
		}
		if i >= len(s) {
			break
		}
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
