//! What one message of S7comm, EtherNet/IP with CIP, DNP3 or BACnet/IP says, in the terms the
//! capture analysis pairs, counts and lists. A technician asks every protocol the same
//! questions — who asked what, what answered, how slowly, what failed, who wrote what — so each
//! of these codecs gives, beside its own detailed message type, this one view of a message:
//! [`Exchange`]. `capture::analysis` sees only the view; the codec keeps the protocol.
//!
//! The contract every codec keeps:
//! - parsing never panics and never reads past its slice; what it cannot parse is reported by
//!   [`Exchange::malformed`] with the message still counted (and paired, if its header allowed);
//! - [`Exchange::key`] pairs a [`Role::Request`] with the [`Role::Response`] that answers it
//!   on the same flow (and the same [`Exchange::unit`]): the S7 PDU reference, the EtherNet/IP
//!   sender context (or the CIP connection's sequence count), the DNP3 application sequence
//!   number, the BACnet invoke id;
//! - [`Exchange::failure`] is the protocol's own code for a failed answer (never `Some` for a
//!   success), named by the codec's `status_name`;
//! - a write or control operation (S7 Write Var, PLC stop/start/download; CIP Set Attribute(s)
//!   and tag writes; DNP3 select/operate/direct operate/write; BACnet WriteProperty(Multiple))
//!   says so in [`Exchange::is_write`], and describes what it wrote in [`Exchange::written`];
//! - [`Exchange::fields`] lists the message's fields under the names the project's tshark
//!   golden files use, so `decode --pdus` can be compared with tshark message by message;
//! - a request's [`Exchange::target`] and [`Exchange::is_write`] depend on the bytes
//!   [`Exchange::request_bytes`] names alone, when it names any (the analysis keeps both per
//!   distinct bytes: a master sends the same request again and again).

/// What part a message plays in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Expects an answer with the same [`Exchange::key`].
    Request,
    /// Answers the request with the same key.
    Response,
    /// Sent without being asked and paired with nothing (DNP3 unsolicited responses, BACnet
    /// unconfirmed requests such as I-Am, CIP implicit I/O, S7 cyclic or alarm pushes).
    Unsolicited,
    /// Expects no answer and answers nothing paired (a DNP3 confirm, a BVLC result, an
    /// EtherNet/IP command without reply such as UnRegisterSession): counted only.
    Other,
}

/// A field value in a `--pdus` row.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A number.
    U(u64),
    /// A signed number.
    I(i64),
    /// A flag.
    B(bool),
    /// Text (names, tag names, rendered addresses). Device text is sanitized by the codec
    /// (`proto::sanitize`).
    S(String),
    /// Bytes, written as colon-separated hex as tshark prints them.
    Hex(Vec<u8>),
}

/// The one view of a decoded message that `capture::analysis` uses (see the module header).
pub trait Exchange {
    /// Request, response, unsolicited or other.
    fn role(&self) -> Role;
    /// The pairing key (see the module header).
    fn key(&self) -> u32;
    /// The protocol's function or service code, named by the codec's `function_name`.
    fn function(&self) -> u32;
    /// The unit behind the device's address that this message is for (requests) or from
    /// (responses): the DNP3 outstation address; `None` where the protocol has none.
    fn unit(&self) -> Option<u16> {
        None
    }
    /// The protocol's code for a failed answer (`None` on success and on requests).
    fn failure(&self) -> Option<u32> {
        None
    }
    /// A write or control operation.
    fn is_write(&self) -> bool {
        false
    }
    /// What is read or written, in the protocol's own notation (`DB1.DBW10 WORD[4]`,
    /// `Tag 'Line1_Speed'`, `g12v1 index 5`, `analog-value,3 present-value`), appended to `out`.
    fn target(&self, _out: &mut String) {}
    /// The values written (writes only), appended to `out`.
    fn written(&self, _out: &mut String) {}
    /// A request: the bytes its [`Exchange::target`] and [`Exchange::is_write`] are made from
    /// (and nothing that changes from one sending to the next, such as a sequence count), so
    /// the analysis can keep them per distinct bytes; empty when the codec names none.
    fn request_bytes(&self) -> &[u8] {
        &[]
    }
    /// Why the message could not be parsed whole.
    fn malformed(&self) -> Option<&'static str> {
        None
    }
    /// The message's fields under the golden files' names.
    fn fields(&self, _out: &mut Vec<(&'static str, Field)>) {}
}

impl std::fmt::Debug for dyn Exchange + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("role", &self.role())
            .field("key", &self.key())
            .field("function", &self.function())
            .field("unit", &self.unit())
            .field("failure", &self.failure())
            .finish_non_exhaustive()
    }
}

/// Appends `b` as colon-separated hex (`01:02:ff`), as tshark prints bytes.
pub fn hex_into(out: &mut String, b: &[u8]) {
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(char::from(HEX[usize::from(x >> 4)]));
        out.push(char::from(HEX[usize::from(x & 0x0f)]));
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `v` in decimal, without the formatting machinery (targets are written once per request).
pub fn push_dec(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf[at..].iter().for_each(|&d| out.push(char::from(d)));
}

/// `v` in lower-case hexadecimal, zero-padded to at least `width` digits, without `0x`.
pub fn push_hex(out: &mut String, v: u64, width: usize) {
    let digits = (64 - (v | 1).leading_zeros() as usize).div_ceil(4);
    for i in (0..digits.max(width).min(16)).rev() {
        out.push(char::from(HEX[((v >> (4 * i)) & 0x0f) as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_dec_and_hex_write_like_fmt() {
        for v in [
            0u64,
            1,
            9,
            10,
            255,
            4096,
            65535,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let (mut d, mut h2, mut h8) = (String::new(), String::new(), String::new());
            push_dec(&mut d, v);
            push_hex(&mut h2, v, 2);
            push_hex(&mut h8, v, 8);
            assert_eq!(d, format!("{v}"));
            assert_eq!(h2, format!("{v:02x}"));
            assert_eq!(h8, format!("{v:08x}"));
        }
        let mut s = String::new();
        hex_into(&mut s, &[0, 0xab, 0x1f]);
        assert_eq!(s, "00:ab:1f");
    }

    #[test]
    fn hex_is_colon_separated_lowercase() {
        let mut s = String::new();
        hex_into(&mut s, &[0x01, 0xab, 0xff]);
        assert_eq!(s, "01:ab:ff");
        s.clear();
        hex_into(&mut s, &[]);
        assert_eq!(s, "");
    }
}
