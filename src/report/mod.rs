//! Output (docs/DESIGN.md §7): the one row writer ([`rows`]: table, json, jsonl, csv with the
//! same columns), the head of every results document ([`envelope`]), and the reports rendered
//! from results documents ([`render`]: HTML and Markdown).

mod check;
pub mod decode;
mod diff;
mod markup;
mod poll;
pub mod render;
pub mod rows;
mod trend;

pub use rows::{cell_text, write_rows, Cell, RowWriter, Rows};

use clap::ValueEnum;
use serde_json::{Map, Value as Json};

/// Output format (global `--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned table for people (default).
    #[default]
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header.
    Csv,
    /// Monitoring-plugin status line with perfdata (`check` only).
    Nagios,
}

/// The common head of every machine-readable results document: kind, tool version, the exact
/// command line and the time, so a report can say where its data came from.
pub fn envelope(kind: &str) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("format".into(), Json::String("plcprobe.results/1".into()));
    m.insert("kind".into(), Json::String(kind.into()));
    m.insert(
        "tool_version".into(),
        Json::String(env!("CARGO_PKG_VERSION").into()),
    );
    m.insert("command".into(), Json::String(command_line()));
    m.insert(
        "generated_at".into(),
        Json::String(crate::clock::now_rfc3339()),
    );
    m
}

/// This process's command line, shell-quoted where needed.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Monitoring-plugin name of an outcome.
pub fn verdict_name(o: crate::outcome::Outcome) -> &'static str {
    match o {
        crate::outcome::Outcome::Ok => "OK",
        crate::outcome::Outcome::Warning => "WARNING",
        crate::outcome::Outcome::Critical => "CRITICAL",
        crate::outcome::Outcome::Unknown => "UNKNOWN",
    }
}
