//! The libFuzzer binary of `dnp3_frame`. Its body is `plcprobe_fuzz::dnp3_frame` (fuzz/src/lib.rs),
//! which tests/fuzz_replay.rs also runs on every committed seed and regression input.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| plcprobe_fuzz::dnp3_frame(data));
