#!/usr/bin/env bash
# Compare two plcprobe builds on OPC UA sequential reads, each as client against its own
# `sim --opcua` (so client and server changes both count), pinned to core 0, alternating
# ROUNDS times so the machine's drift hits both alike. Prints each pair and the medians.
# Usage: scripts/bench/opcua-ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [READS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
A=$1 B=$2 R=${3:-10} N=${4:-20000}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
export PLCPROBE_PKI=$work/pki
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
start() { # BINARY LOG -> URL
  taskset -c 0 "$1" sim profiles/demo-line.toml --no-modbus --opcua 127.0.0.1:0 > "$2" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do grep -q '^listening on opc.tcp' "$2" && break; sleep 0.1; done
  sed -n 's/^listening on \(opc.tcp:\/\/[^ ]*\).*/\1/p' "$2"
}
rate() { # BINARY URL
  taskset -c 0 "$1" poll "$2" "ns=2;s=Line1.press.pressure" --interval 0 --count "$N" -q --format json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["rate_per_s"])'
}
ua=$(start "$A" "$work/a.log")
ub=$(start "$B" "$work/b.log")
as=() bs=() wins=0
for i in $(seq "$R"); do
  a=$(rate "$A" "$ua"); b=$(rate "$B" "$ub")
  as+=("$a"); bs+=("$b")
  python3 -c "import sys; sys.exit(0 if $b > $a else 1)" && wins=$((wins + 1))
  echo "round $i: old $a  new $b"
done
ma=$(printf '%s\n' "${as[@]}" | median); mb=$(printf '%s\n' "${bs[@]}" | median)
echo "median old $ma  new $mb  ($(python3 -c "print(f'{($mb/$ma-1)*100:+.1f}%')")); new faster in $wins of $R rounds"
