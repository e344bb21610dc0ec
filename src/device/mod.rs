//! The device layer: one [`Device`] per target, whatever protocol it speaks.
//!
//! A command gets a device from a target with [`Device::new`], the one place in plcprobe where a
//! target's scheme is looked at. It then says what to read (a profile's points, addresses or
//! nodes from the command line, or a baseline's own points) and reads it in as few requests as
//! the device allows: once ([`Device::take_snapshot`], a `read`), or round after round with link
//! statistics ([`Device::round`], for `poll` and `check`). A device also reads its identity,
//! writes with read-back, and scans for who answers.
//!
//! Each protocol implements the same operations in its own file: [`modbus`] (Modbus TCP over
//! `transport::modbus`) and [`opcua`] (OPC UA over `transport::opcua`). A new transport is a new
//! file here, a variant of [`Device`], and its grammar in `target.rs`; the commands do not change.
//!
//! Failures, from the outside in: bad usage (a point this kind of device cannot read, a value
//! that does not encode) is an `anyhow` error naming what to give instead; a device that cannot
//! be reached at all is [`Unreachable`], a verdict for the caller to name; a request that fails
//! is a value in its round ([`ItemError`], [`RequestOutcome`]), never an early return, so one bad
//! request or device never stops the others.

pub mod modbus;
pub mod modbus_scan;
pub mod opcua;
pub mod read_plan;
pub mod register_scan;
pub mod stats;

pub use modbus_scan::ScanRequest;

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde_json::Value as Json;

use crate::{
    outcome::Outcome,
    profile::Profile,
    proto::modbus::{exception::describe_exception, value::Value, DataType, WordOrder},
    report::Rows,
    snapshot::{ProfileRef, SnapPoint, Snapshot, FORMAT},
    target::Target,
    transport::modbus::ErrorKind,
};

/// How every device is opened: the global `--timeout` and the OPC UA session flags, resolved
/// once from the command line (no clap type reaches this layer).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Bound of every connect and request.
    pub timeout: Duration,
    /// Serial adapter driving (echo, RTS) for rtu:// targets.
    pub serial: crate::transport::rtu::SerialOptions,
    /// OPC UA security, identity and trust.
    pub ua: opcua::UaSettings,
}

/// A device's identity as snapshots record it (FC43 objects, OPC UA `BuildInfo`) by name, and
/// "ok" or why it is not available.
pub type Identity = (Option<BTreeMap<String, String>>, String);

/// Why a device could not be read at all (nothing answered): the reason, without the device's
/// name, which the caller adds.
#[derive(Debug)]
pub struct Unreachable(pub String);

/// Why one item has no value.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemError {
    /// Modbus exception code.
    Exception(u8),
    /// Link failure: kind and message.
    Link(ErrorKind, String),
    /// The registers arrived but do not decode as the type (e.g. invalid BCD).
    Decode(String),
    /// OPC UA: a Bad status code (by name) or a node that does not resolve.
    Status(String),
}

impl ItemError {
    /// Text for the status column.
    pub fn status(&self) -> String {
        match self {
            ItemError::Exception(c) => describe_exception(*c),
            ItemError::Link(k, _) => k.name().to_string(),
            ItemError::Decode(m) => format!("decode error: {m}"),
            ItemError::Status(s) => s.clone(),
        }
    }
}

/// One item's result.
#[derive(Debug, Clone)]
pub struct ItemResult {
    /// Raw words (registers) or bits as 0/1.
    pub raw: Vec<u16>,
    /// Decoded (and scaled) value, or why not.
    pub value: Result<Value, ItemError>,
}

/// One request's outcome, for statistics.
#[derive(Debug, Clone)]
pub struct RequestOutcome {
    /// Round-trip time (also for failures: time until the failure was known).
    pub rtt: Duration,
    /// `None` answered; `Some(Ok(code))` exception; `Some(Err(kind))` link error.
    pub error: Option<Result<u8, ErrorKind>>,
    /// The link could not even connect (the poll backs off).
    pub connect_failed: bool,
}

/// Split a command line's positional items into targets and what to read from them (addresses
/// or nodes). A Modbus address never holds '/' or three dots, so such an item is a target (or a
/// target missing its scheme, which the target error explains); after an `opc.tcp://` target
/// everything is a node, as browse paths hold '/'.
pub fn split_items(items: &[String]) -> anyhow::Result<(Vec<Target>, Vec<String>)> {
    if let Some(first) = items.first().filter(|t| t.starts_with("opc.tcp://")) {
        return Ok((vec![first.parse()?], items[1..].to_vec()));
    }
    let mut targets = Vec::new();
    let mut addrs = Vec::new();
    for it in items {
        if it.contains('/') || it.split('.').count() == 4 {
            targets.push(it.parse::<Target>()?);
        } else {
            addrs.push(it.clone());
        }
    }
    Ok((targets, addrs))
}

/// A value a device reads, as a column or a report names it.
#[derive(Debug, Clone)]
pub struct PointLabel {
    /// Point name, or the address as given.
    pub label: String,
    /// `hr:100` or `ns=2;s=Line1.Speed`.
    pub address: String,
    /// Engineering unit.
    pub unit: String,
}

/// A guarded write: what and where, as the user typed them.
#[derive(Debug, Clone)]
pub struct WriteRequest<'a> {
    /// Address (`hr:100`, `co:3`) or node.
    pub address: &'a str,
    /// Value text; several comma-separated for a range of registers or coils.
    pub value: &'a str,
    /// `--allow-write` was given: without it nothing is sent.
    pub allow: bool,
    /// Modbus: FC15/FC16 even for one value.
    pub fc16: bool,
    /// Modbus: the value's type (`--type`).
    pub ty: Option<DataType>,
    /// Modbus: word order (`--order`).
    pub order: Option<WordOrder>,
}

/// The refusal of a write without `--allow-write`: exit 3, nothing sent.
fn refuse_write(target: &Target, what: &dyn std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "write changes a live device ({target}, {what}); nothing was sent. Add --allow-write to confirm, after checking that the machine is in a safe state"
    )
}

/// Rows a device produced (a write's before/after, a scan's findings) and their verdict.
pub struct Table {
    /// Lines to show above the rows in a table (e.g. the servers a discovery lists).
    pub notes: Vec<String>,
    /// The rows.
    pub rows: Rows,
    /// Verdict.
    pub outcome: Outcome,
    /// Problems to tell on stderr after the rows.
    pub problems: Vec<String>,
}

impl Table {
    /// `rows` and their verdict, with no notes.
    fn new(rows: Rows, outcome: Outcome, problems: Vec<String>) -> Table {
        Table {
            notes: vec![],
            rows,
            outcome,
            problems,
        }
    }
}

/// One device, whatever it speaks. Built by [`Device::new`]; each variant lives in its own file.
pub enum Device {
    /// Modbus TCP (boxed like the others: a device lives as long as the command).
    Modbus(Box<modbus::ModbusDevice>),
    /// OPC UA (boxed: a session is much larger than a Modbus link).
    OpcUa(Box<opcua::UaDevice>),
}

/// Call the same method on whichever protocol the device speaks.
macro_rules! each {
    ($self:expr, $d:ident => $e:expr) => {
        match $self {
            Device::Modbus($d) => $e,
            Device::OpcUa($d) => $e,
        }
    };
}

impl Device {
    /// The device behind `target`; nothing is sent yet. A scheme this build cannot speak is
    /// refused here, before any traffic.
    pub fn new(target: &Target, settings: &Settings) -> anyhow::Result<Device> {
        Ok(match target {
            Target::OpcUa { .. } => Device::OpcUa(Box::new(opcua::UaDevice::new(target, settings))),
            _ => Device::Modbus(Box::new(modbus::ModbusDevice::new(target, settings)?)),
        })
    }

    /// The target it was built from.
    pub fn target(&self) -> &Target {
        each!(self, d => d.target())
    }

    /// Read the points of `profile` that this kind of device has (Modbus: points with an
    /// `address`; OPC UA: points with a `node`); none is an error that says what `verb` needs.
    pub fn select_profile(&mut self, profile: &Profile, verb: &str) -> anyhow::Result<()> {
        each!(self, d => d.select_profile(profile, verb))
    }

    /// Read what the command line names: Modbus addresses (decoded as `ty` in `order`), or
    /// OPC UA nodes.
    pub fn select_items(
        &mut self,
        items: &[String],
        ty: Option<DataType>,
        order: Option<WordOrder>,
    ) -> anyhow::Result<()> {
        match self {
            Device::Modbus(d) => d.select_items(items, ty, order),
            Device::OpcUa(_) if ty.is_some() || order.is_some() => anyhow::bail!(
                "--type and --order are for Modbus registers; OPC UA values carry their own type"
            ),
            Device::OpcUa(d) => d.select_nodes(items),
        }
    }

    /// Read the points of a baseline (`source` names it in errors), as `diff` of a live device.
    pub fn select_baseline(&mut self, baseline: &Snapshot, source: &Path) -> anyhow::Result<()> {
        each!(self, d => d.select_baseline(baseline, source))
    }

    /// The values selected, in output order.
    pub fn points(&self) -> Vec<PointLabel> {
        each!(self, d => d.points())
    }

    /// The selected points as snapshots record them (their names, ranges, tolerances…); empty
    /// for Modbus addresses from the command line.
    pub fn specs(&self) -> &[SnapPoint] {
        each!(self, d => &d.specs)
    }

    /// True when the points are a profile's (named, with units).
    pub fn named(&self) -> bool {
        each!(self, d => d.named())
    }

    /// Requests one round sends.
    pub fn requests_per_round(&self) -> usize {
        each!(self, d => d.requests_per_round())
    }

    /// Send at most one request per `gap` to the device, identity reads included (`check`'s
    /// `rate`); the pause is not part of any round trip.
    pub fn set_pace(&mut self, gap: std::time::Duration) {
        each!(self, d => d.set_pace(gap));
    }

    /// Connect (OPC UA: open the session and resolve the nodes; Modbus connects on the first
    /// request). `reconnect`: keep reconnecting after a loss, as a poll does.
    pub async fn open(&mut self, reconnect: bool) -> anyhow::Result<Result<(), Unreachable>> {
        each!(self, d => d.open(reconnect).await)
    }

    /// The device's identity (Modbus FC43, OPC UA `BuildInfo`); `Unreachable` when nothing
    /// answers.
    pub async fn identity(&mut self) -> Result<Identity, Unreachable> {
        each!(self, d => d.identity().await)
    }

    /// One round: every selected point read, in as few requests as the device allows. A failed
    /// request is part of the round, not an error.
    pub async fn round(&mut self) {
        each!(self, d => d.round().await);
    }

    /// Timing and error of each request of the last round.
    pub fn outcomes(&self) -> &[RequestOutcome] {
        each!(self, d => d.outcomes())
    }

    /// Why each request of the last round failed (`None` if it did not), one per outcome.
    pub fn request_errors(&self) -> Vec<Option<String>> {
        each!(self, d => d.request_errors())
    }

    /// The full messages of the last round's link failures.
    pub fn failures(&self) -> Vec<String> {
        each!(self, d => d.failures())
    }

    /// The last round's first failure (link error, exception or bad status).
    pub fn first_error(&self) -> Option<String> {
        self.request_errors().into_iter().flatten().next()
    }

    /// The last round's values, one per point.
    pub fn results(&self) -> Vec<ItemResult> {
        each!(self, d => d.results())
    }

    /// Connections made so far, reconnections included.
    pub fn connects(&mut self) -> u64 {
        each!(self, d => d.connects())
    }

    /// A snapshot of `results` (one per selected point): each point as selected, with its raw
    /// words, value and status (OPC UA: and the data type last read).
    pub fn snapshot(
        &self,
        results: &[ItemResult],
        identity: Identity,
        profile: ProfileRef,
        taken_at: String,
    ) -> Snapshot {
        let points = self
            .specs()
            .iter()
            .zip(results)
            .map(|(spec, r)| {
                let mut p = spec.clone();
                p.raw.clone_from(&r.raw);
                p.value = r.value.as_ref().map_or(Json::Null, |v| {
                    serde_json::to_value(v).unwrap_or(Json::Null)
                });
                p.status = match &r.value {
                    Ok(_) => "ok".into(),
                    Err(e) => e.status().into(),
                };
                p
            })
            .collect();
        let mut snapshot = Snapshot {
            format: FORMAT.into(),
            taken_at,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            target: self.target().url(),
            identity: identity.0,
            identity_status: identity.1,
            profile,
            points,
        };
        if let Device::OpcUa(d) = self {
            d.retype(&mut snapshot.points);
        }
        snapshot
    }

    /// Open, read the identity and every point once, close: a snapshot, or `Unreachable` when
    /// nothing at all answered (then nothing should be written).
    pub async fn take_snapshot(
        mut self,
        profile: ProfileRef,
    ) -> anyhow::Result<Result<Snapshot, Unreachable>> {
        let taken_at = crate::clock::now_rfc3339();
        let read = match &mut self {
            Device::Modbus(d) => match d.open_port().await {
                Ok(()) => Ok(d.read_once().await),
                Err(e) => Err(e),
            },
            Device::OpcUa(d) => d.read_once().await,
        };
        let snapshot = read.map(|read| {
            read.map(|identity| self.snapshot(&self.results(), identity, profile, taken_at))
        });
        self.close().await;
        snapshot
    }

    /// Columns of a `read` of the selected points (`device` first when several are read).
    pub fn read_columns(&self, several: bool) -> Vec<&'static str> {
        each!(self, d => d.read_columns(several))
    }

    /// The rows of the last round as `read` shows them (`quiet`: only the points that are not
    /// good) and their verdict; problems (link failures) are added to `problems`.
    pub fn read_rows(
        &self,
        several: bool,
        quiet: bool,
        rows: &mut Rows,
        problems: &mut Vec<String>,
    ) -> anyhow::Result<Outcome> {
        match self {
            Device::Modbus(d) => Ok(d.read_rows(several, quiet, rows, problems)),
            // A round that failed as a whole is the command's error.
            Device::OpcUa(d) => d.read_rows(several, quiet, rows),
        }
    }

    /// One raw value under every type and order (`read --guess`); Modbus registers only.
    pub async fn guess(&mut self, address: &str) -> anyhow::Result<Table> {
        match self {
            Device::Modbus(d) => d.guess(address).await,
            Device::OpcUa(_) => {
                anyhow::bail!("--guess is for Modbus registers; OPC UA values carry their own type")
            }
        }
    }

    /// A guarded write with the value before and after. Refused (exit 3, nothing sent) without
    /// `allow`; a value that does not encode is refused first.
    pub async fn write(&mut self, req: &WriteRequest<'_>) -> anyhow::Result<Table> {
        each!(self, d => d.write(req).await)
    }

    /// Who answers: Modbus unit IDs (`units`, e.g. `1-247`), OPC UA endpoints and their
    /// security. Read-only.
    pub async fn scan(
        &mut self,
        req: &ScanRequest,
        progress: &indicatif::ProgressBar,
    ) -> anyhow::Result<Table> {
        match self {
            Device::Modbus(d) => d.scan(req, progress).await,
            Device::OpcUa(d) => {
                if req.listen.is_some()
                    || req.registers
                    || !req.bauds.is_empty()
                    || !req.frames.is_empty()
                {
                    anyhow::bail!("--listen, --registers, --baud and --frame scan a Modbus device; an OPC UA scan lists the server's endpoints");
                }
                d.scan().await
            }
        }
    }

    /// Close the connection or session.
    pub async fn close(self) {
        each!(self, d => d.close().await);
    }
}
