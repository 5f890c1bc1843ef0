package sandbox

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestRecording keeps what clients sent to the services while on, in
// arrival order, with the body the service still read; not the sandbox's
// own endpoints, not the transport's per-connection headers, nothing
// before the start or after the stop.
func TestRecording(t *testing.T) {
	_, ts := newTestServer(t, Options{Members: 3, Seed: 7})
	do(t, "GET", ts.URL+"/alpha/items/0", "") // before: not kept
	if status, _ := do(t, "POST", ts.URL+"/_sandbox/recording", ""); status != 200 {
		t.Fatalf("start: HTTP %d", status)
	}
	req, _ := http.NewRequest("POST", ts.URL+"/beta/items?x=1&y=2", strings.NewReader(`{"name":"n"}`))
	req.Header.Set("Authorization", "Bearer demo")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 && res.StatusCode != 200 {
		t.Fatalf("the service did not read the recorded body: HTTP %d", res.StatusCode)
	}
	do(t, "GET", ts.URL+"/alpha/items/1", "")
	do(t, "GET", ts.URL+"/_sandbox/stats", "")
	status, body := do(t, "DELETE", ts.URL+"/_sandbox/recording", "")
	if status != 200 {
		t.Fatalf("stop: HTTP %d %s", status, body)
	}
	do(t, "GET", ts.URL+"/alpha/items/2", "") // after: not kept
	var got RecordingAnswer
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Requests) != 2 || got.Lost != 0 {
		t.Fatalf("recorded %+v", got)
	}
	post, get := got.Requests[0], got.Requests[1]
	if post.Method != "POST" || post.Target != "/beta/items?x=1&y=2" || string(post.Body) != `{"name":"n"}` ||
		post.Header.Get("Authorization") != "Bearer demo" || post.Header.Get("Content-Type") != "application/json" || post.Header.Get("Content-Length") != "" {
		t.Errorf("first request: %+v", post)
	}
	if get.Method != "GET" || get.Target != "/alpha/items/1" || len(get.Body) != 0 {
		t.Errorf("second request: %+v", get)
	}
	// A second stop answers nothing more.
	if _, body := do(t, "DELETE", ts.URL+"/_sandbox/recording", ""); !strings.Contains(body, `"requests":[]`) {
		t.Errorf("a second stop: %s", body)
	}
}
