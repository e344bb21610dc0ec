#!/usr/bin/env bash
# `history import` of a month of cron results: FILES (default 8,640: 30 days of 5-minute runs)
# `check --results` files of a 4-device plan (one real run against the simulator, copied with
# shifted start times and values), imported into a new SQLite store. Prints the wall time of the
# import (median of RUNS, default 3, each into a fresh store), the store's size, and the time of
# `history show --dump` over all of it.
# Usage: scripts/bench/history-import.sh [RUNS] [FILES]
RUNS=${1:-3}
FILES=${2:-8640}
source "$(dirname "$0")/common.sh"
"$B" sim profiles/demo-line.toml --modbus 127.0.0.1:0 --units 1-4 > "$work/sim.log" 2>&1 & bench_pids+=($!)
for _ in $(seq 100); do grep -q '^listening on' "$work/sim.log" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^listening on modbus:\/\/\(.*\)$/\1/p' "$work/sim.log" | head -1)
{
  printf '[defaults]\nrate = 1000.0\n'
  for u in 1 2 3 4; do
    printf '\n[[device]]\nname = "dev%d"\ntarget = "modbus://%s/%d"\nprofile = "%s"\n' "$u" "$addr" "$u" "$PWD/profiles/demo-line.toml"
  done
} > "$work/plan.toml"
"$B" check "$work/plan.toml" -q --results "$work/one.json" || true
mkdir -p "$work/res"
python3 - "$work/one.json" "$work/res" "$FILES" <<'PY'
import json, sys, datetime
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
doc = json.load(open(src))
t0 = datetime.datetime(2026, 10, 1, tzinfo=datetime.timezone.utc)
for k in range(n):
    doc["started_at"] = (t0 + datetime.timedelta(minutes=5 * k)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for d in doc["devices"]:
        for p in d["points"]:
            if isinstance(p["value"], float):
                p["value"] = round(p["value"] * 0.999 + 0.001 * k, 6)
    with open(f"{out}/r{k:05d}.json", "w") as f:
        json.dump(doc, f)
PY
echo "$FILES results files of $(du -sh "$work/res" | cut -f1) made" >&2
: > "$work/t"
for r in $(seq "$RUNS"); do
  rm -f "$work/h.db"*
  s=$(date +%s.%N); "$B" history import "$work/h.db" "$work"/res/*.json -q; e=$(date +%s.%N)
  echo "$e - $s" | bc >> "$work/t"
  echo "run $r: $(tail -1 "$work/t") s" >&2
done
s=$(date +%s.%N); "$B" history show "$work/h.db" --dump > /dev/null; e=$(date +%s.%N)
echo "median of $RUNS: history import of $FILES results files (4 devices x 12 points) in $(median < "$work/t") s; store $(stat -c %s "$work/h.db") bytes; history show --dump of it $(echo "$e - $s" | bc) s"
