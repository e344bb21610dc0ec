//! Any bytes as a serial line's stream: RTU frame finding (both directions, FC43 included),
//! the server's request reader, the client's answer length, the listener's scoring, and
//! server-ID text. None may panic; every frame found lies inside the input and checks its CRC.
#![no_main]
use libfuzzer_sys::fuzz_target;
use plcprobe::{
    device::modbus_scan::{score_bytes, server_id_text},
    proto::modbus::{
        pdu::rtu_crc_ok,
        rtu::{answer_len, find_frames, next_request},
    },
};

fuzz_target!(|data: &[u8]| {
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
});
