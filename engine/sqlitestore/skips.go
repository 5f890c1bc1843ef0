package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/memberflow/memberflow/engine"
)

// skipPagesMigration: an event the recipe's condition rejects is counted in
// one row per Advance, with a bounded sample of what the condition read,
// instead of an events row and a runs row each (which made a backfill's
// store grow by about 700 bytes for every record it did not want).
const skipPagesMigration = `
CREATE TABLE skip_pages (
	id      INTEGER PRIMARY KEY,
	recipe  TEXT    NOT NULL,
	count   INTEGER NOT NULL,
	sample  BLOB,
	created INTEGER NOT NULL
);
CREATE INDEX skip_pages_by_recipe ON skip_pages(recipe, id);`

// skipPage gathers the skipped events of one Advance.
type skipPage struct {
	count  int
	sample []engine.SkippedEvent
	echoes echoesOf
	insert *sql.Stmt // insSkipPage
}

// echoesOf answers, for the events of one Advance, whether each is the
// echo of a write memberflow made (for the recipe: its own write, or one
// of a recipe in the writer's chain, or an imported one) and else the
// chain its run inherits from the writer: one query per connector and
// page, over the page's subjects, and none for a connector memberflow
// never wrote to (a file read, a service only read from).
type echoesOf struct {
	tx     *sql.Tx
	st     *sql.Stmt // pageEchoes
	anySt  *sql.Stmt // someEcho
	recipe string
	events []engine.NewEvent
	some   map[string]bool
	// written are the remembered writes of the page's subjects, by
	// connector, then subject and fingerprint.
	written map[string]map[[2]string]writtenBy
}

// writtenBy is what a remembered write says of an event in its state.
type writtenBy struct {
	echo  bool   // an echo for the recipe
	chain string // else the chain its run inherits
}

func (e *echoesOf) any(connector string) (bool, error) {
	if some, ok := e.some[connector]; ok {
		return some, nil
	}
	var one int
	err := e.tx.Stmt(e.anySt).QueryRow(connector).Scan(&one)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("looking up echoes of connector %q: %w", connector, err)
	}
	if e.some == nil {
		e.some = map[string]bool{}
	}
	e.some[connector] = err == nil
	return err == nil, nil
}

// of says what memberflow's writes make of ev: found is false when it
// never wrote ev's record in ev's state.
func (e *echoesOf) of(ev *engine.NewEvent) (w writtenBy, found bool, err error) {
	if ev.Fingerprint == "" {
		return w, false, nil
	}
	if some, err := e.any(ev.Connector); err != nil || !some {
		return w, false, err
	}
	byState, ok := e.written[ev.Connector]
	if !ok {
		if byState, err = e.load(ev.Connector); err != nil {
			return w, false, err
		}
	}
	w, found = byState[[2]string{ev.Subject, ev.Fingerprint}]
	return w, found, nil
}

// load reads the remembered writes of the page's subjects of connector.
func (e *echoesOf) load(connector string) (map[[2]string]writtenBy, error) {
	var subjects []string
	for i := range e.events {
		if ev := &e.events[i]; ev.Connector == connector && ev.Fingerprint != "" {
			subjects = append(subjects, ev.Subject)
		}
	}
	rows, err := e.tx.Stmt(e.st).Query(e.recipe, connector, jsonList(subjects))
	if err != nil {
		return nil, fmt.Errorf("looking up echoes of the page's %d subjects: %w", len(subjects), err)
	}
	defer rows.Close()
	byState := map[[2]string]writtenBy{}
	for rows.Next() {
		var subject, fp string
		var w writtenBy
		if err := rows.Scan(&subject, &fp, &w.echo, &w.chain); err != nil {
			return nil, fmt.Errorf("looking up echoes of the page's subjects: %w", err)
		}
		byState[[2]string{subject, fp}] = w
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up echoes of the page's subjects: %w", err)
	}
	if e.written == nil {
		e.written = map[string]map[[2]string]writtenBy{}
	}
	e.written[connector] = byState
	return byState, nil
}

// add counts a skipped event, unless it is the echo of a write memberflow
// made: an echo is recorded as a suppressed run, as when its condition
// holds, so add then encodes its data and returns done false.
func (p *skipPage) add(ev *engine.NewEvent) (done bool, err error) {
	w, found, err := p.echoes.of(ev)
	if err != nil {
		return false, err
	}
	if found && w.echo {
		if ev.Data == nil && ev.Encode != nil {
			if ev.Data, err = ev.Encode(); err != nil {
				return false, fmt.Errorf("event %q: encoding its data: %w", ev.ID, err)
			}
		}
		return false, nil
	}
	p.count++
	if len(ev.Values) > 0 && len(p.sample) < engine.SkipSample {
		p.sample = append(p.sample, engine.SkippedEvent{EventID: ev.ID, Subject: ev.Subject, Values: ev.Values})
	}
	return true, nil
}

// save writes the page's row, in the Advance's transaction.
func (p *skipPage) save(tx *sql.Tx, recipe string, now int64) error {
	if p.count == 0 {
		return nil
	}
	var sample []byte
	if len(p.sample) > 0 {
		var err error
		if sample, err = json.Marshal(p.sample); err != nil {
			return fmt.Errorf("encoding the sample of skipped events: %w", err)
		}
	}
	if _, err := tx.Stmt(p.insert).Exec(recipe, p.count, sample, now); err != nil {
		return fmt.Errorf("counting %d skipped event(s): %w", p.count, err)
	}
	return nil
}

var _ engine.SkipLister = (*Store)(nil)

// ListSkips implements engine.SkipLister.
func (s *Store) ListSkips(ctx context.Context, f engine.RunFilter) ([]engine.SkipPage, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := `SELECT id, recipe, count, sample, created FROM skip_pages`
	var args []any
	if f.Recipe != "" {
		q += ` WHERE recipe = ?`
		args = append(args, f.Recipe)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing skipped events: %w", err)
	}
	defer rows.Close()
	var out []engine.SkipPage
	for rows.Next() {
		var p engine.SkipPage
		var sample []byte
		var created int64
		if err := rows.Scan(&p.ID, &p.Recipe, &p.Count, &sample, &created); err != nil {
			return nil, fmt.Errorf("listing skipped events: %w", err)
		}
		p.Created = time.Unix(0, created).UTC()
		if len(sample) > 0 {
			if err := json.Unmarshal(sample, &p.Sample); err != nil {
				return nil, fmt.Errorf("listing skipped events: page %d: %w", p.ID, err)
			}
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

var _ engine.Pruner = (*Store)(nil)

// Prune implements engine.Pruner, in one transaction (then VACUUM when
// asked, which needs no other connection writing).
func (s *Store) Prune(ctx context.Context, p engine.Prune) (*engine.Pruned, error) {
	out := &engine.Pruned{BytesBefore: s.size()}
	before := p.Before.UnixNano()
	err := s.write(ctx, func(tx *sql.Tx) error {
		*out = engine.Pruned{BytesBefore: out.BytesBefore}
		// Runs claimed with pages are rows before their events are judged.
		if err := s.writeOutClaims(tx, `1`); err != nil {
			return err
		}
		// A page outcome some of whose runs ended after the cut is
		// written out, and pruned as rows.
		if _, err := s.expandOutcomesWhere(tx, true, `first_finished < ?1 AND last_finished >= ?1`, before); err != nil {
			return err
		}
		// Finished runs that are not dead letters; their events' data is
		// cleared, their IDs kept (dedup), unless another run still needs it.
		if _, err := tx.Exec(`CREATE TEMP TABLE IF NOT EXISTS prune_runs (id INTEGER PRIMARY KEY, event INTEGER NOT NULL)`); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM temp.prune_runs`); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO temp.prune_runs SELECT id, event FROM runs
			WHERE status IN ('succeeded', 'skipped', 'suppressed') AND finished IS NOT NULL AND finished < ?`, before); err != nil {
			return fmt.Errorf("selecting finished runs: %w", err)
		}
		// Those of page outcomes that ended before it go whole.
		runs, steps, err := s.prunableOutcomes(tx, before)
		if err != nil {
			return err
		}
		res, err := tx.Exec(`DELETE FROM steps WHERE run IN (SELECT id FROM temp.prune_runs)`)
		if err != nil {
			return fmt.Errorf("deleting step journals: %w", err)
		}
		out.Steps, _ = res.RowsAffected()
		res, err = tx.Exec(`UPDATE events SET data = x'' WHERE id IN (SELECT event FROM temp.prune_runs)
			AND length(data) > 0
			AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event = events.id AND r.id NOT IN (SELECT id FROM temp.prune_runs))`)
		if err != nil {
			return fmt.Errorf("clearing event data: %w", err)
		}
		out.Events, _ = res.RowsAffected()
		// The attempts replays ended go with their run (versions.go).
		if _, err := tx.Exec(`DELETE FROM attempts WHERE run IN (SELECT id FROM temp.prune_runs)`); err != nil {
			return fmt.Errorf("deleting earlier attempts: %w", err)
		}
		res, err = tx.Exec(`DELETE FROM runs WHERE id IN (SELECT id FROM temp.prune_runs)`)
		if err != nil {
			return fmt.Errorf("deleting runs: %w", err)
		}
		out.Runs, _ = res.RowsAffected()
		if _, err := tx.Exec(`DELETE FROM page_outcomes WHERE last_finished < ?`, before); err != nil {
			return fmt.Errorf("deleting page outcomes: %w", err)
		}
		out.Runs += runs
		out.Steps += steps
		res, err = tx.Exec(`DELETE FROM skip_pages WHERE created < ?`, before)
		if err != nil {
			return fmt.Errorf("deleting skip pages: %w", err)
		}
		out.SkipPages, _ = res.RowsAffected()
		_, err = tx.Exec(`DELETE FROM temp.prune_runs`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pruning the store: %w", err)
	}
	// The deletions went to the write-ahead log: folded into the database
	// and the log truncated, the size measured is what the store takes
	// (without this it grew by the log's size).
	if err := s.write(ctx, func(*sql.Tx) error { return nil }); err != nil {
		return nil, err
	}
	if _, err := s.ck.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil && p.Vacuum {
		return nil, fmt.Errorf("pruning the store: checkpoint: %w", err)
	}
	if p.Vacuum {
		if _, err := s.ck.ExecContext(ctx, `VACUUM`); err != nil {
			return nil, fmt.Errorf("pruning the store: vacuum: %w", err)
		}
	}
	out.BytesAfter = s.size()
	return out, nil
}

// size is the database's bytes on disk, its write-ahead log included.
func (s *Store) size() int64 {
	var n int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(s.path + suffix); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// prunableOutcomes adds the runs of the page outcomes whose runs all
// ended before the cut (nanoseconds) to temp.prune_runs, for their
// events' data to be cleared, and counts them and their steps. The
// outcomes are read a chunk at a time.
func (s *Store) prunableOutcomes(tx *sql.Tx, before int64) (runs, steps int64, err error) {
	for after := int64(0); ; {
		outs, err := readOutcomes(tx, `last_finished < ? AND id > ?`, before, after)
		if err != nil || len(outs) == 0 {
			return runs, steps, err
		}
		var pairs []int64 // run, event
		for _, o := range outs {
			after = o.id
			for _, r := range o.runs {
				pairs = append(pairs, r.final[0].(int64), r.final[1].(int64))
				steps += int64(len(r.steps))
			}
		}
		runs += int64(len(pairs) / 2)
		if _, err := tx.Exec(`INSERT INTO temp.prune_runs (id, event)
			SELECT value->>0, value->>1 FROM json_each(?)`, pairList(pairs)); err != nil {
			return 0, 0, fmt.Errorf("selecting the runs of page outcomes: %w", err)
		}
	}
}

// pairList is pairs (a, b, a, b, …) as a JSON array of [a, b].
func pairList(pairs []int64) string {
	b := make([]byte, 0, 20*len(pairs)+2)
	b = append(b, '[')
	for i := 0; i < len(pairs); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, pairs[i], 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, pairs[i+1], 10)
		b = append(b, ']')
	}
	return string(append(b, ']'))
}
