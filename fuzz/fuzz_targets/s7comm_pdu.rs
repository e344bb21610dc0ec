//! The libFuzzer binary of `s7comm_pdu`. Its body is `plcprobe_fuzz::s7comm_pdu`
//! (fuzz/src/lib.rs), which tests/fuzz_replay.rs also runs on every committed seed and
//! regression input.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| plcprobe_fuzz::s7comm_pdu(data));
