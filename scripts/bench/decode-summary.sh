#!/usr/bin/env bash
# decode's summary against tshark's `-qz io,phs` on the 150 MB and 300 MB replicated captures, in
# one run (issue 13 "Speed": >= 50x on both sizes, peak RSS <= 64 MiB; docs/PERFORMANCE.md).
#
# The captures are the MANIFEST's throughput anchor rebuilt by make-big-capture.py (kept in
# $BIG_DIR, default /tmp/plcprobe-bench): plant1_polling.pcap x 100 (147.9 MB) and x 200
# (295.7 MB). With the files in the page cache, for each size: tshark io,phs 3 times, interleaved
# with plcprobe's RUNS runs (default 7) of `plcprobe decode BIG > /dev/null`; medians compared.
# OLD=BINARY adds that build's runs, interleaved too (before/after in the same run).
# Usage: scripts/bench/decode-summary.sh [RUNS]   (needs ../shared/captures, python3, tshark)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
RUNS=${1:-7}
BIG_DIR=${BIG_DIR:-/tmp/plcprobe-bench}
seed=$PWD/../shared/captures/modbus-tcp/plant1_polling.pcap
[ -f "$seed" ] || { echo "needs $seed (../shared)" >&2; exit 1; }
mkdir -p "$BIG_DIR"
decode_header
for copies in 100 200; do
  big=$BIG_DIR/big$copies.pcap
  [ "$copies" = 200 ] && big=$BIG_DIR/big.pcap   # the name decode.sh uses
  [ -s "$big" ] || python3 scripts/bench/make-big-capture.py "$seed" "$copies" "$big" > /dev/null
  decode_vs_tshark "$big" "$RUNS"
done
