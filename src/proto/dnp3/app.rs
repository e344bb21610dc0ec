//! The DNP3 application layer (IEEE 1815-2012 §4.2.2): an application fragment is a control
//! octet (FIR 0x80, FIN 0x40, CON 0x20, UNS 0x10, 4-bit sequence), a function code, on
//! responses (129, 130, 131) the two internal-indication octets IIN1 and IIN2, then object
//! headers ([`super::objects`]). Names are tshark's (`dnp3.al.func`, `dnp3.al.ctrlstatus`,
//! `dnp3.al.iin.*`).

use super::objects::{walk, Walk};

/// Function codes (`dnp3.al.func`).
pub mod func {
    /// Confirm.
    pub const CONFIRM: u8 = 0;
    /// Read.
    pub const READ: u8 = 1;
    /// Write.
    pub const WRITE: u8 = 2;
    /// Select.
    pub const SELECT: u8 = 3;
    /// Operate.
    pub const OPERATE: u8 = 4;
    /// Direct Operate.
    pub const DIRECT_OPERATE: u8 = 5;
    /// Direct Operate No Ack.
    pub const DIRECT_OPERATE_NR: u8 = 6;
    /// Response.
    pub const RESPONSE: u8 = 129;
    /// Unsolicited Response.
    pub const UNSOLICITED_RESPONSE: u8 = 130;
    /// Authentication Response.
    pub const AUTH_RESPONSE: u8 = 131;
}

/// tshark's name of an application function code.
#[must_use]
pub fn app_function_name(f: u8) -> &'static str {
    match f {
        0 => "Confirm",
        1 => "Read",
        2 => "Write",
        3 => "Select",
        4 => "Operate",
        5 => "Direct Operate",
        6 => "Direct Operate No Ack",
        7 => "Immediate Freeze",
        8 => "Immediate Freeze No Ack",
        9 => "Freeze and Clear",
        10 => "Freeze and Clear No ACK",
        11 => "Freeze With Time",
        12 => "Freeze With Time No ACK",
        13 => "Cold Restart",
        14 => "Warm Restart",
        15 => "Initialize Data",
        16 => "Initialize Application",
        17 => "Start Application",
        18 => "Stop Application",
        19 => "Save Configuration",
        20 => "Enable Spontaneous Messages",
        21 => "Disable Spontaneous Messages",
        22 => "Assign Classes",
        23 => "Delay Measurement",
        24 => "Record Current Time",
        25 => "Open File",
        26 => "Close File",
        27 => "Delete File",
        28 => "Get File Info",
        29 => "Authenticate File",
        30 => "Abort File",
        31 => "Activate Config",
        32 => "Authentication Request",
        33 => "Authentication Error",
        129 => "Response",
        130 => "Unsolicited Response",
        131 => "Authentication Response",
        _ => "Unknown",
    }
}

/// tshark's name of a control status code (`dnp3.al.ctrlstatus`, the status octet of a CROB or
/// an analog output).
#[must_use]
pub fn control_status_name(s: u8) -> &'static str {
    match s {
        0 => "Req. Accepted/Init/Queued",
        1 => "Req. Not Accepted; Arm-Timer Expired",
        2 => "Req. Not Accepted; No 'SELECT' Received",
        3 => "Req. Not Accepted; Format Err. in Ctl Req.",
        4 => "Ctl Oper. Not Supported For This Point",
        5 => "Req. Not Accepted; Ctrl Queue Full/Point Active",
        6 => "Req. Not Accepted; Ctrl Hardware Problems",
        7 => "Req. Not Accepted; Local/Remote switch in Local",
        8 => "Req. Not Accepted; Too many operations",
        9 => "Req. Not Accepted; Insufficient authorization",
        10 => "Req. Not Accepted; Local automation proc active",
        11 => "Req. Not Accepted; Processing limited",
        12 => "Req. Not Accepted; Out of range value",
        126 => "Req. Not Accepted; Non-participating (NOP request)",
        127 => "Req. Not Accepted; Undefined error",
        _ => "Unknown",
    }
}

/// The IIN bits by name, as one 16-bit value IIN1·IIN2 (IIN1 in the high octet, as tshark's
/// `dnp3.al.iin`), with tshark's field names and words.
pub const IIN_BITS: [(u16, &str, &str); 14] = [
    (0x8000, "rst", "Device Restart"),
    (0x4000, "dt", "Device Trouble"),
    (0x2000, "dol", "Digital Outputs in Local"),
    (0x1000, "tsr", "Time Sync Required"),
    (0x0800, "cls3d", "Class 3 Data Available"),
    (0x0400, "cls2d", "Class 2 Data Available"),
    (0x0200, "cls1d", "Class 1 Data Available"),
    (0x0100, "bmsg", "Broadcast Msg Rx"),
    (0x0020, "cc", "Configuration Corrupt"),
    (0x0010, "oae", "Operation Already Executing"),
    (0x0008, "ebo", "Event Buffer Overflow"),
    (0x0004, "pioor", "Parameters Invalid or Out of Range"),
    (0x0002, "obju", "Requested Objects Unknown"),
    (0x0001, "fcni", "Function Code not implemented"),
];

/// IIN2's error bits: function code not implemented, objects unknown, parameters invalid.
pub const IIN_ERRORS: u16 = 0x0007;

/// Appends the names of the IIN bits set, joined by ", ".
pub fn iin_names(iin: u16, out: &mut String) {
    for (bit, _, name) in IIN_BITS {
        if iin & bit != 0 {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(name);
        }
    }
}

/// The application control octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppControl(pub u8);

impl AppControl {
    /// First fragment of a message.
    #[must_use]
    pub fn fir(self) -> bool {
        self.0 & 0x80 != 0
    }
    /// Final fragment.
    #[must_use]
    pub fn fin(self) -> bool {
        self.0 & 0x40 != 0
    }
    /// The receiver must confirm.
    #[must_use]
    pub fn con(self) -> bool {
        self.0 & 0x20 != 0
    }
    /// Unsolicited (and the confirm of one).
    #[must_use]
    pub fn uns(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// Sequence number 0..=15.
    #[must_use]
    pub fn seq(self) -> u8 {
        self.0 & 0x0F
    }
}

/// An application fragment.
#[derive(Debug, Clone)]
pub struct AppFragment<'a> {
    /// The control octet.
    pub control: AppControl,
    /// The function code.
    pub function: u8,
    /// IIN1·IIN2 (responses only).
    pub iin: Option<u16>,
    /// The object headers.
    pub objects: Walk<'a>,
    /// Why the fragment is malformed (cut short, or its objects are).
    pub malformed: Option<&'static str>,
}

/// Whether objects of function `f` carry data after their headers.
#[must_use]
pub fn carries_data(f: u8) -> bool {
    matches!(f, 2..=6 | 23..=33 | 129..=131)
}

/// Whether `f` is a response function (IIN follows the function code).
#[must_use]
pub fn is_response(f: u8) -> bool {
    matches!(f, 129..=131)
}

/// Parses one application fragment (the transport segments joined).
#[must_use]
pub fn parse_app(b: &[u8]) -> AppFragment<'_> {
    let mut a = AppFragment {
        control: AppControl(b.first().copied().unwrap_or(0)),
        function: b.get(1).copied().unwrap_or(0),
        iin: None,
        objects: Walk::default(),
        malformed: None,
    };
    if b.len() < 2 {
        a.malformed = Some("DNP3 application fragment shorter than its header");
        return a;
    }
    let mut rest = &b[2..];
    if is_response(a.function) {
        if rest.len() < 2 {
            a.malformed = Some("DNP3 response without its IIN octets");
            return a;
        }
        a.iin = Some(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    a.objects = walk(rest, carries_data(a.function));
    a.malformed = a.objects.malformed;
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tsharks() {
        assert_eq!(app_function_name(0), "Confirm");
        assert_eq!(app_function_name(3), "Select");
        assert_eq!(app_function_name(4), "Operate");
        assert_eq!(app_function_name(5), "Direct Operate");
        assert_eq!(app_function_name(6), "Direct Operate No Ack");
        assert_eq!(app_function_name(13), "Cold Restart");
        assert_eq!(app_function_name(20), "Enable Spontaneous Messages");
        assert_eq!(app_function_name(22), "Assign Classes");
        assert_eq!(app_function_name(23), "Delay Measurement");
        assert_eq!(app_function_name(32), "Authentication Request");
        assert_eq!(app_function_name(129), "Response");
        assert_eq!(app_function_name(130), "Unsolicited Response");
        assert_eq!(app_function_name(131), "Authentication Response");
        assert_eq!(app_function_name(99), "Unknown");
        assert_eq!(control_status_name(0), "Req. Accepted/Init/Queued");
        assert_eq!(
            control_status_name(1),
            "Req. Not Accepted; Arm-Timer Expired"
        );
        assert_eq!(
            control_status_name(2),
            "Req. Not Accepted; No 'SELECT' Received"
        );
        assert_eq!(
            control_status_name(4),
            "Ctl Oper. Not Supported For This Point"
        );
        assert_eq!(
            control_status_name(9),
            "Req. Not Accepted; Insufficient authorization"
        );
        assert_eq!(control_status_name(200), "Unknown");
        let mut s = String::new();
        iin_names(0x9006, &mut s);
        assert_eq!(
            s,
            "Device Restart, Time Sync Required, Parameters Invalid or Out of Range, Requested Objects Unknown"
        );
    }

    #[test]
    fn a_response_with_a_crob() {
        // select_operate_and_responses.pcap frame 2's fragment.
        let b = [
            0xc0, 0x81, 0x00, 0x00, 0x0c, 0x01, 0x28, 0x01, 0x00, 0x00, 0x00, 0x03, 0x01, 0x64,
            0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00,
        ];
        let a = parse_app(&b);
        assert_eq!(a.malformed, None);
        assert!(a.control.fir() && a.control.fin() && !a.control.con() && !a.control.uns());
        assert_eq!(a.control.seq(), 0);
        assert_eq!(a.function, 129);
        assert_eq!(a.iin, Some(0));
        assert_eq!(a.objects.headers.len(), 1);
        assert_eq!(
            (a.objects.headers[0].group, a.objects.headers[0].variation),
            (12, 1)
        );
    }

    #[test]
    fn short_fragments_are_malformed() {
        assert!(parse_app(&[]).malformed.is_some());
        assert!(parse_app(&[0xc0]).malformed.is_some());
        assert!(parse_app(&[0xc0, 0x81, 0]).malformed.is_some());
        assert!(parse_app(&[0xc0, 0x00]).malformed.is_none());
    }
}
