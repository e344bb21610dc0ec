#!/usr/bin/env python3
"""Writes src/proto/bacnet/names.rs from tshark's own value tables (`tshark -G values`), so
plcprobe names BACnet object types, properties and error codes with tshark's words.
Usage: python3 scripts/golden/gen-bacnet-names.py > src/proto/bacnet/names.rs && cargo fmt"""
import subprocess, os, tempfile

env = dict(os.environ, WIRESHARK_CONFIG_DIR=tempfile.mkdtemp())
out = subprocess.run(["tshark", "-G", "values"], capture_output=True, text=True, env=env).stdout
version = subprocess.run(["tshark", "--version"], capture_output=True, text=True, env=env).stdout.splitlines()[0]
tables = {"bacapp.objectType": "OBJECT_TYPES", "bacapp.property_identifier": "PROPERTIES",
          "bacapp.error_code": "ERROR_CODES"}
rows = {k: {} for k in tables}
for line in out.splitlines():
    p = line.split("\t")
    if len(p) == 4 and p[0] == "V" and p[1] in tables:
        rows[p[1]].setdefault(int(p[2], 0), p[3])
print("//! BACnet names generated from tshark's value tables by `scripts/golden/gen-bacnet-names.py`")
print(f"//! (`{version}`); do not edit by hand. Sorted by code, looked up by binary search.")
print("#![allow(clippy::unreadable_literal)]")
print()
for field, const in tables.items():
    print(f"/// `{field}` of tshark.")
    print(f"pub const {const}: &[(u32, &str)] = &[")
    for code in sorted(rows[field]):
        text = rows[field][code].replace("\\", "\\\\").replace('"', '\\"')
        print(f'    ({code}, "{text}"),')
    print("];")
    print()
print("""/// The name of `code` in `table`, if tshark has one.
pub fn lookup(table: &'static [(u32, &'static str)], code: u32) -> Option<&'static str> {
    table
        .binary_search_by_key(&code, |&(c, _)| c)
        .ok()
        .map(|i| table[i].1)
}""")
