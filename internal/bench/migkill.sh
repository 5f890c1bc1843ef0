#!/bin/bash
# Store migrations killed mid-way, on a LARGE store (docs/deploy.md,
# "Upgrading"): a store of about 1,000,000 runs and events, 2,000,000
# steps and 100,000 subject states at the previous schema, migrated by the
# new memberflow, which is killed (SIGKILL) after a random delay, again and
# again. After each kill:
#   * the schema is at the old version or the new one, nothing between;
#   * at the old version the old memberflow opens it, at the new one the
#     new memberflow does;
#   * no run, event, step, state, echo, page claim, cursor or value was
#     lost, duplicated or changed (counts and checksums of every table
#     before and after);
# then a migrated store is put back to the old version for the next kill
# (put_back: what this release's migrations changed undone, the version
# set back; rewrite it when a release brings another migration). At the end the new
# memberflow migrates it, "store check" reads it all, and a resumed
# "run --once" against a reset sandbox runs each run the old runner left
# pending (and each member it had not polled yet) once and nothing else.
#
# The store is made by the old memberflow (a backfill of 3,000 sandbox
# members, killed mid-way so that runs are left pending) and scaled up
# with SQL: copies of its finished runs with their events and steps, and
# of its subject states and echoes. Too slow for the test suite (minutes
# per store; internal/e2e/migkill_test.go runs the same loop on a small
# store); run it when a release brings a migration:
#
#   # the commit before the newest migration, built apart
#   git worktree add --detach /tmp/mf-old <commit> && (cd /tmp/mf-old && go build -o /tmp/mf-old.bin ./cmd/memberflow)
#   go build -o /tmp/mf-new.bin ./cmd/memberflow
#   OLD=/tmp/mf-old.bin NEW=/tmp/mf-new.bin internal/bench/migkill.sh sqlite /tmp/migkill [kills]
#   OLD=/tmp/mf-old.bin NEW=/tmp/mf-new.bin DSN=postgres://… internal/bench/migkill.sh postgres /tmp/migkill [kills]
#
# SCALE=N sets the copies (default 877 for SQLite, about 1,000,000 runs;
# 9533 for Postgres, whose backfill is killed earlier). The big store is
# kept in DIR and reused by later calls. Postgres uses the schema
# migkill_big (MEMBERFLOW_PG_SCHEMA), dropped only when the seed is made.
set -euo pipefail
KIND=${1:?usage: migkill.sh sqlite|postgres DIR [kills]}
DIR=${2:?usage: migkill.sh sqlite|postgres DIR [kills]}
KILLS=${3:-20}
: "${OLD:?OLD: the previous memberflow binary}" "${NEW:?NEW: this memberflow binary}"
RECIPE=$(cd "$(dirname "$0")" && pwd)/recipe.yaml
mkdir -p "$DIR"
cd "$DIR"

log() { echo "migkill: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

# A sandbox of 3,000 members, rate limits off, for the seed and the resume.
rm -f sandbox.url
"$NEW" sandbox --members 3000 --rate-limit off --addr 127.0.0.1:0 --ready-file sandbox.url --log-level warn >sandbox.log 2>&1 &
SANDBOX=$!
trap 'kill $SANDBOX 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s sandbox.url ] && break; sleep 0.1; done
URL=$(cat sandbox.url)
reset_sandbox() { curl -fsS -X POST "$URL/_sandbox/reset" >/dev/null; }

# kill_at starts the new memberflow's migration (store show: it opens the
# store, which migrates it, and writes nothing else) and kills it after
# the given delay, unless it ended first.
kill_at() {
  local delay=$1
  "$NEW" store show --store "$STORE" >kill.log 2>&1 &
  local pid=$!
  sleep "$delay"
  kill -9 $pid 2>/dev/null && echo killed || echo finished
  wait $pid 2>/dev/null || true
}

if [ "$KIND" = sqlite ]; then
  STORE=$DIR/work.db
  SEED=$DIR/big-old.db
  q() { sqlite3 -batch "$1" "$2"; }
  version() { q "$STORE" 'SELECT version FROM schema_version'; }
  fingerprint() {
    q "$1" "
SELECT 'events', count(*), sum(id), sum(length(event_id)), sum(length(data)), sum(received % 1000003) FROM events;
SELECT 'runs', count(*), sum(id), sum(event), sum(attempts), sum(length(okey)), sum(coalesce(finished, 0) % 1000003) FROM runs;
SELECT 'runs ' || status, count(*) FROM runs GROUP BY status;
SELECT 'steps', count(*), sum(run), sum(idx), sum(length(input)), sum(length(output)), sum(attempts) FROM steps;
SELECT 'states', count(*), hex(sha3_query('SELECT * FROM subject_states ORDER BY recipe, subject')) FROM subject_states;
SELECT 'echoes', count(*), hex(sha3_query('SELECT connector, subject, fingerprint, run, written FROM echoes ORDER BY 1, 2, 3')) FROM echoes;
SELECT 'page claims', hex(sha3_query('SELECT * FROM page_claims ORDER BY id; SELECT * FROM page_claim_runs ORDER BY claim'));
SELECT 'small tables', hex(sha3_query('SELECT * FROM cursors ORDER BY 1; SELECT * FROM meta ORDER BY 1; SELECT * FROM runners ORDER BY 1; SELECT * FROM poll_leases ORDER BY 1; SELECT * FROM skip_pages ORDER BY 1; SELECT * FROM recipe_versions ORDER BY 1, 2; SELECT * FROM attempts ORDER BY 1, 2'));"
  }
  schema() { q "$1" "SELECT type, name, sql FROM sqlite_schema WHERE name <> 'sqlite_sequence' ORDER BY name"; }
  # put_back undoes this release's migrations, from version 10: 12's
  # columns of echoes and their view; 11's steps made again as the
  # WITHOUT ROWID table it was, with its views, their text as the old
  # schema has it (OLD_STEPS, OLD_VIEWS: read from the store at first).
  put_back() {
    sqlite3 -batch "$STORE" >/dev/null <<EOF
BEGIN;
DROP VIEW IF EXISTS echo_writers;
ALTER TABLE echoes DROP COLUMN recipe;
ALTER TABLE echoes DROP COLUMN chain;
DROP VIEW dead_letters;
DROP VIEW audit;
CREATE TEMP TABLE steps_kept AS SELECT * FROM steps;
DROP TABLE steps;
$OLD_STEPS;
INSERT INTO steps SELECT * FROM steps_kept ORDER BY run, idx;
DROP TABLE steps_kept;
$OLD_VIEWS;
UPDATE schema_version SET version = $OLDV;
COMMIT;
EOF
  }
  if [ ! -s "$SEED" ]; then
    log "seeding $SEED with the old memberflow"
    rm -rf seed.db seed.db-wal seed.db-shm seed.db.runners
    "$OLD" run --sandbox-url "$URL" --store seed.db --log-level warn "$RECIPE" >seed.log 2>&1 &
    pid=$!
    # Killed once some runs ended (rows or page outcomes), so that others
    # are left pending: a fixed delay saw the whole backfill end first.
    # SEED_FOR, when set, is the delay instead.
    if [ -n "${SEED_FOR:-}" ]; then
      sleep "$SEED_FOR"
    else
      for _ in $(seq 1000); do
        n=$(q seed.db "SELECT (SELECT count(*) FROM runs WHERE status = 'succeeded') + (SELECT coalesce(sum(runs), 0) FROM page_outcomes)" 2>/dev/null || echo 0)
        [ "${n:-0}" -ge 50 ] && break
        sleep 0.01
      done
    fi
    kill -9 $pid
    wait $pid 2>/dev/null || true
    # The runs kept as page outcomes written out as rows (a read does
    # it), so that the copies below copy them.
    "$OLD" runs list --store seed.db --limit 1 >/dev/null
    log "scaling it up ($(q seed.db "SELECT count(*) FROM runs") runs; $(q seed.db "SELECT count(*) FROM page_runs") pending in page claims)"
    q seed.db "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
    cp seed.db "$SEED.tmp"
    sqlite3 -batch "$SEED.tmp" >/dev/null <<EOF
BEGIN;
CREATE TEMP TABLE ks AS WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < ${SCALE:-877}) SELECT k FROM c;
CREATE TEMP TABLE ss AS WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < 34) SELECT k FROM c;
CREATE TEMP TABLE ev AS SELECT e.* FROM events e JOIN runs r ON r.event = e.id WHERE r.status = 'succeeded';
INSERT INTO events (id, recipe, event_id, subject, fingerprint, connector, event_time, received, data)
  SELECT ks.k * 10000 + e.id, e.recipe, e.event_id || '#' || ks.k, e.subject || '#' || ks.k, e.fingerprint, e.connector, e.event_time, e.received, e.data
  FROM ks, ev e ORDER BY 1;
INSERT INTO runs (id, event, recipe, okey, status, attempts, owner, lease_until, error, condition, cond_values, created, started, finished, chain, version)
  SELECT ks.k * 10000 + r.id, ks.k * 10000 + r.event, r.recipe, r.okey || '#' || ks.k, r.status, r.attempts, r.owner, r.lease_until, r.error, r.condition, r.cond_values, r.created, r.started, r.finished, r.chain, r.version
  FROM ks, runs r WHERE r.status = 'succeeded' AND r.id < 10000 ORDER BY 1;
INSERT INTO steps (run, idx, step_id, action, status, input, output, error, attempts, started, finished)
  SELECT ks.k * 10000 + s.run, s.idx, s.step_id, s.action, s.status, s.input, s.output, s.error, s.attempts, s.started, s.finished
  FROM ks, steps s JOIN runs r ON r.id = s.run WHERE r.status = 'succeeded' AND r.id < 10000 ORDER BY 1, 2;
INSERT INTO subject_states (recipe, subject, state) SELECT t.recipe, t.subject || '#' || ss.k, t.state FROM ss, subject_states t;
INSERT INTO echoes (connector, subject, fingerprint, run, written) SELECT t.connector, t.subject || '#' || ss.k, t.fingerprint, t.run, t.written FROM ss, echoes t;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
    mv "$SEED.tmp" "$SEED"
    rm -rf "$SEED.runners"
    cp -r seed.db.runners "$SEED.runners" # the dead runner's lock file: free
  fi
  log "copying $SEED ($(du -h "$SEED" | cut -f1))"
  rm -rf "$STORE" "$STORE-wal" "$STORE-shm" "$STORE.runners"
  cp "$SEED" "$STORE"
  cp -r "$SEED.runners" "$STORE.runners"
  OLDV=$(version)
  [ "$OLDV" = 10 ] || fail "put_back undoes migrations 11 and 12: the old store must be at version 10, not $OLDV"
  OLD_STEPS=$(q "$STORE" "SELECT sql FROM sqlite_schema WHERE name = 'steps'")
  OLD_VIEWS=$(q "$STORE" "SELECT group_concat(sql, ';' || char(10)) FROM sqlite_schema WHERE name IN ('dead_letters', 'audit')")
  BASE=$(fingerprint "$STORE")
  SCHEMA=$(schema "$STORE")
  PENDING=$(q "$STORE" "SELECT count(*) FROM page_runs")
  log "schema $OLDV: $(q "$STORE" "SELECT count(*) FROM runs") runs, $(q "$STORE" "SELECT count(*) FROM events") events, $(q "$STORE" "SELECT count(*) FROM subject_states") states, $PENDING runs pending in page claims"
  # The migration uncut: how long it takes, and whether memberflow runs
  # waits for it.
  t0=$(now)
  "$NEW" store show --store "$STORE" >/dev/null &
  mig=$!
  wait $mig
  took=$(since "$t0")
  [ "$(version)" -gt "$OLDV" ] || fail "the migration did not happen"
  put_back
  t1=$(now)
  "$OLD" store show --store "$STORE" >/dev/null
  log "the migration (open included) took ${took}s; an open by the old memberflow $(since "$t1")s"
  t1=$(now)
  "$NEW" store show --store "$STORE" >/dev/null
  log "an open of the migrated store takes $(since "$t1")s"
  put_back
  fp=$(fingerprint "$STORE")
  [ "$fp" = "$BASE" ] || fail "the migration changed the data: $(diff <(echo "$BASE") <(echo "$fp"))"
else
  : "${DSN:?DSN: the Postgres database (postgres://…)}" "${OLD_PG:=$OLD}"
  export MEMBERFLOW_PG_SCHEMA=migkill_big
  STORE=$DSN
  q() { psql "$DSN" -Atq -v ON_ERROR_STOP=1 -c "SET search_path = $MEMBERFLOW_PG_SCHEMA" -c "$1"; }
  version() { q 'SELECT version FROM schema_version'; }
  fingerprint() {
    q "
SELECT 'events', count(*), sum(id), sum(length(event_id)), sum(length(data)), md5(string_agg(md5(e::text), '' ORDER BY id)) FROM events e;
SELECT 'runs', count(*), sum(id), sum(event), sum(attempts), md5(string_agg(md5((id, event, recipe, okey, status, attempts, owner, lease_until, error, condition, cond_values, created, started, finished, chain)::text), '' ORDER BY id)) FROM runs;
SELECT 'steps', count(*), md5(string_agg(md5(s::text), '' ORDER BY run, idx)) FROM steps s;
SELECT 'states', count(*), md5(string_agg(md5(t::text), '' ORDER BY recipe, subject)) FROM subject_states t;
SELECT 'echoes', count(*), md5(string_agg(md5(t::text), '' ORDER BY 1, 2, 3)) FROM echoes t;
SELECT 'small tables', (SELECT md5(coalesce(string_agg(t::text, '' ORDER BY 1), '')) FROM cursors t), (SELECT md5(coalesce(string_agg(t::text, '' ORDER BY 1), '')) FROM meta t), (SELECT md5(coalesce(string_agg(t::text, '' ORDER BY 1), '')) FROM skip_pages t);"
  }
  put_back() {
    q "ALTER TABLE runs DROP COLUMN IF EXISTS version; DROP TABLE IF EXISTS recipe_versions, attempts; UPDATE schema_version SET version = $OLDV"
  }
  if [ -z "$(q "SELECT 1 FROM pg_tables WHERE schemaname = '$MEMBERFLOW_PG_SCHEMA' AND tablename = 'runs'" 2>/dev/null || true)" ]; then
    log "seeding schema $MEMBERFLOW_PG_SCHEMA with the old memberflow"
    psql "$DSN" -q -c "DROP SCHEMA IF EXISTS $MEMBERFLOW_PG_SCHEMA CASCADE"
    "$OLD_PG" run --sandbox-url "$URL" --store "$DSN" --log-level warn "$RECIPE" >seed.log 2>&1 &
    pid=$!
    sleep "${SEED_FOR:-2.5}"
    kill -9 $pid
    wait $pid 2>/dev/null || true
    log "scaling it up ($(q "SELECT count(*) FROM runs") runs, $(q "SELECT count(*) FROM runs WHERE status <> 'succeeded'") pending)"
    psql "$DSN" -q -v ON_ERROR_STOP=1 >/dev/null <<EOF
SET search_path = $MEMBERFLOW_PG_SCHEMA;
BEGIN;
CREATE TEMP TABLE ev AS SELECT e.* FROM events e JOIN runs r ON r.event = e.id WHERE r.status = 'succeeded';
INSERT INTO events (id, recipe, event_id, subject, fingerprint, connector, event_time, received, data)
  SELECT k * 10000 + e.id, e.recipe, e.event_id || '#' || k, e.subject || '#' || k, e.fingerprint, e.connector, e.event_time, e.received, e.data
  FROM generate_series(1, ${SCALE:-9533}) k, ev e;
INSERT INTO runs (id, event, recipe, okey, status, attempts, owner, lease_until, error, condition, cond_values, created, started, finished, chain)
  SELECT k * 10000 + r.id, k * 10000 + r.event, r.recipe, r.okey || '#' || k, r.status, r.attempts, r.owner, r.lease_until, r.error, r.condition, r.cond_values, r.created, r.started, r.finished, r.chain
  FROM generate_series(1, ${SCALE:-9533}) k, runs r WHERE r.status = 'succeeded' AND r.id < 10000;
INSERT INTO steps (run, idx, step_id, action, status, input, output, error, attempts, started, finished)
  SELECT k * 10000 + s.run, s.idx, s.step_id, s.action, s.status, s.input, s.output, s.error, s.attempts, s.started, s.finished
  FROM generate_series(1, ${SCALE:-9533}) k, steps s JOIN runs r ON r.id = s.run WHERE r.status = 'succeeded' AND r.id < 10000;
INSERT INTO subject_states (recipe, subject, state) SELECT t.recipe, t.subject || '#' || k, t.state FROM generate_series(1, 63) k, subject_states t;
INSERT INTO echoes (connector, subject, fingerprint, run, written) SELECT t.connector, t.subject || '#' || k, t.fingerprint, t.run, t.written FROM generate_series(1, 63) k, echoes t;
SELECT setval(pg_get_serial_sequence('events', 'id'), (SELECT max(id) FROM events));
SELECT setval(pg_get_serial_sequence('runs', 'id'), (SELECT max(id) FROM runs));
COMMIT;
ANALYZE;
EOF
  fi
  OLDV=$(version)
  BASE=$(fingerprint)
  PENDING=$(q "SELECT count(*) FROM runs WHERE status <> 'succeeded'")
  log "schema $OLDV: $(q "SELECT count(*) FROM runs") runs, $(q "SELECT count(*) FROM events") events, $(q "SELECT count(*) FROM subject_states") states, $PENDING runs pending"
  t0=$(now)
  "$NEW" store show --store "$STORE" >/dev/null
  log "the migration (open included) took $(since "$t0")s"
  # A migration that waits for a lock (a long query on runs) holds the
  # migration lock meanwhile: memberflow runs waits for it.
  put_back
  psql "$DSN" -Atq -c "SET search_path = $MEMBERFLOW_PG_SCHEMA" -c "BEGIN; SELECT count(*) FROM runs WHERE id = 1; SELECT pg_sleep(6); COMMIT" >/dev/null &
  reader=$!
  sleep 0.5
  "$NEW" store show --store "$STORE" >blocked.log 2>&1 &
  mig=$!
  sleep 0.5
  t1=$(now)
  "$NEW" runs list --store "$STORE" --limit 1 >/dev/null 2>&1 || true
  log "behind a 6 s query on runs: memberflow runs waited $(since "$t1")s; the migration: $(wait $mig && echo done || echo "failed: $(cat blocked.log)")"
  wait $reader || true
  put_back
  [ "$(fingerprint)" = "$BASE" ] || fail "the migration changed the data"
fi

# The kills: a random delay up to the uncut migration's time and a half.
MAXDELAY=$(echo "${took:-0.3} * 1.5" | bc)
killed=0
migrated=0
for i in $(seq "$KILLS"); do
  delay=$(python3 -c "import random; print(round(random.uniform(0, $MAXDELAY), 3))")
  outcome=$(kill_at "$delay")
  v=$(version)
  case $v in
  "$OLDV")
    # The old memberflow opens it as it was.
    "${OLD_PG:-$OLD}" store show --store "$STORE" >/dev/null || fail "kill $i: the old memberflow does not open the store"
    ;;
  *)
    [ "$v" -gt "$OLDV" ] || fail "kill $i: schema version $v"
    "$NEW" store show --store "$STORE" >/dev/null || fail "kill $i: the new memberflow does not open the migrated store"
    migrated=$((migrated + 1))
    ;;
  esac
  [ "$outcome" = killed ] && killed=$((killed + 1))
  fp=$(fingerprint "$STORE")
  [ "$fp" = "$BASE" ] || fail "kill $i (after ${delay}s, $outcome): the data changed: $(diff <(echo "$BASE") <(echo "$fp"))"
  if [ "$KIND" = sqlite ] && [ "$v" = "$OLDV" ]; then
    [ "$(schema "$STORE")" = "$SCHEMA" ] || fail "kill $i: the schema changed"
  fi
  log "kill $i after ${delay}s: $outcome, schema version $v, every table as it was"
  [ "$v" = "$OLDV" ] || put_back
done
log "$KILLS kills: $killed killed mid-way, $((KILLS - killed)) finished first; $migrated left the store migrated"

# Migrated for good, checked whole, and resumed. On SQLite, memberflow
# runs is started a second into the migration: it waits for the
# migration's lock only if the migration still holds it. (It writes out
# the runs the page claims hold, as rows of runs: the resume runs them.)
if [ "$KIND" = sqlite ]; then
  "$NEW" store show --store "$STORE" >/dev/null &
  mig=$!
  sleep 1
  t1=$(now)
  "$NEW" runs list --store "$STORE" --limit 1 >/dev/null
  log "memberflow runs started during the migration took $(since "$t1")s"
  wait $mig
fi
"$NEW" store show --store "$STORE" >/dev/null
if [ "$KIND" = sqlite ]; then
  t0=$(now)
  "$NEW" store check --store "$STORE" || fail "store check"
  log "store check took $(since "$t0")s"
fi
reset_sandbox
# The store recorded the accounts at the seed's sandbox URL: the same
# accounts, reached at this sandbox's.
"$NEW" store rebind --store "$STORE" >/dev/null
"$NEW" run --once --sandbox-url "$URL" --store "$STORE" --log-level warn "$RECIPE" >resume.log 2>&1 || fail "resumed run --once: $(tail -5 resume.log)"
# The pending runs ran, and the members the killed backfill had not
# polled yet: each event has one run, finished; the sandbox holds no
# duplicate certificate. (A run the killed runner had claimed counts that
# claim as an attempt: attempts says nothing here.)
if [ "$KIND" = sqlite ]; then
  # The runs kept as page outcomes written out as rows (a read does it).
  "$NEW" runs list --store "$STORE" --limit 1 >/dev/null
  left=$(q "$STORE" "SELECT (SELECT count(*) FROM runs WHERE status IN ('queued', 'running')) + (SELECT count(*) FROM page_runs)")
  notonce=$(q "$STORE" "SELECT count(*) FROM events e WHERE (SELECT count(*) FROM runs r WHERE r.event = e.id) <> 1")
else
  left=$(q "SELECT count(*) FROM runs WHERE status IN ('queued', 'running')")
  notonce=$(q "SELECT count(*) FROM events e WHERE (SELECT count(*) FROM runs r WHERE r.event = e.id) <> 1")
fi
dups=$(curl -fsS "$URL/_sandbox/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["services"]["accredible"]["duplicates"]["credentials"])')
[ "$left$notonce$dups" = 000 ] || fail "after the resumed run --once: $left runs pending, $notonce events without exactly one run, $dups duplicate certificates"
log "resumed: the $PENDING pending runs ran once each, nothing twice ($(grep -o "[0-9]* run(s)" resume.log | head -1))"
echo "ok"
