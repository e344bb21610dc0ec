#!/usr/bin/env bash
# Builds libmodbus's own test programs (bandwidth-server-many-up, bandwidth-client, …) from
# Debian's libmodbus source package, for side-by-side benchmarks. Nothing of libmodbus is kept in
# the repository: the source is fetched by package name into $OUT (default /tmp/plcprobe-libmodbus).
# The deb-src entries are derived from the machine's own apt sources, in a private apt state
# directory, so the system's apt configuration is left as it is.
set -euo pipefail
OUT=${OUT:-/tmp/plcprobe-libmodbus}
if [ -x "$OUT/tests/bandwidth-server-many-up" ] && [ -x "$OUT/tests/bandwidth-client" ]; then
  echo "$OUT/tests"; exit 0
fi
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
command -v dpkg-source >/dev/null && dpkg -s libmodbus-dev >/dev/null 2>&1 ||
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq dpkg-dev libmodbus-dev gcc >/dev/null
apt_tmp=$(mktemp -d)
trap 'rm -rf "$apt_tmp"' EXIT
mkdir -p "$apt_tmp/parts" "$apt_tmp/lists/partial"
for f in /etc/apt/sources.list.d/*.sources; do
  sed 's/^Types: deb$/Types: deb-src/' "$f" > "$apt_tmp/parts/$(basename "$f")"
done
APT=(-o APT::Sandbox::User=root -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$apt_tmp/parts" -o Dir::State::Lists="$apt_tmp/lists")
apt-get "${APT[@]}" update -qq >/dev/null
work=$(mktemp -d)
(cd "$work" && apt-get "${APT[@]}" source -qq libmodbus >/dev/null 2>&1)
src=$(find "$work" -maxdepth 1 -type d -name 'libmodbus-*' | head -1)
# Debian's patches are applied by dpkg-source -x (unit-test-client needs them, see FIELD-NOTES).
mkdir -p "$OUT/tests"
for prog in bandwidth-server-many-up bandwidth-server-one bandwidth-client random-test-server; do
  gcc -O2 -o "$OUT/tests/$prog" "$src/tests/$prog.c" $(pkg-config --cflags --libs libmodbus) 2>/dev/null || echo "libmodbus-peers: could not build $prog" >&2
done
rm -rf "$work"
echo "$OUT/tests"
