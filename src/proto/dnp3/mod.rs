//! DNP3 (IEEE 1815) over TCP 20000: the link layer with its CRC per block ([`link`]), transport
//! reassembly ([`transport`]), the application layer ([`app`]) and object headers
//! ([`objects`]). [`Dnp3Stream`] takes the link frames of one direction of a flow and gives a
//! [`Message`] per frame, with the application fragment on the frame that completes it.
//!
//! The [`Exchange`] view of a [`Message`]:
//! - **role**: Confirm (0) → [`Role::Other`] (it answers a response that asked for it with CON,
//!   or an unsolicited response, and is counted, not paired); Response (129) and Authentication
//!   Response (131) → [`Role::Response`]; Unsolicited Response (130) → [`Role::Unsolicited`];
//!   every other function → [`Role::Request`]. A frame that completes no fragment (a link-only
//!   frame such as Request Link Status / Status of Link, or a middle transport segment) →
//!   [`Role::Other`].
//! - **key**: the application sequence number (0–15). A response carries its request's
//!   sequence; a response with CON set is confirmed by a Confirm with the same sequence (Other);
//!   unsolicited responses and their confirms run their own sequence with UNS set.
//! - **function**: the application function code (0–255, [`function_name`]); a frame without a
//!   completed fragment gives its link function as [`LINK_FUNCTION`] + 0x10·PRM + code.
//! - **unit**: the outstation address: the link destination of a frame the master sent (DIR
//!   set), the link source of one the outstation sent.
//! - **failure** (responses only): the first control status ≠ 0 of a CROB (g12) or analog
//!   output (g41) in the response, as the status code itself (0–255); else, when IIN2 has an
//!   error bit, [`IIN_FAILURE`] + the lowest such bit (1 function code not implemented,
//!   2 objects unknown, 4 parameters invalid). [`status_name`] names both.
//! - **writes**: Write, Select, Operate, Direct Operate, Direct Operate No Ack; target lists the
//!   points (`g12v1 index 5, g41v2 index 3`), written the control or value of each point in the
//!   same order (`Latch On count 1 on 100 ms off 100 ms, 120`); an object of another kind is
//!   written as its octets in hex.
//! - **malformed**: link frame cut short, a data block CRC failed (its user data is then not
//!   reassembled), or the application fragment/objects are damaged.

pub mod app;
pub mod link;
pub mod objects;
pub mod transport;

use crate::proto::exchange::{push_dec, Exchange, Field, Role};
use app::{AppFragment, IIN_ERRORS};
use link::{LinkError, LinkHeader};
use objects::{ObjectHeader, Range};
use std::fmt::Write as _;
use transport::{TransportHeader, TransportReassembler};

pub use link::{link_frame_len, starts_link_frame};

/// TCP port of DNP3.
pub const PORT: u16 = 20000;
/// Base of the function numbers of frames without an application fragment (see the header).
pub const LINK_FUNCTION: u32 = 0x100;
/// Base of the failure numbers from IIN2 error bits (see the header).
pub const IIN_FAILURE: u32 = 0x1_0000;

/// tshark's name of a function as [`Exchange::function`] gives it.
#[must_use]
pub fn function_name(f: u32) -> &'static str {
    match f {
        0..=255 => app::app_function_name(f as u8),
        0x100..=0x10F => link::link_function_name(false, (f & 0xF) as u8),
        0x110..=0x11F => link::link_function_name(true, (f & 0xF) as u8),
        _ => "Unknown",
    }
}

/// tshark's name of a failure as [`Exchange::failure`] gives it.
#[must_use]
pub fn status_name(s: u32) -> &'static str {
    match s {
        0..=255 => app::control_status_name(s as u8),
        _ if s & IIN_FAILURE != 0 => {
            let bit = (s & 0xFFFF) as u16;
            app::IIN_BITS
                .iter()
                .find(|(b, _, _)| *b == bit)
                .map_or("Unknown", |(_, _, n)| n)
        }
        _ => "Unknown",
    }
}

/// One link frame, decoded as far as it goes.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The link header (`None` when the frame is cut before it ends).
    pub link: Option<LinkHeader>,
    /// Whether the header CRC checked.
    pub header_crc_ok: bool,
    /// Data blocks whose CRC failed.
    pub bad_blocks: u16,
    /// Octets the frame takes on the wire (what the caller should skip).
    pub wire_len: usize,
    /// The transport header, when the frame carries user data.
    pub transport: Option<TransportHeader>,
    /// The application fragment this frame completes.
    pub app: Option<AppFragment<'a>>,
    malformed: Option<&'static str>,
}

/// The decoder of one direction of a DNP3 flow: link frames in, messages out, with the transport
/// segments of that direction reassembled.
#[derive(Debug, Clone, Default)]
pub struct Dnp3Stream {
    reassembler: TransportReassembler,
    scratch: Vec<u8>,
    bad_crc_frames: u64,
}

impl Dnp3Stream {
    /// A stream with the default fragment bound.
    #[must_use]
    pub fn new() -> Dnp3Stream {
        Dnp3Stream::default()
    }

    /// Transport segments dropped (see [`TransportReassembler::discarded`]).
    #[must_use]
    pub fn discarded_segments(&self) -> u64 {
        self.reassembler.discarded()
    }

    /// Frames with a failed CRC (header or block).
    #[must_use]
    pub fn bad_crc_frames(&self) -> u64 {
        self.bad_crc_frames
    }

    /// Decodes the link frame at the start of `frame` (use [`link_frame_len`] to cut a stream).
    pub fn decode<'a>(&'a mut self, frame: &'a [u8]) -> Message<'a> {
        let mut m = Message {
            link: None,
            header_crc_ok: false,
            bad_blocks: 0,
            wire_len: frame.len(),
            transport: None,
            app: None,
            malformed: None,
        };
        let lf = match link::parse_link_frame(frame) {
            Ok(lf) => lf,
            Err(e) => {
                m.malformed = Some(e.as_str());
                if e == LinkError::Truncated && frame.len() >= 8 && starts_link_frame(frame) {
                    m.link = Some(LinkHeader {
                        len: frame[2],
                        control: frame[3],
                        dst: u16::from_le_bytes([frame[4], frame[5]]),
                        src: u16::from_le_bytes([frame[6], frame[7]]),
                    });
                }
                return m;
            }
        };
        m.link = Some(lf.header);
        m.header_crc_ok = lf.header_crc_ok;
        m.bad_blocks = lf.bad_blocks;
        m.wire_len = lf.wire_len;
        if !lf.crc_ok() {
            self.bad_crc_frames += 1;
            m.malformed = Some(if lf.header_crc_ok {
                "DNP3 data block CRC error (user data not reassembled)"
            } else {
                "DNP3 link header CRC error"
            });
            if !lf.header_crc_ok {
                return m;
            }
        }
        self.scratch.clear();
        lf.user_data_into(&mut self.scratch);
        let Some(&th) = self.scratch.first() else {
            return m;
        };
        m.transport = Some(TransportHeader::from_octet(th));
        if m.bad_blocks > 0 {
            return m;
        }
        if let Some(fragment) = self.reassembler.push(&self.scratch) {
            let a = app::parse_app(fragment);
            m.malformed = a.malformed;
            m.app = Some(a);
        }
        m
    }
}

/// tshark's words for a CROB's control code (`dnp3.ctl.op`, `dnp3.ctl.trip`, `dnp3.ctl.clr`).
fn control_code_into(code: u8, out: &mut String) {
    out.push_str(match code & 0x0F {
        0 => "NUL Operation",
        1 => "Pulse On",
        2 => "Pulse Off",
        3 => "Latch On",
        4 => "Latch Off",
        _ => "Unknown Operation",
    });
    match code >> 6 {
        1 => out.push_str(" Close"),
        2 => out.push_str(" Trip"),
        3 => out.push_str(" Reserved"),
        _ => {}
    }
    match (code >> 4) & 3 {
        1 => out.push_str(" Queue"),
        2 => out.push_str(" Clear"),
        3 => out.push_str(" Queue and Clear"),
        _ => {}
    }
}

fn u32le(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
}

/// The value of an analog output (g41) or its status (g40) object, rendered.
fn analog_into(variation: u8, o: &[u8], out: &mut String) {
    let _ = match (variation, o.len()) {
        (1, 5) => write!(out, "{}", u32le(o, 0) as i32),
        (2, 3) => write!(out, "{}", i16::from_le_bytes([o[0], o[1]])),
        (3, 5) => write!(out, "{}", f32::from_bits(u32le(o, 0))),
        (4, 9) => write!(
            out,
            "{}",
            f64::from_bits(u64::from(u32le(o, 0)) | (u64::from(u32le(o, 4)) << 32))
        ),
        _ => Ok(()),
    };
}

/// The status octet of a control object (CROB g12v1/v2, analog output g41), if the header is one.
fn control_status(h: &ObjectHeader<'_>, o: &[u8]) -> Option<u8> {
    match (h.group, h.variation) {
        (12, 1 | 2) => o.get(10).copied(),
        (41, 1 | 3) => o.get(4).copied(),
        (41, 2) => o.get(2).copied(),
        (41, 4) => o.get(8).copied(),
        _ => None,
    }
}

fn sep(out: &mut String, start: usize) {
    if out.len() > start {
        out.push_str(", ");
    }
}

/// `g12v1`.
fn group_variation_into(h: &ObjectHeader<'_>, out: &mut String) {
    out.push('g');
    push_dec(out, u64::from(h.group));
    out.push('v');
    push_dec(out, u64::from(h.variation));
}

/// How many points (or headers without points) a target names before it says how many there
/// are in all (`g1v2 index 0, …, g1v2 index 3 … (16)`).
pub const TARGET_POINTS: usize = 4;

/// Appends a header's points (or, without objects, its range) to a target; `n` counts them.
fn header_target(h: &ObjectHeader<'_>, out: &mut String, start: usize, n: &mut usize) {
    let mut any = false;
    for (index, _) in h.points() {
        any = true;
        *n += 1;
        if *n <= TARGET_POINTS {
            sep(out, start);
            group_variation_into(h, out);
            out.push_str(" index ");
            push_dec(out, u64::from(index));
        }
    }
    if !any {
        *n += 1;
        if *n > TARGET_POINTS {
            return;
        }
        sep(out, start);
        group_variation_into(h, out);
        match h.range {
            Range::StartStop(a, z) => {
                out.push(' ');
                push_dec(out, u64::from(a));
                out.push('-');
                push_dec(out, u64::from(z));
            }
            Range::Count(c) => {
                out.push_str(" count ");
                push_dec(out, u64::from(c));
            }
            Range::Address(a) => {
                out.push_str(" address ");
                push_dec(out, u64::from(a));
            }
            Range::All => out.push_str(" all"),
        }
    }
}

/// The object headers of a fragment in the golden files' notation: `g12v1 q0x28 n1`,
/// `g1v2 q0x00 0-7`, `g60v2 q0x06`, joined by "; ".
pub fn objects_into(a: &AppFragment<'_>, out: &mut String) {
    for (i, h) in a.objects.headers.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        let _ = write!(out, "g{}v{} q0x{:02x}", h.group, h.variation, h.qualifier);
        let _ = match h.range {
            Range::StartStop(a, z) => write!(out, " {a}-{z}"),
            Range::Count(n) => write!(out, " n{n}"),
            Range::Address(a) => write!(out, " @{a}"),
            Range::All => Ok(()),
        };
    }
}

impl Message<'_> {
    /// The control statuses of the fragment's control objects, in order.
    pub fn control_statuses(&self) -> impl Iterator<Item = u8> + '_ {
        self.app.iter().flat_map(|a| {
            a.objects
                .headers
                .iter()
                .flat_map(|h| h.points().filter_map(move |(_, o)| control_status(h, o)))
        })
    }
}

impl Exchange for Message<'_> {
    fn role(&self) -> Role {
        match self.app.as_ref().map(|a| a.function) {
            None | Some(app::func::CONFIRM) => Role::Other,
            Some(app::func::RESPONSE | app::func::AUTH_RESPONSE) => Role::Response,
            Some(app::func::UNSOLICITED_RESPONSE) => Role::Unsolicited,
            Some(_) => Role::Request,
        }
    }

    fn key(&self) -> u32 {
        self.app.as_ref().map_or(0, |a| u32::from(a.control.seq()))
    }

    fn function(&self) -> u32 {
        match (&self.app, &self.link) {
            (Some(a), _) => u32::from(a.function),
            (None, Some(l)) => LINK_FUNCTION + 0x10 * u32::from(l.prm()) + u32::from(l.function()),
            (None, None) => LINK_FUNCTION + 0x14,
        }
    }

    fn unit(&self) -> Option<u16> {
        self.link.map(|l| if l.dir() { l.dst } else { l.src })
    }

    fn failure(&self) -> Option<u32> {
        if self.role() != Role::Response {
            return None;
        }
        if let Some(s) = self.control_statuses().find(|&s| s != 0) {
            return Some(u32::from(s));
        }
        let errors = self.app.as_ref()?.iin? & IIN_ERRORS;
        (errors != 0).then(|| IIN_FAILURE | u32::from(errors & errors.wrapping_neg()))
    }

    fn is_write(&self) -> bool {
        self.app.as_ref().is_some_and(|a| {
            matches!(
                a.function,
                app::func::WRITE
                    | app::func::SELECT
                    | app::func::OPERATE
                    | app::func::DIRECT_OPERATE
                    | app::func::DIRECT_OPERATE_NR
            )
        })
    }

    fn target(&self, out: &mut String) {
        let start = out.len();
        let mut n = 0;
        if let Some(a) = &self.app {
            for h in &a.objects.headers {
                header_target(h, out, start, &mut n);
            }
        }
        if n > TARGET_POINTS {
            out.push_str(" … (");
            push_dec(out, n as u64);
            out.push(')');
        }
    }

    fn written(&self, out: &mut String) {
        if !self.is_write() {
            return;
        }
        let start = out.len();
        let Some(a) = &self.app else { return };
        for h in &a.objects.headers {
            for (_, o) in h.points() {
                sep(out, start);
                match (h.group, h.variation) {
                    (12, 1 | 2) if o.len() >= 10 => {
                        control_code_into(o[0], out);
                        let _ = write!(
                            out,
                            " count {} on {} ms off {} ms",
                            o[1],
                            u32le(o, 2),
                            u32le(o, 6)
                        );
                    }
                    (41, v) => analog_into(v, o, out),
                    _ => crate::proto::exchange::hex_into(out, o),
                }
            }
        }
    }

    fn malformed(&self) -> Option<&'static str> {
        self.malformed
    }

    fn fields(&self, out: &mut Vec<(&'static str, Field)>) {
        if let Some(l) = &self.link {
            out.push(("link_ctl", Field::U(u64::from(l.control))));
            out.push(("link_dir", Field::B(l.dir())));
            out.push(("link_prm", Field::B(l.prm())));
            out.push(("link_func", Field::U(u64::from(l.function()))));
            out.push(("link_dst", Field::U(u64::from(l.dst))));
            out.push(("link_src", Field::U(u64::from(l.src))));
            if self.malformed != Some(LinkError::Truncated.as_str()) {
                out.push(("hdr_crc_ok", Field::B(self.header_crc_ok)));
                out.push(("data_crc_ok", Field::B(self.bad_blocks == 0)));
            }
        }
        if let Some(t) = &self.transport {
            out.push(("tr_fir", Field::B(t.fir)));
            out.push(("tr_fin", Field::B(t.fin)));
            out.push(("tr_seq", Field::U(u64::from(t.seq))));
        }
        if let Some(a) = &self.app {
            out.push(("al_fir", Field::B(a.control.fir())));
            out.push(("al_fin", Field::B(a.control.fin())));
            out.push(("al_con", Field::B(a.control.con())));
            out.push(("al_uns", Field::B(a.control.uns())));
            out.push(("al_seq", Field::U(u64::from(a.control.seq()))));
            out.push(("al_func", Field::U(u64::from(a.function))));
            if let Some(iin) = a.iin {
                out.push(("al_iin", Field::U(u64::from(iin))));
            }
            if !a.objects.headers.is_empty() {
                let mut s = String::new();
                objects_into(a, &mut s);
                out.push(("al_objects", Field::S(s)));
            }
            let mut st = String::new();
            for s in self.control_statuses() {
                if !st.is_empty() {
                    st.push(',');
                }
                let _ = write!(st, "{s}");
            }
            if !st.is_empty() {
                out.push(("al_ctrlstatus", Field::S(st)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::link::build_link_frame;
    use super::*;

    fn decode_one(s: &mut Dnp3Stream, f: &[u8], check: impl FnOnce(&Message<'_>)) {
        let m = s.decode(f);
        check(&m);
    }

    #[test]
    fn select_and_its_response_pair_and_write() {
        // select_operate_and_responses.pcap frames 1 and 2.
        let req = [
            0xc0, 0xc0, 0x03, 0x0c, 0x01, 0x28, 0x01, 0x00, 0x05, 0x00, 0x03, 0x01, 0x64, 0x00,
            0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00,
        ];
        let f = build_link_frame(0xc4, 10, 1, &req);
        let mut master = Dnp3Stream::new();
        decode_one(&mut master, &f, |m| {
            assert_eq!(m.malformed(), None);
            assert_eq!(m.role(), Role::Request);
            assert_eq!(m.key(), 0);
            assert_eq!(function_name(m.function()), "Select");
            assert_eq!(m.unit(), Some(10));
            assert!(m.is_write());
            let mut t = String::new();
            m.target(&mut t);
            assert_eq!(t, "g12v1 index 5");
            let mut w = String::new();
            m.written(&mut w);
            assert_eq!(w, "Latch On count 1 on 100 ms off 100 ms");
            assert_eq!(m.failure(), None);
        });
        let mut resp = vec![0xc6, 0xc0, 0x81, 0x00, 0x00];
        resp.extend_from_slice(&req[3..]);
        *resp.last_mut().unwrap() = 2; // No SELECT received
        let f = build_link_frame(0x44, 1, 10, &resp);
        let mut outstation = Dnp3Stream::new();
        decode_one(&mut outstation, &f, |m| {
            assert_eq!(m.role(), Role::Response);
            assert_eq!(m.key(), 0);
            assert_eq!(m.unit(), Some(10));
            assert_eq!(m.failure(), Some(2));
            assert_eq!(status_name(2), "Req. Not Accepted; No 'SELECT' Received");
            let mut fl = Vec::new();
            m.fields(&mut fl);
            assert!(fl.contains(&("al_objects", Field::S("g12v1 q0x28 n1".into()))));
            assert!(fl.contains(&("al_ctrlstatus", Field::S("2".into()))));
        });
    }

    #[test]
    fn iin_errors_fail_a_response_and_unsolicited_and_confirm_are_not_paired() {
        let mut s = Dnp3Stream::new();
        let f = build_link_frame(0x44, 1, 10, &[0xc1, 0xc3, 0x81, 0x80, 0x06]);
        decode_one(&mut s, &f, |m| {
            assert_eq!(m.key(), 3);
            assert_eq!(m.failure(), Some(IIN_FAILURE | 2));
            assert_eq!(status_name(IIN_FAILURE | 2), "Requested Objects Unknown");
        });
        let f = build_link_frame(0x44, 1, 10, &[0xc2, 0xf5, 0x82, 0x00, 0x00]);
        decode_one(&mut s, &f, |m| {
            assert_eq!(m.role(), Role::Unsolicited);
            assert_eq!(m.failure(), None);
        });
        let mut master = Dnp3Stream::new();
        let f = build_link_frame(0xc4, 10, 1, &[0xc0, 0xd5, 0x00]);
        decode_one(&mut master, &f, |m| {
            assert_eq!(m.role(), Role::Other);
            assert_eq!(function_name(m.function()), "Confirm");
        });
        // A link-only frame.
        let f = build_link_frame(0xc9, 10, 1, &[]);
        decode_one(&mut master, &f, |m| {
            assert_eq!(m.role(), Role::Other);
            assert_eq!(function_name(m.function()), "Request Link Status");
            assert_eq!(m.malformed(), None);
        });
        let f = build_link_frame(0x0b, 1, 10, &[]);
        decode_one(&mut master, &f, |m| {
            assert_eq!(function_name(m.function()), "Status of Link");
        });
    }

    #[test]
    fn a_fragment_over_two_frames_and_a_bad_crc() {
        let mut app = vec![0xc4, 0x81, 0x00, 0x00, 30, 2, 0x00, 0, 9];
        for i in 0..10u8 {
            app.extend_from_slice(&[1, i, 0]);
        }
        let mut s = Dnp3Stream::new();
        let mut seg = vec![0x40];
        seg.extend_from_slice(&app[..20]);
        let f = build_link_frame(0x44, 1, 10, &seg);
        decode_one(&mut s, &f, |m| {
            assert!(m.app.is_none());
            assert_eq!(m.role(), Role::Other);
        });
        let mut seg = vec![0x81];
        seg.extend_from_slice(&app[20..]);
        let f = build_link_frame(0x44, 1, 10, &seg);
        decode_one(&mut s, &f, |m| {
            let a = m.app.as_ref().expect("completed");
            assert_eq!(a.objects.headers.len(), 1);
            assert_eq!(m.key(), 4);
            assert_eq!(m.malformed(), None);
        });
        let mut f = build_link_frame(0x44, 1, 10, &[0xc2, 0xc5, 0x81, 0, 0]);
        f[11] ^= 0x01;
        decode_one(&mut s, &f, |m| {
            assert_eq!(m.bad_blocks, 1);
            assert!(m.app.is_none());
            assert!(m.malformed().is_some());
        });
        assert_eq!(s.bad_crc_frames(), 1);
    }
}
