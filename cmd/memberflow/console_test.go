package main

import (
	"testing"

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
