package sqlitestore

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// The ordering keys page claims hold, as an advance checks them. A key
// that a page claim of any runner holds gets no run claimed with the
// page; page_runs says which keys are held, but asking it decodes the
// keys of every live claim and looks each of their runs up, at every
// advance, to find that almost none of the page's keys is among them.
//
// A claim's keys are written once (page_claim_runs.keys) and never
// change while it lives: only which of its runs it still holds does. So
// the writer keeps the keys of the live claims decoded, by their text as
// stored (an entry can only ever describe the text it was decoded from,
// whichever claim holds that text now), and asks page_runs only about
// the claims that have one of the page's keys. That is exact as long as
// page_runs' keys of a claim are among the keys of its text, which holds
// for any condition page_runs puts on the runs.

// keySet is the ordering keys of a page claim (with each key's run); nil
// when they are not decoded here (a claim page_runs is always asked
// about).
type keySet map[string]int64

// claimKeys are the key sets of the page claims the writer saw live at
// its last advance, by their text; only the committer reads or writes it.
type claimKeys map[string]keySet

// decodeKeySet decodes a claim's keys as claimPage writes them
// ({"key":run,…}, no space), or returns nil for any other text: one
// with an escape, whose keys could decode otherwise here than in SQLite
// (what json.Marshal writes never needs one for a plain key), or that is
// not such an object. A key shares text's memory. (encoding/json took
// half a millisecond for a page's claim.)
func decodeKeySet(text string) keySet {
	if len(text) < 2 || text[0] != '{' || strings.IndexByte(text, '\\') >= 0 {
		return nil
	}
	set := make(keySet, strings.Count(text, ":"))
	rest := text[1:]
	if rest == "}" {
		return set
	}
	for {
		// "key":run followed by , or }
		if len(rest) == 0 || rest[0] != '"' {
			return nil
		}
		end := strings.IndexByte(rest[1:], '"') + 1
		if end == 0 || end+1 >= len(rest) || rest[end+1] != ':' {
			return nil
		}
		key := rest[1:end]
		rest = rest[end+2:]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		run, err := strconv.ParseInt(rest[:n], 10, 64)
		if err != nil || n == len(rest) {
			return nil
		}
		set[key] = run
		switch rest[n] {
		case ',':
			rest = rest[n+1:]
		case '}':
			if n+1 != len(rest) {
				return nil
			}
			return set
		default:
			return nil
		}
	}
}

// claimsHolding returns the live page claims that may hold one of keys:
// those whose keys include one, and those whose keys are not decoded
// here. It lists the live claims' keys (one row each) and decodes only
// those it has not seen before.
func (s *Store) claimsHolding(tx *sql.Tx, keys []string) ([]int64, error) {
	rows, err := tx.Stmt(s.liveClaimKeys).Query()
	if err != nil {
		return nil, fmt.Errorf("reading the keys of page claims: %w", err)
	}
	defer rows.Close()
	live := make(claimKeys, len(s.claimKeys))
	var holding []int64
	for rows.Next() {
		var id int64
		var text string
		if err := rows.Scan(&id, &text); err != nil {
			return nil, fmt.Errorf("reading the keys of page claims: %w", err)
		}
		set, ok := s.claimKeys[text]
		if !ok {
			set = decodeKeySet(text)
		}
		live[text] = set
		if set == nil || set.holdsAny(keys) {
			holding = append(holding, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the keys of page claims: %w", err)
	}
	// The claims gone are forgotten. (After a rollback live may describe
	// texts no claim has: they are never matched by another text.)
	s.claimKeys = live
	return holding, nil
}

func (set keySet) holdsAny(keys []string) bool {
	for _, k := range keys {
		if _, ok := set[k]; ok {
			return true
		}
	}
	return false
}
