//! Modbus application-layer vocabulary (Modbus Application Protocol Specification V1.1b3):
//! the four data tables and their addresses, how register words map to typed values, and the
//! exception codes of §7.

pub mod address;
pub mod exception;
pub mod pdu;
pub mod rtu;
pub mod value;

pub use address::{parse_address, AddressError, AddressRange, Table};
pub use exception::exception_name;
pub use value::{DataType, Value, WordOrder};

/// FC43 Read Device Identification object IDs 0x00–0x06 (§6.21, basic and regular
/// categories), by the names plcprobe uses for them in profiles and snapshots.
pub const DEVICE_ID_OBJECTS: [&str; 7] = [
    "vendor",
    "product_code",
    "revision",
    "vendor_url",
    "product_name",
    "model_name",
    "application_name",
];

/// Spec limit for one read of holding/input registers (FC03/FC04, §6.3/§6.4).
pub const MAX_READ_REGISTERS: u16 = 125;
/// Spec limit for one read of coils/discrete inputs (FC01/FC02, §6.1/§6.2).
pub const MAX_READ_BITS: u16 = 2000;
/// Spec limit for one FC16 Write Multiple Registers (§6.12).
pub const MAX_WRITE_REGISTERS: u16 = 123;
/// Spec limit for one FC15 Write Multiple Coils (§6.11).
pub const MAX_WRITE_BITS: u16 = 1968;
