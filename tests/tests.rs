//! Integration tests: the real `plcprobe` binary against real servers on loopback: its own
//! simulator (a separate process) and independent peers (pymodbus server, mbpoll client).

mod util;

mod bpf;
mod bundle;
mod capture;
mod claims;
mod claims_opcua;
mod cli;
mod crash;
mod decode;
mod decode_ics;
mod device;
mod excerpt;
mod faults;
mod fields;
mod fleet;
mod fuzz_replay;
mod golden_dnp3bac;
mod golden_s7enip;
mod health;
mod history;
mod modbus_sim;
mod opcua;
mod peers;
mod register_scan;
mod rs485;
mod rtu;
mod rtu_peers;
mod serial_model;
mod terminal;
mod trend;
mod uart;
