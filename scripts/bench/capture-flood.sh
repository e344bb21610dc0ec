#!/usr/bin/env bash
# Does a live capture keep up? A loopback flood of Modbus/TCP (libmodbus's bandwidth-client
# against its bandwidth-server-many-up, both pinned to core 0: the fastest client and server
# here) captured at the same time by `plcprobe capture` (decoding as it goes and writing pcapng)
# and by `dumpcap` (Wireshark's capture engine, TPACKET_V3 ring, writing pcapng), both on core 1
# with the same filter. Prints, per run, what each captured and the drop counts the kernel
# reported to each (plcprobe: PACKET_STATISTICS; dumpcap: its "pcap" drop count).
# CLIENTS (default 1) clients flood at once; with more than one they are not pinned, so that the
# flood takes whatever the captures leave.
# Usage: scripts/bench/capture-flood.sh [RUNS] [CLIENTS]   (needs root, dumpcap, taskset)
RUNS=${1:-3}
CLIENTS=${2:-1}
source "$(dirname "$0")/common.sh"
L=$(scripts/bench/libmodbus-peers.sh)
command -v dumpcap >/dev/null || { echo "dumpcap is missing (apt-get install tshark)" >&2; exit 1; }

(cd "$work" && exec taskset -c 0 "$L/bandwidth-server-many-up" >/dev/null 2>&1) & bench_pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/1502) 2>/dev/null && break; sleep 0.1; done

echo "run  flood_req/s  plcprobe: packets kernel_drops decoded_pdus  dumpcap: packets kernel_drops"
for r in $(seq "$RUNS"); do
  rm -f "$work"/p*.pcapng "$work"/d*.pcapng
  taskset -c 1 "$B" capture -i lo --no-detect --modbus-port 1502 -w "$work/p.pcapng" --format json \
    > "$work/p.json" 2> "$work/p.err" & P=$!
  taskset -c 1 dumpcap -i lo -f 'tcp port 1502' -w "$work/d.pcapng" > /dev/null 2> "$work/d.err" & D=$!
  for _ in $(seq 100); do [ -e "$work/p.pcapng" ] && grep -q "^Capturing on" "$work/d.err" && break; sleep 0.1; done
  pin="taskset -c 0"; [ "$CLIENTS" -gt 1 ] && pin=""
  clients=()
  for c in $(seq "$CLIENTS"); do $pin "$L/bandwidth-client" tcp > "$work/client$c.out" & clients+=($!); done
  wait "${clients[@]}"
  ms=$(sed -n '/READ REGISTERS/,/WRITE AND/p' "$work/client1.out" | sed -n 's/^\* \([0-9.]*\) ms for .*/\1/p' | head -1)
  sleep 1
  kill -INT "$P" "$D"; wait "$P" "$D" || true
  read -r pp pd pm < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["capture"]["packets"], d["capture"]["kernel_drops"], d["totals"]["modbus_pdus"])' "$work/p.json")
  # "Packets received/dropped on interface 'lo': 412345/0 (pcap:0/dumpcap:0/flushed:0/ps_ifdrop:0) (100.0%)"
  line=$(grep "Packets received/dropped" "$work/d.err" | tail -1)
  dp=$(sed -n "s/.*: \([0-9]*\)\/\([0-9]*\) (pcap:\([0-9]*\).*/\1/p" <<< "$line")
  dd=$(sed -n "s/.*: \([0-9]*\)\/\([0-9]*\) (pcap:\([0-9]*\).*/\3/p" <<< "$line")
  printf "%3d  %12.0f  %17s %12s %12s  %16s %12s\n" "$r" "$(awk -v ms="$ms" -v c="$CLIENTS" 'BEGIN{print c*100000/(ms/1000)}')" "$pp" "$pd" "$pm" "$dp" "$dd"
done
