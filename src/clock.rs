//! Wall-clock time as plcprobe writes and reads it: RFC 3339 UTC timestamps with milliseconds in
//! every machine output, and durations as a technician types them (`250ms`, `2s`, `10m`).

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
