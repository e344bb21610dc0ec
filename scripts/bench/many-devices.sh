#!/usr/bin/env bash
# Many devices: one `plcprobe read` of 500 simulated devices (500 loopback listeners of one
# `plcprobe sim`), one request each. Prints wall time and peak RSS of the reading process,
# medians of RUNS runs (default 5). The goal in issue 2: under 1 s and under 100 MiB.
# Usage: scripts/bench/many-devices.sh [RUNS] [DEVICES]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
DEV=${2:-500}
cargo build --release --quiet
B=$PWD/target/release/plcprobe
work=$(mktemp -d)
sim_pid=""
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
args=()
for _ in $(seq "$DEV"); do args+=(--modbus 127.0.0.1:0); done
"$B" sim profiles/demo-line.toml "${args[@]}" > "$work/sim.out" 2>&1 & sim_pid=$!
for _ in $(seq 100); do [ "$(grep -c '^listening on' "$work/sim.out" 2>/dev/null)" -ge "$DEV" ] && break; sleep 0.1; done
mapfile -t targets < <(sed -n 's/^listening on \(modbus:\/\/.*\)$/\1\/1/p' "$work/sim.out")
[ "${#targets[@]}" -eq "$DEV" ] || { echo "sim started ${#targets[@]} of $DEV listeners" >&2; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
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
