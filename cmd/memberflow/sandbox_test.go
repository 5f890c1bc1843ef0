package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/internal/sandbox"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

func TestParseSandboxRateLimit(t *testing.T) {
	tests := []struct {
		in      string
		want    *sandboxkit.Limit
		wantErr string
	}{
		{"", nil, ""},
		{"off", &sandboxkit.Limit{}, ""},
		{"0", &sandboxkit.Limit{}, ""},
		{"50", &sandboxkit.Limit{Requests: 50, Per: time.Second}, ""},
		{"100/10s", &sandboxkit.Limit{Requests: 100, Per: 10 * time.Second}, ""},
		{"2000/5m", &sandboxkit.Limit{Requests: 2000, Per: 5 * time.Minute}, ""},
		{"fast", nil, `"fast": want off, N or N/DURATION`},
		{"-3", nil, `want off, N or N/DURATION`},
		{"10/soon", nil, `"soon" is not a positive duration`},
		{"10/-1s", nil, `is not a positive duration`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSandboxRateLimit(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSandboxCommandServesUntilCancelled(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- serveSandbox(ctx, "127.0.0.1:0", sandbox.Options{Members: 20, Seed: 4}, stdio{out: pw, err: &errb})
		pw.Close()
	}()
	var banner strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		banner.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	text := banner.String()
	for _, want := range []string{"memberflow sandbox at http://127.0.0.1:", "(seed 4, 20 members", "rate limits: as documented", "memberships  http://", "accredible  http://", "accelevents  http://", "/_sandbox/stats"} {
		if !strings.Contains(text, want) {
			t.Errorf("banner lacks %q:\n%s", want, text)
		}
	}
	// Every printed curl example works as printed.
	curl := regexp.MustCompile(`curl ((?:-H '[^']+' )+)(?:-d '([^']+)' )?'([^']+)'`)
	header := regexp.MustCompile(`-H '([^:]+): ([^']+)'`)
	matches := curl.FindAllStringSubmatch(text, -1)
	if len(matches) < 3 {
		t.Fatalf("found %d curl examples in:\n%s", len(matches), text)
	}
	for _, m := range matches {
		method, body := "GET", io.Reader(nil)
		if m[2] != "" {
			method, body = "POST", strings.NewReader(m[2])
		}
		req, _ := http.NewRequest(method, m[3], body)
		for _, h := range header.FindAllStringSubmatch(m[1], -1) {
			req.Header.Set(h[1], h[2])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", m[0], err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s: HTTP %d", m[0], res.StatusCode)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop after cancel")
	}
}

func TestSandboxCommandRejectsBadOptions(t *testing.T) {
	var out, errb bytes.Buffer
	code := serveSandbox(context.Background(), "127.0.0.1:0", sandbox.Options{Faults: sandboxkit.Faults{FailRate: 2}}, stdio{out: &out, err: &errb})
	if code != exitUsage || !strings.Contains(errb.String(), "memberflow sandbox: fail rate must be between 0 and 1, got 2") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}
