package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/memberflow/memberflow/engine"
	"github.com/memberflow/memberflow/internal/jsondec"
	"github.com/memberflow/memberflow/internal/jsonenc"
)

// Page claims. The runs a poller claims with its page (Advance.Claim)
// are not written to runs at the advance: one page claim holds them all
// (IDs, events, ordering keys, chains and first intents), and a run
// becomes a row of runs only when its runner records it, usually at its
// outcome, already finished. A page run that succeeds then costs one
// insert into runs and one per step, instead of an insert (the table and
// four indexes), its intent's row, and an update that ends it (the table
// and two indexes): 13 B-tree writes a kept record become 7.
//
// A claimed run is running for everyone else:
//   - claims and an advance's key check read the keys of page_runs (the
//     view below) beside runs_active_key, so a key stays held;
//   - lease renewals, the backlog, queue stats and the runner list count
//     them;
//   - a claim that takes over ended leases, a release of an owner's runs,
//     prune and every operator's read (memberflow runs, the console) first
//     write the claimed runs out as running rows of runs (writeOutClaims),
//     so that the rest of the store only ever deals in rows. A table read
//     with the sqlite3 shell (the audit view) does not show a run claimed
//     a moment ago until then.
//
// A claim is two rows: its lease and the count of its runs not yet
// written out (pending), updated as they are and as the lease is renewed,
// and what it holds, written once and deleted once with the claim (a row
// is rewritten whole, its overflow pages included). The claim is deleted
// when pending reaches 0.
const pageClaimsMigration = `CREATE TABLE page_claims (
	id          INTEGER PRIMARY KEY,
	recipe      TEXT    NOT NULL,
	owner       TEXT    NOT NULL,
	lease_until INTEGER NOT NULL,
	first_run   INTEGER NOT NULL,
	last_run    INTEGER NOT NULL,
	pending     INTEGER NOT NULL
);
CREATE INDEX page_claims_owner ON page_claims(owner);
CREATE TABLE page_claim_runs (
	claim INTEGER PRIMARY KEY REFERENCES page_claims(id) ON DELETE CASCADE,
	keys  TEXT NOT NULL, -- {"ordering key": run ID}
	runs  TEXT NOT NULL  -- [{"id", "event", "okey", "chain", "created", "intent"}]
);
-- The runs held by page claims that are not rows of runs yet.
CREATE VIEW page_runs AS
	SELECT p.id AS claim, p.recipe, p.owner, p.lease_until, j.key AS okey, j.value AS run
	FROM page_claims p JOIN page_claim_runs c ON c.claim = p.id, json_each(c.keys) j
	WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = j.value);`

// pagedToken is the fencing token of a run held by a page claim: its
// first claim. A run claimed again was written out first.
const pagedToken = 1

// pagedRun is one run of a page claim, as writeOut and the journal read
// it back.
type pagedRun struct {
	claim         int64
	recipe, owner string
	leaseUntil    int64
	id, event     int64
	okey, chain   string
	created       int64
	intent        []byte // a pagedIntent, or nil
	intentIdx     int    // its step index; -1 without one
}

// pagedIntent is a claimed run's first intent, in its claim.
type pagedIntent struct {
	Index    int             `json:"idx"`
	StepID   string          `json:"step"`
	Action   string          `json:"action"`
	Status   string          `json:"status"`
	Input    json.RawMessage `json:"input,omitempty"`
	Output   json.RawMessage `json:"output,omitempty"`
	Error    string          `json:"error,omitempty"`
	Attempts int             `json:"attempts"`
	Started  int64           `json:"started,omitempty"`
	Finished int64           `json:"finished,omitempty"`
}

// encodeIntent is the JSON of an event's first intent in a page claim
// (a pagedIntent), made before the advance reaches the writer. The
// engine's input and output are JSON already: they are checked, not
// encoded again.
func encodeIntent(r *engine.StepRecord) ([]byte, error) {
	for _, raw := range []json.RawMessage{r.Input, r.Output} {
		if len(raw) > 0 && !jsondec.Valid(raw) {
			return nil, fmt.Errorf("step %q: its input or output is not JSON", r.StepID)
		}
	}
	// The fixed part ({"idx":…,"step":…} and three numbers) is under 160.
	b := make([]byte, 0, 160+len(r.StepID)+len(r.Action)+len(r.Status)+len(r.Input)+len(r.Output)+len(r.Error))
	b = appendIntField(append(b, '{'), "idx", int64(r.Index))
	b = appendStringField(b, "step", r.StepID)
	b = appendStringField(b, "action", r.Action)
	b = appendStringField(b, "status", r.Status)
	if r.Error != "" {
		b = appendStringField(b, "error", r.Error)
	}
	if len(r.Input) > 0 {
		b = append(append(b, `,"input":`...), r.Input...)
	}
	if len(r.Output) > 0 {
		b = append(append(b, `,"output":`...), r.Output...)
	}
	b = appendIntField(b, "attempts", int64(r.Attempts))
	if !r.Started.IsZero() {
		b = appendIntField(b, "started", r.Started.UnixNano())
	}
	if !r.Finished.IsZero() {
		b = appendIntField(b, "finished", r.Finished.UnixNano())
	}
	return append(b, '}'), nil
}

// appendIntField and appendStringField append one field of an object
// being written, with its comma unless it is the first.
func appendIntField(b []byte, name string, v int64) []byte {
	return strconv.AppendInt(appendName(b, name), v, 10)
}

func appendStringField(b []byte, name, v string) []byte {
	b, _ = jsonenc.Append(appendName(b, name), v)
	return b
}

func appendName(b []byte, name string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	return append(append(append(b, '"'), name...), `":`...)
}

// intentArgs are the columns of a paged run's intent in upSteps' order,
// or nil when it has none.
func (pr *pagedRun) intentArgs() ([]any, error) {
	if len(pr.intent) == 0 {
		return nil, nil
	}
	var pi pagedIntent
	if err := json.Unmarshal(pr.intent, &pi); err != nil {
		return nil, fmt.Errorf("reading the intent of run %d in its page claim: %w", pr.id, err)
	}
	var started, finished any
	if pi.Started != 0 {
		started = pi.Started
	}
	if pi.Finished != 0 {
		finished = pi.Finished
	}
	return []any{pr.id, pi.Index, pi.StepID, pi.Action, pi.Status, []byte(pi.Input), []byte(pi.Output),
		nullString(pi.Error), pi.Attempts, started, finished}, nil
}

// runningRow is the run as a running row of runs (insRuns' columns),
// leased as its claim is.
func (pr *pagedRun) runningRow() []any {
	return []any{pr.id, pr.event, pr.recipe, pr.okey, engine.RunRunning, nil, nil, pr.created, nil,
		pr.owner, pr.leaseUntil, pagedToken, pr.created, pr.chain}
}

// finalRow is the run as fin leaves it (insFinal's columns): ended, or
// given back to the queue.
func (pr *pagedRun) finalRow(fin *engine.Completion) []any {
	f := finArgs(fin) // run, status, error, condition, values, finished, version
	return []any{pr.id, pr.event, pr.recipe, pr.okey, f[1], f[2], f[3], f[4], pr.created, f[5],
		nil, nil, pagedToken, pr.created, pr.chain, f[6]}
}

// finalCols are the parameters of one row of insFinal.
const finalCols = 16

// prepareClaims prepares the page claims' statements on the writer.
func (s *Store) prepareClaims(p func(db *sql.DB, q string) *sql.Stmt) {
	for k := 0; k <= maxRowsLog; k++ {
		s.insFinal[k] = p(s.w, `INSERT INTO runs (id, event, recipe, okey, status, error, condition, cond_values, created, finished,
			owner, lease_until, attempts, started, chain, version)
		VALUES `+rowsOf(finalCols, 1<<k))
	}
	s.insClaim = p(s.w, `INSERT INTO page_claims (recipe, owner, lease_until, first_run, last_run, pending) VALUES (?, ?, ?, ?, ?, ?)`)
	s.insClaimRuns = p(s.w, `INSERT INTO page_claim_runs (claim, keys, runs) VALUES (?, ?, ?)`)
	s.takeClaim = p(s.w, `UPDATE page_claims SET pending = pending - ? WHERE id = ? RETURNING pending`)
	s.dropClaim = p(s.w, `DELETE FROM page_claims WHERE id = ?`)
	s.renewClaims = p(s.w, `UPDATE page_claims SET lease_until = ? WHERE id IN (SELECT value FROM json_each(?))`)
	s.ownerPaged = p(s.w, `SELECT claim, run FROM page_runs WHERE owner = ?`)
	s.notRuns = p(s.w, `SELECT value FROM json_each(?) WHERE value NOT IN (SELECT id FROM runs) AND value NOT IN (SELECT run FROM page_ended)`)
	s.claimLeases = p(s.w, `SELECT id, lease_until, first_run, last_run FROM page_claims WHERE id IN (SELECT value FROM json_each(?))`)
	s.insOutcomes = p(s.w, `INSERT INTO page_outcomes (first_run, last_run, runs, first_finished, last_finished, rows) VALUES (?, ?, ?, ?, ?, ?)`)
	s.insEnded = p(s.w, `INSERT INTO page_ended (run) SELECT value FROM json_each(?)`)
}

// claimPage is the page claim of an advance being built: the runs it
// holds, as JSON, and as the handle remembers them (takePaged).
type claimPage struct {
	keys, runs  strings.Builder
	first, last int64
	n           int
	held        []*pagedRun
}

// grow makes room for n runs whose keys and intents take size bytes of
// JSON: a page's claim is written without growing its buffers again.
func (c *claimPage) grow(n, size int) {
	c.keys.Grow(size/4 + 24*n)
	c.runs.Grow(size + 96*n)
	c.held = slices.Grow(c.held, n)
}

// add appends a run; quotedKey is its ordering key as a JSON string,
// intent its first intent and intentJSON that intent encoded (or nil).
func (c *claimPage) add(id, event int64, okey string, quotedKey []byte, chain string, created int64, intent *engine.StepRecord, intentJSON []byte) {
	sep := byte(',')
	if c.n == 0 {
		sep, c.first = '{', id
	}
	c.n++
	c.last = id
	pr := &pagedRun{id: id, event: event, okey: okey, chain: chain, created: created, intent: intentJSON, intentIdx: -1}
	if intent != nil {
		pr.intentIdx = intent.Index
	}
	c.held = append(c.held, pr)

	var num [20]byte
	c.keys.WriteByte(sep)
	c.keys.Write(quotedKey)
	c.keys.WriteByte(':')
	c.keys.Write(strconv.AppendInt(num[:0], id, 10))

	if sep == '{' {
		sep = '['
	}
	c.runs.WriteByte(sep)
	c.runs.WriteString(`{"id":`)
	c.runs.Write(strconv.AppendInt(num[:0], id, 10))
	c.runs.WriteString(`,"event":`)
	c.runs.Write(strconv.AppendInt(num[:0], event, 10))
	c.runs.WriteString(`,"okey":`)
	c.runs.Write(quotedKey)
	if chain != "" {
		q, _ := jsonenc.Append(nil, chain)
		c.runs.WriteString(`,"chain":`)
		c.runs.Write(q)
	}
	c.runs.WriteString(`,"created":`)
	c.runs.Write(strconv.AppendInt(num[:0], created, 10))
	if intentJSON != nil {
		c.runs.WriteString(`,"intent":`)
		c.runs.Write(intentJSON)
	}
	c.runs.WriteByte('}')
}

// saveClaim inserts the claim, when it holds runs.
func (s *Store) saveClaim(tx *sql.Tx, c *claimPage, recipe, owner string, until int64) error {
	if c.n == 0 {
		return nil
	}
	c.keys.WriteByte('}')
	c.runs.WriteByte(']')
	res, err := tx.Stmt(s.insClaim).Exec(recipe, owner, until, c.first, c.last, c.n)
	if err != nil {
		return fmt.Errorf("claiming %d runs with the page: %w", c.n, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("claiming %d runs with the page: %w", c.n, err)
	}
	if _, err := tx.Stmt(s.insClaimRuns).Exec(id, c.keys.String(), c.runs.String()); err != nil {
		return fmt.Errorf("claiming %d runs with the page: %w", c.n, err)
	}
	for _, pr := range c.held {
		pr.claim, pr.recipe, pr.owner, pr.leaseUntil = id, recipe, owner, until
	}
	return nil
}

// remember keeps the runs of a committed claim for takePaged.
func (s *Store) remember(c *claimPage) {
	if c.n == 0 {
		return
	}
	s.pagedMu.Lock()
	defer s.pagedMu.Unlock()
	if s.paged == nil {
		s.paged = map[int64]*pagedRun{}
	}
	for _, pr := range c.held {
		s.paged[pr.id] = pr
	}
}

// forget drops runs from what the handle remembers of its claims.
func (s *Store) forget(ids []int64) {
	s.pagedMu.Lock()
	defer s.pagedMu.Unlock()
	for _, id := range ids {
		delete(s.paged, id)
	}
}

// forgetNotHeld drops what the handle remembers of owner's runs claimed
// before a renewal that began at began and no longer held then: another
// handle wrote their claim out and took them, and nothing records them
// here any more. The runs claimed since are kept: the renewal could not
// see them.
func (s *Store) forgetNotHeld(owner string, held []int64, began int64) {
	s.pagedMu.Lock()
	defer s.pagedMu.Unlock()
	if len(s.paged) == 0 {
		return
	}
	holds := make(map[int64]bool, len(held))
	for _, id := range held {
		holds[id] = true
	}
	for id, pr := range s.paged {
		if pr.owner == owner && pr.created < began && !holds[id] {
			delete(s.paged, id)
		}
	}
}

// renewPaged renews, until the given time (nanoseconds), the page claims
// of owner that hold a run of runs (those owner names), and returns held
// with the named runs they hold appended. A claim holds its runs under
// one lease: before it is renewed, its runs owner does not name are
// written out as running rows under the lease the claim had (writeOut),
// so that a named run never keeps an unnamed one alive. A claim none of
// whose runs is named is left as it is: its lease ends, and a claim
// writes it out then (Claim).
func (s *Store) renewPaged(tx *sql.Tx, owner string, until int64, runs []int64, held []int64) ([]int64, error) {
	rows, err := tx.Stmt(s.ownerPaged).Query(owner)
	if err != nil {
		return held, fmt.Errorf("reading the runs claimed with pages: %w", err)
	}
	type claimRuns struct{ named, unnamed []int64 }
	claims := map[int64]*claimRuns{}
	names := make(map[int64]bool, len(runs))
	for _, id := range runs {
		names[id] = true
	}
	for rows.Next() {
		var claim, run int64
		if err := rows.Scan(&claim, &run); err != nil {
			rows.Close()
			return held, fmt.Errorf("reading the runs claimed with pages: %w", err)
		}
		c := claims[claim]
		if c == nil {
			c = &claimRuns{}
			claims[claim] = c
		}
		if names[run] {
			c.named = append(c.named, run)
		} else {
			c.unnamed = append(c.unnamed, run)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return held, fmt.Errorf("reading the runs claimed with pages: %w", err)
	}
	var renew []int64
	for claim, c := range claims {
		if len(c.named) == 0 {
			continue
		}
		if len(c.unnamed) > 0 {
			if err := s.writeOut(tx, claim, c.unnamed); err != nil {
				return held, err
			}
		}
		renew = append(renew, claim)
		held = append(held, c.named...)
	}
	if len(renew) > 0 {
		if _, err := tx.Stmt(s.renewClaims).Exec(until, idList(renew)); err != nil {
			return held, fmt.Errorf("renewing %d page claims: %w", len(renew), err)
		}
	}
	return held, nil
}

// writeOut writes the runs ids of page claim claim out as running rows
// of runs, leased as the claim is now, with their intents, and counts
// them out of the claim.
func (s *Store) writeOut(tx *sql.Tx, claim int64, ids []int64) error {
	paged, err := queryPaged(tx, `p.id = ? AND (j.value->>'id') IN (SELECT value FROM json_each(?))`, claim, idList(ids))
	if err != nil {
		return err
	}
	if len(paged) == 0 {
		return nil
	}
	gone, err := s.insertPaged(tx, paged, fmt.Sprintf("of page claim %d", claim))
	if err != nil {
		return err
	}
	if _, err := s.shrinkClaim(tx, claim, int64(len(gone))); err != nil {
		return err
	}
	s.forget(gone)
	return nil
}

// insertPaged inserts runs held by page claims as running rows of runs,
// in ID order (as the advance would have inserted them), with their
// intents; it returns their IDs. whose names them in errors.
func (s *Store) insertPaged(tx *sql.Tx, paged map[int64]*pagedRun, whose string) ([]int64, error) {
	var running, steps [][]any
	gone := make([]int64, 0, len(paged))
	for _, pr := range paged {
		gone = append(gone, pr.id)
		running = append(running, pr.runningRow())
		in, err := pr.intentArgs()
		if err != nil {
			return nil, err
		}
		if in != nil {
			steps = append(steps, in)
		}
	}
	slices.SortFunc(running, func(a, b []any) int { return cmp.Compare(a[0].(int64), b[0].(int64)) })
	if err := execRows(tx, &s.insRuns, running); err != nil {
		return nil, fmt.Errorf("writing out %d runs %s: %w", len(running), whose, err)
	}
	if err := execRows(tx, &s.upSteps, steps); err != nil {
		return nil, fmt.Errorf("writing out the intents of %d runs %s: %w", len(running), whose, err)
	}
	return gone, nil
}

// pagedSelect reads the runs of page claims p that are not rows of runs
// yet and did not end in a page outcome; the caller adds the condition on p and j.
const pagedSelect = `SELECT p.id, p.recipe, p.owner, p.lease_until,
		j.value->>'id', j.value->>'event', j.value->>'okey', coalesce(j.value->>'chain', ''), j.value->>'created',
		coalesce(j.value->'intent', ''), coalesce(j.value->'intent'->>'idx', -1)
	FROM page_claims p JOIN page_claim_runs c ON c.claim = p.id, json_each(c.runs) j
	WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = j.value->>'id')
	  AND NOT EXISTS (SELECT 1 FROM page_ended x WHERE x.run = j.value->>'id') AND `

// queryPaged returns the paged runs that match cond (on p, the claim, and
// j, the run), by run ID.
func queryPaged(tx *sql.Tx, cond string, args ...any) (map[int64]*pagedRun, error) {
	rows, err := tx.Query(pagedSelect+cond, args...)
	if err != nil {
		return nil, fmt.Errorf("reading the runs claimed with pages: %w", err)
	}
	defer rows.Close()
	var out map[int64]*pagedRun
	for rows.Next() {
		pr := &pagedRun{}
		var intent string
		if err := rows.Scan(&pr.claim, &pr.recipe, &pr.owner, &pr.leaseUntil, &pr.id, &pr.event, &pr.okey, &pr.chain, &pr.created, &intent, &pr.intentIdx); err != nil {
			return nil, fmt.Errorf("reading the runs claimed with pages: %w", err)
		}
		if intent != "" {
			pr.intent = []byte(intent)
		}
		if out == nil {
			out = map[int64]*pagedRun{}
		}
		out[pr.id] = pr
	}
	return out, rows.Err()
}

// takePaged writes out the runs of writes that page claims still hold:
// the first write of such a run inserts it, finished when the write has
// its outcome (the write is then done), else running, for the journal
// to record the write over it as over any run. A write under another
// token than the claim's is refused. It sets errs[i] for a refusal and
// reports the writes it did whole.
func (s *Store) takePaged(tx *sql.Tx, writes []engine.JournalWrite, errs []error) (map[int]bool, error) {
	var ids []int64
	for i, w := range writes {
		if errs[i] == nil {
			ids = append(ids, w.Lease.RunID)
		}
	}
	paged, err := s.pagedAmong(tx, ids)
	if err != nil || len(paged) == 0 {
		return nil, err
	}
	done := map[int]bool{}
	taken := map[int64]int64{} // runs written out, by claim
	var running, finals, steps, echoes [][]any
	// The runs that end here, by claim, while each could go into a page
	// outcome (outcomes.go); nil for a claim once one cannot.
	ending := map[int64][]outcomeRun{}
	for i := range writes {
		w := &writes[i]
		pr := paged[w.Lease.RunID]
		if errs[i] != nil || pr == nil {
			continue
		}
		if w.Lease.Token != pagedToken {
			errs[i] = &engine.LeaseLostError{RunID: w.Lease.RunID, Token: w.Lease.Token}
			continue
		}
		delete(paged, pr.id)
		taken[pr.claim]++
		if w.Fin == nil {
			running = append(running, pr.runningRow())
			if in, err := pr.intentArgs(); err != nil {
				return nil, err
			} else if in != nil {
				steps = append(steps, in)
			}
			continue // the journal records the write over the row
		}
		if err := s.faultAt("fin", w.Fin); err != nil {
			return nil, err
		}
		run := outcomeRun{final: pr.finalRow(w.Fin)}
		if pr.intentIdx >= 0 && !slices.ContainsFunc(w.Steps, func(r engine.StepRecord) bool { return r.Index == pr.intentIdx }) {
			in, err := pr.intentArgs()
			if err != nil {
				return nil, err
			}
			run.steps = append(run.steps, in)
		}
		for j := range w.Steps {
			r := &w.Steps[j]
			run.steps = append(run.steps, stepArgs(r))
			for _, e := range r.Wrote {
				// The echo names the run's recipe and chain: the run
				// may end in a page outcome (echowriters.go).
				echoes = append(echoes, echoArgs(r, e, pr))
			}
		}
		done[i] = true
		if outs, ok := ending[pr.claim]; (ok && outs == nil) || !outcomeStatus(w.Fin.Status) || s.rowsOnly {
			for _, o := range append(outs, run) {
				finals = append(finals, o.final)
				steps = append(steps, o.steps...)
			}
			ending[pr.claim] = nil
			continue
		}
		ending[pr.claim] = append(ending[pr.claim], run)
	}
	// The runs of a claim that end here become one page outcome when
	// each could, else rows.
	for claim, n := range taken {
		left, err := s.shrinkClaim(tx, claim, n)
		if err != nil {
			return nil, err
		}
		outs := ending[claim]
		if len(outs) == 0 {
			continue
		}
		if err := s.saveOutcomes(tx, outs, left > 0); err != nil {
			return nil, err
		}
	}
	if err := execRows(tx, &s.insRuns, running); err != nil {
		return nil, fmt.Errorf("writing out %d runs claimed with a page: %w", len(running), err)
	}
	if err := execRows(tx, &s.insFinal, finals); err != nil {
		return nil, fmt.Errorf("finishing %d runs claimed with a page: %w", len(finals), err)
	}
	if err := execRows(tx, &s.upSteps, steps); err != nil {
		return nil, fmt.Errorf("journaling the steps of %d runs claimed with a page: %w", len(running)+len(finals), err)
	}
	if err := execRows(tx, &s.upEchoes, echoes); err != nil {
		return nil, fmt.Errorf("remembering the writes of %d runs claimed with a page: %w", len(finals), err)
	}
	// The runs written out, and any this handle remembered that were
	// rows already, are forgotten, even if the transaction rolls back:
	// pagedAmong then finds them in their claims.
	var gone []int64
	for i, w := range writes {
		if done[i] || (errs[i] == nil && paged[w.Lease.RunID] == nil) {
			gone = append(gone, w.Lease.RunID)
		}
	}
	s.forget(gone)
	return done, nil
}

// pagedAmong returns the runs among ids (run IDs) that page claims hold,
// by ID: those this handle claimed from memory, any other from the
// claims themselves (their JSON is read only then).
//
// A run this handle remembers is still held by its claim when that claim
// is there, with the run in its range: a run leaves a live claim only by
// this handle (a journal write, a renewal's write-out, which forget it),
// and a claim another handle writes out is deleted whole (writeOutClaims).
// A claim ID can be given again once its claim is gone, but never with
// an earlier run in its range: run IDs only grow while a run is held or
// is a row. Any other run is looked up in the store.
func (s *Store) pagedAmong(tx *sql.Tx, ids []int64) (map[int64]*pagedRun, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	out := map[int64]*pagedRun{}
	var others, claims []int64
	s.pagedMu.Lock()
	for _, id := range ids {
		if pr := s.paged[id]; pr != nil {
			cp := *pr
			out[id] = &cp
			claims = append(claims, pr.claim)
		} else {
			others = append(others, id)
		}
	}
	s.pagedMu.Unlock()
	if len(claims) > 0 {
		// The claims' leases now (renewals move them), and their ranges.
		rows, err := tx.Stmt(s.claimLeases).Query(idList(claims))
		if err != nil {
			return nil, fmt.Errorf("reading the leases of page claims: %w", err)
		}
		type liveClaim struct{ until, first, last int64 }
		live := map[int64]liveClaim{}
		for rows.Next() {
			var id int64
			var c liveClaim
			if err := rows.Scan(&id, &c.until, &c.first, &c.last); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading the leases of page claims: %w", err)
			}
			live[id] = c
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("reading the leases of page claims: %w", err)
		}
		for id, pr := range out {
			c, ok := live[pr.claim]
			if !ok || id < c.first || id > c.last {
				delete(out, id)
				others = append(others, id)
				continue
			}
			pr.leaseUntil = c.until
		}
	}
	if len(others) == 0 {
		return out, nil
	}
	// A run that is a row of runs, or ended in a page outcome, is not
	// held by a claim.
	absent, err := columnSet[int64](tx.Stmt(s.notRuns), "looking up runs claimed with pages", idList(others))
	if err != nil || len(absent) == 0 {
		return out, err
	}
	unknown := make([]int64, 0, len(absent))
	for id := range absent {
		unknown = append(unknown, id)
	}
	slices.Sort(unknown)
	more, err := queryPaged(tx, `p.first_run <= ? AND p.last_run >= ? AND (j.value->>'id') IN (SELECT value FROM json_each(?))`,
		unknown[len(unknown)-1], unknown[0], idList(unknown))
	if err != nil {
		return nil, err
	}
	maps.Copy(out, more)
	return out, nil
}

// shrinkClaim counts n runs of claim written out, and deletes the claim
// once none is left.
func (s *Store) shrinkClaim(tx *sql.Tx, claim, n int64) (left int64, err error) {
	if err := tx.Stmt(s.takeClaim).QueryRow(n, claim).Scan(&left); err != nil {
		return 0, fmt.Errorf("counting the runs left in page claim %d: %w", claim, err)
	}
	if left <= 0 {
		if _, err := tx.Stmt(s.dropClaim).Exec(claim); err != nil {
			return 0, fmt.Errorf("deleting page claim %d: %w", claim, err)
		}
	}
	return left, nil
}

// writeOutClaims writes the runs of the page claims that match cond (on
// p) out as running rows of runs, with their intents, and deletes the
// claims.
func (s *Store) writeOutClaims(tx *sql.Tx, cond string, args ...any) error {
	paged, err := queryPaged(tx, cond, args...)
	if err != nil {
		return err
	}
	gone, err := s.insertPaged(tx, paged, "claimed with pages")
	if err != nil {
		return err
	}
	if _, err := tx.Exec(`DELETE FROM page_claims AS p WHERE `+cond, args...); err != nil {
		return fmt.Errorf("deleting page claims written out: %w", err)
	}
	s.forget(gone)
	return nil
}

// writeOutPages writes every page claim and page outcome out before an
// operator's read, so that what it reads is rows: a run claimed with a
// page a moment ago is listed as running, its intent journaled, and the
// runs of a page outcome as they ended. Without either it costs one
// read.
func (s *Store) writeOutPages(ctx context.Context) error {
	var claims, outcomes bool
	if err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM page_claims), EXISTS (SELECT 1 FROM page_outcomes)`).Scan(&claims, &outcomes); err != nil {
		return fmt.Errorf("looking for page claims: %w", err)
	}
	if claims {
		if err := s.write(ctx, func(tx *sql.Tx) error { return s.writeOutClaims(tx, `1`) }); err != nil {
			return err
		}
	}
	if outcomes {
		return s.expandAllOutcomes(ctx)
	}
	return nil
}

// writeOutClaimsNow writes every page claim out, in one transaction;
// without any it costs one read.
func (s *Store) writeOutClaimsNow(ctx context.Context) error {
	var claims bool
	if err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM page_claims)`).Scan(&claims); err != nil {
		return fmt.Errorf("looking for page claims: %w", err)
	}
	if !claims {
		return nil
	}
	return s.write(ctx, func(tx *sql.Tx) error { return s.writeOutClaims(tx, `1`) })
}
