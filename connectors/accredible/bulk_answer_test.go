package accredible

import (
	"encoding/json"
	"reflect"
	"testing"
)

var bulkAnswers = []string{
	`{"results":[{"credential":{"id":1,"name":"A","recipient":{"email":"a@example.org"}},"error":null},{"credential":null,"error":{"code":"invalid","message":"bad","details":[{"property":"email","reason":"is invalid"},null]}}]}`,
	`{"results":[{"credential":{"id":2},"error":{"code":"insufficient_credits","message":null,"details":null}}],"other":1}`,
	`{"results":[]}`, `{"results":null}`, `{}`, `null`, `{"results":[null]}`,
	`{"Results":[{"credential":{"id":3}}]}`, `{"results":[{"Credential":{"id":3}}]}`, `{"results":[{"error":{"Code":"x"}}]}`,
	`{"results":[{"credential":{"id":1},"credential":{"name":"merged"}}]}`, `{"results":[{"credential":{"id":1}}],"results":[{"error":null}]}`,
	`{"results":{}}`, `{"results":[1]}`, `{"results":[{"credential":"x"}]}`, `{"results":[{"error":{"code":7}}]}`,
	`{"results":[{"error":{"details":[{"reason":false}]}}]}`, `{"results":[{"error":{"details":{}}}]}`, `{"results":[{"error":"x"}]}`,
	`{"results":[{"credential":{"id":1234,"approve":false},"errors":{"code":"insufficient_credits","message":"The credential was created but not published."}}]}`,
	`{"results":[{"errors":{"code":"credential_invalid","message":"The credential is not valid","details":[{"property":"recipient.email","message":"has already been taken."}]}}]}`,
	`{"results":[{"error":{"code":"a"},"errors":{"code":"b"}}]}`, `{"results":[{"Errors":{"code":"x"}}]}`, `{"results":[{"errors":"x"}]}`,
	`[]`, `"s"`, `{"results":[`, "{\"results\":[{\"credential\":{\"n\":\"\xff\"}}]}",
}

// TestBulkAnswerDecodesAsUnmarshal: the same answer and the same error
// as json.Unmarshal into the struct, for answers shaped as documented
// and others.
func TestBulkAnswerDecodesAsUnmarshal(t *testing.T) {
	for _, body := range bulkAnswers {
		sameAsUnmarshal(t, body)
	}
}

func FuzzBulkAnswer(f *testing.F) {
	for _, body := range bulkAnswers {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		sameAsUnmarshal(t, body)
	})
}

func sameAsUnmarshal(t *testing.T, body string) {
	t.Helper()
	var want, got bulkAnswer
	wantErr := json.Unmarshal([]byte(body), &want)
	err := got.decode([]byte(body))
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("%q: error %v, json.Unmarshal %v", body, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decoded %#v, json.Unmarshal %#v", body, got, want)
	}
}
