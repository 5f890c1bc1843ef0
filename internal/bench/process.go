package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SandboxProcess is a `memberflow sandbox` running in a child process.
type SandboxProcess struct {
	URL  string
	cmd  *exec.Cmd
	dir  string
	errs *tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit error, once done
}

// SandboxSpec says how to start the sandbox process.
type SandboxSpec struct {
	// Executable is the memberflow binary (os.Executable() in the CLI).
	Executable string
	Members    int
	Seed       int64
	// Ready bounds the wait for the sandbox to seed and listen; default
	// one minute plus a second per 10,000 members.
	Ready time.Duration
}

// StartSandbox runs `memberflow sandbox` with rate limits off on a free
// loopback port and waits until it listens (its --ready-file).
func StartSandbox(ctx context.Context, spec SandboxSpec) (*SandboxProcess, error) {
	if spec.Executable == "" {
		return nil, errors.New("bench: no memberflow executable to start the sandbox with")
	}
	if spec.Members < 0 {
		return nil, fmt.Errorf("bench: members must not be negative, got %d", spec.Members)
	}
	if spec.Ready <= 0 {
		spec.Ready = time.Minute + time.Duration(spec.Members/10000)*time.Second
	}
	dir, err := os.MkdirTemp("", "memberflow-bench-sandbox-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	ready := filepath.Join(dir, "url")
	p := &SandboxProcess{dir: dir, errs: &tailBuffer{max: 4 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command(spec.Executable, "sandbox", "--addr", "127.0.0.1:0", "--members", strconv.Itoa(spec.Members),
		"--seed", strconv.FormatInt(spec.Seed, 10), "--rate-limit", "off", "--log-level", "warn", "--ready-file", ready)
	p.cmd.Stderr = p.errs
	p.cmd.SysProcAttr = childAttr()
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: starting the sandbox (%s): %w", spec.Executable, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()

	deadline := time.NewTimer(spec.Ready)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(ready); err == nil {
			p.URL = strings.TrimSpace(string(b))
			return p, nil
		}
		select {
		case <-tick.C:
		case <-p.done:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: the sandbox exited before it listened (%v): %s", p.err, p.errs.String())
		case <-deadline.C:
			p.Close()
			return nil, fmt.Errorf("bench: the sandbox did not listen within %s: %s", spec.Ready, p.errs.String())
		case <-ctx.Done():
			p.Close()
			return nil, ctx.Err()
		}
	}
}

// CPU is the CPU time the sandbox process used so far.
func (p *SandboxProcess) CPU() (time.Duration, error) { return ProcCPU(p.cmd.Process.Pid) }

// Close stops the sandbox and removes its folder. The sandbox holds
// nothing worth a graceful stop, and a graceful one waits five seconds for
// the connections the runner opened and never used: it is killed.
func (p *SandboxProcess) Close() error {
	defer os.RemoveAll(p.dir)
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("bench: stopping the sandbox: %w", err)
	}
	<-p.done
	return nil
}

// tailBuffer keeps the last max bytes written: a child's stderr, for
// error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(t.buf.String())
	if s == "" {
		return "(no output)"
	}
	return s
}
