//! The `diff` section of a report: a baseline compared with the current values, in HTML and
//! Markdown. Also the drift table itself ([`drift_table`]), which a health check shows for each
//! device that has a baseline.
//!
//! Input: a results document of kind `diff` (its `diff` object: targets, times, identity changes
//! and one row per point). Only rows that drifted are shown; unchanged and ignored points are
//! left out.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::markup::{arr, esc, html_heading, md, md_heading, s, val, Column, Entry, Table};

/// The rows of a diff object that drifted (not `unchanged`, not `ignored`).
pub(crate) fn changed_rows(diff: &Json) -> Vec<&Json> {
    arr(diff, "rows")
        .iter()
        .filter(|r| !matches!(s(r, "verdict"), "unchanged" | "ignored"))
        .collect()
}

/// One line per drifted point: baseline and current value, delta and tolerance.
pub(crate) fn drift_table(rows: &[&Json]) -> Table {
    Table::of(
        rows,
        &[
            (Column::text("verdict"), |r| Entry::text(s(r, "verdict"))),
            (Column::text("point"), |r| Entry::text(s(r, "name"))),
            (Column::mono("address"), |r| {
                Entry::Code(s(r, "address").into())
            }),
            (Column::num("baseline"), |r| quantity(r, "baseline")),
            (Column::num("current"), |r| quantity(r, "current")),
            (Column::num("delta"), |r| Entry::Text(val(&r["delta"]))),
            (Column::num("tolerance"), |r| {
                Entry::Text(val(&r["tolerance"]))
            }),
            (Column::text("note"), |r| Entry::text(s(r, "note"))),
        ],
    )
}

/// A value of a drift row (`baseline`, `current`) with the point's unit.
fn quantity(row: &Json, k: &str) -> Entry {
    Entry::Quantity(val(&row[k]), s(row, "unit").into())
}

/// HTML section for one diff document.
pub(crate) fn html(o: &mut String, doc: &Json) {
    let df = &doc["diff"];
    let meta = format!(
        "baseline of {} vs {} · {}",
        esc(s(df, "baseline_taken_at")),
        esc(s(df, "current_taken_at")),
        esc(s(doc, "summary"))
    );
    html_heading(o, doc, "Drift", &esc(s(df, "baseline_target")), &meta);
    for change in identity_changes(df) {
        let _ = write!(
            o,
            "<p><strong>Identity changed:</strong> {}</p>",
            esc(&change)
        );
    }
    let rows = changed_rows(df);
    if rows.is_empty() {
        o.push_str("<p>No drift: every point is within its tolerance.</p>");
    } else {
        drift_table(&rows).html(o);
    }
}

/// Markdown section for one diff document.
pub(crate) fn markdown(o: &mut String, doc: &Json) {
    let df = &doc["diff"];
    let title = format!("Drift of {}", md(s(df, "baseline_target")));
    let meta = format!(
        "Baseline of {} vs {}: {}",
        s(df, "baseline_taken_at"),
        s(df, "current_taken_at"),
        md(s(doc, "summary"))
    );
    md_heading(o, doc, &title, &meta);
    for change in identity_changes(df) {
        let _ = writeln!(o, "\n**Identity changed:** {}", md(&change));
    }
    o.push('\n');
    drift_table(&changed_rows(df)).markdown(o);
}

/// The identity fields that changed, as `field: before → after` (not escaped).
fn identity_changes(diff: &Json) -> Vec<String> {
    match diff.get("identity_changes") {
        Some(Json::Object(ch)) => ch
            .iter()
            .map(|(k, v)| format!("{k}: {} → {}", val(&v[0]), val(&v[1])))
            .collect(),
        _ => Vec::new(),
    }
}
