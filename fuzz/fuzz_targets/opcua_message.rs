//! The OPC UA Binary message decoder on any bytes (and on any body behind a valid header).
#![no_main]
use libfuzzer_sys::fuzz_target;
use plcprobe::proto::opcua::{decode_message, starts_message, MESSAGE_TYPES};

fuzz_target!(|data: &[u8]| {
    let _ = starts_message(data);
    let _ = decode_message(data, true);
    if let Some((&k, body)) = data.split_first() {
        let mut m = MESSAGE_TYPES[usize::from(k) % MESSAGE_TYPES.len()].to_vec();
        m.push(b'F');
        m.extend_from_slice(&u32::try_from(body.len() + 8).unwrap().to_le_bytes());
        m.extend_from_slice(body);
        let _ = decode_message(&m, true);
    }
});
