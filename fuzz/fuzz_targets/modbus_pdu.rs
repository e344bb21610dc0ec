//! The Modbus PDU, MBAP and RTU codecs on any bytes, both directions.
#![no_main]
use libfuzzer_sys::fuzz_target;
use plcprobe::proto::modbus::pdu::{decode_pdu, rtu_crc_ok, rtu_frame_len, split_adu, Direction};

fuzz_target!(|data: &[u8]| {
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
});
