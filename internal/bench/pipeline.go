package bench

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/recipes"
)

//go:embed pipeline.yaml
var pipelineYAML []byte

// PipelineRecipeYAML returns the recipe of the file job.
func PipelineRecipeYAML() []byte { return append([]byte(nil), pipelineYAML...) }

// MinScore is the score the file job keeps from (its `when`).
const MinScore = 70

// Member is one generated member line.
type Member struct {
	ID              string `json:"id"`
	FirstName       string `json:"firstName"`
	LastName        string `json:"lastName"`
	Email           string `json:"email"`
	Eligible        bool   `json:"eligible"`
	Score           int    `json:"score"`
	EligibilityDate string `json:"eligibilityDate"`
	PlanID          string `json:"planId"`
}

// Kept says whether the file job keeps the member.
func (m Member) Kept() bool { return m.Eligible && m.Score >= MinScore }

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "John"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Backus"}
	plans      = []string{"basic", "standard", "premium"}
)

// GenerateMembers writes n member JSON lines to w, the same for the same
// seed, and returns how many the file job keeps (about 18 %: 60 % are
// eligible and 30 % of those score at least 70).
func GenerateMembers(w io.Writer, n int, seed uint64) (kept int, err error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	for i := 1; i <= n; i++ {
		first, last := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
		m := Member{
			ID:              fmt.Sprintf("m%08d", i),
			FirstName:       first,
			LastName:        last,
			Email:           fmt.Sprintf("%s.%s.%d@Example.org", first, last, i),
			Eligible:        rng.IntN(10) < 6,
			Score:           rng.IntN(100),
			EligibilityDate: time.Date(2026, time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02"),
			PlanID:          plans[rng.IntN(len(plans))],
		}
		if m.Kept() {
			kept++
		}
		if err := enc.Encode(m); err != nil {
			return 0, err
		}
	}
	return kept, bw.Flush()
}

// PipelineOptions configure one run of the file job.
type PipelineOptions struct {
	// Lines is the number of member lines generated; default 100,000.
	Lines int
	// Seed of the generated members; default 1.
	Seed uint64
	// Batch is the trigger's records per poll; default 1,000.
	Batch int
	// Concurrency is the runner's worker count; default 32.
	Concurrency int
	// Dir holds the input, the output and (unless Store is set) the
	// store; empty means a temporary folder, removed afterwards.
	Dir string
	// Store is the SQLite file; empty means one in Dir. An existing file
	// is refused.
	Store                  string
	CPUProfile, MemProfile io.Writer
	Logger                 hclog.Logger
	Registry               *connectors.Registry
}

// PipelineResult is what one run of the file job measured.
type PipelineResult struct {
	Lines    int   `json:"lines"`
	Expected int   `json:"expected"` // lines the job must keep
	Written  int   `json:"written"`  // lines in the output file
	Kept     int64 `json:"kept"`     // runs that succeeded
	Skipped  int64 `json:"skipped"`  // rejected by `when`
	Dead     int64 `json:"dead"`
	Batch    int   `json:"batch"`

	Concurrency  int           `json:"concurrency"`
	Elapsed      time.Duration `json:"elapsed_ns"`
	EventsPerSec float64       `json:"events_per_second"`
	CPU          time.Duration `json:"cpu_ns"`
	// CPUPerEvent is CPU time over lines read.
	CPUPerEvent time.Duration `json:"cpu_per_event_ns"`
	PeakRSS     int64         `json:"peak_rss_bytes"`
	// AllocPerEvent is the Go heap allocated during the job over lines
	// read, and GCCycles the collections it caused: unlike CPU seconds,
	// both read the same on a busy machine, so they compare builds.
	AllocPerEvent int64  `json:"alloc_per_event_bytes"`
	GCCycles      uint32 `json:"gc_cycles"`
	// StoreBytes is the store's size after the job (database and WAL).
	StoreBytes int64 `json:"store_bytes"`
	// Writer is the store's one writer's work during the job.
	Writer WriterFigures `json:"writer"`
	// Duplicates are output lines naming a member twice; must be 0.
	Duplicates int `json:"duplicates"`
}

// RunPipeline generates the member lines and runs the file job through
// the durable store, timing the job alone (not the generation).
func RunPipeline(ctx context.Context, opts PipelineOptions) (*PipelineResult, error) {
	if opts.Lines <= 0 {
		opts.Lines = 100_000
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Batch <= 0 {
		opts.Batch = 1000
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 32
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Registry == nil {
		opts.Registry = connectors.Default
	}
	log := opts.Logger.Named("bench")
	dir := opts.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "memberflow-pipeline-")
		if err != nil {
			return nil, fmt.Errorf("bench: a temporary folder: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: the folder for --dir: %w", err)
	}
	storePath := opts.Store
	if storePath == "" {
		storePath = filepath.Join(dir, "pipeline.db")
	}
	if _, err := os.Stat(storePath); err == nil {
		return nil, fmt.Errorf("bench: store %s exists: the job needs a fresh store", storePath)
	}
	for _, name := range []string{"members.jsonl", "credentials.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return nil, fmt.Errorf("bench: %s exists in %s: the job needs a fresh folder", name, dir)
		}
	}
	in, err := os.Create(filepath.Join(dir, "members.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	expected, err := GenerateMembers(in, opts.Lines, opts.Seed)
	if cerr := in.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("bench: generating the members: %w", err)
	}

	store, err := sqlitestore.Open(storePath, sqlitestore.Options{Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("bench: opening the store: %w", err)
	}
	defer store.Close()
	eng, err := pipelineEngine(opts, dir, store)
	if err != nil {
		return nil, err
	}
	defer eng.Close()

	if opts.CPUProfile != nil {
		if err := pprof.StartCPUProfile(opts.CPUProfile); err != nil {
			return nil, fmt.Errorf("bench: starting the CPU profile: %w", err)
		}
	}
	var mem0, mem1 runtime.MemStats
	runtime.ReadMemStats(&mem0)
	cpu0, w0 := processCPU(), store.WriterStats()
	start := time.Now()
	sum, runErr := eng.RunOnce(ctx)
	elapsed := time.Since(start)
	cpu1, w1 := processCPU(), store.WriterStats()
	runtime.ReadMemStats(&mem1)
	if opts.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if opts.MemProfile != nil {
		runtime.GC()
		if err := pprof.WriteHeapProfile(opts.MemProfile); err != nil {
			log.Warn("writing the heap profile failed", "error", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench: interrupted after %s: no figures (%w)", elapsed.Round(time.Millisecond), err)
	}
	if runErr != nil {
		return nil, fmt.Errorf("bench: the file job failed: %w", runErr)
	}
	if err := eng.Close(); err != nil {
		return nil, fmt.Errorf("bench: closing the engine: %w", err)
	}
	res := &PipelineResult{Lines: opts.Lines, Expected: expected, Batch: opts.Batch, Concurrency: opts.Concurrency,
		Elapsed: elapsed, CPU: cpu1 - cpu0, Writer: writerFigures(w0, w1, elapsed),
		AllocPerEvent: int64(mem1.TotalAlloc-mem0.TotalAlloc) / int64(opts.Lines), GCCycles: mem1.NumGC - mem0.NumGC}
	for _, rs := range sum.Recipes {
		res.Kept += rs.Succeeded
		res.Skipped += rs.Skipped
		res.Dead += rs.Dead
	}
	if s := elapsed.Seconds(); s > 0 {
		res.EventsPerSec = float64(opts.Lines) / s
	}
	res.CPUPerEvent = res.CPU / time.Duration(opts.Lines)
	if res.PeakRSS, err = PeakRSS(); err != nil {
		log.Warn("peak RSS not available", "error", err)
	}
	if err := store.Close(); err != nil {
		return nil, fmt.Errorf("bench: closing the store: %w", err)
	}
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(storePath + suffix); err == nil {
			res.StoreBytes += fi.Size()
		}
	}
	if res.Written, res.Duplicates, err = countCredentials(filepath.Join(dir, "credentials.jsonl")); err != nil {
		return nil, err
	}
	return res, nil
}

// pipelineEngine is a runner of the file job over dir's members.jsonl.
func pipelineEngine(opts PipelineOptions, dir string, store engine.Store) (*engine.Engine, error) {
	src := strings.Replace(string(pipelineYAML), "batch: 1000", "batch: "+strconv.Itoa(opts.Batch), 1)
	r, diags := recipes.LoadBytes("bench-pipeline.yaml", []byte(src), recipes.Options{Registry: opts.Registry, Logger: opts.Logger})
	if diags.HasErrors() || r == nil {
		var b strings.Builder
		diags.WriteText(&b)
		return nil, fmt.Errorf("bench: the embedded pipeline recipe does not load:\n%s", b.String())
	}
	conns := map[string]engine.Connection{}
	for name, c := range r.Connections {
		spec, ok := opts.Registry.Lookup(c.Connector)
		if !ok {
			return nil, fmt.Errorf("bench: connection %q: unknown connector %q", name, c.Connector)
		}
		conns[name] = engine.Connection{Spec: spec, Config: connectors.ConnectionConfig{
			Name: name, Options: map[string]any{"baseDir": dir}, RateLimit: &connectors.RateLimit{},
		}}
	}
	eng, err := engine.New(engine.Options{Store: store, Logger: opts.Logger, Concurrency: opts.Concurrency, Owner: "memberflow-bench"})
	if err != nil {
		return nil, err
	}
	if err := eng.Add(r, conns); err != nil {
		eng.Close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	return eng, nil
}

// countCredentials counts the output's lines and the members named twice.
func countCredentials(path string) (lines, duplicates int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("bench: reading the output: %w", err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Credential struct {
				Recipient struct {
					ID string `json:"id"`
				} `json:"recipient"`
			} `json:"credential"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return 0, 0, fmt.Errorf("bench: output line %d: %w", lines+1, err)
		}
		lines++
		if id := line.Credential.Recipient.ID; seen[id] {
			duplicates++
		} else {
			seen[id] = true
		}
	}
	return lines, duplicates, sc.Err()
}

// Check returns what is inconsistent: every kept member written exactly
// once, every line read, nothing dead-lettered.
func (r *PipelineResult) Check() error {
	var errs []error
	if r.Written != r.Expected {
		errs = append(errs, fmt.Errorf("%d credentials written, want %d", r.Written, r.Expected))
	}
	if r.Kept != int64(r.Expected) {
		errs = append(errs, fmt.Errorf("%d runs succeeded, want %d", r.Kept, r.Expected))
	}
	if got := r.Kept + r.Skipped + r.Dead; got != int64(r.Lines) {
		errs = append(errs, fmt.Errorf("%d lines processed, want %d", got, r.Lines))
	}
	if r.Dead > 0 {
		errs = append(errs, fmt.Errorf("%d run(s) dead-lettered", r.Dead))
	}
	if r.Duplicates > 0 {
		errs = append(errs, fmt.Errorf("%d member(s) written twice", r.Duplicates))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: inconsistent figures: %w", err)
	}
	return nil
}

// WriteText prints the figures as a table.
func (r *PipelineResult) WriteText(w io.Writer) error {
	tw := newTable(w)
	tw.row("lines read", "%d", r.Lines)
	tw.row("credentials written", "%d (expected %d, %d duplicates)", r.Written, r.Expected, r.Duplicates)
	tw.row("skipped by when", "%d", r.Skipped)
	tw.row("dead-lettered", "%d", r.Dead)
	tw.row("elapsed", "%s", r.Elapsed.Round(time.Millisecond))
	tw.row("events/s", "%.0f", r.EventsPerSec)
	tw.row("CPU time", "%s (%s per event)", r.CPU.Round(10*time.Millisecond), r.CPUPerEvent)
	tw.row("peak RSS", "%.1f MB", float64(r.PeakRSS)/(1<<20))
	tw.row("Go heap allocated", "%d bytes per event, %d collections", r.AllocPerEvent, r.GCCycles)
	tw.row("store size", "%.1f MB (%.0f bytes per line)", float64(r.StoreBytes)/(1<<20), float64(r.StoreBytes)/float64(max(r.Lines, 1)))
	tw.row("store writer", "%s", r.Writer)
	tw.row("batch, concurrency", "%d, %d", r.Batch, r.Concurrency)
	return tw.Flush()
}

// WriteJSON prints the figures as one JSON object.
func (r *PipelineResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriterFigures is what the store's one writer did during a job.
type WriterFigures struct {
	Busy    time.Duration `json:"busy_ns"`
	Commits int64         `json:"commits"`
	Writes  int64         `json:"writes"`
	// Share is Busy over the job's elapsed time: near 1, the writer is
	// what the job waits for.
	Share float64 `json:"busy_share"`
}

func writerFigures(before, after engine.WriterStats, elapsed time.Duration) WriterFigures {
	f := WriterFigures{Busy: after.Busy - before.Busy, Commits: after.Commits - before.Commits, Writes: after.Writes - before.Writes}
	if elapsed > 0 {
		f.Share = f.Busy.Seconds() / elapsed.Seconds()
	}
	return f
}

func (f WriterFigures) String() string {
	return fmt.Sprintf("busy %s (%.0f%% of elapsed), %d commits of %.1f writes", f.Busy.Round(10*time.Millisecond), 100*f.Share,
		f.Commits, float64(f.Writes)/float64(max(f.Commits, 1)))
}
