//! Any bytes as a capture file: the pcap/pcapng reader, link layers, TCP reassembly, the
//! Modbus and OPC UA decoders and the analysis, end to end.
#![no_main]
use libfuzzer_sys::fuzz_target;
use plcprobe::capture::{
    analysis::Analysis,
    reader::{read_stream, ReadStats},
};

mod common;
use common::Nothing;

fuzz_target!(|data: &[u8]| {
    let mut emit = Nothing;
    let mut an = Analysis::new(None, &mut emit);
    let mut dec = common::decoder();
    let mut stats = ReadStats::default();
    let input: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(data.to_vec()));
    let _ = read_stream(input, "fuzz", false, &mut stats, &mut |p| dec.packet(p, &mut an), data);
    dec.finish(&mut an);
    an.finish();
});
