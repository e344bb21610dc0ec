//! The PostgreSQL history store: `postgres://USER@HOST[:PORT]/DB` (a host starting with `/`,
//! percent-encoded, is a Unix socket folder), for checkers on many machines writing into one
//! database that Grafana and SQL users query. The same logical schema as the SQLite file
//! ([`SCHEMA`], docs/DESIGN.md §4c), with PostgreSQL types: `started_at timestamptz`, JSON
//! columns as `jsonb`, point values as `double precision[]`, and a view `point_samples` that
//! unnests them into one row per point sample.
//!
//! The password never comes from the command line: a URL with one is refused before any
//! connection. It comes from `PGPASSWORD`, else the password file (`PGPASSFILE` or
//! `~/.pgpass`, libpq's format, ignored when group- or world-readable, as libpq does), else a
//! prompt when the server asks for one and stdin is a terminal.
//!
//! Async (tokio-postgres): plcprobe runs commands on a single-threaded runtime, where a blocking
//! client would stall or panic. Errors: a server that cannot be reached is
//! [`super::raw::Unreachable`] (exit 2 from `check`, 3 elsewhere); a server that answers and
//! refuses (no such database, wrong password, a newer schema) UNKNOWN (exit 3).

use std::{collections::HashMap, io::IsTerminal as _, str::FromStr, time::Duration};

use futures_util::{pin_mut, StreamExt as _};
use tokio_postgres::{config::Host, types::ToSql, Client, Config, NoTls};

use super::{
    model::{DeviceLimits, Run},
    raw::{
        errors_json, identity_json, layout_signature, opt, point_status_json, IdCache, LayoutPoint,
        RawDeviceRun, RawHistory, Recorded, Unreachable, APPLICATION, SCHEMA_VERSION,
    },
    record::RunRecord,
};
use crate::outcome::Fail;

/// Schema version 1 in PostgreSQL (docs/DESIGN.md §4c).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS plcprobe_schema (
    application text NOT NULL,
    version     integer NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id           bigserial PRIMARY KEY,
    started_ms   bigint NOT NULL,
    started_at   timestamptz NOT NULL,
    plan         text NOT NULL,
    tool_version text NOT NULL,
    verdict      text NOT NULL,
    host         text NOT NULL,
    command      text NOT NULL,
    duration_ms  double precision,
    UNIQUE (plan, started_ms)
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_ms);
CREATE TABLE IF NOT EXISTS devices (
    id   bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS points (
    id        bigserial PRIMARY KEY,
    device_id bigint NOT NULL REFERENCES devices (id),
    name      text NOT NULL,
    address   text NOT NULL,
    unit      text NOT NULL,
    UNIQUE (device_id, name)
);
CREATE TABLE IF NOT EXISTS layouts (
    id        bigserial PRIMARY KEY,
    device_id bigint NOT NULL REFERENCES devices (id),
    signature text NOT NULL,
    UNIQUE (device_id, signature)
);
CREATE TABLE IF NOT EXISTS layout_points (
    layout_id bigint NOT NULL REFERENCES layouts (id),
    position  integer NOT NULL,
    point_id  bigint NOT NULL REFERENCES points (id),
    range_min double precision,
    range_max double precision,
    baseline  double precision,
    tolerance double precision,
    PRIMARY KEY (layout_id, position)
);
CREATE TABLE IF NOT EXISTS identities (
    id        bigserial PRIMARY KEY,
    device_id bigint NOT NULL REFERENCES devices (id),
    objects   text NOT NULL,
    UNIQUE (device_id, objects)
);
CREATE TABLE IF NOT EXISTS device_runs (
    device_id       bigint NOT NULL REFERENCES devices (id),
    run_id          bigint NOT NULL REFERENCES runs (id),
    target          text NOT NULL,
    status          text NOT NULL,
    reachable       boolean NOT NULL,
    identity_id     bigint REFERENCES identities (id),
    sent            integer NOT NULL,
    received        integer NOT NULL,
    failed          integer NOT NULL,
    errors          jsonb,
    error_rate      double precision,
    latency_p50_ms  double precision,
    latency_p95_ms  double precision,
    latency_max_ms  double precision,
    latency_warn_ms double precision,
    latency_crit_ms double precision,
    error_rate_warn double precision,
    error_rate_crit double precision,
    layout_id       bigint NOT NULL REFERENCES layouts (id),
    point_status    jsonb,
    point_values    double precision[] NOT NULL,
    PRIMARY KEY (device_id, run_id)
);
CREATE INDEX IF NOT EXISTS device_runs_run ON device_runs (run_id);
CREATE OR REPLACE VIEW point_samples AS
SELECT r.id AS run_id, r.started_at, r.plan, d.name AS device, p.name AS point, p.unit,
       v.value, coalesce(dr.point_status ->> p.name, 'ok') AS status,
       lp.range_min, lp.range_max, lp.baseline, lp.tolerance
FROM device_runs dr
JOIN runs r ON r.id = dr.run_id
JOIN devices d ON d.id = dr.device_id
CROSS JOIN LATERAL unnest(dr.point_values) WITH ORDINALITY AS v (value, position)
JOIN layout_points lp ON lp.layout_id = dr.layout_id AND lp.position = v.position
JOIN points p ON p.id = lp.point_id;
";

/// An open PostgreSQL store.
pub struct Postgres {
    client: Client,
}

/// A tokio-postgres error with its cause and the server's message, on one line.
fn pg_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The URL without a password, for messages.
fn shown(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    format!(
        "postgres://{}@{host}:{}/{}",
        config.get_user().unwrap_or(""),
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_dbname().unwrap_or("")
    )
}

/// The password for this connection from a libpq password file (`host:port:db:user:password`,
/// `*` matches anything, `\` escapes `:` and `\`), if one line matches.
pub fn pgpass_lookup(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::with_capacity(5);
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let want = [host, port.as_str(), db, user];
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

fn pgpass_password(config: &Config) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")))?;
    let meta = std::fs::metadata(&path).ok()?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            crate::outcome::warn(format_args!(
                "password file {} has group or world access; it is ignored (chmod 0600 it, as \
                 libpq requires)",
                path.display()
            ));
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    // libpq matches a Unix socket connection as host "localhost".
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "localhost".into(),
    };
    pgpass_lookup(
        &text,
        &host,
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_dbname().unwrap_or(""),
        config.get_user().unwrap_or(""),
    )
}

impl Postgres {
    /// Connect and check (or create, when `create`) the schema.
    pub async fn open(url: &str, create: bool) -> anyhow::Result<Postgres> {
        let mut config = Config::from_str(url).map_err(|e| {
            Fail::unknown(format!(
                "`{}` is not a PostgreSQL URL like postgres://USER@HOST[:PORT]/DB: {}",
                url.split('@').next_back().unwrap_or(""),
                pg_text(&e)
            ))
        })?;
        if config.get_password().is_some() {
            return Err(Fail::unknown(
                "the history store URL has a password in it: plcprobe refuses passwords on the \
                 command line (they show in the process list and the shell history). Take it \
                 out of the URL and give it through PGPASSWORD, ~/.pgpass (or PGPASSFILE), or \
                 the prompt on a terminal; nothing was written",
            )
            .into());
        }
        if config.get_user().is_none() {
            return Err(Fail::unknown(format!(
                "the history store URL names no user: write postgres://USER@HOST[:PORT]/DB ({})",
                shown(&config)
            ))
            .into());
        }
        if config.get_dbname().is_none() {
            return Err(Fail::unknown(format!(
                "the history store URL names no database: write postgres://USER@HOST[:PORT]/DB \
                 ({})",
                shown(&config)
            ))
            .into());
        }
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("plcprobe");
        let where_ = shown(&config);
        if let Some(pw) = std::env::var_os("PGPASSWORD") {
            config.password(pw.as_encoded_bytes());
        } else if let Some(pw) = pgpass_password(&config) {
            config.password(pw);
        }
        let mut prompted = false;
        let client = loop {
            match config.connect(NoTls).await {
                Ok((client, conn)) => {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    break client;
                }
                Err(e) if pg_text(&e).contains("password missing") => {
                    if prompted
                        || !std::io::stdin().is_terminal()
                        || !std::io::stderr().is_terminal()
                    {
                        return Err(Fail::unknown(format!(
                            "the history store {where_} asks for a password: set PGPASSWORD or \
                             add a line to ~/.pgpass (run plcprobe on a terminal to be asked)"
                        ))
                        .into());
                    }
                    let pw = rpassword::prompt_password(format!("Password for {where_}: "))?;
                    config.password(pw);
                    prompted = true;
                }
                Err(e) if e.as_db_error().is_some() => {
                    let db = e.as_db_error().map(|d| d.code().code()).unwrap_or_default();
                    let hint = match db {
                        "3D000" => " (create the database first, e.g. `createdb`)",
                        "28P01" | "28000" => " (check the user and password)",
                        _ => "",
                    };
                    return Err(Fail::unknown(format!(
                        "the history store {where_} refused the connection: {}{hint}; nothing \
                         was written",
                        pg_text(&e)
                    ))
                    .into());
                }
                Err(e) => {
                    return Err(Unreachable(format!(
                        "cannot reach the history store {where_}: {}; is the server running and \
                         are host and port right?",
                        pg_text(&e)
                    ))
                    .into())
                }
            }
        };
        let mut p = Postgres { client };
        p.check_schema(&where_, create).await?;
        Ok(p)
    }

    async fn check_schema(&mut self, where_: &str, create: bool) -> anyhow::Result<()> {
        let refuse = |msg: String| -> anyhow::Error { Fail::unknown(msg).into() };
        let tx = self.client.transaction().await?;
        // One creator at a time: two checkers starting on an empty database at once.
        tx.execute("SELECT pg_advisory_xact_lock(7036471625393917440)", &[])
            .await?;
        let has_schema: bool = tx
            .query_one("SELECT to_regclass('plcprobe_schema') IS NOT NULL", &[])
            .await?
            .get(0);
        if has_schema {
            let row = tx
                .query_opt(
                    "SELECT application, version::bigint FROM plcprobe_schema LIMIT 1",
                    &[],
                )
                .await
                .map_err(|e| {
                    refuse(format!(
                        "{where_}: its plcprobe_schema table: {}",
                        pg_text(&e)
                    ))
                })?;
            if let Some(row) = row {
                let app: String = row.get(0);
                let v: i64 = row.get(1);
                if app != APPLICATION {
                    return Err(refuse(format!(
                        "{where_} is not a plcprobe history store (plcprobe_schema names `{app}`); \
                         nothing was written"
                    )));
                }
                if v > SCHEMA_VERSION {
                    return Err(refuse(format!(
                        "the history store {where_} has schema version {v}, written by a newer \
                         plcprobe; this plcprobe ({}) knows versions up to {SCHEMA_VERSION}. \
                         Nothing was written: use a newer plcprobe with this store",
                        env!("CARGO_PKG_VERSION")
                    )));
                }
                if v == SCHEMA_VERSION {
                    tx.commit().await?;
                    return Ok(());
                }
            }
        } else {
            let taken: Option<String> = tx
                .query_one(
                    "SELECT string_agg(t, ', ') FROM unnest(ARRAY['runs', 'devices', 'points', \
                     'layouts', 'layout_points', 'identities', 'device_runs']) AS t \
                     WHERE to_regclass(t) IS NOT NULL",
                    &[],
                )
                .await?
                .get(0);
            if let Some(t) = taken {
                return Err(refuse(format!(
                    "{where_} is not a plcprobe history store: it has tables ({t}) that \
                     plcprobe did not make and no plcprobe_schema. Use another database or \
                     schema; nothing was written"
                )));
            }
            if !create {
                return Err(refuse(format!(
                    "no history store in {where_}: record runs into it first (`check \
                     --history` or `history import`)"
                )));
            }
        }
        tx.batch_execute(SCHEMA).await?;
        tx.execute(
            "INSERT INTO plcprobe_schema (application, version)
             SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM plcprobe_schema)",
            &[&APPLICATION, &(SCHEMA_VERSION as i32)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Write `runs` in one transaction.
    pub async fn record_runs(
        &mut self,
        runs: &[RunRecord],
        ids: &mut IdCache,
    ) -> anyhow::Result<Vec<Recorded>> {
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| anyhow::anyhow!(pg_text(&e)))?;
        let pg = |e: tokio_postgres::Error| anyhow::anyhow!(pg_text(&e));
        let mut out = Vec::with_capacity(runs.len());
        let ins_run = tx
            .prepare(
                "INSERT INTO runs (started_ms, started_at, plan, tool_version, verdict, host,
                                   command, duration_ms)
                 VALUES ($1, to_timestamp($1::bigint / 1000.0), $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (plan, started_ms) DO NOTHING RETURNING id",
            )
            .await
            .map_err(pg)?;
        let ins_dev = tx
            .prepare(
                "INSERT INTO devices (name) VALUES ($1)
                 ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
            )
            .await
            .map_err(pg)?;
        let ins_point = tx
            .prepare(
                "INSERT INTO points (device_id, name, address, unit) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (device_id, name)
                 DO UPDATE SET address = excluded.address, unit = excluded.unit RETURNING id",
            )
            .await
            .map_err(pg)?;
        let ins_dr = tx
            .prepare(
                "INSERT INTO device_runs (device_id, run_id, target, status, reachable,
                     identity_id, sent, received, failed, errors, error_rate,
                     latency_p50_ms, latency_p95_ms, latency_max_ms,
                     latency_warn_ms, latency_crit_ms, error_rate_warn, error_rate_crit,
                     layout_id, point_status, point_values)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, $11, $12, $13,
                         $14, $15, $16, $17, $18, $19, $20::text::jsonb, $21)
                 ON CONFLICT (device_id, run_id) DO NOTHING",
            )
            .await
            .map_err(pg)?;
        for run in runs {
            let row = tx
                .query_opt(
                    &ins_run,
                    &[
                        &run.started_ms,
                        &run.plan,
                        &run.tool_version,
                        &run.verdict,
                        &run.host,
                        &run.command,
                        &opt(run.duration_ms),
                    ],
                )
                .await
                .map_err(pg)?;
            let Some(row) = row else {
                out.push(Recorded::AlreadyThere);
                continue;
            };
            let run_id: i64 = row.get(0);
            for d in &run.devices {
                let device_id = if let Some(&id) = ids.devices.get(&d.name) {
                    id
                } else {
                    let id: i64 = tx.query_one(&ins_dev, &[&d.name]).await.map_err(pg)?.get(0);
                    ids.devices.insert(d.name.clone(), id);
                    id
                };
                let mut point_ids = Vec::with_capacity(d.points.len());
                for p in &d.points {
                    let key = (device_id, p.name.clone());
                    match ids.points.get(&key) {
                        Some((id, a, u)) if *a == p.address && *u == p.unit => point_ids.push(*id),
                        _ => {
                            let id: i64 = tx
                                .query_one(&ins_point, &[&device_id, &p.name, &p.address, &p.unit])
                                .await
                                .map_err(pg)?
                                .get(0);
                            ids.points
                                .insert(key, (id, p.address.clone(), p.unit.clone()));
                            point_ids.push(id);
                        }
                    }
                }
                let lkey = (device_id, layout_signature(&point_ids, &d.points));
                let layout_id = if let Some(&id) = ids.layouts.get(&lkey) {
                    id
                } else {
                    let new = tx
                        .query_opt(
                            "INSERT INTO layouts (device_id, signature) VALUES ($1, $2)
                             ON CONFLICT (device_id, signature) DO NOTHING RETURNING id",
                            &[&device_id, &lkey.1],
                        )
                        .await
                        .map_err(pg)?;
                    let id: i64 = if let Some(row) = new {
                        let id: i64 = row.get(0);
                        for (i, (pid, p)) in point_ids.iter().zip(&d.points).enumerate() {
                            tx.execute(
                                "INSERT INTO layout_points (layout_id, position, point_id,
                                     range_min, range_max, baseline, tolerance)
                                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                                &[
                                    &id,
                                    &(i as i32 + 1),
                                    pid,
                                    &p.range.map(|r| r[0]),
                                    &p.range.map(|r| r[1]),
                                    &p.baseline,
                                    &p.tolerance,
                                ],
                            )
                            .await
                            .map_err(pg)?;
                        }
                        id
                    } else {
                        tx.query_one(
                            "SELECT id FROM layouts WHERE device_id = $1 AND signature = $2",
                            &[&device_id, &lkey.1],
                        )
                        .await
                        .map_err(pg)?
                        .get(0)
                    };
                    ids.layouts.insert(lkey, id);
                    id
                };
                let identity_id: Option<i64> = match &d.identity {
                    None => None,
                    Some(objs) => {
                        let key = (device_id, identity_json(objs));
                        if let Some(&id) = ids.identities.get(&key) {
                            Some(id)
                        } else {
                            let id: i64 = tx
                                .query_one(
                                    "INSERT INTO identities (device_id, objects) VALUES ($1, $2)
                                     ON CONFLICT (device_id, objects)
                                     DO UPDATE SET objects = excluded.objects RETURNING id",
                                    &[&device_id, &key.1],
                                )
                                .await
                                .map_err(pg)?
                                .get(0);
                            ids.identities.insert(key, id);
                            Some(id)
                        }
                    }
                };
                let values: Vec<f64> = d.points.iter().map(|p| p.value).collect();
                let i32_of = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
                let params: [&(dyn ToSql + Sync); 21] = [
                    &device_id,
                    &run_id,
                    &d.target,
                    &d.status,
                    &d.reachable,
                    &identity_id,
                    &i32_of(d.sent),
                    &i32_of(d.received),
                    &i32_of(d.failed()),
                    &errors_json(&d.errors),
                    &opt(d.error_rate),
                    &opt(d.latency_p50_ms),
                    &opt(d.latency_p95_ms),
                    &opt(d.latency_max_ms),
                    &opt(d.limits.latency_warn_ms),
                    &opt(d.limits.latency_crit_ms),
                    &opt(d.limits.error_rate_warn),
                    &opt(d.limits.error_rate_crit),
                    &layout_id,
                    &point_status_json(&d.points),
                    &values,
                ];
                tx.execute(&ins_dr, &params).await.map_err(pg)?;
            }
            out.push(Recorded::Added);
        }
        tx.commit().await.map_err(pg)?;
        Ok(out)
    }

    /// Read the window, in one repeatable-read transaction (a consistent snapshot).
    pub async fn load(&self, since: i64, device: Option<&str>) -> anyhow::Result<RawHistory> {
        let c = &self.client;
        let pg = |e: tokio_postgres::Error| anyhow::anyhow!(pg_text(&e));
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(pg)?;
        let r = self.load_in(since, device).await;
        let _ = c.batch_execute("COMMIT").await;
        r
    }

    async fn load_in(&self, since: i64, device: Option<&str>) -> anyhow::Result<RawHistory> {
        let c = &self.client;
        let pg = |e: tokio_postgres::Error| anyhow::anyhow!(pg_text(&e));
        let mut h = RawHistory::default();
        for r in c
            .query(
                "SELECT id, started_ms, plan, tool_version, verdict, host FROM runs
                 WHERE started_ms >= $1 ORDER BY started_ms, id",
                &[&since],
            )
            .await
            .map_err(pg)?
        {
            h.run_index.insert(r.get(0), h.runs.len() as u32);
            h.runs.push(Run {
                id: r.get(0),
                started_ms: r.get(1),
                plan: r.get(2),
                tool_version: r.get(3),
                verdict: r.get(4),
                host: r.get(5),
            });
        }
        let Some(min_run) = h.runs.iter().map(|r| r.id).min() else {
            return Ok(h);
        };
        let device_id: Option<i64> = match device {
            None => None,
            Some(name) => {
                match c
                    .query_opt("SELECT id FROM devices WHERE name = $1", &[&name])
                    .await
                    .map_err(pg)?
                {
                    Some(r) => Some(r.get(0)),
                    None => return Ok(h),
                }
            }
        };
        for r in c
            .query("SELECT id, name FROM devices", &[])
            .await
            .map_err(pg)?
        {
            h.device_names.insert(r.get(0), r.get(1));
        }
        for r in c
            .query("SELECT id, name, address, unit FROM points", &[])
            .await
            .map_err(pg)?
        {
            h.points.insert(r.get(0), (r.get(1), r.get(2), r.get(3)));
        }
        for r in c
            .query(
                "SELECT layout_id, point_id, range_min, range_max, baseline, tolerance
                 FROM layout_points ORDER BY layout_id, position",
                &[],
            )
            .await
            .map_err(pg)?
        {
            let lo: Option<f64> = r.get(2);
            let hi: Option<f64> = r.get(3);
            h.layouts.entry(r.get(0)).or_default().push(LayoutPoint {
                point_id: r.get(1),
                range: lo.zip(hi).map(|(a, b)| [a, b]),
                baseline: r.get(4),
                tolerance: r.get(5),
            });
        }
        let mut identities = HashMap::new();
        for r in c
            .query("SELECT id, objects FROM identities", &[])
            .await
            .map_err(pg)?
        {
            let objs: String = r.get(1);
            if let Ok(m) = serde_json::from_str(&objs) {
                identities.insert(r.get::<_, i64>(0), m);
            }
        }
        h.identities = identities;
        let params: [&(dyn ToSql + Sync); 2] = [&min_run, &device_id];
        let rows = c
            .query_raw(
                "SELECT device_id, run_id, target, status, reachable, identity_id, sent, failed,
                        errors::text, latency_p50_ms, latency_p95_ms, latency_max_ms,
                        latency_warn_ms, latency_crit_ms, error_rate_warn, error_rate_crit,
                        layout_id, point_status::text, point_values
                 FROM device_runs
                 WHERE run_id >= $1 AND ($2::bigint IS NULL OR device_id = $2)
                 ORDER BY device_id, run_id",
                params,
            )
            .await
            .map_err(pg)?;
        pin_mut!(rows);
        while let Some(r) = rows.next().await {
            let r = r.map_err(pg)?;
            let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
            let u = |v: i32| u32::try_from(v).unwrap_or(0);
            let row = RawDeviceRun {
                device_id: r.get(0),
                run_id: r.get(1),
                target: r.get(2),
                status: r.get(3),
                reachable: r.get(4),
                identity_id: r.get(5),
                sent: u(r.get(6)),
                failed: u(r.get(7)),
                errors: r.get(8),
                p50: r.get(9),
                p95: r.get(10),
                max: r.get(11),
                limits: DeviceLimits {
                    latency_warn_ms: nan(r.get(12)),
                    latency_crit_ms: nan(r.get(13)),
                    error_rate_warn: nan(r.get(14)),
                    error_rate_crit: nan(r.get(15)),
                },
                layout_id: r.get(16),
                point_status: r.get(17),
            };
            let values: Vec<f64> = r.get(18);
            h.push(row, &values);
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::pgpass_lookup;

    #[test]
    fn pgpass_lines_match_like_libpq() {
        let f = "# comment\n\
                 db.example:5432:plant:scada:s3cr\\:et\n\
                 *:*:*:plcprobe:any\\\\one\n";
        assert_eq!(
            pgpass_lookup(f, "db.example", 5432, "plant", "scada").as_deref(),
            Some("s3cr:et")
        );
        assert_eq!(pgpass_lookup(f, "db.example", 5433, "plant", "scada"), None);
        assert_eq!(
            pgpass_lookup(f, "h", 1, "x", "plcprobe").as_deref(),
            Some("any\\one")
        );
    }
}
