//! A history store: where `check --history` and `history import` record runs, and where `trend`
//! and `report` load a window of them from ([`History`]). A target that starts with
//! `postgres://` (or `postgresql://`) is a PostgreSQL database ([`super::postgres`]); anything
//! else is the path of an embedded SQLite file ([`super::sqlite`]). Both hold the same logical
//! schema (docs/DESIGN.md §4c), created and migrated by plcprobe and stamped with a schema
//! version in `plcprobe_schema`.
//!
//! Contract:
//! - [`Store::open`] creates a missing store (SQLite: the file; PostgreSQL: the tables) and
//!   refuses — before anything is written — a file that is not a plcprobe store, a store written
//!   by a newer plcprobe (a higher schema version), and a URL with a password in it: each an
//!   [`Fail::unknown`] (exit 3). A database that cannot be reached is an [`Unreachable`]
//!   (exit 3 too, except in `check`, which prints its own output and then exits 2).
//!   [`Store::open_existing`] also refuses a store that does not exist yet (`trend`, `report`,
//!   `history show` read; they do not create).
//! - [`Store::record_runs`] writes runs in ONE transaction: all of them or none. A run already in
//!   the store (same plan and start time) is skipped and reported as such, so importing a
//!   results file twice adds nothing.
//! - [`Store::load`] gives every run since a time (and optionally one device) in time order.
//!
//! Point values of one device in one run are packed in one row (`device_runs.point_values`, in
//! the order of the run's layout, `layout_points.position`) — 8 bytes a sample instead of a row
//! a sample: 15.8 bytes a point sample on disk, and the fastest of the layouts measured to write
//! and to read (docs/PERFORMANCE.md, "History store").

use serde_json::Value as Json;

pub use super::raw::{Recorded, Unreachable, APPLICATION, SCHEMA_VERSION};
use super::{model::History, raw::IdCache, record::RunRecord};
use crate::outcome::Fail;

/// An open history store.
pub struct Store {
    backend: Backend,
    /// The target as given (a path or a URL without password).
    target: String,
    ids: IdCache,
}

enum Backend {
    Sqlite(super::sqlite::Sqlite),
    Postgres(super::postgres::Postgres),
}

/// Is this target a PostgreSQL URL?
pub fn is_postgres(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

impl Store {
    /// Open (creating if missing) the store at `target`: a SQLite path or a `postgres://` URL.
    pub async fn open(target: &str) -> anyhow::Result<Store> {
        Self::open_with(target, true).await
    }

    /// Open a store that must already exist (for reading).
    pub async fn open_existing(target: &str) -> anyhow::Result<Store> {
        Self::open_with(target, false).await
    }

    async fn open_with(target: &str, create: bool) -> anyhow::Result<Store> {
        let backend = if is_postgres(target) {
            Backend::Postgres(super::postgres::Postgres::open(target, create).await?)
        } else {
            Backend::Sqlite(super::sqlite::Sqlite::open(
                std::path::Path::new(target),
                create,
            )?)
        };
        Ok(Store {
            backend,
            target: target.to_string(),
            ids: IdCache::default(),
        })
    }

    /// The target as given.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Record one `check` results document (this machine's host name where the document names
    /// none).
    pub async fn record(&mut self, doc: &Json) -> anyhow::Result<Recorded> {
        let run = RunRecord::from_doc(doc, "this run's results", &super::record::host_name())
            .map_err(|e| Fail::unknown(e.to_string()))?;
        Ok(self.record_runs(std::slice::from_ref(&run)).await?[0])
    }

    /// Record runs in one transaction; per run whether it was added or already there.
    pub async fn record_runs(&mut self, runs: &[RunRecord]) -> anyhow::Result<Vec<Recorded>> {
        let r = match &mut self.backend {
            Backend::Sqlite(s) => s.record_runs(runs, &mut self.ids),
            Backend::Postgres(p) => p.record_runs(runs, &mut self.ids).await,
        };
        if r.is_err() {
            self.ids = IdCache::default();
        }
        r.map_err(|e| {
            let what = format!("{e:#}");
            match e.downcast::<Fail>() {
                Ok(f) => f.into(),
                Err(_) => Unreachable(format!(
                    "cannot record into the history store {}: {what}; nothing of this batch was \
                     recorded",
                    self.target
                ))
                .into(),
            }
        })
    }

    /// Every run that started at or after `since_ms` (all when `None`), and the series of
    /// `device` only (every device when `None`).
    pub async fn load(
        &self,
        since_ms: Option<i64>,
        device: Option<&str>,
    ) -> anyhow::Result<History> {
        let since = since_ms.unwrap_or(i64::MIN);
        let raw = match &self.backend {
            Backend::Sqlite(s) => s.load(since, device),
            Backend::Postgres(p) => p.load(since, device).await,
        }
        .map_err(|e| {
            Fail::unknown(format!(
                "cannot read the history store {}: {e:#}",
                self.target
            ))
        })?;
        Ok(raw.into_history())
    }
}
