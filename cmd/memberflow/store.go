package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/engine/sqlitestore"
	"github.com/memberflow/memberflow/recipes"
)

func init() {
	register(&command{
		name:    "store",
		summary: "the store's recorded accounts: show, rebind; forget-tokens; prune finished runs; back up; check; copy to another store",
		usage:   "show [--format text|json] | rebind [CONNECTION...] | forget-tokens | prune --older-than AGE [--vacuum] [--format text|json] | backup --to FILE | check | copy --from STORE --to STORE",
		help: `A store records, on first use, the account each connection reaches (its
base URL and the account id the service reports). A later run whose
connections reach another account stops: the store's cursors, per-subject
memory and echoes are about the recorded account's data.

"store show" lists the recorded accounts.
"store rebind" forgets them (or only the named connections'), so that the
next run records the accounts it reaches then. Do it when the same account
is reached another way (a new URL); for other data, use a new store
(memberflow run --store other.db) instead: records the old data had would
be skipped.
"store forget-tokens" deletes the OAuth tokens saved in the store, for a
lost store key; then authorise the OAuth app again and set the new refresh
token in the connection's secret. See docs/runner.md.
"store prune --older-than AGE" removes what finished before AGE ago (30d,
12h, 90m): runs that succeeded, were skipped or suppressed, with their step
journals and their events' data, and the counts of skipped events. Dead
letters stay until replayed. The events' IDs stay too, so an event seen
again is still a duplicate: pruning never makes a record run twice.
--vacuum then rewrites the file to give the space back (run it while no
runner writes).
"store backup --to FILE" writes a consistent copy of a SQLite store to
FILE (a new file), while runners run: every commit up to the copy's start,
those still in the store's write-ahead log included. A file copied with cp
while a runner writes misses those, and may be torn (docs/deploy.md,
"Backups"). A Postgres store is backed up with the database's own tools.
"store check" reads the whole SQLite file and checks every table against
its indexes (SQLite's integrity_check): run it after restoring a copy. Each
open runs a quicker check of the pages only, which a copy torn by cp can
pass. Exit status 1 when the store is damaged: restore another copy. A
Postgres store is checked with the database's own tools (pg_amcheck).
"store copy --from STORE --to STORE" moves what the triggers remember (each
recipe's cursor, each subject's last state), the record states memberflow
wrote (echo suppression) and the recorded accounts and saved tokens from
one store to another: from the SQLite file of one machine to the Postgres
database several runners share (docs/deploy.md). Runs, journals and dead
letters stay behind: they are history. Stop the source's runners first; a
run they left unfinished must finish there (run --once on the source): the
copy refuses until it has, since its event is behind the copied cursor.`,
		flags: func(fs *flag.FlagSet) func(ctx context.Context, args []string, io stdio) int {
			store := fs.String("store", "memberflow.db", storeFlagHelp)
			format := fs.String("format", "text", "output format of show and prune: text or json")
			from := fs.String("from", "", "copy: the source store (SQLite `path`, postgres:// URL or secret.NAME)")
			to := fs.String("to", "", "copy: the destination store (SQLite `path`, postgres:// URL or secret.NAME); backup: the new file")
			secretsFile := fs.String("secrets", "", "secrets `file` for secret.NAME (KEY=value lines); the environment wins")
			olderThan := fs.String("older-than", "", "prune: what finished more than this `age` ago: 30d, 12h, 90m")
			vacuum := fs.Bool("vacuum", false, "prune: rewrite the file afterwards to give the space back")
			return func(ctx context.Context, args []string, io stdio) int {
				if len(args) == 1 && args[0] == "copy" {
					return runStoreCopy(ctx, *from, *to, *secretsFile, io)
				}
				return inspect(ctx, "store", *store, *format, io, func(s engine.Store) error {
					if len(args) == 1 && args[0] == "backup" {
						return backup(ctx, s, *to, io)
					}
					if len(args) == 1 && args[0] == "check" {
						return checkStore(ctx, s, io)
					}
					meta, ok := s.(engine.MetaStore)
					if !ok && len(args) > 0 && args[0] != "prune" {
						return errors.New("this store keeps no accounts or tokens")
					}
					switch {
					case len(args) == 1 && args[0] == "show":
						ids, err := engine.Identities(ctx, meta)
						if err != nil {
							return err
						}
						if *format == "json" {
							if ids == nil {
								ids = []engine.ConnectionIdentity{}
							}
							return writeJSON(io.out, ids)
						}
						if len(ids) == 0 {
							fmt.Fprintln(io.out, "no account recorded yet: the next memberflow run records them")
							return nil
						}
						tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
						fmt.Fprintln(tw, "CONNECTION\tCONNECTOR\tBASE URL\tACCOUNT\tNAME")
						for _, id := range ids {
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id.Connection, id.Connector, id.BaseURL, id.Account, id.Name)
						}
						return tw.Flush()
					case len(args) >= 1 && args[0] == "rebind":
						forgot, err := engine.Rebind(ctx, meta, args[1:]...)
						for _, id := range forgot {
							fmt.Fprintf(io.out, "forgot connection %q: %s\n", id.Connection, id)
						}
						if err != nil {
							return usageError{err}
						}
						if len(forgot) == 0 {
							fmt.Fprintln(io.out, "no account was recorded")
							return nil
						}
						fmt.Fprintln(io.out, "the next memberflow run records the accounts its connections reach")
						return nil
					case len(args) == 1 && args[0] == "prune":
						p, ok := s.(engine.Pruner)
						if !ok {
							return errors.New("this store does not prune")
						}
						return prune(ctx, p, *olderThan, *vacuum, *format, io)
					case len(args) == 1 && args[0] == "forget-tokens":
						n, err := engine.ForgetTokens(ctx, meta)
						if err != nil {
							return err
						}
						fmt.Fprintf(io.out, "%d saved value(s) deleted; OAuth connections start from their configured refresh token\n", n)
						return nil
					}
					return usageError{errors.New(`want "show", "rebind [CONNECTION...]", "forget-tokens", "prune", "backup", "check" or "copy" (memberflow store --help)`)}
				})
			}
		},
	})
}

// storeAdvice says what the operator does after a storage failure, ""
// when err is none of them.
func storeAdvice(path string, err error) string {
	dir := filepath.Dir(path)
	changed := changedConnections(err)
	switch {
	case errors.Is(err, sqlitestore.ErrNoDirectory):
		return fmt.Sprintf("create the directory (mkdir -p %s) or give --store a path in an existing one", dir)
	case errors.Is(err, sqlitestore.ErrReadOnly):
		return fmt.Sprintf("the store cannot be written here (a read-only file system or missing permissions): make %s and the store writable for this user, or give --store a writable path; SQLite writes -wal and -shm files beside the store, so the directory must be writable too", dir)
	case errors.Is(err, sqlitestore.ErrDiskFull):
		return "free space on the disk that holds the store (or move it and point --store at it), then run again: what was committed is kept, and runs in flight resume from their journal"
	case errors.Is(err, sqlitestore.ErrCorrupt):
		return fmt.Sprintf("nothing was written to it. Stop every runner of this store and keep the file; then restore your last copy (delete %[1]s-wal and %[1]s-shm first: a log left beside the store would be applied to the copy and damage it too), or recover what is readable (sqlite3 %[1]s .recover | sqlite3 recovered.db) and run with --store recovered.db", path)
	case errors.Is(err, sqlitestore.ErrLocked):
		return fmt.Sprintf("another process kept a write transaction open on %[1]s for longer than the busy timeout (10 s): a sqlite3 shell left in BEGIN, a copy or backup tool, a stuck process. Find it (fuser %[1]s %[1]s-wal), end its transaction or the process, then run again; nothing was written by this command. Take copies with memberflow store backup, which never holds the lock for long", path)
	case errors.Is(err, sqlitestore.ErrLogDeleted):
		return fmt.Sprintf("%[1]s-wal was deleted (or replaced) while the store was open: every commit was copied into %[1]s and writes stopped. Restart the runner (and every other process of the store); never delete a store's -wal or -shm file while a process has it open", path)
	case errors.Is(err, engine.ErrStoreKey):
		return "give the key the tokens were saved with (the MEMBERFLOW_STORE_KEY secret, or the one --store-key names); if it is lost, run memberflow store forget-tokens, authorise the OAuth app again and set the new refresh token in the connection's secret"
	case len(changed) > 0:
		return fmt.Sprintf("if this is other data, use a new store (memberflow run --store other.db): this one's cursors and memory belong to the recorded account and would skip records. If it is the same account reached another way, record the new identity: memberflow store rebind --store %s %s", path, strings.Join(changed, " "))
	}
	return ""
}

// changedConnections names the connections of the *engine.IdentityError
// values in err's tree.
func changedConnections(err error) []string {
	var names []string
	var walk func(error)
	walk = func(err error) {
		var idErr *engine.IdentityError
		switch e := err.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		default:
			if errors.As(err, &idErr) {
				names = append(names, idErr.Current.Connection)
			}
		}
	}
	walk(err)
	return names
}

// reportStoreError prints err and, for a storage failure, what to do.
func reportStoreError(io stdio, cmd, path string, err error) {
	fmt.Fprintf(io.err, "memberflow %s: %v\n", cmd, err)
	if advice := storeAdvice(path, err); advice != "" {
		fmt.Fprintf(io.err, "memberflow %s: what to do: %s\n", cmd, advice)
	}
}

// storeKeySecret is the default name of the secret OAuth tokens are
// encrypted with in the store (run --store-key names another).
const storeKeySecret = "MEMBERFLOW_STORE_KEY"

// attachTokens gives each oauth2 connection its tokens in meta, so that
// whatever opens it in this process (the engine, the reconciler behind
// the console) and every other process of the store refresh one token
// chain.
func attachTokens(conns []map[string]engine.Connection, meta engine.MetaStore, key []byte, owner string) error {
	tokensOf, err := engine.TokenStores(meta, key, owner)
	if err != nil {
		return err
	}
	for _, m := range conns {
		for name, c := range m {
			if ts := tokensOf(c.Config); ts != nil {
				c.Config.Tokens = ts
				m[name] = c
			}
		}
	}
	return nil
}

// readerTokens is attachTokens for the commands that read the services
// without running recipes (reconcile, console): a connection with a
// rotating refresh token must use, and save, the runner's newest one.
// It opens (or makes) the store --store names (a SQLite path, a
// postgres:// URL or secret.NAME) only when such a connection exists, and
// returns what closes it.
func readerTokens(cmd, store, secretsFile string, conns map[string]map[string]engine.Connection, io stdio) (func(), int) {
	var list []map[string]engine.Connection
	rotating := false
	for _, m := range conns {
		list = append(list, m)
		for _, c := range m {
			rotating = rotating || c.Config.Auth.Type == connectors.AuthOAuth2 && c.Config.Auth.RefreshToken != ""
		}
	}
	if !rotating {
		return func() {}, exitOK
	}
	secrets, err := recipes.NewEnvSecrets(secretsFile)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow %s: %v\n", cmd, err)
		return nil, exitUsage
	}
	key, _ := secrets.Lookup(storeKeySecret)
	if key == "" {
		fmt.Fprintf(io.err, "memberflow %s: a connection uses an OAuth refresh token, which the runner keeps in the store: set the secret %s to the store's key (docs/runner.md)\n", cmd, storeKeySecret)
		return nil, exitUsage
	}
	spec, err := parseStore(store, secrets)
	if err != nil {
		fmt.Fprintf(io.err, "memberflow %s: %v\n", cmd, err)
		return nil, exitUsage
	}
	s, err := spec.open(context.Background(), 1, hclog.NewNullLogger())
	if err != nil {
		reportStoreError(io, cmd, spec.shown, err)
		return nil, exitFail
	}
	meta, ok := s.(engine.MetaStore)
	if !ok {
		s.Close()
		fmt.Fprintf(io.err, "memberflow %s: the store %s cannot keep OAuth tokens\n", cmd, spec.shown)
		return nil, exitUsage
	}
	if err := attachTokens(list, meta, []byte(key), cmd); err != nil {
		s.Close()
		fmt.Fprintf(io.err, "memberflow %s: %v\n", cmd, err)
		return nil, exitUsage
	}
	return func() { s.Close() }, exitOK
}
