package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runAsCLIEnv makes the test binary behave as memberflow itself, so that
// `memberflow bench` can start its sandbox by re-executing "itself".
const runAsCLIEnv = "MEMBERFLOW_TEST_RUN_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(runAsCLIEnv) == "1" {
		os.Exit(runCLI(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
	}
	os.Exit(m.Run())
}

// TestBenchSmallBackfill runs the benchmark as users do: the sandbox in a
// child process, then a backfill, and checks the figures agree.
func TestBenchSmallBackfill(t *testing.T) {
	t.Setenv(runAsCLIEnv, "1") // inherited by the sandbox process only
	code, out, errs := cli(t, "bench", "--members", "300", "--concurrency", "8", "--seed", "5", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	var res struct {
		SandboxMembers     int     `json:"sandbox_members"`
		Members            int64   `json:"members"`
		Eligible           int64   `json:"eligible"`
		Skipped            int64   `json:"skipped"`
		Certificates       int64   `json:"certificates"`
		MemberUpdates      int64   `json:"member_updates"`
		CredentialsCreated int64   `json:"credentials_created"`
		Duplicates         int     `json:"duplicates"`
		Dead               int64   `json:"dead"`
		MembersPerSecond   float64 `json:"members_per_second"`
		P50                int64   `json:"p50_ns"`
		P99                int64   `json:"p99_ns"`
		PeakRSS            int64   `json:"peak_rss_bytes"`
		SandboxCPU         int64   `json:"sandbox_cpu_ns"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	checks := []struct {
		name      string
		got, want int64
	}{
		{"members", res.Members, 300},
		{"sandbox members", int64(res.SandboxMembers), 300},
		{"eligible + skipped", res.Eligible + res.Skipped, 300},
		{"certificates = eligible", res.Certificates, res.Eligible},
		{"sandbox credentials = eligible", res.CredentialsCreated, res.Eligible},
		{"member updates = eligible", res.MemberUpdates, res.Eligible},
		{"duplicates", int64(res.Duplicates), 0},
		{"dead", res.Dead, 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	if res.Eligible == 0 || res.MembersPerSecond <= 0 || res.P50 <= 0 || res.P99 < res.P50 || res.PeakRSS <= 0 {
		t.Errorf("figures missing or zero: %+v", res)
	}
	// The sandbox ran in its own process, so its CPU time was read there.
	if res.SandboxCPU < 0 {
		t.Errorf("sandbox CPU %d", res.SandboxCPU)
	}
}

func TestBenchAgainstARunningSandbox(t *testing.T) {
	base := startTestSandbox(t, 120)
	store := filepath.Join(t.TempDir(), "bench.db")
	code, out, errs := cli(t, "bench", "--sandbox-url", base+"/", "--store", store, "--concurrency", "4", "--ceiling")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"members processed            120 (sandbox: 120)", "sandbox duplicates           0 certificates; 0 new over all services", "members/s", "peak RSS (runner)", "p50 ",
		"requests per member", "ceiling (minimal client)", "% of the ceiling's members/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(store); err != nil {
		t.Errorf("--store was not used: %v", err)
	}
	// The same store again: refused, the backfill needs a fresh one.
	code, _, errs = cli(t, "bench", "--sandbox-url", base, "--store", store)
	if code != exitFail || !strings.Contains(errs, "needs a fresh store") {
		t.Errorf("second bench on one store: exit %d, %s", code, errs)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no members", []string{"--members", "0"}, "--members must be at least 1"},
		{"no workers", []string{"--concurrency", "0"}, "--concurrency must be at least 1"},
		{"format", []string{"--format", "yaml"}, "--format must be text or json"},
		{"log level", []string{"--log-level", "loud"}, "--log-level must be"},
		{"arguments", []string{"recipes/"}, "the benchmark's recipe is built in"},
		{"ceiling of the file job", []string{"--pipeline", "--ceiling"}, "--ceiling compares the sandbox backfill"},
		{"unknown flag", []string{"--memebrs", "3"}, "flag provided but not defined"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := cli(t, append([]string{"bench"}, c.args...)...)
			if code != exitUsage || !strings.Contains(errs, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, errs, exitUsage, c.want)
			}
		})
	}
}
