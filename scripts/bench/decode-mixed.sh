#!/usr/bin/env bash
# Issue 15's speed figure: the summary decode of the mixed plant capture (Modbus/TCP, S7comm,
# EtherNet/IP-CIP and the rest of a plant's traffic: ../shared/captures/modbus-tcp/
# plant1_mixed_master_modbus_s7_enip.pcap) replicated to ~150 MB, side by side with tshark
# `-qz io,phs` in one run: wall time (median of RUNS, tshark 3 runs), MB/s and peak RSS.
# Goal: >= 50x tshark, <= 64 MiB.
#
# usage: scripts/bench/decode-mixed.sh [RUNS] [COPIES]     (defaults 7 and 75: 147 MB)
#        PLCPROBE_BIN=target/fast/plcprobe ...; OLD=/path/to/other/plcprobe adds its runs
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
RUNS=${1:-7}
COPIES=${2:-75}
BIG_DIR=${BIG_DIR:-/tmp/plcprobe-bench}
seed=$PWD/../shared/captures/modbus-tcp/plant1_mixed_master_modbus_s7_enip.pcap
[ -f "$seed" ] || { echo "needs $seed (../shared)" >&2; exit 1; }
mkdir -p "$BIG_DIR"
big=$BIG_DIR/mixed$COPIES.pcap
[ -s "$big" ] || python3 scripts/bench/make-big-capture.py "$seed" "$COPIES" "$big" > /dev/null
decode_header
echo "$big: $COPIES copies of $(basename "$seed")"
decode_vs_tshark "$big" "$RUNS"
"$B" decode "$big" | sed -n 2p
