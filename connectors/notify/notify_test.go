package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/notify"
	"github.com/memberflow/memberflow/internal/smtpsink"
)

func open(t *testing.T, cfg connectors.ConnectionConfig) connectors.Conn {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "alerts"
	}
	c, err := notify.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t *testing.T, action string, conn connectors.Conn, in map[string]any) (*connectors.Result, error) {
	t.Helper()
	a := notify.Spec().Action(action)
	// Inputs arrive as JSON decodes them.
	raw, _ := json.Marshal(in)
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	return a.Run(context.Background(), conn, doc)
}

func TestWebhookIsSignedAndVerifies(t *testing.T) {
	const secret = "whsec-test-1"
	var got struct {
		path, sig string
		body      []byte
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.path, got.sig = r.URL.Path, r.Header.Get(notify.SignatureHeader)
		got.body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	conn := open(t, connectors.ConnectionConfig{BaseURL: srv.URL + "/hooks", Webhook: connectors.Webhook{Secret: secret}})
	res, err := run(t, "webhook", conn, map[string]any{"body": map[string]any{"cause": "trigger_failing", "count": 2}, "path": "/memberflow"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Output.(map[string]any)["status"] != 200 {
		t.Errorf("output %v", res.Output)
	}
	if got.path != "/hooks/memberflow" {
		t.Errorf("path %q", got.path)
	}
	if err := notify.Verify(secret, got.sig, got.body, time.Now(), time.Minute); err != nil {
		t.Fatalf("signature %q does not verify: %v", got.sig, err)
	}
	if err := notify.Verify("another", got.sig, got.body, time.Now(), time.Minute); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Errorf("a wrong secret: %v", err)
	}
	if err := notify.Verify(secret, got.sig, append(got.body, ' '), time.Now(), time.Minute); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Errorf("a changed body: %v", err)
	}
	if err := notify.Verify(secret, got.sig, got.body, time.Now().Add(time.Hour), time.Minute); !errors.Is(err, connectors.ErrStale) {
		t.Errorf("an old delivery: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(got.body, &body); err != nil || body["cause"] != "trigger_failing" {
		t.Errorf("body %s (%v)", got.body, err)
	}
}

func TestWebhookFailuresAreTyped(t *testing.T) {
	for _, tc := range []struct {
		status    int
		retryable bool
	}{{429, true}, {503, true}, {400, false}, {404, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no thanks", tc.status)
		}))
		conn := open(t, connectors.ConnectionConfig{BaseURL: srv.URL})
		_, err := run(t, "webhook", conn, map[string]any{"body": map[string]any{}})
		srv.Close()
		var api *connectors.APIError
		if !errors.As(err, &api) || api.Status != tc.status || connectors.Retryable(err) != tc.retryable {
			t.Errorf("HTTP %d: error %v, retryable %v", tc.status, err, connectors.Retryable(err))
		}
	}
}

func TestSlackMessageHasBlocksAndRunLinks(t *testing.T) {
	var body map[string]any
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		json.NewDecoder(r.Body).Decode(&body)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	conn := open(t, connectors.ConnectionConfig{BaseURL: srv.URL, Auth: connectors.Auth{Type: connectors.AuthBearer, Token: "T000/B000/XXXX"},
		Options: map[string]any{"consoleURL": "https://memberflow.example.org/console/"}})
	_, err := run(t, "slack", conn, map[string]any{"text": "2 runs dead", "recipe": "issue-certificate", "cause": "run_failed", "count": 2, "run_ids": []int{7, 9}, "error": "accredible: HTTP 500"})
	if err != nil {
		t.Fatal(err)
	}
	if path != "/services/T000/B000/XXXX" {
		t.Errorf("posted to %q", path)
	}
	raw, _ := json.Marshal(body)
	for _, want := range []string{`"text":"2 runs dead"`, `*Recipe*\nissue-certificate`, `*Cause*\nrun_failed`, `*Count*\n2`,
		`\u003chttps://memberflow.example.org/console/runs/7|7\u003e`, "accredible: HTTP 500", `"type":"section"`, `"type":"context"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("message lacks %s:\n%s", want, raw)
		}
	}
}

func TestEmailOverSTARTTLSWithLogin(t *testing.T) {
	sink, err := smtpsink.Start(smtpsink.Options{Username: "alerts", Password: "smtp-pass-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, sink.CAPEM, 0o600)
	cfg := connectors.ConnectionConfig{BaseURL: sink.URL(), Auth: connectors.Auth{Type: connectors.AuthAPIKey, Key: "smtp-pass-1"},
		Options: map[string]any{"from": "memberflow@example.org", "username": "alerts", "caFile": ca}}
	in := map[string]any{"to": []string{"ops@example.org", "oncall@example.org"}, "subject": "memberflow: accredible refuses its credentials", "text": "Renew the key.\nRun 12."}
	if _, err := run(t, "email", open(t, cfg), in); err != nil {
		t.Fatal(err)
	}
	msgs, err := sink.Wait(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if !m.TLS || m.User != "alerts" || m.From != "memberflow@example.org" || strings.Join(m.To, ",") != "ops@example.org,oncall@example.org" ||
		m.Subject != in["subject"] || !strings.Contains(m.Text, "Renew the key.") {
		t.Errorf("received %+v", m)
	}

	t.Run("a wrong password is refused for good", func(t *testing.T) {
		bad := cfg
		bad.Auth.Key = "wrong-pass"
		_, err := run(t, "email", open(t, bad), in)
		if err == nil || connectors.Retryable(err) || strings.Contains(err.Error(), "wrong-pass") {
			t.Errorf("error %v (retryable %v)", err, connectors.Retryable(err))
		}
	})
	t.Run("an untrusted certificate is refused", func(t *testing.T) {
		untrusted := cfg
		untrusted.Options = map[string]any{"from": "memberflow@example.org", "username": "alerts"}
		if _, err := run(t, "email", open(t, untrusted), in); err == nil {
			t.Error("sent over TLS to a server whose certificate is not trusted")
		}
	})
	t.Run("a server without STARTTLS is refused", func(t *testing.T) {
		plain, err := smtpsink.Start(smtpsink.Options{NoTLS: true})
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		c := connectors.ConnectionConfig{BaseURL: plain.URL(), Options: map[string]any{"from": "memberflow@example.org"}}
		if _, err := run(t, "email", open(t, c), in); err == nil {
			t.Error("sent in clear text with tls: starttls")
		}
		c.Options = map[string]any{"from": "memberflow@example.org", "tls": "none"}
		if _, err := run(t, "email", open(t, c), in); err != nil {
			t.Errorf("tls: none: %v", err)
		}
		if n := len(plain.Messages()); n != 1 {
			t.Errorf("the clear-text server received %d messages, want 1", n)
		}
	})
}

func TestOpenRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  connectors.ConnectionConfig
		want string
	}{
		{"no url", connectors.ConnectionConfig{}, "base_url is empty"},
		{"ftp", connectors.ConnectionConfig{BaseURL: "ftp://x.example.org"}, "scheme must be http, https or smtp"},
		{"option type", connectors.ConnectionConfig{BaseURL: "smtp://x.example.org", Options: map[string]any{"from": 3}}, "option from must be a string"},
		{"ca file", connectors.ConnectionConfig{BaseURL: "smtp://x.example.org", Options: map[string]any{"caFile": "/nonexistent/ca.pem"}}, "option caFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := notify.Open(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDryRunSendsNothing(t *testing.T) {
	var planned []connectors.PlannedWrite
	conn := open(t, connectors.ConnectionConfig{BaseURL: "smtp://127.0.0.1:1", Options: map[string]any{"from": "a@example.org"},
		DryRun: func(w connectors.PlannedWrite) { planned = append(planned, w) }})
	if _, err := run(t, "email", conn, map[string]any{"to": []string{"b@example.org"}, "subject": "s", "text": "t"}); err != nil {
		t.Fatal(err)
	}
	if len(planned) != 1 || planned[0].Method != "SMTP" {
		t.Errorf("planned %+v", planned)
	}
}
