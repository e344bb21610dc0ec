#!/usr/bin/env python3
"""Golden files of EtherNet/IP + CIP from tshark 4.0: one JSON object per encapsulation message
(or implicit I/O packet), its CIP services (Multiple Service Packet members included) listed in
it.

Usage: scripts/golden/enip.py [CAPTURE...]
  Without arguments: every capture in ../shared/captures/enip/ and the ENIP part of
  ../shared/captures/modbus-tcp/plant1_mixed_master_modbus_s7_enip.pcap, written to
  fixtures/golden/enip/<capture>.tshark.jsonl (frames after MAX_FRAME, default 3000, left out).

Per capture it runs exactly
  tshark -n -r CAP -Y "enip && frame.number <= MAX_FRAME" -T json \
         -J "frame ip ipv6 tcp udp enip cip cipcm cipcls cipio"
with an empty WIRESHARK_CONFIG_DIR (default preferences), keeping tshark's JSON in document
order (duplicate keys kept): each `enip` layer starts a record (`index` from 0 in its frame)
and the CIP layers after it belong to it. Keys: frame, ts, src, dst, sport, dport, transport
(tcp/udp), index; command, length, session, status, context (hex), cip_seq, connid (connected
address item), sai_connid/sai_seq (implicit I/O), lir_vendor/lir_devtype/lir_prodcode/
lir_serial/lir_name (ListIdentity), response_in/response_to (tshark's pairing, frame numbers),
ot_connid/to_connid/conn_serial/vendor/orig_serial (Forward Open/Close), and services: one per
CIP service object in document order, {service (with the response bit), genstat, ext_status,
epath (requests), class, instance, attribute, symbol (requests with symbolic segments, joined by
".")}.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import child, frame_base, num, tshark_frames, walk, write_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "captures")
OUT = os.path.join(ROOT, "fixtures", "golden", "enip")


def walk_local(pairs):
    """Like walk, but not into nested CIP messages (`cip` objects of MSP members)."""
    for k, v in pairs:
        if k == "cip":
            continue
        yield k, v
        if isinstance(v, list) and v and isinstance(v[0], tuple):
            yield from walk_local(v)


def service_objects(pairs):
    """Every object that directly holds a `cip.service`, depth first, in document order."""
    if any(k == "cip.service" for k, _ in pairs):
        yield pairs
    for _, v in pairs:
        if isinstance(v, list) and v and isinstance(v[0], tuple):
            yield from service_objects(v)


def service_record(obj):
    s = {"service": num(child(obj, "cip.service"))}
    local = list(walk_local(obj))
    get = lambda key: next((v for k, v in local if k == key), None)
    if get("cip.genstat") is not None:
        s["genstat"] = num(get("cip.genstat"))
    ext = get("cip.cm.ext_status") or get("cip.ext_status") or get("cip.addstat")
    if ext is not None:
        s["ext_status"] = num(ext)
    epath = get("cip.epath")
    if epath is not None and not s["service"] & 0x80:
        s["epath"] = epath
        rpath = next((v for k, v in obj if k.startswith("Request Path")), [])
        rpath = list(walk(rpath)) if isinstance(rpath, list) else []
        for key in ("class", "instance", "attribute"):
            vals = [v for k, v in rpath if k == "cip." + key]
            if vals:
                s[key] = num(vals[-1])
        syms = [v for k, v in local if k == "cip.symbol"]
        if syms:
            s["symbol"] = ".".join(syms)
    return s


ENIP_KEYS = {
    "enip.command": "command", "enip.length": "length", "enip.session": "session",
    "enip.status": "status", "enip.context": "context", "cip.seq": "cip_seq",
    "enip.cpf.cai.connid": "connid", "enip.cpf.sai.connid": "sai_connid",
    "enip.cpf.sai.seq": "sai_seq", "enip.lir.vendor": "lir_vendor",
    "enip.lir.devtype": "lir_devtype", "enip.lir.prodcode": "lir_prodcode",
    "enip.lir.serial": "lir_serial", "enip.lir.name": "lir_name",
    "enip.response_in": "response_in", "enip.response_to": "response_to",
}
CM_KEYS = {
    "cip.cm.ot_connid": "ot_connid", "cip.cm.to_connid": "to_connid",
    "cip.cm.conn_serial_num": "conn_serial", "cip.cm.vendor": "vendor",
    "cip.cm.orig_serial_num": "orig_serial",
}


def golden(cap):
    recs = []
    protos = "frame ip ipv6 tcp udp enip cip cipcm cipcls cipio"
    for layers in tshark_frames(cap, "enip", protos, check=True):
        base = frame_base(layers, transport=True)
        cur = None
        index = 0
        for k, v in layers:
            if not isinstance(v, list) or (v and not isinstance(v[0], tuple)):
                continue  # a layer shown as bare bytes (cipcls/cipio data)
            if k == "enip":
                cur = dict(base, index=index)
                index += 1
                recs.append(cur)
                for fk, fv in walk(v):
                    if fk in ENIP_KEYS and ENIP_KEYS[fk] not in cur:
                        cur[ENIP_KEYS[fk]] = fv if fk in ("enip.context", "enip.lir.name") else num(fv)
                for obj in service_objects(v):
                    cur.setdefault("services", []).append(service_record(obj))
            elif k in ("cip", "cipcm", "cipcls") and cur is not None:
                if k in ("cip", "cipcm"):
                    for obj in service_objects([(k, v)]):
                        cur.setdefault("services", []).append(service_record(obj))
                for fk, fv in walk(v):
                    if fk in CM_KEYS and CM_KEYS[fk] not in cur:
                        cur[CM_KEYS[fk]] = num(fv)
    return recs


def main(argv):
    caps = argv or sorted(
        os.path.join(SHARED, "enip", f) for f in os.listdir(os.path.join(SHARED, "enip")))
    if not argv:
        caps.append(os.path.join(SHARED, "modbus-tcp", "plant1_mixed_master_modbus_s7_enip.pcap"))
    write_files("enip", caps, OUT, golden, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1:])
