#!/usr/bin/env bash
# Sequential Modbus RTU reads on pseudo-terminals (no line-rate limit: a pty ignores the baud
# rate), 10 holding registers per read, 19200 baud 8N1 as the peers are set up:
#   servers: pymodbus's RTU server (tests/peers/pymodbus_rtu_server.py) and `plcprobe sim --rtu`,
#            each on one end of its own socat pty pair;
#   clients: plcprobe poll, pymodbus's RTU client (tests/peers/pymodbus_rtu_client.py) and
#            mbpoll (-m rtu), each against both servers, alternating, RUNS times (default 3).
# plcprobe honours the t3.5 silence before every request (1.82 ms at 19200 8N1), as the serial-line
# spec asks; pymodbus's client polls the port every 4 character times; mbpoll cannot poll faster
# than every 10 ms (-l 10, its floor), so its figure is its ceiling, not its speed.
# Everything is pinned to core 0 (taskset), as the other request-rate benchmarks are.
# Usage: scripts/bench/rtu-rate.sh [RUNS]
RUNS=${1:-3}
N=${N:-2000}
source "$(dirname "$0")/common.sh"
PY=$PWD/.venv/bin/python
command -v socat >/dev/null && command -v mbpoll >/dev/null && [ -x "$PY" ] || { echo "needs socat, mbpoll and .venv (scripts/test installs them)" >&2; exit 1; }

pty_pair() { # pty_pair NAME: socat pair, ends in $work/NAME.a and $work/NAME.b
  taskset -c 0 socat -d -d pty,raw,echo=0 pty,raw,echo=0 2> "$work/$1.log" & bench_pids+=($!)
  for _ in $(seq 50); do [ "$(grep -c 'PTY is' "$work/$1.log")" -ge 2 ] && break; sleep 0.1; done
  grep -o '/dev/pts/[0-9]*' "$work/$1.log" | sed -n 1p > "$work/$1.a"
  grep -o '/dev/pts/[0-9]*' "$work/$1.log" | sed -n 2p > "$work/$1.b"
}
pty_pair py; pty_pair sim
taskset -c 0 "$PY" tests/peers/pymodbus_rtu_server.py --serial "$(cat "$work/py.a")" > "$work/pyserver.out" 2>&1 & bench_pids+=($!)
# The simulator serves 200 contiguous u16 registers, as pymodbus's map holds hr:0..200.
{ printf '[device]\nname = "bench 200 registers"\n'; for i in $(seq 0 199); do printf '[[point]]\nname = "r%d"\naddress = "hr:%d"\nsim = { value = %d }\n' "$i" "$i" "$i"; done; } > "$work/bench200.toml"
taskset -c 0 "$B" sim "$work/bench200.toml" --rtu "rtu://$(cat "$work/sim.a")?frame=8N1" > "$work/simserver.out" 2>&1 & bench_pids+=($!)
for _ in $(seq 100); do grep -q "rtu server on" "$work/pyserver.out" && grep -q "listening on" "$work/simserver.out" && break; sleep 0.1; done

rate_plcprobe() { taskset -c 0 "$B" poll "rtu://$1?baud=19200&frame=8N1&unit=1" hr:100+10 --interval 0 --count "$N" -q --format json | sed 's/.*"elapsed_s":\([0-9.]*\).*/\1/' | awk -v n="$N" '{printf "%.0f\n", n/$1}'; }
rate_pymodbus() { taskset -c 0 "$PY" tests/peers/pymodbus_rtu_client.py --serial "$1" --unit 1 --count "$N" --read hr:100+10 | sed 's/.*"seconds": *\([0-9.]*\).*/\1/' | awk -v n="$N" '{printf "%.0f\n", n/$1}'; }
rate_mbpoll() { # 5 s of polling every 10 ms (mbpoll's floor), answers counted
  local n
  n=$( (timeout -s INT 5 taskset -c 0 mbpoll -m rtu -b 19200 -P none -a 1 -r 101 -c 10 -l 10 "$1" 2>/dev/null || true) | grep -c '^\[101\]')
  echo $((n / 5))
}

for c in plcprobe pymodbus mbpoll; do for s in py sim; do : > "$work/$c.$s"; done; done
for r in $(seq "$RUNS"); do
  line="run $r:"
  for s in py sim; do
    end=$(cat "$work/$s.b")
    for c in plcprobe pymodbus mbpoll; do
      "rate_$c" "$end" >> "$work/$c.$s"
      line+=" $c→$s $(tail -1 "$work/$c.$s")"
    done
  done
  echo "$line req/s" >&2
done
echo "median of $RUNS runs, $N reads x 10 registers (mbpoll: 5 s at -l 10), 19200 8N1 on ptys, core 0:"
for s in py sim; do
  name=$([ "$s" = py ] && echo "pymodbus RTU server" || echo "plcprobe sim --rtu")
  for c in plcprobe pymodbus mbpoll; do
    printf '  %-9s -> %-20s: %s req/s\n' "$c" "$name" "$(median < "$work/$c.$s")"
  done
done
