//! TCP reassembly: the input scripts a conversation on port 502 (or 4840, or RTU on 4001):
//! each step picks a direction, flags, a sequence offset (in order, retransmitted, out of
//! order, far ahead) and a payload. Reassembly must never panic, hang or grow without bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use plcprobe::capture::{analysis::Analysis, reader::Packet, writer::tcp_frame};

mod common;
use common::Nothing;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else { return };
    let port = [502u16, 4840, 4001][usize::from(sel % 3)];
    let client: std::net::SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let server = std::net::SocketAddr::new("10.0.0.2".parse().unwrap(), port);
    let mut emit = Nothing;
    let mut an = Analysis::new(None, &mut emit);
    let mut dec = common::decoder();
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
        let (src, dst) = if d == 0 { (client, server) } else { (server, client) };
        let f = tcp_frame(src, dst, seq, ack, flags, payload);
        frame += 1;
        dec.packet(
            &Packet {
                frame,
                ts_ns: i64::try_from(frame).unwrap() * 1000,
                linktype: pcap_parser_linktype(),
                data: &f,
                orig_len: u32::try_from(f.len()).unwrap(),
            },
            &mut an,
        );
    }
    dec.finish(&mut an);
    an.finish();
});

fn pcap_parser_linktype() -> plcprobe::capture::reader::Linktype {
    plcprobe::capture::reader::Linktype::ETHERNET
}
