//! The DNP3 transport function (IEEE 1815-2012 §8): the first octet of every link frame's user
//! data is a transport header — FIN (0x80), FIR (0x40), a 6-bit sequence — and the rest is one
//! segment of an application fragment. [`TransportReassembler`] joins the segments of one
//! direction (one master→outstation or outstation→master stream) from FIR to FIN.
//!
//! Contract: a fragment is returned only when FIR..FIN arrived with consecutive sequence numbers
//! (mod 64) and within the bound; anything else is dropped and counted in
//! [`TransportReassembler::discarded`] (segments, not octets). A new FIR always starts over.
//! Pure: no I/O; the only allocation is the one buffer, never larger than the bound.

/// The transport header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportHeader {
    /// Final segment of a fragment.
    pub fin: bool,
    /// First segment of a fragment.
    pub fir: bool,
    /// Sequence number, 0..=63.
    pub seq: u8,
}

impl TransportHeader {
    /// From the transport octet.
    #[must_use]
    pub fn from_octet(b: u8) -> TransportHeader {
        TransportHeader {
            fin: b & 0x80 != 0,
            fir: b & 0x40 != 0,
            seq: b & 0x3F,
        }
    }
}

/// The default bound of a reassembled fragment: DNP3 fragments are at most 2048 octets in
/// practice (IEEE 1815 recommends it); four times that leaves room for odd devices.
pub const DEFAULT_MAX_FRAGMENT: usize = 8192;

/// Joins the transport segments of one direction into application fragments (module header).
#[derive(Debug, Clone)]
pub struct TransportReassembler {
    buf: Vec<u8>,
    max: usize,
    /// Sequence number of the last segment taken, while a fragment is open.
    open: Option<u8>,
    /// Segments held in `buf`.
    held: u64,
    /// The buffer holds a complete fragment (returned by the last push).
    complete: bool,
    discarded: u64,
    fragments: u64,
}

impl Default for TransportReassembler {
    fn default() -> Self {
        TransportReassembler::new(DEFAULT_MAX_FRAGMENT)
    }
}

impl TransportReassembler {
    /// A reassembler whose fragments never exceed `max` octets.
    #[must_use]
    pub fn new(max: usize) -> TransportReassembler {
        TransportReassembler {
            buf: Vec::new(),
            max,
            open: None,
            held: 0,
            complete: false,
            discarded: 0,
            fragments: 0,
        }
    }

    /// Segments dropped so far: out of sequence, without a FIR, over the bound, or left open
    /// by a new FIR.
    #[must_use]
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Fragments completed so far.
    #[must_use]
    pub fn fragments(&self) -> u64 {
        self.fragments
    }

    /// Octets currently held (never more than the bound).
    #[must_use]
    pub fn held_len(&self) -> usize {
        self.buf.len()
    }

    fn drop_open(&mut self) {
        self.discarded += self.held;
        self.held = 0;
        self.open = None;
        self.buf.clear();
    }

    /// Takes one segment (a link frame's user data: transport octet and payload) and returns the
    /// application fragment it completes, if any. An empty segment is ignored.
    pub fn push(&mut self, segment: &[u8]) -> Option<&[u8]> {
        let (&th, payload) = segment.split_first()?;
        if self.complete {
            self.complete = false;
            self.buf.clear();
        }
        let h = TransportHeader::from_octet(th);
        if h.fir {
            if self.open.is_some() {
                self.drop_open();
            }
        } else {
            match self.open {
                Some(prev) if (prev + 1) & 0x3F == h.seq => {}
                Some(_) => {
                    self.drop_open();
                    self.discarded += 1;
                    return None;
                }
                None => {
                    self.discarded += 1;
                    return None;
                }
            }
        }
        if self.buf.len() + payload.len() > self.max {
            self.drop_open();
            self.discarded += 1;
            return None;
        }
        self.buf.extend_from_slice(payload);
        self.held += 1;
        self.open = Some(h.seq);
        if h.fin {
            self.open = None;
            self.held = 0;
            self.complete = true;
            self.fragments += 1;
            return Some(&self.buf);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_bits() {
        let h = TransportHeader::from_octet(0xc6);
        assert!(h.fin && h.fir);
        assert_eq!(h.seq, 6);
        let h = TransportHeader::from_octet(0x3f);
        assert!(!h.fin && !h.fir);
        assert_eq!(h.seq, 63);
    }

    #[test]
    fn joins_fir_to_fin_and_drops_the_rest() {
        let mut r = TransportReassembler::default();
        assert_eq!(r.push(&[0xc0, 1, 2]), Some(&[1u8, 2][..]));
        assert_eq!(r.push(&[0x41, 1]), None);
        assert_eq!(r.push(&[0x02, 2]), None);
        assert_eq!(r.push(&[0x83, 3]), Some(&[1u8, 2, 3][..]));
        assert_eq!(r.discarded(), 0);
        // No FIR: dropped.
        assert_eq!(r.push(&[0x85, 9]), None);
        assert_eq!(r.discarded(), 1);
        // Out of sequence: the open segment and this one dropped.
        assert_eq!(r.push(&[0x4a, 1]), None);
        assert_eq!(r.push(&[0x8c, 2]), None);
        assert_eq!(r.discarded(), 3);
        // Sequence wraps 63 → 0.
        assert_eq!(r.push(&[0x7f, 1]), None);
        assert_eq!(r.push(&[0x80, 2]), Some(&[1u8, 2][..]));
        // A new FIR drops the open one.
        assert_eq!(r.push(&[0x40, 7]), None);
        assert_eq!(r.push(&[0xc5, 8]), Some(&[8u8][..]));
        assert_eq!(r.discarded(), 4);
        assert_eq!(r.fragments(), 4);
    }

    #[test]
    fn the_bound_holds() {
        let mut r = TransportReassembler::new(4);
        assert_eq!(r.push(&[0x40, 1, 2, 3]), None);
        assert_eq!(r.push(&[0x81, 4, 5]), None);
        assert_eq!(r.discarded(), 2);
        assert_eq!(r.held_len(), 0);
    }

    proptest! {
        #[test]
        fn bounded_and_exact(
            segs in proptest::collection::vec(
                (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..60),
            max in 1usize..300,
        ) {
            let mut r = TransportReassembler::new(max);
            // A model: the segments since the last FIR, if consecutive.
            let mut model: Option<(u8, Vec<u8>)> = None;
            for (th, payload) in &segs {
                let mut seg = vec![*th];
                seg.extend_from_slice(payload);
                let h = TransportHeader::from_octet(*th);
                let expect = {
                    let mut next = if h.fir {
                        Some((h.seq, payload.clone()))
                    } else {
                        match model.take() {
                            Some((p, mut v)) if (p + 1) & 0x3f == h.seq => {
                                v.extend_from_slice(payload);
                                Some((h.seq, v))
                            }
                            _ => None,
                        }
                    };
                    if next.as_ref().is_some_and(|(_, v)| v.len() > max) {
                        next = None;
                    }
                    if h.fin {
                        model = None;
                        next.map(|(_, v)| v)
                    } else {
                        model = next;
                        None
                    }
                };
                let got = r.push(&seg).map(<[u8]>::to_vec);
                prop_assert!(r.held_len() <= max);
                prop_assert_eq!(got, expect);
            }
        }
    }
}
