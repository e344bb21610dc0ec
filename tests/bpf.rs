//! Capture filters: plcprobe's BPF compiler (`capture::bpf`) against libpcap's. For each of
//! [`EXPRESSIONS`] three programs run in `bpf::run` on every Ethernet frame of the public
//! captures in `../shared/captures` and on synthesized frames (IPv4/IPv6 TCP/UDP/SCTP/ICMP,
//! fragments, IP options, ARP/RARP, 802.3, VLAN tags in the frame and stripped by the kernel,
//! and every truncation of each): plcprobe's; libpcap's as a capture uses it (optimised,
//! printed by `dumpcap -i lo -f EXPR -d` and parsed here); and libpcap's unoptimised program
//! (`pcap_compile(.., optimize = 0, ..)` on a live `lo` handle, through Python's ctypes), which
//! is what plcprobe's code generation mirrors.
//!
//! plcprobe must decide as unoptimised libpcap on every frame, and as dumpcap's program on every
//! frame where libpcap's two programs agree with each other. They disagree only on truncated
//! frames: libpcap's optimiser drops or reorders loads, so a frame too short for a load that
//! the optimised program no longer makes is accepted by it and rejected by the unoptimised one
//! (the kernel rejects a program's load outside the frame). Those frames are counted and
//! printed. Each expression must accept some frames and reject others, so agreement cannot come
//! from programs that do nothing.
//!
//! Also: 300 random expressions of the grammar, refused by both compilers or decided alike by
//! plcprobe and unoptimised libpcap on every synthesized frame; and the kernel itself, with
//! libpcap's programs attached by dumpcap on `lo` and frames sent there through an `AF_PACKET`
//! socket (Python), whose every decision `bpf::run` must predict.

use crate::util::{root, skip};
use plcprobe::capture::{
    bpf::{self, code, compile, run, validate, Insn, Meta, SKF_AD_OFF},
    reader::{for_each_packet, Linktype},
};
use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

/// Expressions covering the supported grammar, with addresses and ports that occur in the
/// public captures and in the synthesized frames.
const EXPRESSIONS: &[&str] = &[
    "ip",
    "ip6",
    "arp",
    "rarp",
    "tcp",
    "udp",
    "icmp",
    "sctp",
    "host 141.81.0.10",
    "src host 192.168.0.21",
    "dst host 192.168.0.20",
    "host 10.0.0.5",
    "ip host 10.0.0.5",
    "arp host 10.0.0.5",
    "src or dst host 10.0.0.5",
    "src and dst host 10.0.0.5",
    "host 2001:db8::5",
    "src host 2001:db8::5",
    "ip6 dst host 2001:db8::6",
    "net 141.81.0.0/24",
    "src net 192.168.0.0/16",
    "dst net 10.0.0.0/8",
    "net 10.0",
    "net 2001:db8::/32",
    "port 502",
    "src port 502",
    "dst port 502",
    "tcp port 102",
    "udp port 2222",
    "sctp port 502",
    "port 502 or 4840",
    "port 502 or 102 or 44818",
    "portrange 500-510",
    "tcp portrange 40000-50000",
    "src portrange 1024-65535",
    "udp dst portrange 47808-47820",
    "ether host 00:1d:9c:c8:03:e7",
    "ether src 00:1d:9c:c8:03:e7",
    "ether dst 02:00:00:00:00:02",
    "vlan",
    "vlan 10",
    "vlan and port 502",
    "vlan 10 and host 10.0.0.5",
    "vlan and vlan 20",
    "vlan or port 502",
    "port 502 and vlan",
    "tcp and not vlan",
    "less 64",
    "greater 1000",
    "less 100 and tcp",
    "host 141.81.0.10 and port 502",
    "host 10.0.0.5 or 10.0.0.6",
    "host 10.0.0.5 and (10.0.0.6 or 10.0.0.7)",
    "tcp and not port 502",
    "not (port 502 or port 4840)",
    "! tcp && ! udp",
    "tcp || icmp",
    "(tcp and port 502) or (udp and port 2222)",
    "ip and not net 141.81.0.0/24",
    "host 141.81.0.10 and not port 502 and not port 102",
    "tcp port 502 and src host 192.168.0.21",
    "udp or arp or icmp",
    // Over 255 instructions: jumps that do not fit in 8 bits.
    "port 502 or 503 or 504 or 505 or 506 or 507 or 102 or 2222 or 44818 or 4840 or 20000 or 47808",
    "vlan and (port 1 or 2 or 3 or 4 or 5 or 6 or 7 or 8 or 9 or 10 or 502)",
];

/// The program libpcap compiles for `expr` on the loopback interface (link type Ethernet on
/// Linux), as `dumpcap -d` prints it.
fn libpcap_program(expr: &str) -> Vec<Insn> {
    let out = Command::new("dumpcap")
        .args(["-i", "lo", "-f", expr, "-d"])
        .output()
        .expect("run dumpcap");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("(000)"),
        "dumpcap -f {expr:?} -d failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_listing(&text).unwrap_or_else(|e| panic!("dumpcap listing of {expr:?}: {e}\n{text}"))
}

/// Parses libpcap's `bpf_image` listing (`(001) jeq #0x800 jt 2 jf 6`) back into instructions.
fn parse_listing(text: &str) -> Result<Vec<Insn>, String> {
    let mut prog = Vec::new();
    for line in text.lines().filter(|l| l.starts_with('(')) {
        let (n, rest) = line[1..]
            .split_once(')')
            .ok_or_else(|| format!("no `)` in {line:?}"))?;
        let n: usize = n.parse().map_err(|_| format!("bad index in {line:?}"))?;
        if n != prog.len() {
            return Err(format!("line {n} out of order"));
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let (op, args) = words.split_first().ok_or("empty line")?;
        prog.push(parse_insn(n, op, args).map_err(|e| format!("{line:?}: {e}"))?);
    }
    Ok(prog)
}

fn number(s: &str) -> Result<u32, String> {
    let r = if let Some(h) = s.strip_prefix("0x") {
        u32::from_str_radix(h, 16).map_err(|e| e.to_string())
    } else {
        s.parse::<i64>()
            .map(|v| v as u32)
            .map_err(|e| e.to_string())
    };
    r.map_err(|e| format!("{s}: {e}"))
}

fn parse_insn(n: usize, op: &str, args: &[&str]) -> Result<Insn, String> {
    use code::*;
    let arg = args.join(" ");
    let arg = arg.as_str();
    let stmt = |c: u16, k: u32| -> Result<Insn, String> { Ok(Insn::stmt(c, k)) };
    let size = |op: &str| match op.trim_start_matches("ld").trim_start_matches('x') {
        "h" => H,
        "b" => B,
        _ => W,
    };
    match op {
        "ret" if arg.is_empty() => stmt(RET | A, 0),
        "ret" => stmt(RET | K, number(arg.trim_start_matches('#'))?),
        "ld" | "ldh" | "ldb" | "ldx" | "ldxb" => {
            let class = if op.starts_with("ldx") { LDX } else { LD };
            if arg == "#pktlen" {
                stmt(class | W | LEN, 0)
            } else if let Some(k) = arg.strip_prefix('#') {
                stmt(class | W | IMM, number(k)?)
            } else if let Some(m) = arg.strip_prefix("M[") {
                stmt(class | W | MEM, number(m.trim_end_matches(']'))?)
            } else if let Some(k) = arg.strip_prefix("4*([") {
                stmt(LDX | B | MSH, number(k.trim_end_matches("]&0xf)"))?)
            } else if let Some(k) = arg.strip_prefix("[x + ") {
                stmt(LD | size(op) | IND, number(k.trim_end_matches(']'))?)
            } else if let Some(k) = arg.strip_prefix('[') {
                let k = k.trim_end_matches(']');
                let k = match k {
                    "vlan_tci" => SKF_AD_OFF + bpf::SKF_AD_VLAN_TAG,
                    "vlanp" => SKF_AD_OFF + bpf::SKF_AD_VLAN_TAG_PRESENT,
                    _ => number(k)?,
                };
                stmt(LD | size(op) | ABS, k)
            } else {
                Err(format!("unknown operand {arg}"))
            }
        }
        "st" | "stx" => {
            let k = number(arg.trim_start_matches("M[").trim_end_matches(']'))?;
            stmt(if op == "st" { ST } else { STX }, k)
        }
        "tax" => stmt(MISC | TAX, 0),
        "txa" => stmt(MISC | TXA, 0),
        "neg" => stmt(ALU | NEG, 0),
        "ja" => {
            let target = number(arg)? as usize;
            stmt(JMP | JA, (target - n - 1) as u32)
        }
        "jeq" | "jgt" | "jge" | "jset" => {
            let j = match op {
                "jeq" => JEQ,
                "jgt" => JGT,
                "jge" => JGE,
                _ => JSET,
            };
            let (src, k) = match args.first() {
                Some(&"x") => (X, 0),
                Some(a) => (K, number(a.trim_start_matches('#'))?),
                None => return Err("no operand".into()),
            };
            let target = |word: &str| -> Result<u8, String> {
                let i = args
                    .iter()
                    .position(|a| *a == word)
                    .ok_or(format!("no {word}"))?;
                let t = number(args.get(i + 1).ok_or("no target")?)? as usize;
                u8::try_from(t - n - 1).map_err(|e| e.to_string())
            };
            Ok(Insn {
                code: JMP | j | src,
                jt: target("jt")?,
                jf: target("jf")?,
                k,
            })
        }
        alu => {
            let o = match alu {
                "add" => ADD,
                "sub" => SUB,
                "mul" => MUL,
                "div" => DIV,
                "mod" => MOD,
                "and" => AND,
                "or" => OR,
                "xor" => XOR,
                "lsh" => LSH,
                "rsh" => RSH,
                _ => return Err(format!("unknown instruction {alu}")),
            };
            if arg == "x" {
                stmt(ALU | o | X, 0)
            } else {
                stmt(ALU | o | K, number(arg.trim_start_matches('#'))?)
            }
        }
    }
}

/// A frame to filter: bytes as captured, length on the wire, what the kernel stripped.
struct Frame {
    what: String,
    data: Vec<u8>,
    wire_len: u32,
    meta: Meta,
}

const MAC_A: [u8; 6] = [0x00, 0x1d, 0x9c, 0xc8, 0x03, 0xe7];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A transport header with ports (TCP 20 bytes, UDP 8, SCTP 12, ICMP 8).
fn transport(proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    if proto == 1 || proto == 58 {
        t.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
        return t;
    }
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    let len = match proto {
        6 => 20,
        17 => 8,
        _ => 12,
    };
    t.resize(len, 0);
    if proto == 6 {
        t[12] = 0x50;
    }
    t.extend_from_slice(b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x01");
    t
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, frag: u16, options: usize, body: &[u8]) -> Vec<u8> {
    let ihl = 5 + options / 4;
    let mut h = vec![0x40 | ihl as u8, 0];
    h.extend_from_slice(&((ihl * 4 + body.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.resize(ihl * 4, 1);
    h.extend_from_slice(body);
    h
}

fn ipv6(src: &str, dst: &str, next: u8, body: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src.parse::<std::net::Ipv6Addr>().unwrap().octets());
    h.extend_from_slice(&dst.parse::<std::net::Ipv6Addr>().unwrap().octets());
    h.extend_from_slice(body);
    h
}

fn arp(ethertype_op: u16, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&ethertype_op.to_be_bytes());
    a.extend_from_slice(&MAC_A);
    a.extend_from_slice(&spa);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&tpa);
    a
}

/// Untagged frames of every kind the grammar tells apart.
fn base_frames() -> Vec<(String, Vec<u8>)> {
    let c = [192, 168, 0, 21];
    let s = [192, 168, 0, 20];
    let h = [10, 0, 0, 5];
    let h2 = [10, 0, 0, 6];
    let p = [141, 81, 0, 10];
    let mut v = Vec::new();
    let mut add = |what: &str, f: Vec<u8>| v.push((what.to_string(), f));
    add(
        "v4 tcp 502 query",
        eth(
            MAC_B,
            MAC_A,
            0x800,
            &ipv4(c, s, 6, 0, 0, &transport(6, 40001, 502)),
        ),
    );
    add(
        "v4 tcp 502 answer",
        eth(
            MAC_A,
            MAC_B,
            0x800,
            &ipv4(s, c, 6, 0, 0, &transport(6, 502, 40001)),
        ),
    );
    add(
        "v4 tcp 4840 host h",
        eth(
            MAC_B,
            MAC_A,
            0x800,
            &ipv4(h, h2, 6, 0, 0, &transport(6, 4840, 49152)),
        ),
    );
    add(
        "v4 tcp 102 plant",
        eth(
            MAC_B,
            MAC_A,
            0x800,
            &ipv4(p, h, 6, 0, 8, &transport(6, 1100, 102)),
        ),
    );
    add(
        "v4 tcp h to h",
        eth(
            MAC_A,
            MAC_A,
            0x800,
            &ipv4(h, h, 6, 0, 0, &transport(6, 505, 44818)),
        ),
    );
    add(
        "v4 udp 2222",
        eth(
            MAC_B,
            MAC_B,
            0x800,
            &ipv4(h2, h, 17, 0, 0, &transport(17, 2222, 2222)),
        ),
    );
    add(
        "v4 udp 47808",
        eth(
            MAC_B,
            MAC_A,
            0x800,
            &ipv4(c, [10, 0, 0, 7], 17, 0, 0, &transport(17, 47808, 47810)),
        ),
    );
    add(
        "v4 sctp 502",
        eth(
            MAC_B,
            MAC_A,
            0x800,
            &ipv4(c, h, 132, 0, 0, &transport(132, 502, 3000)),
        ),
    );
    add(
        "v4 icmp",
        eth(
            MAC_B,
            MAC_A,
            0x800,
            &ipv4(h, p, 1, 0, 0, &transport(1, 0, 0)),
        ),
    );
    add(
        "v4 tcp 502 first fragment",
        eth(
            MAC_B,
            MAC_A,
            0x800,
            &ipv4(c, s, 6, 0x2000, 0, &transport(6, 40001, 502)),
        ),
    );
    add(
        "v4 tcp 502 later fragment",
        eth(
            MAC_B,
            MAC_A,
            0x800,
            &ipv4(c, s, 6, 0x00b9, 0, &transport(6, 40001, 502)),
        ),
    );
    add(
        "v4 ip options 40 bytes",
        eth(
            MAC_B,
            MAC_A,
            0x800,
            &ipv4(h, s, 6, 0, 40, &transport(6, 502, 60000)),
        ),
    );
    add(
        "v6 tcp 502",
        eth(
            MAC_B,
            MAC_A,
            0x86dd,
            &ipv6("2001:db8::5", "2001:db8::6", 6, &transport(6, 40001, 502)),
        ),
    );
    add(
        "v6 udp 4840",
        eth(
            MAC_B,
            MAC_A,
            0x86dd,
            &ipv6("2001:db8::6", "fe80::1", 17, &transport(17, 4840, 1024)),
        ),
    );
    add(
        "v6 sctp 102",
        eth(
            MAC_B,
            MAC_A,
            0x86dd,
            &ipv6("fe80::1", "2001:db8::5", 132, &transport(132, 102, 7)),
        ),
    );
    let mut frag_hdr = vec![6, 0, 0, 0, 0, 0, 0, 1];
    frag_hdr.extend_from_slice(&transport(6, 502, 40001));
    add(
        "v6 fragment header then tcp",
        eth(
            MAC_B,
            MAC_A,
            0x86dd,
            &ipv6("2001:db8::5", "2001:db8:1::1", 44, &frag_hdr),
        ),
    );
    add(
        "v6 icmp6",
        eth(
            MAC_B,
            MAC_A,
            0x86dd,
            &ipv6("2001:db8:ffff::1", "2001:db8::6", 58, &transport(58, 0, 0)),
        ),
    );
    add("arp request h", eth([0xff; 6], MAC_A, 0x806, &arp(1, h, c)));
    add("arp reply", eth(MAC_A, MAC_B, 0x806, &arp(2, c, s)));
    add("rarp", eth([0xff; 6], MAC_A, 0x8035, &arp(3, [0; 4], h)));
    add(
        "802.3 llc",
        eth(
            MAC_B,
            MAC_A,
            0x0026,
            &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
    );
    add(
        "profinet",
        eth(MAC_B, MAC_A, 0x8892, &[0xfe, 0xfe, 5, 0, 0, 0, 0, 0]),
    );
    v
}

/// Inserts an 802.1Q-style tag (`tpid`, VLAN `vid`) after the MAC addresses.
fn tagged(f: &[u8], tpid: u16, vid: u16) -> Vec<u8> {
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&tpid.to_be_bytes());
    t.extend_from_slice(&(0x2000 | vid).to_be_bytes());
    t.extend_from_slice(&f[12..]);
    t
}

/// The synthesized frames: untagged, tagged in the frame (802.1Q, 802.1ad, `QinQ`), tagged with
/// the tag stripped by the kernel (in `Meta`), and every truncation of each.
fn synthesized() -> Vec<Frame> {
    let mut whole = Vec::new();
    for (what, f) in base_frames() {
        whole.push(Frame {
            what: what.clone(),
            data: f.clone(),
            wire_len: 0,
            meta: Meta::default(),
        });
        for (tpid, vid) in [(0x8100, 10), (0x88a8, 20), (0x9100, 10)] {
            whole.push(Frame {
                what: format!("{what}, tag {tpid:#x} vid {vid} in frame"),
                data: tagged(&f, tpid, vid),
                wire_len: 0,
                meta: Meta::default(),
            });
        }
        whole.push(Frame {
            what: format!("{what}, vid 10 stripped"),
            data: f.clone(),
            wire_len: 0,
            meta: Meta {
                vlan_tci: Some(0x200a),
            },
        });
        whole.push(Frame {
            what: format!("{what}, vid 10 stripped, vid 20 in frame"),
            data: tagged(&f, 0x8100, 20),
            wire_len: 0,
            meta: Meta { vlan_tci: Some(10) },
        });
        whole.push(Frame {
            what: format!("{what}, vid 10 and 20 in frame"),
            data: tagged(&tagged(&f, 0x8100, 20), 0x88a8, 10),
            wire_len: 0,
            meta: Meta::default(),
        });
    }
    let mut all = Vec::new();
    for mut f in whole {
        f.wire_len = f.data.len() as u32;
        for cut in 0..f.data.len() {
            all.push(Frame {
                what: format!("{} cut to {cut} bytes", f.what),
                data: f.data[..cut].to_vec(),
                wire_len: f.wire_len,
                meta: f.meta,
            });
        }
        all.push(f);
    }
    all
}

/// Every Ethernet frame of the public captures.
fn shared_frames(dir: &Path) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).into_iter().flatten())
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let _ = for_each_packet(&path, |p| {
            if p.linktype == Linktype::ETHERNET {
                out.push(Frame {
                    what: format!("{name} frame {}", p.frame),
                    data: p.data.to_vec(),
                    wire_len: p.orig_len,
                    meta: Meta::default(),
                });
            }
        });
    }
    out
}

fn accepts(prog: &[Insn], f: &Frame) -> bool {
    run(prog, &f.data, f.wire_len, &f.meta) != 0
}

#[test]
fn listing_parser_reads_every_form_dumpcap_prints() {
    let text = "(000) ld       #0x0\n(001) st       M[0]\n(002) ldb      [vlanp]\n\
(003) jeq      #0x1             jt 4\tjf 5\n(004) ldb      [vlan_tci]\n(005) ldxb     4*([14]&0xf)\n\
(006) ldh      [x + 14]\n(007) ja       9\n(008) and      #0xfff\n(009) ld       #pktlen\n\
(010) jgt      #0x64            jt 11\tjf 12\n(011) ret      #0\n(012) ret      #262144\n";
    let p = parse_listing(text).unwrap();
    assert_eq!(p.len(), 13);
    assert_eq!(p[2].k, SKF_AD_OFF + bpf::SKF_AD_VLAN_TAG_PRESENT);
    assert_eq!((p[3].jt, p[3].jf), (0, 1));
    assert_eq!(p[5], Insn::stmt(code::LDX | code::B | code::MSH, 14));
    assert_eq!(p[7], Insn::stmt(code::JMP | code::JA, 1));
    assert_eq!(p[8].k, 0xfff);
    assert_eq!(p[12].k, 262_144);
    validate(&p).unwrap();
}

/// Compiles every expression with the system's libpcap on a live `lo` handle (so that it
/// generates the Linux VLAN code), printing each program as `code,jt,jf,k` words on one line.
const PCAP_COMPILE_PY: &str = r#"
import ctypes, sys
lib = ctypes.CDLL("libpcap.so.0.8")
class Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint), ("insns", ctypes.POINTER(Insn))]
lib.pcap_open_live.restype = ctypes.c_void_p
lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(Prog), ctypes.c_char_p, ctypes.c_int, ctypes.c_uint]
lib.pcap_geterr.argtypes = [ctypes.c_void_p]
lib.pcap_geterr.restype = ctypes.c_char_p
err = ctypes.create_string_buffer(256)
h = lib.pcap_open_live(b"lo", 262144, 0, 0, err)
if not h:
    sys.exit("pcap_open_live: " + err.value.decode())
opt = int(sys.argv[1])
for expr in sys.stdin.read().split("\n"):
    if not expr:
        continue
    p = Prog()
    if lib.pcap_compile(h, ctypes.byref(p), expr.encode(), opt, 0xffffffff) != 0:
        print("ERR " + lib.pcap_geterr(h).decode())
        continue
    print(" ".join("%d,%d,%d,%d" % (p.insns[i].code, p.insns[i].jt, p.insns[i].jf, p.insns[i].k) for i in range(p.len)))
"#;

/// libpcap's programs for all expressions, optimised or not; `None` when Python or libpcap
/// cannot be loaded.
fn pcap_compile_all(optimize: bool) -> Option<Vec<Vec<Insn>>> {
    let progs = pcap_compile_each(EXPRESSIONS, optimize)?;
    Some(
        progs
            .into_iter()
            .zip(EXPRESSIONS)
            .map(|(p, e)| p.unwrap_or_else(|err| panic!("libpcap refused {e:?}: {err}")))
            .collect(),
    )
}

/// libpcap's program for each expression, or its error message; `None` when Python or libpcap
/// cannot be loaded.
fn pcap_compile_each(
    expressions: &[impl AsRef<str>],
    optimize: bool,
) -> Option<Vec<Result<Vec<Insn>, String>>> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", PCAP_COMPILE_PY, if optimize { "1" } else { "0" }])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            expressions
                .iter()
                .map(|e| format!("{}\n", e.as_ref()))
                .collect::<String>()
                .as_bytes(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(
            why.contains("OSError") || why.contains("pcap_open_live"),
            "python3 -c PCAP_COMPILE_PY: {why}"
        );
        return None;
    }
    let progs: Vec<Result<Vec<Insn>, String>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            if let Some(err) = l.strip_prefix("ERR ") {
                return Err(err.to_string());
            }
            Ok(l.split(' ')
                .map(|w| {
                    let v: Vec<u32> = w.split(',').map(|n| n.parse().unwrap()).collect();
                    Insn {
                        code: v[0] as u16,
                        jt: v[1] as u8,
                        jf: v[2] as u8,
                        k: v[3],
                    }
                })
                .collect())
        })
        .collect();
    assert_eq!(progs.len(), expressions.len());
    Some(progs)
}

#[test]
fn decides_as_libpcap_on_every_frame() {
    if Command::new("dumpcap").arg("--version").output().is_err() {
        return skip("dumpcap (tshark's capture tool) is not installed");
    }
    let probe = Command::new("dumpcap")
        .args(["-i", "lo", "-f", "ip", "-d"])
        .output()
        .unwrap();
    if !probe.status.success() {
        return skip("dumpcap cannot open lo to compile a filter (not root?)");
    }
    let shared = root().join("../shared/captures");
    if !shared.is_dir() {
        return skip("../shared/captures is not there");
    }
    let (Some(unoptimised), Some(optimised)) = (pcap_compile_all(false), pcap_compile_all(true))
    else {
        return skip("python3 with ctypes cannot load libpcap.so.0.8 or open lo");
    };
    let mut frames = shared_frames(&shared);
    let from_captures = frames.len();
    assert!(
        from_captures > 10_000,
        "only {from_captures} Ethernet frames in ../shared"
    );
    frames.extend(synthesized());
    assert!(EXPRESSIONS.len() >= 40);
    let mut report = String::new();
    let (mut same_code, mut libpcap_self_disagreements) = (0, 0);
    for (e, expr) in EXPRESSIONS.iter().enumerate() {
        let dumpcap = libpcap_program(expr);
        // The listing parser reads back exactly what libpcap compiled.
        assert_eq!(
            dumpcap, optimised[e],
            "{expr:?}: dumpcap -d vs pcap_compile"
        );
        let plain = &unoptimised[e];
        let ours = compile(expr).unwrap_or_else(|err| panic!("{expr:?}: {err}"));
        for (who, p) in [
            ("libpcap", &dumpcap),
            ("unoptimised libpcap", plain),
            ("plcprobe", &ours),
        ] {
            validate(p).unwrap_or_else(|err| panic!("{who}'s {expr:?}: {err}"));
        }
        same_code += usize::from(&ours == plain);
        let (mut accepted, mut from_shared, mut differ) = (0usize, 0usize, 0usize);
        for (i, f) in frames.iter().enumerate() {
            let (a, b, c) = (accepts(&ours, f), accepts(plain, f), accepts(&dumpcap, f));
            assert_eq!(
                a, b,
                "{expr:?} on {}: plcprobe {a}, unoptimised libpcap {b}\nplcprobe: {ours:?}\nlibpcap: {plain:?}",
                f.what
            );
            if b == c {
                assert_eq!(a, c, "{expr:?} on {}", f.what);
            } else {
                assert!(
                    f.data.len() < f.wire_len as usize,
                    "{expr:?}: libpcap's optimised and unoptimised programs disagree on {}, a whole frame",
                    f.what
                );
                differ += 1;
            }
            if a {
                accepted += 1;
                from_shared += usize::from(i < from_captures);
            }
        }
        libpcap_self_disagreements += differ;
        assert!(
            accepted > 0 && accepted < frames.len(),
            "{expr:?} accepted {accepted} of {} frames: the comparison proves nothing",
            frames.len()
        );
        report += &format!(
            "{expr:<45} {accepted:>6} accepted ({from_shared:>5} from captures); {:>3} insns{}, libpcap {:>3} ({:>3} optimised); {differ} truncated frames where libpcap's optimiser decides otherwise\n",
            ours.len(),
            if &ours == plain { " (the same)" } else { "" },
            plain.len(),
            dumpcap.len()
        );
    }
    eprintln!(
        "{} expressions x {} frames ({} from ../shared, {} synthesized): plcprobe decides as \
         libpcap; same instructions as unoptimised libpcap for {same_code}; \
         {libpcap_self_disagreements} (expression, truncated frame) pairs where libpcap's \
         optimised program decides otherwise than its unoptimised one\n{report}",
        EXPRESSIONS.len(),
        frames.len(),
        from_captures,
        frames.len() - from_captures
    );
}

/// Filters the kernel runs in `kernel_runs_filters_as_the_interpreter_does`.
const KERNEL_EXPRESSIONS: &[&str] = &[
    "port 502",
    "vlan",
    "not vlan",
    "vlan 10",
    "vlan 20",
    "vlan and port 502",
    "vlan 10 and host 10.0.0.5",
    "vlan and vlan 20",
    "vlan or udp",
    "host 10.0.0.5 or arp",
    "less 70",
    "tcp and not vlan",
    "ip6 and tcp",
];

/// Sends each hex line of stdin as one frame on `lo` through an `AF_PACKET` socket.
const SEND_PY: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("lo", 0))
for line in sys.stdin:
    if line.strip():
        s.send(bytes.fromhex(line.strip()))
        time.sleep(0.002)
"#;

/// The reality check of the interpreter: libpcap's programs attached by dumpcap to `lo` decide
/// in the kernel on frames sent there, and `bpf::run` must predict every decision, for
/// libpcap's program and plcprobe's. On `lo` each frame is filtered once, on receive, after the
/// kernel has moved an outer 802.1Q or 802.1ad tag out of the frame into the packet's metadata
/// (where `SKF_AD_VLAN_TAG` finds it; libpcap puts it back into the frame it writes), which is
/// what a VLAN-accelerated Ethernet card does too.
#[test]
fn kernel_runs_filters_as_the_interpreter_does() {
    if Command::new("dumpcap").arg("--version").output().is_err() {
        return skip("dumpcap (tshark's capture tool) is not installed");
    }
    let probe = Command::new("python3")
        .args([
            "-c",
            "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)",
        ])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return skip("python3 cannot open an AF_PACKET socket (not root?)");
    }
    let run_id = std::process::id().to_be_bytes();
    let mut sent = Vec::new();
    for (what, f) in base_frames() {
        for (variant, frame) in [
            ("untagged", f.clone()),
            ("802.1Q vid 10", tagged(&f, 0x8100, 10)),
            ("802.1ad vid 20", tagged(&f, 0x88a8, 20)),
            ("0x9100 vid 10", tagged(&f, 0x9100, 10)),
            (
                "802.1ad vid 10, 802.1Q vid 20",
                tagged(&tagged(&f, 0x8100, 20), 0x88a8, 10),
            ),
        ] {
            let mut frame = frame;
            frame.extend_from_slice(b"PLCBPF");
            frame.extend_from_slice(&run_id);
            frame.extend_from_slice(&(sent.len() as u16).to_be_bytes());
            sent.push((format!("{what}, {variant}"), frame));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut captures = Vec::new();
    for (i, expr) in KERNEL_EXPRESSIONS.iter().enumerate() {
        let file = dir.path().join(format!("{i}.pcapng"));
        let mut child = Command::new("dumpcap")
            .args(["-i", "lo", "-f", expr, "-a", "duration:6", "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while err.read_line(&mut line).unwrap() > 0 && !line.contains("Capturing on") {}
        assert!(line.contains("Capturing on"), "dumpcap -f {expr:?}: {line}");
        captures.push((expr, file, child, err));
    }
    // dumpcap attaches its filter around the time it says "Capturing on"; leave it a margin.
    std::thread::sleep(Duration::from_secs(1));
    let mut sender = Command::new("python3")
        .args(["-c", SEND_PY])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let hex: String = sent
        .iter()
        .map(|(_, f)| f.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
        .collect();
    sender
        .stdin
        .take()
        .unwrap()
        .write_all(hex.as_bytes())
        .unwrap();
    assert!(sender.wait().unwrap().success());
    let mut report = String::new();
    for (expr, file, mut child, _err) in captures {
        assert!(child.wait().unwrap().success(), "dumpcap -f {expr:?}");
        let mut seen = vec![0u32; sent.len()];
        for_each_packet(&file, |p| {
            let d = p.data;
            if d.len() >= 12
                && &d[d.len() - 12..d.len() - 6] == b"PLCBPF"
                && d[d.len() - 6..d.len() - 2] == run_id
            {
                seen[usize::from(u16::from_be_bytes([d[d.len() - 2], d[d.len() - 1]]))] += 1;
            }
        })
        .unwrap();
        let theirs = libpcap_program(expr);
        let ours = compile(expr).unwrap();
        let mut accepted = 0;
        for ((what, frame), &n) in sent.iter().zip(&seen) {
            // What the kernel filtered: the frame without an outer 802.1Q/802.1ad tag, which
            // it keeps as metadata.
            let (data, meta) = match u16::from_be_bytes([frame[12], frame[13]]) {
                0x8100 | 0x88a8 => {
                    let mut d = frame[..12].to_vec();
                    d.extend_from_slice(&frame[16..]);
                    (
                        d,
                        Meta {
                            vlan_tci: Some(u16::from_be_bytes([frame[14], frame[15]])),
                        },
                    )
                }
                _ => (frame.clone(), Meta::default()),
            };
            let f = Frame {
                what: what.clone(),
                wire_len: data.len() as u32,
                data,
                meta,
            };
            assert!(n <= 1, "{expr:?}: {what} captured {n} times");
            let kernel = n == 1;
            assert_eq!(
                accepts(&theirs, &f),
                kernel,
                "{expr:?} on {what}: interpreter vs kernel, libpcap's program"
            );
            assert_eq!(
                accepts(&ours, &f),
                kernel,
                "{expr:?} on {what}: plcprobe's program vs the kernel"
            );
            accepted += usize::from(kernel);
        }
        assert!(
            accepted > 0 && accepted < sent.len(),
            "{expr:?}: the kernel accepted {accepted} of {}",
            sent.len()
        );
        report += &format!(
            "{expr:<30} kernel accepted {accepted:>3} of {}\n",
            sent.len()
        );
    }
    eprintln!("{report}");
}

/// A deterministic stream of expressions from the supported grammar, with the shorthand for
/// bare values, `not` and parentheses at any depth, `vlan` anywhere (it moves the offsets of
/// what follows), and some combinations libpcap refuses.
struct ExpressionGen(u64);

impl ExpressionGen {
    fn next(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % n
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.next(options.len() as u64) as usize]
    }

    /// A bare value for qualifiers `q` (for the shorthand `q V1 or V2`).
    fn value(&mut self, addr: &str, proto: &str) -> String {
        match addr {
            "port" => self
                .pick(&["502", "102", "2222", "4840", "44818", "1", "65535"])
                .into(),
            "portrange" => self
                .pick(&["500-510", "40000-50000", "1-1024", "510-500"])
                .into(),
            "net" if proto == "ip6" => self.pick(&["2001:db8::/32", "fe80::/10"]).into(),
            "net" => self
                .pick(&[
                    "10.0.0.0/8",
                    "141.81.0.0/24",
                    "192.168.0.0/16",
                    "10.0",
                    "10",
                ])
                .into(),
            _ if proto == "ether" => self
                .pick(&[
                    "00:1d:9c:c8:03:e7",
                    "02:00:00:00:00:02",
                    "ff:ff:ff:ff:ff:ff",
                ])
                .into(),
            _ if proto == "ip6" => self.pick(&["2001:db8::5", "2001:db8::6", "fe80::1"]).into(),
            _ => self
                .pick(&[
                    "10.0.0.5",
                    "10.0.0.6",
                    "192.168.0.21",
                    "192.168.0.20",
                    "141.81.0.10",
                    "2001:db8::5",
                ])
                .into(),
        }
    }

    fn primitive(&mut self) -> String {
        match self.next(9) {
            0 => self
                .pick(&["tcp", "udp", "icmp", "ip", "ip6", "arp", "rarp", "sctp"])
                .into(),
            1 => self.pick(&["vlan", "vlan 10", "vlan 20"]).into(),
            2 => format!("{} {}", self.pick(&["less", "greater"]), self.next(120)),
            _ => {
                let (proto, addr) = match self.next(8) {
                    0 | 1 => (self.pick(&["", "", "tcp", "udp", "sctp", "ip"]), "port"),
                    2 => (self.pick(&["", "tcp", "udp"]), "portrange"),
                    3 => (self.pick(&["", "ip", "ip6", "arp"]), "net"),
                    4 => ("ether", self.pick(&["host", ""])),
                    _ => (
                        self.pick(&["", "", "ip", "arp", "ip6", "tcp"]),
                        self.pick(&["host", "host", ""]),
                    ),
                };
                let mut dir = self.pick(&["", "", "src", "dst", "src or dst", "src and dst"]);
                if addr.is_empty() && dir.is_empty() {
                    dir = "src";
                }
                let head: Vec<&str> = [proto, dir, addr]
                    .into_iter()
                    .filter(|w| !w.is_empty())
                    .collect();
                let head = head.join(" ");
                let v = self.value(addr, proto);
                match self.next(6) {
                    0 => format!(
                        "{head} {v} {} {}",
                        self.pick(&["or", "and", "||"]),
                        self.value(addr, proto)
                    ),
                    1 => format!(
                        "{head} {v} or ({} and not {})",
                        self.value(addr, proto),
                        self.value(addr, proto)
                    ),
                    _ => format!("{head} {v}"),
                }
            }
        }
    }

    fn expression(&mut self, depth: u32) -> String {
        if depth == 0 {
            return self.primitive();
        }
        match self.next(6) {
            0 => format!("not {}", self.expression(depth - 1)),
            1 => format!("({})", self.expression(depth - 1)),
            2 => self.primitive(),
            _ => format!(
                "{} {} {}",
                self.expression(depth - 1),
                self.pick(&["and", "or", "&&", "||"]),
                self.expression(depth - 1)
            ),
        }
    }
}

/// Random expressions of the grammar: libpcap and plcprobe accept and refuse the same ones,
/// and decide alike (plcprobe as unoptimised libpcap) on every synthesized frame.
#[test]
fn random_expressions_decide_as_libpcap() {
    let mut gen = ExpressionGen(0x0005_eed0_fb9f);
    let expressions: Vec<String> = (0..300).map(|_| gen.expression(3)).collect();
    let Some(theirs) = pcap_compile_each(&expressions, false) else {
        return skip("python3 with ctypes cannot load libpcap.so.0.8 or open lo");
    };
    let frames = synthesized();
    let (mut compared, mut refused, mut decisions) = (0, 0, 0usize);
    for (expr, theirs) in expressions.iter().zip(theirs) {
        let ours = compile(expr);
        let (ours, theirs) = match (ours, theirs) {
            (Ok(o), Ok(t)) => (o, t),
            (Err(_), Err(_)) => {
                refused += 1;
                continue;
            }
            (o, t) => panic!("{expr:?}: plcprobe {:?}, libpcap {:?}", o.err(), t.err()),
        };
        validate(&ours).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
        for f in &frames {
            assert_eq!(
                accepts(&ours, f),
                accepts(&theirs, f),
                "{expr:?} on {}\nplcprobe: {ours:?}\nlibpcap: {theirs:?}",
                f.what
            );
        }
        compared += 1;
        decisions += frames.len();
    }
    assert!(
        compared > 200 && refused > 0,
        "{compared} compared, {refused} refused by both"
    );
    eprintln!(
        "{} random expressions: {compared} compiled by both and decided alike on {} frames each \
         ({decisions} decisions), {refused} refused by both",
        expressions.len(),
        frames.len()
    );
}
