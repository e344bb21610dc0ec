//! The libFuzzer binary of `bpf_compile`. Its body is `plcprobe_fuzz::bpf_compile`
//! (fuzz/src/lib.rs), which tests/fuzz_replay.rs also runs on every committed seed and
//! regression input.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| plcprobe_fuzz::bpf_compile(data));
