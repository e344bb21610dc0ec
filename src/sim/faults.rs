//! Fault injection settings for the simulator, parsed from `--fault K=V`:
//! - `delay=200ms` (every reply) or `delay=200ms@0.1` (10% of replies),
//! - `drop=0.1`: never answer 10% of requests,
//! - `exception=0x06@0.05`: answer 5% of requests with exception 0x06,
//! - `disconnect-every=100`: close the connection instead of the 100th reply on it,
//! - `garbage=0.01`: 1% of replies malformed (function code does not match the request),
//! - `crc=0.05` (RTU): 5% of answers with a corrupted CRC,
//! - `silence=0.1` (RTU): 10% of requests never answered (a device that misses frames),
//! - `wrong-unit=0.05` (RTU): 5% of answers carry another unit ID (two devices, one address),
//! - `bad-status=BadSensorFailure@0.2` (OPC UA): 20% of value reads answer that status code,
//! - `session-timeout=2s` (OPC UA): the longest session timeout the server grants (default 60 s),
//!   so a client silent for longer (a laptop asleep, a stopped process) finds its session expired.
//!
//! Over OPC UA, `delay` holds each client message, `drop` closes the connection (the session
//! drops) instead of passing a message on, and `disconnect-every` closes it after N messages.

use std::{str::FromStr as _, time::Duration};

/// All faults of a simulator run (all off by default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Reply delay and the share of replies it applies to.
    pub delay: Option<(Duration, f64)>,
    /// Share of requests never answered.
    pub drop: f64,
    /// Exception code and share of requests answered with it.
    pub exception: Option<(u8, f64)>,
    /// Close the connection instead of every N-th reply on it (0 = never).
    pub disconnect_every: u64,
    /// Share of replies made malformed.
    pub garbage: f64,
    /// RTU: share of answers whose CRC is corrupted.
    pub crc: f64,
    /// RTU: share of requests left unanswered.
    pub silence: f64,
    /// RTU: share of answers sent with another unit ID.
    pub wrong_unit: f64,
    /// OPC UA status code (by value) and the share of value reads answered with it.
    pub bad_status: Option<(u32, f64)>,
    /// OPC UA: the longest session timeout granted (None = the simulator's 60 s).
    pub session_timeout: Option<Duration>,
}

fn probability(key: &str, v: &str) -> anyhow::Result<f64> {
    let p: f64 = v
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--fault {key}={v}: `{v}` is not a probability; use a number from 0 to 1, e.g. {key}=0.1"))?;
    if !(0.0..=1.0).contains(&p) {
        anyhow::bail!("--fault {key}={v}: a probability is from 0 to 1, e.g. {key}=0.1");
    }
    Ok(p)
}

/// Parse one `--fault K=V` into `faults`.
pub fn parse_fault(faults: &mut Faults, text: &str) -> anyhow::Result<()> {
    let Some((key, v)) = text.split_once('=') else {
        anyhow::bail!("--fault `{text}` is not KEY=VALUE; use delay=200ms, drop=0.1, exception=0x06@0.05, disconnect-every=100, garbage=0.01, crc=0.05, silence=0.1, wrong-unit=0.05, bad-status=BadSensorFailure or session-timeout=2s");
    };
    let key = key.trim();
    match key {
        "delay" => {
            let (d, p) = v.split_once('@').unwrap_or((v, "1"));
            let d = humantime::parse_duration(d.trim())
                .map_err(|e| anyhow::anyhow!("--fault delay={v}: `{d}` is not a duration like 200ms: {e}"))?;
            faults.delay = Some((d, probability(key, p)?));
        }
        "drop" => faults.drop = probability(key, v)?,
        "garbage" => faults.garbage = probability(key, v)?,
        "crc" => faults.crc = probability(key, v)?,
        "silence" => faults.silence = probability(key, v)?,
        "wrong-unit" => faults.wrong_unit = probability(key, v)?,
        "exception" => {
            let (c, p) = v.split_once('@').unwrap_or((v, "1"));
            let c = c.trim();
            let code = c
                .strip_prefix("0x")
                .or_else(|| c.strip_prefix("0X"))
                .map_or_else(|| c.parse::<u8>(), |h| u8::from_str_radix(h, 16))
                .ok()
                .filter(|c| (1..0x80).contains(c))
                .ok_or_else(|| anyhow::anyhow!("--fault exception={v}: `{c}` is not an exception code from 0x01 to 0x7F"))?;
            faults.exception = Some((code, probability(key, p)?));
        }
        "disconnect-every" => {
            faults.disconnect_every = v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| anyhow::anyhow!("--fault disconnect-every={v}: give a whole number of requests above 0, e.g. 100"))?;
        }
        "bad-status" => {
            let (c, p) = v.split_once('@').unwrap_or((v, "1"));
            let c = c.trim();
            let code = c
                .strip_prefix("0x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| {
                    opcua::types::SubStatusCode::from_str(c)
                        .ok()
                        .map(|s| opcua::types::StatusCode::from_category(s).bits())
                })
                .filter(|c| c & 0x8000_0000 != 0 || c & 0x4000_0000 != 0)
                .ok_or_else(|| anyhow::anyhow!("--fault bad-status={v}: `{c}` is not a Bad or Uncertain OPC UA status code; use a name like BadSensorFailure or a value like 0x808B0000"))?;
            faults.bad_status = Some((code, probability(key, p)?));
        }
        "session-timeout" => {
            let d = humantime::parse_duration(v.trim())
                .ok()
                .filter(|d| *d >= Duration::from_millis(100))
                .ok_or_else(|| anyhow::anyhow!("--fault session-timeout={v}: give a duration of at least 100ms, e.g. session-timeout=2s"))?;
            faults.session_timeout = Some(d);
        }
        other => anyhow::bail!("--fault: unknown fault `{other}`; use delay, drop, exception, disconnect-every, garbage, crc, silence, wrong-unit, bad-status or session-timeout"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault() {
        let mut f = Faults::default();
        for t in [
            "delay=200ms",
            "drop=0.1",
            "exception=0x06@0.05",
            "disconnect-every=100",
            "garbage=0.01",
            "crc=0.2",
            "silence=0.3",
            "wrong-unit=0.4",
        ] {
            parse_fault(&mut f, t).unwrap();
        }
        assert_eq!(
            f,
            Faults {
                delay: Some((Duration::from_millis(200), 1.0)),
                drop: 0.1,
                exception: Some((6, 0.05)),
                disconnect_every: 100,
                garbage: 0.01,
                crc: 0.2,
                silence: 0.3,
                wrong_unit: 0.4,
                bad_status: None,
                session_timeout: None,
            }
        );
        parse_fault(&mut f, "session-timeout=2s").unwrap();
        assert_eq!(f.session_timeout, Some(Duration::from_secs(2)));
        parse_fault(&mut f, "delay=1s@0.5").unwrap();
        assert_eq!(f.delay, Some((Duration::from_secs(1), 0.5)));
        parse_fault(&mut f, "exception=4").unwrap();
        assert_eq!(f.exception, Some((4, 1.0)));
        parse_fault(&mut f, "bad-status=BadSensorFailure@0.5").unwrap();
        assert_eq!(f.bad_status, Some((0x808C_0000, 0.5)));
        parse_fault(&mut f, "bad-status=0x408F0000").unwrap();
        assert_eq!(f.bad_status, Some((0x408F_0000, 1.0)));
    }

    #[test]
    fn refuses_bad_faults() {
        let mut f = Faults::default();
        for (t, needle) in [
            ("drop", "KEY=VALUE"),
            ("drop=2", "from 0 to 1"),
            ("drop=x", "not a probability"),
            ("delay=fast", "not a duration"),
            ("exception=0x00", "0x01 to 0x7F"),
            ("disconnect-every=0", "above 0"),
            ("melt=1", "unknown fault `melt`"),
            ("bad-status=Good", "not a Bad or Uncertain"),
            ("bad-status=Nope", "not a Bad or Uncertain"),
            ("session-timeout=10ms", "at least 100ms"),
            ("session-timeout=soon", "at least 100ms"),
        ] {
            let e = parse_fault(&mut f, t).unwrap_err().to_string();
            assert!(e.contains(needle), "{t}: {e}");
        }
    }
}
