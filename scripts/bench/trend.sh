#!/usr/bin/env bash
# `trend` at the issue's scale: 30 days of 5-minute runs (8,640) of 100 devices x 20 points
# (17,280,000 point samples; every point and latency series with a slope in noise, so every series
# takes the long path). The store is built once through the store API (benches/history.rs, the
# code `check --history` records with), then `plcprobe trend` over it is timed (median of 5 runs,
# the `fast` profile), then the trend math alone, in memory (benches/trend.rs).
# TREND_BENCH_DIR=FOLDER keeps the store there (it takes a minute or two to build) and reuses it.
# Figures: docs/PERFORMANCE.md, "Trend".
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
keep=${TREND_BENCH_DIR:-$work}
mkdir -p "$keep"
HISTORY_BENCH_DIR=$keep cargo bench --profile fast --quiet --bench history
db=$keep/bench-8640x100x20.db
# The bench store's runs start on 2026-09-21 (1,790,000,000 s): a window that holds them all.
since=$(( ($(date +%s) - 1790000000) / 86400 + 2 ))d
"$B" trend "$db" --since "$since" --format json > "$work/trend.json" || true
python3 - "$work/trend.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
n = sum(len(x["series"]) for x in d["devices"])
print(f"trend: {d['runs']} runs, {len(d['devices'])} devices, {n} series; verdict {d['verdict']}; {d['summary']}")
PY
for _ in 1 2 3 4 5; do
  s=$(date +%s.%N)
  "$B" trend "$db" --since "$since" --format json > /dev/null || true
  e=$(date +%s.%N)
  echo "$e - $s" | bc
done | median | xargs printf 'plcprobe trend, 17.3 M point samples: median %.2f s of 5\n'
cargo bench --profile fast --quiet --bench trend
