#!/usr/bin/env bash
# What recording into a history store adds to `check` (issue 14: under 5 % of the 1000-device
# check, under 20 ms on a 10-device one). The check-fleet setup (one `plcprobe sim` with DEVICES
# loopback listeners serving the 20-point fleet profile, a plan with a baseline per device), then
# RUNS pairs of runs, alternated: `check --results` alone and `check --results --history
# store.db` (a SQLite store that grows by one run each time). Prints the medians of both and their difference, and the
# median time of recording the same results once more with `history import` into a copy of the
# store (opening it, checking its schema, one transaction) — the recording on its own, free of
# the check's own run-to-run noise.
# Usage: scripts/bench/check-history.sh [RUNS] [DEVICES]
RUNS=${1:-7}
DEV=${2:-1000}
source "$(dirname "$0")/common.sh"
fleet_profile "$work/fleet.toml"
start_sim "$work/fleet.toml" "$DEV"
mkdir -p "$work/baselines"
"$B" snapshot "${targets[0]}" --profile "$work/fleet.toml" -o "$work/baselines/base.json" -q
{
  printf '[defaults]\ntimeout = "1s"\n'
  i=0
  for t in "${targets[@]}"; do
    printf '\n[[device]]\nname = "dev%04d"\ntarget = "%s"\nprofile = "fleet.toml"\nbaseline = "baselines/base.json"\n' "$i" "$t"
    i=$((i + 1))
  done
} > "$work/plan.toml"
: > "$work/plain"; : > "$work/hist"; : > "$work/rec"
now() { date +%s.%N; }
for r in $(seq "$RUNS"); do
  t0=$(now); "$B" check "$work/plan.toml" -q --results "$work/r0.json" > /dev/null || true; t1=$(now)
  "$B" check "$work/plan.toml" -q --history "$work/store.db" --results "$work/r.json" > /dev/null || true; t2=$(now)
  echo "$t1 - $t0" | bc >> "$work/plain"
  echo "$t2 - $t1" | bc >> "$work/hist"
  # The recording alone: the same results (shifted to a new start) into a copy of the store.
  cp "$work/store.db" "$work/copy.db"
  sed "s/\"started_at\": \"\([^\"]*\)\"/\"started_at\": \"2020-01-01T00:00:$(printf %02d "$r").000Z\"/" "$work/r.json" > "$work/r2.json"
  t3=$(now); "$B" history import "$work/copy.db" "$work/r2.json" -q; t4=$(now)
  echo "$t4 - $t3" | bc >> "$work/rec"
  echo "run $r: check $(tail -1 "$work/plain") s, check --history $(tail -1 "$work/hist") s, history import of its results $(tail -1 "$work/rec") s" >&2
done
p=$(median < "$work/plain"); h=$(median < "$work/hist"); rec=$(median < "$work/rec")
echo "medians of $RUNS: $DEV devices x 20 points: check ${p} s, check --history ${h} s (difference $(echo "($h - $p) * 1000" | bc) ms, $(echo "scale=1; ($h - $p) * 100 / $p" | bc) %); history import of one run's results ${rec} s; store $(stat -c %s "$work/store.db") bytes"
