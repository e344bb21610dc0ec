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
export WIRESHARK_CONFIG_DIR=$work/wscfg; mkdir -p "$WIRESHARK_CONFIG_DIR"
timed() { local label=$1; shift; /usr/bin/time -f "%e %M" -o "$work/$label" "$@" > /dev/null 2>>"$work/stderr"; }
col() { for f in "$@"; do cut -d' ' -f"$col" "$work/$f"; done; }
echo "tshark $(tshark --version | head -1 | awk '{print $3}'), plcprobe $($B --version | awk '{print $2}') ($B), $(nproc) CPUs, $(date -u +%FT%TZ)"
printf '%-8s %-34s %8s %9s %9s %s\n' size command "wall s" "MB/s" "peak RSS" "runs"
for copies in 100 200; do
  big=$BIG_DIR/big$copies.pcap
  [ "$copies" = 200 ] && big=$BIG_DIR/big.pcap   # the name decode.sh uses
  [ -s "$big" ] || python3 scripts/bench/make-big-capture.py "$seed" "$copies" "$big" > /dev/null
  size=$(stat -L -c %s "$big"); cat "$big" > /dev/null
  phs=() new=() old=()
  for i in $(seq "$RUNS"); do
    if [ "$i" -le 3 ]; then timed "phs$copies-$i" tshark -n -r "$big" -qz io,phs; phs+=("phs$copies-$i"); fi
    timed "new$copies-$i" "$B" decode "$big"; new+=("new$copies-$i")
    if [ -n "${OLD:-}" ]; then timed "old$copies-$i" "$OLD" decode "$big"; old+=("old$copies-$i"); fi
  done
  line() { # label files...
    local label=$1; shift
    local s m; s=$(col=1 col "$@" | median); m=$(col=2 col "$@" | sort -n | tail -1)
    printf '%-8s %-34s %8s %9s %6s MiB %s\n' "$(( size / 1000000 )) MB" "$label" "$s" \
      "$(awk -v b="$size" -v s="$s" 'BEGIN {printf "%.1f", b / s / 1e6}')" "$(( m / 1024 ))" "$(col=1 col "$@" | tr '\n' ' ')"
    echo "$s" > "$work/median-$label-$copies"
  }
  line "tshark -qz io,phs" "${phs[@]}"
  line "plcprobe decode" "${new[@]}"
  [ -n "${OLD:-}" ] && line "plcprobe decode (OLD)" "${old[@]}"
  awk -v a="$(cat "$work/median-tshark -qz io,phs-$copies")" -v b="$(cat "$work/median-plcprobe decode-$copies")" \
    'BEGIN {printf "         plcprobe vs tshark io,phs: %.1fx (goal 50x)\n", a / b}'
  if [ -n "${OLD:-}" ]; then
    awk -v a="$(cat "$work/median-tshark -qz io,phs-$copies")" -v b="$(cat "$work/median-plcprobe decode (OLD)-$copies")" \
      'BEGIN {printf "         OLD vs tshark io,phs:      %.1fx\n", a / b}'
  fi
done
