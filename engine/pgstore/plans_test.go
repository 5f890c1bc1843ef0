package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/memberflow/memberflow/engine"
)

// TestHotStatementsReadAPageNotTheTable: each statement a page, a claim
// or a journal write costs reads rows in proportion to its page, not to
// the tables, on young tables without statistics (autovacuum has not
// analyzed them yet), both as the server plans it for the values at hand
// (a custom plan) and as it plans it once for any values (a generic plan,
// which pgx's statement cache keeps for the connection's life) while the
// tables were still empty. A plan that scans a table, or an index beyond
// the rows asked for, reads thousands of rows here and fails; the plans
// that go through the right index read at most a page's worth.
func TestHotStatementsReadAPageNotTheTable(t *testing.T) {
	ctx := context.Background()
	dsn, schema := TestSchema(t)
	s, err := Open(ctx, dsn, Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const page, pages = 100, 50
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()

	// The runs left running (the last page's) and the rows around them,
	// for the statements' arguments.
	var running engine.Lease
	var lastPage []engine.Lease
	stmts := []struct {
		name  string
		sql   string
		claim bool // planned under claimPlanSQL, as Claim and Advance.Claim run it
		args  func() []any
	}{
		{"PriorStates", priorStatesSQL, false, func() []any { return []any{"r", subjects(pages/2, page)} }},
		{"echoesAmong", echoesAmongSQL, false, func() []any {
			conns, fps := make([]string, page), make([]string, page)
			for i := range conns {
				conns[i], fps[i] = "c", "wrote-"+fmt.Sprint(pages/2, "-", i)
			}
			return []any{conns, subjects(pages/2, page), fps, "r"}
		}},
		{"enqueueMany", enqueueManySQL, false, func() []any { return pageArgs(pages+1, page)[:9] }},
		{"enqueueClaim", enqueueClaimSQL, true, func() []any { return pageArgs(pages+1, page) }},
		{"claim", claimSQL, true, func() []any { return []any{"w2", int64(1), int64(1), []string{"r"}, 16} }},
		{"expire", expireSQL, true, func() []any { return []any{time.Now().UnixNano()} }},
		{"record", recordSQL, false, func() []any {
			args, err := recordArgs(running, []engine.StepRecord{{RunID: running.RunID, Index: 1, StepID: "issue", Action: "certs.create",
				Status: engine.StepSucceeded, Wrote: []engine.Echo{{Connector: "c", Subject: "member/x", Fingerprint: "f"}}}},
				&engine.Completion{RunID: running.RunID, Status: engine.RunSucceeded, Finished: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			return args
		}},
		{"recordMany", recordManySQL, false, func() []any {
			var b batchCols
			for _, l := range lastPage {
				err := b.add(&engine.JournalWrite{Lease: l, Steps: []engine.StepRecord{{RunID: l.RunID, Index: 1, StepID: "issue", Action: "certs.create",
					Status: engine.StepSucceeded, Wrote: []engine.Echo{{Connector: "c", Subject: fmt.Sprint("member/x", l.RunID), Fingerprint: "f"}}}},
					Fin: &engine.Completion{RunID: l.RunID, Status: engine.RunSucceeded, Finished: time.Now()}})
				if err != nil {
					t.Fatal(err)
				}
			}
			return b.args(s.channel)
		}},
		{"renew", renewSQL, false, func() []any {
			// A runner names the runs it works on: the last page's.
			ids := make([]int64, len(lastPage))
			for i, l := range lastPage {
				ids[i] = l.RunID
			}
			return []any{time.Now().UnixNano(), "w", ids}
		}},
		{"release", releaseSQL, false, func() []any {
			// A runner that names half of its runs and vouches for all:
			// the other half goes back to the queue.
			ids := make([]int64, 0, len(lastPage)/2)
			for _, l := range lastPage[:len(lastPage)/2] {
				ids = append(ids, l.RunID)
			}
			return []any{"w", time.Now().Add(2 * time.Minute).UnixNano(), ids}
		}},
	}

	// Generic plans made while the tables are empty, kept by the server
	// for the rest of the session, as pgx keeps its statements.
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	prepared := map[string]*pgconn.StatementDescription{}
	for _, st := range stmts {
		sd, err := conn.Conn().Prepare(ctx, planName(st.name), st.sql)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		prepared[st.name] = sd
		explain(t, conn, sd, st.claim, st.args())
	}

	for n := range pages {
		evs := make([]engine.NewEvent, page)
		var states []engine.SubjectState
		for i := range evs {
			id := fmt.Sprint(n, "-", i)
			evs[i] = engine.NewEvent{ID: id, Subject: "member/" + id, OrderingKey: "member/" + id, Connector: "c", Fingerprint: "read-" + id,
				Time: time.Now(), Data: json.RawMessage(`{}`), Skipped: i%3 == 0,
				Intent: &engine.StepRecord{StepID: "issue", Action: "certs.create", Status: engine.StepStarted, Started: time.Now()}}
			states = append(states, engine.SubjectState{Subject: evs[i].Subject, State: "s"})
		}
		cursor := fmt.Sprint(n)
		enq, err := s.Advance(ctx, "r", engine.Advance{Events: evs, Cursor: &cursor, States: states,
			Claim: &engine.ClaimRequest{Owner: "w", Now: time.Now(), Lease: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		var writes []engine.JournalWrite
		for i, q := range enq {
			if q.Run == nil {
				continue
			}
			if n == pages-1 {
				running = q.Run.Lease()
				lastPage = append(lastPage, running)
				continue
			}
			writes = append(writes, engine.JournalWrite{Lease: q.Run.Lease(), Steps: []engine.StepRecord{{RunID: q.RunID, Index: 1, StepID: "issue",
				Action: "certs.create", Status: engine.StepSucceeded, Wrote: []engine.Echo{{Connector: "c", Subject: evs[i].Subject, Fingerprint: "wrote-" + evs[i].ID}}}},
				Fin: &engine.Completion{RunID: q.RunID, Status: engine.RunSucceeded, Finished: time.Now()}})
		}
		for _, err := range s.RecordMany(ctx, writes) {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	var analyzed bool
	if err := conn.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_user_tables WHERE schemaname = $1 AND (last_autoanalyze IS NOT NULL OR last_analyze IS NOT NULL)`,
		schema).Scan(&analyzed); err != nil {
		t.Fatal(err)
	}
	if analyzed {
		t.Log("a table was analyzed during the test: its plans were made again with statistics")
	}

	// The first column of each index: a scan that has conditions on an
	// index, none on its first column, walks the whole index.
	first := map[string]string{}
	rows, err := conn.Query(ctx, `SELECT c.relname, a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
		WHERE n.nspname = $1`, schema)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ix, col string
		if err := rows.Scan(&ix, &col); err != nil {
			t.Fatal(err)
		}
		first[ix] = col
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	const most = 5 * page // rows a scan may read: a page's worth, with room
	for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
		if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
			t.Fatal(err)
		}
		for _, st := range stmts {
			plan := explain(t, conn, prepared[st.name], st.claim, st.args())
			for _, sc := range scans(plan) {
				if sc.read > most {
					t.Errorf("%s (%s): %s reads %d rows for a page of %d (tables of %d rows): the plan grows with the table\n%s",
						st.name, mode, sc.what, sc.read, page, pages*page, plan)
				}
				if col, ok := first[sc.index]; ok && sc.cond != "" && !strings.Contains(sc.cond, "("+col+" ") {
					t.Errorf("%s (%s): %s has the condition %s, none on the index's first column (%s): it walks the whole index\n%s",
						st.name, mode, sc.what, sc.cond, col, plan)
				}
			}
		}
	}
}

func planName(stmt string) string { return "plan_" + strings.ToLower(stmt) }

// subjects are the subjects of page n of the test's pages.
func subjects(n, page int) []string {
	out := make([]string, page)
	for i := range out {
		out[i] = fmt.Sprint("member/", n, "-", i)
	}
	return out
}

// pageArgs are enqueueClaimSQL's arguments for page n, new events each of
// its own key, each with an intent (enqueueManySQL takes the first 9).
func pageArgs(n, page int) []any {
	ids, subs, fps, conns, keys := make([]string, page), subjects(n, page), make([]string, page), make([]string, page), make([]string, page)
	times, datas := make([]*int64, page), make([][]byte, page)
	var at []int64
	var intents stepCols
	now := time.Now()
	for i := range ids {
		ids[i], fps[i], conns[i], keys[i] = fmt.Sprint(n, "-", i), fmt.Sprint("read-", n, "-", i), "c", subs[i]
		times[i], datas[i] = nanosPtr(now), []byte(`{}`)
		at = append(at, int64(i+1))
		intents.add(&engine.StepRecord{StepID: "issue", Action: "certs.create", Status: engine.StepStarted, Started: now})
	}
	args := []any{"r", ids, subs, fps, conns, times, datas, keys, now.UnixNano(), "w", now.Add(time.Minute).UnixNano(), now.UnixNano(), at}
	return append(args, intents.args()...)
}

// explain runs the prepared statement sd with args, in a transaction it
// rolls back, and answers its plan (EXPLAIN ANALYZE, JSON). The arguments
// are written as literals of the statement's parameter types: EXECUTE
// takes no parameters of its own.
func explain(t *testing.T, conn *pgxpool.Conn, sd *pgconn.StatementDescription, claim bool, args []any) string {
	t.Helper()
	ctx := context.Background()
	name := sd.Name
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if claim {
		if _, err := tx.Exec(ctx, claimPlanSQL); err != nil {
			t.Fatal(err)
		}
	}
	lits := make([]string, len(args))
	for i, a := range args {
		var typ string
		if err := tx.QueryRow(ctx, `SELECT format_type($1, NULL)`, sd.ParamOIDs[i]).Scan(&typ); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow(ctx, `SELECT quote_nullable($1::`+typ+`) || '::`+typ+`'`, a).Scan(&lits[i]); err != nil {
			t.Fatalf("%s: argument %d: %v", name, i+1, err)
		}
	}
	var plan string
	if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE "+name+"("+strings.Join(lits, ", ")+")").Scan(&plan); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return plan
}

// scan is a plan node that reads a table or an index, the rows it read
// in all (those it returned and those its filters removed), and its index
// and conditions on it, if any.
type scan struct {
	what        string
	read        int
	index, cond string
}

func scans(plan string) []scan {
	var root []struct {
		Plan map[string]any `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(plan), &root); err != nil || len(root) == 0 {
		panic(fmt.Sprintf("reading a plan: %v\n%s", err, plan))
	}
	var out []scan
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		typ, _ := n["Node Type"].(string)
		if strings.Contains(typ, "Scan") && (n["Relation Name"] != nil || n["Index Name"] != nil) {
			num := func(k string) float64 { f, _ := n[k].(float64); return f }
			loops := num("Actual Loops")
			read := (num("Actual Rows") + num("Rows Removed by Filter") + num("Rows Removed by Index Recheck")) * loops
			what := typ
			if r, ok := n["Relation Name"].(string); ok {
				what += " on " + r
			}
			ix, _ := n["Index Name"].(string)
			if ix != "" {
				what += " using " + ix
			}
			cond, _ := n["Index Cond"].(string)
			out = append(out, scan{what: what, read: int(read), index: ix, cond: cond})
		}
		if kids, ok := n["Plans"].([]any); ok {
			for _, k := range kids {
				if m, ok := k.(map[string]any); ok {
					walk(m)
				}
			}
		}
	}
	walk(root[0].Plan)
	return out
}
