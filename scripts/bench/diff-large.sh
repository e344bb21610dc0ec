#!/usr/bin/env bash
# diff of two POINTS-point snapshots (default 100,000), generated here from one real snapshot of
# the simulator: the baseline, and a current one with 1% of the values moved beyond tolerance.
# Times the whole command (reading and parsing both files, the diff, the output) with hyperfine.
# Goal (issue 4): under 100 ms for 100,000 points.
# Usage: scripts/bench/diff-large.sh [POINTS]
N=${1:-100000}
source "$(dirname "$0")/common.sh"
command -v hyperfine >/dev/null || { if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq hyperfine >/dev/null; else sudo apt-get install -y -qq hyperfine >/dev/null; fi; }
start_sim profiles/demo-line.toml 1
target=${targets[0]}
"$B" snapshot "$target" --profile profiles/demo-line.toml -o "$work/seed.json" -q
python3 - "$work/seed.json" "$work" "$N" <<'PY'
import json, sys, copy, random
seed, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = json.load(open(seed))
pts = s["points"]
base, cur = [], []
random.seed(1)
for i in range(n):
    p = copy.deepcopy(pts[i % len(pts)])
    p["name"] = f"{p['name']}.{i}"
    base.append(p)
    q = copy.deepcopy(p)
    if isinstance(q["value"], (int, float)) and not isinstance(q["value"], bool) and random.random() < 0.01:
        q["value"] = q["value"] + (q.get("tolerance") or 0) + 10
    cur.append(q)
def write(path, points):
    # The layout plcprobe itself writes: header pretty-printed, one point per line.
    head = {k: v for k, v in s.items() if k != "points"}
    text = json.dumps(head, indent=2, ensure_ascii=False)[:-2]
    lines = ",\n    ".join(json.dumps(p, ensure_ascii=False, separators=(",", ":")) for p in points)
    open(path, "w").write(text + ',\n  "points": [\n    ' + lines + "\n  ]\n}\n")
write(f"{work}/base.json", base)
write(f"{work}/cur.json", cur)
PY
ls -la "$work/base.json" "$work/cur.json" | awk '{print $5, $9}'
[ -n "${KEEP:-}" ] && cp "$work/base.json" "$work/cur.json" "$KEEP"/
hyperfine -N -i --warmup 3 --runs 20 \
  "$B diff $work/base.json $work/cur.json -q" \
  "$B diff $work/base.json $work/cur.json --format json"
