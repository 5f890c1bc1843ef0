#!/bin/bash
# Requests each example recipe sends, by service and route: for every
# recipe file, reset a sandbox (--members members, seed 1), run the recipe
# once on a fresh store, and read the sandbox's request counts (GET
# /_sandbox/stats). docs/benchmarks.md ("Requests per member") sets them
# beside the fewest the APIs allow.
#
#   go build -o memberflow ./cmd/memberflow
#   MEMBERFLOW=./memberflow internal/bench/demo-requests.sh [members] [recipe.yaml...]
#
# CONCURRENCY=N passes --concurrency N to run (the runs at once, and so
# the most calls of one step a batch form gathers).
#
# LIMITS=documented keeps the sandbox's documented rate limits (else they
# are off; the connections of examples/connections.yaml pace themselves
# at the documented rates either way) and prints each run's wall time
# beside the least the limits allow: the busiest service's requests over
# its allowed rate (memberships 100 per 10 s, accredible 2,000 per 5
# minutes; Accelevents documents none: 25 per second, the pace its
# connections keep by default, half the sandbox's 50).
set -euo pipefail
MF=${MEMBERFLOW:-memberflow}
MEMBERS=${1:-100}
shift || true
RECIPES=("$@")
if [ ${#RECIPES[@]} -eq 0 ]; then
  RECIPES=($(ls examples/*/*.yaml | grep -v '\.test\.yaml$'))
fi
LIMIT_FLAG=(--rate-limit off)
if [ "${LIMITS:-off}" = documented ]; then
  LIMIT_FLAG=()
fi
TMP=$(mktemp -d)
"$MF" sandbox --addr 127.0.0.1:0 --members "$MEMBERS" --seed 1 "${LIMIT_FLAG[@]}" --ready-file "$TMP/ready" --log-level error >/dev/null 2>"$TMP/sandbox.err" &
SB=$!
trap 'kill $SB 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 300); do [ -s "$TMP/ready" ] && break; sleep 0.1; done
URL=$(cat "$TMP/ready")
for f in "${RECIPES[@]}"; do
  curl -fsS -X POST "$URL/_sandbox/reset" >/dev/null
  rm -rf "$TMP/store" && mkdir "$TMP/store"
  start=$(date +%s.%N)
  summary=$("$MF" run --once ${CONCURRENCY:+--concurrency "$CONCURRENCY"} --sandbox-url "$URL" --store "$TMP/store/s.db" "$f" 2>"$TMP/err" | tail -n 1) || { echo "$f: run failed: $(tail -n 3 "$TMP/err")"; continue; }
  end=$(date +%s.%N)
  curl -fsS "$URL/_sandbox/stats" | F="$f" S="$summary" WALL=$(echo "$end - $start" | bc) python3 -c '
import json, os, sys
st = json.load(sys.stdin)
rate = {"memberships": 10.0, "accredible": 2000 / 300.0, "accelevents": 25.0}
least, busiest = 0.0, ""
for svc, v in st["services"].items():
    n = sum(v.get("requests", {}).values())
    if svc in rate and n / rate[svc] > least:
        least, busiest = n / rate[svc], svc
wall = float(os.environ["WALL"])
print("%s: %d requests  [%s]" % (os.environ["F"], st["totals"]["requests"], os.environ["S"]))
print("    wall %.1f s; requests / allowed rate %.1f s (%s); ratio %.2f" % (wall, least, busiest, wall / least if least else 0))
for svc, v in sorted(st["services"].items()):
    for route, n in sorted(v.get("requests", {}).items()):
        print("    %-12s %-60s %6d" % (svc, route, n))
'
done
