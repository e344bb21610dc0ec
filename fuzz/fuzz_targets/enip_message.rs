//! The libFuzzer binary of `enip_message`. Its body is `plcprobe_fuzz::enip_message`
//! (fuzz/src/lib.rs), which tests/fuzz_replay.rs also runs on every committed seed and
//! regression input.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| plcprobe_fuzz::enip_message(data));
