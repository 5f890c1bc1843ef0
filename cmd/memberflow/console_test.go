package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/recipes"
)

func TestConsoleAccessNeedsATokenBeyondLoopback(t *testing.T) {
	secrets := recipes.SecretMap{"TOK": "t0k", "BASIC": "ops:pw", "BAD": "nocolon"}
	cases := []struct {
		name   string
		addr   string
		access consoleAccess
		ok     bool
	}{
		{"loopback v4", "127.0.0.1:8080", consoleAccess{}, true},
		{"loopback v6", "[::1]:8080", consoleAccess{}, true},
		{"localhost", "localhost:8080", consoleAccess{}, true},
		{"every address", "0.0.0.0:8080", consoleAccess{}, false},
		{"all interfaces, port only", ":8080", consoleAccess{}, false},
		{"a LAN address", "192.168.1.5:8080", consoleAccess{}, false},
		{"with a token", "0.0.0.0:8080", consoleAccess{token: "x"}, true},
		{"with a token secret", "0.0.0.0:8080", consoleAccess{tokenSecret: "TOK"}, true},
		{"with a missing token secret", "127.0.0.1:8080", consoleAccess{tokenSecret: "NOPE"}, false},
		{"with basic auth", "0.0.0.0:8080", consoleAccess{basicSecret: "BASIC"}, true},
		{"with a malformed basic secret", "0.0.0.0:8080", consoleAccess{basicSecret: "BAD"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := tc.access.options(tc.addr, secrets)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok %v", err, tc.ok)
			}
			if tc.access.tokenSecret == "TOK" && o.Token != "t0k" {
				t.Errorf("token %q", o.Token)
			}
			if tc.access.basicSecret == "BASIC" && (o.BasicUser != "ops" || o.BasicPassword != "pw") {
				t.Errorf("basic %q %q", o.BasicUser, o.BasicPassword)
			}
		})
	}
}

func TestConsoleUsage(t *testing.T) {
	for _, args := range [][]string{
		{"console", "--addr", "nope"},
		{"console", "--addr", "0.0.0.0:0", "--store", "x.db"},
		{"console", "--store", "/does/not/exist.db"},
	} {
		if code, _, errs := cli(t, args...); code != exitUsage || errs == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}

// consolePage serves `memberflow console` with o on a free loopback port
// and returns the bodies of the pages (paths under /console/), each
// answered 200; the console is stopped before it returns.
func consolePage(t *testing.T, o consoleOptions, paths ...string) []string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- runConsole(ctx, o, stdio{in: strings.NewReader(""), out: io.Discard, err: &errb}) }()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("memberflow console: exit %d", code)
		}
	}()
	var bodies []string
	for _, p := range paths {
		var res *http.Response
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			select {
			case code := <-done:
				done <- code
				t.Fatalf("memberflow console exited %d before serving:\n%s", code, errb.String())
			default:
			}
			if res, err = http.Get("http://" + o.addr + "/console/" + p); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: HTTP %d\n%s", p, res.StatusCode, body)
		}
		bodies = append(bodies, string(body))
	}
	return bodies
}
