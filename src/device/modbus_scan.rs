//! Who answers on a Modbus link, and how: unit IDs on any transport, the baud rate and framing
//! of a silent serial bus (an active sweep, or a passive listen), and which register ranges a
//! device answers (`register_scan.rs`). Read-only: the requests sent are reads (FC03 of one
//! register to find who is there), FC43 Read Device Identification and FC17 Report Server ID.
//!
//! - Unit IDs: a one-register read decides presence (data or any exception but 0x0A/0x0B, which
//!   a gateway sends for an absent device); present units are asked FC43 (basic and regular
//!   objects) and FC17, each "not supported" when the device answers an exception. Modbus TCP
//!   gateways are scanned over several connections at once (`concurrency`); a serial bus and an
//!   RTU-over-TCP gateway strictly one request at a time.
//! - Adaptive timeouts: after the first answer, the presence probe waits a few times the
//!   slowest answer seen (plus the line's t3.5 twice and 5 ms), not the full `--timeout`, so a
//!   247-unit bus scan takes seconds. FC43 and FC17 keep the full timeout (long answers).
//! - Serial sweep: each `--baud` × `--frame` in turn, stopping at the first setting where a
//!   unit answers unless `all`. A probe at a wrong setting times out or arrives garbled.
//! - Listen: opens the port at each candidate setting for a share of the time, sends nothing,
//!   and scores the bytes: the share that belongs to CRC-valid frames. A receiver with fewer
//!   bits per character reads a longer framing cleanly (8N1 hears 8E1 traffic), so among clean
//!   settings parity wins over none, and 8N1/8N2 cannot be told apart: said so.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use serde_json::json;

use super::Table;
use crate::{
    outcome::{Fail, Outcome},
    proto::{
        modbus::{
            exception::describe_exception,
            pdu::Direction,
            rtu::{find_frames, Timing},
            AddressRange, Table as ModbusTable,
        },
        sanitize,
    },
    report::Rows,
    target::{parse_frame_text, Parity, Target},
    transport::{
        modbus::{LinkError, ModbusLink},
        rtu::{open_serial, LineSettings, Port, SerialOptions},
    },
};

/// What a scan is asked to do (from `scan`'s flags).
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    /// Unit IDs, e.g. `1-247`.
    pub units: String,
    /// Serial sweep: baud rates (empty: the target's).
    pub bauds: Vec<u32>,
    /// Serial sweep: framings like `8E1` (empty: the target's).
    pub frames: Vec<String>,
    /// Keep sweeping after a setting answers.
    pub all: bool,
    /// Passive listen for this long instead of sending anything.
    pub listen: Option<Duration>,
    /// Also probe which register ranges answer.
    pub registers: bool,
    /// Write a starting profile of the ranges found.
    pub emit_profile: Option<std::path::PathBuf>,
    /// Requests per second while probing registers.
    pub rate: f64,
    /// Connections at once on a Modbus TCP gateway.
    pub concurrency: usize,
    /// Show absent units too.
    pub verbose: bool,
}

/// One unit's findings.
#[derive(Debug, Clone)]
pub struct UnitFinding {
    /// Unit ID.
    pub unit: u8,
    /// Answered the presence probe (data or an exception other than a gateway's 0x0A/0x0B).
    pub present: bool,
    /// What the presence probe got.
    pub answer: String,
    /// FC43 objects, or why not.
    pub identity: String,
    /// FC17 server ID, or why not.
    pub server_id: String,
    /// Presence probe round trip (present units only).
    pub rtt: Option<Duration>,
}

/// Unit IDs to scan: `1-10`, `1,2,5`; 248–255 are reserved by the Modbus spec.
pub fn scan_units(text: &str) -> anyhow::Result<Vec<u8>> {
    let v = crate::target::parse_units(text)?;
    if v.last().is_some_and(|&u| u > 247) {
        return Err(Fail::unknown(format!(
            "--units {text}: give unit IDs from 0 to 247 like 1-10 or 1,2,5"
        ))
        .into());
    }
    Ok(v)
}

/// The presence timeout after answers were seen: eight times the slowest answer, plus twice
/// t3.5 and 5 ms, bounded by `full`. A device much slower than the first ones shows as absent:
/// the scan's note says so and how to scan it alone.
fn adaptive(full: Duration, slowest: Option<Duration>, t35: Duration) -> Duration {
    slowest.map_or(full, |s| {
        (s * 8 + t35 * 2 + Duration::from_millis(5)).min(full)
    })
}

/// Probe one unit on `link` (already pointed at it). `probe_timeout` bounds the presence read.
async fn probe_unit(
    link: &mut ModbusLink,
    unit: u8,
    probe_timeout: Duration,
    full: Duration,
) -> Result<UnitFinding, LinkError> {
    link.set_unit(unit);
    link.set_timeout(probe_timeout);
    let t0 = Instant::now();
    let r = link
        .read_chunk(AddressRange::new(ModbusTable::HoldingRegister, 0, 1))
        .await;
    let rtt = link.last_rtu_rtt().unwrap_or_else(|| t0.elapsed());
    link.set_timeout(full);
    let mut f = UnitFinding {
        unit,
        present: false,
        answer: String::new(),
        identity: String::new(),
        server_id: String::new(),
        rtt: None,
    };
    match r {
        Err(e @ LinkError::Connect(_)) => return Err(e),
        Err(e) => {
            f.answer = e.kind().name().to_string();
            return Ok(f);
        }
        Ok(Err(code @ (0x0A | 0x0B))) => {
            f.answer = describe_exception(code);
            return Ok(f);
        }
        Ok(Err(code)) => f.answer = describe_exception(code),
        Ok(Ok(_)) => f.answer = "hr:0 read".to_string(),
    }
    f.present = true;
    f.rtt = Some(rtt);
    f.identity = match link.read_identity().await {
        Ok(Ok(objs)) if !objs.is_empty() => objs
            .iter()
            .map(|(_, v)| sanitize(v))
            .collect::<Vec<_>>()
            .join(" / "),
        Ok(Ok(_)) => "none".to_string(),
        Ok(Err(code)) => format!("not supported ({})", describe_exception(code)),
        Err(e) => format!("no answer ({})", e.kind().name()),
    };
    f.server_id = match link.report_server_id().await {
        Ok(Ok(bytes)) => server_id_text(&bytes),
        Ok(Err(code)) => format!("not supported ({})", describe_exception(code)),
        Err(e) => format!("no answer ({})", e.kind().name()),
    };
    Ok(f)
}

/// FC17's answer (server ID, run indicator, device-specific data) for people: printable text
/// as text, the rest in hex.
pub fn server_id_text(b: &[u8]) -> String {
    let text = |d: &[u8]| {
        let printable = d
            .iter()
            .filter(|c| c.is_ascii_graphic() || **c == b' ')
            .count();
        (d.len() > 2 && printable * 4 >= d.len() * 3).then(|| sanitize(&String::from_utf8_lossy(d)))
    };
    // The spec's layout: a one-byte server ID, run indicator 0x00/0xFF, then the data.
    if b.len() > 2 && matches!(b[1], 0x00 | 0xFF) {
        if let Some(t) = text(&b[2..]) {
            let run = if b[1] == 0xFF { "on" } else { "off" };
            return format!("{t} (id {}, run {run})", b[0]);
        }
    }
    // Some servers (pymodbus) send the text first and the run indicator last.
    if let Some((&last @ (0x00 | 0xFF), head)) = b.split_last() {
        if let Some(t) = text(head) {
            let run = if last == 0xFF { "on" } else { "off" };
            return format!("{t} (run {run})");
        }
    }
    text(b).unwrap_or_else(|| {
        b.iter()
            .map(|x| format!("{x:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// Scan `units` over one link at a time (serial, RTU over TCP): adaptive timeouts.
async fn scan_sequential(
    link: &mut ModbusLink,
    units: &[u8],
    t35: Duration,
    pb: &indicatif::ProgressBar,
) -> Result<Vec<UnitFinding>, LinkError> {
    let full = link.timeout();
    let mut slowest: Option<Duration> = None;
    let mut out = Vec::with_capacity(units.len());
    for &u in units {
        let f = probe_unit(link, u, adaptive(full, slowest, t35), full).await?;
        slowest = slowest.max(f.rtt);
        pb.inc(1);
        out.push(f);
    }
    link.set_timeout(full);
    Ok(out)
}

/// Scan `units` behind a Modbus TCP address over `concurrency` connections.
async fn scan_tcp(
    target: &Target,
    units: &[u8],
    timeout: Duration,
    concurrency: usize,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<UnitFinding>> {
    let k = concurrency.clamp(1, 32).min(units.len().max(1));
    let mut lanes: Vec<Vec<u8>> = vec![Vec::new(); k];
    for (i, u) in units.iter().enumerate() {
        lanes[i % k].push(*u);
    }
    let mut jobs = Vec::with_capacity(k);
    for lane in lanes {
        let mut link = ModbusLink::new(target, timeout, SerialOptions::default())?;
        jobs.push(async move { scan_sequential(&mut link, &lane, Duration::ZERO, pb).await });
    }
    let mut all = Vec::with_capacity(units.len());
    for r in futures_util::future::join_all(jobs).await {
        match r {
            Ok(v) => all.extend(v),
            Err(e) => return Err(Fail::critical(format!("{target}: {e}")).into()),
        }
    }
    all.sort_by_key(|f| f.unit);
    Ok(all)
}

fn with_line(target: &Target, line: LineSettings) -> Target {
    match target {
        Target::Rtu { path, unit, .. } => Target::Rtu {
            path: path.clone(),
            baud: line.baud,
            data_bits: line.data_bits,
            parity: line.parity,
            stop_bits: line.stop_bits,
            unit: *unit,
        },
        t => t.clone(),
    }
}

/// The settings a sweep or a listen tries: every baud × frame given, the target's own when none.
pub fn candidates(
    target: &Target,
    bauds: &[u32],
    frames: &[String],
) -> anyhow::Result<Vec<LineSettings>> {
    let Some((_, own)) = LineSettings::of(target) else {
        anyhow::bail!("--baud, --frame and --listen apply to a serial target (rtu:///dev/ttyUSB0)");
    };
    let bauds = if bauds.is_empty() {
        vec![own.baud]
    } else {
        bauds.to_vec()
    };
    let mut framings = Vec::new();
    if frames.is_empty() {
        framings.push((own.data_bits, own.parity, own.stop_bits));
    }
    for f in frames {
        framings.push(parse_frame_text(f).ok_or_else(|| {
            Fail::unknown(format!(
                "--frame {f}: not data bits, parity and stop bits like 8E1, 8N1, 8N2 or 8O1"
            ))
        })?);
    }
    let mut out = Vec::new();
    for &baud in &bauds {
        if baud == 0 {
            return Err(Fail::unknown("--baud 0: give baud rates like 9600,19200").into());
        }
        for &(data_bits, parity, stop_bits) in &framings {
            out.push(LineSettings {
                baud,
                data_bits,
                parity,
                stop_bits,
            });
        }
    }
    Ok(out)
}

/// Rows of a unit scan: `setting` first when a sweep ran.
fn unit_rows(found: &[(Option<LineSettings>, UnitFinding)], verbose: bool) -> Rows {
    let sweep = found.iter().any(|(s, _)| s.is_some());
    let mut cols = vec!["unit", "present", "answer", "identity", "server_id", "ms"];
    if sweep {
        cols.insert(0, "setting");
    }
    let mut rows = Rows::new(&cols);
    for (s, f) in found {
        if !(f.present || verbose) {
            continue;
        }
        let mut row = Vec::with_capacity(cols.len());
        if let Some(s) = s {
            row.push(json!(s.text()));
        } else if sweep {
            row.push(json!(null));
        }
        row.extend([
            json!(f.unit),
            json!(f.present),
            json!(f.answer),
            json!(f.identity),
            json!(f.server_id),
            json!(f.rtt.map(|d| (d.as_secs_f64() * 1e5).round() / 100.0)),
        ]);
        rows.push(row);
    }
    rows
}

/// The sweep's probe timeout at a setting: the user's, but at most 200 ms plus twice the wire
/// time of a presence probe and its answer (15 bytes) at that baud.
fn sweep_timeout(full: Duration, line: LineSettings) -> Duration {
    let t = line.timing();
    full.min(Duration::from_millis(200) + t.wire(15) * 2 + t.t35 * 2)
}

/// A serial sweep: `units` at each setting in turn over the port `open` gives (a real serial
/// port; a modelled line in tests), stopping at the first setting where a unit answers unless
/// `all` (that setting is returned).
#[allow(clippy::too_many_arguments)]
pub async fn sweep_with<F>(
    target: &Target,
    settings: &[LineSettings],
    units: &[u8],
    timeout: Duration,
    serial: SerialOptions,
    all: bool,
    pb: &indicatif::ProgressBar,
    mut open: F,
) -> anyhow::Result<(
    Vec<(Option<LineSettings>, UnitFinding)>,
    Option<LineSettings>,
)>
where
    F: FnMut(LineSettings) -> anyhow::Result<Box<dyn Port>>,
{
    pb.set_length((settings.len() * units.len()) as u64);
    let mut found = Vec::new();
    for &line in settings {
        let t = with_line(target, line);
        let port = open(line)?;
        let mut l = ModbusLink::over_port(
            &t,
            sweep_timeout(timeout, line),
            port,
            line.timing(),
            serial,
        )?;
        let v = scan_sequential(&mut l, units, line.timing().t35, pb)
            .await
            .map_err(|e| Fail::unknown(format!("{t}: {e}")))?;
        let any = v.iter().any(|f| f.present);
        found.extend(v.into_iter().map(|f| (Some(line), f)));
        if any && !all {
            return Ok((found, Some(line)));
        }
    }
    Ok((found, None))
}

/// Scan a Modbus target: unit IDs, with a serial sweep when asked. The link's own settings
/// (timeout, serial options) apply.
pub async fn scan(
    link: &mut ModbusLink,
    serial: SerialOptions,
    req: &ScanRequest,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<Table> {
    let units = scan_units(&req.units)?;
    let target = link.target().clone();
    let timeout = link.timeout();
    let mut notes = Vec::new();
    let mut found: Vec<(Option<LineSettings>, UnitFinding)> = Vec::new();
    match &target {
        Target::ModbusTcp { .. } => {
            pb.set_length(units.len() as u64);
            let v = scan_tcp(&target, &units, timeout, req.concurrency, pb).await?;
            found.extend(v.into_iter().map(|f| (None, f)));
        }
        Target::Rtu { .. } if !(req.bauds.is_empty() && req.frames.is_empty()) => {
            let settings = candidates(&target, &req.bauds, &req.frames)?;
            let path = LineSettings::of(&target)
                .map(|(p, _)| p.to_string())
                .unwrap_or_default();
            let (v, n) = sweep_with(
                &target,
                &settings,
                &units,
                timeout,
                serial,
                req.all,
                pb,
                |line| {
                    open_serial(&path, line)
                        .map(|p| Box::new(p) as Box<dyn Port>)
                        .map_err(|e| Fail::unknown(e).into())
                },
            )
            .await?;
            if let Some(line) = n {
                notes.push(format!(
                    "{}: units answer; stopped here (--all tries every setting)",
                    line.text()
                ));
            }
            found.extend(v);
        }
        Target::OpcUa { .. } => unreachable!("a Modbus link"),
        // RTU over TCP, or a serial bus at the target's own setting: one request at a time.
        Target::RtuOverTcp { .. } | Target::Rtu { .. } => {
            pb.set_length(units.len() as u64);
            let v = scan_sequential(link, &units, timing_of(&target).t35, pb)
                .await
                .map_err(|e| {
                    // A gateway that cannot be reached is a device problem; a serial port
                    // that cannot be opened, a problem with the command.
                    let why = format!("{target}: {e}");
                    if matches!(target, Target::Rtu { .. }) {
                        Fail::unknown(why)
                    } else {
                        Fail::critical(why)
                    }
                })?;
            found.extend(v.into_iter().map(|f| (None, f)));
        }
    }
    let present = found.iter().filter(|(_, f)| f.present).count();
    let slowest = found.iter().filter_map(|(_, f)| f.rtt).max();
    let absent = found.iter().filter(|(_, f)| !f.present).count();
    if let (Some(slowest), true) = (slowest, absent > 0) {
        let given = adaptive(timeout, Some(slowest), timing_of(&target).t35);
        if given < timeout {
            notes.push(format!(
                "after the first answer, units were given {} to answer (8 x the slowest answer, {:.1} ms) instead of --timeout {}: a device slower than that shows as absent; scan it alone (--units N) to give it the full timeout",
                humantime::format_duration(Duration::from_millis(given.as_millis() as u64)),
                slowest.as_secs_f64() * 1000.0,
                humantime::format_duration(timeout)
            ));
        }
    }
    let outcome = if present > 0 {
        Outcome::Ok
    } else {
        Outcome::Critical
    };
    let mut problems = Vec::new();
    if present == 0 {
        problems.push(format!(
            "{target}: no unit answered among {}{}",
            req.units,
            if matches!(target, Target::Rtu { .. }) {
                "; check the wiring (A/B swapped?), the baud rate and framing (scan --baud 9600,19200,38400,115200 --frame 8E1,8N1,8N2,8O1), or listen first (scan --listen 10s)"
            } else {
                ""
            }
        ));
    }
    Ok(Table {
        notes,
        rows: unit_rows(&found, req.verbose),
        outcome,
        problems,
    })
}

/// How one setting fared while listening.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineScore {
    /// Bytes received.
    pub bytes: usize,
    /// CRC-valid frames.
    pub frames: usize,
    /// Bytes inside CRC-valid frames.
    pub framed_bytes: usize,
    /// Requests seen per unit: unit → function codes.
    pub polled: BTreeMap<u8, BTreeSet<u8>>,
    /// Answers seen per unit.
    pub answers: BTreeMap<u8, usize>,
}

impl LineScore {
    /// Share of the bytes that make CRC-valid frames (0 when nothing arrived).
    pub fn share(&self) -> f64 {
        if self.bytes == 0 {
            0.0
        } else {
            self.framed_bytes as f64 / self.bytes as f64
        }
    }
}

/// Score bytes read at one setting: which of them make CRC-valid RTU frames, and who is polled.
pub fn score_bytes(b: &[u8]) -> LineScore {
    let mut s = LineScore {
        bytes: b.len(),
        ..LineScore::default()
    };
    for f in find_frames(b) {
        s.frames += 1;
        s.framed_bytes += f.len;
        let unit = b[f.start];
        let fc = b[f.start + 1];
        match f.dir {
            Direction::Query => {
                s.polled.entry(unit).or_default().insert(fc);
            }
            Direction::Response => *s.answers.entry(unit).or_default() += 1,
        }
    }
    s
}

/// The setting a listen concludes, if any: the best share of framed bytes (at least 3 frames and
/// 90% of the bytes), preferring parity over none among settings within 5% of the best (a
/// receiver without parity hears a parity framing cleanly; the reverse is not true).
pub fn best_setting(scores: &[(LineSettings, LineScore)]) -> Option<usize> {
    let top = scores
        .iter()
        .filter(|(_, s)| s.frames >= 3)
        .map(|(_, s)| s.share())
        .fold(0.0f64, f64::max);
    if top < 0.9 {
        return None;
    }
    let near: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i].1.frames >= 3 && scores[i].1.share() >= top - 0.05)
        .collect();
    near.iter().copied().max_by_key(|&i| {
        let l = scores[i].0;
        (l.parity != Parity::None, l.stop_bits, scores[i].1.frames)
    })
}

/// Listen to the bus at each setting for a share of `total`, reading only. `open` gives a port
/// configured at a setting (a real serial port; a modelled line in tests).
pub async fn listen_with<F>(
    settings: &[LineSettings],
    total: Duration,
    mut open: F,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<(LineSettings, LineScore)>>
where
    F: FnMut(LineSettings) -> anyhow::Result<Box<dyn Port>>,
{
    use tokio::io::AsyncReadExt as _;
    let slice = (total / settings.len().max(1) as u32).max(Duration::from_millis(200));
    pb.set_length(settings.len() as u64);
    let mut out = Vec::with_capacity(settings.len());
    for &line in settings {
        let mut port = open(line)?;
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 512];
        let until = tokio::time::Instant::now() + slice;
        // A frame cut at the start of the window is lost; the rest is scored.
        while let Ok(Ok(n)) = tokio::time::timeout_at(until, port.read(&mut chunk)).await {
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        drop(port);
        pb.inc(1);
        out.push((line, score_bytes(&bytes)));
    }
    Ok(out)
}

/// `scan --listen`: the table of settings and what the bus's master polls at the best one.
pub async fn listen(
    target: &Target,
    req: &ScanRequest,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<Table> {
    let Some((path, _)) = LineSettings::of(target) else {
        anyhow::bail!("--listen reads a serial line: give an rtu:///dev/ttyUSB0 target");
    };
    let bauds = if req.bauds.is_empty() {
        vec![9600, 19200, 38400, 57600, 115_200]
    } else {
        req.bauds.clone()
    };
    let frames = if req.frames.is_empty() {
        ["8E1", "8O1", "8N1", "8N2"].map(String::from).to_vec()
    } else {
        req.frames.clone()
    };
    let settings = candidates(target, &bauds, &frames)?;
    let total = req.listen.unwrap_or(Duration::from_secs(10));
    let scores = listen_with(
        &settings,
        total,
        |line| {
            open_serial(path, line)
                .map(|p| Box::new(p) as Box<dyn Port>)
                .map_err(|e| Fail::unknown(e).into())
        },
        pb,
    )
    .await?;
    Ok(listen_table(&scores))
}

/// The listen result as rows: one per setting, then the verdict in notes.
pub fn listen_table(scores: &[(LineSettings, LineScore)]) -> Table {
    let best = best_setting(scores);
    let mut rows = Rows::new(&[
        "setting",
        "bytes",
        "frames",
        "valid",
        "units_polled",
        "best",
    ]);
    for (i, (l, s)) in scores.iter().enumerate() {
        let units: Vec<String> = s
            .polled
            .iter()
            .map(|(u, fcs)| {
                let f: Vec<String> = fcs.iter().map(u8::to_string).collect();
                format!("{u} (FC {})", f.join(","))
            })
            .collect();
        rows.push(vec![
            json!(l.text()),
            json!(s.bytes),
            json!(s.frames),
            json!((s.share() * 1000.0).round() / 10.0),
            json!(units.join(" ")),
            json!(best == Some(i)),
        ]);
    }
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    let outcome = if let Some(i) = best {
        let (l, s) = &scores[i];
        let mut say = format!(
            "the bus runs at {} ({} CRC-valid frames, {:.0}% of the bytes)",
            l.text(),
            s.frames,
            s.share() * 100.0
        );
        if l.parity == Parity::None {
            say.push_str("; a receiver cannot tell 1 stop bit from 2: 8N1 or 8N2");
        }
        notes.push(say);
        if !s.polled.is_empty() {
            let u: Vec<String> = s.polled.keys().map(u8::to_string).collect();
            notes.push(format!("the master polls unit(s) {}", u.join(", ")));
        }
        Outcome::Ok
    } else {
        let heard: usize = scores.iter().map(|(_, s)| s.bytes).sum();
        problems.push(if heard == 0 {
            "nothing was heard on the line: no master is polling, or the adapter is not on the bus (wiring, A/B swapped)".to_string()
        } else {
            "bytes were heard but no setting tried makes clean Modbus RTU frames: try other --baud/--frame values, or listen longer".to_string()
        });
        Outcome::Critical
    };
    Table {
        notes,
        rows,
        outcome,
        problems,
    }
}

/// The timing of a line, for callers that only have a target.
pub fn timing_of(target: &Target) -> Timing {
    LineSettings::of(target).map_or(
        Timing {
            char_time: Duration::ZERO,
            t35: Duration::ZERO,
        },
        |(_, l)| l.timing(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::modbus::rtu::{adu, encode_request, encode_response};
    use tokio_modbus::{Request, Response};

    fn line(baud: u32, f: &str) -> LineSettings {
        let (data_bits, parity, stop_bits) = parse_frame_text(f).unwrap();
        LineSettings {
            baud,
            data_bits,
            parity,
            stop_bits,
        }
    }

    #[test]
    fn scores_and_the_best_setting() {
        let mut b = Vec::new();
        for u in [3u8, 7] {
            b.extend(adu(
                u,
                &encode_request(&Request::ReadHoldingRegisters(0, 2)),
            ));
            b.extend(adu(
                u,
                &encode_response(&Response::ReadHoldingRegisters(vec![1, 2])),
            ));
        }
        let s = score_bytes(&b);
        assert_eq!((s.frames, s.share()), (4, 1.0));
        assert_eq!(s.polled.keys().copied().collect::<Vec<_>>(), vec![3, 7]);
        let garbage = score_bytes(&[0u8, 0x55, 0xAA, 3, 9, 0xFF, 0x10]);
        assert_eq!(garbage.frames, 0);
        let scores = vec![
            (line(19200, "8N1"), s.clone()),
            (line(19200, "8E1"), s.clone()),
            (line(9600, "8E1"), garbage),
        ];
        assert_eq!(best_setting(&scores), Some(1), "parity wins a tie");
        assert_eq!(best_setting(&scores[2..]), None);
    }

    #[test]
    fn unit_lists() {
        assert_eq!(scan_units("1-3,7").unwrap(), vec![1, 2, 3, 7]);
        assert!(scan_units("5-1").is_err());
        assert!(scan_units("250").is_err());
    }

    #[test]
    fn adaptive_timeouts_shrink_after_an_answer() {
        let full = Duration::from_secs(1);
        assert_eq!(adaptive(full, None, Duration::ZERO), full);
        assert_eq!(
            adaptive(
                full,
                Some(Duration::from_millis(2)),
                Duration::from_millis(2)
            ),
            Duration::from_millis(25)
        );
        assert_eq!(
            adaptive(full, Some(Duration::from_secs(1)), Duration::ZERO),
            full
        );
    }

    #[test]
    fn server_ids_read_as_text_or_hex() {
        assert_eq!(
            server_id_text(b"\x01\xFFPLC-5 v2"),
            "PLC-5 v2 (id 1, run on)"
        );
        assert_eq!(server_id_text(b"PYMODBUS"), "PYMODBUS");
        assert_eq!(server_id_text(b"Pymodbus\xFF"), "Pymodbus (run on)");
        assert_eq!(server_id_text(&[1, 0xFF]), "01 FF");
    }
}
