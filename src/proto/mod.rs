//! Pure protocol codecs: no tokio, no file system. Everything here works on `&str`/`&[u8]` and
//! plain values so it can be unit- and property-tested in isolation.

pub mod bacnet;
pub mod dnp3;
pub mod enip;
pub mod exchange;
pub mod modbus;
pub mod opcua;
pub mod s7comm;

/// Text a device supplied (an FC43 identity object, an OPC UA name, a certificate subject), with
/// its control characters replaced by U+FFFD, so that it cannot drive the terminal it is
/// printed on (a device's text is never trusted).
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}
