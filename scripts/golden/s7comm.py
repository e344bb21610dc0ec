#!/usr/bin/env python3
"""Golden files of S7comm from tshark 4.0: one JSON object per S7 PDU.

Usage: scripts/golden/s7comm.py [CAPTURE...]
  Without arguments: every capture in ../shared/captures/s7comm/ and the S7 part of
  ../shared/captures/modbus-tcp/plant1_mixed_master_modbus_s7_enip.pcap, written to
  fixtures/golden/s7comm/<capture>.tshark.jsonl (frames after MAX_FRAME, default 3000, left
  out, as ../shared/captures/regen-golden.sh does).

Per capture it runs exactly
  tshark -n -r CAP -Y "s7comm && frame.number <= MAX_FRAME" -T json \
         -J "frame ip tcp tpkt cotp s7comm"
with an empty WIRESHARK_CONFIG_DIR (default preferences) and keeps tshark's JSON in document
order (duplicate keys kept), so a frame with several PDUs gives several records, `index`
counting them from 0. Keys: frame, ts, src, dst, sport, dport, index, and the S7 fields
(absent when tshark shows none): rosctr, pdu_ref, error_class, error_code, function,
item_count, items [{syntax_id, transport_size, length, db, area, byte, bit | number (timers,
counters)}], return_codes
[...], ud_type, ud_group, ud_subfunc, ud_return_code, ud_error, szl_id, szl_index, pi_service,
reassembled (the PDU came from COTP fragments of several frames).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import child, first, frame_base, num, tshark_frames, walk, write_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "captures")
OUT = os.path.join(ROOT, "fixtures", "golden", "s7comm")


def s7_record(s7):
    r = {}
    header = child(s7, "s7comm.header") or []
    param = child(s7, "s7comm.param") or []
    data = child(s7, "s7comm.data") or []
    r["rosctr"] = num(first(header, "s7comm.header.rosctr"))
    r["pdu_ref"] = num(first(header, "s7comm.header.pduref"))
    if first(header, "s7comm.header.errcls") is not None:
        r["error_class"] = num(first(header, "s7comm.header.errcls"))
        r["error_code"] = num(first(header, "s7comm.header.errcod"))
    if r["rosctr"] == 7:
        r["ud_type"] = num(first(param, "s7comm.param.userdata.type"))
        r["ud_group"] = num(first(param, "s7comm.param.userdata.funcgroup"))
        r["ud_subfunc"] = num(first(param, "s7comm.param.userdata.subfunc"))
        if first(param, "s7comm.param.errcod") is not None:
            r["ud_error"] = num(first(param, "s7comm.param.errcod"))
        if first(data, "s7comm.data.returncode") is not None:
            r["ud_return_code"] = num(first(data, "s7comm.data.returncode"))
        if first(data, "s7comm.data.userdata.szl_id") is not None:
            r["szl_id"] = num(first(data, "s7comm.data.userdata.szl_id"))
            r["szl_index"] = num(first(data, "s7comm.data.userdata.szl_index"))
        return r
    func = first(param, "s7comm.param.func")
    if func is None:
        return r
    r["function"] = num(func)
    if first(param, "s7comm.param.itemcount") is not None:
        r["item_count"] = num(first(param, "s7comm.param.itemcount"))
    items = []
    for k, v in param:
        if k == "s7comm.param.item":
            it = {"syntax_id": num(first(v, "s7comm.param.item.syntaxid"))}
            if it["syntax_id"] == 0x10:
                it.update(
                    transport_size=num(first(v, "s7comm.param.item.transp_size")),
                    length=num(first(v, "s7comm.param.item.length")),
                    db=num(first(v, "s7comm.param.item.db")),
                    area=num(first(v, "s7comm.param.item.area")),
                    byte=num(first(v, "s7comm.param.item.address.byte")),
                    bit=num(first(v, "s7comm.param.item.address.bit")),
                    number=num(first(v, "s7comm.param.item.address.number")))
                it = {k: x for k, x in it.items() if x is not None}
            items.append(it)
    if items:
        r["items"] = items
    if r["rosctr"] == 3 and r["function"] in (4, 5):
        r["return_codes"] = [num(v) for k, v in walk(data) if k == "s7comm.data.returncode"]
    name = first(param, "s7comm.param.pistart.servicename")
    if name is not None and r["rosctr"] == 1:
        r["pi_service"] = name
    return r


def golden(cap):
    recs = []
    for layers in tshark_frames(cap, "s7comm", "frame ip ipv6 tcp tpkt cotp s7comm", check=True):
        base = frame_base(layers)
        reassembled = any(k == "cotp.segments" for k, _ in walk(layers))
        index = 0
        for k, v in layers:
            if k != "s7comm":
                continue
            rec = dict(base, index=index, **s7_record(v))
            if reassembled:
                rec["reassembled"] = True
            recs.append(rec)
            index += 1
    return recs


def main(argv):
    caps = argv or sorted(
        os.path.join(SHARED, "s7comm", f) for f in os.listdir(os.path.join(SHARED, "s7comm")))
    if not argv:
        caps.append(os.path.join(SHARED, "modbus-tcp", "plant1_mixed_master_modbus_s7_enip.pcap"))
    write_files("s7comm", caps, OUT, golden, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1:])
