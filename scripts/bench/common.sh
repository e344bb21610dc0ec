# Shared by the benchmark scripts (source it): build the benchmark binary (the `fast` profile:
# fat LTO, one codegen unit; docs/PERFORMANCE.md) unless PLCPROBE_BIN names one, a work folder removed on exit with any
# simulator started here, medians, and a simulator on loopback ports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# PLCPROBE_BIN=PATH measures that binary instead (e.g. one built from another commit).
if [ -n "${PLCPROBE_BIN:-}" ]; then
  B=$PLCPROBE_BIN
else
  cargo build --profile fast --quiet
  B=$PWD/target/fast/plcprobe
fi
work=$(mktemp -d)
bench_pids=()
bench_cleanup() { for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap bench_cleanup EXIT

# Median of the numbers on stdin, one a line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# start_sim PROFILE COUNT: one `plcprobe sim` with COUNT listeners on 127.0.0.1 (free ports);
# their unit-1 targets end up in the array `targets`.
start_sim() {
  local profile=$1 count=$2 args=() log
  log=$(mktemp -p "$work")
  for _ in $(seq "$count"); do args+=(--modbus 127.0.0.1:0); done
  "$B" sim "$profile" "${args[@]}" > "$log" 2>&1 & bench_pids+=($!)
  for _ in $(seq 200); do [ "$(grep -c '^listening on' "$log" 2>/dev/null)" -ge "$count" ] && break; sleep 0.1; done
  mapfile -t targets < <(sed -n 's/^listening on \(modbus:\/\/.*\)$/\1\/1/p' "$log")
  [ "${#targets[@]}" -eq "$count" ] || { echo "sim started ${#targets[@]} of $count listeners" >&2; exit 1; }
}

# fleet_profile FILE: the fleet benchmarks' device, 20 points (u16, i16 scaled, f32 and u32) in a
# contiguous map of 30 registers, read in one request, with tolerances for a drift check.
fleet_profile() {
  local a i t w extra
  {
    printf '[device]\nname = "fleet device"\n[device.identity]\nvendor = "plcprobe"\nproduct_code = "FLEET"\nrevision = "1.0"\n'
    a=0
    for i in $(seq 0 19); do
      case $((i % 4)) in
        0) t=u16; w=1; extra='range = [0.0, 1000.0]\ntolerance = 1.0' ;;
        1) t=i16; w=1; extra='scale = 0.1\ntolerance = 1.0' ;;
        2) t=f32; w=2; extra='tolerance = 1.0' ;;
        3) t=u32; w=2; extra='volatile = true' ;;
      esac
      printf '[[point]]\nname = "p%02d"\naddress = "hr:%d"\ntype = "%s"\n%b\nsim = { value = %d, noise = 0.1 }\n' "$i" "$a" "$t" "$extra" "$((i * 10))"
      a=$((a + w))
    done
  } > "$1"
}
