//! What the capture targets share: a decoder that tries every protocol, and an analysis
//! output that keeps nothing (the targets look for panics, hangs and growth, not results).

use plcprobe::capture::{analysis::Emit, Config, Decoder};

/// Drops every transaction and PDU the analysis emits.
pub struct Nothing;

impl Emit for Nothing {}

/// A decoder with everything on: OPC UA nodes, and RTU frames over TCP on port 4001.
pub fn decoder() -> Decoder {
    Decoder::new(Config {
        opcua_nodes: true,
        rtu_ports: vec![4001],
        ..Config::default()
    })
}
