//! Capture filters: a pcap-filter expression (`man pcap-filter`) compiled to classic BPF for
//! link type Ethernet (`DLT_EN10MB`, what a Linux `AF_PACKET`/`SOCK_RAW` socket delivers), without
//! libpcap; and a classic-BPF interpreter with the Linux kernel's semantics. Pure: no I/O.
//!
//! Contract:
//! - [`compile`] turns an expression into a program of [`Insn`] (the kernel's `struct
//!   sock_filter` layout, ready for `SO_ATTACH_FILTER`) that decides as libpcap 1.10 does for a
//!   Linux Ethernet interface: the code generation follows libpcap's `gencode.c` function by
//!   function (named in the comments), without its optimiser, and for the expressions tested
//!   the programs are libpcap's unoptimised programs instruction for instruction (but for
//!   `vlan N`, written as an equivalent if/else, and the order of the two `ret`s when the whole
//!   expression is negated). So every frame gets libpcap's decision; a frame too short for one
//!   of the loads gets unoptimised libpcap's (rejected, as the kernel does), which is also the
//!   optimised program's except where libpcap's optimiser dropped or reordered that load. An accepted frame returns [`ACCEPT`] (libpcap's default snapshot
//!   length, 262144), a rejected one 0. An empty or all-whitespace expression accepts
//!   everything. A bad expression is a [`FilterError`] naming the column, the token and what is
//!   accepted there; never a panic. Programs are longer than libpcap's optimised ones (e.g.
//!   `port 502`: 54 instructions, 24 optimised), far below the kernel's 4096 for what a
//!   technician types.
//! - [`run`] executes a program as the kernel does: a load outside the packet ends the program
//!   with 0 (reject), so does a division by zero; `ld len` is the wire length; the Linux
//!   ancillary loads libpcap uses for VLANs (`SKF_AD_VLAN_TAG`, `SKF_AD_VLAN_TAG_PRESENT`) read
//!   [`Meta`] (the tag the kernel stripped from the frame, if it did). The kernel's other
//!   ancillary loads (protocol, interface, mark…) and the negative `SKF_NET_OFF`/`SKF_LL_OFF`
//!   offsets are not emulated: they end the program with 0, as an opcode the kernel does not
//!   know does.
//! - [`validate`] checks a program as the kernel's `bpf_check_classic` does (size, opcodes,
//!   jumps inside the program, constant divisors, shifts, known ancillary loads, scratch memory
//!   written before it is read, last instruction a `ret`).
//!
//! Supported subset (what technicians type): `host A`, `src host A`, `dst host A`,
//! `src or dst host`, `src and dst host` (IPv4 or IPv6 literals; `ip`/`arp`/`rarp`/`ip6` before
//! `host` narrow it), `net A/LEN` (and libpcap's short forms `net 10`, `net 10.1`), `src net`,
//! `dst net`, `port N`, `src port`, `dst port`, `portrange A-B`, `tcp`/`udp`/`sctp` before
//! `port`/`portrange`, the protocols `tcp`, `udp`, `sctp`, `icmp`, `ip`, `ip6`, `arp`, `rarp`,
//! `ether host MAC`, `ether src MAC`, `ether dst MAC`, `vlan`, `vlan N`, `less N`, `greater N`,
//! `and`/`&&`, `or`/`||`, `not`/`!`, parentheses, and libpcap's shorthand that repeats the
//! last qualifiers for a bare value (`port 502 or 4840`, `host A or B`, `host A and (B or C)`).
//! Semantics are libpcap's, quirks included: `and` and `or` have equal precedence and group to
//! the left; `host A` (IPv4) matches IPv4, ARP and RARP addresses; `port` matches TCP, UDP and
//! SCTP over IPv4 (not in a fragment other than the first) and IPv6 (next header right after
//! the fixed header only); `tcp` also finds TCP behind one IPv6 fragment header; `vlan` shifts
//! the offsets of every test written after it, and the first `vlan` accepts a tag the kernel
//! stripped (`SKF_AD_VLAN_TAG_PRESENT`) as well as one still in the frame, as libpcap does on
//! Linux. Numbers are decimal, `0x` hex or leading-zero octal, as in libpcap.
//!
//! Not supported, with an error that says so: host, port and network *names* (no resolver in
//! a pure module: give numbers), arithmetic and byte tests (`tcp[13] & 2 != 0`), `proto`,
//! `protochain`, `gateway`, `broadcast`/`multicast`, `mpls`, `pppoes`, `geneve`, 802.11,
//! `inbound`/`outbound`, `ifindex`, `mask` netmasks, other link types. They are rare in
//! fieldbus work; libpcap itself (the capture issue's planned `pcap` cargo feature) is the way
//! to them.
//!
//! Why not a crate: crates.io has libpcap bindings (`pcap`, `pcap-sys`: `pcap_compile` is
//! libpcap's), socket-attach helpers that take compiled instructions (`bpf`), eBPF toolchains
//! (`aya`), a pure-Rust matcher of a tcpdump-like syntax over parsed packets (`pcap-toolkit`'s
//! `bpf` module, no BPF), and one pure-Rust compiler to classic BPF, `pktbaffle` (searched
//! 2026-11-27): a single 0.1.0 release, by its README written with AI tools, whose grammar
//! departs from libpcap's (juxtaposition means `and`): not the well-kept standard a dependency
//! here must be. The checks live in
//! `tests/bpf.rs`: plcprobe's, dumpcap's and unoptimised libpcap's programs on every Ethernet
//! frame of the public captures and on synthesized frames (every truncation included), and the
//! kernel's own decisions on `lo` predicted by [`run`].

// The opcode parts read best unqualified where instructions are built or decoded.
#![allow(clippy::wildcard_imports)]

use std::fmt;
use std::net::Ipv6Addr;

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Insn {
    /// Opcode: class | size | mode, or class | operation | source (see [`code`]).
    pub code: u16,
    /// Conditional jumps: instructions to skip when the test is true.
    pub jt: u8,
    /// Conditional jumps: instructions to skip when the test is false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

impl Insn {
    /// A non-jump instruction.
    #[must_use]
    pub const fn stmt(code: u16, k: u32) -> Insn {
        Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }
}

/// Opcode parts of classic BPF (`linux/filter.h`, `linux/bpf_common.h`).
pub mod code {
    /// Load into A.
    pub const LD: u16 = 0x00;
    /// Load into X.
    pub const LDX: u16 = 0x01;
    /// Store A into scratch memory.
    pub const ST: u16 = 0x02;
    /// Store X into scratch memory.
    pub const STX: u16 = 0x03;
    /// Arithmetic on A.
    pub const ALU: u16 = 0x04;
    /// Jumps.
    pub const JMP: u16 = 0x05;
    /// Return.
    pub const RET: u16 = 0x06;
    /// Register transfers.
    pub const MISC: u16 = 0x07;
    /// Size: 32-bit word.
    pub const W: u16 = 0x00;
    /// Size: 16-bit half word.
    pub const H: u16 = 0x08;
    /// Size: byte.
    pub const B: u16 = 0x10;
    /// Mode: immediate.
    pub const IMM: u16 = 0x00;
    /// Mode: packet at k.
    pub const ABS: u16 = 0x20;
    /// Mode: packet at X + k.
    pub const IND: u16 = 0x40;
    /// Mode: scratch memory word k.
    pub const MEM: u16 = 0x60;
    /// Mode: packet (wire) length.
    pub const LEN: u16 = 0x80;
    /// Mode (LDX B only): X = 4 * (packet\[k\] & 0xf).
    pub const MSH: u16 = 0xa0;
    /// ALU: +.
    pub const ADD: u16 = 0x00;
    /// ALU: -.
    pub const SUB: u16 = 0x10;
    /// ALU: *.
    pub const MUL: u16 = 0x20;
    /// ALU: /.
    pub const DIV: u16 = 0x30;
    /// ALU: |.
    pub const OR: u16 = 0x40;
    /// ALU: &.
    pub const AND: u16 = 0x50;
    /// ALU: <<.
    pub const LSH: u16 = 0x60;
    /// ALU: >>.
    pub const RSH: u16 = 0x70;
    /// ALU: negate.
    pub const NEG: u16 = 0x80;
    /// ALU: %.
    pub const MOD: u16 = 0x90;
    /// ALU: ^.
    pub const XOR: u16 = 0xa0;
    /// Jump always (k).
    pub const JA: u16 = 0x00;
    /// Jump if A == operand.
    pub const JEQ: u16 = 0x10;
    /// Jump if A > operand.
    pub const JGT: u16 = 0x20;
    /// Jump if A >= operand.
    pub const JGE: u16 = 0x30;
    /// Jump if A & operand != 0.
    pub const JSET: u16 = 0x40;
    /// Operand: the constant k.
    pub const K: u16 = 0x00;
    /// Operand: X.
    pub const X: u16 = 0x08;
    /// RET operand: A.
    pub const A: u16 = 0x10;
    /// MISC: X = A.
    pub const TAX: u16 = 0x00;
    /// MISC: A = X.
    pub const TXA: u16 = 0x80;
}

/// Start of the Linux ancillary load area (`SKF_AD_OFF`, -0x1000).
pub const SKF_AD_OFF: u32 = 0xffff_f000;
/// Ancillary load: the VLAN TCI the kernel stripped (`SKF_AD_VLAN_TAG`).
pub const SKF_AD_VLAN_TAG: u32 = 44;
/// Ancillary load: 1 if the kernel stripped a VLAN tag (`SKF_AD_VLAN_TAG_PRESENT`).
pub const SKF_AD_VLAN_TAG_PRESENT: u32 = 48;
/// What an accepting program returns: libpcap's default snapshot length.
pub const ACCEPT: u32 = 262_144;
/// Largest program the kernel accepts (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;
/// Scratch memory words (`BPF_MEMWORDS`).
pub const MEMWORDS: usize = 16;

/// Per-packet data outside the frame's bytes that a Linux filter can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// The 802.1Q tag control information the kernel removed from the frame, if it did.
    pub vlan_tci: Option<u16>,
}

/// An expression that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// 1-based column (in characters) of the offending token; one past the end when the
    /// expression ended too early.
    pub column: usize,
    /// What is wrong and what is accepted there.
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "filter expression, column {}: {}",
            self.column, self.message
        )
    }
}

impl std::error::Error for FilterError {}

/// A program the kernel would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidProgram {
    /// Index of the offending instruction.
    pub pc: usize,
    /// Why.
    pub reason: String,
}

impl fmt::Display for InvalidProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BPF instruction {}: {}", self.pc, self.reason)
    }
}

impl std::error::Error for InvalidProgram {}

// ---------------------------------------------------------------------------------------------
// Interpreter and validator

fn load(packet: &[u8], off: u32, size: u16) -> Option<u32> {
    let off = off as usize;
    let n = match size {
        code::W => 4,
        code::H => 2,
        _ => 1,
    };
    let b = packet.get(off..off.checked_add(n)?)?;
    Some(match n {
        4 => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        2 => u32::from(u16::from_be_bytes([b[0], b[1]])),
        _ => u32::from(b[0]),
    })
}

fn ancillary(k: u32, meta: Meta) -> Option<u32> {
    match k.wrapping_sub(SKF_AD_OFF) {
        SKF_AD_VLAN_TAG => Some(u32::from(meta.vlan_tci.unwrap_or(0))),
        SKF_AD_VLAN_TAG_PRESENT => Some(u32::from(meta.vlan_tci.is_some())),
        _ => None,
    }
}

/// Run `prog` on one frame as the Linux kernel does: the return value is how many bytes to keep
/// (0: reject). `packet` is the frame as captured, `wire_len` its length on the wire (`ld len`),
/// `meta` what the kernel knows besides the bytes. A load outside the packet, a division by
/// zero, an unemulated ancillary load or an unknown opcode ends with 0.
#[must_use]
pub fn run(prog: &[Insn], packet: &[u8], wire_len: u32, meta: &Meta) -> u32 {
    use code::*;
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; MEMWORDS];
    let mut pc = 0usize;
    // Every jump goes forward, so a program runs at most its length in steps.
    while let Some(i) = prog.get(pc) {
        pc += 1;
        let c = i.code;
        if !known_opcode(c) {
            return 0;
        }
        match c & 0x07 {
            LD | LDX => {
                let mode = c & 0xe0;
                let size = c & 0x18;
                let v = match mode {
                    IMM => i.k,
                    LEN => wire_len,
                    MEM => match mem.get(i.k as usize) {
                        Some(&v) => v,
                        None => return 0,
                    },
                    ABS if c & 0x07 == LD => {
                        if i.k >= SKF_AD_OFF {
                            match ancillary(i.k, *meta) {
                                Some(v) => v,
                                None => return 0,
                            }
                        } else {
                            match load(packet, i.k, size) {
                                Some(v) => v,
                                None => return 0,
                            }
                        }
                    }
                    IND if c & 0x07 == LD => {
                        let off = x.wrapping_add(i.k);
                        if off >= 0x8000_0000 {
                            return 0;
                        }
                        match load(packet, off, size) {
                            Some(v) => v,
                            None => return 0,
                        }
                    }
                    MSH if c & 0x07 == LDX && size == B => match load(packet, i.k, B) {
                        Some(v) => (v & 0xf) << 2,
                        None => return 0,
                    },
                    _ => return 0,
                };
                if c & 0x07 == LD {
                    a = v;
                } else {
                    x = v;
                }
            }
            ST | STX => {
                let v = if c & 0x07 == ST { a } else { x };
                match mem.get_mut(i.k as usize) {
                    Some(m) => *m = v,
                    None => return 0,
                }
            }
            ALU => {
                let src = if c & 0x08 == X { x } else { i.k };
                a = match c & 0xf0 {
                    ADD => a.wrapping_add(src),
                    SUB => a.wrapping_sub(src),
                    MUL => a.wrapping_mul(src),
                    DIV => match a.checked_div(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    MOD => match a.checked_rem(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    OR => a | src,
                    AND => a & src,
                    XOR => a ^ src,
                    LSH => a.wrapping_shl(src),
                    RSH => a.wrapping_shr(src),
                    NEG => a.wrapping_neg(),
                    _ => return 0,
                };
            }
            JMP => {
                let op = c & 0xf0;
                if op == JA {
                    pc = match pc.checked_add(i.k as usize) {
                        Some(p) => p,
                        None => return 0,
                    };
                    continue;
                }
                let src = if c & 0x08 == X { x } else { i.k };
                let taken = match op {
                    JEQ => a == src,
                    JGT => a > src,
                    JGE => a >= src,
                    JSET => a & src != 0,
                    _ => return 0,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            RET => {
                return match c & 0x18 {
                    K => i.k,
                    A => a,
                    _ => 0,
                }
            }
            _ => match c & 0xf8 {
                TAX => x = a,
                TXA => a = x,
                _ => return 0,
            },
        }
    }
    0
}

/// Is `code` an opcode the kernel's classic BPF accepts?
fn known_opcode(c: u16) -> bool {
    use code::*;
    const LOADS: [u16; 14] = [
        LD | W | ABS,
        LD | H | ABS,
        LD | B | ABS,
        LD | W | IND,
        LD | H | IND,
        LD | B | IND,
        LD | W | IMM,
        LD | W | MEM,
        LD | W | LEN,
        LDX | W | IMM,
        LDX | W | MEM,
        LDX | W | LEN,
        LDX | B | MSH,
        ST,
    ];
    if LOADS.contains(&c) || c == STX || c == RET | K || c == RET | A {
        return true;
    }
    if c == MISC | TAX || c == MISC | TXA || c == JMP | JA || c == ALU | NEG {
        return true;
    }
    let op = c & 0xf0;
    let rest = c & !0xf8;
    match c & 0x07 {
        ALU => {
            rest == ALU && matches!(op, ADD | SUB | MUL | DIV | OR | AND | LSH | RSH | MOD | XOR)
        }
        JMP => rest == JMP && matches!(op, JEQ | JGT | JGE | JSET),
        _ => false,
    }
}

/// Check `prog` as the Linux kernel does before attaching it (`bpf_check_classic`): 1 to 4096
/// instructions, known opcodes, every jump inside the program, no constant division by zero,
/// constant shifts below 32, ancillary loads the kernel knows, scratch memory indices below 16
/// and written on every path before they are read, and a `ret` last.
///
/// # Errors
/// The first instruction the kernel would refuse, and why.
pub fn validate(prog: &[Insn]) -> Result<(), InvalidProgram> {
    use code::*;
    let bad = |pc: usize, reason: String| Err(InvalidProgram { pc, reason });
    if prog.is_empty() || prog.len() > MAX_INSNS {
        return bad(
            0,
            format!(
                "a program has 1 to {MAX_INSNS} instructions, this one {}",
                prog.len()
            ),
        );
    }
    let len = prog.len();
    for (pc, i) in prog.iter().enumerate() {
        let c = i.code;
        if !known_opcode(c) {
            return bad(pc, format!("unknown opcode {c:#06x}"));
        }
        match c & 0x07 {
            ALU if c & 0x08 == K => match c & 0xf0 {
                DIV | MOD if i.k == 0 => return bad(pc, "division by the constant 0".into()),
                LSH | RSH if i.k >= 32 => return bad(pc, format!("shift by {} (at most 31)", i.k)),
                _ => {}
            },
            LD | LDX if c & 0xe0 == MEM && i.k as usize >= MEMWORDS => {
                return bad(pc, format!("scratch memory M[{}] (there are 16)", i.k))
            }
            ST | STX if i.k as usize >= MEMWORDS => {
                return bad(pc, format!("scratch memory M[{}] (there are 16)", i.k))
            }
            // An absolute load in the ancillary area must name an operation the kernel knows
            // (`SKF_AD_PROTOCOL` 0 to `SKF_AD_VLAN_TPID` 60, in steps of 4).
            LD if c & 0xe0 == ABS && i.k >= SKF_AD_OFF => {
                let op = i.k - SKF_AD_OFF;
                if op > 60 || !op.is_multiple_of(4) {
                    return bad(pc, format!("unknown ancillary load SKF_AD_OFF + {op}"));
                }
            }
            JMP => {
                let room = len - pc - 1;
                if c & 0xf0 == JA {
                    if i.k as usize >= room {
                        return bad(pc, format!("jump by {} past the end", i.k));
                    }
                } else if usize::from(i.jt) >= room || usize::from(i.jf) >= room {
                    return bad(pc, format!("jump by {}/{} past the end", i.jt, i.jf));
                }
            }
            _ => {}
        }
    }
    if prog[len - 1].code & 0x07 != RET {
        return bad(len - 1, "the last instruction is not a ret".into());
    }
    // Scratch memory: a word read must have been stored on every path to the read
    // (the kernel's check_load_and_stores).
    let mut masks = vec![u16::MAX; len];
    let mut valid: u16 = 0;
    for (pc, i) in prog.iter().enumerate() {
        valid &= masks[pc];
        let c = i.code;
        match c & 0x07 {
            ST | STX => valid |= 1 << i.k,
            LD | LDX if c & 0xe0 == MEM && valid & (1 << i.k) == 0 => {
                return bad(pc, format!("M[{}] is read before it is written", i.k));
            }
            JMP => {
                if c & 0xf0 == JA {
                    masks[pc + 1 + i.k as usize] &= valid;
                } else {
                    masks[pc + 1 + usize::from(i.jt)] &= valid;
                    masks[pc + 1 + usize::from(i.jf)] &= valid;
                }
                valid = u16::MAX;
            }
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    LParen,
    RParen,
    Bang,
    AndAnd,
    OrOr,
    Slash,
    Other(char),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    column: usize,
    text: String,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '_')
}

fn lex(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (tok, n) = if is_word_char(c) {
            let n = chars[i..].iter().take_while(|&&c| is_word_char(c)).count();
            (Tok::Word(chars[i..i + n].iter().collect()), n)
        } else {
            let next = chars.get(i + 1).copied();
            match (c, next) {
                ('&', Some('&')) => (Tok::AndAnd, 2),
                ('|', Some('|')) => (Tok::OrOr, 2),
                ('(', _) => (Tok::LParen, 1),
                (')', _) => (Tok::RParen, 1),
                ('!', _) => (Tok::Bang, 1),
                ('/', _) => (Tok::Slash, 1),
                _ => (Tok::Other(c), 1),
            }
        };
        // Shown in messages: a control character is escaped, not sent to the terminal.
        let text = chars[i..i + n]
            .iter()
            .flat_map(|c| c.escape_debug())
            .collect();
        out.push(Token { tok, column, text });
        i += n;
    }
    out.push(Token {
        tok: Tok::End,
        column: chars.len() + 1,
        text: String::new(),
    });
    out
}

// ---------------------------------------------------------------------------------------------
// Code generation: a tree of tests, as libpcap's blocks before optimisation

type NodeId = usize;

#[derive(Debug, Clone)]
enum Node {
    /// Statements that leave a value in A, then a conditional jump on it.
    Test {
        stmts: Vec<Insn>,
        jump: u16,
        k: u32,
    },
    And(NodeId, NodeId),
    Or(NodeId, NodeId),
    Not(NodeId),
}

/// Where an offset is counted from (libpcap's `e_offrel`).
#[derive(Debug, Clone, Copy)]
enum Rel {
    /// The Ethernet header (`OR_LINKHDR`): never moved by `vlan`.
    LinkHdr,
    /// The type field (`OR_LINKTYPE`).
    LinkType,
    /// The link-layer payload, i.e. the network header (`OR_LINKPL`).
    LinkPl,
    /// The IPv4 payload: network header + 4 × IHL (`OR_TRAN_IPV4`).
    TranV4,
    /// The IPv6 payload right after the fixed header (`OR_TRAN_IPV6`).
    TranV6,
}

const ETH_IP: u32 = 0x0800;
const ETH_ARP: u32 = 0x0806;
const ETH_RARP: u32 = 0x8035;
const ETH_IPV6: u32 = 0x86dd;
const PROTO_ICMP: u32 = 1;
const PROTO_TCP: u32 = 6;
const PROTO_UDP: u32 = 17;
const PROTO_SCTP: u32 = 132;
const PROTO_IPV6_FRAGMENT: u32 = 44;
/// Scratch words holding the run-time part of the payload and type offsets after `vlan`.
const REG_LINKPL: u32 = 0;
const REG_LINKTYPE: u32 = 1;

struct Gen {
    nodes: Vec<Node>,
    /// Constant parts of the offsets of the link-layer payload and type field.
    linkpl: u32,
    linktype: u32,
    /// Both offsets also have a run-time part in scratch memory (after the first `vlan`).
    variable: bool,
    vlan_depth: u32,
}

impl Gen {
    fn new() -> Gen {
        Gen {
            nodes: Vec::new(),
            linkpl: 14,
            linktype: 12,
            variable: false,
            vlan_depth: 0,
        }
    }

    fn add(&mut self, n: Node) -> NodeId {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn and(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.add(Node::And(a, b))
    }

    fn or(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.add(Node::Or(a, b))
    }

    fn not(&mut self, a: NodeId) -> NodeId {
        self.add(Node::Not(a))
    }

    fn test(&mut self, stmts: Vec<Insn>, jump: u16, k: u32) -> NodeId {
        self.add(Node::Test { stmts, jump, k })
    }

    /// `gen_load_a`: statements leaving the field at `off` from `rel` in A.
    fn load(&self, rel: Rel, off: u32, size: u16) -> Vec<Insn> {
        use code::*;
        let abs_or_ind = |reg: u32, constant: u32| {
            if self.variable {
                vec![
                    Insn::stmt(LDX | W | MEM, reg),
                    Insn::stmt(LD | size | IND, constant + off),
                ]
            } else {
                vec![Insn::stmt(LD | size | ABS, constant + off)]
            }
        };
        match rel {
            Rel::LinkHdr => vec![Insn::stmt(LD | size | ABS, off)],
            Rel::LinkType => abs_or_ind(REG_LINKTYPE, self.linktype),
            Rel::LinkPl => abs_or_ind(REG_LINKPL, self.linkpl),
            Rel::TranV6 => abs_or_ind(REG_LINKPL, self.linkpl + 40),
            Rel::TranV4 => {
                // gen_loadx_iphdrlen, then a load relative to X.
                let mut s = if self.variable {
                    vec![
                        Insn::stmt(LDX | W | MEM, REG_LINKPL),
                        Insn::stmt(LD | B | IND, self.linkpl),
                        Insn::stmt(ALU | AND | K, 0xf),
                        Insn::stmt(ALU | LSH | K, 2),
                        Insn::stmt(ALU | ADD | X, 0),
                        Insn::stmt(MISC | TAX, 0),
                    ]
                } else {
                    vec![Insn::stmt(LDX | B | MSH, self.linkpl)]
                };
                s.push(Insn::stmt(LD | size | IND, self.linkpl + off));
                s
            }
        }
    }

    /// `gen_ncmp` without reversal: (field & mask) `jump` v.
    fn mcmp(&mut self, rel: Rel, off: u32, size: u16, v: u32, mask: u32, jump: u16) -> NodeId {
        let mut s = self.load(rel, off, size);
        if mask != u32::MAX {
            s.push(Insn::stmt(code::ALU | code::AND | code::K, mask));
        }
        self.test(s, jump, v)
    }

    fn cmp(&mut self, rel: Rel, off: u32, size: u16, v: u32) -> NodeId {
        self.mcmp(rel, off, size, v, u32::MAX, code::JEQ)
    }

    /// `gen_linktype` for Ethernet and an Ethernet type above 1500.
    fn linktype(&mut self, ethertype: u32) -> NodeId {
        self.cmp(Rel::LinkType, 0, code::H, ethertype)
    }

    /// `gen_hostop`: IPv4 address (with mask) at `src_off`/`dst_off` of a payload of type
    /// `ethertype`.
    fn hostop(
        &mut self,
        addr: u32,
        mask: u32,
        dir: Dir,
        ethertype: u32,
        offs: (u32, u32),
    ) -> NodeId {
        let off = match dir {
            Dir::Src => offs.0,
            Dir::Dst => offs.1,
            Dir::And | Dir::Or => {
                let a = self.hostop(addr, mask, Dir::Src, ethertype, offs);
                let b = self.hostop(addr, mask, Dir::Dst, ethertype, offs);
                return if dir == Dir::And {
                    self.and(a, b)
                } else {
                    self.or(a, b)
                };
            }
        };
        let t = self.linktype(ethertype);
        let c = self.mcmp(Rel::LinkPl, off, code::W, addr, mask, code::JEQ);
        self.and(t, c)
    }

    /// `gen_host` for IPv4.
    fn host4(&mut self, addr: u32, mask: u32, proto: Proto, dir: Dir) -> NodeId {
        match proto {
            Proto::Ip => self.hostop(addr, mask, dir, ETH_IP, (12, 16)),
            Proto::Arp => self.hostop(addr, mask, dir, ETH_ARP, (14, 24)),
            Proto::Rarp => self.hostop(addr, mask, dir, ETH_RARP, (14, 24)),
            _ => {
                let ip = self.host4(addr, mask, Proto::Ip, dir);
                let arp = self.host4(addr, mask, Proto::Arp, dir);
                let b = self.or(ip, arp);
                let rarp = self.host4(addr, mask, Proto::Rarp, dir);
                self.or(b, rarp)
            }
        }
    }

    /// `gen_hostop6`.
    fn host6(&mut self, addr: [u32; 4], mask: [u32; 4], dir: Dir) -> NodeId {
        let off = match dir {
            Dir::Src => 8,
            Dir::Dst => 24,
            Dir::And | Dir::Or => {
                let a = self.host6(addr, mask, Dir::Src);
                let b = self.host6(addr, mask, Dir::Dst);
                return if dir == Dir::And {
                    self.and(a, b)
                } else {
                    self.or(a, b)
                };
            }
        };
        let mut b = self.linktype(ETH_IPV6);
        for w in 0..4 {
            let c = self.mcmp(
                Rel::LinkPl,
                off + 4 * w as u32,
                code::W,
                addr[w],
                mask[w],
                code::JEQ,
            );
            b = self.and(b, c);
        }
        b
    }

    /// `gen_ehostop` with `gen_bcmp`.
    fn ehost(&mut self, mac: [u8; 6], dir: Dir) -> NodeId {
        let off = match dir {
            Dir::Src => 6,
            Dir::Dst => 0,
            Dir::And | Dir::Or => {
                let a = self.ehost(mac, Dir::Src);
                let b = self.ehost(mac, Dir::Dst);
                return if dir == Dir::And {
                    self.and(a, b)
                } else {
                    self.or(a, b)
                };
            }
        };
        let w = self.cmp(
            Rel::LinkHdr,
            off + 2,
            code::W,
            u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]),
        );
        let h = self.cmp(
            Rel::LinkHdr,
            off,
            code::H,
            u32::from(u16::from_be_bytes([mac[0], mac[1]])),
        );
        self.and(w, h)
    }

    /// `gen_proto` for IPv4: ip and ip[9] == v.
    fn ip_proto(&mut self, v: u32) -> NodeId {
        let t = self.linktype(ETH_IP);
        let p = self.cmp(Rel::LinkPl, 9, code::B, v);
        self.and(t, p)
    }

    /// `gen_proto` for IPv6: next header v, or a fragment header whose next header is v.
    fn ip6_proto(&mut self, v: u32) -> NodeId {
        let t = self.linktype(ETH_IPV6);
        let frag = self.cmp(Rel::LinkPl, 6, code::B, PROTO_IPV6_FRAGMENT);
        let inner = self.cmp(Rel::LinkPl, 40, code::B, v);
        let fragmented = self.and(frag, inner);
        let direct = self.cmp(Rel::LinkPl, 6, code::B, v);
        let either = self.or(direct, fragmented);
        self.and(t, either)
    }

    /// The port test of one direction, or both: `gen_portatom`/`gen_portrangeatom` (and 6).
    fn port_atoms(&mut self, rel: Rel, range: (u32, u32), dir: Dir) -> NodeId {
        let atom = |g: &mut Gen, off: u32| {
            if range.0 == range.1 {
                g.cmp(rel, off, code::H, range.0)
            } else {
                let ge = g.mcmp(rel, off, code::H, range.0, u32::MAX, code::JGE);
                let gt = g.mcmp(rel, off, code::H, range.1, u32::MAX, code::JGT);
                let le = g.not(gt);
                g.and(ge, le)
            }
        };
        match dir {
            Dir::Src => atom(self, 0),
            Dir::Dst => atom(self, 2),
            Dir::And | Dir::Or => {
                let a = atom(self, 0);
                let b = atom(self, 2);
                if dir == Dir::And {
                    self.and(a, b)
                } else {
                    self.or(a, b)
                }
            }
        }
    }

    /// `gen_port`/`gen_portrange` (IPv4) with `gen_portop`: ip, protocol, not a later
    /// fragment, ports.
    fn port4(&mut self, range: (u32, u32), proto: Option<u32>, dir: Dir) -> NodeId {
        let op = |g: &mut Gen, p: u32| {
            let pr = g.cmp(Rel::LinkPl, 9, code::B, p);
            let frag = g.mcmp(Rel::LinkPl, 6, code::H, 0x1fff, u32::MAX, code::JSET);
            let first = g.not(frag);
            let b0 = g.and(pr, first);
            let ports = g.port_atoms(Rel::TranV4, range, dir);
            g.and(b0, ports)
        };
        let t = self.linktype(ETH_IP);
        let b = self.transport_protos(proto, op);
        self.and(t, b)
    }

    /// `gen_port6`/`gen_portrange6` with `gen_portop6`.
    fn port6(&mut self, range: (u32, u32), proto: Option<u32>, dir: Dir) -> NodeId {
        let op = |g: &mut Gen, p: u32| {
            let pr = g.cmp(Rel::LinkPl, 6, code::B, p);
            let ports = g.port_atoms(Rel::TranV6, range, dir);
            g.and(pr, ports)
        };
        let t = self.linktype(ETH_IPV6);
        let b = self.transport_protos(proto, op);
        self.and(t, b)
    }

    /// One protocol, or SCTP, TCP and UDP in libpcap's order (`PROTO_UNDEF`).
    fn transport_protos(
        &mut self,
        proto: Option<u32>,
        op: impl Fn(&mut Gen, u32) -> NodeId,
    ) -> NodeId {
        if let Some(p) = proto {
            return op(self, p);
        }
        let tcp = op(self, PROTO_TCP);
        let udp = op(self, PROTO_UDP);
        let b = self.or(tcp, udp);
        let sctp = op(self, PROTO_SCTP);
        self.or(sctp, b)
    }

    /// `port`/`portrange`: IPv6 first, then IPv4, as `gen_ncode` orders them.
    fn port(&mut self, range: (u32, u32), proto: Option<u32>, dir: Dir) -> NodeId {
        let v4 = self.port4(range, proto, dir);
        let v6 = self.port6(range, proto, dir);
        self.or(v6, v4)
    }

    /// `gen_vlan_tpid_test`: 802.1Q, 802.1ad or the old `QinQ` type (0x9100).
    fn tpid_test(&mut self) -> NodeId {
        let a = self.linktype(0x8100);
        let b = self.linktype(0x88a8);
        let ab = self.or(a, b);
        let c = self.linktype(0x9100);
        self.or(ab, c)
    }

    fn first_test(&mut self, mut n: NodeId) -> &mut Vec<Insn> {
        while let Node::And(a, _) | Node::Or(a, _) | Node::Not(a) = self.nodes[n] {
            n = a;
        }
        match &mut self.nodes[n] {
            Node::Test { stmts, .. } => stmts,
            _ => unreachable!("the loop stops on a test"),
        }
    }

    /// `gen_vlan`: the first `vlan` as `gen_vlan_bpf_extensions` (a tag the kernel stripped, or
    /// one still in the frame, which moves the offsets at run time); the next ones as
    /// `gen_vlan_no_bpf_extensions` (tags in the frame, offsets moved by 4).
    fn vlan(&mut self, vid: Option<u32>) -> NodeId {
        use code::*;
        let node = if self.vlan_depth == 0 {
            let ad = |k| Insn::stmt(LD | B | ABS, SKF_AD_OFF + k);
            let present = self.test(vec![ad(SKF_AD_VLAN_TAG_PRESENT)], JEQ, 1);
            let tpid = self.tpid_test();
            let vid_in_frame = vid.map(|v| self.mcmp(Rel::LinkPl, 0, H, v, 0x0fff, JEQ));
            // gen_vlan_patch_tpid_test: when no tag was stripped, both offsets move by 4
            // before the type is tested, whatever the test's outcome.
            self.variable = true;
            let mut bump = Vec::new();
            for reg in [REG_LINKPL, REG_LINKTYPE] {
                bump.push(Insn::stmt(LD | W | MEM, reg));
                bump.push(Insn::stmt(ALU | ADD | K, 4));
                bump.push(Insn::stmt(ST, reg));
            }
            let head = self.first_test(tpid);
            bump.append(head);
            *head = bump;
            let mut b = self.or(present, tpid);
            if let (Some(v), Some(in_frame)) = (vid, vid_in_frame) {
                // gen_vlan_patch_vid_test: the stripped tag's VID if there is one, else the
                // frame's (the ancillary loads cannot fail, so if/else is (p and t) or (!p and f)).
                let p1 = self.test(vec![ad(SKF_AD_VLAN_TAG_PRESENT)], JEQ, 1);
                let stripped = self.test(
                    vec![ad(SKF_AD_VLAN_TAG), Insn::stmt(ALU | AND | K, 0x0fff)],
                    JEQ,
                    v,
                );
                let from_meta = self.and(p1, stripped);
                let p2 = self.test(vec![ad(SKF_AD_VLAN_TAG_PRESENT)], JEQ, 1);
                let absent = self.not(p2);
                let from_frame = self.and(absent, in_frame);
                let vid_test = self.or(from_meta, from_frame);
                b = self.and(b, vid_test);
            }
            b
        } else {
            let mut b = self.tpid_test();
            if let Some(v) = vid {
                let t = self.mcmp(Rel::LinkPl, 0, H, v, 0x0fff, JEQ);
                b = self.and(b, t);
            }
            self.linkpl += 4;
            self.linktype += 4;
            b
        };
        self.vlan_depth += 1;
        node
    }

    /// Lay the tree out as a program (libpcap's `finish_parse` without `bpf_optimize`).
    fn finish(&self, root: NodeId) -> Result<Vec<Insn>, usize> {
        use code::*;
        // Built from the end: an index counts instructions from the last one, so every jump
        // target (always further on) is known when the jump is written.
        let mut rev: Vec<Insn> = vec![Insn::stmt(RET | K, 0), Insn::stmt(RET | K, ACCEPT)];
        self.emit(root, 1, 0, &mut rev);
        if self.variable {
            rev.push(Insn::stmt(ST, REG_LINKTYPE));
            rev.push(Insn::stmt(ST, REG_LINKPL));
            rev.push(Insn::stmt(LD | W | IMM, 0));
        }
        if rev.len() > MAX_INSNS {
            return Err(rev.len());
        }
        rev.reverse();
        Ok(rev)
    }

    /// Code for `n` that goes to `t` when true, `f` when false; returns its entry.
    fn emit(&self, n: NodeId, t: usize, f: usize, rev: &mut Vec<Insn>) -> usize {
        let (mut n, mut t, mut f) = (n, t, f);
        loop {
            match &self.nodes[n] {
                Node::And(a, b) => {
                    t = self.emit(*b, t, f, rev);
                    n = *a;
                }
                Node::Or(a, b) => {
                    f = self.emit(*b, t, f, rev);
                    n = *a;
                }
                Node::Not(a) => {
                    std::mem::swap(&mut t, &mut f);
                    n = *a;
                }
                Node::Test { stmts, jump, k } => {
                    // Targets more than 255 instructions on go through a `ja` placed right
                    // after the jump.
                    for target in [&mut t, &mut f] {
                        if rev.len() - *target - 1 > 255 {
                            let p = rev.len();
                            rev.push(Insn::stmt(code::JMP | code::JA, (p - *target - 1) as u32));
                            *target = p;
                        }
                    }
                    let p = rev.len();
                    rev.push(Insn {
                        code: code::JMP | jump | code::K,
                        jt: (p - t - 1) as u8,
                        jf: (p - f - 1) as u8,
                        k: *k,
                    });
                    rev.extend(stmts.iter().rev());
                    return rev.len() - 1;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser: libpcap's grammar (grammar.y) for the supported subset

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Default,
    Link,
    Ip,
    Ip6,
    Arp,
    Rarp,
    Tcp,
    Udp,
    Sctp,
    Icmp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Default => "",
            Proto::Link => "ether",
            Proto::Ip => "ip",
            Proto::Ip6 => "ip6",
            Proto::Arp => "arp",
            Proto::Rarp => "rarp",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
            Proto::Icmp => "icmp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Src,
    Dst,
    /// `src or dst`, and no direction at all.
    Or,
    /// `src and dst`.
    And,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addr {
    Default,
    Host,
    Net,
    Port,
    PortRange,
}

/// The qualifiers a bare value takes (`$<blk>0.q` in libpcap's grammar); `None` is libpcap's
/// `qerr`: after `tcp`, `vlan`, `less N`… a bare value is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Qual {
    proto: Proto,
    dir: Dir,
    addr: Addr,
}

/// How deep parentheses and `not` may nest.
const MAX_DEPTH: usize = 100;
/// How many primitives an expression may have (each is at least two instructions).
const MAX_PRIMITIVES: usize = MAX_INSNS / 2;

const ACCEPTED_START: &str = "a primitive such as `host 10.0.0.5`, `net 10.0.0.0/24`, \
`port 502`, `portrange 500-510`, `src`/`dst`, `tcp`, `udp`, `sctp`, `icmp`, `ip`, `ip6`, `arp`, \
`rarp`, `ether host MAC`, `vlan [ID]`, `less N`, `greater N`, `not`/`!` or `(`";

const UNSUPPORTED: &[&str] = &[
    "proto",
    "protochain",
    "gateway",
    "broadcast",
    "multicast",
    "mask",
    "len",
    "length",
    "byte",
    "inbound",
    "outbound",
    "ifindex",
    "mpls",
    "pppoed",
    "pppoes",
    "geneve",
    "ppp",
    "slip",
    "fddi",
    "tr",
    "wlan",
    "icmp6",
    "igmp",
    "igrp",
    "pim",
    "vrrp",
    "carp",
    "ah",
    "esp",
    "atalk",
    "aarp",
    "decnet",
    "lat",
    "sca",
    "moprc",
    "mopdl",
    "iso",
    "esis",
    "isis",
    "clnp",
    "stp",
    "ipx",
    "netbeui",
    "radio",
    "llc",
    "type",
    "subtype",
    "dir",
    "direction",
    "addr1",
    "addr2",
    "addr3",
    "addr4",
    "ra",
    "ta",
    "lane",
    "icmptype",
    "icmpcode",
    "tcpflags",
];

/// A value token, classified as libpcap's scanner does.
#[derive(Debug, Clone, Copy)]
enum Value {
    Num(u32),
    /// Dotted IPv4 (2 to 4 parts): address and how many bits were given.
    V4(u32, u32),
    V6(Ipv6Addr),
    Mac([u8; 6]),
    Range(u32, u32),
}

fn parse_num(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        if s.len() > 1 && s.starts_with('0') {
            u32::from_str_radix(&s[1..], 8).ok()
        } else {
            s.parse().ok()
        }
    } else {
        None
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = if s.contains(':') {
        s.split(':').collect()
    } else if s.contains('-') {
        s.split('-').collect()
    } else if s.contains('.') {
        // aabb.ccdd.eeff
        let p: Vec<&str> = s.split('.').collect();
        if p.len() != 3 || p.iter().any(|q| q.len() != 4) {
            return None;
        }
        let joined: String = p.concat();
        return (0..6)
            .map(|i| u8::from_str_radix(&joined[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()
            .and_then(|v| v.try_into().ok());
    } else {
        return None;
    };
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// libpcap's `__pcap_atoin`: 1 to 4 decimal parts, each ≤ 255; the address is right-aligned and
/// the bit count says how many parts there were.
fn parse_dotted(s: &str) -> Option<Result<(u32, u32), ()>> {
    if !s.contains('.') || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 4 || parts.iter().any(|p| p.is_empty()) {
        return Some(Err(()));
    }
    let mut v: u32 = 0;
    for p in &parts {
        match p.parse::<u32>() {
            Ok(n) if n <= 255 => v = (v << 8) | n,
            _ => return Some(Err(())),
        }
    }
    Some(Ok((v, 8 * parts.len() as u32)))
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    primitives: usize,
    g: Gen,
}

type PResult<T> = Result<T, FilterError>;

fn err<T>(t: &Token, message: String) -> PResult<T> {
    Err(FilterError {
        column: t.column,
        message,
    })
}

fn shown(t: &Token) -> String {
    if t.tok == Tok::End {
        "the end of the expression".to_string()
    } else {
        format!("`{}`", t.text)
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn peek_at(&self, n: usize) -> &Token {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn word_at(&self, n: usize) -> Option<&str> {
        match &self.peek_at(n).tok {
            Tok::Word(w) => Some(w.as_str()),
            _ => None,
        }
    }

    fn is_and(&self, n: usize) -> bool {
        matches!(self.peek_at(n).tok, Tok::AndAnd) || self.word_at(n) == Some("and")
    }

    fn is_or(&self, n: usize) -> bool {
        matches!(self.peek_at(n).tok, Tok::OrOr) || self.word_at(n) == Some("or")
    }

    fn is_not(&self, n: usize) -> bool {
        matches!(self.peek_at(n).tok, Tok::Bang) || self.word_at(n) == Some("not")
    }

    fn primitive(&mut self) -> PResult<()> {
        self.primitives += 1;
        if self.primitives > MAX_PRIMITIVES {
            return err(
                self.peek(),
                format!("the expression has more than {MAX_PRIMITIVES} primitives; a kernel filter holds at most {MAX_INSNS} instructions"),
            );
        }
        Ok(())
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(
                self.peek(),
                format!("parentheses and `not` nest more than {MAX_DEPTH} deep"),
            );
        }
        Ok(())
    }

    /// Is the token `n` ahead a value (something an `id` starts with)?
    fn is_value_start(&self, n: usize) -> bool {
        match self.word_at(n) {
            Some(w) => !is_keyword(w) && !UNSUPPORTED.contains(&w),
            None => false,
        }
    }

    /// After `and`/`or` or inside `(`: does an `id` (bare values) follow rather than a term?
    fn id_follows(&self) -> bool {
        let mut n = 0;
        loop {
            if self.is_not(n) || matches!(self.peek_at(n).tok, Tok::LParen) {
                n += 1;
            } else {
                return self.is_value_start(n);
            }
        }
    }

    /// expr: term { (and|or) (term | id) }, left to right, equal precedence.
    fn expr(&mut self, q_in: Option<Qual>) -> PResult<(NodeId, Option<Qual>)> {
        let (mut b, mut q) = self.term(q_in)?;
        loop {
            let is_and = self.is_and(0);
            if !is_and && !self.is_or(0) {
                return Ok((b, q));
            }
            self.next();
            let rhs = if self.id_follows() {
                let qual = self.need_qual(q)?;
                self.id(qual)?
            } else {
                let (r, rq) = self.term(q)?;
                q = rq;
                r
            };
            b = if is_and {
                self.g.and(b, rhs)
            } else {
                self.g.or(b, rhs)
            };
        }
    }

    fn need_qual(&self, q: Option<Qual>) -> PResult<Qual> {
        q.ok_or_else(|| FilterError {
            column: self.peek().column,
            message: format!(
                "{} is a bare value after a primitive that takes none; write what it is, e.g. `host {}` or `port {}`",
                shown(self.peek()),
                self.peek().text,
                self.peek().text
            ),
        })
    }

    /// term: not term | ( expr ) | head id | protocol | vlan | less | greater.
    fn term(&mut self, q_in: Option<Qual>) -> PResult<(NodeId, Option<Qual>)> {
        if self.is_not(0) {
            self.next();
            self.enter()?;
            let (b, q) = self.term(q_in)?;
            self.depth -= 1;
            return Ok((self.g.not(b), q));
        }
        let t = self.peek().clone();
        match &t.tok {
            Tok::LParen => {
                self.next();
                self.enter()?;
                let (b, _) = self.expr(q_in)?;
                self.depth -= 1;
                self.close(&t)?;
                return Ok((b, q_in));
            }
            Tok::Word(_) => {}
            _ => return Self::unexpected(&t, ACCEPTED_START),
        }
        let Tok::Word(w) = &t.tok else { unreachable!() };
        let w = w.clone();
        match w.as_str() {
            "vlan" => {
                self.next();
                self.primitive()?;
                let vid = if matches!(self.peek().tok, Tok::LParen) || self.num_follows() {
                    let (v, vt) = self.pnum()?;
                    if v > 0x0fff {
                        return err(&vt, format!("VLAN ID {v} is above 4095; write `vlan` and a number from 0 to 4095"));
                    }
                    Some(v)
                } else {
                    None
                };
                return Ok((self.g.vlan(vid), None));
            }
            "less" | "greater" => {
                self.next();
                self.primitive()?;
                let nt = self.next();
                let Some(n) = (match &nt.tok {
                    Tok::Word(s) => parse_num(s),
                    _ => None,
                }) else {
                    return err(
                        &nt,
                        format!(
                            "`{w}` takes a length in bytes, e.g. `{w} 128`; found {}",
                            shown(&nt)
                        ),
                    );
                };
                let len = self.g.test(
                    vec![Insn::stmt(code::LD | code::W | code::LEN, 0)],
                    if w == "less" { code::JGT } else { code::JGE },
                    n,
                );
                let b = if w == "less" { self.g.not(len) } else { len };
                return Ok((b, None));
            }
            _ => {}
        }
        // head: [proto] [dir] [addr], at least one of dir/addr; a protocol alone is itself a
        // primitive.
        let proto = match pname(&w) {
            Some(p) => {
                self.next();
                Some(p)
            }
            None => None,
        };
        let dir = self.dqual()?;
        let addr = self.aqual();
        if dir.is_none() && addr.is_none() {
            if proto == Some(Proto::Link) {
                return err(&t, format!("`{w}` needs a MAC address: write `{w} host MAC`, `{w} src MAC` or `{w} dst MAC`"));
            }
            if let Some(p) = proto {
                self.primitive()?;
                return Ok((self.proto_abbrev(p), None));
            }
            if is_keyword(&w) {
                return Self::unexpected(&t, ACCEPTED_START);
            }
            if UNSUPPORTED.contains(&w.as_str()) {
                return err(&t, format!("`{w}` is pcap-filter syntax that plcprobe's compiler does not support; use {ACCEPTED_START}"));
            }
            let fix = if parse_num(&w).is_some() {
                Some(format!("`port {w}` or `host {w}`"))
            } else if parse_mac(&w).is_some() {
                Some(format!("`ether host {w}`"))
            } else if w.parse::<Ipv6Addr>().is_ok() || matches!(parse_dotted(&w), Some(Ok(_))) {
                Some(format!("`host {w}` or `net {w}`"))
            } else {
                None
            };
            if let Some(fix) = fix {
                return err(
                    &t,
                    format!("`{w}` needs a qualifier before it: write e.g. {fix}"),
                );
            }
            return err(&t, format!("unknown word `{w}`; expected {ACCEPTED_START}"));
        }
        let q = Qual {
            proto: proto.unwrap_or(Proto::Default),
            dir: dir.unwrap_or(Dir::Or),
            addr: addr.unwrap_or(Addr::Default),
        };
        let b = self.id(q)?;
        Ok((b, Some(q)))
    }

    fn num_follows(&self) -> bool {
        matches!(self.word_at(0).map(parse_num), Some(Some(_)))
    }

    /// pnum: NUM | ( pnum ).
    fn pnum(&mut self) -> PResult<(u32, Token)> {
        let t = self.next();
        match &t.tok {
            Tok::LParen => {
                self.enter()?;
                let v = self.pnum()?;
                self.depth -= 1;
                self.close(&t)?;
                Ok(v)
            }
            Tok::Word(s) => match parse_num(s) {
                Some(v) => Ok((v, t)),
                None => err(&t, format!("expected a number, found {}", shown(&t))),
            },
            _ => err(&t, format!("expected a number, found {}", shown(&t))),
        }
    }

    fn close(&mut self, open: &Token) -> PResult<()> {
        let t = self.next();
        if t.tok == Tok::RParen {
            Ok(())
        } else {
            err(&t, format!("expected `)` to close the `(` at column {}, found {}; and/or/not join primitives inside parentheses", open.column, shown(&t)))
        }
    }

    fn unexpected<T>(t: &Token, accepted: &str) -> PResult<T> {
        let what = match &t.tok {
            Tok::Other('[') => {
                " (byte tests such as `tcp[13] & 2 != 0` are not supported)".to_string()
            }
            Tok::Other(c) if "=<>&|+-*%^".contains(*c) => {
                " (arithmetic and comparisons are not supported)".to_string()
            }
            Tok::RParen => " (a `)` without its `(`)".to_string(),
            Tok::Word(w) if UNSUPPORTED.contains(&w.as_str()) => {
                " (pcap-filter syntax that plcprobe's compiler does not support)".to_string()
            }
            _ => String::new(),
        };
        if t.tok == Tok::End {
            return err(
                t,
                format!("the expression ends too early; expected {accepted}"),
            );
        }
        err(
            t,
            format!("unexpected {}{what}; expected {accepted}", shown(t)),
        )
    }

    /// dqual: src | dst | src or dst | src and dst | dst or src | dst and src.
    fn dqual(&mut self) -> PResult<Option<Dir>> {
        let Some(first) = self.word_at(0).filter(|w| matches!(*w, "src" | "dst")) else {
            return Ok(None);
        };
        let first = first.to_string();
        self.next();
        let (and, or) = (self.is_and(0), self.is_or(0));
        if and || or {
            let other = if first == "src" { "dst" } else { "src" };
            if self.word_at(1) == Some(other) {
                self.next();
                self.next();
                return Ok(Some(if and { Dir::And } else { Dir::Or }));
            }
            let t = self.peek_at(1).clone();
            return err(&t, format!("after `{first} {}` only `{other}` may follow (as in `src or dst host A`); found {}", self.peek().text, shown(&t)));
        }
        Ok(Some(if first == "src" { Dir::Src } else { Dir::Dst }))
    }

    fn aqual(&mut self) -> Option<Addr> {
        let a = match self.word_at(0)? {
            "host" => Addr::Host,
            "net" => Addr::Net,
            "port" => Addr::Port,
            "portrange" => Addr::PortRange,
            _ => return None,
        };
        self.next();
        Some(a)
    }

    /// `gen_proto_abbrev`.
    fn proto_abbrev(&mut self, p: Proto) -> NodeId {
        let g = &mut self.g;
        match p {
            Proto::Tcp | Proto::Udp | Proto::Sctp => {
                let v = match p {
                    Proto::Tcp => PROTO_TCP,
                    Proto::Udp => PROTO_UDP,
                    _ => PROTO_SCTP,
                };
                let a = g.ip_proto(v);
                let b = g.ip6_proto(v);
                g.or(a, b)
            }
            Proto::Icmp => g.ip_proto(PROTO_ICMP),
            Proto::Ip => g.linktype(ETH_IP),
            Proto::Ip6 => g.linktype(ETH_IPV6),
            Proto::Arp => g.linktype(ETH_ARP),
            Proto::Rarp => g.linktype(ETH_RARP),
            // `ether` alone: libpcap says "link layer applied in wrong context".
            Proto::Default | Proto::Link => unreachable!("pname() never yields these alone"),
        }
    }

    /// id: value | value/len | not id | ( pid ), with the qualifiers `q`.
    fn id(&mut self, q: Qual) -> PResult<NodeId> {
        if self.is_not(0) {
            self.next();
            self.enter()?;
            let b = self.id(q)?;
            self.depth -= 1;
            return Ok(self.g.not(b));
        }
        let before = self.toks[self.pos.saturating_sub(1)].text.clone();
        let t = self.next();
        match &t.tok {
            Tok::LParen => {
                // pid: id { (and|or) id } inside parentheses.
                self.enter()?;
                let mut b = self.id(q)?;
                loop {
                    let is_and = self.is_and(0);
                    if !is_and && !self.is_or(0) {
                        break;
                    }
                    self.next();
                    let r = self.id(q)?;
                    b = if is_and {
                        self.g.and(b, r)
                    } else {
                        self.g.or(b, r)
                    };
                }
                self.depth -= 1;
                self.close(&t)?;
                Ok(b)
            }
            Tok::Word(w) => {
                self.primitive()?;
                let w = w.clone();
                let value = Self::classify(&t, &w, q)?;
                let mask_len = if matches!(self.peek().tok, Tok::Slash) {
                    let slash = self.next();
                    let lt = self.next();
                    match &lt.tok {
                        Tok::Word(s) => match parse_num(s) {
                            Some(n) => Some((n, lt)),
                            None => return err(&lt, format!("after `/` comes a prefix length, e.g. `net 10.0.0.0/24`; found {}", shown(&lt))),
                        },
                        _ => return err(&slash, format!("after `/` comes a prefix length, e.g. `net 10.0.0.0/24`; found {}", shown(&lt))),
                    }
                } else {
                    None
                };
                self.value(&t, value, mask_len, q)
            }
            _ => {
                let example = match q.addr {
                    Addr::Port => "`port 502`".to_string(),
                    Addr::PortRange => "`portrange 500-510`".to_string(),
                    Addr::Net => "`net 10.0.0.0/24`".to_string(),
                    _ if q.proto == Proto::Link => format!("`ether {before} 00:1d:9c:c8:03:e7`"),
                    _ => "`host 10.0.0.5`".to_string(),
                };
                Self::unexpected(
                    &t,
                    &format!(
                        "an address, a number or a port range after `{before}`, e.g. {example}"
                    ),
                )
            }
        }
    }

    fn classify(t: &Token, w: &str, q: Qual) -> PResult<Value> {
        if let Some(n) = parse_num(w) {
            return Ok(Value::Num(n));
        }
        if let Some(mac) = parse_mac(w) {
            return Ok(Value::Mac(mac));
        }
        if w.contains(':') {
            return match w.parse::<Ipv6Addr>() {
                Ok(a) => Ok(Value::V6(a)),
                Err(_) => err(
                    t,
                    format!(
                        "`{w}` is neither an IPv6 address nor a MAC address (aa:bb:cc:dd:ee:ff)"
                    ),
                ),
            };
        }
        match parse_dotted(w) {
            Some(Ok((v, bits))) => return Ok(Value::V4(v, bits)),
            Some(Err(())) => {
                return err(
                    t,
                    format!(
                    "`{w}` is not an IPv4 address: write four numbers from 0 to 255, e.g. 10.0.0.5"
                ),
                )
            }
            None => {}
        }
        if q.addr == Addr::PortRange {
            if let Some((a, b)) = w.split_once('-') {
                if let (Some(a), Some(b)) = (parse_num(a), parse_num(b)) {
                    return Ok(Value::Range(a, b));
                }
            }
            return err(
                t,
                format!(
                    "`{w}` is not a port range: write two port numbers, e.g. `portrange 500-510`"
                ),
            );
        }
        if is_keyword(w) || UNSUPPORTED.contains(&w) {
            return err(t, format!("`{w}` is a keyword where an address or number belongs; write e.g. `host 10.0.0.5` or `port 502`"));
        }
        let what = match q.addr {
            Addr::Port => "port names are not resolved: give the number, e.g. `port 502`",
            Addr::Net => "network names are not resolved: give the address, e.g. `net 10.0.0.0/24`",
            _ => "host names are not resolved: give the IPv4 or IPv6 address, e.g. `host 10.0.0.5`",
        };
        err(t, format!("`{w}`: {what}"))
    }

    fn value(
        &mut self,
        t: &Token,
        value: Value,
        mask_len: Option<(u32, Token)>,
        q: Qual,
    ) -> PResult<NodeId> {
        let w = &t.text;
        let proto_word = q.proto.name();
        match value {
            Value::Num(n) if matches!(q.addr, Addr::Port | Addr::PortRange) => {
                if mask_len.is_some() {
                    return err(t, format!("a port takes no `/`; write `port {w}`"));
                }
                let proto = Self::port_proto(t, q)?;
                if n > 65535 {
                    return err(t, format!("port {n} is above 65535; ports are 0 to 65535"));
                }
                Ok(self.g.port((n, n), proto, q.dir))
            }
            Value::Range(a, b) => {
                if mask_len.is_some() {
                    return err(t, "a port range takes no `/`".into());
                }
                let proto = Self::port_proto(t, q)?;
                if a > 65535 || b > 65535 {
                    return err(t, format!("`{w}`: ports are 0 to 65535"));
                }
                Ok(self.g.port((a.min(b), a.max(b)), proto, q.dir))
            }
            Value::Num(_) | Value::V4(..) => {
                let (v, bits) = match value {
                    Value::V4(v, bits) => (v, bits),
                    Value::Num(n) => (n, 32),
                    _ => unreachable!(),
                };
                if matches!(q.addr, Addr::Port | Addr::PortRange) {
                    return err(
                        t,
                        format!("`{w}` is an address, not a port; write e.g. `port 502`"),
                    );
                }
                if q.proto == Proto::Link {
                    return err(
                        t,
                        format!("`{w}` is not a MAC address: `ether` takes e.g. 00:1d:9c:c8:03:e7"),
                    );
                }
                if !matches!(
                    q.proto,
                    Proto::Default | Proto::Ip | Proto::Arp | Proto::Rarp
                ) {
                    return err(t, format!("`{proto_word}` does not go with an IPv4 host or net; use `ip`, `arp` or nothing before `host`/`net`"));
                }
                let (addr, mask) = if let Some((len, lt)) = mask_len {
                    // gen_mcode
                    if matches!(value, Value::Num(_)) {
                        return err(t, format!("`{w}/{len}`: write the network as a dotted address, e.g. `net 10.0.0.0/8`"));
                    }
                    if q.addr != Addr::Net {
                        return err(
                            &lt,
                            format!("`/{}` is for networks only: write `net {w}/{len}`", lt.text),
                        );
                    }
                    if len > 32 {
                        return err(&lt, format!("prefix length {len} is above 32"));
                    }
                    let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                    let a = if bits == 32 { v } else { v << (32 - bits) };
                    if a & !m != 0 {
                        return err(t, format!("`{w}/{len}` has bits set outside the prefix; write the network address, e.g. `net 10.0.0.0/24`"));
                    }
                    (a, m)
                } else if matches!(value, Value::Num(_)) && q.addr == Addr::Net {
                    // gen_ncode: promote a short net number.
                    let (mut a, mut m) = (v, u32::MAX);
                    while a != 0 && a & 0xff00_0000 == 0 {
                        a <<= 8;
                        m <<= 8;
                    }
                    (a, m)
                } else if bits == 32 {
                    (v, u32::MAX)
                } else {
                    (v << (32 - bits), u32::MAX << (32 - bits))
                };
                Ok(self.g.host4(addr, mask, q.proto, q.dir))
            }
            Value::V6(a) => {
                if matches!(q.addr, Addr::Port | Addr::PortRange) {
                    return err(
                        t,
                        format!("`{w}` is an address, not a port; write e.g. `port 502`"),
                    );
                }
                if !matches!(q.proto, Proto::Default | Proto::Ip6) {
                    return err(t, format!("`{proto_word}` does not go with an IPv6 host or net; use `ip6` or nothing before `host`/`net`"));
                }
                let len = match mask_len {
                    Some((len, lt)) => {
                        if q.addr != Addr::Net {
                            return err(
                                &lt,
                                format!(
                                    "`/{}` is for networks only: write `net {w}/{len}`",
                                    lt.text
                                ),
                            );
                        }
                        if len > 128 {
                            return err(&lt, format!("prefix length {len} is above 128"));
                        }
                        len
                    }
                    None => 128,
                };
                let m: u128 = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                let av = u128::from(a);
                if av & !m != 0 {
                    return err(t, format!("`{w}/{len}` has bits set outside the prefix; write the network address"));
                }
                let words = |x: u128| {
                    [
                        (x >> 96) as u32,
                        (x >> 64) as u32,
                        (x >> 32) as u32,
                        x as u32,
                    ]
                };
                Ok(self.g.host6(words(av), words(m), q.dir))
            }
            Value::Mac(mac) => {
                if q.proto != Proto::Link || !matches!(q.addr, Addr::Default | Addr::Host) {
                    return err(t, format!("`{w}` is a MAC address: write `ether host {w}`, `ether src {w}` or `ether dst {w}`"));
                }
                if mask_len.is_some() {
                    return err(t, "a MAC address takes no `/`".into());
                }
                Ok(self.g.ehost(mac, q.dir))
            }
        }
    }

    fn port_proto(t: &Token, q: Qual) -> PResult<Option<u32>> {
        match q.proto {
            Proto::Default => Ok(None),
            Proto::Tcp => Ok(Some(PROTO_TCP)),
            Proto::Udp => Ok(Some(PROTO_UDP)),
            Proto::Sctp => Ok(Some(PROTO_SCTP)),
            p => err(t, format!("`{}` does not go with `port`: only `tcp`, `udp`, `sctp` or nothing come before `port`/`portrange`", p.name())),
        }
    }
}

fn pname(w: &str) -> Option<Proto> {
    Some(match w {
        "ether" | "link" => Proto::Link,
        "ip" => Proto::Ip,
        "ip6" => Proto::Ip6,
        "arp" => Proto::Arp,
        "rarp" => Proto::Rarp,
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => Proto::Sctp,
        "icmp" => Proto::Icmp,
        _ => return None,
    })
}

fn is_keyword(w: &str) -> bool {
    pname(w).is_some()
        || matches!(
            w,
            "and"
                | "or"
                | "not"
                | "src"
                | "dst"
                | "host"
                | "net"
                | "port"
                | "portrange"
                | "vlan"
                | "less"
                | "greater"
        )
}

/// Compile a pcap-filter expression to a classic BPF program for Ethernet frames on Linux
/// (see the module header for the subset and the semantics). Empty: accept everything.
///
/// # Errors
/// [`FilterError`]: the column and token at fault and what is accepted there.
pub fn compile(expr: &str) -> Result<Vec<Insn>, FilterError> {
    let toks = lex(expr);
    if toks.len() == 1 {
        return Ok(vec![Insn::stmt(code::RET | code::K, ACCEPT)]);
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        primitives: 0,
        g: Gen::new(),
    };
    let (root, _) = p.expr(None)?;
    let t = p.peek().clone();
    if t.tok != Tok::End {
        return Parser::unexpected(&t, "`and`, `or` or the end of the expression");
    }
    // A lone `ether` is rejected by pname's callers; here only size can fail.
    p.g.finish(root).map_err(|n| FilterError {
        column: 1,
        message: format!("the expression compiles to {n} instructions, more than the kernel's {MAX_INSNS}; split it or simplify it"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn error(expr: &str) -> FilterError {
        compile(expr).expect_err(expr)
    }

    /// An Ethernet frame: IPv4 TCP between 10.0.0.1:`sport` and 10.0.0.2:`dport`.
    fn tcp_frame(sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[46] = 0x50;
        f
    }

    fn accepts(expr: &str, frame: &[u8]) -> bool {
        let p = compile(expr).unwrap();
        validate(&p).unwrap();
        run(&p, frame, frame.len() as u32, &Meta::default()) != 0
    }

    #[test]
    fn empty_expression_accepts_everything() {
        for e in ["", "   ", "\t\n"] {
            let p = compile(e).unwrap();
            assert_eq!(p, vec![Insn::stmt(code::RET | code::K, ACCEPT)]);
            assert_eq!(run(&p, &[], 0, &Meta::default()), ACCEPT);
        }
    }

    #[test]
    fn primitives_select_what_they_name() {
        let f = tcp_frame(40000, 502);
        assert!(accepts("port 502", &f));
        assert!(accepts("dst port 502", &f));
        assert!(!accepts("src port 502", &f));
        assert!(accepts("tcp port 502 and host 10.0.0.2", &f));
        assert!(accepts("src host 10.0.0.1 && ! udp", &f));
        assert!(!accepts("dst host 10.0.0.1", &f));
        assert!(accepts("net 10.0.0.0/24", &f));
        assert!(!accepts("net 10.0.1.0/24", &f));
        assert!(accepts("portrange 500-510", &f));
        assert!(accepts("portrange 510-500", &f));
        assert!(!accepts("portrange 503-510", &f));
        assert!(accepts("less 54 and greater 54", &f));
        assert!(!accepts("less 53", &f));
        assert!(accepts("ether dst 00:00:00:00:00:00", &f));
        assert!(!accepts("vlan", &f));
    }

    #[test]
    fn a_bare_value_repeats_the_last_qualifiers() {
        let f = tcp_frame(4840, 1);
        assert_eq!(
            compile("port 502 or 4840").unwrap(),
            compile("port 502 or port 4840").unwrap()
        );
        assert!(accepts("port 502 or 4840", &f));
        assert_eq!(
            compile("host 10.0.0.1 and (10.0.0.2 or 10.0.0.3)").unwrap(),
            compile("host 10.0.0.1 and (host 10.0.0.2 or host 10.0.0.3)").unwrap()
        );
        assert_eq!(
            compile("tcp dst port 1 or not 2").unwrap(),
            compile("tcp dst port 1 or not tcp dst port 2").unwrap()
        );
    }

    #[test]
    fn and_and_or_group_left_to_right_with_equal_precedence() {
        // libpcap: `a or b and c` is `(a or b) and c`.
        assert_eq!(
            compile("udp or tcp and port 502").unwrap(),
            compile("(udp or tcp) and port 502").unwrap()
        );
        let f = tcp_frame(1, 2);
        assert!(!accepts("tcp or udp and port 502", &f));
    }

    #[test]
    fn long_programs_jump_through_ja() {
        let ports: Vec<String> = (1..=40).map(|p| p.to_string()).collect();
        let expr = format!("port {}", ports.join(" or "));
        let p = compile(&expr).unwrap();
        validate(&p).unwrap();
        assert!(p.len() > 1000);
        assert!(p.iter().any(|i| i.code == code::JMP | code::JA));
        for port in [1u16, 20, 40] {
            let f = tcp_frame(port, 60000);
            assert_eq!(run(&p, &f, 54, &Meta::default()), ACCEPT, "port {port}");
        }
        assert_eq!(run(&p, &tcp_frame(41, 60000), 54, &Meta::default()), 0);
    }

    #[test]
    fn errors_name_the_column_and_what_is_accepted() {
        let e = error("host");
        assert_eq!(e.column, 5);
        assert!(
            e.message.contains("address") && e.message.contains("after `host`"),
            "{e}"
        );
        let e = error("port 70000");
        assert_eq!((e.column, e.message.contains("65535")), (6, true), "{e}");
        let e = error("(port 502");
        assert_eq!(e.column, 10);
        assert!(e.message.contains("expected `)`"), "{e}");
        let e = error("port 502)");
        assert_eq!(e.column, 9);
        assert!(e.message.contains("`)`"), "{e}");
        let e = error("hots 10.0.0.5");
        assert_eq!(e.column, 1);
        assert!(
            e.message.contains("unknown word `hots`") && e.message.contains("`host 10.0.0.5`"),
            "{e}"
        );
        let e = error("10.0.0.5");
        assert!(e.message.contains("`host 10.0.0.5`"), "{e}");
        let e = error("tcp[13] & 2 != 0");
        assert_eq!(e.column, 4);
        assert!(e.message.contains("not supported"), "{e}");
        assert!(error("host plc1")
            .message
            .contains("names are not resolved"));
        assert!(error("port modbus").message.contains("give the number"));
        assert!(error("ip proto 6").message.contains("does not support"));
        assert!(error("vlan 4096").message.contains("4095"));
        assert!(error("tcp or 502").message.contains("bare value"));
        assert!(error("ether host 10.0.0.1").message.contains("MAC"));
        assert!(error("host 00:11:22:33:44:55")
            .message
            .contains("ether host"));
        assert!(error("ip6 host 10.0.0.1").message.contains("IPv4"));
        assert!(error("udp host 10.0.0.1").message.contains("IPv4"));
        assert!(error("ip port 502").message.contains("`port`"));
        assert!(error("host 10.0.0.0/8").message.contains("networks only"));
        assert!(error("net 10.0.0.1/8")
            .message
            .contains("outside the prefix"));
        assert!(error("net 10.0.0.0/33").message.contains("above 32"));
        assert!(error("host 10.0.0.256").message.contains("IPv4"));
        assert!(error("portrange 5-x").message.contains("port range"));
        assert!(error("src or port 1").message.contains("dst"));
        assert!(error("ether").message.contains("MAC"));
        assert!(error("port 502 port 503").message.contains("`and`, `or`"));
        let shown = error("port 70000").to_string();
        assert!(
            shown.starts_with("filter expression, column 6: "),
            "{shown}"
        );
        assert!(!shown.contains('\n'));
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        let deep = format!("{}tcp{}", "(".repeat(200), ")".repeat(200));
        assert!(error(&deep).message.contains("nest"));
        assert!(error(&"! ".repeat(500)).message.contains("nest"));
        let many = vec!["port 1"; 300].join(" or ");
        assert!(error(&many).message.contains("instructions"));
    }

    #[test]
    fn interpreter_follows_the_kernel() {
        use code::*;
        let m = Meta::default();
        // Out of bounds: 0, whatever comes after.
        let p = [Insn::stmt(LD | H | ABS, 3), Insn::stmt(RET | K, 7)];
        assert_eq!(run(&p, &[0; 5], 5, &m), 7);
        assert_eq!(run(&p, &[0; 4], 5, &m), 0);
        // ld len is the wire length; ret a.
        let p = [Insn::stmt(LD | W | LEN, 0), Insn::stmt(RET | A, 0)];
        assert_eq!(run(&p, &[], 1514, &m), 1514);
        // Division by X = 0 ends with 0.
        let p = [
            Insn::stmt(LD | W | IMM, 10),
            Insn::stmt(LDX | W | IMM, 0),
            Insn::stmt(ALU | DIV | X, 0),
            Insn::stmt(RET | K, 1),
        ];
        assert_eq!(run(&p, &[], 0, &m), 0);
        // 4 * (P[0] & 0xf), X-relative loads, scratch memory, tax/txa.
        let p = [
            Insn::stmt(LDX | B | MSH, 0),
            Insn::stmt(LD | B | IND, 1),
            Insn::stmt(ST, 3),
            Insn::stmt(MISC | TXA, 0),
            Insn::stmt(LDX | W | MEM, 3),
            Insn::stmt(ALU | ADD | X, 0),
            Insn::stmt(RET | A, 0),
        ];
        validate(&p).unwrap();
        assert_eq!(run(&p, &[0x42, 0, 0, 0, 0, 0, 0, 0, 0, 9], 10, &m), 8 + 9);
        // VLAN ancillary loads.
        let p = [
            Insn::stmt(LD | B | ABS, SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT),
            Insn {
                code: JMP | JEQ | K,
                jt: 0,
                jf: 1,
                k: 1,
            },
            Insn::stmt(LD | B | ABS, SKF_AD_OFF + SKF_AD_VLAN_TAG),
            Insn::stmt(RET | A, 0),
        ];
        assert_eq!(
            run(
                &p,
                &[],
                0,
                &Meta {
                    vlan_tci: Some(0x2abc)
                }
            ),
            0x2abc
        );
        assert_eq!(run(&p, &[], 0, &m), 0);
        // Other ancillary loads are not emulated.
        let p = [Insn::stmt(LD | W | ABS, SKF_AD_OFF), Insn::stmt(RET | K, 1)];
        assert_eq!(run(&p, &[0; 64], 64, &m), 0);
    }

    #[test]
    fn validate_refuses_what_the_kernel_refuses() {
        use code::*;
        let ret = Insn::stmt(RET | K, 0);
        assert!(validate(&[]).is_err());
        assert!(validate(&[Insn::stmt(LD | W | IMM, 0)]).is_err());
        let jump = Insn {
            code: JMP | JEQ | K,
            jt: 1,
            jf: 0,
            k: 0,
        };
        assert!(validate(&[jump, ret]).is_err());
        assert!(validate(&[jump, ret, ret]).is_ok());
        assert!(validate(&[Insn::stmt(JMP | JA, 1), ret]).is_err());
        assert!(validate(&[Insn::stmt(ALU | DIV | K, 0), ret]).is_err());
        assert!(validate(&[Insn::stmt(ALU | LSH | K, 32), ret]).is_err());
        assert!(validate(&[Insn::stmt(LD | W | MEM, 16), ret]).is_err());
        assert!(validate(&[Insn::stmt(LD | W | MEM, 0), ret]).is_err());
        assert!(validate(&[Insn::stmt(0xffff, 0), ret]).is_err());
        assert!(validate(&[Insn::stmt(LD | B | ABS, SKF_AD_OFF + 64), ret]).is_err());
        assert!(validate(&[Insn::stmt(LD | B | ABS, SKF_AD_OFF + SKF_AD_VLAN_TAG), ret]).is_ok());
        // M[0] written on one path only.
        let p = [jump, Insn::stmt(ST, 0), Insn::stmt(LD | W | MEM, 0), ret];
        assert!(validate(&p).unwrap_err().reason.contains("before"));
        assert!(validate(&vec![ret; MAX_INSNS + 1]).is_err());
    }

    /// Random expressions of the supported grammar.
    fn expression() -> impl Strategy<Value = String> {
        let v4 = (0u8..4, 0u8..=255).prop_map(|(a, b)| format!("10.{a}.0.{b}"));
        let v6 = (0u16..4).prop_map(|a| format!("2001:db8::{a:x}"));
        let dir = prop_oneof![
            Just(""),
            Just("src "),
            Just("dst "),
            Just("src or dst "),
            Just("src and dst ")
        ];
        let port = 0u32..=65535;
        let leaf = prop_oneof![
            (dir.clone(), v4.clone()).prop_map(|(d, a)| format!("{d}host {a}")),
            (dir.clone(), v6).prop_map(|(d, a)| format!("{d}host {a}")),
            (dir.clone(), 8u32..=32).prop_map(|(d, l)| format!("{d}net 10.0.0.0/{l}")),
            (
                prop_oneof![Just(""), Just("tcp "), Just("udp "), Just("sctp ")],
                dir.clone(),
                port.clone()
            )
                .prop_map(|(p, d, n)| format!("{p}{d}port {n}")),
            (dir.clone(), port.clone(), port).prop_map(|(d, a, b)| format!("{d}portrange {a}-{b}")),
            prop_oneof![
                Just("tcp"),
                Just("udp"),
                Just("icmp"),
                Just("ip"),
                Just("ip6"),
                Just("arp"),
                Just("sctp"),
                Just("vlan")
            ]
            .prop_map(String::from),
            (0u32..=4095).prop_map(|v| format!("vlan {v}")),
            (dir, any::<[u8; 6]>()).prop_map(|(d, m)| {
                let d = if d.is_empty() { "host " } else { d };
                format!(
                    "ether {d}{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    m[0], m[1], m[2], m[3], m[4], m[5]
                )
            }),
            (0u32..2000).prop_map(|n| format!("less {n}")),
            (0u32..2000).prop_map(|n| format!("greater {n}")),
        ];
        leaf.prop_recursive(4, 12, 3, |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    prop_oneof![Just("and"), Just("or"), Just("&&"), Just("||")],
                    inner.clone()
                )
                    .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
                inner.clone().prop_map(|a| format!("not {a}")),
                inner.clone().prop_map(|a| format!("!({a})")),
                inner.prop_map(|a| format!("({a})")),
            ]
        })
    }

    proptest! {
        #[test]
        fn grammar_expressions_compile_to_valid_programs(
            expr in expression(),
            frame in proptest::collection::vec(any::<u8>(), 0..120),
            tci in proptest::option::of(any::<u16>()),
        ) {
            let p = compile(&expr).map_err(|e| TestCaseError::fail(format!("{expr}: {e}")))?;
            prop_assert!(validate(&p).is_ok(), "{expr}: {:?}", validate(&p));
            let r = run(&p, &frame, frame.len() as u32, &Meta { vlan_tci: tci });
            prop_assert!(r == 0 || r == ACCEPT);
        }

        #[test]
        fn compile_never_panics(expr in "[ -~]{0,80}") {
            if let Ok(p) = compile(&expr) {
                prop_assert!(validate(&p).is_ok());
            }
        }

        #[test]
        fn compile_never_panics_on_grammar_words(
            words in proptest::collection::vec(prop_oneof![
                Just("host"), Just("net"), Just("port"), Just("portrange"), Just("src"), Just("dst"),
                Just("and"), Just("or"), Just("not"), Just("!"), Just("("), Just(")"), Just("tcp"),
                Just("udp"), Just("ip"), Just("ip6"), Just("ether"), Just("vlan"), Just("less"),
                Just("502"), Just("10.0.0.1"), Just("::1"), Just("1-2"), Just("/"), Just("24"),
                Just("00:11:22:33:44:55"), Just("&&"), Just("||"), Just("arp"), Just("70000"),
            ], 0..14),
        ) {
            let expr = words.join(" ");
            if let Ok(p) = compile(&expr) {
                prop_assert!(validate(&p).is_ok(), "{expr}");
            }
        }

        #[test]
        fn run_never_panics_on_any_program(
            prog in proptest::collection::vec(
                (any::<u16>(), any::<u8>(), any::<u8>(), any::<u32>())
                    .prop_map(|(code, jt, jf, k)| Insn { code, jt, jf, k }),
                0..20,
            ),
            frame in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = run(&prog, &frame, frame.len() as u32, &Meta::default());
            let _ = validate(&prog);
        }
    }
}
