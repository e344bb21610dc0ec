#!/usr/bin/env bash
# OPC UA benchmarks (issue 5), loopback only, client and server pinned to one core (taskset -c 0),
# medians of 3:
#  1. sequential reads of one node: plcprobe (`poll --interval 0`) vs the asyncua client
#     (tests/peers/asyncua_client.py --bench), against `plcprobe sim --opcua` and against the
#     asyncua server of tests/peers;
#  2. a read of 1,000 nodes (one profile, batched) against the simulator;
#  3. `watch` of 1,000 monitored items at 100 ms for WATCH_S seconds: data changes per second and
#     the client's RSS over time.
# Needs the test venv (scripts/test makes it). Usage: scripts/bench/opcua.sh [READS] [WATCH_S]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
N=${1:-20000}
WATCH_S=${2:-60}
PY=$PWD/.venv/bin/python
export PLCPROBE_PKI=$work/pki
pin() { taskset -c 0 "$@"; }

# start_ua LOG CMD…: start a server pinned to core 0, wait for its port, echo its URL.
start_ua_sim() {
  local profile=$1 log=$work/sim-$RANDOM.log
  pin "$B" sim "$profile" --no-modbus --opcua 127.0.0.1:0 > "$log" 2>&1 & bench_pids+=($!)
  for _ in $(seq 300); do grep -q '^listening on opc.tcp' "$log" && break; sleep 0.1; done
  sed -n 's/^listening on \(opc.tcp:\/\/[^ ]*\).*/\1/p' "$log"
}

plcprobe_rate() { # URL NODE
  pin "$B" poll "$1" "$2" --interval 0 --count "$N" -q --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["rate_per_s"])'
}
asyncua_rate() { # URL NODE
  pin "$PY" tests/peers/asyncua_client.py "$1" "$2" --bench "$N" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["rate"]))'
}
compare() { # LABEL URL NODE
  local a=() b=()
  for _ in 1 2 3; do a+=("$(plcprobe_rate "$2" "$3")"); b+=("$(asyncua_rate "$2" "$3")"); done
  local ma mb
  ma=$(printf '%s\n' "${a[@]}" | median); mb=$(printf '%s\n' "${b[@]}" | median)
  printf '%-32s plcprobe %8.0f reads/s (runs %s)   asyncua %8.0f reads/s (runs %s)   ratio %.2fx\n' \
    "$1" "$ma" "${a[*]}" "$mb" "${b[*]}" "$(python3 -c "print($ma/$mb)")"
}

echo "== 1. sequential reads of one node, $N per run, pinned to core 0, medians of 3"
url=$(start_ua_sim profiles/demo-line.toml)
compare "vs plcprobe sim --opcua" "$url" "ns=2;s=Line1.press.pressure"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pin "$PY" tests/peers/asyncua_server.py "$port" "$work/peer-pki" > "$work/peer.log" 2>&1 & bench_pids+=($!)
for _ in $(seq 300); do grep -q READY "$work/peer.log" && break; sleep 0.1; done
compare "vs asyncua server" "opc.tcp://127.0.0.1:$port/peer/" "ns=2;s=Line1.Speed"

echo "== 2. one read of 1,000 nodes (profile with 1,000 node points)"
big=$work/big.toml
python3 - "$big" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write('[device]\nname = "Big"\n\n')
    for i in range(1000):
        f.write(f'[[point]]\nname = "p{i}"\nnode = "ns=2;s=P{i}"\ntype = "f32"\nsim = {{ value = {i}.0, noise = 1.0 }}\n\n')
EOF
bigurl=$(start_ua_sim "$big")
times=()
for _ in 1 2 3; do
  s=$(date +%s.%N)
  pin "$B" read "$bigurl" --profile "$big" --format json > "$work/big.json"
  e=$(date +%s.%N)
  times+=("$(python3 -c "print(round(($e-$s)*1000,1))")")
done
echo "read of $(python3 -c "import json; print(len(json.load(open('$work/big.json'))))") nodes: $(printf '%s\n' "${times[@]}" | median) ms (runs ${times[*]}, session set-up included)"
one=$(pin "$B" poll "$bigurl" --profile "$big" --interval 0 --count 20 -q --format json)
echo "poll of the 1,000 nodes (one batched Read each): $(echo "$one" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["sent"], "requests for 20 polls, rtt p50", j["rtt_ms"]["p50"], "ms")')"

echo "== 3. watch 1,000 items at 100 ms for ${WATCH_S}s"
mapfile -t nodes < <(seq 0 999 | sed 's/^/ns=2;s=P/')
# taskset execs plcprobe, so $! is the watch process itself (a shell function would be a subshell).
taskset -c 0 "$B" watch "$bigurl" "${nodes[@]}" --interval 100ms --duration "${WATCH_S}s" --format jsonl -q > "$work/watch.jsonl" &
wpid=$!
rss=()
for _ in $(seq $((WATCH_S / 5))); do
  sleep 5
  rss+=("$(awk '/VmRSS/ {print $2}' /proc/$wpid/status 2>/dev/null || echo 0)")
done
wait $wpid || true
lines=$(wc -l < "$work/watch.jsonl")
echo "data changes: $lines in ${WATCH_S}s = $((lines / WATCH_S))/s (1,000 items x 10/s = 10,000/s if every sample changes)"
echo "client RSS every 5 s (KiB): ${rss[*]}"
# Keeping up: the lag from a value's source timestamp to its line on stdout, early and late.
python3 - "$work/watch.jsonl" <<'EOF'
import datetime, json, sys
def t(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
lags = [(t(r["time"]) - t(r["source_time"])).total_seconds() * 1e3
        for r in map(json.loads, open(sys.argv[1])) if r.get("source_time")]
n = len(lags); q = n // 10
for name, part in (("first 10%", lags[:q]), ("last 10%", lags[-q:])):
    part = sorted(part)
    print(f"lag {name}: p50 {part[len(part)//2]:.0f} ms, max {part[-1]:.0f} ms")
EOF
