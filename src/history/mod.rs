//! The history of `check` runs (issue 14; docs/DESIGN.md "History"): a store that records every
//! run (an embedded `SQLite` file, or a shared `PostgreSQL` database), what the store gives back over
//! a window ([`model::History`], column by column, ready for trends), and the trends themselves.
//!
//! ```text
//! history/model.rs   History, Run, DeviceSeries, PointSeries: what trend and report read
//! history/record.rs  a `check` results document → the rows one run adds to a store
//! history/store.rs   Store: open (SQLite path | postgres:// URL), create/migrate, record, load
//! history/raw.rs     what both backends share: encodings, the id cache, rows → History
//! history/sqlite.rs  the embedded SQLite file (schema, WAL, one transaction per batch)
//! history/postgres.rs the shared PostgreSQL database (same schema; password rules)
//! history/theil_sen.rs pure: Theil–Sen slope, Sen's interval, the Mann–Kendall test
//! history/trend.rs   pure: each series' line, trend or not, projected crossings, verdicts
//! history/trend_output.rs  trend rows, its results document, Nagios output
//! ```
//! Layer 3 (beside `report`, which draws its charts): it uses `check`'s results *documents* (JSON),
//! never `check` itself, so `check` (layer 4) can record into it.

pub mod chart;
pub mod model;
pub mod postgres;
pub mod raw;
pub mod record;
pub mod sqlite;
pub mod store;
pub mod theil_sen;
pub mod trend;
pub mod trend_output;
