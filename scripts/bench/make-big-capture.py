#!/usr/bin/env python3
"""Build a large capture for the decode benchmark (kept outside the repository).

As ../shared/captures/MANIFEST.md describes its throughput anchor: the seed pcap replicated N
times; copy i has its timestamps shifted by i x 86 s and octets 2 and 3 of every IPv4 address
XOR-ed with i (high and low byte), so the copies are separate TCP conversations and neither
tshark nor plcprobe sees them as retransmissions. Checksums are not patched (neither tool
verifies them by default).

usage: make-big-capture.py SEED.pcap COPIES OUT.pcap
"""
import struct
import sys

seed, copies, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(seed, "rb").read()
magic = struct.unpack_from("<I", data, 0)[0]
assert magic == 0xA1B2C3D4, "little-endian microsecond pcap expected"
assert struct.unpack_from("<I", data, 20)[0] == 1, "Ethernet expected"
header = data[:24]
packets = []  # (sec, usec, frame bytearray, offset of IPv4 src or -1)
off = 24
while off + 16 <= len(data):
    sec, usec, incl, orig = struct.unpack_from("<IIII", data, off)
    frame = data[off + 16 : off + 16 + incl]
    off += 16 + incl
    ip = -1
    et = frame[12:14]
    base = 14
    while et in (b"\x81\x00", b"\x88\xa8"):
        et = frame[base + 2 : base + 4]
        base += 4
    if et == b"\x08\x00" and len(frame) >= base + 20:
        ip = base + 12
    packets.append((sec, usec, orig, bytearray(frame), ip))

with open(out, "wb", buffering=1 << 22) as f:
    f.write(header)
    pack = struct.Struct("<IIII").pack
    for i in range(copies):
        hi, lo = (i >> 8) & 0xFF, i & 0xFF
        shift = i * 86
        chunks = []
        for sec, usec, orig, frame, ip in packets:
            if ip >= 0 and i:
                fr = bytearray(frame)
                fr[ip + 1] ^= hi
                fr[ip + 2] ^= lo
                fr[ip + 5] ^= hi
                fr[ip + 6] ^= lo
            else:
                fr = frame
            chunks.append(pack(sec + shift, usec, len(fr), orig))
            chunks.append(fr)
        f.write(b"".join(chunks))
print(f"{out}: {copies} copies of {len(packets)} packets")
