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

# decode_vs_tshark FILE RUNS: `plcprobe decode FILE > /dev/null` RUNS times (and OLD=BINARY's
# runs, interleaved, when set) against tshark `-n -qz io,phs` 3 times, the file in the page
# cache; one line per command (median wall, MB/s, peak RSS, every run), then plcprobe's speed
# as a multiple of tshark's (the decode goals: >= 50x, peak RSS <= 64 MiB).
decode_vs_tshark() {
  local big=$1 runs=$2 size i phs=() new=() old=()
  export WIRESHARK_CONFIG_DIR=$work/wscfg; mkdir -p "$WIRESHARK_CONFIG_DIR"
  size=$(stat -L -c %s "$big"); cat "$big" > /dev/null
  for i in $(seq "$runs"); do
    if [ "$i" -le 3 ]; then _timed "phs-$i" tshark -n -r "$big" -qz io,phs; phs+=("phs-$i"); fi
    _timed "new-$i" "$B" decode "$big"; new+=("new-$i")
    if [ -n "${OLD:-}" ]; then _timed "old-$i" "$OLD" decode "$big"; old+=("old-$i"); fi
  done
  _decode_line "$size" phs "tshark -qz io,phs" "${phs[@]}"
  _decode_line "$size" new "plcprobe decode" "${new[@]}"
  [ -z "${OLD:-}" ] || _decode_line "$size" old "plcprobe decode (OLD)" "${old[@]}"
  awk -v a="$(cat "$work/median-phs")" -v b="$(cat "$work/median-new")" \
    'BEGIN {printf "         plcprobe vs tshark io,phs: %.1fx (goal 50x)\n", a / b}'
  [ -z "${OLD:-}" ] || awk -v a="$(cat "$work/median-phs")" -v b="$(cat "$work/median-old")" \
    'BEGIN {printf "         OLD vs tshark io,phs:      %.1fx\n", a / b}'
}
decode_header() {
  echo "tshark $(tshark --version | head -1 | awk '{print $3}'), plcprobe $($B --version | awk '{print $2}') ($B), $(nproc) CPUs, $(date -u +%FT%TZ)"
  printf '%-8s %-34s %8s %9s %9s %s\n' size command "wall s" "MB/s" "peak RSS" "runs"
}
_timed() { local label=$1; shift; /usr/bin/time -f "%e %M" -o "$work/$label" "$@" > /dev/null 2>>"$work/stderr"; }
_decode_line() { # size key label files...
  local size=$1 key=$2 label=$3 s m f; shift 3
  s=$(for f in "$@"; do cut -d' ' -f1 "$work/$f"; done | median)
  m=$(for f in "$@"; do cut -d' ' -f2 "$work/$f"; done | sort -n | tail -1)
  printf '%-8s %-34s %8s %9s %6s MiB %s\n' "$(( size / 1000000 )) MB" "$label" "$s" \
    "$(awk -v b="$size" -v s="$s" 'BEGIN {printf "%.1f", b / s / 1e6}')" "$(( m / 1024 ))" \
    "$(for f in "$@"; do cut -d' ' -f1 "$work/$f"; done | tr '\n' ' ')"
  echo "$s" > "$work/median-$key"
}
