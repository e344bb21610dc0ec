//! The body of every fuzz target: one function per target, called by its libFuzzer binary in
//! `fuzz_targets/` and, on every committed seed and regression input, by the replay test
//! `tests/fuzz_replay.rs` (which includes this file as a module, so both run exactly this code).
//! A body panics when it finds a fault; hangs and memory growth are libFuzzer's to catch
//! (`-timeout`, `-rss_limit_mb`), and the replay test's per-input deadline.

use plcprobe::{
    capture::{
        analysis::{Analysis, Emit},
        bpf,
        excerpt::{cut_stream, TimeSpec, Window},
        reader::{read_stream, Linktype, Packet, PacketDirection, ReadStats},
        serial::{LineFramer, MAX_FRAME},
        writer::tcp_frame,
        Config, Decoder,
    },
    device::modbus_scan::{score_bytes, server_id_text},
    proto::{
        bacnet::{self, mstp},
        dnp3::{self, app::parse_app, link_frame_len, transport::TransportReassembler},
        enip,
        exchange::Exchange,
        modbus::{
            pdu::{decode_pdu, rtu_crc_ok, rtu_frame_len, split_adu, Direction},
            rtu::{answer_len, find_frames, next_request, Timing},
        },
        opcua::{decode_message, starts_message, MESSAGE_TYPES},
        s7comm,
    },
};
use std::net::SocketAddr;

/// A target's body: it panics on a fault, returns otherwise.
pub type Body = fn(&[u8]);

/// Every target: its name (its `[[bin]]` in `fuzz/Cargo.toml`, its directory under `seeds/`,
/// `corpus/` and `regressions/`) and its body.
pub const TARGETS: [(&str, Body); 12] = [
    ("capture_file", capture_file),
    ("capture_excerpt", capture_excerpt),
    ("tcp_reassembly", tcp_reassembly),
    ("modbus_pdu", modbus_pdu),
    ("opcua_message", opcua_message),
    ("rtu_framing", rtu_framing),
    ("serial_framer", serial_framer),
    ("bpf_compile", bpf_compile),
    ("dnp3_frame", dnp3_frame),
    ("bacnet_message", bacnet_message),
    ("s7comm_pdu", s7comm_pdu),
    ("enip_message", enip_message),
];

/// Drops every transaction and PDU the analysis emits (the targets look for panics, hangs and
/// growth, not results).
struct Nothing;

impl Emit for Nothing {}

/// A decoder with everything on: OPC UA nodes, and RTU frames over TCP on port 4001.
fn decoder() -> Decoder {
    Decoder::new(Config {
        opcua_nodes: true,
        rtu_ports: vec![4001],
        ..Config::default()
    })
}

/// The analysis's identities (capture/analysis.rs, "Every request accounted for"): whatever
/// the bytes, every request of a device ended one way, and every response paired at most once.
fn every_request_accounted_for(an: &Analysis<'_>) {
    for d in &an.devices {
        assert_eq!(
            d.requests,
            d.answered + d.unanswered + d.pending + d.held,
            "{d:?}"
        );
        assert_eq!(d.responses, d.answered + d.unmatched_responses, "{d:?}");
    }
}

/// Any bytes as a capture file: the pcap/pcapng reader, link layers, TCP reassembly, the
/// Modbus and OPC UA decoders and the analysis, end to end.
pub fn capture_file(data: &[u8]) {
    let mut emit = Nothing;
    let mut an = Analysis::new(None, &mut emit);
    let mut dec = decoder();
    let mut stats = ReadStats::default();
    let input: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(data.to_vec()));
    let _ = read_stream(
        input,
        "fuzz",
        false,
        &mut stats,
        &mut |p| dec.packet(p, &mut an),
        data,
    );
    dec.finish(&mut an);
    an.finish();
    every_request_accounted_for(&an);
}

/// What a reader says of one packet, for comparing a capture with its excerpt: time, link
/// type, interface name, wire length (at least the captured length), bytes.
type Seen = (i64, i32, Option<String>, u32, Vec<u8>);

fn packets_of(data: &[u8]) -> Option<(Vec<Seen>, ReadStats)> {
    let mut stats = ReadStats::default();
    let mut seen = Vec::new();
    let input: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(data.to_vec()));
    read_stream(
        input,
        "fuzz",
        false,
        &mut stats,
        &mut |p| {
            seen.push((
                p.ts_ns,
                p.linktype.0 & 0xffff,
                p.if_name.map(str::to_string),
                p.orig_len
                    .max(u32::try_from(p.data.len()).unwrap_or(u32::MAX)),
                p.data.to_vec(),
            ));
        },
        data,
    )
    .ok()?;
    Some((seen, stats))
}

/// Any bytes as a capture, cut (`decode --from/--to -w`): with an open window the excerpt,
/// read back, holds every packet the reader delivers from the input (simple packet blocks
/// aside, which have no time) with the same time, link type, interface name, lengths and
/// bytes; cut from the median packet time on, exactly those at or after it.
pub fn capture_excerpt(data: &[u8]) {
    let Some((input, stats)) = packets_of(data) else {
        return;
    };
    let cut = |window: &Window| {
        let mut out = Vec::new();
        let stream: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(data.to_vec()));
        let r = cut_stream(stream, "fuzz", false, data, window, ("", ""), &mut out);
        r.ok().map(|c| (c, out))
    };
    let Some((made, out)) = cut(&Window::default()) else {
        return; // no packet with a time: nothing to compare
    };
    let (back, back_stats) = packets_of(&out).expect("an excerpt is a capture");
    assert!(
        back_stats.truncated.is_none(),
        "an excerpt reads to its end"
    );
    assert_eq!(back.len() as u64, made.kept);
    // Simple packet blocks: delivered by the reader with time 0, left out of an excerpt.
    let simple = made.untimed - stats.unknown_interface;
    if simple == 0 {
        assert_eq!(back, input, "an open window keeps every packet as it was");
    }
    let mut times: Vec<i64> = back.iter().map(|p| p.0).collect();
    times.sort_unstable();
    let median = times[times.len() / 2];
    let from = Window {
        from: Some(TimeSpec::At(median)),
        to: None,
    };
    let (_, later) = cut(&from).expect("the median packet is in its own window");
    let (later, _) = packets_of(&later).expect("an excerpt is a capture");
    let want: Vec<Seen> = back.into_iter().filter(|p| p.0 >= median).collect();
    assert_eq!(later, want, "from the median on");
}

/// TCP reassembly: the input scripts a conversation on port 502 (or 4840, or RTU on 4001):
/// each step picks a direction, flags, a sequence offset (in order, retransmitted, out of
/// order, far ahead) and a payload. Reassembly must never panic, hang or grow without bound.
pub fn tcp_reassembly(data: &[u8]) {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let port = [502u16, 4840, 4001][usize::from(sel % 3)];
    let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let server = SocketAddr::new("10.0.0.2".parse().unwrap(), port);
    let mut emit = Nothing;
    let mut an = Analysis::new(None, &mut emit);
    let mut dec = decoder();
    let mut next = [1000u32, 9000u32];
    let mut frame = 0u64;
    while rest.len() >= 4 {
        let (head, tail) = rest.split_at(4);
        let len = usize::from(head[3] % 64).min(tail.len());
        let (payload, tail2) = tail.split_at(len);
        rest = tail2;
        let d = usize::from(head[0] & 1);
        let flags = [0x18u8, 0x18, 0x18, 0x19, 0x12, 0x14, 0x10, 0x02][usize::from(head[0] >> 5)];
        let seq = match head[1] % 4 {
            0 => next[d],
            1 => next[d].wrapping_sub(u32::from(head[2])),
            2 => next[d].wrapping_add(u32::from(head[2])),
            _ => next[d].wrapping_add(u32::from(head[2]) << 20),
        };
        let ack = next[1 - d].wrapping_add(u32::from(head[1] >> 4));
        if seq == next[d] {
            next[d] = next[d].wrapping_add(u32::try_from(len).unwrap());
        }
        let (src, dst) = if d == 0 {
            (client, server)
        } else {
            (server, client)
        };
        let f = tcp_frame(src, dst, seq, ack, flags, payload);
        frame += 1;
        dec.packet(
            &Packet {
                frame,
                ts_ns: i64::try_from(frame).unwrap() * 1000,
                linktype: Linktype::ETHERNET,
                data: &f,
                orig_len: u32::try_from(f.len()).unwrap(),
                direction: PacketDirection::Unknown,
                if_name: None,
            },
            &mut an,
        );
    }
    dec.finish(&mut an);
    an.finish();
    every_request_accounted_for(&an);
}

/// The Modbus PDU, MBAP and RTU codecs on any bytes, both directions.
pub fn modbus_pdu(data: &[u8]) {
    for dir in [Direction::Query, Direction::Response] {
        let p = decode_pdu(data, dir);
        let _ = p.registers().count();
        let _ = p.is_write();
        let _ = rtu_frame_len(data, dir);
    }
    if let Some((_, pdu)) = split_adu(data) {
        let _ = decode_pdu(pdu, Direction::Response);
    }
    let _ = rtu_crc_ok(data);
}

/// The OPC UA Binary message decoder on any bytes (and on any body behind a valid header:
/// the first byte picks the message type, the rest is the body).
pub fn opcua_message(data: &[u8]) {
    let _ = starts_message(data);
    let _ = decode_message(data, true);
    if let Some((&k, body)) = data.split_first() {
        let mut m = MESSAGE_TYPES[usize::from(k) % MESSAGE_TYPES.len()].to_vec();
        m.push(b'F');
        m.extend_from_slice(&u32::try_from(body.len() + 8).unwrap().to_le_bytes());
        m.extend_from_slice(body);
        let _ = decode_message(&m, true);
    }
}

/// Everything a codec's [`Exchange`] view offers, on one message: none may panic, and a
/// failure code is always named.
fn exercise(m: &dyn Exchange, status_name: fn(u32) -> &'static str) {
    let mut s = String::new();
    let mut f = Vec::new();
    let _ = (
        m.role(),
        m.key(),
        m.function(),
        m.unit(),
        m.is_write(),
        m.malformed(),
    );
    if let Some(code) = m.failure() {
        assert!(!status_name(code).is_empty());
    }
    m.target(&mut s);
    m.written(&mut s);
    m.fields(&mut f);
}

/// Any bytes as a TCP 102 stream: TPKT packets cut by `tpkt_len` (each inside the input),
/// their COTP TPDUs, DT payloads through the reassembler (bounded), and every S7 PDU through
/// `parse_pdu` and its Exchange view; the bytes are also read as one S7 PDU directly.
pub fn s7comm_pdu(data: &[u8]) {
    let _ = s7comm::looks_like_s7(data);
    let mut r = s7comm::CotpReassembler::new();
    let mut off = 0;
    while let Some(len) = s7comm::tpkt_len(&data[off..]) {
        assert!((s7comm::TPKT_MIN_LEN..=s7comm::TPKT_MAX_LEN).contains(&len));
        if off + len > data.len() {
            break;
        }
        let packet = &data[off..off + len];
        off += len;
        let Some(cotp) = s7comm::cotp_of_tpkt(packet) else {
            continue;
        };
        assert!(cotp.payload.len() < packet.len());
        if cotp.kind != s7comm::CotpKind::Data {
            continue;
        }
        let joined;
        let pdu = match r.push(cotp.payload, cotp.eot) {
            s7comm::Reassembled::Whole(b) => b,
            s7comm::Reassembled::Joined(v) => {
                assert!(v.len() <= s7comm::MAX_REASSEMBLED);
                joined = v;
                &joined
            }
            _ => continue,
        };
        if let Some(p) = s7comm::parse_pdu(pdu) {
            exercise(&p, s7comm::status_name);
            let _ = s7comm::function_name(p.function());
        }
    }
    if let Some(p) = s7comm::parse_pdu(data) {
        assert!(p.param.len() + p.data.len() <= data.len());
        exercise(&p, s7comm::status_name);
        // The analysis keeps a request's target and write flag by its request bytes: the same
        // request sent again (another PDU reference, other data) must say the same.
        let rb = p.request_bytes();
        if !rb.is_empty() {
            let mut again = data.to_vec();
            again[4] ^= 0xff;
            again[5] ^= 0x5a;
            let at = (p.data.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
            if let Some(d) = again.get_mut(at..at + p.data.len()) {
                for b in d.iter_mut() {
                    *b = !*b;
                }
            }
            let q = s7comm::parse_pdu(&again).expect("the same header");
            assert_eq!(q.request_bytes(), rb);
            let (mut a, mut b) = (String::new(), String::new());
            p.target(&mut a);
            q.target(&mut b);
            assert_eq!(a, b);
            assert_eq!(p.is_write(), q.is_write());
        }
    }
}

/// Any bytes as a TCP 44818 stream cut by `enip_len` (each message's length agrees with its
/// header), each message through `parse_message` and its Exchange view and every CIP service
/// in it; the bytes are also read as one implicit I/O packet and as one CIP message.
pub fn enip_message(data: &[u8]) {
    let _ = enip::looks_like_enip(data);
    let mut off = 0;
    while let Some(len) = enip::enip_len(&data[off..]) {
        let end = (off + len).min(data.len());
        let m = enip::parse_message(&data[off..end]).expect("enip_len saw a header");
        assert_eq!(len, enip::HEADER_LEN + usize::from(m.length));
        exercise(&m, enip::status_name);
        let _ = enip::function_name(m.function());
        // What the analysis keeps a request's target by is the CIP message it was read from.
        let rb = m.request_bytes();
        if !rb.is_empty() {
            assert_eq!(enip::cip::parse_cip(rb), m.cip);
        }
        for c in m.services() {
            let _ = (c.forward_open(), c.forward_close(), c.written_bytes());
        }
        off = end;
        if off >= data.len() {
            break;
        }
    }
    if let Some(io) = enip::parse_io(data) {
        exercise(&io, enip::status_name);
    }
    if let Some(c) = enip::cip::parse_cip(data) {
        let _ = (c.multiple().count(), c.embedded(), c.forward_open());
        let mut s = String::new();
        c.path.render(&mut s);
    }
}

/// Any bytes as a serial line's stream: RTU frame finding (both directions, FC43 included),
/// the server's request reader, the client's answer length, the listener's scoring, and
/// server-ID text. None may panic; every frame found lies inside the input and checks its CRC.
pub fn rtu_framing(data: &[u8]) {
    for f in find_frames(data) {
        assert!(f.start + f.len <= data.len());
        assert!(rtu_crc_ok(&data[f.start..f.start + f.len]));
    }
    if let Some((skip, len)) = next_request(data) {
        assert!(skip + len <= data.len());
        assert!(rtu_crc_ok(&data[skip..skip + len]));
    }
    let _ = answer_len(data);
    let s = score_bytes(data);
    assert!(s.framed_bytes <= s.bytes);
    let _ = server_id_text(data);
}

/// A sniffed serial line: the first byte picks PARMRK marks on or off and the baud; then each
/// step is a header (length, pause before it) and that many bytes, fed to the framer as one
/// chunk, with an idle check after some. The framer must never panic; every frame it hands out
/// is 1..=256 bytes, a frame it calls good checks its
/// CRC, and without marks every byte comes out once, in a frame or as noise. The same frames
/// then go through the decoder as link type 252, 147 and 250 packets, and the analysis.
pub fn serial_framer(data: &[u8]) {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let parmrk = sel & 1 == 1;
    let baud = [9600u32, 19_200, 115_200][usize::from(sel >> 1) % 3];
    let mut fr = LineFramer::new(Timing::new(baud, 11), parmrk);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut fed = 0u64;
    let mut ts = 1_000_000_000i64;
    let check = |f: &plcprobe::capture::serial::Frame<'_>, frames: &mut Vec<Vec<u8>>| {
        assert!(!f.bytes.is_empty() && f.bytes.len() <= MAX_FRAME);
        if f.crc_ok {
            assert!(rtu_crc_ok(f.bytes));
        }
        frames.push(f.bytes.to_vec());
    };
    while rest.len() >= 2 {
        let (head, tail) = rest.split_at(2);
        let n = usize::from(head[0] % 96).min(tail.len());
        let (chunk, tail2) = tail.split_at(n);
        rest = tail2;
        ts += i64::from(head[1]) * 100_000;
        fed += n as u64;
        fr.push(ts, chunk, &mut |f| check(f, &mut frames));
        if head[1] & 0x80 != 0 {
            fr.idle(ts + i64::from(head[1]) * 1_000_000, &mut |f| {
                check(f, &mut frames);
            });
        }
    }
    fr.finish(&mut |f| check(f, &mut frames));
    if !parmrk {
        let out: u64 = frames.iter().map(|f| f.len() as u64).sum();
        assert_eq!(out + fr.stats().noise_bytes, fed);
    }
    let mut emit = Nothing;
    let mut an = Analysis::new(None, &mut emit);
    let mut dec = decoder();
    for (i, f) in frames.iter().enumerate() {
        let (lt, mut p) = match i % 3 {
            0 => (252, plcprobe::capture::serial::MBRTU_HEADER.to_vec()),
            1 => (147, Vec::new()),
            _ => (250, vec![0, 0, 0, 1, 0, 0, 0, 2, sel, 0, 0, 0]),
        };
        p.extend_from_slice(f);
        dec.packet(
            &Packet {
                frame: i as u64 + 1,
                ts_ns: i64::try_from(i).unwrap() * 1_000_000,
                linktype: Linktype(lt),
                data: &p,
                orig_len: u32::try_from(p.len()).unwrap(),
                direction: [
                    PacketDirection::Unknown,
                    PacketDirection::Inbound,
                    PacketDirection::Outbound,
                ][usize::from(sel >> 4) % 3],
                if_name: Some("ttyFUZZ"),
            },
            &mut an,
        );
    }
    dec.finish(&mut an);
    an.finish();
}

/// Any bytes as a `--filter` expression (lossily UTF-8): compiling never panics; an error names
/// a column inside the expression (or one past its end) in one line; a compiled program passes
/// the kernel's checks and, run on the input itself as a frame (with and without a stripped
/// VLAN tag), returns 0 or the snapshot length.
pub fn bpf_compile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match bpf::compile(&text) {
        Ok(prog) => {
            if let Err(e) = bpf::validate(&prog) {
                panic!("{text:?} compiled to a program the kernel refuses: {e}");
            }
            for meta in [
                bpf::Meta::default(),
                bpf::Meta {
                    vlan_tci: Some(0x200a),
                },
            ] {
                let r = bpf::run(
                    &prog,
                    data,
                    u32::try_from(data.len()).unwrap_or(u32::MAX),
                    &meta,
                );
                assert!(r == 0 || r == bpf::ACCEPT, "{text:?} returned {r}");
            }
        }
        Err(e) => {
            assert!(
                (1..=text.chars().count() + 1).contains(&e.column),
                "{text:?}: column {} outside the expression",
                e.column
            );
            assert!(!e.to_string().contains('\n'), "{text:?}: {e}");
        }
    }
}

/// Any bytes as a DNP3 TCP stream of one direction: cut into link frames by `link_frame_len`
/// (what the parser consumes must be that length), each decoded through transport reassembly
/// and the application layer; the bytes also go straight to the reassembler (its bound holds)
/// and the application parser.
pub fn dnp3_frame(data: &[u8]) {
    let mut stream = dnp3::Dnp3Stream::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = match link_frame_len(rest) {
            Some(n) => n.min(rest.len()),
            None => 1,
        };
        let m = stream.decode(&rest[..n]);
        if let Some(full) = link_frame_len(rest).filter(|&l| l <= rest.len()) {
            assert_eq!(m.wire_len, full);
        }
        exercise(&m, dnp3::status_name);
        let _ = (
            dnp3::function_name(m.function()),
            m.failure().map(dnp3::status_name),
        );
        rest = &rest[n..];
    }
    let mut r = TransportReassembler::new(64);
    for seg in data.chunks(7) {
        if let Some(frag) = r.push(seg) {
            assert!(frag.len() <= 64);
        }
        assert!(r.held_len() <= 64);
    }
    let _ = parse_app(data);
}

/// Any bytes as a BACnet/IP UDP payload, as an NPDU, and as MS/TP frames (with the NPDU of a
/// data frame decoded by the same code).
pub fn bacnet_message(data: &[u8]) {
    let _ = bacnet::udp_message_looks_like_bacnet(data);
    let m = bacnet::parse_bvlc_message(data);
    exercise(&m, bacnet::status_name);
    let _ = (
        bacnet::function_name(m.function()),
        m.failure().map(bacnet::status_name),
    );
    exercise(&bacnet::parse_npdu_message(data), bacnet::status_name);
    let mut rest = data;
    while let Some(f) = mstp::parse_frame(rest) {
        exercise(&mstp::MstpMessage::of(f), bacnet::status_name);
        if f.carries_npdu() {
            exercise(&bacnet::parse_npdu_message(f.data), bacnet::status_name);
        }
        let used = 8 + f.data.len() + if f.data.is_empty() || f.cut { 0 } else { 2 };
        assert!(used <= rest.len());
        rest = &rest[used..];
    }
}
