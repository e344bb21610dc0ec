//! The libFuzzer binary of `bacnet_message`. Its body is `plcprobe_fuzz::bacnet_message` (fuzz/src/lib.rs),
//! which tests/fuzz_replay.rs also runs on every committed seed and regression input.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| plcprobe_fuzz::bacnet_message(data));
