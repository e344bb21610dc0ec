#!/usr/bin/env bash
# A check plan of DEVICES simulated devices (default 1000) x 20 points each, all on loopback:
# one `plcprobe sim` with DEVICES listeners serving a generated 20-point profile, and a plan with
# one [[device]] per listener (with a baseline each, so drift is checked too). Prints wall time and
# peak RSS of `plcprobe check`, medians of RUNS runs (default 5). Goal (issue 4): under 3 s and
# 200 MiB for 1000 devices. The plan uses the default pacing (20 requests/s per device, 5 rounds)
# and the default concurrency (128).
# Usage: scripts/bench/check-fleet.sh [RUNS] [DEVICES]
RUNS=${1:-5}
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
: > "$work/wall"; : > "$work/rss"
for r in $(seq "$RUNS"); do
  code=0
  /usr/bin/time -f "%e %M" -o "$work/t" "$B" check "$work/plan.toml" --results "$work/r.json" -q > "$work/out" || code=$?
  ok=$(grep -o '"status": "OK"' "$work/r.json" | wc -l)
  [ "$code" -eq 0 ] && [ "$ok" -eq "$DEV" ] || { echo "run $r: exit $code, $ok of $DEV devices OK" >&2; head -5 "$work/out" >&2; exit 1; }
  read -r wall rss < "$work/t"
  echo "$wall" >> "$work/wall"; echo "$rss" >> "$work/rss"
  echo "run $r: $DEV devices x 20 points checked in ${wall}s, peak RSS ${rss} KiB" >&2
done
echo "median of $RUNS runs: $DEV devices x 20 points checked (5 rounds, drift against a baseline) in $(median < "$work/wall") s wall, peak RSS $(median < "$work/rss") KiB"
