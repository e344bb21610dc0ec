//! Modbus exception codes (Modbus Application Protocol V1.1b3 §7, "MODBUS Exception Codes").

/// Name of an exception code as the spec writes it, e.g. `0x02` → "Illegal Data Address".
/// Codes the spec does not define are named "Unknown exception".
pub fn exception_name(code: u8) -> &'static str {
    match code {
        0x01 => "Illegal Function",
        0x02 => "Illegal Data Address",
        0x03 => "Illegal Data Value",
        0x04 => "Server Device Failure",
        0x05 => "Acknowledge",
        0x06 => "Server Device Busy",
        0x08 => "Memory Parity Error",
        0x0A => "Gateway Path Unavailable",
        0x0B => "Gateway Target Device Failed to Respond",
        _ => "Unknown exception",
    }
}

/// `0x02 Illegal Data Address`: the form every output uses.
pub fn describe_exception(code: u8) -> String {
    format!("0x{code:02X} {}", exception_name(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_spec_code() {
        for code in [1u8, 2, 3, 4, 5, 6, 8, 0x0A, 0x0B] {
            assert_ne!(exception_name(code), "Unknown exception", "code {code}");
        }
        assert_eq!(describe_exception(2), "0x02 Illegal Data Address");
        assert_eq!(describe_exception(0x42), "0x42 Unknown exception");
    }
}
