#!/bin/bash
# The file job beside Redpanda Connect: whole processes on the same member
# lines, in turn (A B A B …, so that a shared machine's drift hits both),
# each in a fresh folder (memberflow with a fresh store). Prints every
# run, then each side's medians and the median of the pair ratios
# (memberflow over Redpanda Connect): wall, CPU, peak RSS. Both outputs
# must hold the same credentials, or it fails. docs/benchmarks.md ("The
# file job beside Redpanda Connect") explains the job and the figures.
#
#   go build -o memberflow ./cmd/memberflow
#   MEMBERFLOW=./memberflow internal/bench/pipeline-vs.sh REDPANDA_CONNECT [lines] [pairs]
#
# REDPANDA_CONNECT is its binary (redpanda-connect, or a build of its open
# core as docs/benchmarks.md shows); it runs redpanda-pipeline.yaml, beside
# this script. lines defaults to 100000, pairs to 8. Needs GNU time
# (/usr/bin/time).
set -euo pipefail
RPC=${1:?usage: pipeline-vs.sh REDPANDA_CONNECT [lines] [pairs]}
LINES=${2:-100000}
PAIRS=${3:-8}
MF=${MEMBERFLOW:-memberflow}
HERE=$(cd "$(dirname "$0")" && pwd)
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "pipeline-vs.sh: needs GNU time at $TIME" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The member lines (memberflow bench writes them, seed 1, and runs the job
# once: a warm-up for the caches of both).
"$MF" bench --pipeline --lines "$LINES" --dir "$WORK/job" >/dev/null
cp "$HERE/pipeline.yaml" "$WORK/job.yaml"

# run SIDE prints "SIDE wall user sys maxrss_kb lines" for one run.
run() {
  local side=$1 dir
  dir=$(mktemp -d "$WORK/run.XXXX")
  if [ "$side" = memberflow ]; then
    ln -s "$WORK/job/members.jsonl" "$dir/members.jsonl"
    (cd "$dir" && "$TIME" -o "$dir/time" -f '%e %U %S %M' "$MF" run --once --store s.db "$WORK/job.yaml" >/dev/null 2>"$dir/err") ||
      { cat "$dir/err" >&2; exit 1; }
    out=$dir/credentials.jsonl
  else
    MEMBERS=$WORK/job/members.jsonl OUT=$dir/out.jsonl "$TIME" -o "$dir/time" -f '%e %U %S %M' \
      "$RPC" run "$HERE/redpanda-pipeline.yaml" >/dev/null 2>"$dir/err" || { cat "$dir/err" >&2; exit 1; }
    out=$dir/out.jsonl
  fi
  sort "$out" >"$dir/sorted"
  echo "$side $(cat "$dir/time") $(wc -l <"$out") $dir/sorted"
}

results=$WORK/results
for i in $(seq "$PAIRS"); do
  a=$(run memberflow)
  b=$(run redpanda)
  echo "$a" | cut -d' ' -f1-6
  echo "$b" | cut -d' ' -f1-6
  if ! cmp -s "$(echo "$a" | cut -d' ' -f7)" "$(echo "$b" | cut -d' ' -f7)"; then
    echo "pipeline-vs.sh: pair $i: the two outputs differ" >&2
    exit 1
  fi
  echo "$a $b" >>"$results"
done

# Medians of each side, and of the pair ratios.
awk -v pairs="$PAIRS" '
function median(v, n,    i, j, t) {
  for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
  return n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
}
{
  n++
  aw[n] = $2; ac[n] = $3 + $4; am[n] = $5 / 1024
  bw[n] = $9; bc[n] = $10 + $11; bm[n] = $12 / 1024
  rw[n] = $2 / $9; rc[n] = ($3 + $4) / ($10 + $11); rm[n] = $5 / $12
}
END {
  printf "\n%d pairs, %d credentials each    memberflow  Redpanda Connect  ratio (median of pairs)\n", n, $6
  printf "wall s          %20.3f %17.3f %8.3f  (%.1fx its events/s)\n", median(aw, n), median(bw, n), median(rw, n), 1 / median(rw, n)
  printf "CPU s           %20.3f %17.3f %8.3f\n", median(ac, n), median(bc, n), median(rc, n)
  printf "peak RSS MiB    %20.1f %17.1f %8.3f\n", median(am, n), median(bm, n), median(rm, n)
}' "$results"
