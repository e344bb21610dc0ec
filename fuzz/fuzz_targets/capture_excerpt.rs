//! The libFuzzer binary of `capture_excerpt`. Its body is `plcprobe_fuzz::capture_excerpt`
//! (fuzz/src/lib.rs), which tests/fuzz_replay.rs also runs on every committed seed and
//! regression input.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| plcprobe_fuzz::capture_excerpt(data));
