//! Wall-clock time as plcprobe writes and reads it: RFC 3339 UTC timestamps with milliseconds in
//! every machine output (microseconds for captured packets, formatted without a time library and
//! cached per second, as a capture has millions of them), and durations as a technician types
//! them (`250ms`, `2s`, `10m`).

use std::fmt::Write as _;

/// RFC 3339 UTC timestamp with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Parse `100ms`, `2s`, `1m30s`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs >= 0.0 && secs.is_finite() {
            return Ok(std::time::Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("`{s}` is not a duration like 250ms, 2s or 10m ({e})"))
}

/// RFC 3339 UTC with microseconds, caching the date and time of the last second.
#[derive(Default)]
pub struct UtcMicros {
    sec: i64,
    text: String,
}

impl UtcMicros {
    /// Append the time `ts_ns` (nanoseconds since the Unix epoch) to `out`.
    pub fn write(&mut self, ts_ns: i64, out: &mut String) {
        let sec = ts_ns.div_euclid(1_000_000_000);
        let us = ts_ns.rem_euclid(1_000_000_000) / 1000;
        if self.text.is_empty() || sec != self.sec {
            self.sec = sec;
            self.text.clear();
            let days = sec.div_euclid(86_400);
            let rem = sec.rem_euclid(86_400);
            let (y, mo, d) = civil_from_days(days);
            let _ = write!(
                self.text,
                "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
                rem / 3600,
                rem / 60 % 60,
                rem % 60
            );
        }
        out.push_str(&self.text);
        let _ = write!(out, ".{us:06}Z");
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `ts_ns` (nanoseconds since the Unix epoch) as RFC 3339 UTC with microseconds.
pub fn rfc3339_micros(ts_ns: i64) -> String {
    let mut s = String::new();
    UtcMicros::default().write(ts_ns, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micros(1_352_718_180_264_365_000),
            "2012-11-12T11:03:00.264365Z"
        );
        assert_eq!(
            rfc3339_micros(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        let mut c = UtcMicros::default();
        let mut s = String::new();
        c.write(1_000_000_001_000, &mut s);
        c.write(1_000_000_002_000, &mut s);
        assert_eq!(s, "1970-01-01T00:16:40.000001Z1970-01-01T00:16:40.000002Z");
    }
}
