package memberships

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/memberflow/memberflow/internal/jsondec"
)

// unmarshalPage is how a page was read before readPage: the answer as
// raw fields, the records and the count each by json.Unmarshal.
func unmarshalPage(body []byte, items string) (page, bool, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return page{}, false, nil
	}
	var p page
	if err := json.Unmarshal(raw[items], &p.Items); err != nil {
		return page{}, true, err
	}
	_ = json.Unmarshal(raw["count"], &p.Count)
	return p, true, nil
}

var pageCases = []struct {
	body  string
	want  page
	fails bool
}{
	{body: `{"users":[{"id":"u1","n":1},{"id":"u2"}],"count":2}`, want: page{Items: []map[string]any{{"id": "u1", "n": 1.0}, {"id": "u2"}}, Count: 2}},
	{body: `{"users":[],"count":0}`, want: page{Items: []map[string]any{}}},
	{body: `{"users":null,"count":7}`, want: page{Count: 7}},
	{body: `{"users":[null,{"id":"u"}]}`, want: page{Items: []map[string]any{nil, {"id": "u"}}}},
	{body: `{"users":[{"id":"u"}],"count":"3"}`, want: page{Items: []map[string]any{{"id": "u"}}}},
	{body: `{"users":[{"id":"u"}],"count":2.5}`, want: page{Items: []map[string]any{{"id": "u"}}}},
	{body: `{"users":[],"count":1e300}`, want: page{Items: []map[string]any{}}},
	{body: `{"count":2}`, fails: true},
	{body: `{"users":{"id":"u"}}`, fails: true},
	{body: `{"users":"u"}`, fails: true},
	{body: `{"users":[1]}`, fails: true},
	{body: `{"users":[{"id":"u"},[]]}`, fails: true},
}

func TestReadPage(t *testing.T) {
	for _, tc := range pageCases {
		var d jsondec.Decoder
		answer, err := d.Object([]byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		got, err := readPage(answer, "users")
		if (err != nil) != tc.fails {
			t.Errorf("%s: error %v, want failure %v", tc.body, err, tc.fails)
			continue
		}
		if !tc.fails && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: read %#v, want %#v", tc.body, got, tc.want)
		}
	}
}

// FuzzReadPage holds readPage to what json.Unmarshal read: the same
// records, a failure where it failed, and its count where it read one
// (readPage also reads a whole number written 2.0 or 2e0, which it did
// not).
func FuzzReadPage(f *testing.F) {
	for _, tc := range pageCases {
		f.Add(tc.body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		want, decoded, wantErr := unmarshalPage([]byte(body), "users")
		if !decoded {
			return // not a JSON object: the client's decoding error
		}
		var d jsondec.Decoder
		answer, err := d.Object([]byte(body))
		if err != nil {
			t.Fatalf("%q: jsondec failed where encoding/json did not: %v", body, err)
		}
		got, err := readPage(answer, "users")
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: error %v, encoding/json %v", body, err, wantErr)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(got.Items, want.Items) {
			t.Fatalf("%q: records %#v, encoding/json %#v", body, got.Items, want.Items)
		}
		if want.Count != 0 && got.Count != want.Count {
			t.Fatalf("%q: count %d, encoding/json %d", body, got.Count, want.Count)
		}
	})
}
