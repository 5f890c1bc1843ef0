package files

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// agree checks that the line decoder gives what json.Unmarshal gives:
// the same value or the same error.
func agree(t *testing.T, d *lineDecoder, line string) {
	t.Helper()
	var want map[string]any
	wantErr := json.Unmarshal([]byte(line), &want)
	got, err := d.decodeObject([]byte(line))
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("%q: error %v, encoding/json %v", line, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decoded %#v, encoding/json %#v", line, got, want)
	}
	// -0 and 0 are DeepEqual; the sign must agree too.
	if f, ok := want["n"].(float64); ok && math.Signbit(f) != math.Signbit(got["n"].(float64)) {
		t.Fatalf("%q: sign of %v differs from encoding/json's %v", line, got["n"], f)
	}
}

var decoderCases = []string{
	`{}`,
	` {} `,
	`{"id":"m1","score":70,"eligible":true,"x":null,"f":false}`,
	`{"a":{"b":{"c":[1,2,{"d":"e"}]}},"e":[],"o":{}}`,
	`{"n":-0}`, `{"n":0}`, `{"n":-12}`, `{"n":1.5e3}`, `{"n":1E-2}`, `{"n":123456789012345}`,
	`{"n":1234567890123456789}`, `{"n":-9007199254740993}`, `{"n":1e400}`, `{"n":01}`, `{"n":1.}`,
	`{"n":-}`, `{"n":.5}`, `{"n":1e}`, `{"n":+1}`,
	`{"s":"caf\u00e9 \"q\" \\ \/ \b\f\n\r\t"}`,
	`{"s":"\ud83d\ude00 pair"}`, `{"s":"\ud83d alone"}`, `{"s":"\ude00\ud83d"}`, `{"s":"\ud83d\u0041"}`,
	`{"s":"\uZZZZ"}`, `{"s":"\x"}`, `{"s":"tab	inside"}`,
	"{\"s\":\"bad \xff utf8\"}", "{\"s\":\"esc \\n bad \xc3 utf8\"}", `{"s":"日本語","k":"ключ"}`,
	`{"dup":1,"dup":2}`,
	`{"a":1,}`, `{"a" 1}`, `{"a":1`, `{"a":[1,]}`, `{"a":tru}`, `{"a":nul}`, `{a:1}`,
	`{"a":1} x`, `{"a":1}{"b":2}`, `null`, `[]`, `"s"`, `1`, ``, `{"s":"unterminated`,
	`{ "sp" : [ 1 , 2 ] , "t" : true }`,
	`{"` + strings.Repeat(`a`, 300) + `":1}`,
	`{"d":` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `}`,
}

func TestLineDecoderAgreesWithEncodingJSON(t *testing.T) {
	d := &lineDecoder{}
	for _, line := range decoderCases {
		agree(t, d, line)
	}
	// Keys are remembered across lines and values do not leak between them.
	agree(t, d, `{"id":"m1","email":"a@example.org"}`)
	agree(t, d, `{"id":"m2","email":"b@example.org"}`)
}

func TestLineDecoderRemembersBoundedKeys(t *testing.T) {
	d := &lineDecoder{}
	for i := 0; i < 2*maxKeys; i++ {
		agree(t, d, `{"k`+strings.Repeat("x", i)+`":1}`)
	}
	if len(d.keys) > maxKeys {
		t.Errorf("%d keys remembered, want at most %d", len(d.keys), maxKeys)
	}
}

func FuzzLineDecoder(f *testing.F) {
	for _, line := range decoderCases {
		f.Add(line)
	}
	d := &lineDecoder{}
	f.Fuzz(func(t *testing.T, line string) {
		agree(t, d, line)
	})
}

func BenchmarkDecodeLine(b *testing.B) {
	line := []byte(`{"id":"m00000001","firstName":"Grace","lastName":"Hopper","email":"Grace.Hopper.1@Example.org","eligible":true,"score":83,"eligibilityDate":"2026-03-14","planId":"premium"}`)
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var rec map[string]any
			if err := json.Unmarshal(line, &rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lineDecoder", func(b *testing.B) {
		b.ReportAllocs()
		d := &lineDecoder{}
		for b.Loop() {
			if _, err := d.decodeObject(line); err != nil {
				b.Fatal(err)
			}
		}
	})
}
