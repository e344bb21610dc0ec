//! Pure protocol codecs: no tokio, no file system. Everything here works on `&str`/`&[u8]` and
//! plain values so it can be unit- and property-tested in isolation.

pub mod modbus;
pub mod opcua;
