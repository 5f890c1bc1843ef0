package bench

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var cpuShare = regexp.MustCompile(`\(\d+% of \d+ cores\)`)

func TestParseVmHWM(t *testing.T) {
	cases := []struct {
		name, status string
		want         int64
		err          string
	}{
		{"linux status", "Name:\tmf\nVmPeak:\t  900 kB\nVmHWM:\t   84512 kB\nVmRSS:\t 80000 kB\n", 84512 * 1024, ""},
		{"no line", "Name:\tmf\nVmRSS:\t 80000 kB\n", 0, "no VmHWM line"},
		{"other unit", "VmHWM:\t 12 MB\n", 0, "want a number of kB"},
		{"not a number", "VmHWM:\t 1x2 kB\n", 0, "invalid syntax"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseVmHWM(strings.NewReader(c.status))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %d, %v; want %d", got, err, c.want)
			}
		})
	}
}

func TestPeakRSSOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	n, err := PeakRSS()
	if err != nil || n < 1<<20 {
		t.Fatalf("PeakRSS = %d, %v; want at least a megabyte", n, err)
	}
}

func TestParseStatCPU(t *testing.T) {
	cases := []struct {
		name, stat string
		want       time.Duration
		err        string
	}{
		{"plain", "4242 (mf) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 0 0", 3 * time.Second, ""},
		{"name with spaces and parens", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0", 30 * time.Millisecond, ""},
		{"no name", "4242 mf S 1", 0, "no command name"},
		{"short", "4242 (mf) S 1 2 3", 0, "want at least 13"},
		{"bad number", "7 (mf) R 1 7 7 0 -1 0 0 0 0 0 x 2 0", 0, "CPU time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseStatCPU(c.stat)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %s, %v; want %s", got, err, c.want)
			}
		})
	}
}

func TestStartSandboxFailures(t *testing.T) {
	cases := []struct {
		name string
		spec SandboxSpec
		want string
	}{
		{"no executable", SandboxSpec{}, "no memberflow executable"},
		{"missing executable", SandboxSpec{Executable: "/nonexistent/memberflow"}, "starting the sandbox"},
		{"exits at once", SandboxSpec{Executable: "/bin/false"}, "exited before it listened"},
		{"never ready", SandboxSpec{Executable: sleeper(t), Ready: 200 * time.Millisecond}, "did not listen within"},
		{"negative members", SandboxSpec{Executable: "/bin/true", Members: -1}, "must not be negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.spec.Executable == "/bin/false" || c.spec.Executable == "/bin/true" {
				if _, err := os.Stat(c.spec.Executable); err != nil {
					t.Skipf("%s: %v", c.spec.Executable, err)
				}
			}
			p, err := StartSandbox(context.Background(), c.spec)
			if err == nil {
				p.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

// sleeper is a program that ignores its arguments and never listens.
func sleeper(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "sleeper")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	tb := &tailBuffer{max: 8}
	tb.Write([]byte("0123456789"))
	tb.Write([]byte("ab"))
	if got := tb.String(); got != "456789ab" {
		t.Errorf("tail = %q, want %q", got, "456789ab")
	}
	if got := (&tailBuffer{max: 8}).String(); got != "(no output)" {
		t.Errorf("empty tail = %q", got)
	}
}
