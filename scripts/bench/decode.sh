#!/usr/bin/env bash
# decode speed and memory against tshark, side by side in one run (issue 3, docs/PERFORMANCE.md).
#
# Builds (once, kept in $BIG_DIR, default /tmp/plcprobe-bench) the MANIFEST's throughput anchor:
# plant1_polling.pcap x 200 (295.7 MB, 3,077,400 packets) and a 4.1 GB one (x 2,800), then
# with the files in the page cache measures:
#   tshark -r BIG -Y mbtcp -T fields -e frame.number -e mbtcp.trans_id -e modbus.func_code
#   tshark -r BIG -qz io,phs
#   plcprobe decode BIG --transactions --format jsonl     (goal: >= 30x the tshark fields rate)
#   plcprobe decode BIG                                   (goal: >= 50x the tshark io,phs rate)
#   plcprobe decode BIG4G                                 (peak RSS < 64 MiB)
# tshark fields runs once (minutes), io,phs 3 times; plcprobe RUNS times (default 7); medians.
# Usage: scripts/bench/decode.sh [RUNS]     (needs ../shared/captures, python3, tshark)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
RUNS=${1:-7}
BIG_DIR=${BIG_DIR:-/tmp/plcprobe-bench}
seed=$PWD/../shared/captures/modbus-tcp/plant1_polling.pcap
[ -f "$seed" ] || { echo "needs $seed (../shared)" >&2; exit 1; }
mkdir -p "$BIG_DIR"
big=$BIG_DIR/big.pcap big4=$BIG_DIR/big4g.pcap
[ -s "$big" ] || python3 scripts/bench/make-big-capture.py "$seed" 200 "$big"
[ -s "$big4" ] || python3 scripts/bench/make-big-capture.py "$seed" 2800 "$big4"
size=$(stat -c %s "$big"); size4=$(stat -c %s "$big4")
packets=3077400
cat "$big" > /dev/null; cat "$big4" > /dev/null
export WIRESHARK_CONFIG_DIR=$work/wscfg; mkdir -p "$WIRESHARK_CONFIG_DIR"

# timed LABEL CMD...: wall seconds and peak RSS (KiB) into $work/LABEL.
timed() { local label=$1; shift; /usr/bin/time -f "%e %M" -o "$work/$label" "$@" > /dev/null 2>>"$work/stderr"; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.1f", b / s / 1e6}'; }

echo "tshark $(tshark --version | head -1 | awk '{print $3}'), plcprobe $($B --version | awk '{print $2}'), $(nproc) CPUs, $(date -u +%FT%TZ)"
# The machine is noisy (±20 % run to run): tshark io,phs runs 3 times, interleaved with
# plcprobe's runs, and medians are compared; the fields run (2+ minutes) once.
timed tshark_fields tshark -n -r "$big" -Y mbtcp -T fields -e frame.number -e mbtcp.trans_id -e modbus.func_code
read -r tf tfm < "$work/tshark_fields"
for i in $(seq "$RUNS"); do
  [ "$i" -le 3 ] && timed "phs$i" tshark -n -r "$big" -qz io,phs
  timed "tx$i" "$B" decode "$big" --transactions --format jsonl
  timed "sum$i" "$B" decode "$big"
done
tp=$(for i in 1 2 3; do cut -d' ' -f1 "$work/phs$i"; done | median)
tpm=$(for i in 1 2 3; do cut -d' ' -f2 "$work/phs$i"; done | sort -n | tail -1)
echo "tshark io,phs runs: $(for i in 1 2 3; do cut -d' ' -f1 "$work/phs$i"; done | tr '\n' ' ')"
echo "plcprobe summary runs: $(for i in $(seq "$RUNS"); do cut -d' ' -f1 "$work/sum$i"; done | tr '\n' ' ')"
echo "plcprobe transactions runs: $(for i in $(seq "$RUNS"); do cut -d' ' -f1 "$work/tx$i"; done | tr '\n' ' ')"
tx=$(for i in $(seq "$RUNS"); do cut -d' ' -f1 "$work/tx$i"; done | median)
txm=$(for i in $(seq "$RUNS"); do cut -d' ' -f2 "$work/tx$i"; done | sort -n | tail -1)
sum=$(for i in $(seq "$RUNS"); do cut -d' ' -f1 "$work/sum$i"; done | median)
summ=$(for i in $(seq "$RUNS"); do cut -d' ' -f2 "$work/sum$i"; done | sort -n | tail -1)
timed big4 "$B" decode "$big4"
read -r b4 b4m < "$work/big4"
lines=$("$B" decode "$big" --transactions --format jsonl | wc -l)

printf '\n%-62s %8s %12s %9s %10s\n' "command (file in page cache)" "wall s" "packets/s" "MB/s" "peak RSS"
row() { printf '%-62s %8s %12s %9s %7s MiB\n' "$1" "$2" "$(awk -v p="$3" -v s="$2" 'BEGIN {printf "%.0f", p / s}')" "$(rate "$4" "$2")" "$(( $5 / 1024 ))"; }
row "tshark -Y mbtcp -T fields (frame, trans_id, func_code)" "$tf" "$packets" "$size" "$tfm"
row "tshark -qz io,phs (median of 3)" "$tp" "$packets" "$size" "$tpm"
row "plcprobe decode --transactions --format jsonl (median)" "$tx" "$packets" "$size" "$txm"
row "plcprobe decode (summary, median)" "$sum" "$packets" "$size" "$summ"
row "plcprobe decode big4g.pcap (summary, 4.1 GB)" "$b4" "$(( packets * 14 ))" "$size4" "$b4m"
echo
awk -v a="$tf" -v b="$tx" 'BEGIN {printf "transactions jsonl vs tshark fields: %.1fx (goal 30x)\n", a / b}'
awk -v a="$tp" -v b="$sum" 'BEGIN {printf "summary vs tshark io,phs:          %.1fx (goal 50x)\n", a / b}'
echo "transactions written: $lines"
