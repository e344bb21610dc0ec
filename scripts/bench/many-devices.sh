#!/usr/bin/env bash
# Many devices: one `plcprobe read` of 500 simulated devices (500 loopback listeners of one
# `plcprobe sim`), one request each. Prints wall time and peak RSS of the reading process,
# medians of RUNS runs (default 5). The goal in issue 2: under 1 s and under 100 MiB.
# Usage: scripts/bench/many-devices.sh [RUNS] [DEVICES]
RUNS=${1:-5}
DEV=${2:-500}
source "$(dirname "$0")/common.sh"
start_sim profiles/demo-line.toml "$DEV"
: > "$work/wall"; : > "$work/rss"
for r in $(seq "$RUNS"); do
  /usr/bin/time -f "%e %M" -o "$work/t" "$B" read "${targets[@]}" hr:106 --format csv > "$work/out.csv"
  ok=$(grep -c ',ok$' "$work/out.csv")
  [ "$ok" -eq "$DEV" ] || { echo "run $r: only $ok of $DEV devices answered" >&2; exit 1; }
  read -r wall rss < "$work/t"
  echo "$wall" >> "$work/wall"; echo "$rss" >> "$work/rss"
  echo "run $r: $DEV devices answered in ${wall}s, peak RSS ${rss} KiB" >&2
done
echo "median of $RUNS runs: $DEV devices read once each in $(median < "$work/wall") s wall, peak RSS $(median < "$work/rss") KiB"
