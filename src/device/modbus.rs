//! A Modbus TCP device: the [`Device`](super::Device) operations over one
//! [`ModbusLink`].
//!
//! Points become a [`ReadPlan`]: contiguous values of one table share a request, within the
//! spec's and the profile's limits (`max_registers`, `max_bits`). Identity is FC43 (Read Device
//! Identification). A round keeps the raw answers undecoded; values are decoded only when asked
//! for (a `poll -q` never needs them). A device that refuses the connection is unreachable; one
//! that answers an exception has answered.

use std::{collections::BTreeMap, path::Path};

use serde_json::json;

use super::{
    read_plan::{raw_text, Fetched, Item, ReadPlan},
    refuse_write, Identity, ItemError, ItemResult, PointLabel, RequestOutcome, Settings, Table,
    Unreachable, WriteRequest,
};
use crate::{
    outcome::{Fail, Outcome},
    profile::Profile,
    proto::modbus::{
        address::modicon_of,
        exception::describe_exception,
        parse_address,
        value::{decode, encode_text, parse_bool},
        AddressRange, DataType, WordOrder, MAX_READ_BITS, MAX_READ_REGISTERS,
    },
    report::Rows,
    snapshot::{SnapPoint, Snapshot, IDENTITY_NAMES},
    target::Target,
    transport::modbus::{Answer, Data, LinkError, ModbusLink},
};

/// A Modbus device and what was selected to read from it.
pub struct ModbusDevice {
    link: ModbusLink,
    serial: crate::transport::rtu::SerialOptions,
    /// The requests and the values they carry.
    plan: ReadPlan,
    /// The points as snapshots record them (profile or baseline selections only).
    pub(super) specs: Vec<SnapPoint>,
    /// The last round's raw answers.
    fetched: Fetched,
}

impl ModbusDevice {
    pub(super) fn new(target: &Target, settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            link: ModbusLink::new(target, settings.timeout, settings.serial)?,
            serial: settings.serial,
            plan: ReadPlan::batched(Vec::new(), MAX_READ_REGISTERS, MAX_READ_BITS),
            specs: Vec::new(),
            fetched: Fetched::default(),
        })
    }

    pub(super) fn target(&self) -> &Target {
        self.link.target()
    }

    pub(super) fn select_profile(&mut self, p: &Profile, verb: &str) -> anyhow::Result<()> {
        let specs = Snapshot::specs_from_profile(p);
        if specs.is_empty() {
            anyhow::bail!(
                "{} has no Modbus points (points with `address`) to {verb}",
                p.source
            );
        }
        self.plan = plan_for(&specs, p.device.max_registers, p.device.max_bits);
        self.specs = specs;
        Ok(())
    }

    pub(super) fn select_items(
        &mut self,
        items: &[String],
        ty: Option<DataType>,
        order: Option<WordOrder>,
    ) -> anyhow::Result<()> {
        if items.is_empty() {
            anyhow::bail!("nothing to read: give addresses after the target (e.g. hr:0..10 or 40101), or --profile FILE");
        }
        self.plan = ReadPlan::from_addresses(
            items,
            ty,
            order.unwrap_or_default(),
            MAX_READ_REGISTERS,
            MAX_READ_BITS,
        )?;
        self.specs.clear();
        Ok(())
    }

    pub(super) fn select_baseline(&mut self, b: &Snapshot, source: &Path) -> anyhow::Result<()> {
        // Every point must be readable again (address, type and order parse).
        for p in &b.points {
            item_of(p).map_err(|e| anyhow::anyhow!("{}: {e}", source.display()))?;
        }
        self.plan = plan_for(&b.points, MAX_READ_REGISTERS, MAX_READ_BITS);
        self.specs.clone_from(&b.points);
        Ok(())
    }

    pub(super) fn points(&self) -> Vec<PointLabel> {
        self.plan
            .items
            .iter()
            .map(|i| PointLabel {
                label: i.label.clone(),
                address: i.range.to_string(),
                unit: i.unit.clone(),
            })
            .collect()
    }

    pub(super) fn named(&self) -> bool {
        self.plan.named
    }

    pub(super) fn requests_per_round(&self) -> usize {
        self.plan.requests.len().max(1)
    }

    pub(super) async fn open(
        &mut self,
        _reconnect: bool,
    ) -> anyhow::Result<Result<(), Unreachable>> {
        self.open_port().await?;
        Ok(Ok(()))
    }

    /// A TCP link connects on its first request and reconnects after any failure. A serial
    /// port is opened at once: a port that cannot be opened (missing, busy, permission, a
    /// setting refused) is a problem with the command (exit 3), not a device that does not
    /// answer.
    pub(super) async fn open_port(&mut self) -> anyhow::Result<()> {
        if let Target::Rtu { .. } = self.link.target() {
            if let Err(e) = self.link.connect().await {
                let why = match e {
                    LinkError::Connect(why) => why,
                    other => other.to_string(),
                };
                return Err(Fail::unknown(why).into());
            }
            if let Some(a) = self.link.advice.take() {
                eprintln!("plcprobe: {a}");
            }
        }
        Ok(())
    }

    pub(super) fn set_pace(&mut self, gap: std::time::Duration) {
        self.link.set_pace(gap);
    }

    pub(super) async fn identity(&mut self) -> Result<Identity, Unreachable> {
        read_identity(&mut self.link).await
    }

    pub(super) async fn round(&mut self) {
        self.plan.fetch(&mut self.link, &mut self.fetched).await;
    }

    pub(super) fn outcomes(&self) -> &[RequestOutcome] {
        &self.fetched.outcomes
    }

    pub(super) fn request_errors(&self) -> Vec<Option<String>> {
        // Outcomes are the requests actually sent, in order; answers also hold the requests
        // skipped after a failed connect, which come last.
        self.fetched
            .answers
            .iter()
            .take(self.fetched.outcomes.len())
            .map(|a| match a {
                Err((_, m)) => Some(m.clone()),
                Ok(Err(code)) => Some(describe_exception(*code)),
                Ok(Ok(_)) => None,
            })
            .collect()
    }

    pub(super) fn failures(&self) -> Vec<String> {
        self.fetched
            .answers
            .iter()
            .filter_map(|a| a.as_ref().err().map(|(_, m)| m.clone()))
            .collect()
    }

    pub(super) fn results(&self) -> Vec<ItemResult> {
        self.plan.decode(&self.fetched)
    }

    pub(super) fn connects(&mut self) -> u64 {
        self.link.connects
    }

    /// The identity, then one round: `Unreachable` when nothing at all came back (no identity,
    /// every point a link failure).
    pub(super) async fn read_once(&mut self) -> Result<Identity, Unreachable> {
        let identity = self.identity().await?;
        self.round().await;
        if identity.0.is_none() {
            let results = self.results();
            let mut links = results.iter().map(|r| match &r.value {
                Err(ItemError::Link(_, m)) => Some(m.clone()),
                _ => None,
            });
            if let Some(Some(first)) = links.next() {
                if links.all(|m| m.is_some()) {
                    return Err(Unreachable(first));
                }
            }
        }
        Ok(identity)
    }

    pub(super) fn read_columns(&self, several: bool) -> Vec<&'static str> {
        let named = self.plan.named;
        let mut c = Vec::new();
        if several {
            c.push("device");
        }
        if named {
            c.push("name");
        }
        c.extend(["address", "modicon", "type", "raw"]);
        c.push("value");
        if named {
            c.push("unit");
        }
        c.push("status");
        c
    }

    pub(super) fn read_rows(
        &self,
        several: bool,
        quiet: bool,
        rows: &mut Rows,
        problems: &mut Vec<String>,
    ) -> Outcome {
        let t = self.link.target();
        let mut outcome = Outcome::Ok;
        for (item, r) in self.plan.items.iter().zip(self.results()) {
            if let Err(e) = &r.value {
                outcome = Outcome::Critical;
                if let ItemError::Link(_, m) = e {
                    let line = format!("{t}: {m}");
                    if !problems.contains(&line) {
                        problems.push(line);
                    }
                }
            }
            if quiet && r.value.is_ok() {
                continue;
            }
            rows.push(read_row(self.plan.named, item, &r, several.then_some(t)));
        }
        outcome
    }

    pub(super) async fn guess(&mut self, addr: &str) -> anyhow::Result<Table> {
        let target = self.link.target().clone();
        let mut a = parse_address(addr)?;
        if a.table.is_bits() {
            anyhow::bail!(
                "{addr}: --guess decodes registers; {}s are single bits",
                a.table.name()
            );
        }
        if !a.explicit_count {
            a = AddressRange::new(a.table, a.start, 4.min((65536 - u32::from(a.start)) as u16));
        }
        if a.count > 4 {
            anyhow::bail!(
                "{addr}: --guess looks at up to 4 registers (64-bit values); give e.g. {}:{}+4",
                a.table.prefix(),
                a.start
            );
        }
        let mut rows = Rows::new(&["address", "modicon", "registers", "type", "order", "value"]);
        let failed =
            |problem: String, rows: Rows| Table::new(rows, Outcome::Critical, vec![problem]);
        let words = match self.link.read(a, MAX_READ_REGISTERS, MAX_READ_BITS).await {
            Err(e) => return Ok(failed(format!("{target}: {e}"), rows)),
            Ok(Err(code)) => {
                return Ok(failed(
                    format!(
                        "{target}: {a} answered exception {}",
                        describe_exception(code)
                    ),
                    rows,
                ))
            }
            Ok(Ok(Data::Words(w))) => w,
            Ok(Ok(Data::Bits(_))) => unreachable!("register table"),
        };
        let raw = words
            .iter()
            .map(|w| format!("0x{w:04X}"))
            .collect::<Vec<_>>()
            .join(" ");
        for ty in DataType::guess_types(words.len()) {
            let n = ty.registers() as usize;
            let orders: &[WordOrder] = if n > 1 {
                &WordOrder::ALL
            } else if matches!(ty, DataType::U16 | DataType::I16 | DataType::Hex) {
                &[WordOrder::Abcd, WordOrder::Badc]
            } else {
                &[WordOrder::Abcd]
            };
            for order in orders {
                let v = decode(&words[..n], ty, *order).map_or_else(
                    |e| json!(format!("({e})")),
                    |v| serde_json::to_value(v).unwrap_or_default(),
                );
                rows.push(vec![
                    json!(a.at(0).to_string()),
                    json!(modicon_of(a.table, a.start)),
                    json!(raw),
                    json!(ty.to_string()),
                    json!(order.to_string()),
                    v,
                ]);
            }
        }
        Ok(Table::new(rows, Outcome::Ok, vec![]))
    }

    /// Reads the current value, writes (FC05/FC06 for one value, FC15/FC16 for several or with
    /// `--fc16`), reads back.
    pub(super) async fn write(&mut self, req: &WriteRequest<'_>) -> anyhow::Result<Table> {
        self.open_port().await?;
        let target = self.link.target().clone();
        let a = parse_address(req.address)?;
        if !a.table.is_writable() {
            anyhow::bail!("{}: {}s are read-only in the Modbus data model; only holding registers (hr:) and coils (co:) can be written", req.address, a.table.name());
        }
        let order = req.order.unwrap_or_default();
        let texts: Vec<&str> = req.value.split(',').map(str::trim).collect();
        // Encode first: a value that does not fit is refused before anything is sent.
        let (ty, words, bits) = if a.table.is_bits() {
            if req.ty.is_some_and(|t| t != DataType::Bool) {
                anyhow::bail!("{}: coils are single bits; leave --type out", req.address);
            }
            let bits = texts
                .iter()
                .map(|t| {
                    parse_bool(t).ok_or_else(|| {
                        anyhow::anyhow!("`{t}` is not a coil value; use on/off, true/false or 1/0")
                    })
                })
                .collect::<anyhow::Result<Vec<bool>>>()?;
            (DataType::Bool, Vec::new(), bits)
        } else {
            let ty = req.ty.unwrap_or(DataType::U16);
            let mut words = Vec::new();
            for t in &texts {
                words.extend(encode_text(t, ty, order)?);
            }
            (ty, words, Vec::new())
        };
        let count = if a.table.is_bits() {
            bits.len()
        } else {
            words.len()
        } as u16;
        if a.explicit_count && a.count != count {
            anyhow::bail!(
                "{} covers {} item(s) but {} value(s) of {ty} fill {count}",
                req.address,
                a.count,
                texts.len()
            );
        }
        if u32::from(a.start) + u32::from(count) > 65536 {
            anyhow::bail!(
                "{}: {count} item(s) from here run past address 65535",
                req.address
            );
        }
        let range = AddressRange::new(a.table, a.start, count);
        if !req.allow {
            return Err(refuse_write(&target, &range));
        }

        let link = &mut self.link;
        let mut rows = Rows::new(&[
            "address", "modicon", "type", "function", "before", "written", "after", "status",
        ]);
        let fail = |e: LinkError, rows: Rows| {
            Table::new(rows, Outcome::Critical, vec![format!("{target}: {e}")])
        };
        let before = match link.read(range, MAX_READ_REGISTERS, MAX_READ_BITS).await {
            Err(e) => return Ok(fail(e, rows)),
            Ok(b) => b,
        };
        let written: Answer<()> = match if a.table.is_bits() {
            link.write(a.start, &bits, req.fc16).await
        } else {
            link.write(a.start, &words, req.fc16).await
        } {
            Err(e) => return Ok(fail(e, rows)),
            Ok(w) => w,
        };
        let after = match link.read(range, MAX_READ_REGISTERS, MAX_READ_BITS).await {
            Err(e) => return Ok(fail(e, rows)),
            Ok(b) => b,
        };

        let fc = match (a.table.is_bits(), count == 1 && !req.fc16) {
            (true, true) => "FC05",
            (true, false) => "FC15",
            (false, true) => "FC06",
            (false, false) => "FC16",
        };
        let show = |d: &Answer<Data>, i: usize| -> serde_json::Value {
            match d {
                Err(code) => json!(describe_exception(*code)),
                Ok(Data::Bits(b)) => json!(b[i]),
                Ok(Data::Words(w)) => {
                    let n = ty.registers() as usize;
                    decode(&w[i * n..(i + 1) * n], ty, order).map_or_else(
                        |e| json!(e.to_string()),
                        |v| serde_json::to_value(v).unwrap_or_default(),
                    )
                }
            }
        };
        let width = if a.table.is_bits() { 1 } else { ty.registers() };
        let w = usize::from(width);
        let mut outcome = Outcome::Ok;
        for (i, text) in texts.iter().enumerate() {
            let start = a.start + i as u16 * width;
            let matches = match (&written, &after) {
                (Ok(()), Ok(Data::Words(got))) => {
                    got[i * w..(i + 1) * w] == words[i * w..(i + 1) * w]
                }
                (Ok(()), Ok(Data::Bits(b))) => b[i] == bits[i],
                _ => false,
            };
            let status = match &written {
                Err(code) => {
                    outcome = Outcome::Critical;
                    describe_exception(*code)
                }
                Ok(()) if matches => "ok".to_string(),
                Ok(()) => {
                    outcome = outcome.worst(Outcome::Warning);
                    "written, but reads back different".to_string()
                }
            };
            rows.push(vec![
                json!(AddressRange::single(a.table, start).to_string()),
                json!(modicon_of(a.table, start)),
                json!(ty.to_string()),
                json!(fc),
                show(&before, i),
                json!(text),
                show(&after, i),
                json!(status),
            ]);
        }
        Ok(Table::new(rows, outcome, vec![]))
    }

    /// Who answers, and how (`modbus_scan.rs`): unit IDs, a serial sweep, a passive listen.
    pub(super) async fn scan(
        &mut self,
        req: &super::modbus_scan::ScanRequest,
        pb: &indicatif::ProgressBar,
    ) -> anyhow::Result<Table> {
        if req.listen.is_some() {
            return super::modbus_scan::listen(self.link.target(), req, pb).await;
        }
        if req.registers {
            return self.scan_registers(req, pb).await;
        }
        super::modbus_scan::scan(&mut self.link, self.serial, req, pb).await
    }

    /// `scan --registers`: the readable ranges of the target's unit, as rows and, with
    /// `--emit-profile`, a starting profile written atomically.
    async fn scan_registers(
        &mut self,
        req: &super::modbus_scan::ScanRequest,
        pb: &indicatif::ProgressBar,
    ) -> anyhow::Result<Table> {
        use crate::proto::modbus::Table as T;
        if let Some(path) = &req.emit_profile {
            crate::fsutil::check_output_dir(path)?;
        }
        let tables = [
            T::HoldingRegister,
            T::InputRegister,
            T::Coil,
            T::DiscreteInput,
        ];
        let probe =
            super::register_scan::probe(&mut self.link, &tables, req.rate, u16::MAX, pb).await?;
        let mut rows = Rows::new(&["table", "start", "end", "count"]);
        for f in &probe.found {
            rows.push(vec![
                json!(f.table.prefix()),
                json!(f.start),
                json!(f.end() - 1),
                json!(f.count),
            ]);
        }
        let mut notes = probe.notes();
        if let Some(path) = &req.emit_profile {
            crate::fsutil::write_atomic(path, probe.profile(self.link.target()).as_bytes())?;
            notes.push(format!(
                "wrote {} ({} ranges; load it with read --profile)",
                path.display(),
                probe.found.len()
            ));
        }
        let outcome = if probe.found.is_empty() {
            Outcome::Critical
        } else {
            Outcome::Ok
        };
        let problems = if probe.found.is_empty() {
            vec![format!(
                "{}: no address answered a read",
                self.link.target()
            )]
        } else {
            vec![]
        };
        Ok(Table {
            notes,
            rows,
            outcome,
            problems,
        })
    }

    #[allow(clippy::unused_async)] // the same signature as the devices that hold a session
    pub(super) async fn close(self) {}
}

/// One `read` row for an item and its result.
fn read_row(
    named: bool,
    item: &Item,
    r: &ItemResult,
    device: Option<&Target>,
) -> Vec<serde_json::Value> {
    let mut row = Vec::with_capacity(9);
    if let Some(t) = device {
        row.push(json!(t.url()));
    }
    if named {
        row.push(json!(item.label));
    }
    row.push(json!(item.range.to_string()));
    row.push(json!(modicon_of(item.range.table, item.range.start)));
    row.push(json!(item.ty.to_string()));
    row.push(if r.raw.is_empty() {
        serde_json::Value::Null
    } else {
        json!(raw_text(item, &r.raw))
    });
    row.push(match &r.value {
        Ok(v) => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
        Err(_) => serde_json::Value::Null,
    });
    if named {
        row.push(json!(item.unit));
    }
    row.push(json!(match &r.value {
        Ok(_) => "ok".to_string(),
        Err(e) => e.status(),
    }));
    row
}

/// The device identity by FC43, as snapshots record it: objects by name and a status.
/// `Err` when the device cannot be connected to at all.
async fn read_identity(link: &mut ModbusLink) -> Result<Identity, Unreachable> {
    match link.read_identity().await {
        Ok(Ok(objs)) => {
            let m: BTreeMap<String, String> = objs
                .into_iter()
                .map(|(id, v)| {
                    (
                        IDENTITY_NAMES
                            .get(usize::from(id))
                            .map_or_else(|| format!("object_0x{id:02x}"), ToString::to_string),
                        v,
                    )
                })
                .collect();
            if m.is_empty() {
                // pymodbus answers so when no identity is configured: nothing to compare.
                return Ok((
                    None,
                    "not available: the device answered FC43 with no objects".to_string(),
                ));
            }
            Ok((Some(m), "ok".to_string()))
        }
        Ok(Err(code)) => Ok((
            None,
            format!(
                "not available: {}",
                crate::proto::modbus::exception::describe_exception(code)
            ),
        )),
        Err(e @ LinkError::Connect(_)) => Err(Unreachable(e.to_string())),
        Err(e) => Ok((None, format!("not available: {}", e.kind().name()))),
    }
}

/// The batched read plan of snapshot points.
fn plan_for(specs: &[SnapPoint], max_registers: u16, max_bits: u16) -> ReadPlan {
    let items = specs
        .iter()
        .map(item_of)
        .collect::<anyhow::Result<Vec<_>>>()
        .expect("specs come from a validated profile or snapshot");
    ReadPlan::batched(items, max_registers, max_bits)
}

/// The read item a snapshot point describes.
fn item_of(p: &SnapPoint) -> anyhow::Result<Item> {
    let ty: DataType =
        p.ty.parse()
            .map_err(|e| anyhow::anyhow!("point `{}`: {e}", p.name))?;
    let order: WordOrder = p
        .order
        .parse()
        .map_err(|e| anyhow::anyhow!("point `{}`: {e}", p.name))?;
    let a = parse_address(&p.address).map_err(|e| anyhow::anyhow!("point `{}`: {e}", p.name))?;
    Ok(Item {
        label: p.name.to_string(),
        range: AddressRange::new(a.table, a.start, ty.registers()),
        ty,
        order,
        scale: p.scale,
        offset: p.offset,
        unit: p.unit.to_string(),
    })
}
