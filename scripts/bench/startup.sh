#!/usr/bin/env bash
# Start-up time of `plcprobe --version` (goal in issue 2: under 5 ms), measured with hyperfine
# (Debian package, installed if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq hyperfine >/dev/null; else sudo apt-get install -y -qq hyperfine >/dev/null; fi; }
cargo build --profile fast --quiet
hyperfine -N --warmup 20 --runs 300 "$PWD/target/fast/plcprobe --version" "$PWD/target/fast/plcprobe --help"
