//! Links to devices: sockets (and later serial ports) wrapped in the protocol clients, with the
//! timeouts and reconnects a poller on a plant network needs.

pub mod modbus;
pub mod opcua;
pub mod pace;
pub mod packet_socket;
#[cfg(feature = "pcap")]
pub mod pcap_source;
pub mod rtu;
pub mod serial_sniff;
