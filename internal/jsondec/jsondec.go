// Package jsondec decodes JSON into the values encoding/json gives an
// `any` (map[string]any, []any, string, float64, bool, nil) in one pass,
// without json.Unmarshal's separate validity scan and reflection.
// Anything it does not take on the fast path (malformed JSON, a number
// out of range, invalid UTF-8 in a string) goes to json.Unmarshal, so
// results and errors are encoding/json's
// (TestDecoderAgreesWithEncodingJSON, FuzzDecoder).
//
// The values' strings share one copy of the input, and object keys seen
// before are shared across inputs: a record costs a few allocations
// instead of one per field. A value kept keeps that copy alive: decode
// what is used together (a line, an API answer).
package jsondec

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Decoder holds the keys it has seen, to share them between inputs. It
// is not safe for concurrent use; the zero value is ready.
type Decoder struct {
	s    string // the input being decoded
	i    int
	keys map[string]string // keys already seen, reused
	buf  []byte            // scratch for strings with escapes
	// sizes is the size of the last object decoded at each shallow
	// depth: the records of a list are alike, so a map is made the size
	// of the one before it instead of growing to it.
	sizes [8]int
	dup   bool // an object of the input repeats a key
	// listKey names the top-level list whose elements' spans are kept
	// (ObjectAndList); record marks that list while it is decoded.
	listKey string
	record  bool
	spans   [][2]int
}

// maxHint bounds a map's size hint, so that one large object does not
// make the maps after it large.
const maxHint = 64

// maxKeys bounds the keys a decoder remembers: records of one kind share
// their keys, so a few hundred are enough.
const maxKeys = 256

// maxDepth is encoding/json's nesting limit: deeper goes to it, which refuses.
const maxDepth = 10000

// Object decodes data as one JSON object, as json.Unmarshal into a nil
// map[string]any does: nil for `null`, an error for anything else that
// is not an object.
func (d *Decoder) Object(data []byte) (map[string]any, error) {
	if len(data) > 0 && data[0] == '{' {
		if v, ok := d.whole(data); ok {
			return v.(map[string]any), nil
		}
	}
	var rec map[string]any
	err := json.Unmarshal(data, &rec)
	return rec, err
}

// SharedObject decodes data as Object does, but the values' strings
// share data's memory instead of a copy of it: for a caller that keeps
// data (a line it holds anyway) and never changes it while the values
// are used. It saves a copy of every input.
func (d *Decoder) SharedObject(data []byte) (map[string]any, error) {
	if len(data) > 0 && data[0] == '{' {
		if v, ok := d.wholeString(unsafe.String(&data[0], len(data))); ok {
			return v.(map[string]any), nil
		}
	}
	var rec map[string]any
	err := json.Unmarshal(data, &rec)
	return rec, err
}

// SharedFields reads data as SharedObject does, but decodes only the
// values of its top-level keys named in fields, into into (which the
// caller empties first); the others are read and checked, not built.
// partial reports that. When the fast path gives up (an input it leaves
// to encoding/json), the whole object is decoded as SharedObject
// decodes it and returned (partial false), with encoding/json's result
// or error, and what into holds is to be ignored. So a partial result
// is given only for input SharedObject accepts, and holds the fields
// that the whole object holds.
func (d *Decoder) SharedFields(data []byte, fields []string, into map[string]any) (whole map[string]any, partial bool, err error) {
	return d.sharedFields(data, fields, into, nil)
}

// SharedValues is SharedFields with the values of fields put in vals
// (as long as fields) by index instead of a map: vals[i] is the value of
// fields[i], or absent when the object has no such key. What vals holds
// is to be ignored when partial is false.
func (d *Decoder) SharedValues(data []byte, fields []string, absent any, vals []any) (whole map[string]any, partial bool, err error) {
	for i := range vals {
		vals[i] = absent
	}
	return d.sharedFields(data, fields, nil, vals)
}

func (d *Decoder) sharedFields(data []byte, fields []string, into map[string]any, vals []any) (whole map[string]any, partial bool, err error) {
	if len(data) > 0 && data[0] == '{' {
		d.s, d.i, d.dup = unsafe.String(&data[0], len(data)), 0, false
		ok := d.fieldsObject(fields, into, vals)
		d.skipSpace()
		ok = ok && d.i == len(d.s)
		d.s = ""
		if ok {
			return nil, true, nil
		}
	}
	whole, err = d.SharedObject(data)
	return whole, false, err
}

// fieldsObject reads the object at d.i as object(1) does, decoding into
// m (or vals, by index, when m is nil) only the values of fields.
func (d *Decoder) fieldsObject(fields []string, m map[string]any, vals []any) bool {
	d.i++ // {
	d.skipSpace()
	if d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
		return true
	}
	for {
		d.skipSpace()
		if d.i >= len(d.s) || d.s[d.i] != '"' {
			return false
		}
		k, ok := d.str() // compared, not kept: no need to share it
		if !ok {
			return false
		}
		d.skipSpace()
		if d.i >= len(d.s) || d.s[d.i] != ':' {
			return false
		}
		d.i++
		if f := slices.Index(fields, k); f >= 0 {
			var v any
			if v, ok = d.value(1); ok {
				if m == nil {
					vals[f] = v
				} else {
					m[fields[f]] = v
				}
			}
		} else {
			ok = d.skip(1)
		}
		if !ok {
			return false
		}
		d.skipSpace()
		if d.i >= len(d.s) {
			return false
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return true
		default:
			return false
		}
	}
}

// skip reads the value at d.i as value does, building nothing; false
// where value would give up.
func (d *Decoder) skip(depth int) bool {
	d.skipSpace()
	if d.i >= len(d.s) {
		return false
	}
	switch c := d.s[d.i]; c {
	case '{', '[':
		return d.skipComposite(depth + 1)
	case '"':
		_, ok := d.str()
		return ok
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			_, ok := d.float()
			return ok
		}
		return false
	}
}

// skipComposite reads the object or array at d.i as object and array
// do, building nothing.
func (d *Decoder) skipComposite(depth int) bool {
	if depth > maxDepth {
		return false
	}
	obj := d.s[d.i] == '{'
	end := byte(']')
	if obj {
		end = '}'
	}
	d.i++
	d.skipSpace()
	if d.i < len(d.s) && d.s[d.i] == end {
		d.i++
		return true
	}
	for {
		d.skipSpace()
		if obj {
			if d.i >= len(d.s) || d.s[d.i] != '"' {
				return false
			}
			if _, ok := d.str(); !ok {
				return false
			}
			d.skipSpace()
			if d.i >= len(d.s) || d.s[d.i] != ':' {
				return false
			}
			d.i++
		}
		if !d.skip(depth) {
			return false
		}
		d.skipSpace()
		if d.i >= len(d.s) {
			return false
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case end:
			d.i++
			return true
		default:
			return false
		}
	}
}

// Value decodes data as one JSON value, as json.Unmarshal into a nil
// `any` does.
func (d *Decoder) Value(data []byte) (any, error) {
	if v, ok := d.whole(data); ok {
		return v, nil
	}
	var v any
	err := json.Unmarshal(data, &v)
	return v, err
}

// ObjectAndList decodes data as Object does and returns the text of
// each element of the list under key in it (a record of a page as the
// API sent it), slices of data. The texts are nil when there is no such
// list or the decoding left the fast path.
func (d *Decoder) ObjectAndList(data []byte, key string) (map[string]any, [][]byte, error) {
	if len(data) == 0 || data[0] != '{' {
		m, err := d.Object(data)
		return m, nil, err
	}
	d.listKey, d.spans = key, d.spans[:0]
	v, ok := d.whole(data)
	d.listKey, d.record = "", false
	if !ok {
		m, err := d.Object(data) // encoding/json's value or error; no texts
		return m, nil, err
	}
	m := v.(map[string]any)
	list, _ := m[key].([]any)
	if len(list) == 0 || len(list) != len(d.spans) {
		return m, nil, nil
	}
	texts := make([][]byte, len(d.spans))
	for i, sp := range d.spans {
		texts[i] = data[sp[0]:sp[1]:sp[1]]
	}
	return m, texts, nil
}

// Unique decodes data as Value does and reports whether it took the
// fast path and found no object repeating a key: then the value says all
// the input did, for a caller that reads it as json.Unmarshal would read
// the input into a struct. Otherwise (false) such a caller decodes the
// input with json.Unmarshal.
func (d *Decoder) Unique(data []byte) (any, bool) {
	v, ok := d.whole(data)
	return v, ok && !d.dup
}

// Valid reports whether data is one JSON value, as json.Valid does; it
// reads the JSON this package takes on its fast path without
// encoding/json's scanner (a byte at a time through a function value),
// and asks json.Valid about the rest (FuzzValid).
func Valid(data []byte) bool {
	if len(data) == 0 {
		return false
	}
	d := Decoder{s: unsafe.String(&data[0], len(data))}
	ok := d.skip(0)
	d.skipSpace()
	if ok && d.i == len(d.s) {
		return true
	}
	return json.Valid(data)
}

// whole decodes data on the fast path; false when it gives up.
func (d *Decoder) whole(data []byte) (any, bool) {
	return d.wholeString(string(data))
}

// wholeString decodes s on the fast path; the values' strings share it.
func (d *Decoder) wholeString(s string) (any, bool) {
	d.s, d.i, d.dup = s, 0, false
	v, ok := d.value(0)
	d.skipSpace()
	ok = ok && d.i == len(d.s)
	d.s = ""
	return v, ok
}

func (d *Decoder) skipSpace() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// value decodes the value at d.i; false when the fast path gives up.
func (d *Decoder) value(depth int) (any, bool) {
	d.skipSpace()
	if d.i >= len(d.s) {
		return nil, false
	}
	switch c := d.s[d.i]; c {
	case '{':
		return d.object(depth + 1)
	case '[':
		return d.array(depth + 1)
	case '"':
		s, ok := d.str()
		return s, ok
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return d.number()
		}
		return nil, false
	}
}

func (d *Decoder) literal(word string) bool {
	if len(d.s)-d.i >= len(word) && d.s[d.i:d.i+len(word)] == word {
		d.i += len(word)
		return true
	}
	return false
}

func (d *Decoder) object(depth int) (any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	d.i++ // {
	hint := 8
	if depth < len(d.sizes) {
		hint = max(hint, d.sizes[depth])
	}
	m := make(map[string]any, hint)
	d.skipSpace()
	if d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
		return m, true
	}
	for n := 1; ; n++ {
		d.skipSpace()
		if d.i >= len(d.s) || d.s[d.i] != '"' {
			return nil, false
		}
		k, ok := d.key()
		if !ok {
			return nil, false
		}
		d.skipSpace()
		if d.i >= len(d.s) || d.s[d.i] != ':' {
			return nil, false
		}
		d.i++
		d.record = depth == 1 && d.listKey != "" && k == d.listKey
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		m[k] = v
		d.skipSpace()
		if d.i >= len(d.s) {
			return nil, false
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			if depth < len(d.sizes) {
				d.sizes[depth] = min(len(m), maxHint)
			}
			d.dup = d.dup || len(m) < n
			return m, true
		default:
			return nil, false
		}
	}
}

func (d *Decoder) array(depth int) (any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	d.i++ // [
	record := d.record && depth == 2
	if record {
		d.spans = d.spans[:0] // a repeated key: the last list is the one kept
	}
	d.record = false
	a := make([]any, 0)
	d.skipSpace()
	if d.i < len(d.s) && d.s[d.i] == ']' {
		d.i++
		return a, true
	}
	for {
		d.skipSpace()
		start := d.i
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		if record {
			d.spans = append(d.spans, [2]int{start, d.i})
		}
		a = append(a, v)
		d.skipSpace()
		if d.i >= len(d.s) {
			return nil, false
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return a, true
		default:
			return nil, false
		}
	}
}

// key decodes an object key, shared with earlier inputs' equal keys.
func (d *Decoder) key() (string, bool) {
	k, ok := d.str()
	if !ok {
		return "", false
	}
	if d.keys == nil {
		d.keys = make(map[string]string)
	}
	if seen, ok := d.keys[k]; ok {
		return seen, true
	}
	if len(d.keys) < maxKeys {
		// Its own copy: k may share the whole input's memory.
		k = strings.Clone(k)
		d.keys[k] = k
	}
	return k, true
}

// plain marks the bytes a string holds as they are: not a quote, a
// backslash, a control character or part of a multi-byte character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str decodes the string at d.i (its opening quote).
func (d *Decoder) str() (string, bool) {
	d.i++
	start := d.i
	for d.i < len(d.s) {
		for d.i < len(d.s) && plain[d.s[d.i]] {
			d.i++
		}
		if d.i >= len(d.s) {
			break
		}
		c := d.s[d.i]
		switch {
		case c == '"':
			s := d.s[start:d.i]
			d.i++
			return s, true
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(d.s[d.i:])
			if r == utf8.RuneError && size == 1 {
				return "", false // invalid UTF-8: encoding/json's replacement
			}
			d.i += size
		default:
			d.i++
		}
	}
	return "", false
}

// escaped decodes a string with escapes, from start (after its quote);
// d.i is at its first backslash.
func (d *Decoder) escaped(start int) (string, bool) {
	b := append(d.buf[:0], d.s[start:d.i]...)
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			d.buf = b
			return string(b), true
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(d.s[d.i:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			b = append(b, d.s[d.i:d.i+size]...)
			d.i += size
		case c != '\\':
			b = append(b, c)
			d.i++
		default:
			if d.i+1 >= len(d.s) {
				return "", false
			}
			e := d.s[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := d.hex4(d.i)
				if r < 0 {
					return "", false
				}
				d.i += 4
				if utf16.IsSurrogate(r) {
					// A pair when the next escape completes it, as
					// encoding/json reads it; else the replacement rune.
					r2 := rune(-1)
					if d.i+1 < len(d.s) && d.s[d.i] == '\\' && d.s[d.i+1] == 'u' {
						r2 = d.hex4(d.i + 2)
					}
					if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
						d.i += 6
						r = dec
					} else {
						r = unicode.ReplacementChar
					}
				}
				b = utf8.AppendRune(b, r)
			default:
				return "", false
			}
		}
	}
	return "", false
}

// hex4 reads four hex digits at i; -1 when they are not.
func (d *Decoder) hex4(i int) rune {
	if i+4 > len(d.s) {
		return -1
	}
	var r rune
	for _, c := range []byte(d.s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number decodes a JSON number (its grammar checked here) as float64.
func (d *Decoder) number() (any, bool) {
	f, ok := d.float()
	if !ok {
		return nil, false
	}
	if n := int(f); float64(n) == f && n >= 0 && n < len(smallFloats) && !math.Signbit(f) {
		return smallFloats[n], true // boxed once: scores, counts, flags
	}
	return f, true
}

// smallFloats are the whole numbers 0 to 1023 as float64 in interfaces.
var smallFloats = func() (t [1024]any) {
	for i := range t {
		t[i] = float64(i)
	}
	return t
}()

// float decodes a JSON number as float64; false when it is not one, or
// is out of a float64's range.
func (d *Decoder) float() (float64, bool) {
	start := d.i
	if d.s[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.s) && d.s[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return 0, false
	}
	integer := true
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		integer = false
		if digits() == 0 {
			return 0, false
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		integer = false
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return 0, false
		}
	}
	text := d.s[start:d.i]
	if integer && len(text) <= 15 {
		// Exact in a float64: no need for ParseFloat.
		n := 0
		neg := text[0] == '-'
		for _, c := range []byte(text[b2i(neg):]) {
			n = n*10 + int(c-'0')
		}
		if neg {
			if n == 0 {
				return math.Copysign(0, -1), true // as ParseFloat reads "-0"
			}
			n = -n
		}
		return float64(n), true
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
