package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestChaos is issue 9's acceptance proof: `memberflow sandbox` with 5%
// of the API requests answered 500 and 5% dropped (half of those after
// the write was applied), `memberflow run` and `run --once` processes on
// one SQLite store SIGKILLed at random moments, sometimes two at once,
// then `run --once` until a pass writes nothing. The three APIs' final
// state must equal a clean run's on the same seed, with no duplicate
// record, no duplicate QR line and no dead letter.
//
// CI runs 150 members and 12 kills. By hand:
//
//	MEMBERFLOW_CHAOS_MEMBERS=2000 go test -run TestChaos -v -timeout 30m ./internal/e2e/
//
// MEMBERFLOW_CHAOS_KILLS sets the number of kills, MEMBERFLOW_CHAOS_SEED
// the moments (the test logs the one it used).
func TestChaos(t *testing.T) {
	bin := memberflowBinary(t)
	t.Parallel() // waits on the APIs' rate limits, not the CPU
	n := envInt(t, "MEMBERFLOW_CHAOS_MEMBERS", 150)
	kills := envInt(t, "MEMBERFLOW_CHAOS_KILLS", 12)
	seed := int64(envInt(t, "MEMBERFLOW_CHAOS_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("%d members, %d kills, kill moments from MEMBERFLOW_CHAOS_SEED=%d", n, kills, seed)
	ex, err := filepath.Abs(examples)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(120+n/4)*time.Second)
	defer cancel()
	const sandboxSeed = "23"

	// The clean run: the same seed, no faults, no kills.
	cleanBase := startSandboxProcess(ctx, t, bin, "--members", strconv.Itoa(n), "--seed", sandboxSeed)
	clean := newChaosStore(t, bin, ex, cleanBase)
	cleanAPI := &api{t: t, base: cleanBase, http: checkerClient()}
	cleanSeeded := cleanAPI.stats().Totals.Duplicates
	cleanStart := time.Now()
	clean.untilQuiet(ctx)
	t.Logf("clean run: %s", time.Since(cleanStart).Round(time.Millisecond))
	want := readOutcome(cleanAPI, cleanSeeded)

	// The chaos run.
	base := startSandboxProcess(ctx, t, bin, "--members", strconv.Itoa(n), "--seed", sandboxSeed,
		"--fail-rate", "0.05", "--drop-rate", "0.05")
	a := &api{t: t, base: base, http: checkerClient()}
	seededDups := a.stats().Totals.Duplicates
	seededPayments := map[string]bool{}
	for _, p := range a.allPayments() {
		seededPayments[p.ID] = true
	}
	chaos := newChaosStore(t, bin, ex, base)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	// A full pass over n members takes about n/30 s here: the kills land
	// anywhere from the start to well past the middle of one.
	longest := time.Duration(max(3000, n*20)) * time.Millisecond
	killed, started := 0, 0
	for killed < kills {
		procs := []*chaosRunner{chaos.start(ctx, rng.IntN(2) == 0)}
		if rng.IntN(3) == 0 {
			// Sometimes a second runner on the same store.
			procs = append(procs, chaos.start(ctx, rng.IntN(2) == 0))
		}
		started += len(procs)
		wait := time.Duration(50+rng.Int64N(int64(longest/time.Millisecond))) * time.Millisecond
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			t.Fatalf("out of time after %d kills", killed)
		}
		for _, p := range procs {
			select {
			case <-p.done:
			default:
				p.cmd.Process.Signal(syscall.SIGKILL)
				<-p.done
			}
			switch {
			case isKilled(p.err):
				killed++
				t.Logf("kill %d: %s after %s", killed, p.mode(), wait)
			case p.err != nil:
				// A --once that ended before its kill must have ended well.
				t.Errorf("%s: %v\n%s", p.mode(), p.err, p.tail())
			}
		}
	}
	t.Logf("%d processes started, %d SIGKILLed", started, killed)
	passes := chaos.untilQuiet(ctx)
	t.Logf("quiet after %d more run --once", passes)

	if dl := chaos.deadLetters(ctx); len(dl) != 0 {
		t.Errorf("%d dead letters, want 0: %s", len(dl), dl)
	}
	got := readOutcome(a, seededDups)
	compareOutcomes(t, got, want)
	checkMoneyMirroredOnce(t, a, seededPayments)
	checkQRLines(t, a, chaos.dir, clean.dir)
	t.Logf("final objects %v; %d duplicates", got.objects, got.duplicates)
}

// checkQRLines: one QR line per booked attendee, none twice, as many as
// in the clean run.
func checkQRLines(t *testing.T, a *api, dir, cleanDir string) {
	t.Helper()
	lines := readQRFile(t, filepath.Join(dir, "out", "attendee-qr-codes.jsonl"))
	cleanLines := readQRFile(t, filepath.Join(cleanDir, "out", "attendee-qr-codes.jsonl"))
	for id, n := range lines {
		if n != 1 {
			t.Errorf("attendee %d has %d QR lines, want 1", id, n)
		}
	}
	for _, at := range a.attendees() {
		if at.Status == "BOOKED" && lines[at.AttendeeID] == 0 {
			t.Errorf("booked attendee %d has no QR line", at.AttendeeID)
		}
	}
	if len(lines) != len(cleanLines) {
		t.Errorf("QR lines for %d attendees, the clean run %d", len(lines), len(cleanLines))
	}
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a number", name, v)
	}
	return n
}

func isKilled(err error) bool {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// startSandboxProcess runs `memberflow sandbox` with args (rate limits
// off) until the test ends and returns its URL.
func startSandboxProcess(ctx context.Context, t *testing.T, bin string, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(bin, append([]string{"sandbox", "--addr", "127.0.0.1:0", "--ready-file", ready,
		"--rate-limit", "off", "--log-level", "warn"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	for {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		if ctx.Err() != nil {
			t.Fatalf("the sandbox did not start: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// chaosStore is one store, its working directory (the examples' files
// connection writes to ./out) and the runner processes started on it.
type chaosStore struct {
	t             *testing.T
	bin, ex, base string
	dir           string
	started       int
}

func newChaosStore(t *testing.T, bin, ex, base string) *chaosStore {
	return &chaosStore{t: t, bin: bin, ex: ex, base: base, dir: t.TempDir()}
}

func (s *chaosStore) command(ctx context.Context, once bool, extra ...string) *exec.Cmd {
	args := []string{"run"}
	if once {
		args = append(args, "--once")
	}
	args = append(args, "--sandbox-url", s.base, "--store", filepath.Join(s.dir, "memberflow.db"),
		"--connections", filepath.Join(s.ex, "connections.sandbox.yaml"))
	args = append(append(args, extra...), s.ex)
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Dir = s.dir
	return cmd
}

// chaosRunner is a runner process; done is closed once it has ended, with err.
type chaosRunner struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// start starts a runner whose output goes to a log file.
func (s *chaosStore) start(ctx context.Context, once bool) *chaosRunner {
	s.t.Helper()
	s.started++
	r := &chaosRunner{cmd: s.command(ctx, once), log: filepath.Join(s.dir, fmt.Sprintf("runner-%02d.log", s.started)), done: make(chan struct{})}
	f, err := os.Create(r.log)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	r.cmd.Stdout, r.cmd.Stderr = f, f
	if err := r.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	return r
}

func (r *chaosRunner) mode() string {
	if slices.Contains(r.cmd.Args, "--once") {
		return "run --once"
	}
	return "run"
}

func (r *chaosRunner) tail() string {
	b, _ := os.ReadFile(r.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// untilQuiet runs `run --once` until one writes nothing; each must exit 0
// (1 means a run was dead-lettered). It returns how many it took.
func (s *chaosStore) untilQuiet(ctx context.Context) int {
	s.t.Helper()
	for i := 1; i <= maxPasses; i++ {
		out, err := s.command(ctx, true).CombinedOutput()
		if err != nil {
			s.t.Fatalf("run --once #%d: %v\n%s", i, err, out)
		}
		if writesIn(s.t, out) == 0 {
			return i
		}
	}
	s.t.Fatalf("still writing after %d run --once", maxPasses)
	return 0
}

var writeCount = regexp.MustCompile(`\s[\w-]+\.[\w-]+=(\d+)`)

// writesIn adds up the WRITES column of run --once's summary table.
func writesIn(t *testing.T, out []byte) int {
	t.Helper()
	total, table := 0, false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "RECIPE ") && strings.HasSuffix(line, "WRITES") {
			table = true
			continue
		}
		if table && (strings.TrimSpace(line) == "" || strings.Contains(line, "run(s)")) {
			return total
		}
		if table {
			for _, m := range writeCount.FindAllStringSubmatch(line, -1) {
				n, _ := strconv.Atoi(m[1])
				total += n
			}
		}
	}
	t.Fatalf("no summary table in run --once's output:\n%s", out)
	return 0
}

// deadLetters lists the store's dead letters as `memberflow dlq list`
// prints them.
func (s *chaosStore) deadLetters(ctx context.Context) []json.RawMessage {
	s.t.Helper()
	cmd := exec.CommandContext(ctx, s.bin, "dlq", "list", "--store", filepath.Join(s.dir, "memberflow.db"), "--format", "json")
	cmd.Dir = s.dir
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("dlq list: %v", err)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(out, &list); err != nil {
		s.t.Fatalf("dlq list --format json: %v: %s", err, out)
	}
	return list
}
