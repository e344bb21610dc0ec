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
export WIRESHARK_CONFIG_DIR=$work/wscfg; mkdir -p "$WIRESHARK_CONFIG_DIR"
timed() { local label=$1; shift; /usr/bin/time -f "%e %M" -o "$work/$label" "$@" > /dev/null 2>>"$work/stderr"; }
col() { for f in "$@"; do cut -d' ' -f"$col" "$work/$f"; done; }
size=$(stat -L -c %s "$big"); cat "$big" > /dev/null
echo "tshark $(tshark --version | head -1 | awk '{print $3}'), plcprobe $($B --version | awk '{print $2}') ($B), $(nproc) CPUs, $(date -u +%FT%TZ)"
echo "$big: $(( size / 1000000 )) MB, $COPIES copies of $(basename "$seed")"
printf '%-34s %8s %9s %9s %s\n' command "wall s" "MB/s" "peak RSS" "runs"
phs=() new=() old=()
for i in $(seq "$RUNS"); do
  if [ "$i" -le 3 ]; then timed "phs-$i" tshark -n -r "$big" -qz io,phs; phs+=("phs-$i"); fi
  timed "new-$i" "$B" decode "$big"; new+=("new-$i")
  if [ -n "${OLD:-}" ]; then timed "old-$i" "$OLD" decode "$big"; old+=("old-$i"); fi
done
line() { # label files...
  local label=$1; shift
  local s m; s=$(col=1 col "$@" | median); m=$(col=2 col "$@" | sort -n | tail -1)
  printf '%-34s %8s %9s %6s MiB %s\n' "$label" "$s" \
    "$(awk -v b="$size" -v s="$s" 'BEGIN {printf "%.1f", b / s / 1e6}')" "$(( m / 1024 ))" "$(col=1 col "$@" | tr '\n' ' ')"
  echo "$s" > "$work/median-$label"
}
line "tshark -qz io,phs" "${phs[@]}"
line "plcprobe decode" "${new[@]}"
[ -n "${OLD:-}" ] && line "plcprobe decode (OLD)" "${old[@]}"
awk -v a="$(cat "$work/median-tshark -qz io,phs")" -v b="$(cat "$work/median-plcprobe decode")" \
  'BEGIN {printf "plcprobe vs tshark io,phs: %.1fx (goal 50x)\n", a / b}'
"$B" decode "$big" | sed -n 2p
