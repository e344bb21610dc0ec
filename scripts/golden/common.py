"""Shared by the golden-file generators (s7comm.py, enip.py, dnp3.py, bacnet.py): run tshark on a
capture with an empty configuration directory (default preferences) and yield, per frame, its
layers as ordered (key, value) pairs (duplicate keys kept: a TCP segment with several DNP3 link
frames has several `dnp3` layers); read fields out of them; write one JSON object per line."""
import json, os, subprocess, sys, tempfile

MAX_FRAME = int(os.environ.get("MAX_FRAME", "3000"))
TSHARK = os.environ.get("TSHARK", "tshark")


def tshark_frames(cap, display_filter, protocols, check=False):
    """`check`: a tshark exit status other than 0 is an error (not for captures tshark calls
    cut short, which it reads to their end and then exits with 2)."""
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=tempfile.mkdtemp())
    flt = f"({display_filter})"
    if MAX_FRAME:
        flt += f" && frame.number <= {MAX_FRAME}"
    cmd = [TSHARK, "-n", "-r", cap, "-Y", flt, "-T", "json", "-J", protocols]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=check).stdout
    if not out.strip():
        return
    for pkt in json.loads(out, object_pairs_hook=lambda p: p):
        layers = dict(pkt)["_source"]
        layers = dict(layers)["layers"]
        yield layers


def first(pairs, key):
    for k, v in walk(pairs):
        if k == key:
            return v
    return None


def child(pairs, key):
    """The value of `key` among `pairs` itself (not nested)."""
    for k, v in pairs:
        if k == key:
            return v
    return None


def walk(node):
    """Depth-first (key, value) over nested pairs."""
    if not isinstance(node, list):
        return
    for item in node:
        if isinstance(item, tuple) and len(item) == 2:
            k, v = item
            yield k, v
            if isinstance(v, list):
                yield from walk(v)


def num(v):
    try:
        return int(v, 0)
    except (TypeError, ValueError):
        return v


def meta(layers):
    """frame, ts, src, dst, sport, dport of a frame."""
    fr = dict(layers).get("frame") or []
    row = {"frame": num(first(fr, "frame.number")),
           "ts": first(fr, "frame.time_epoch")}
    ip = dict(layers).get("ip")
    if ip:
        row["src"], row["dst"] = first(ip, "ip.src"), first(ip, "ip.dst")
    for l4 in ("tcp", "udp"):
        t = dict(layers).get(l4)
        if t:
            row["sport"] = num(first(t, f"{l4}.srcport"))
            row["dport"] = num(first(t, f"{l4}.dstport"))
    return row


def frame_base(layers, transport=False):
    """frame, ts, src, dst (IPv4 or IPv6), sport, dport of a TCP or UDP frame, and with
    `transport` which of the two."""
    frame = child(layers, "frame")
    ip = child(layers, "ip") or child(layers, "ipv6") or []
    proto = "tcp" if child(layers, "tcp") is not None else "udp"
    l4 = child(layers, proto) or []
    row = {
        "frame": num(first(frame, "frame.number")),
        "ts": first(frame, "frame.time_epoch"),
        "src": first(ip, "ip.src") or first(ip, "ipv6.src"),
        "dst": first(ip, "ip.dst") or first(ip, "ipv6.dst"),
        "sport": num(first(l4, f"{proto}.srcport")),
        "dport": num(first(l4, f"{proto}.dstport")),
    }
    if transport:
        row["transport"] = proto
    return row


def version():
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=tempfile.mkdtemp())
    return subprocess.run([TSHARK, "--version"], capture_output=True, text=True,
                          env=env).stdout.splitlines()[0]


def write_all(kind, captures_dir, out_dir, rows_of):
    """Every capture in `captures_dir`, and tshark's version beside them."""
    caps = [os.path.join(captures_dir, name) for name in sorted(os.listdir(captures_dir))
            if name.endswith((".pcap", ".pcapng"))]
    write_files(kind, caps, out_dir, rows_of)
    with open(os.path.join(out_dir, "tshark-version.txt"), "w") as f:
        f.write(version() + "\n")


def write_files(kind, caps, out_dir, rows_of, ensure_ascii=True):
    """`out_dir`/<capture>.tshark.jsonl per capture: the objects `rows_of(capture)` yields."""
    os.makedirs(out_dir, exist_ok=True)
    for cap in caps:
        rows = list(rows_of(cap))
        base = os.path.basename(cap).rsplit(".", 1)[0]
        with open(os.path.join(out_dir, base + ".tshark.jsonl"), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=ensure_ascii, separators=(",", ":")) + "\n")
        print(f"{kind}: {os.path.basename(cap)}: {len(rows)} messages", file=sys.stderr)
