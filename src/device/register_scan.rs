//! Which register and bit ranges of one Modbus device answer reads, found gently, and a starting
//! profile of them (`scan --registers --emit-profile found.toml`).
//!
//! Contract:
//! - **Read-only.** Only FC01–FC04 reads are sent ([`ModbusLink::read_chunk`]), never a write,
//!   at most `rate` requests a second (requests *start* at least `1/rate` apart; a slow answer
//!   is not followed by an extra pause), and at most [`REQUESTS_PER_TABLE`] per table (or the
//!   budget given). Nothing above `limit` is read.
//! - **Only what answered.** A [`Found`] run is made only of addresses that were read
//!   successfully; an address is taken as absent only after a read of it alone failed, or after
//!   exception 0x02 Illegal Data Address for a read whose other addresses all answered. So a
//!   device that refuses long reads (0x03, 0x04, or silence) is mapped correctly, only with more
//!   requests; the largest read it took is learnt and written into the profile.
//! - **Not exhaustive, and it says so.** A device answers 0x02 outside its map (some time out
//!   instead, or answer everything with zeros), and reading every address one at a time would be
//!   65,536 requests. So single-address reads go to seed addresses where maps usually start
//!   ([`seeds`]: 0, 1, 10, 100, 1000, 10000, 30000, 40000, then round numbers in order of
//!   likelihood), plus a few just past the end of each run (small gaps between groups). A run
//!   found is followed both ways by reads of growing length, and its end found by bisection: a
//!   read of N addresses that succeeds proves all N. An island between seeds that no run leads
//!   to is not found. [`TableReport`] says per table what was not explored (budget spent, seeds
//!   not tried, why a table was stopped) and [`Probe::notes`] says it in words.
//! - **Failures.** Exceptions and link errors are findings, not errors. A table is stopped after
//!   [`SILENT_TO_STOP`] requests in a row without an answer (timeouts, broken connections, or a
//!   gateway's 0x0A/0x0B), or after [`UNSUPPORTED_TO_STOP`] exceptions 0x01 Illegal Function
//!   before any data (the device does not serve that table); the other tables are still probed.
//!   A run is not followed past [`run_cap`] addresses from where it was found; when addresses far
//!   away answer too, the device answers everywhere and reading cannot tell its map, so its
//!   table is stopped. The errors returned are a rate that is not a positive number (before
//!   anything is sent) and a link that cannot connect before anything answered (nothing to
//!   probe).
//!
//! The profile ([`emit_profile`], [`Probe::profile`]) names each address's point by its address
//! (`hr_100`, `ir_0`, `co_5`, `di_3`), u16 for a register and bool for a bit, at most
//! [`MAX_POINTS`] points (long runs shortened evenly, each cut said in a comment), and loads with
//! `read --profile`.

use std::{collections::BTreeMap, collections::BTreeSet, fmt::Write as _, time::Duration};

use tokio::time::Instant;

use crate::{
    outcome::Fail,
    proto::{
        modbus::{
            address::modicon_of, exception::describe_exception, AddressRange, Table, MAX_READ_BITS,
            MAX_READ_REGISTERS,
        },
        sanitize,
    },
    target::Target,
    transport::modbus::{Answer, LinkError, ModbusLink},
};

/// Most requests sent per table by [`probe`]: at 5 requests a second, about a minute a table.
pub const REQUESTS_PER_TABLE: u64 = 300;
/// Requests in a row without an answer after which a table is given up.
pub const SILENT_TO_STOP: u32 = 5;
/// Exceptions 0x01 Illegal Function in a row, before any data, after which a table is given up.
pub const UNSUPPORTED_TO_STOP: u32 = 3;
/// Most points a profile gets from [`emit_profile`].
pub const MAX_POINTS: usize = 500;
/// Offsets past the end of a run read one address at a time: devices group their maps with
/// small gaps (a reserved register between two blocks, alignment to 4, 8 or 16).
const GAP_PROBES: [u32; 6] = [1, 2, 3, 4, 8, 16];

/// Longest run followed from one address found readable: 2000 registers (16 reads of 125), or
/// 16,000 bits (8 reads of 2000).
pub fn run_cap(table: Table) -> u32 {
    if table.is_bits() {
        16_000
    } else {
        2_000
    }
}

/// One readable run in a table: every address in it answered a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Found {
    /// Table.
    pub table: Table,
    /// First address (0-based PDU address).
    pub start: u16,
    /// Number of registers or bits, at least 1.
    pub count: u16,
}

impl Found {
    /// The run as an address range (`hr:100..103`).
    pub fn range(&self) -> AddressRange {
        AddressRange::new(self.table, self.start, self.count)
    }

    /// One past the last address (may be 65536).
    pub fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }
}

/// What a probe of one table did and left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    /// Table.
    pub table: Table,
    /// Requests sent.
    pub requests: u64,
    /// Requests answered with an exception, by code.
    pub exceptions: BTreeMap<u8, u64>,
    /// Requests without an answer (link errors of any kind, timeouts included).
    pub no_answer: u64,
    /// How many requests had been sent when data last answered: what finding the runs took
    /// (the rest looked for more and found nothing).
    pub last_data_at: u64,
    /// Of those, timeouts.
    pub timeouts: u64,
    /// Seed addresses read.
    pub seeds_tried: usize,
    /// Seed addresses at or below the limit never read, nor covered by a run (budget spent or
    /// table stopped).
    pub seeds_left: Vec<u16>,
    /// Why the table was stopped before its seeds were all tried, if it was.
    pub stopped: Option<String>,
    /// Other findings worth a line (a run not followed to its end).
    pub notes: Vec<String>,
    /// The largest read the device took, when it refused a longer one (exception or silence for
    /// a read whose addresses all answered in shorter reads).
    pub size_limit: Option<u16>,
}

/// The result of [`probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Readable runs, sorted by table and address; adjacent runs merged.
    pub found: Vec<Found>,
    /// Requests sent, all tables.
    pub requests: u64,
    /// Requests answered with an exception.
    pub exceptions: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Requests without an answer of any kind (timeouts included: connection and protocol
    /// errors too).
    pub no_answer: u64,
    /// Per table, in the order probed: what was done and what was not explored.
    pub tables: Vec<TableReport>,
}

impl Probe {
    /// Largest register read to put in a profile (`max_registers`), when the device refused
    /// longer ones.
    pub fn max_registers(&self) -> Option<u16> {
        self.limit(false)
    }

    /// Largest bit read to put in a profile (`max_bits`), when the device refused longer ones.
    pub fn max_bits(&self) -> Option<u16> {
        self.limit(true)
    }

    fn limit(&self, bits: bool) -> Option<u16> {
        self.tables
            .iter()
            .filter(|t| t.table.is_bits() == bits)
            .filter_map(|t| t.size_limit)
            .min()
    }

    /// What the probe did and left out, one line per table, for people (and a profile's header).
    pub fn notes(&self) -> Vec<String> {
        let mut out = vec![format!(
            "{} requests ({} answered an exception, {} no answer); single-address reads at seed addresses and just past each run found: an island between them is not found",
            self.requests, self.exceptions, self.no_answer
        )];
        for t in &self.tables {
            let runs: Vec<&Found> = self.found.iter().filter(|f| f.table == t.table).collect();
            let items: u32 = runs.iter().map(|f| u32::from(f.count)).sum();
            let unit = if t.table.is_bits() { "bit" } else { "register" };
            let mut line = format!(
                "{}: {} run(s), {items} {unit}(s) answer",
                t.table.prefix(),
                runs.len()
            );
            if !runs.is_empty() {
                let shown: Vec<String> =
                    runs.iter().take(8).map(|f| f.range().to_string()).collect();
                let _ = write!(
                    line,
                    " ({}{})",
                    shown.join(", "),
                    if runs.len() > 8 { ", …" } else { "" }
                );
            }
            let _ = write!(line, "; {} requests", t.requests);
            for (code, n) in &t.exceptions {
                let _ = write!(line, ", {} ×{n}", describe_exception(*code));
            }
            if t.no_answer > 0 {
                let _ = write!(
                    line,
                    ", no answer ×{} ({} timeouts)",
                    t.no_answer, t.timeouts
                );
            }
            if let Some(why) = &t.stopped {
                let _ = write!(line, "; {why}");
            }
            if !t.seeds_left.is_empty() {
                let first: Vec<String> = t.seeds_left.iter().take(5).map(u16::to_string).collect();
                let _ = write!(
                    line,
                    "; {} seed address(es) not tried ({}{})",
                    t.seeds_left.len(),
                    first.join(", "),
                    if t.seeds_left.len() > 5 { ", …" } else { "" }
                );
            }
            if let Some(n) = t.size_limit {
                let _ = write!(line, "; refused reads longer than {n} {unit}s");
            }
            out.push(line);
            out.extend(t.notes.iter().map(|n| format!("{}: {n}", t.table.prefix())));
        }
        out
    }

    /// The starting profile of what answered, with [`Probe::notes`] in its header and the read
    /// size limits learnt (`max_registers`, `max_bits`).
    pub fn profile(&self, target: &Target) -> String {
        profile_text(
            target,
            &self.found,
            &self.notes().join("\n"),
            self.max_registers(),
            self.max_bits(),
        )
    }
}

/// Probe which addresses of each table answer reads (FC01–04 only, never a write) on an already
/// built link: at most `rate` requests a second, [`REQUESTS_PER_TABLE`] per table, nothing above
/// `limit`; one tick of `pb` per request (its length grows by the budget of each table). An
/// infinite `rate` sends without pauses.
pub async fn probe(
    link: &mut ModbusLink,
    tables: &[Table],
    rate: f64,
    limit: u16,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<Probe> {
    probe_with_budget(link, tables, rate, limit, REQUESTS_PER_TABLE, pb).await
}

/// [`probe`] with another request budget per table.
pub async fn probe_with_budget(
    link: &mut ModbusLink,
    tables: &[Table],
    rate: f64,
    limit: u16,
    budget: u64,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<Probe> {
    if rate.is_nan() || rate <= 0.0 {
        return Err(Fail::unknown(format!(
            "--rate {rate}: give the most requests per second, e.g. 5 (a live line) or 50 (a bench)"
        ))
        .into());
    }
    let target = link.target().clone();
    run_probe(link, tables, rate, limit, budget.max(1), pb)
        .await
        .map_err(|e| Fail::critical(format!("{target}: {e}")).into())
}

/// A link the probe reads over: data or exception, or no answer. (A trait so the search can be
/// tested against modelled devices.)
trait Reader {
    async fn probe_read(&mut self, r: AddressRange) -> Result<Answer<()>, LinkError>;
}

impl Reader for ModbusLink {
    async fn probe_read(&mut self, r: AddressRange) -> Result<Answer<()>, LinkError> {
        self.read_chunk(r).await.map(|a| a.map(|_| ()))
    }
}

async fn run_probe<R: Reader>(
    reader: &mut R,
    tables: &[Table],
    rate: f64,
    limit: u16,
    budget: u64,
    pb: &indicatif::ProgressBar,
) -> Result<Probe, String> {
    let mut order: Vec<Table> = Vec::with_capacity(tables.len());
    for t in tables {
        if !order.contains(t) {
            order.push(*t);
        }
    }
    pb.inc_length(budget * order.len() as u64);
    let pace = (rate.is_finite()).then(|| Duration::from_secs_f64(1.0 / rate));
    let mut probe = Probe {
        found: vec![],
        requests: 0,
        exceptions: 0,
        timeouts: 0,
        no_answer: 0,
        tables: vec![],
    };
    let mut answered = false;
    let mut last_sent = None;
    for table in order {
        pb.set_message(format!("probing {}s", table.name()));
        let mut scan = Scan::new(reader, pb, table, limit, budget, pace);
        scan.answered = answered;
        scan.last_sent = last_sent;
        scan.run().await;
        answered = scan.answered;
        last_sent = scan.last_sent;
        if let Some(fatal) = scan.fatal {
            return Err(fatal);
        }
        let (found, report) = scan.finish();
        pb.inc(budget.saturating_sub(report.requests));
        probe.requests += report.requests;
        probe.exceptions += report.exceptions.values().sum::<u64>();
        probe.timeouts += report.timeouts;
        probe.no_answer += report.no_answer;
        probe.found.extend(found);
        probe.tables.push(report);
    }
    probe.found.sort();
    Ok(probe)
}

/// The seed addresses at or below `limit`, most likely map starts first: 0 and 1 (an off-by-one
/// map), 10, 100, 1000, 10000, 30000 and 40000 (Modicon references typed as PDU addresses, and
/// where solar inverters' maps start), 30001, 40001, 50000 and 20000; then multiples of 100
/// below 1000, of 1000 below 10000, of 10 below 100, of 0x100 below 0x1000, of 0x1000, of 1000
/// above 10000, of 50 below 1000, of 500 below 10000, of 10 below 1000 and of 100 below 10000.
/// About 280 in all: with [`REQUESTS_PER_TABLE`], the last ones are the first left out when
/// runs need requests.
pub fn seeds(limit: u16) -> Vec<u16> {
    let mut v: Vec<u32> = vec![0, 1, 10, 100, 1000, 10_000, 30_000, 40_000];
    v.extend([30_001, 40_001, 50_000, 20_000]);
    v.extend((2..10).map(|i| i * 100));
    v.extend((2..10).map(|i| i * 1000));
    v.extend((2..10).map(|i| i * 10));
    v.extend((1..16).map(|i| i * 0x100));
    v.extend((1..16).map(|i| i * 0x1000));
    v.extend((11..66).map(|i| i * 1000));
    v.extend((1..20).map(|i| i * 50));
    v.extend((1..20).map(|i| i * 500));
    v.extend((11..100).map(|i| i * 10));
    v.extend((11..100).map(|i| i * 100));
    let mut seen = BTreeSet::new();
    v.into_iter()
        .filter(|&a| a <= u32::from(limit) && seen.insert(a))
        .map(|a| a as u16)
        .collect()
}

/// What one table is known to hold so far.
#[derive(Debug, Default)]
struct Known {
    /// Readable runs `[start, end)`, sorted, neither overlapping nor touching.
    good: Vec<(u32, u32)>,
    /// Addresses shown not readable.
    bad: BTreeSet<u32>,
}

impl Known {
    /// `[start, end)` answered: merge it in.
    fn add_good(&mut self, start: u32, end: u32) {
        self.good.push((start, end));
        self.good = merge_runs(std::mem::take(&mut self.good));
    }

    fn readable(&self, a: u32) -> bool {
        self.good.iter().any(|&(s, e)| s <= a && a < e)
    }

    fn known(&self, a: u32) -> bool {
        self.bad.contains(&a) || self.readable(a)
    }

    /// The end of the readable run holding `a`.
    fn run_end(&self, a: u32) -> u32 {
        self.good
            .iter()
            .find(|&&(s, e)| s <= a && a < e)
            .map_or(a, |&(_, e)| e)
    }

    /// The first known address at or after `a` (65536 when none).
    fn next_known(&self, a: u32) -> u32 {
        let bad = self.bad.range(a..).next().copied().unwrap_or(65_536);
        let good = self
            .good
            .iter()
            .find(|&&(_, e)| e > a)
            .map_or(65_536, |&(s, _)| s.max(a));
        bad.min(good)
    }

    /// One past the last known address below `a` (0 when none).
    fn floor_below(&self, a: u32) -> u32 {
        let bad = self.bad.range(..a).next_back().map_or(0, |b| b + 1);
        let good = self
            .good
            .iter()
            .filter(|&&(s, _)| s < a)
            .map(|&(_, e)| e.min(a))
            .max()
            .unwrap_or(0);
        bad.max(good)
    }
}

/// Sort runs `[start, end)` and merge those that overlap or touch.
fn merge_runs(mut runs: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    runs.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(runs.len());
    for (s, e) in runs {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// How a read went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Data,
    Exception(u8),
    NoAnswer,
}

/// A read that failed while following a run: `[start, end)`; `address` when the device said
/// 0x02 Illegal Data Address (some address in it is absent, not the length refused).
#[derive(Debug, Clone, Copy)]
struct Failed {
    start: u32,
    end: u32,
    address: bool,
}

/// The probe of one table.
struct Scan<'a, R> {
    link: &'a mut R,
    pb: &'a indicatif::ProgressBar,
    table: Table,
    /// One past the highest address explored.
    end: u32,
    budget: u64,
    pace: Option<Duration>,
    last_sent: Option<Instant>,
    /// Longest read to send (the spec's, lowered when the device refuses long reads).
    max_count: u32,
    /// Longest read that succeeded.
    largest_ok: u32,
    known: Known,
    report: TableReport,
    silent_in_a_row: u32,
    unsupported_in_a_row: u32,
    last_silence: String,
    any_data: bool,
    /// Something answered on this link (this table or an earlier one).
    answered: bool,
    /// A failure that ends the whole probe (cannot connect).
    fatal: Option<String>,
}

impl<'a, R: Reader> Scan<'a, R> {
    fn new(
        link: &'a mut R,
        pb: &'a indicatif::ProgressBar,
        table: Table,
        limit: u16,
        budget: u64,
        pace: Option<Duration>,
    ) -> Self {
        Scan {
            link,
            pb,
            table,
            end: u32::from(limit) + 1,
            budget,
            pace,
            last_sent: None,
            max_count: u32::from(if table.is_bits() {
                MAX_READ_BITS
            } else {
                MAX_READ_REGISTERS
            }),
            largest_ok: 0,
            known: Known::default(),
            report: TableReport {
                table,
                requests: 0,
                exceptions: BTreeMap::new(),
                no_answer: 0,
                last_data_at: 0,
                timeouts: 0,
                seeds_tried: 0,
                seeds_left: vec![],
                stopped: None,
                notes: vec![],
                size_limit: None,
            },
            silent_in_a_row: 0,
            unsupported_in_a_row: 0,
            last_silence: String::new(),
            any_data: false,
            answered: false,
            fatal: None,
        }
    }

    fn stopped(&self) -> bool {
        self.report.stopped.is_some()
    }

    fn stop(&mut self, why: String) {
        if self.report.stopped.is_none() {
            self.report.stopped = Some(why);
        }
    }

    /// Read `[start, start+count)` once, paced; `None` when the table is stopped or its budget
    /// spent (nothing is sent then).
    async fn ask(&mut self, start: u32, count: u32) -> Option<Reply> {
        debug_assert!(count >= 1 && start + count <= self.end && count <= self.max_count);
        if self.stopped() {
            return None;
        }
        if self.report.requests >= self.budget {
            self.stop(format!("its budget of {} requests was spent", self.budget));
            return None;
        }
        if let (Some(pace), Some(last)) = (self.pace, self.last_sent) {
            tokio::time::sleep_until(last + pace).await;
        }
        self.last_sent = Some(Instant::now());
        self.report.requests += 1;
        self.pb.inc(1);
        let range = AddressRange::new(self.table, start as u16, count as u16);
        let reply = match self.link.probe_read(range).await {
            Ok(Ok(())) => {
                self.answered = true;
                self.any_data = true;
                self.silent_in_a_row = 0;
                self.unsupported_in_a_row = 0;
                self.largest_ok = self.largest_ok.max(count);
                self.report.last_data_at = self.report.requests;
                Reply::Data
            }
            Ok(Err(code)) => {
                *self.report.exceptions.entry(code).or_default() += 1;
                if matches!(code, 0x0A | 0x0B) {
                    // A gateway answering for a device that does not.
                    self.silent_in_a_row += 1;
                    self.last_silence = describe_exception(code);
                } else {
                    self.answered = true;
                    self.silent_in_a_row = 0;
                }
                if code == 0x01 && !self.any_data {
                    self.unsupported_in_a_row += 1;
                } else {
                    self.unsupported_in_a_row = 0;
                }
                Reply::Exception(code)
            }
            Err(e) => {
                self.report.no_answer += 1;
                if matches!(e, LinkError::Timeout(_)) {
                    self.report.timeouts += 1;
                }
                if matches!(e, LinkError::Connect(_)) && !self.answered {
                    self.fatal = Some(e.to_string());
                    self.stop(format!("cannot connect: {e}"));
                    return None;
                }
                self.silent_in_a_row += 1;
                self.last_silence = e.to_string();
                Reply::NoAnswer
            }
        };
        if self.silent_in_a_row >= SILENT_TO_STOP {
            let why = format!(
                "stopped after {} requests in a row without an answer (last: {})",
                self.silent_in_a_row, self.last_silence
            );
            self.stop(why);
        } else if self.unsupported_in_a_row >= UNSUPPORTED_TO_STOP {
            let why = format!(
                "stopped: the device answers {} to reads of its {}s (it has none, or serves them under another function)",
                describe_exception(0x01),
                self.table.name()
            );
            self.stop(why);
        }
        Some(reply)
    }

    /// Try every seed, following each run found.
    async fn run(&mut self) {
        let seeds = seeds((self.end - 1) as u16);
        for &a in &seeds {
            let a = u32::from(a);
            if self.stopped() {
                break;
            }
            if self.known.known(a) {
                continue;
            }
            self.report.seeds_tried += 1;
            match self.ask(a, 1).await {
                None => break,
                Some(Reply::Data) => {
                    self.known.add_good(a, a + 1);
                    self.follow(a).await;
                }
                Some(_) => {
                    self.known.bad.insert(a);
                }
            }
        }
        self.report.seeds_left = seeds
            .into_iter()
            .filter(|&a| !self.known.known(u32::from(a)))
            .collect();
    }

    /// Follow the run holding `seed` both ways, then look just past its end for the next one
    /// (and follow that too).
    async fn follow(&mut self, seed: u32) {
        let mut pending = vec![seed];
        while let Some(a) = pending.pop() {
            let Some(start) = self.backward(a).await else {
                return;
            };
            let from = self.known.run_end(a);
            let Some(end) = self.forward(from, start).await else {
                return;
            };
            let cap = run_cap(self.table);
            if end - start >= cap && end < self.end && !self.known.known(end) {
                match self.far_probes(start, end).await {
                    None => return,
                    Some(more) => pending.extend(more),
                }
                continue;
            }
            if !self.known.bad.contains(&end) {
                continue; // the limit, or a run found before
            }
            for off in GAP_PROBES {
                let b = end + off;
                if b >= self.end || self.known.readable(b) {
                    break;
                }
                if self.known.bad.contains(&b) {
                    continue;
                }
                match self.ask(b, 1).await {
                    None => return,
                    Some(Reply::Data) => {
                        self.known.add_good(b, b + 1);
                        pending.push(b);
                        break;
                    }
                    Some(_) => {
                        self.known.bad.insert(b);
                    }
                }
            }
        }
    }

    /// A run reached [`run_cap`] at `end`: read two far addresses. Both answering means the
    /// device answers everywhere (the table is stopped); otherwise the ones that answered are
    /// runs to follow.
    async fn far_probes(&mut self, start: u32, end: u32) -> Option<Vec<u32>> {
        let p = self.table.prefix();
        let far = [end + (self.end - end) / 2, self.end - 1];
        let mut hits = Vec::new();
        for f in far {
            if self.known.known(f) {
                continue;
            }
            match self.ask(f, 1).await? {
                Reply::Data => hits.push(f),
                _ => {
                    self.known.bad.insert(f);
                }
            }
        }
        if hits.len() == far.len() {
            self.stop(format!(
                "stopped: every address read answers ({p}:{start}..{end}, {p}:{}, {p}:{}): the device does not refuse unmapped addresses, so reading cannot tell its map; kept {p}:{start}..{end}",
                far[0], far[1]
            ));
            return None;
        }
        self.report.notes.push(format!(
            "the run from {p}:{start} was still readable at {p}:{}; not followed further (at most {} a run)",
            end - 1,
            run_cap(self.table)
        ));
        for &h in &hits {
            self.known.add_good(h, h + 1);
        }
        Some(hits)
    }

    /// The refused read of `failed` addresses was not about addresses (they all answered in
    /// shorter reads): the device refuses reads that long.
    fn too_long(&mut self, failed: u32) {
        let new = self.largest_ok.max(failed / 2).max(1);
        if new < self.max_count {
            self.max_count = new;
        }
        self.report.size_limit = Some(self.max_count.min(self.largest_ok.max(1)) as u16);
    }

    /// Grow the run down from `s` (its lowest address known readable): reads of 1, 2, 4… below
    /// it, then bisection of the first one refused. The run's first address; `None` if stopped.
    async fn backward(&mut self, mut s: u32) -> Option<u32> {
        let floor = self
            .known
            .floor_below(s)
            .max(s.saturating_sub(run_cap(self.table)));
        let mut step = 1;
        let mut failed: Option<Failed> = None;
        loop {
            if s <= floor {
                return Some(s);
            }
            let c = match failed {
                Some(f) if f.address && s - f.start == 1 => {
                    self.known.bad.insert(f.start);
                    return Some(s);
                }
                Some(f) => ((s - f.start) / 2).max(1),
                None => step,
            }
            .min(self.max_count)
            .min(s - floor);
            match self.ask(s - c, c).await? {
                Reply::Data => {
                    self.known.add_good(s - c, s);
                    s -= c;
                    match failed {
                        Some(f) if s <= f.start => {
                            self.too_long(f.end - f.start);
                            failed = None;
                        }
                        Some(_) => {}
                        None => step = (step * 2).min(self.max_count),
                    }
                }
                _ if c == 1 => {
                    self.known.bad.insert(s - 1);
                    return Some(s);
                }
                reply => {
                    failed = Some(Failed {
                        start: s - c,
                        end: s,
                        address: reply == Reply::Exception(0x02),
                    });
                }
            }
        }
    }

    /// Grow the run up from `e` (one past its highest address known readable; it started at
    /// `start`): reads of 2, 4, 8… up to the longest read, then bisection of the first one
    /// refused. One past the run's last address; `None` if stopped.
    async fn forward(&mut self, mut e: u32, start: u32) -> Option<u32> {
        let cap_end = start + run_cap(self.table);
        let mut step = 2;
        let mut failed: Option<Failed> = None;
        loop {
            let top = self.known.next_known(e).min(self.end).min(cap_end);
            if e >= top {
                return Some(e);
            }
            let c = match failed {
                Some(f) if f.address && f.end - e == 1 => {
                    self.known.bad.insert(e);
                    return Some(e);
                }
                Some(f) => ((f.end - e) / 2).max(1),
                None => step,
            }
            .min(self.max_count)
            .min(top - e);
            match self.ask(e, c).await? {
                Reply::Data => {
                    self.known.add_good(e, e + c);
                    e += c;
                    match failed {
                        Some(f) if e >= f.end => {
                            self.too_long(f.end - f.start);
                            failed = None;
                        }
                        Some(_) => {}
                        None => step = (step * 2).min(self.max_count),
                    }
                }
                _ if c == 1 => {
                    self.known.bad.insert(e);
                    return Some(e);
                }
                reply => {
                    failed = Some(Failed {
                        start: e,
                        end: e + c,
                        address: reply == Reply::Exception(0x02),
                    });
                }
            }
        }
    }

    /// The runs found, as [`Found`]s, and the report.
    fn finish(self) -> (Vec<Found>, TableReport) {
        let mut found = Vec::with_capacity(self.known.good.len());
        for &(s, e) in &self.known.good {
            // A run of all 65,536 addresses does not fit a u16 count: cut in two.
            let mut at = s;
            while at < e {
                let count = (e - at).min(u32::from(u16::MAX));
                found.push(Found {
                    table: self.table,
                    start: at as u16,
                    count: count as u16,
                });
                at += count;
            }
        }
        (found, self.report)
    }
}

/// A starting profile (TOML) of the runs found on `target`, loadable by `read --profile`: a
/// `[device]` with the target, then one `[[point]]` per address, at most [`MAX_POINTS`] (long
/// runs shortened evenly; each cut said in a comment), `probe_note` in the header as comments.
pub fn emit_profile(target: &Target, found: &[Found], probe_note: &str) -> String {
    profile_text(target, found, probe_note, None, None)
}

/// How many points each run gets when all of them cannot: every run up to the same share, the
/// share as large as `max` allows, the slots left over to the first runs that were cut.
fn shares(lens: &[u32], max: usize) -> Vec<u32> {
    let total: u64 = lens.iter().map(|&l| u64::from(l)).sum();
    if total <= max as u64 {
        return lens.to_vec();
    }
    let fits = |q: u32| lens.iter().map(|&l| u64::from(l.min(q))).sum::<u64>() <= max as u64;
    let (mut lo, mut hi) = (0u32, lens.iter().copied().max().unwrap_or(0));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut out: Vec<u32> = lens.iter().map(|&l| l.min(lo)).collect();
    let mut left = max as u64 - out.iter().map(|&n| u64::from(n)).sum::<u64>();
    for (n, &l) in out.iter_mut().zip(lens) {
        if left == 0 {
            break;
        }
        if *n < l {
            *n += 1;
            left -= 1;
        }
    }
    out
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn profile_text(
    target: &Target,
    found: &[Found],
    probe_note: &str,
    max_registers: Option<u16>,
    max_bits: Option<u16>,
) -> String {
    let mut runs: Vec<Found> = found.to_vec();
    runs.sort();
    let lens: Vec<u32> = runs.iter().map(|f| u32::from(f.count)).collect();
    let share = shares(&lens, MAX_POINTS);
    let points: u32 = share.iter().sum();
    let total: u32 = lens.iter().sum();
    let url = target.url();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Starting profile of {}, written by `plcprobe scan --registers`.",
        sanitize(&url)
    );
    t.push_str(
        "# Each point is one address that answered a read, named by its address: registers as u16,\n\
         # bits as bool. Rename them, give the real types (an f32 or u32 spans two registers: keep\n\
         # the first point, set its type, delete the second), scale and unit, and delete what is\n\
         # not needed. Addresses are 0-based PDU addresses (hr:100 is 40101).\n",
    );
    if total > points {
        let _ = writeln!(
            t,
            "# {total} addresses answered; {points} are points here (at most {MAX_POINTS}): the cuts are noted below."
        );
    }
    if found.is_empty() {
        t.push_str("# No address answered a read: there are no points.\n");
    }
    if !probe_note.trim().is_empty() {
        t.push_str("#\n");
        for line in probe_note.lines() {
            let _ = writeln!(t, "# {}", sanitize(line).trim_end());
        }
    }
    t.push_str("\n[device]\n");
    let _ = writeln!(t, "name = {}", toml_string(&format!("Scanned {url}")));
    let _ = writeln!(t, "target = {}", toml_string(&url));
    if let Some(n) = max_registers {
        let _ = writeln!(
            t,
            "max_registers = {n}  # the device refused longer reads during the scan"
        );
    }
    if let Some(n) = max_bits {
        let _ = writeln!(
            t,
            "max_bits = {n}  # the device refused longer reads during the scan"
        );
    }
    for (run, &n) in runs.iter().zip(&share) {
        let p = run.table.prefix();
        let unit = if run.table.is_bits() {
            "bit"
        } else {
            "register"
        };
        let _ = write!(
            t,
            "\n# {} ({}..{}): {} {unit}(s)",
            run.range(),
            modicon_of(run.table, run.start),
            modicon_of(run.table, (run.end() - 1) as u16),
            run.count
        );
        if n < u32::from(run.count) {
            let cut = u32::from(run.start) + n;
            let _ = write!(
                t,
                "; points for the first {n} only, {p}:{cut}..{} left out",
                run.end()
            );
        }
        t.push('\n');
        let ty = if run.table.is_bits() { "bool" } else { "u16" };
        for a in u32::from(run.start)..u32::from(run.start) + n {
            let _ = writeln!(
                t,
                "[[point]]\nname = \"{p}_{a}\"\naddress = \"{p}:{a}\"\ntype = \"{ty}\""
            );
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    /// A modelled device: the readable runs of one table, the longest read it takes (0x03
    /// beyond), and what it does outside its map.
    struct Model {
        runs: Vec<(u32, u32)>,
        max: u16,
        outside: Reply,
        sent: Vec<AddressRange>,
    }

    impl Model {
        fn new(runs: &[(u32, u32)]) -> Model {
            Model {
                runs: runs.to_vec(),
                max: 125,
                outside: Reply::Exception(0x02),
                sent: vec![],
            }
        }
    }

    impl Reader for Model {
        async fn probe_read(&mut self, r: AddressRange) -> Result<Answer<()>, LinkError> {
            self.sent.push(r);
            if !r.table.is_bits() && r.count > self.max {
                return Ok(Err(0x03));
            }
            let ok = (u32::from(r.start)..r.end())
                .all(|a| self.runs.iter().any(|&(s, e)| s <= a && a < e));
            match (ok, self.outside) {
                (true, _) => Ok(Ok(())),
                (false, Reply::Exception(c)) => Ok(Err(c)),
                (false, _) => Err(LinkError::Timeout(Duration::from_millis(1))),
            }
        }
    }

    async fn scan(m: &mut Model, table: Table, limit: u16, budget: u64) -> Probe {
        let pb = indicatif::ProgressBar::hidden();
        run_probe(m, &[table], f64::INFINITY, limit, budget, &pb)
            .await
            .unwrap()
    }

    fn runs_of(p: &Probe) -> Vec<(u32, u32)> {
        p.found
            .iter()
            .map(|f| (u32::from(f.start), f.end()))
            .collect()
    }

    const DEMO_HR: [(u32, u32); 5] = [(100, 103), (104, 107), (200, 202), (300, 304), (400, 404)];

    #[test]
    fn runs_merge_when_they_touch_or_overlap() {
        assert_eq!(
            merge_runs(vec![(10, 12), (0, 2), (2, 5), (11, 20), (30, 31)]),
            vec![(0, 5), (10, 20), (30, 31)]
        );
        let mut k = Known::default();
        k.add_good(100, 103);
        k.add_good(104, 107);
        k.bad.insert(103);
        k.bad.insert(50);
        assert_eq!(k.good, vec![(100, 103), (104, 107)]);
        assert_eq!(k.next_known(0), 50);
        assert_eq!(k.next_known(51), 100);
        assert_eq!(k.next_known(101), 101);
        assert_eq!(k.next_known(107), 65_536);
        assert_eq!(k.floor_below(100), 51);
        assert_eq!(k.floor_below(104), 104);
        assert_eq!(k.floor_below(50), 0);
        assert_eq!(k.run_end(105), 107);
        k.add_good(103, 104);
        assert_eq!(k.good, vec![(100, 107)]);
    }

    #[test]
    fn seeds_start_with_the_likely_ones_and_respect_the_limit() {
        let s = seeds(65_535);
        assert_eq!(&s[..8], &[0, 1, 10, 100, 1000, 10_000, 30_000, 40_000]);
        assert_eq!(
            s.len(),
            s.iter().collect::<BTreeSet<_>>().len(),
            "no repeats"
        );
        assert!(
            (250..REQUESTS_PER_TABLE as usize).contains(&s.len()),
            "{}",
            s.len()
        );
        assert!(s.contains(&0x300) && s.contains(&950) && s.contains(&65_000));
        assert_eq!(seeds(99), vec![0, 1, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    }

    #[tokio::test]
    async fn finds_the_demo_map_exactly() {
        let mut m = Model::new(&DEMO_HR);
        let p = scan(&mut m, Table::HoldingRegister, 65_535, REQUESTS_PER_TABLE).await;
        assert_eq!(runs_of(&p), DEMO_HR.to_vec());
        assert_eq!(p.requests, m.sent.len() as u64);
        assert!(p.requests <= REQUESTS_PER_TABLE);
        assert_eq!(p.tables[0].size_limit, None);
        assert!(m.sent.iter().all(|r| r.count <= 125));
        // With a budget large enough every seed is tried.
        let mut m = Model::new(&DEMO_HR);
        let p = scan(&mut m, Table::HoldingRegister, 65_535, 10_000).await;
        assert_eq!(runs_of(&p), DEMO_HR.to_vec());
        assert!(p.tables[0].seeds_left.is_empty());
        assert_eq!(p.tables[0].stopped, None);
    }

    #[tokio::test]
    async fn long_runs_are_followed_both_ways_and_bounded() {
        // A map starting between seeds (950) and running through seed 1000 to 1733.
        let mut m = Model::new(&[(950, 1733)]);
        let p = scan(&mut m, Table::InputRegister, 65_535, REQUESTS_PER_TABLE).await;
        assert_eq!(runs_of(&p), vec![(950, 1733)]);
        let spent = m.sent.iter().filter(|r| r.count > 1).count();
        assert!(spent < 40, "{spent} multi-address reads");
    }

    #[tokio::test]
    async fn a_device_refusing_long_reads_is_mapped_and_its_limit_learnt() {
        let mut m = Model::new(&[(0, 300), (1000, 1010)]);
        m.max = 20;
        let p = scan(&mut m, Table::HoldingRegister, 65_535, REQUESTS_PER_TABLE).await;
        assert_eq!(runs_of(&p), vec![(0, 300), (1000, 1010)]);
        let limit = p.max_registers().unwrap();
        assert!((1..=20).contains(&limit), "{limit}");
        let text = p.profile(&"modbus://192.0.2.1/1".parse().unwrap());
        assert!(text.contains(&format!("max_registers = {limit}")), "{text}");
    }

    #[tokio::test]
    async fn a_device_that_times_out_outside_its_map() {
        let mut m = Model::new(&[(0, 10)]);
        m.outside = Reply::NoAnswer;
        let p = scan(&mut m, Table::HoldingRegister, 65_535, REQUESTS_PER_TABLE).await;
        assert_eq!(runs_of(&p), vec![(0, 10)]);
        let t = &p.tables[0];
        assert!(t.stopped.as_deref().unwrap().contains("in a row"), "{t:?}");
        assert!(t.no_answer >= u64::from(SILENT_TO_STOP));
        assert!(p.requests < 30, "{}", p.requests);
        assert!(!t.seeds_left.is_empty());
    }

    #[tokio::test]
    async fn a_table_the_device_does_not_serve_is_left_after_three_tries() {
        let mut m = Model::new(&[]);
        m.outside = Reply::Exception(0x01);
        let p = scan(&mut m, Table::Coil, 65_535, REQUESTS_PER_TABLE).await;
        assert_eq!(p.requests, u64::from(UNSUPPORTED_TO_STOP));
        assert!(p.found.is_empty());
        assert!(
            p.notes()[1].contains("0x01 Illegal Function"),
            "{:?}",
            p.notes()
        );
    }

    #[tokio::test]
    async fn a_device_answering_everywhere_is_said_so() {
        let mut m = Model::new(&[(0, 65_536)]);
        let p = scan(&mut m, Table::HoldingRegister, 65_535, REQUESTS_PER_TABLE).await;
        assert_eq!(runs_of(&p), vec![(0, 2000)]);
        assert!(p.requests < 40, "{}", p.requests);
        let why = p.tables[0].stopped.as_deref().unwrap();
        assert!(why.contains("every address read answers"), "{why}");
        // Bits too, 2000 at a time.
        let mut m = Model::new(&[(0, 65_536)]);
        let p = scan(&mut m, Table::Coil, 65_535, REQUESTS_PER_TABLE).await;
        assert_eq!(runs_of(&p), vec![(0, 16_000)]);
        assert!(p.requests < 30, "{}", p.requests);
    }

    #[tokio::test]
    async fn the_budget_and_the_limit_hold() {
        // Every third register: many tiny runs.
        let runs: Vec<(u32, u32)> = (0..3000).step_by(3).map(|a| (a, a + 1)).collect();
        let mut m = Model::new(&runs);
        let p = scan(&mut m, Table::HoldingRegister, 65_535, 100).await;
        assert_eq!(p.requests, 100);
        assert_eq!(m.sent.len(), 100);
        assert!(p.tables[0].stopped.as_deref().unwrap().contains("budget"));
        assert!(p
            .found
            .iter()
            .all(|f| runs.contains(&(u32::from(f.start), f.end()))));
        // Nothing above the limit is read; a run is cut at it.
        let mut m = Model::new(&[(0, 50), (2000, 2100)]);
        let p = scan(&mut m, Table::HoldingRegister, 30, REQUESTS_PER_TABLE).await;
        assert_eq!(runs_of(&p), vec![(0, 31)]);
        assert!(m.sent.iter().all(|r| r.end() <= 31), "{:?}", m.sent);
    }

    #[tokio::test]
    async fn requests_are_paced() {
        let mut m = Model::new(&[]);
        let pb = indicatif::ProgressBar::hidden();
        let t0 = std::time::Instant::now();
        let p = run_probe(&mut m, &[Table::HoldingRegister], 200.0, 65_535, 11, &pb)
            .await
            .unwrap();
        assert_eq!(p.requests, 11);
        assert!(
            t0.elapsed() >= Duration::from_millis(49),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(pb.position(), 11);
    }

    #[test]
    fn shares_cut_the_long_runs_evenly() {
        assert_eq!(shares(&[3, 4], 500), vec![3, 4]);
        assert_eq!(shares(&[10, 1000, 1000], 500), vec![10, 245, 245]);
        assert_eq!(shares(&[10, 1000, 1001], 501), vec![10, 246, 245]);
        assert_eq!(shares(&[600], 500), vec![500]);
    }

    fn load(text: &str) -> Profile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("found.toml");
        std::fs::write(&path, text).unwrap();
        Profile::load(&path).unwrap_or_else(|e| panic!("{e:#}\n{text}"))
    }

    #[test]
    fn the_profile_loads_with_a_point_per_address() {
        let target: Target = "modbus://192.0.2.10:502/3".parse().unwrap();
        let found = [
            Found {
                table: Table::Coil,
                start: 5,
                count: 2,
            },
            Found {
                table: Table::InputRegister,
                start: 0,
                count: 2,
            },
            Found {
                table: Table::HoldingRegister,
                start: 100,
                count: 3,
            },
        ];
        let text = emit_profile(&target, &found, "a note\nwith \"quotes\" and\ttabs");
        let p = load(&text);
        assert_eq!(p.device.target.as_ref(), Some(&target));
        let names: Vec<&str> = p.points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["co_5", "co_6", "ir_0", "ir_1", "hr_100", "hr_101", "hr_102"]
        );
        assert_eq!(p.points[0].ty, crate::proto::modbus::DataType::Bool);
        assert_eq!(p.points[4].ty, crate::proto::modbus::DataType::U16);
        assert_eq!(
            p.points[6].address,
            Some(AddressRange::new(Table::HoldingRegister, 102, 1))
        );
        assert!(text.contains("# a note\n"), "{text}");
        // Nothing found still loads.
        assert!(load(&emit_profile(&target, &[], "")).points.is_empty());
    }

    #[test]
    fn the_profile_is_capped_and_says_what_it_left_out() {
        let target: Target = "rtu:///dev/ttyUSB0?baud=19200&unit=7".parse().unwrap();
        let found = [
            Found {
                table: Table::InputRegister,
                start: 0,
                count: 10,
            },
            Found {
                table: Table::HoldingRegister,
                start: 0,
                count: 2000,
            },
        ];
        let text = emit_profile(&target, &found, "");
        let p = load(&text);
        assert_eq!(p.points.len(), MAX_POINTS);
        assert_eq!(p.device.target.as_ref(), Some(&target));
        assert!(
            text.contains("points for the first 490 only, hr:490..2000 left out"),
            "{text}"
        );
        assert!(
            text.contains("2010 addresses answered; 500 are points here"),
            "{text}"
        );
    }
}
