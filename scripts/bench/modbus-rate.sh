#!/usr/bin/env bash
# Sequential Modbus TCP request rate, 125 holding registers per request, 100,000 requests:
#   1. libmodbus's own bandwidth-client  vs  plcprobe poll, both against libmodbus's
#      bandwidth-server-many-up (built from Debian's source package by libmodbus-peers.sh);
#   2. plcprobe poll against plcprobe sim (same profile shape: 125 contiguous u16 registers).
# Client and server are pinned to one core (taskset -c 0): on 2 cores, where they sit changes a
# request loop's rate 3-10x. Runs alternate, RUNS times each (default 5); medians are printed.
# Usage: scripts/bench/modbus-rate.sh [RUNS]
RUNS=${1:-5}
N=100000
source "$(dirname "$0")/common.sh"
L=$(scripts/bench/libmodbus-peers.sh)

(cd "$work" && exec taskset -c 0 "$L/bandwidth-server-many-up" >/dev/null 2>&1) & bench_pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/1502) 2>/dev/null && break; sleep 0.1; done

# A profile of 125 contiguous u16 registers for the simulator.
{ printf '[device]\nname = "bench 125 registers"\n'; for i in $(seq 0 124); do printf '[[point]]\nname = "r%d"\naddress = "hr:%d"\nsim = { value = %d }\n' "$i" "$i" "$i"; done; } > "$work/bench125.toml"
taskset -c 0 "$B" sim "$work/bench125.toml" --modbus 127.0.0.1:0 > "$work/sim.out" 2>&1 & bench_pids+=($!)
for _ in $(seq 50); do grep -q "listening on" "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
SIM=$(sed -n 's/^listening on modbus:\/\/\(.*\)$/\1/p' "$work/sim.out" | head -1)

rate_plcprobe() { taskset -c 0 "$B" poll "modbus://$1/1" hr:0+125 --interval 0 --count $N -q --format json | sed 's/.*"elapsed_s":\([0-9.]*\).*/\1/' | awk -v n=$N '{printf "%.0f\n", n/$1}'; }
rate_libmodbus() { taskset -c 0 "$L/bandwidth-client" tcp | sed -n '/READ REGISTERS/,/WRITE AND/p' | sed -n 's/^\* \([0-9.]*\) ms for .*/\1/p' | head -1 | awk -v n=$N '{printf "%.0f\n", n/($1/1000)}'; }

: > "$work/lm"; : > "$work/pp"; : > "$work/ps"
for r in $(seq "$RUNS"); do
  rate_libmodbus >> "$work/lm"
  rate_plcprobe 127.0.0.1:1502 >> "$work/pp"
  rate_plcprobe "$SIM" >> "$work/ps"
  echo "run $r: libmodbus client $(tail -1 "$work/lm")  plcprobe→libmodbus server $(tail -1 "$work/pp")  plcprobe→plcprobe sim $(tail -1 "$work/ps") req/s" >&2
done
lm=$(median < "$work/lm"); pp=$(median < "$work/pp"); ps=$(median < "$work/ps")
echo "median of $RUNS runs, $N requests x 125 registers, client and server on core 0:"
echo "  libmodbus bandwidth-client -> bandwidth-server-many-up : $lm req/s"
echo "  plcprobe poll              -> bandwidth-server-many-up : $pp req/s ($(awk -v a="$pp" -v b="$lm" 'BEGIN{printf "%.2f", a/b}')x libmodbus)"
echo "  plcprobe poll              -> plcprobe sim             : $ps req/s"
