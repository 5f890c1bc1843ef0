package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/pgstore"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/recipes"
)

// storeFlagHelp is the --store flag's help, shared by every command.
const storeFlagHelp = "durable store: a SQLite file `path`, a postgres://… URL, or secret.NAME holding either"

// storeSpec is a parsed --store value.
type storeSpec struct {
	postgres bool
	target   string // the file path, or the DSN
	shown    string // for messages: the path, or the DSN without its password
}

// parseStore resolves --store: secret.NAME is looked up in the secrets
// file or the environment (a DSN with a password belongs there). Its
// errors never quote a secret's value.
func parseStore(value string, secrets recipes.SecretSource) (storeSpec, error) {
	spec, err := parseStoreValue(value, secrets)
	if err != nil {
		if strings.HasPrefix(value, "secret.") || !strings.ContainsAny(value, ":=") {
			return storeSpec{}, fmt.Errorf("--store %s: %w", value, err)
		}
		return storeSpec{}, fmt.Errorf("--store: %w", err) // a URL or a connection string may hold a password
	}
	return spec, nil
}

func parseStoreValue(value string, secrets recipes.SecretSource) (storeSpec, error) {
	if name, ok := strings.CutPrefix(value, "secret."); ok {
		if secrets == nil {
			var err error
			if secrets, err = recipes.NewEnvSecrets(""); err != nil {
				return storeSpec{}, err
			}
		}
		v, found := secrets.Lookup(name)
		if !found || v == "" {
			return storeSpec{}, fmt.Errorf("no secret %s in the secrets file or the environment", name)
		}
		spec, err := parseStoreValue(v, nil)
		if err != nil {
			return storeSpec{}, fmt.Errorf("the secret's value: %w", err)
		}
		spec.shown = value + " (" + spec.shown + ")"
		return spec, nil
	}
	if strings.HasPrefix(value, "postgres://") || strings.HasPrefix(value, "postgresql://") {
		u, err := url.Parse(value)
		if err != nil {
			return storeSpec{}, errors.New("not a valid postgres:// URL")
		}
		return storeSpec{postgres: true, target: value, shown: redactDSN(u)}, nil
	}
	if value == "" {
		return storeSpec{}, errors.New("empty: give a SQLite file path or a postgres:// URL")
	}
	if scheme, _, ok := strings.Cut(value, "://"); ok && !strings.ContainsAny(scheme, `/\`) {
		return storeSpec{}, fmt.Errorf("%s:// is not a store memberflow opens: give a SQLite file path or a postgres:// URL", scheme)
	}
	if libpqKeywords.MatchString(value) {
		return storeSpec{}, errors.New("a key=value connection string is not read (it would become a file name): give the database as a postgres:// URL")
	}
	return storeSpec{target: value, shown: value}, nil
}

// libpqKeywords matches a libpq key=value connection string.
var libpqKeywords = regexp.MustCompile(`(^|\s)(host|hostaddr|port|dbname|user|password|sslmode|passfile)\s*=`)

// redactDSN is the URL for messages: its password, in the user part or
// in the query, replaced by xxxxx (as url.URL.Redacted does).
func redactDSN(u *url.URL) string {
	c := *u
	q := c.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, "xxxxx")
		}
	}
	if len(q) > 0 {
		c.RawQuery = q.Encode()
	}
	return c.Redacted()
}

// open opens the store; concurrency sizes a Postgres pool.
func (s storeSpec) open(ctx context.Context, concurrency int, log hclog.Logger) (engine.Store, error) {
	if s.postgres {
		st, err := pgstore.Open(ctx, s.target, pgstore.Options{Logger: log, Schema: os.Getenv("MEMBERFLOW_PG_SCHEMA"), MaxConns: 4 + concurrency})
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", s.shown, err)
		}
		return st, nil
	}
	return sqlitestore.Open(s.target, sqlitestore.Options{Logger: log})
}

// same reports whether two settings name one store.
func (s storeSpec) same(o storeSpec) bool {
	if s.postgres || o.postgres {
		return s.postgres == o.postgres && s.target == o.target
	}
	a, err1 := filepath.Abs(s.target)
	b, err2 := filepath.Abs(o.target)
	if err1 != nil || err2 != nil {
		return s.target == o.target
	}
	if a == b {
		return true
	}
	ia, err1 := os.Stat(a)
	ib, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(ia, ib)
}

// exists reports whether an inspected store is there (Postgres: always;
// the connection says otherwise).
func (s storeSpec) exists() bool {
	if s.postgres {
		return true
	}
	_, err := os.Stat(s.target)
	return err == nil
}

func init() {
	register(&command{
		name:    "runners",
		summary: "the live runners of a store, with their leases and counts",
		usage:   "[--store PATH|URL] [--format text|json]",
		help: `Lists the runners that share the store: each one's owner name, host and
process, when it started and last renewed its leases, the runs it holds
and the triggers it polls (one runner polls a recipe's trigger at a time).
A runner that died is listed until the next runner starts.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			store := fs.String("store", "memberflow.db", storeFlagHelp)
			format := fs.String("format", "text", "output format: text or json")
			return func(ctx context.Context, args []string, io stdio) int {
				if len(args) > 0 {
					fmt.Fprintln(io.err, "memberflow runners: no arguments expected (memberflow runners --help)")
					return exitUsage
				}
				return inspect(ctx, "runners", *store, *format, io, func(s engine.Store) error {
					rl, ok := s.(engine.RunnerLister)
					if !ok {
						return errors.New("this store does not list runners")
					}
					rs, err := rl.Runners(ctx)
					if err != nil {
						return err
					}
					if *format == "json" {
						if rs == nil {
							rs = []engine.RunnerInfo{}
						}
						return writeJSON(io.out, rs)
					}
					tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "OWNER\tHOST\tPID\tSTARTED\tLAST RENEWAL\tRUNS\tPOLLING")
					for _, r := range rs {
						polling := strings.Join(r.Polling, ",")
						if polling == "" {
							polling = "-"
						}
						renewal := fmt.Sprintf("%s ago", time.Since(r.Seen).Round(time.Second))
						if r.Gone {
							// Its row stays until the next runner starts and
							// takes over what it held.
							renewal += " (gone: the process ended)"
						}
						fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%s\n", r.Owner, r.Host, r.PID, r.Started.Format(time.RFC3339),
							renewal, r.Runs, polling)
					}
					return tw.Flush()
				})
			}
		},
	})
}

type copied struct {
	Cursors, Subjects, Writes, Meta int
	// Dead counts the source's dead letters, which stay behind in
	// Source (as messages show it: no password).
	Dead   int64
	Source string
}

func copyStore(ctx context.Context, from, to string, secrets recipes.SecretSource) (copied, error) {
	src, err := parseStore(from, secrets)
	if err != nil {
		return copied{}, usageError{fmt.Errorf("--from: %w", err)}
	}
	dst, err := parseStore(to, secrets)
	if err != nil {
		return copied{}, usageError{fmt.Errorf("--to: %w", err)}
	}
	if !src.exists() {
		return copied{}, usageError{fmt.Errorf("--from: no store at %s", src.shown)}
	}
	if src.same(dst) {
		return copied{}, usageError{fmt.Errorf("--from and --to are the same store (%s)", src.shown)}
	}
	log := hclog.NewNullLogger()
	a, err := src.open(ctx, 1, log)
	if err != nil {
		return copied{}, err
	}
	defer a.Close()
	// A run not finished is an event behind the cursor this copy moves:
	// the destination would never run it. The source must finish it
	// first. (Checked before the destination is opened, and so created.)
	var dead int64
	if qs, ok := a.(engine.QueueStatser); ok {
		q, err := qs.QueueStats(ctx)
		if err != nil {
			return copied{}, fmt.Errorf("%s: %w", src.shown, err)
		}
		if n := q.Queued + q.Running; n > 0 {
			return copied{}, fmt.Errorf("%s has %d run(s) not finished (%d queued, %d running): their events are behind the cursors this would copy, so %s would never run them; nothing was copied. "+
				"Finish them in the source first (memberflow run --once --store %s RECIPES runs every queued run, and resumes a stopped runner's), then copy again",
				src.shown, n, q.Queued, q.Running, dst.shown, src.shown)
		}
		dead = q.Dead
	}
	b, err := dst.open(ctx, 1, log)
	if err != nil {
		return copied{}, err
	}
	defer b.Close()
	if err := copyTargetFree(ctx, a, b, dst.shown); err != nil {
		return copied{}, err
	}
	ac, ok1 := a.(engine.StateCopier)
	bc, ok2 := b.(engine.StateCopier)
	if !ok1 || !ok2 {
		return copied{}, errors.New("one of the stores cannot copy state")
	}
	st, err := ac.ExportState(ctx)
	if err != nil {
		return copied{}, fmt.Errorf("%s: %w", src.shown, err)
	}
	if err := bc.ImportState(ctx, st); err != nil {
		return copied{}, fmt.Errorf("%s: %w", dst.shown, err)
	}
	meta, err := copyMeta(ctx, a, b)
	if err != nil {
		return copied{}, fmt.Errorf("copying saved values: %w", err)
	}
	return copied{len(st.Cursors), len(st.Subjects), len(st.Writes), meta, dead, src.shown}, nil
}

// copyTargetFree refuses a destination that holds a life of its own: runs
// not finished or dead letters, or an account recorded for a connection
// other than the source's. Its cursors and states would be overwritten
// with the source's while it kept its own accounts and runs, a store
// claiming one account and remembering another's data. A destination an
// earlier copy of the same source filled passes, so a copy can be run
// again.
func copyTargetFree(ctx context.Context, a, b engine.Store, shown string) error {
	if qs, ok := b.(engine.QueueStatser); ok {
		q, err := qs.QueueStats(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", shown, err)
		}
		if n := q.Queued + q.Running + q.Dead; n > 0 {
			return fmt.Errorf("%s is not empty: it holds %d run(s) not finished and %d dead letter(s) of its own; nothing was copied. Copy into a new store", shown, q.Queued+q.Running, q.Dead)
		}
	}
	am, ok1 := a.(engine.MetaStore)
	bm, ok2 := b.(engine.MetaStore)
	if !ok1 || !ok2 {
		return nil
	}
	theirs, err := engine.Identities(ctx, bm)
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	ours, err := engine.Identities(ctx, am)
	if err != nil {
		return err
	}
	byConn := map[string]engine.ConnectionIdentity{}
	for _, id := range ours {
		byConn[id.Connection] = id
	}
	var differ []string
	for _, id := range theirs {
		if src, ok := byConn[id.Connection]; !ok || src.String() != id.String() {
			differ = append(differ, fmt.Sprintf("%q (%s)", id.Connection, id.String()))
		}
	}
	if len(differ) > 0 {
		return fmt.Errorf("%s already records accounts the source does not: %s; nothing was copied. Copy into a new store", shown, strings.Join(differ, ", "))
	}
	return nil
}

// runStoreCopy is `memberflow store copy`.
func runStoreCopy(ctx context.Context, from, to, secretsFile string, io stdio) int {
	if from == "" || to == "" {
		fmt.Fprintln(io.err, "memberflow store copy: want --from STORE --to STORE (memberflow store --help)")
		return exitUsage
	}
	secrets, err := recipes.NewEnvSecrets(secretsFile)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow store copy: %v\n", err)
		return exitUsage
	}
	n, err := copyStore(ctx, from, to, secrets)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow store copy: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			return exitUsage
		}
		return exitFail
	}
	fmt.Fprintf(io.out, "copied %d cursor(s), %d subject state(s), %d written state(s), %d saved value(s)\n", n.Cursors, n.Subjects, n.Writes, n.Meta)
	if n.Dead > 0 {
		fmt.Fprintf(io.out, "%d dead letter(s) stay in %s, with the runs' history: replay them there (memberflow dlq replay) to run them\n", n.Dead, n.Source)
	}
	return exitOK
}

// copyMeta copies every saved value (recorded accounts, sealed tokens)
// that the destination does not have yet.
func copyMeta(ctx context.Context, a, b engine.Store) (int, error) {
	am, ok1 := a.(engine.MetaStore)
	bm, ok2 := b.(engine.MetaStore)
	if !ok1 || !ok2 {
		return 0, nil
	}
	entries, err := am.ListMeta(ctx, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		cur, version, err := bm.GetMeta(ctx, e.Key)
		if err != nil {
			return n, err
		}
		if cur != nil {
			continue // the destination's own value wins
		}
		ok, err := bm.SwapMeta(ctx, e.Key, version, e.Value)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}
