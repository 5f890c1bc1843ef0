package apiclient

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// TestDecodeIsUnmarshal checks that decode leaves out as json.Unmarshal
// would, for the targets it takes a fast path for and the ones it leaves
// to encoding/json: nil or filled, maps, interfaces, structs.
func TestDecodeIsUnmarshal(t *testing.T) {
	type page struct {
		Users []map[string]any `json:"users"`
		Count int              `json:"count"`
	}
	bodies := []string{
		`{"users":[{"id":"u1","n":1.5}],"count":1}`,
		`{"a":"x"}`, `[1,2]`, `"s"`, `null`, `{"a":`, `{"s":"bad \xff"}`, ` {"b":true} `,
	}
	targets := map[string]func() any{
		"nil any":           func() any { return new(any) },
		"any holding a map": func() any { var v any = map[string]any{"kept": 1.0}; return &v },
		"any holding a pointer": func() any {
			m := map[string]any{"kept": 1.0}
			var v any = &m
			return &v
		},
		"nil map":    func() any { return new(map[string]any) },
		"filled map": func() any { m := map[string]any{"kept": 1.0}; return &m },
		"struct":     func() any { return new(page) },
	}
	for name, target := range targets {
		for _, body := range bodies {
			want, got := target(), target()
			wantErr := json.Unmarshal([]byte(body), want)
			err := decode([]byte(body), got)
			if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
				t.Errorf("%s, %q: error %v, json.Unmarshal %v", name, body, err, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s, %q: decoded %#v, json.Unmarshal %#v", name, body, got, want)
			}
		}
	}
}

// TestReadBody reads answers of every length around the buffer's, with
// and without a Content-Length, and one cut short.
func TestReadBody(t *testing.T) {
	for _, n := range []int{0, 1, 511, 512, 513, 4096, 100_000} {
		body := strings.Repeat("x", n)
		for _, announced := range []int64{int64(n), int64(n / 2), -1} { // n/2: more than announced
			res := &http.Response{Body: io.NopCloser(strings.NewReader(body)), ContentLength: announced}
			got, err := readBody(res)
			if err != nil || string(got) != body {
				t.Errorf("%d bytes, Content-Length %d: read %d bytes, %v", n, announced, len(got), err)
			}
		}
	}
	for _, announced := range []int64{10, -1} {
		res := &http.Response{Body: io.NopCloser(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(io.ErrUnexpectedEOF))), ContentLength: announced}
		if got, err := readBody(res); !errors.Is(err, io.ErrUnexpectedEOF) || string(got) != "abc" {
			t.Errorf("cut short, Content-Length %d: read %q, %v; want abc and the error", announced, got, err)
		}
	}
}

// BenchmarkReadBody reads a 58 kB answer (a Memberships search page)
// sent without a Content-Length, as the sandbox sends its pages.
func BenchmarkReadBody(b *testing.B) {
	body := strings.Repeat("x", 58_000)
	b.Run("io.ReadAll", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = io.ReadAll(io.LimitReader(strings.NewReader(body), maxBody))
		}
	})
	b.Run("readBody", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = readBody(&http.Response{Body: io.NopCloser(strings.NewReader(body)), ContentLength: -1})
		}
	})
}
