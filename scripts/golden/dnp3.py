#!/usr/bin/env python3
"""tshark's decoding of the DNP3 captures as golden files: one JSON object per DNP3 link frame,
with the application fields on the frame that completes a fragment.

Usage: python3 scripts/golden/dnp3.py [CAPTURES_DIR] [OUT_DIR]
  defaults: ../shared/captures/dnp3 and fixtures/golden/dnp3 (relative to the project root);
  MAX_FRAME=0 lifts the 3000-frame cap; TSHARK=/path/to/tshark.
Per capture: tshark -n -r CAP -Y "dnp3 && frame.number <= 3000" -T json
             -J "frame ip tcp udp dnp3" with an empty WIRESHARK_CONFIG_DIR.
Keys (plcprobe's proto::dnp3 Message::fields uses the same): frame, ts, src, dst, sport, dport,
index (link frame within the frame), link_ctl, link_dir, link_prm, link_func, link_dst,
link_src, hdr_crc_ok, data_crc_ok, tr_fir, tr_fin, tr_seq, al_fir, al_fin, al_con, al_uns,
al_seq, al_func, al_iin, al_objects ("g12v1 q0x28 n1; g1v2 q0x00 0-7", "; "-joined), and
al_ctrlstatus (the control statuses in order, ","-joined)."""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import first, meta, num, tshark_frames, walk, write_all

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def flag(v):
    return num(v) not in (0, None)


def objects(app):
    out, cur = [], None
    statuses = []
    for k, v in walk(app):
        if k == "dnp3.al.obj":
            cur = {"obj": num(v)}
            out.append(cur)
        elif cur is not None and k in ("dnp3.al.objq.prefix", "dnp3.al.objq.range",
                                       "dnp3.al.range.start", "dnp3.al.range.stop",
                                       "dnp3.al.range.quantity", "dnp3.al.range.abs"):
            cur.setdefault(k, num(v))
        elif k == "dnp3.al.ctrlstatus":
            statuses.append(str(num(v)))
    text = []
    for o in out:
        g, var = o["obj"] >> 8, o["obj"] & 0xFF
        q = (o.get("dnp3.al.objq.prefix", 0) << 4) | o.get("dnp3.al.objq.range", 0)
        s = f"g{g}v{var} q0x{q:02x}"
        if "dnp3.al.range.start" in o:
            s += f" {o['dnp3.al.range.start']}-{o.get('dnp3.al.range.stop')}"
        elif "dnp3.al.range.quantity" in o:
            s += f" n{o['dnp3.al.range.quantity']}"
        elif "dnp3.al.range.abs" in o:
            s += f" @{o['dnp3.al.range.abs']}"
        text.append(s)
    return "; ".join(text), ",".join(statuses)


def rows(cap):
    for layers in tshark_frames(cap, "dnp3", "frame ip tcp udp dnp3"):
        m = meta(layers)
        index = 0
        for name, layer in layers:
            if name != "dnp3" or not isinstance(layer, list):
                continue
            r = dict(m, index=index)
            index += 1
            link = next((v for k, v in layer if k.startswith("Data Link Layer")), None)
            if link is not None:
                r["link_ctl"] = num(first(link, "dnp3.ctl"))
                r["link_dir"] = flag(first(link, "dnp3.ctl.dir"))
                r["link_prm"] = flag(first(link, "dnp3.ctl.prm"))
                f = first(link, "dnp3.ctl.prifunc")
                r["link_func"] = num(f if f is not None else first(link, "dnp3.ctl.secfunc"))
                r["link_dst"] = num(first(link, "dnp3.dst"))
                r["link_src"] = num(first(link, "dnp3.src"))
                st = first(link, "dnp.hdr.CRC.status")
                if st is not None:
                    r["hdr_crc_ok"] = num(st) == 1
            chunks = [num(v) for k, v in walk(layer) if k == "dnp.data_chunk.CRC.status"]
            if "hdr_crc_ok" in r:
                r["data_crc_ok"] = all(c == 1 for c in chunks)
            tr = dict(layer).get("dnp3.tr.ctl_tree")
            if tr is not None:
                r["tr_fir"] = flag(first(tr, "dnp3.tr.fir"))
                r["tr_fin"] = flag(first(tr, "dnp3.tr.fin"))
                r["tr_seq"] = num(first(tr, "dnp3.tr.seq"))
            app = next((v for k, v in layer if k.startswith("Application Layer")), None)
            if app is not None and first(app, "dnp3.al.func") is not None:
                for key in ("fir", "fin", "con", "uns"):
                    r[f"al_{key}"] = flag(first(app, f"dnp3.al.{key}"))
                r["al_seq"] = num(first(app, "dnp3.al.seq"))
                r["al_func"] = num(first(app, "dnp3.al.func"))
                iin = first(app, "dnp3.al.iin")
                if iin is not None:
                    r["al_iin"] = num(iin)
                objs, statuses = objects(app)
                if objs:
                    r["al_objects"] = objs
                if statuses:
                    r["al_ctrlstatus"] = statuses
            yield r


if __name__ == "__main__":
    caps = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "../shared/captures/dnp3")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "fixtures/golden/dnp3")
    write_all("dnp3", caps, out, rows)
