#!/usr/bin/env python3
"""tshark's decoding of the BACnet captures as golden files: one JSON object per BACnet/IP
message (UDP) or MS/TP frame.

Usage: python3 scripts/golden/bacnet.py [CAPTURES_DIR] [OUT_DIR]
  defaults: ../shared/captures/bacnet and fixtures/golden/bacnet (relative to the project root);
  MAX_FRAME=0 lifts the 3000-frame cap; TSHARK=/path/to/tshark.
Per capture: tshark -n -r CAP -Y "bacnet || bvlc || bacapp || mstp && frame.number <= 3000"
             -T json -J "frame ip tcp udp bvlc bacnet bacapp mstp"
with an empty WIRESHARK_CONFIG_DIR.
Keys (plcprobe's proto::bacnet Message::fields and mstp::MstpMessage::fields use the same):
frame, ts, src, dst, sport, dport, index; MS/TP: mstp_frame_type, mstp_dst, mstp_src;
bvlc_function, bvlc_result; npdu_control, dnet, snet, network_message; apdu_type, invoke_id,
confirmed_service | unconfirmed_service, object_type, instance, property (the first of each),
error_class, error_code, reject_reason, abort_reason; I-Am: iam_device, iam_vendor (and no
object_type/instance)."""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import first, meta, num, tshark_frames, write_all

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rows(cap):
    for layers in tshark_frames(cap, "bacnet || bvlc || bacapp || mstp",
                                "frame ip tcp udp bvlc bacnet bacapp mstp"):
        r = dict(meta(layers), index=0)
        d = {}
        for k, v in layers:
            d.setdefault(k, v)
        if "mstp" in d:
            m = d["mstp"]
            r["mstp_frame_type"] = num(first(m, "mstp.frame_type"))
            r["mstp_dst"] = num(first(m, "mstp.dst"))
            r["mstp_src"] = num(first(m, "mstp.src"))
        if "bvlc" in d:
            b = d["bvlc"]
            r["bvlc_function"] = num(first(b, "bvlc.function"))
            res = first(b, "bvlc.result")
            if res is not None:
                r["bvlc_result"] = num(res)
        if "bacnet" in d:
            n = d["bacnet"]
            r["npdu_control"] = num(first(n, "bacnet.control"))
            for key, field in (("dnet", "bacnet.dnet"), ("snet", "bacnet.snet"),
                               ("network_message", "bacnet.mesgtyp")):
                v = first(n, field)
                if v is not None:
                    r[key] = num(v)
        if "bacapp" in d:
            a = d["bacapp"]
            t = num(first(a, "bacapp.type"))
            r["apdu_type"] = t
            for key in ("invoke_id", "confirmed_service", "unconfirmed_service"):
                v = first(a, f"bacapp.{key}")
                if v is not None:
                    r[key] = num(v)
            if t == 1 and r.get("unconfirmed_service") == 0:
                inst = first(a, "bacapp.instance_number")
                if inst is not None:
                    r["iam_device"] = num(inst)
                ven = first(a, "bacapp.vendor_identifier")
                if ven is not None:
                    r["iam_vendor"] = num(ven)
            else:
                for key, field in (("object_type", "bacapp.objectType"),
                                   ("instance", "bacapp.instance_number"),
                                   ("property", "bacapp.property_identifier")):
                    v = first(a, field)
                    if v is not None:
                        r[key] = num(v)
            for key in ("error_class", "error_code", "reject_reason", "abort_reason"):
                v = first(a, f"bacapp.{key}")
                if v is not None:
                    r[key] = num(v)
        yield r


if __name__ == "__main__":
    caps = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "../shared/captures/bacnet")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "fixtures/golden/bacnet")
    write_all("bacnet", caps, out, rows)
