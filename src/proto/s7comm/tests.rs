//! Unit tests from constructed bytes (the layouts of RFC 1006, ISO 8073 and the S7 header as
//! tshark's packet-s7comm.c reads them) and properties over arbitrary bytes.

use super::*;
use proptest::prelude::*;

/// TPKT + COTP DT (EOT) around `s7`.
fn frame(s7: &[u8]) -> Vec<u8> {
    let len = 4 + 3 + s7.len();
    let mut v = vec![3, 0, (len >> 8) as u8, len as u8, 2, 0xf0, 0x80];
    v.extend_from_slice(s7);
    v
}

/// A Read Var job: DB1.DBX10.0 BYTE[4] and M20.0 BIT[1].
fn read_job() -> Vec<u8> {
    let mut p = vec![0x04, 2];
    p.extend_from_slice(&[0x12, 0x0a, 0x10, 0x02, 0, 4, 0, 1, 0x84, 0, 0, 80]);
    p.extend_from_slice(&[0x12, 0x0a, 0x10, 0x01, 0, 1, 0, 0, 0x83, 0, 0, 160]);
    let mut s = vec![0x32, 1, 0, 0, 0x12, 0x34, 0, p.len() as u8, 0, 0];
    s.extend_from_slice(&p);
    s
}

#[test]
fn tpkt_framing() {
    let f = frame(&read_job());
    assert!(starts_tpkt(&f));
    assert_eq!(tpkt_len(&f), Some(f.len()));
    assert!(!starts_tpkt(&[3, 0, 0, 6]));
    assert!(!starts_tpkt(&[4, 0, 0, 20]));
    assert_eq!(tpkt_len(&[3, 0]), None);
    assert!(looks_like_s7(&f));
    assert!(!looks_like_s7(&[3, 0, 0, 7, 2, 0xf0, 0x80]));
    // a COTP connection request (no payload) counts
    let cr = [3, 0, 0, 11, 6, 0xe0, 0, 0, 0, 1, 0];
    assert!(looks_like_s7(&cr));
    let c = cotp_of_tpkt(&cr).unwrap();
    assert_eq!(c.kind, CotpKind::ConnectRequest);
    assert_eq!(c.src_ref, 1);
    assert_eq!(c.kind.name(), "CR Connect Request");
}

#[test]
fn cotp_dt_and_reassembly() {
    let c = parse_cotp(&[2, 0xf0, 0x05, 0x32, 1]).unwrap();
    assert_eq!(c.kind, CotpKind::Data);
    assert!(!c.eot);
    assert_eq!(c.tpdu_nr, 5);
    assert_eq!(c.payload, &[0x32, 1]);
    assert!(parse_cotp(&[9, 0xf0]).is_none());
    let mut r = CotpReassembler::new();
    assert_eq!(r.push(&[1, 2], false), Reassembled::Pending);
    assert!(r.pending());
    assert_eq!(r.push(&[3], true), Reassembled::Joined(vec![1, 2, 3]));
    assert!(!r.pending());
    assert_eq!(r.push(&[4], true), Reassembled::Whole(&[4]));
    let big = vec![0u8; MAX_REASSEMBLED];
    assert_eq!(r.push(&big, false), Reassembled::Pending);
    assert_eq!(r.push(&[1], true), Reassembled::Overflow);
    assert!(!r.pending());
}

#[test]
fn read_var_job_items() {
    let b = read_job();
    let p = parse_pdu(&b).unwrap();
    assert_eq!(p.malformed, None);
    assert_eq!(p.role(), Role::Request);
    assert_eq!(p.key(), 0x1234);
    assert_eq!(p.function(), 4);
    assert_eq!(function_name(p.function()), "Read Var");
    assert!(!p.is_write());
    let items: Vec<_> = request_items(p.param).collect();
    assert_eq!(items.len(), 2);
    assert_eq!((items[0].byte(), items[0].bit()), (10, 0));
    let mut s = String::new();
    p.target(&mut s);
    assert_eq!(s, "DB1.DBX10.0 BYTE[4], M20.0 BIT[1]");
    let mut f = Vec::new();
    p.fields(&mut f);
    assert!(f.contains(&("item.area", Field::U(0x84))));
    assert!(f.contains(&("item_count", Field::U(2))));
}

#[test]
fn read_var_answer_failure_is_first_bad_item() {
    // two items: success BYTE 3 bytes (24 bits) + fill, then 0x05 Invalid address
    let d = [0xff, 0x04, 0, 24, 1, 2, 3, 0, 0x05, 0x00, 0, 0];
    let mut s = vec![0x32, 3, 0, 0, 0, 7, 0, 2, 0, d.len() as u8, 0, 0, 0x04, 2];
    s.extend_from_slice(&d);
    let p = parse_pdu(&s).unwrap();
    assert_eq!(p.role(), Role::Response);
    assert_eq!(p.return_codes().collect::<Vec<_>>(), vec![0xff, 0x05]);
    assert_eq!(p.failure(), Some(5));
    assert_eq!(status_name(5), "Invalid address");
    assert_eq!(status_name(0xff), "Success");
    assert_eq!(status_name(0x0a), "Object does not exist");
}

#[test]
fn header_error_wins() {
    let s = [0x32, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0x85, 0x00];
    let p = parse_pdu(&s).unwrap();
    assert_eq!(p.failure(), Some(0x8500));
    assert_eq!(error_class_name(0x85), "Error on supplies");
    assert_ne!(status_name(0x8500), "Unknown");
    assert_eq!(status_name(0x8104), names_lookup(0x8104));
}

fn names_lookup(c: u16) -> &'static str {
    lookup(names::PARAM_ERRCOD, c).unwrap_or("Application relationship")
}

#[test]
fn write_var_is_a_write_with_values() {
    let p = [0x05, 1, 0x12, 0x0a, 0x10, 0x02, 0, 2, 0, 5, 0x84, 0, 0, 8];
    let d = [0x00, 0x04, 0, 16, 0xab, 0xcd];
    let mut s = vec![0x32, 1, 0, 0, 0, 1, 0, p.len() as u8, 0, d.len() as u8];
    s.extend_from_slice(&p);
    s.extend_from_slice(&d);
    let pdu = parse_pdu(&s).unwrap();
    assert!(pdu.is_write());
    let mut w = String::new();
    pdu.written(&mut w);
    assert_eq!(w, "ab:cd");
    let mut t = String::new();
    pdu.target(&mut t);
    assert_eq!(t, "DB5.DBX1.0 BYTE[2]");
    // its answer: one return code per item
    let a = [0x32, 3, 0, 0, 0, 1, 0, 2, 0, 1, 0, 0, 0x05, 1, 0x0a];
    let ack = parse_pdu(&a).unwrap();
    assert!(!ack.is_write());
    assert_eq!(ack.failure(), Some(0x0a));
}

#[test]
fn pi_service_and_plc_stop() {
    let name = b"P_PROGRAM";
    let mut p = vec![0x28, 0, 0, 0, 0, 0, 0, 0xfd, 0, 2, b'C', b' '];
    p.push(name.len() as u8);
    p.extend_from_slice(name);
    let mut s = vec![0x32, 1, 0, 0, 0, 2, 0, p.len() as u8, 0, 0];
    s.extend_from_slice(&p);
    let pdu = parse_pdu(&s).unwrap();
    assert!(pdu.is_write());
    assert_eq!(pdu.pi_service(), Some(&name[..]));
    assert_eq!(function_name(pdu.function()), "PI-Service");
    let mut p = vec![0x29, 0, 0, 0, 0, 0, 9];
    p.extend_from_slice(name);
    let mut s = vec![0x32, 1, 0, 0, 0, 3, 0, p.len() as u8, 0, 0];
    s.extend_from_slice(&p);
    let pdu = parse_pdu(&s).unwrap();
    assert!(pdu.is_write());
    let mut t = String::new();
    pdu.target(&mut t);
    assert_eq!(t, "P_PROGRAM");
    assert_eq!(function_name(0x29), "PLC Stop");
}

#[test]
fn userdata_szl_read() {
    let p = [0x00, 0x01, 0x12, 0x04, 0x11, 0x44, 0x01, 0x00];
    let d = [0xff, 0x09, 0x00, 0x04, 0x00, 0x11, 0x00, 0x01];
    let mut s = vec![0x32, 7, 0, 0, 0, 5, 0, 8, 0, 8];
    s.extend_from_slice(&p);
    s.extend_from_slice(&d);
    let pdu = parse_pdu(&s).unwrap();
    assert_eq!(pdu.role(), Role::Request);
    assert_eq!(pdu.function(), USERDATA | 0x401);
    assert_eq!(function_name(pdu.function()), "Read SZL");
    assert_eq!(pdu.userdata.unwrap().szl, Some((0x0011, 1)));
    let mut t = String::new();
    pdu.target(&mut t);
    assert_eq!(t, "SZL 0x0011 index 0x0001");
    assert_eq!(userdata_group_name(4), "CPU functions");
    assert_eq!(function_name(USERDATA | 0x702), "Set clock");
    assert_eq!(function_name(USERDATA | 0x3ff), "Block functions");
}

#[test]
fn request_bytes_are_a_jobs_parameters() {
    let a = read_job();
    let mut b = read_job();
    b[4] = 0x56; // another PDU reference
    let (a, b) = (parse_pdu(&a).unwrap(), parse_pdu(&b).unwrap());
    assert_ne!(a.key(), b.key());
    assert_eq!(a.request_bytes(), &read_job()[10..]);
    assert_eq!(a.request_bytes(), b.request_bytes());
    // Userdata (its SZL is in the data part) and answers name none.
    let mut u = vec![0x32, 7, 0, 0, 0, 5, 0, 8, 0, 8];
    u.extend_from_slice(&[0x00, 0x01, 0x12, 0x04, 0x11, 0x44, 0x01, 0x00]);
    u.extend_from_slice(&[0xff, 0x09, 0x00, 0x04, 0x00, 0x11, 0x00, 0x01]);
    assert!(parse_pdu(&u).unwrap().request_bytes().is_empty());
    let ack = [0x32, 3, 0, 0, 0x12, 0x34, 0, 2, 0, 0, 0, 0, 0x04, 0];
    assert!(parse_pdu(&ack).unwrap().request_bytes().is_empty());
}

#[test]
fn s7comm_plus_is_counted() {
    let pdu = parse_pdu(&[0x72, 1, 0, 10]).unwrap();
    assert_eq!(pdu.role(), Role::Other);
    assert_eq!(function_name(pdu.function()), "S7comm-plus");
    assert!(parse_pdu(&[0x33]).is_none());
}

#[test]
fn truncated_is_malformed_not_panic() {
    let b = read_job();
    let p = parse_pdu(&b[..b.len() - 3]).unwrap();
    assert!(p.malformed.is_some());
    assert_eq!(request_items(p.param).count(), 1);
    assert!(parse_pdu(&[0x32, 1, 0]).unwrap().malformed.is_some());
}

#[test]
fn every_table_entry_is_tsharks() {
    for (a, n) in [
        (0x84, "Data blocks (DB)"),
        (0x1d, "S7 timers (T)"),
        (0x81, "Inputs (I)"),
    ] {
        assert_eq!(area_name(a), n);
    }
    assert_eq!(transport_size_name(29), "TIMER");
    assert_eq!(rosctr_name(3), "Ack_Data");
    assert_eq!(szl_name(0x0011), lookup(names::SZL_ID, 0x11).unwrap());
    assert!(names::PARAM_ERRCOD.windows(2).all(|w| w[0].0 < w[1].0));
}

proptest! {
    #[test]
    fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = looks_like_s7(&b);
        if let Some(len) = tpkt_len(&b) {
            prop_assert!(len >= TPKT_MIN_LEN);
            if len <= b.len() {
                let c = cotp_of_tpkt(&b[..len]);
                if let Some(c) = c {
                    prop_assert!(c.payload.len() < len);
                }
            }
        }
        let mut s7 = b.clone();
        if !s7.is_empty() { s7[0] = 0x32; }
        if let Some(p) = parse_pdu(&s7) {
            let mut f = Vec::new();
            let mut s = String::new();
            p.fields(&mut f);
            p.target(&mut s);
            p.written(&mut s);
            let _ = (p.role(), p.key(), p.failure(), p.is_write(), function_name(p.function()));
            if let Some(code) = p.failure() { let _ = status_name(code); }
            prop_assert!(p.param.len() + p.data.len() <= s7.len());
        }
    }
}
