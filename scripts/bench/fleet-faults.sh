#!/usr/bin/env bash
# A fleet under faults (issue 16): a check plan of DEVICES devices (default 1000) on loopback, of
# which 70% answer, 10% drop 30% of requests (`sim --fault drop=0.3`), 10% answer exception 0x06
# half the time (`--fault exception=0x06@0.5`), 5% are silent (answer 2 s late, after the 1 s
# timeout) and 5% refuse connections (ports from the OS, held bound with nothing listening). One
# `plcprobe sim` per fault class with one listener per device, the classes interleaved in the plan,
# the 20-point profile of check-fleet.sh (30 contiguous registers: one request per round) and the
# plan's default pacing, written out: timeout 1 s, 5 rounds at 20 requests/s per device, 128
# devices at once, error rate warn 0 / crit 0.2 (latency thresholds at the timeout: only errors
# judge). Every run is checked: each device's requests accounted for (sent = received + errors,
# one sample each), healthy devices OK without errors, silent ones CRITICAL with nothing but
# timeouts, refusing ones CRITICAL and unreachable, the others as their error rate and the
# thresholds say, and the wall time within the bound of the devices' timeouts, pacing and the
# concurrency (see tests/fleet.rs, the same fleet with 100 devices). Prints wall time and peak RSS
# of `plcprobe check`, medians of RUNS runs (default 5).
# Usage: scripts/bench/fleet-faults.sh [RUNS] [DEVICES]
RUNS=${1:-5}
DEV=${2:-1000}
source "$(dirname "$0")/common.sh"
TIMEOUT_S=1 ROUNDS=5 RATE=20 CONC=128 WARN=0.0 CRIT=0.2
# Margins for a loaded 2-core machine: a stall per request or timer, and the process itself.
STALL_S=0.025 PROCESS_S=3
n_drop=$((DEV / 10)) n_busy=$((DEV / 10)) n_silent=$((DEV * 5 / 100)) n_refused=$((DEV * 5 / 100))
n_healthy=$((DEV - n_drop - n_busy - n_silent - n_refused))
fleet_profile "$work/fleet.toml"

# fault_sim CLASS COUNT [FAULT…]: one `plcprobe sim` with COUNT listeners on free loopback ports
# and these faults; its unit-1 targets go to $work/CLASS.targets.
fault_sim() {
  local class=$1 count=$2 args=() log
  shift 2
  log=$work/$class.sim
  for _ in $(seq "$count"); do args+=(--modbus 127.0.0.1:0); done
  for f in "$@"; do args+=(--fault "$f"); done
  "$B" sim "$work/fleet.toml" "${args[@]}" --seed 16 > "$log" 2>&1 & bench_pids+=($!)
  for _ in $(seq 200); do [ "$(grep -c '^listening on' "$log" 2>/dev/null)" -ge "$count" ] && break; sleep 0.1; done
  sed -n 's/^listening on \(modbus:\/\/.*\)$/\1\/1/p' "$log" > "$work/$class.targets"
  [ "$(wc -l < "$work/$class.targets")" -eq "$count" ] || { echo "$class sim started $(wc -l < "$work/$class.targets") of $count listeners" >&2; exit 1; }
}
fault_sim healthy "$n_healthy"
fault_sim drop "$n_drop" drop=0.3
fault_sim busy "$n_busy" exception=0x06@0.5
fault_sim silent "$n_silent" delay=$((TIMEOUT_S * 2))s
# Refusing devices: ports the OS hands out, kept bound (so nobody else gets them) and not listening.
: > "$work/refused.targets"
python3 -c '
import signal, socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
    print("modbus://127.0.0.1:%d/1" % s.getsockname()[1], flush=True)
signal.pause()' "$n_refused" > "$work/refused.targets" & bench_pids+=($!)
for _ in $(seq 100); do [ "$(wc -l < "$work/refused.targets")" -ge "$n_refused" ] && break; sleep 0.1; done
[ "$(wc -l < "$work/refused.targets")" -eq "$n_refused" ] || { echo "only $(wc -l < "$work/refused.targets") of $n_refused refusing ports" >&2; exit 1; }

# The plan: classes interleaved evenly (device j of a class of n at (j + 0.5) / n of the way).
{
  printf '[defaults]\ntimeout = "%ss"\nlatency_warn = "%ss"\nlatency_crit = "%ss"\npoll = %d\nrate = %s\nconcurrency = %d\nerror_rate_warn = %s\nerror_rate_crit = %s\n' \
    "$TIMEOUT_S" "$TIMEOUT_S" "$TIMEOUT_S" "$ROUNDS" "$RATE" "$CONC" "$WARN" "$CRIT"
  for c in healthy drop busy silent refused; do
    awk -v c="$c" '{ n[NR] = $0 } END { for (j = 1; j <= NR; j++) printf "%.9f %s %s\n", (j - 0.5) / NR, c, n[j] }' "$work/$c.targets"
  done | sort -s -g -k1,1 | awk '{ printf "\n[[device]]\nname = \"dev%04d-%s\"\ntarget = \"%s\"\nprofile = \"fleet.toml\"\n", NR - 1, $2, $3 }'
} > "$work/plan.toml"

# Verify one run's results; prints "BOUND_S" (the plan's bound on the run) or the problems.
verify() {
  jq -r --argjson t "$TIMEOUT_S" --argjson r "$ROUNDS" --argjson rate "$RATE" --argjson c "$CONC" \
    --argjson warn "$WARN" --argjson crit "$CRIT" --argjson stall "$STALL_S" '
    def class: .name | split("-")[1];
    def errsum: [.errors[]] | add // 0;
    def rule: if .error_rate > $crit then "CRITICAL" elif .error_rate > $warn then "WARNING" else "OK" end;
    def standing: any(.points[]; (.status | startswith("0x")) and all(.trend[]; . == null));
    def timeouts: (.errors.timeout // 0) + (if .identity_status == "not available: timeout" then 1 else 0 end);
    (($r - 1) / $rate) as $pacing
    | [.devices[]
       | . as $d
       | [ (if .sent != .received + errsum then "sent \(.sent) != received \(.received) + errors \(errsum)" else empty end),
           (if (.samples | length) != .sent then "\(.samples | length) samples for \(.sent) requests" else empty end),
           (if class == "healthy" and (.status != "OK" or .errors != {}) then "healthy but \(.status) \(.errors)" else empty end),
           (if class == "silent" and (.status != "CRITICAL" or .received != 0 or .errors != {timeout: .sent}) then "silent but \(.status) \(.errors)" else empty end),
           (if class == "refused" and (.status != "CRITICAL" or .reachable or .sent != 0) then "refused but \(.status) reachable \(.reachable)" else empty end),
           (if class == "drop" and ((.errors | keys) - ["timeout"] != []) then "drop but \(.errors)" else empty end),
           (if class == "busy" and ((.errors | keys | map(startswith("0x06 ")) | all) | not) then "busy but \(.errors)" else empty end),
           (if (class == "drop" or class == "busy") and .status != (if standing then "CRITICAL" else rule end) then "\(.status) with \(errsum)/\(.sent) failed" else empty end),
           (if class != "refused" and .sent != $r then "\(.sent) requests for \($r) rounds" else empty end)
         ] | map("\($d.name): \(.)") | .[]] as $wrong
    | [.devices[] | (if class == "refused" then 0 else timeouts * $t + $pacing end) + $stall * (.sent + 1 + $r)] as $b
    | if $wrong != [] then ($wrong[:20] | join("\n")) else (($b | add) / $c + ($b | max) * (1 - 1 / $c) | tostring) end
  ' "$1"
}

: > "$work/wall"; : > "$work/rss"
for r in $(seq "$RUNS"); do
  code=0
  /usr/bin/time -f "%e %M" -o "$work/t" "$B" check "$work/plan.toml" --results "$work/r.json" -q > "$work/out" || code=$?
  # GNU time says "Command exited with non-zero status 2" first: the figures are the last line.
  read -r wall rss < <(tail -n 1 "$work/t")
  v=$(verify "$work/r.json")
  [[ "$v" =~ ^[0-9.e+-]+$ ]] || { echo "run $r: exit $code; wrong:" >&2; echo "$v" >&2; exit 1; }
  bound=$(awk -v b="$v" -v p="$PROCESS_S" 'BEGIN { printf "%.2f", b + p }')
  [ "$code" -eq 2 ] && awk -v w="$wall" -v b="$bound" 'BEGIN { exit !(w <= b) }' || { echo "run $r: exit $code (2 expected), ${wall}s wall (bound ${bound}s)" >&2; exit 1; }
  echo "$wall" >> "$work/wall"; echo "$rss" >> "$work/rss"
  summary=$(jq -r .summary "$work/r.json")
  echo "run $r: $summary in ${wall}s (bound ${bound}s), peak RSS ${rss} KiB" >&2
done
echo "median of $RUNS runs: $DEV devices under faults ($n_healthy healthy, $n_drop drop 30%, $n_busy exception 0x06 50%, $n_silent silent, $n_refused refusing) checked in $(median < "$work/wall") s wall, peak RSS $(median < "$work/rss") KiB"
