//! The `poll` section of a report: one target read again and again, in HTML and Markdown.
//!
//! Input: a results document of kind `poll` (`statistics` with counts, errors and round-trip
//! quantiles; `samples` with one round trip or error each; `points` with a `trend` of values).
//! Shows the link statistics, the round trip of every poll (failures marked) and a trend for
//! each point whose value moved.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::markup::{
    arr, error_counts, esc, html_heading, md, md_heading, md_rtt_line, md_trends, quantiles,
    rtt_chart, s, trend_charts, val, Column, Entry, Table, TrendAxis,
};

/// HTML section for one poll document.
pub(crate) fn html(o: &mut String, doc: &Json) {
    let st = &doc["statistics"];
    let subject = format!("<span class=\"mono\">{}</span>", esc(s(doc, "target")));
    let meta = format!(
        "{} · {:.1} s",
        esc(s(doc, "summary")),
        st["elapsed_s"].as_f64().unwrap_or(0.0)
    );
    html_heading(o, doc, "Poll", &subject, &meta);
    Table::of(
        [st],
        &[
            (Column::num("sent"), |st| Entry::raw(&st["sent"])),
            (Column::num("received"), |st| Entry::raw(&st["received"])),
            (Column::text("errors"), |st| Entry::Text(error_counts(st))),
            (Column::num("loss"), |st| {
                Entry::Raw(format!("{}%", val(&st["loss_pct"])))
            }),
            (Column::num("rtt min / p50 / p95 / max"), |st| {
                Entry::Raw(format!("{} ms", quantiles(&st["rtt_ms"], " / ")))
            }),
            (Column::num("connections"), |st| Entry::raw(&st["connects"])),
        ],
    )
    .html(o);
    let samples = arr(doc, "samples");
    if let Some(last) = samples.last() {
        o.push_str(&rtt_chart(
            samples,
            |_, x| x["seq"].as_f64().unwrap_or(0.0),
            &format!(
                "round trip in ms per poll ({} shown, × = failed)",
                samples.len()
            ),
            &[],
            ("poll 1", &format!("poll {}", val(&last["seq"]))),
        ));
    }
    trend_charts(o, doc, TrendAxis::FirstLast);
}

/// Markdown section for one poll document.
pub(crate) fn markdown(o: &mut String, doc: &Json) {
    let st = &doc["statistics"];
    let title = format!("Poll of `{}`", md(s(doc, "target")));
    md_heading(o, doc, &title, &md(s(doc, "summary")));
    o.push('\n');
    let _ = writeln!(
        o,
        "{}",
        md_rtt_line("Round trip", &st["rtt_ms"], arr(doc, "samples"))
    );
    let errors = error_counts(st);
    if !errors.is_empty() {
        let _ = writeln!(o, "\nErrors: {}", md(&errors));
    }
    md_trends(o, doc);
}
