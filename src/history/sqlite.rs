//! The embedded SQLite history store: one file (plus its `-wal`/`-shm` while in use), created on
//! first use, in WAL mode (readers never block the writer), `synchronous = NORMAL` (a killed
//! process loses nothing committed; a power cut may lose the last runs, never the file), a busy
//! timeout so two `check` processes recording at once wait for each other, and each batch of
//! runs written in one `BEGIN IMMEDIATE` transaction. The schema is [`SCHEMA`]
//! (docs/DESIGN.md §4c); point values are a BLOB of f64 little endian in layout order.

use std::{path::Path, time::Duration};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{
    model::{DeviceLimits, Run},
    raw::{
        errors_json, identity_json, layout_signature, opt, pack_values, point_status_json, IdCache,
        LayoutPoint, RawDeviceRun, RawHistory, Recorded, APPLICATION, SCHEMA_VERSION,
    },
    record::RunRecord,
};
use crate::outcome::Fail;

/// Schema version 1 (docs/DESIGN.md §4c). `IF NOT EXISTS` everywhere: two processes creating
/// the same new file at once both succeed.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS plcprobe_schema (
    application TEXT NOT NULL,
    version     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id           INTEGER PRIMARY KEY,
    started_ms   INTEGER NOT NULL,
    started_at   TEXT NOT NULL,
    plan         TEXT NOT NULL,
    tool_version TEXT NOT NULL,
    verdict      TEXT NOT NULL,
    host         TEXT NOT NULL,
    command      TEXT NOT NULL,
    duration_ms  REAL,
    UNIQUE (plan, started_ms)
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_ms);
CREATE TABLE IF NOT EXISTS devices (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS points (
    id        INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices (id),
    name      TEXT NOT NULL,
    address   TEXT NOT NULL,
    unit      TEXT NOT NULL,
    UNIQUE (device_id, name)
);
CREATE TABLE IF NOT EXISTS layouts (
    id        INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices (id),
    signature TEXT NOT NULL,
    UNIQUE (device_id, signature)
);
CREATE TABLE IF NOT EXISTS layout_points (
    layout_id INTEGER NOT NULL REFERENCES layouts (id),
    position  INTEGER NOT NULL,
    point_id  INTEGER NOT NULL REFERENCES points (id),
    range_min REAL,
    range_max REAL,
    baseline  REAL,
    tolerance REAL,
    PRIMARY KEY (layout_id, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS identities (
    id        INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices (id),
    objects   TEXT NOT NULL,
    UNIQUE (device_id, objects)
);
CREATE TABLE IF NOT EXISTS device_runs (
    device_id       INTEGER NOT NULL REFERENCES devices (id),
    run_id          INTEGER NOT NULL REFERENCES runs (id),
    target          TEXT NOT NULL,
    status          TEXT NOT NULL,
    reachable       INTEGER NOT NULL,
    identity_id     INTEGER REFERENCES identities (id),
    sent            INTEGER NOT NULL,
    received        INTEGER NOT NULL,
    failed          INTEGER NOT NULL,
    errors          TEXT,
    error_rate      REAL,
    latency_p50_ms  REAL,
    latency_p95_ms  REAL,
    latency_max_ms  REAL,
    latency_warn_ms REAL,
    latency_crit_ms REAL,
    error_rate_warn REAL,
    error_rate_crit REAL,
    layout_id       INTEGER NOT NULL REFERENCES layouts (id),
    point_status    TEXT,
    point_values    BLOB NOT NULL,
    PRIMARY KEY (device_id, run_id)
) WITHOUT ROWID;
";

/// Every id the store already has, read once per process (four queries) before its first
/// record: a 1,000-device run then costs one insert per device instead of some forty
/// look-ups.
fn warm(tx: &rusqlite::Transaction<'_>, ids: &mut IdCache) -> rusqlite::Result<()> {
    {
        let mut st = tx.prepare("SELECT id, name FROM devices")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            ids.devices.insert(r.get(1)?, r.get(0)?);
        }
    }
    {
        let mut st = tx.prepare("SELECT id, device_id, name, address, unit FROM points")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            ids.points
                .insert((r.get(1)?, r.get(2)?), (r.get(0)?, r.get(3)?, r.get(4)?));
        }
    }
    {
        let mut st = tx.prepare("SELECT id, device_id, signature FROM layouts")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            ids.layouts.insert((r.get(1)?, r.get(2)?), r.get(0)?);
        }
    }
    let mut st = tx.prepare("SELECT id, device_id, objects FROM identities")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        ids.identities.insert((r.get(1)?, r.get(2)?), r.get(0)?);
    }
    Ok(())
}

/// An open SQLite store.
pub struct Sqlite {
    conn: Connection,
}

fn not_a_store(path: &Path, why: &str) -> anyhow::Error {
    Fail::unknown(format!(
        "{} is not a plcprobe history store ({why}); nothing was written to it. Give the path of \
         a store made by `check --history` or `history import`, or a new file name",
        path.display()
    ))
    .into()
}

impl Sqlite {
    /// Open the file, checking it is a plcprobe store of a version this plcprobe knows, before
    /// writing anything; create the schema in a new or empty file when `create`.
    pub fn open(path: &Path, create: bool) -> anyhow::Result<Sqlite> {
        let exists = path.exists();
        if !exists && !create {
            return Err(Fail::unknown(format!(
                "no history store at {}: record runs into it first (`check --history {0}` or \
                 `history import {0} RESULTS.json…`)",
                path.display()
            ))
            .into());
        }
        if path.is_dir() {
            return Err(not_a_store(path, "it is a folder"));
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags).map_err(|e| {
            Fail::unknown(format!(
                "cannot open the history store {}: {e} (does its folder exist, and may plcprobe \
                 write there?)",
                path.display()
            ))
        })?;
        conn.busy_timeout(Duration::from_secs(30))?;
        let tables: Vec<String> = match conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .and_then(|mut st| {
                st.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            }) {
            Ok(t) => t,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::NotADatabase =>
            {
                return Err(not_a_store(path, "not an SQLite database"));
            }
            Err(e) => {
                return Err(Fail::unknown(format!(
                    "cannot read the history store {}: {e}",
                    path.display()
                ))
                .into())
            }
        };
        if tables.iter().any(|t| t == "plcprobe_schema") {
            let head: Option<(String, i64)> = conn
                .query_row(
                    "SELECT application, version FROM plcprobe_schema LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| not_a_store(path, &format!("its plcprobe_schema table: {e}")))?;
            match head {
                Some((app, _)) if app != APPLICATION => {
                    return Err(not_a_store(path, &format!("plcprobe_schema names `{app}`")))
                }
                Some((_, v)) if v > SCHEMA_VERSION => {
                    return Err(Fail::unknown(format!(
                        "the history store {} has schema version {v}, written by a newer \
                         plcprobe; this plcprobe ({}) knows versions up to {SCHEMA_VERSION}. \
                         Nothing was written: use a newer plcprobe with this store",
                        path.display(),
                        env!("CARGO_PKG_VERSION")
                    ))
                    .into())
                }
                _ => {}
            }
        } else if !tables.is_empty() {
            let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
            return Err(not_a_store(
                path,
                &format!("an SQLite database with other tables: {}", shown.join(", ")),
            ));
        } else if !create {
            return Err(not_a_store(path, "an empty database"));
        }
        // Ours (or empty and ours to make): WAL, then the schema in one transaction.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            anyhow::bail!(
                "the history store {} cannot use WAL mode (journal mode stays `{mode}`): is it \
                 on a network file system? Put it on a local disk",
                path.display()
            );
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Reads straight from the mapped file, not copied page by page into SQLite's cache: a
        // load of a month of runs reads every row once.
        let _: i64 = conn.query_row("PRAGMA mmap_size = 1073741824", [], |r| r.get(0))?;
        let mut s = Sqlite { conn };
        s.migrate()?;
        Ok(s)
    }

    fn migrate(&mut self) -> anyhow::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: Option<i64> = tx
            .query_row("SELECT version FROM plcprobe_schema LIMIT 1", [], |r| {
                r.get(0)
            })
            .optional()
            .or_else(|e| match e {
                rusqlite::Error::SqliteFailure(..) => Ok(None), // no table yet
                e => Err(e),
            })?;
        match version {
            Some(v) if v == SCHEMA_VERSION => return Ok(()),
            Some(v) if v > SCHEMA_VERSION => {
                anyhow::bail!("schema version {v} appeared while opening: a newer plcprobe")
            }
            // Version 1 is the first: nothing older to migrate from yet. A version 2 adds its
            // steps here (`Some(1) => ALTER TABLE …; UPDATE plcprobe_schema SET version = 2`).
            _ => {}
        }
        tx.execute_batch(SCHEMA)?;
        tx.execute(
            "INSERT INTO plcprobe_schema (application, version)
             SELECT ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM plcprobe_schema)",
            params![APPLICATION, SCHEMA_VERSION],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Write `runs` in one transaction.
    pub fn record_runs(
        &mut self,
        runs: &[RunRecord],
        ids: &mut IdCache,
    ) -> anyhow::Result<Vec<Recorded>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if ids.devices.is_empty() {
            warm(&tx, ids)?;
        }
        let mut out = Vec::with_capacity(runs.len());
        for run in runs {
            let n = tx
                .prepare_cached(
                    "INSERT INTO runs (started_ms, started_at, plan, tool_version, verdict, host,
                                       command, duration_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (plan, started_ms) DO NOTHING",
                )?
                .execute(params![
                    run.started_ms,
                    run.started_at,
                    run.plan,
                    run.tool_version,
                    run.verdict,
                    run.host,
                    run.command,
                    opt(run.duration_ms)
                ])?;
            if n == 0 {
                out.push(Recorded::AlreadyThere);
                continue;
            }
            let run_id = tx.last_insert_rowid();
            for d in &run.devices {
                let device_id = if let Some(&id) = ids.devices.get(&d.name) {
                    id
                } else {
                    {
                        tx.prepare_cached(
                            "INSERT INTO devices (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
                        )?
                        .execute([&d.name])?;
                        let id: i64 = tx
                            .prepare_cached("SELECT id FROM devices WHERE name = ?1")?
                            .query_row([&d.name], |r| r.get(0))?;
                        ids.devices.insert(d.name.clone(), id);
                        id
                    }
                };
                let mut point_ids = Vec::with_capacity(d.points.len());
                for p in &d.points {
                    let key = (device_id, p.name.clone());
                    match ids.points.get(&key) {
                        Some((id, a, u)) if *a == p.address && *u == p.unit => point_ids.push(*id),
                        _ => {
                            tx.prepare_cached(
                                "INSERT INTO points (device_id, name, address, unit)
                                 VALUES (?1, ?2, ?3, ?4)
                                 ON CONFLICT (device_id, name)
                                 DO UPDATE SET address = excluded.address, unit = excluded.unit",
                            )?
                            .execute(params![device_id, p.name, p.address, p.unit])?;
                            let id: i64 = tx
                                .prepare_cached(
                                    "SELECT id FROM points WHERE device_id = ?1 AND name = ?2",
                                )?
                                .query_row(params![device_id, p.name], |r| r.get(0))?;
                            ids.points
                                .insert(key, (id, p.address.clone(), p.unit.clone()));
                            point_ids.push(id);
                        }
                    }
                }
                let sig = layout_signature(&point_ids, &d.points);
                let lkey = (device_id, sig);
                let layout_id = if let Some(&id) = ids.layouts.get(&lkey) {
                    id
                } else {
                    {
                        let found: Option<i64> = tx
                            .prepare_cached(
                                "SELECT id FROM layouts WHERE device_id = ?1 AND signature = ?2",
                            )?
                            .query_row(params![device_id, lkey.1], |r| r.get(0))
                            .optional()?;
                        let id = if let Some(id) = found {
                            id
                        } else {
                            tx.prepare_cached(
                                "INSERT INTO layouts (device_id, signature) VALUES (?1, ?2)",
                            )?
                            .execute(params![device_id, lkey.1])?;
                            let id = tx.last_insert_rowid();
                            let mut st = tx.prepare_cached(
                                "INSERT INTO layout_points (layout_id, position, point_id,
                                     range_min, range_max, baseline, tolerance)
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                            )?;
                            for (i, (pid, p)) in point_ids.iter().zip(&d.points).enumerate() {
                                st.execute(params![
                                    id,
                                    i as i64 + 1,
                                    pid,
                                    p.range.map(|r| r[0]),
                                    p.range.map(|r| r[1]),
                                    p.baseline,
                                    p.tolerance
                                ])?;
                            }
                            id
                        };
                        ids.layouts.insert(lkey, id);
                        id
                    }
                };
                let identity_id = match &d.identity {
                    None => None,
                    Some(objs) => {
                        let key = (device_id, identity_json(objs));
                        Some(if let Some(&id) = ids.identities.get(&key) {
                            id
                        } else {
                            {
                                tx.prepare_cached(
                                    "INSERT INTO identities (device_id, objects) VALUES (?1, ?2)
                                     ON CONFLICT (device_id, objects) DO NOTHING",
                                )?
                                .execute(params![device_id, key.1])?;
                                let id: i64 = tx
                                    .prepare_cached(
                                        "SELECT id FROM identities
                                         WHERE device_id = ?1 AND objects = ?2",
                                    )?
                                    .query_row(params![device_id, key.1], |r| r.get(0))?;
                                ids.identities.insert(key, id);
                                id
                            }
                        })
                    }
                };
                tx.prepare_cached(
                    "INSERT INTO device_runs (device_id, run_id, target, status, reachable,
                         identity_id, sent, received, failed, errors, error_rate,
                         latency_p50_ms, latency_p95_ms, latency_max_ms,
                         latency_warn_ms, latency_crit_ms, error_rate_warn, error_rate_crit,
                         layout_id, point_status, point_values)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                             ?16, ?17, ?18, ?19, ?20, ?21)
                     ON CONFLICT (device_id, run_id) DO NOTHING",
                )?
                .execute(params![
                    device_id,
                    run_id,
                    d.target,
                    d.status,
                    d.reachable,
                    identity_id,
                    d.sent,
                    d.received,
                    d.failed(),
                    errors_json(&d.errors),
                    opt(d.error_rate),
                    opt(d.latency_p50_ms),
                    opt(d.latency_p95_ms),
                    opt(d.latency_max_ms),
                    opt(d.limits.latency_warn_ms),
                    opt(d.limits.latency_crit_ms),
                    opt(d.limits.error_rate_warn),
                    opt(d.limits.error_rate_crit),
                    layout_id,
                    point_status_json(&d.points),
                    pack_values(&d.points)
                ])?;
            }
            out.push(Recorded::Added);
        }
        tx.commit()?;
        Ok(out)
    }

    /// Read the window (one read transaction: a consistent snapshot while others write).
    pub fn load(&self, since: i64, device: Option<&str>) -> anyhow::Result<RawHistory> {
        let tx = self.conn.unchecked_transaction()?;
        let mut h = RawHistory::default();
        {
            let mut st = tx.prepare(
                "SELECT id, started_ms, plan, tool_version, verdict, host FROM runs
                 WHERE started_ms >= ?1 ORDER BY started_ms, id",
            )?;
            let mut rows = st.query([since])?;
            while let Some(r) = rows.next()? {
                h.run_index.insert(r.get(0)?, h.runs.len() as u32);
                h.runs.push(Run {
                    id: r.get(0)?,
                    started_ms: r.get(1)?,
                    plan: r.get(2)?,
                    tool_version: r.get(3)?,
                    verdict: r.get(4)?,
                    host: r.get(5)?,
                });
            }
        }
        let Some(min_run) = h.runs.iter().map(|r| r.id).min() else {
            return Ok(h);
        };
        let device_id: Option<i64> = match device {
            None => None,
            Some(name) => {
                let id = tx
                    .query_row("SELECT id FROM devices WHERE name = ?1", [name], |r| {
                        r.get(0)
                    })
                    .optional()?;
                match id {
                    Some(id) => Some(id),
                    None => return Ok(h),
                }
            }
        };
        {
            let mut st = tx.prepare("SELECT id, name FROM devices")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                h.device_names.insert(r.get(0)?, r.get(1)?);
            }
            let mut st = tx.prepare("SELECT id, name, address, unit FROM points")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                h.points
                    .insert(r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?));
            }
            let mut st = tx.prepare(
                "SELECT layout_id, point_id, range_min, range_max, baseline, tolerance
                 FROM layout_points ORDER BY layout_id, position",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let lo: Option<f64> = r.get(2)?;
                let hi: Option<f64> = r.get(3)?;
                h.layouts.entry(r.get(0)?).or_default().push(LayoutPoint {
                    point_id: r.get(1)?,
                    range: lo.zip(hi).map(|(a, b)| [a, b]),
                    baseline: r.get(4)?,
                    tolerance: r.get(5)?,
                });
            }
            let mut st = tx.prepare("SELECT id, objects FROM identities")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let objs: String = r.get(1)?;
                if let Ok(m) = serde_json::from_str(&objs) {
                    h.identities.insert(r.get(0)?, m);
                }
            }
        }
        let mut ids: Vec<i64> = h.device_names.keys().copied().collect();
        ids.sort_unstable();
        // Many devices: the upper half of them is read on a second connection in a second
        // thread (rows are stored by device, so each half is a range of the table), halving
        // the load of a month of a fleet on two cores (docs/PERFORMANCE.md, issue 14). Rows of
        // runs committed after the runs above were read are left out by both halves alike.
        let path = self
            .conn
            .path()
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        match (path, device_id) {
            (Some(path), None) if ids.len() >= PARALLEL_LOAD_DEVICES => {
                let split = ids[ids.len() / 2];
                let mut upper = h.sibling();
                std::thread::scope(|s| -> anyhow::Result<()> {
                    let other = s.spawn(|| -> anyhow::Result<()> {
                        let conn = Connection::open_with_flags(
                            &path,
                            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                        )?;
                        conn.busy_timeout(Duration::from_secs(30))?;
                        // Not mapped: a second mapping of the file would count its pages twice
                        // in the resident size (the kernel maps cached neighbours of each page
                        // read), for no gain worth it.
                        let tx = conn.unchecked_transaction()?;
                        read_device_runs(&tx, min_run, (split, i64::MAX), &mut upper)
                    });
                    let mine = read_device_runs(&tx, min_run, (i64::MIN, split - 1), &mut h);
                    let theirs = other
                        .join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("the second reader stopped")));
                    mine.and(theirs)
                })?;
                h.absorb(upper);
            }
            _ => {
                let (lo, hi) = device_id.map_or((i64::MIN, i64::MAX), |id| (id, id));
                read_device_runs(&tx, min_run, (lo, hi), &mut h)?;
            }
        }
        Ok(h)
    }
}

/// From this many devices on, a whole-store load reads in two threads (a second connection and
/// thread cost well under a millisecond; two devices already take the path the tests then check).
const PARALLEL_LOAD_DEVICES: usize = 2;

/// The `device_runs` rows of runs from `min_run` on of the devices with ids in `lo..=hi` (a range
/// of the table's key), into `h`.
fn read_device_runs(
    conn: &Connection,
    min_run: i64,
    (lo, hi): (i64, i64),
    h: &mut RawHistory,
) -> anyhow::Result<()> {
    let mut st = conn.prepare(
        "SELECT device_id, run_id, target, status, reachable, identity_id, sent, failed,
                errors, latency_p50_ms, latency_p95_ms, latency_max_ms, latency_warn_ms,
                latency_crit_ms, error_rate_warn, error_rate_crit, layout_id, point_status,
                point_values
         FROM device_runs WHERE device_id BETWEEN ?2 AND ?3 AND run_id >= ?1",
    )?;
    let mut rows = st.query(params![min_run, lo, hi])?;
    let mut values: Vec<f64> = Vec::new();
    while let Some(r) = rows.next()? {
        let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        let row = RawDeviceRun {
            device_id: r.get(0)?,
            run_id: r.get(1)?,
            target: r.get(2)?,
            status: r.get(3)?,
            reachable: r.get(4)?,
            identity_id: r.get(5)?,
            sent: r.get(6)?,
            failed: r.get(7)?,
            errors: r.get(8)?,
            p50: r.get(9)?,
            p95: r.get(10)?,
            max: r.get(11)?,
            limits: DeviceLimits {
                latency_warn_ms: nan(r.get(12)?),
                latency_crit_ms: nan(r.get(13)?),
                error_rate_warn: nan(r.get(14)?),
                error_rate_crit: nan(r.get(15)?),
            },
            layout_id: r.get(16)?,
            point_status: r.get(17)?,
        };
        values.clear();
        values.extend(
            r.get_ref(18)?
                .as_blob()?
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
        );
        h.push(row, &values);
    }
    Ok(())
}
