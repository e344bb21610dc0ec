//! Unit tests from constructed bytes (ODVA Vol. 1 and 2 layouts) and properties over
//! arbitrary bytes.

use super::*;
use proptest::prelude::*;

fn header(cmd: u16, len: usize, session: u32, status: u32, ctx: [u8; 8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&cmd.to_le_bytes());
    v.extend_from_slice(&(len as u16).to_le_bytes());
    v.extend_from_slice(&session.to_le_bytes());
    v.extend_from_slice(&status.to_le_bytes());
    v.extend_from_slice(&ctx);
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

/// `SendRRData` with a null address item and an unconnected data item holding `cip`.
fn rr(cip: &[u8], ctx: [u8; 8]) -> Vec<u8> {
    let mut d = vec![0, 0, 0, 0, 10, 0, 2, 0, 0, 0, 0, 0, 0xb2, 0];
    d.extend_from_slice(&(cip.len() as u16).to_le_bytes());
    d.extend_from_slice(cip);
    let mut v = header(0x6f, d.len(), 0x1234, 0, ctx);
    v.extend_from_slice(&d);
    v
}

/// `SendUnitData` with a connected address and connected data item (sequence `seq`).
fn unit(cip: &[u8], seq: u16) -> Vec<u8> {
    let mut d = vec![
        0, 0, 0, 0, 0, 0, 2, 0, 0xa1, 0, 4, 0, 0x78, 0x56, 0x34, 0x12, 0xb1, 0,
    ];
    d.extend_from_slice(&(cip.len() as u16 + 2).to_le_bytes());
    d.extend_from_slice(&seq.to_le_bytes());
    d.extend_from_slice(cip);
    let mut v = header(0x70, d.len(), 0x1234, 0, [0; 8]);
    v.extend_from_slice(&d);
    v
}

/// Read Tag `Program:Main.Speed`, 1 element.
fn read_tag() -> Vec<u8> {
    let mut p = vec![0x91, 12];
    p.extend_from_slice(b"Program:Main");
    p.extend_from_slice(&[0x91, 5]);
    p.extend_from_slice(b"Speed\0");
    let mut c = vec![0x4c, (p.len() / 2) as u8];
    c.extend_from_slice(&p);
    c.extend_from_slice(&[1, 0]);
    c
}

#[test]
fn framing_and_detection() {
    let m = rr(&read_tag(), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(enip_len(&m), Some(m.len()));
    assert!(looks_like_enip(&m));
    let mut two = m.clone();
    two.extend_from_slice(&m);
    assert!(looks_like_enip(&two));
    assert!(!looks_like_enip(&m[..m.len() - 1]));
    assert_eq!(enip_len(&m[..23]), None);
    let mut bad = m.clone();
    bad[0] = 0x99;
    assert_eq!(enip_len(&bad), None);
    assert_eq!(command_name(0x65), Some("Register Session"));
    assert_eq!(function_name(ENCAP | 0x63), "List Identity");
}

#[test]
fn read_tag_request_and_reply() {
    let ctx = [1, 2, 3, 4, 5, 6, 7, 8];
    let b = rr(&read_tag(), ctx);
    let m = parse_message(&b).unwrap();
    assert_eq!(m.malformed, None);
    assert_eq!(m.role(), Role::Request);
    assert_eq!(m.key(), 0x0403_0201 ^ 0x0807_0605);
    assert_eq!(m.function(), 0x4c | cip::LOGIX);
    assert_eq!(function_name(m.function()), "Read Tag");
    let mut t = String::new();
    m.target(&mut t);
    assert_eq!(t, "Tag 'Program:Main.Speed'");
    assert!(!m.is_write());
    // reply: service 0xcc, status 0x04 Path segment error
    let r = rr(&[0xcc, 0, 0x04, 0], ctx);
    let r = parse_message(&r).unwrap();
    assert_eq!(r.role(), Role::Response);
    assert_eq!(r.key(), m.key());
    assert_eq!(r.failure(), Some(4));
    assert_eq!(status_name(4), "Path segment error");
    assert_eq!(status_name(0x2c), "Attribute not gettable");
    assert_eq!(status_name(ENCAP | 0x64), "Invalid Session Handle");
}

#[test]
fn request_bytes_are_the_cip_message_without_what_changes_per_sending() {
    // Connected: the same request under two sequence counts and unconnected under two sender
    // contexts names the same bytes, the CIP message itself.
    let (a, b) = (unit(&read_tag(), 7), unit(&read_tag(), 8));
    let (a, b) = (parse_message(&a).unwrap(), parse_message(&b).unwrap());
    assert_ne!(a.key(), b.key());
    assert_eq!(a.request_bytes(), &read_tag()[..]);
    assert_eq!(b.request_bytes(), a.request_bytes());
    let c = rr(&read_tag(), [9; 8]);
    assert_eq!(parse_message(&c).unwrap().request_bytes(), &read_tag()[..]);
    // No CIP message (RegisterSession): nothing named.
    let mut reg = header(0x65, 4, 0, 0, [0; 8]);
    reg.extend_from_slice(&[1, 0, 0, 0]);
    assert!(parse_message(&reg).unwrap().request_bytes().is_empty());
}

#[test]
fn set_attribute_single_is_a_write() {
    // Set Attribute Single class 0x04 (Assembly) instance 0x64 attribute 3, data 0xbeef
    let c = [0x10, 3, 0x20, 0x04, 0x24, 0x64, 0x30, 0x03, 0xef, 0xbe];
    let m_bytes = unit(&c, 77);
    let m = parse_message(&m_bytes).unwrap();
    assert_eq!(m.key(), 77);
    assert_eq!(m.connection_id, Some(0x1234_5678));
    assert!(m.is_write());
    let mut t = String::new();
    m.target(&mut t);
    assert_eq!(t, "Assembly/100/3");
    let mut w = String::new();
    m.written(&mut w);
    assert_eq!(w, "ef:be");
    assert_eq!(class_name(1), Some("Identity"));
    assert_eq!(class_name(6), Some("Connection Manager"));
}

#[test]
fn write_tag_values() {
    let mut c = vec![0x4d, 3, 0x91, 4];
    c.extend_from_slice(b"Temp");
    c.extend_from_slice(&[0xc3, 0x00, 1, 0, 0x2a, 0x00]);
    let m_bytes = rr(&c, [0; 8]);
    let m = parse_message(&m_bytes).unwrap();
    assert!(m.is_write());
    let mut w = String::new();
    m.written(&mut w);
    assert_eq!(w, "2a:00");
}

#[test]
fn multiple_service_packet_splits() {
    // two Get Attribute Single to Identity/1/7 and Class 0x8b/1/2
    let s1 = [0x0e, 3, 0x20, 0x01, 0x24, 0x01, 0x30, 0x07];
    let s2 = [0x10, 3, 0x20, 0x8b, 0x24, 0x01, 0x30, 0x02, 9];
    let mut d = vec![2, 0, 6, 0, 14, 0];
    d.extend_from_slice(&s1);
    d.extend_from_slice(&s2);
    let mut c = vec![0x0a, 2, 0x20, 0x02, 0x24, 0x01];
    c.extend_from_slice(&d);
    let m_bytes = rr(&c, [0; 8]);
    let m = parse_message(&m_bytes).unwrap();
    let svc: Vec<_> = m.services().map(|c| c.service).collect();
    assert_eq!(svc, vec![0x0a, 0x0e, 0x10]);
    assert!(m.is_write());
    let mut t = String::new();
    m.target(&mut t);
    assert_eq!(t, "Identity/1/7, Class 0x8b/1/2");
    // reply: second service failed with 0x0e Attribute not settable
    let mut d = vec![2, 0, 6, 0, 10, 0];
    d.extend_from_slice(&[0x8e, 0, 0, 0]);
    d.extend_from_slice(&[0x90, 0, 0x0e, 0]);
    let mut c = vec![0x8a, 0, 0x1e, 0];
    c.extend_from_slice(&d);
    let r_bytes = rr(&c, [0; 8]);
    let r = parse_message(&r_bytes).unwrap();
    assert_eq!(r.failure(), Some(0x1e));
    let mut c2 = c.clone();
    c2[2] = 0;
    let r_bytes = rr(&c2, [0; 8]);
    let r = parse_message(&r_bytes).unwrap();
    assert_eq!(r.failure(), Some(0x0e));
}

/// A Multiple Service Packet holding `paths` (class, instance) Get Attribute All requests.
fn msp(paths: &[(u8, u8)]) -> Vec<u8> {
    let n = paths.len();
    let mut d = (n as u16).to_le_bytes().to_vec();
    for i in 0..n {
        d.extend_from_slice(&((2 + 2 * n + 6 * i) as u16).to_le_bytes());
    }
    for &(c, i) in paths {
        d.extend_from_slice(&[0x01, 2, 0x20, c, 0x24, i]);
    }
    let mut c = vec![0x0a, 2, 0x20, 0x02, 0x24, 0x01];
    c.extend_from_slice(&d);
    rr(&c, [0; 8])
}

#[test]
fn target_collapses_repeats_and_caps_the_paths() {
    let target = |paths: &[(u8, u8)]| {
        let b = msp(paths);
        let m = parse_message(&b).unwrap();
        let mut t = String::new();
        m.target(&mut t);
        t
    };
    assert_eq!(target(&[(0x72, 0); 10]), "Class 0x72/0 ×10");
    assert_eq!(
        target(&[(0x72, 0), (0x72, 0), (1, 1), (0x72, 0)]),
        "Class 0x72/0 ×2, Identity/1, Class 0x72/0"
    );
    assert_eq!(
        target(&[
            (0x70, 1),
            (0x71, 2),
            (0x72, 3),
            (0x73, 4),
            (0x74, 5),
            (0x74, 5)
        ]),
        "Class 0x70/1, Class 0x71/2, Class 0x72/3, Class 0x73/4, … (6 services)"
    );
}

#[test]
fn forward_open_and_unconnected_send() {
    let mut d = vec![0x0a, 0x0e];
    d.extend_from_slice(&0u32.to_le_bytes()); // O->T id (chosen by target)
    d.extend_from_slice(&0x1111_2222u32.to_le_bytes()); // T->O id
    d.extend_from_slice(&0x0042u16.to_le_bytes()); // serial
    d.extend_from_slice(&0x0001u16.to_le_bytes()); // vendor
    d.extend_from_slice(&0xdead_beefu32.to_le_bytes()); // orig serial
    d.extend_from_slice(&[3, 0, 0, 0]); // multiplier + reserved
    d.extend_from_slice(&10_000u32.to_le_bytes());
    d.extend_from_slice(&0x43f4u16.to_le_bytes());
    d.extend_from_slice(&20_000u32.to_le_bytes());
    d.extend_from_slice(&0x4020u16.to_le_bytes());
    d.push(0xa3);
    d.extend_from_slice(&[2, 0x20, 0x02, 0x24, 0x01]);
    let mut c = vec![0x54, 2, 0x20, 0x06, 0x24, 0x01];
    c.extend_from_slice(&d);
    let m_bytes = rr(&c, [0; 8]);
    let m = parse_message(&m_bytes).unwrap();
    let f = m.cip.unwrap().forward_open().unwrap();
    assert_eq!(f.to_connid, 0x1111_2222);
    assert_eq!(f.conn_serial, 0x42);
    assert_eq!(f.orig_serial, 0xdead_beef);
    assert_eq!((f.ot_rpi, f.to_rpi), (10_000, 20_000));
    assert_eq!((f.ot_size(false), f.to_size(false)), (0x1f4, 0x20));
    assert_eq!(f.transport, 0xa3);
    assert_eq!(function_name(m.function()), "Forward Open");
    // Unconnected Send embedding Get Attribute All Identity/1
    let emb = [0x01, 2, 0x20, 0x01, 0x24, 0x01];
    let mut c = vec![0x52, 2, 0x20, 0x06, 0x24, 0x01, 0x0a, 0x0e, 6, 0];
    c.extend_from_slice(&emb);
    c.extend_from_slice(&[1, 0, 0x01, 0x00]);
    let m_bytes = rr(&c, [0; 8]);
    let m = parse_message(&m_bytes).unwrap();
    assert_eq!(m.services().nth(1).unwrap().service, 1);
    let mut t = String::new();
    m.target(&mut t);
    assert_eq!(t, "Identity/1");
    assert_eq!(function_name(0x52), "Unconnected Send");
    assert_eq!(
        ext_status_name(0x100),
        "Connection in use or duplicate Forward Open"
    );
}

#[test]
fn list_identity_and_register_session() {
    let mut id = vec![
        1, 0, 0, 2, 0xaf, 0x12, 192, 168, 1, 10, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    id.extend_from_slice(&1u16.to_le_bytes()); // Rockwell
    id.extend_from_slice(&14u16.to_le_bytes());
    id.extend_from_slice(&55u16.to_le_bytes());
    id.extend_from_slice(&[20, 11]);
    id.extend_from_slice(&0x0030u16.to_le_bytes());
    id.extend_from_slice(&0x00c0_ffeeu32.to_le_bytes());
    id.push(9);
    id.extend_from_slice(b"1756-L\x1b[1");
    id.push(3);
    let mut d = vec![1, 0, 0x0c, 0];
    d.extend_from_slice(&(id.len() as u16).to_le_bytes());
    d.extend_from_slice(&id);
    let mut b = header(0x63, d.len(), 0, 0, [9; 8]);
    b.extend_from_slice(&d);
    let m = parse_message(&b).unwrap();
    assert_eq!(m.role(), Role::Response);
    let i = m.identity().unwrap();
    assert_eq!(i.port, 44818);
    assert_eq!(i.serial, 0x00c0_ffee);
    assert_eq!(i.state, Some(3));
    assert_eq!(i.name(), "1756-L\u{fffd}[1");
    assert_eq!(vendor_name(1), "Rockwell Automation/Allen-Bradley");
    assert_eq!(device_type_name(14), "Programmable Logic Controller");
    let q = header(0x63, 0, 0, 0, [9; 8]);
    assert_eq!(parse_message(&q).unwrap().role(), Role::Request);
    let mut reg = header(0x65, 4, 0, 0, [0; 8]);
    reg.extend_from_slice(&[1, 0, 0, 0]);
    assert_eq!(parse_message(&reg).unwrap().role(), Role::Request);
    let mut reg = header(0x65, 4, 7, 0, [0; 8]);
    reg.extend_from_slice(&[1, 0, 0, 0]);
    assert_eq!(parse_message(&reg).unwrap().role(), Role::Response);
    assert_eq!(
        parse_message(&header(0x66, 0, 7, 0, [0; 8]))
            .unwrap()
            .role(),
        Role::Other
    );
    let bad = header(0x65, 0, 7, 0x64, [0; 8]);
    assert_eq!(parse_message(&bad).unwrap().failure(), Some(ENCAP | 0x64));
}

#[test]
fn implicit_io() {
    let mut b = vec![2, 0, 0x02, 0x80, 8, 0];
    b.extend_from_slice(&0xabcdu32.to_le_bytes());
    b.extend_from_slice(&42u32.to_le_bytes());
    b.extend_from_slice(&[0xb1, 0, 4, 0, 1, 0, 0xaa, 0xbb]);
    let io = parse_io(&b).unwrap();
    assert_eq!((io.connection_id, io.encap_seq), (0xabcd, 42));
    assert_eq!(io.role(), Role::Unsolicited);
    assert_eq!(function_name(io.function()), "Implicit I/O");
    assert!(parse_io(&b[..10]).is_none());
}

#[test]
fn path_segments() {
    // port segment 1, link 0; 16-bit class; member [3]; electronic key
    let p = [
        0x01, 0x00, 0x21, 0x00, 0x34, 0x12, 0x34, 0x04, 1, 0, 2, 0, 3, 0, 4, 5, 0x91, 1, b'A', 0,
        0x28, 3,
    ];
    let path = cip::parse_path(&p);
    assert!(!path.bad);
    assert_eq!(path.class, Some(0x1234));
    let mut s = String::new();
    path.tag(&mut s);
    assert_eq!(s, "A[3]");
    assert!(cip::parse_path(&[0x91, 9, b'a']).bad);
    assert!(cip::parse_path(&[0xff]).bad);
}

proptest! {
    #[test]
    fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = looks_like_enip(&b);
        let _ = parse_io(&b);
        let _ = cip::parse_path(&b);
        for b in [b.clone(), { let mut x = b.clone(); if x.len() > 1 { x[0] = 0x6f; x[1] = 0; } x }] {
            if let Some(m) = parse_message(&b) {
                if let Some(len) = enip_len(&b) {
                    prop_assert_eq!(len, HEADER_LEN + usize::from(m.length));
                    prop_assert!(m.data.len() <= len - HEADER_LEN);
                }
                let mut f = Vec::new();
                let mut s = String::new();
                m.fields(&mut f);
                m.target(&mut s);
                m.written(&mut s);
                let _ = (m.role(), m.key(), m.is_write(), function_name(m.function()));
                if let Some(c) = m.failure() { let _ = status_name(c); }
                let _ = m.services().count();
            }
        }
        if let Some(c) = cip::parse_cip(&b) {
            let _ = (c.forward_open(), c.forward_close(), c.embedded(), c.multiple().count());
            let _ = c.written_bytes();
        }
    }
}
