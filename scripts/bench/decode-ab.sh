#!/usr/bin/env bash
# Compare two plcprobe builds on the decode transaction rate: `decode BIG --transactions --format
# jsonl > /dev/null` (BIG = plant1_polling.pcap x 200, 3,077,400 packets, 1,598,000 rows, built
# once by decode.sh's generator), alternating ROUNDS times so the machine's drift hits both alike.
# Prints each pair, the medians in rows per second, and that both wrote the same number of rows.
# Usage: scripts/bench/decode-ab.sh OLD_BINARY NEW_BINARY [ROUNDS]   (needs ../shared, python3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
A=$1 B=$2 R=${3:-7}
BIG_DIR=${BIG_DIR:-/tmp/plcprobe-bench}
seed=$PWD/../shared/captures/modbus-tcp/plant1_polling.pcap
[ -f "$seed" ] || { echo "needs $seed (../shared)" >&2; exit 1; }
mkdir -p "$BIG_DIR"
big=$BIG_DIR/big.pcap
[ -s "$big" ] || python3 scripts/bench/make-big-capture.py "$seed" 200 "$big"
cat "$big" > /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rows_a=$("$A" decode "$big" --transactions --format jsonl | wc -l)
rows_b=$("$B" decode "$big" --transactions --format jsonl | wc -l)
secs() { /usr/bin/time -f %e -o "$work/t" "$1" decode "$big" --transactions --format jsonl > /dev/null; cat "$work/t"; }
as=() bs=()
for i in $(seq "$R"); do
  a=$(secs "$A"); b=$(secs "$B")
  as+=("$a"); bs+=("$b")
  echo "round $i: old $a s  new $b s"
done
ma=$(printf '%s\n' "${as[@]}" | median); mb=$(printf '%s\n' "${bs[@]}" | median)
echo "rows: old $rows_a  new $rows_b"
python3 -c "a,b,n=$ma,$mb,$rows_a; print(f'median old {a} s ({n/a:,.0f} rows/s)  new {b} s ({n/b:,.0f} rows/s)  ({(a/b-1)*100:+.1f}% rate)')"
