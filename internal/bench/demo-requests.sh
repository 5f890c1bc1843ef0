#!/bin/bash
# Requests each example recipe sends, by service and route: for every
# recipe file, reset a sandbox (rate limits off, --members members, seed
# 1), run the recipe once on a fresh store, and read the sandbox's request
# counts (GET /_sandbox/stats). docs/benchmarks.md ("Requests per member")
# sets them beside the fewest the APIs allow.
#
#   go build -o memberflow ./cmd/memberflow
#   MEMBERFLOW=./memberflow internal/bench/demo-requests.sh [members] [recipe.yaml...]
#
# CONCURRENCY=N passes --concurrency N to run (the runs at once, and so
# the most calls of one step a batch form gathers).
set -euo pipefail
MF=${MEMBERFLOW:-memberflow}
MEMBERS=${1:-100}
shift || true
RECIPES=("$@")
if [ ${#RECIPES[@]} -eq 0 ]; then
  RECIPES=($(ls examples/*/*.yaml | grep -v '\.test\.yaml$'))
fi
TMP=$(mktemp -d)
"$MF" sandbox --addr 127.0.0.1:0 --members "$MEMBERS" --seed 1 --rate-limit off --ready-file "$TMP/ready" --log-level error >/dev/null 2>"$TMP/sandbox.err" &
SB=$!
trap 'kill $SB 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 300); do [ -s "$TMP/ready" ] && break; sleep 0.1; done
URL=$(cat "$TMP/ready")
for f in "${RECIPES[@]}"; do
  curl -fsS -X POST "$URL/_sandbox/reset" >/dev/null
  rm -rf "$TMP/store" && mkdir "$TMP/store"
  summary=$("$MF" run --once ${CONCURRENCY:+--concurrency "$CONCURRENCY"} --sandbox-url "$URL" --store "$TMP/store/s.db" "$f" 2>"$TMP/err" | tail -n 1) || { echo "$f: run failed: $(tail -n 3 "$TMP/err")"; continue; }
  curl -fsS "$URL/_sandbox/stats" | F="$f" S="$summary" python3 -c '
import json, os, sys
st = json.load(sys.stdin)
print("%s: %d requests  [%s]" % (os.environ["F"], st["totals"]["requests"], os.environ["S"]))
for svc, v in sorted(st["services"].items()):
    for route, n in sorted(v.get("requests", {}).items()):
        print("    %-12s %-60s %6d" % (svc, route, n))
'
done
