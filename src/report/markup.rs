//! The building blocks every report section is written with, HTML and Markdown alike:
//!
//! - field access on results documents that never fails ([`s`], [`arr`]) and the one way a
//!   value is written as text ([`val`], [`quantiles`]);
//! - escaping: [`esc`] for HTML, [`md`] for Markdown; both map each character on its own, so
//!   escaping parts and joining them equals escaping the whole;
//! - tables as data ([`Table`]): built once per section, written by [`Table::html`] and
//!   [`Table::markdown`], so the two formats cannot drift apart;
//! - charts: inline SVG line charts ([`svg_chart`], [`rtt_chart`], [`trend_charts`]) for HTML,
//!   text sparklines ([`sparkline`]) for Markdown;
//! - the verdict badge, each section's heading ([`html_heading`], [`md_heading`]) and the
//!   report's CSS.
//!
//! Nothing here knows a result kind, and this file imports nothing from the other report
//! files: they all import it.

use std::fmt::Write as _;

use serde_json::{json, Value as Json};

// --------------------------------------------------------------------------- field access

/// The string field `k` of `v`, or `""`.
pub(crate) fn s<'a>(v: &'a Json, k: &str) -> &'a str {
    v.get(k).and_then(Json::as_str).unwrap_or("")
}

/// The array field `k` of `v`, or an empty slice.
pub(crate) fn arr<'a>(v: &'a Json, k: &str) -> &'a [Json] {
    v.get(k).and_then(Json::as_array).map_or(&[], Vec::as_slice)
}

/// A value as report text: nothing for null, strings as they are, whole numbers without a
/// fraction, others rounded to 6 decimals.
pub(crate) fn val(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(t) => t.clone(),
        Json::Number(n) => n.as_f64().map_or_else(
            || n.to_string(),
            |f| {
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    format!("{f:.0}")
                } else {
                    format!("{}", (f * 1e6).round() / 1e6)
                }
            },
        ),
        other => other.to_string(),
    }
}

/// `min`, `p50`, `p95` and `max` of a statistics object, joined by `sep`.
pub(crate) fn quantiles(stats: &Json, sep: &str) -> String {
    [&stats["min"], &stats["p50"], &stats["p95"], &stats["max"]]
        .map(val)
        .join(sep)
}

/// The round trip of a sample, if it was answered.
pub(crate) fn ok_rtt(sample: &Json) -> Option<f64> {
    if sample["error"].is_null() {
        sample["rtt_ms"].as_f64()
    } else {
        None
    }
}

/// Error counts of a statistics object (`{"timeout": 3}`) as `timeout 3, …`; empty if none.
pub(crate) fn error_counts(stats: &Json) -> String {
    stats["errors"].as_object().map_or(String::new(), |m| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

// ------------------------------------------------------------------------------- escaping

/// Escape text for HTML.
pub fn esc(t: &str) -> String {
    let mut o = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// Escape text for a Markdown table cell.
pub fn md(t: &str) -> String {
    t.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
        .replace('<', "&lt;")
        .replace('`', "\\`")
}

// ----------------------------------------------------------------------- verdicts, headings

/// The verdicts, best first: a document's verdict ranks by its place here.
pub(crate) const VERDICTS: [&str; 4] = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];

/// A coloured verdict badge (HTML); anything not a verdict shows as `UNKNOWN`.
pub(crate) fn badge(v: &str) -> String {
    let v = if VERDICTS.contains(&v) { v } else { "UNKNOWN" };
    format!("<span class=\"badge {v}\">{v}</span>")
}

/// The command line of a document, safe between Markdown backticks.
pub(crate) fn md_command(doc: &Json) -> String {
    s(doc, "command").replace('`', "'")
}

/// A section's heading (HTML): `title`, the document's verdict badge and `subject`, then a meta
/// line, `meta` and the document's command line. `subject` and `meta` are HTML already.
pub(crate) fn html_heading(o: &mut String, doc: &Json, title: &str, subject: &str, meta: &str) {
    let _ = write!(
        o,
        "<h2>{title} {} {subject}</h2><p class=\"meta\">{meta} · <code>{}</code></p>",
        badge(s(doc, "verdict")),
        esc(s(doc, "command"))
    );
}

/// A section's heading (Markdown): `title` and the document's verdict, then a paragraph, `meta`
/// and the document's command line. `title` and `meta` are Markdown already.
pub(crate) fn md_heading(o: &mut String, doc: &Json, title: &str, meta: &str) {
    let _ = writeln!(
        o,
        "\n## {title} — **{}**\n\n{meta}. Command: `{}`",
        s(doc, "verdict"),
        md_command(doc)
    );
}

// ---------------------------------------------------------------------------------- tables

/// How a column is laid out: HTML cell class and Markdown alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Plain text, left-aligned.
    Text,
    /// Monospace in HTML (addresses, targets, times), left-aligned.
    Mono,
    /// A number: right-aligned, tabular figures.
    Num,
}

/// Which formats show a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Both,
    Html,
    Markdown,
}

/// A column of a [`Table`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    head: &'static str,
    layout: Layout,
    shown: Shown,
}

impl Column {
    /// A text column.
    pub(crate) const fn text(head: &'static str) -> Self {
        Self::new(head, Layout::Text)
    }

    /// A monospace column.
    pub(crate) const fn mono(head: &'static str) -> Self {
        Self::new(head, Layout::Mono)
    }

    /// A number column.
    pub(crate) const fn num(head: &'static str) -> Self {
        Self::new(head, Layout::Num)
    }

    const fn new(head: &'static str, layout: Layout) -> Self {
        Self {
            head,
            layout,
            shown: Shown::Both,
        }
    }

    /// Only in HTML (the Markdown table is kept narrow).
    pub(crate) const fn html_only(self) -> Self {
        Self {
            shown: Shown::Html,
            ..self
        }
    }

    /// Only in Markdown (a short form of an HTML-only column).
    pub(crate) const fn markdown_only(self) -> Self {
        Self {
            shown: Shown::Markdown,
            ..self
        }
    }
}

/// One cell of a [`Table`]: what it says, and how each format escapes and decorates it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    /// Text, escaped for the format.
    Text(String),
    /// Written as it is in both formats: numbers the report formatted itself.
    Raw(String),
    /// Text in Markdown backticks (HTML: escaped text, the column gives the monospace).
    Code(String),
    /// A verdict: a badge in HTML, bold in Markdown.
    Verdict(String),
    /// A value and its unit, escaped: HTML trims the space when there is no unit, Markdown
    /// writes value, space, unit.
    Quantity(String, String),
    /// A number written as it is, a space, then escaped text (`3 Read Holding Registers`).
    NumberAnd(String, String),
}

impl Entry {
    /// Escaped text.
    pub(crate) fn text(t: impl Into<String>) -> Self {
        Self::Text(t.into())
    }

    /// A value of the document as it is ([`val`]), not escaped.
    pub(crate) fn raw(v: &Json) -> Self {
        Self::Raw(val(v))
    }

    fn html(&self) -> String {
        match self {
            Self::Text(t) | Self::Code(t) => esc(t),
            Self::Raw(t) => t.clone(),
            Self::Verdict(v) => badge(v),
            Self::Quantity(v, unit) => esc(format!("{v} {unit}").trim()),
            Self::NumberAnd(n, t) => format!("{n} {}", esc(t)),
        }
    }

    fn markdown(&self) -> String {
        match self {
            Self::Text(t) => md(t),
            Self::Raw(t) => t.clone(),
            Self::Code(t) => format!("`{}`", md(t)),
            Self::Verdict(v) => format!("**{v}**"),
            Self::Quantity(v, unit) => format!("{} {}", md(v), md(unit)),
            Self::NumberAnd(n, t) => format!("{n} {}", md(t)),
        }
    }
}

/// A table as data: written once per section, rendered to HTML and to Markdown.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Entry>>,
}

/// A column of a [`Table`] and what its cell says for one item (a device, a point, …).
pub(crate) type Col<T> = (Column, fn(&T) -> Entry);

impl Table {
    /// One row per item, one cell per column; each column says its header, its layout and what
    /// its cell holds, side by side.
    pub(crate) fn of<T>(items: impl IntoIterator<Item = T>, columns: &[Col<T>]) -> Self {
        Self {
            columns: columns.iter().map(|c| c.0).collect(),
            rows: items
                .into_iter()
                .map(|item| columns.iter().map(|c| (c.1)(&item)).collect())
                .collect(),
        }
    }

    /// No rows.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The HTML `<table>`, header row first.
    pub(crate) fn html(&self, o: &mut String) {
        let shown = |c: &&Column| c.shown != Shown::Markdown;
        o.push_str("<table><tr>");
        for c in self.columns.iter().filter(shown) {
            let _ = write!(o, "<th>{}</th>", c.head);
        }
        o.push_str("</tr>");
        for row in &self.rows {
            o.push_str("<tr>");
            for (c, e) in self.columns.iter().zip(row).filter(|(c, _)| shown(c)) {
                let class = match c.layout {
                    Layout::Text => "",
                    Layout::Mono => " class=\"mono\"",
                    Layout::Num => " class=\"num\"",
                };
                let _ = write!(o, "<td{class}>{}</td>", e.html());
            }
            o.push_str("</tr>");
        }
        o.push_str("</table>");
    }

    /// The Markdown table: header, alignment row, one line a row, each ending in a newline.
    pub(crate) fn markdown(&self, o: &mut String) {
        let shown = |c: &&Column| c.shown != Shown::Html;
        let line = |o: &mut String, cells: Vec<String>| {
            let _ = writeln!(o, "| {} |", cells.join(" | "));
        };
        line(
            o,
            self.columns
                .iter()
                .filter(shown)
                .map(|c| c.head.to_string())
                .collect(),
        );
        o.push('|');
        for c in self.columns.iter().filter(shown) {
            o.push_str(if c.layout == Layout::Num {
                "---:|"
            } else {
                "---|"
            });
        }
        o.push('\n');
        for row in &self.rows {
            let cells = self.columns.iter().zip(row).filter(|(c, _)| shown(c));
            line(o, cells.map(|(_, e)| e.markdown()).collect());
        }
    }
}

// ---------------------------------------------------------------------------------- charts

/// Size and x-axis labels of a chart.
pub struct ChartFrame<'a> {
    /// Width and height in px.
    pub size: (f64, f64),
    /// Labels under the first and last x.
    pub x_labels: (&'a str, &'a str),
}

/// A line chart of (x, y) with gaps where y is missing, failures marked on the x axis.
pub fn svg_chart(
    points: &[(f64, Option<f64>)],
    title: &str,
    unit: &str,
    thresholds: &[(f64, &str)],
    frame: &ChartFrame<'_>,
) -> String {
    let (w, h) = frame.size;
    let (l, r, t, b) = (66.0, 12.0, 22.0, 28.0);
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = points.iter().filter_map(|p| p.1).collect();
    let (x0, x1) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let (mut y0, mut y1) = (
        ys.iter().copied().fold(f64::INFINITY, f64::min),
        ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    // Draw a threshold only where it means something for these values: crossed, or near them
    // (a far-away limit would flatten the line into the axis).
    let near = 0.25 * (y1 - y0).max(y1.abs().max(y0.abs()) * 0.05);
    let thresholds: Vec<&(f64, &str)> = thresholds
        .iter()
        .filter(|(th, _)| th.is_finite() && y0.is_finite() && *th >= y0 - near && *th <= y1 + near)
        .collect();
    for (th, _) in &thresholds {
        y0 = y0.min(*th);
        y1 = y1.max(*th);
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    if (y1 - y0).abs() < 1e-12 {
        y0 -= 1.0_f64.max(y0.abs() * 0.05);
        y1 += 1.0_f64.max(y1.abs() * 0.05);
    }
    let pad = (y1 - y0) * 0.08;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let span_x = if (x1 - x0).abs() < 1e-12 {
        1.0
    } else {
        x1 - x0
    };
    let px = |x: f64| l + (x - x0) / span_x * (w - l - r);
    let py = |y: f64| t + (1.0 - (y - y0) / (y1 - y0)) * (h - t - b);
    let mut o = String::new();
    let _ = write!(o, "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">", esc(title));
    let heading = if unit.is_empty() {
        title.to_string()
    } else {
        format!("{title} ({unit})")
    };
    let _ = write!(
        o,
        "<text x=\"{l}\" y=\"14\" class=\"ct\">{}</text>",
        esc(&heading)
    );
    let _ = write!(o, "<line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"ax\"/><line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{}\" class=\"ax\"/>", h - b, w - r, h - b, h - b);
    for frac in [0.0, 0.5, 1.0] {
        let y = y0 + (y1 - y0) * frac;
        let _ = write!(o, "<text x=\"{}\" y=\"{:.1}\" class=\"tk\" text-anchor=\"end\">{}</text><line x1=\"{l}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" class=\"gr\"/>", l - 4.0, py(y) + 3.0, esc(&fmt_tick(y, y1 - y0)), py(y), w - r, py(y));
    }
    for (th, name) in thresholds {
        if *th >= y0 && *th <= y1 {
            let _ = write!(o, "<line x1=\"{l}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" class=\"th\"/><text x=\"{}\" y=\"{:.1}\" class=\"tk\" text-anchor=\"end\">{}</text>", py(*th), w - r, py(*th), w - r, py(*th) - 3.0, esc(name));
        }
    }
    let _ = write!(o, "<text x=\"{l}\" y=\"{}\" class=\"tk\">{}</text><text x=\"{}\" y=\"{}\" class=\"tk\" text-anchor=\"end\">{}</text>", h - 8.0, esc(frame.x_labels.0), w - r, h - 8.0, esc(frame.x_labels.1));
    let mut seg: Vec<String> = Vec::new();
    let flush = |seg: &mut Vec<String>, o: &mut String| {
        if seg.len() == 1 {
            let _ = write!(
                o,
                "<circle cx=\"{}\" r=\"2.5\" class=\"pt\"/>",
                seg[0].replace(',', "\" cy=\"")
            );
        } else if seg.len() > 1 {
            let _ = write!(o, "<polyline points=\"{}\" class=\"ln\"/>", seg.join(" "));
        }
        seg.clear();
    };
    for (x, y) in points {
        if let Some(y) = y {
            seg.push(format!("{:.1},{:.1}", px(*x), py(*y)));
        } else {
            flush(&mut seg, &mut o);
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"fail\" text-anchor=\"middle\">×</text>",
                px(*x),
                h - b - 2.0
            );
        }
    }
    flush(&mut seg, &mut o);
    o.push_str("</svg>");
    o
}

pub(crate) fn fmt_tick(y: f64, span: f64) -> String {
    // Enough decimals that the three ticks differ, and big values in k/M.
    let (v, suffix) = if y.abs() >= 1e6 {
        (y / 1e6, "M")
    } else if y.abs() >= 1e4 {
        (y / 1e3, "k")
    } else {
        (y, "")
    };
    let scaled_span = span / (y / v.max(f64::MIN_POSITIVE)).abs().max(1.0);
    let decimals = if scaled_span > 0.0 {
        (-(scaled_span / 2.0).log10()).ceil().clamp(0.0, 6.0) as usize
    } else {
        1
    };
    format!("{v:.decimals$}{suffix}")
}

/// The wide round-trip chart of a run of samples (failures marked), x from `x` of each sample's
/// index and sample, labelled `first` and `last` at the ends.
pub(crate) fn rtt_chart(
    samples: &[Json],
    x: impl Fn(usize, &Json) -> f64,
    title: &str,
    thresholds: &[(f64, &str)],
    (first, last): (&str, &str),
) -> String {
    let pts: Vec<(f64, Option<f64>)> = samples
        .iter()
        .enumerate()
        .map(|(i, sample)| (x(i, sample), ok_rtt(sample)))
        .collect();
    let frame = ChartFrame {
        size: (640.0, 200.0),
        x_labels: (first, last),
    };
    svg_chart(&pts, title, "", thresholds, &frame)
}

/// Which points moved during a run of polls (numeric, not constant): the ones worth a trend.
fn moved_points(doc: &Json) -> Vec<&Json> {
    arr(doc, "points")
        .iter()
        .filter(|p| {
            let t: Vec<f64> = arr(p, "trend").iter().filter_map(Json::as_f64).collect();
            t.len() >= 2 && t.iter().any(|x| (x - t[0]).abs() > 1e-12)
        })
        .collect()
}

/// How the x axis of trend charts is labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrendAxis {
    /// `round 1` … `round N`, the point's range drawn as `low`/`high` limits (check).
    Rounds,
    /// `first` … `last`, no limits (poll).
    FirstLast,
}

/// A grid of small charts, one per point of `doc` that moved (HTML); nothing if none did.
pub(crate) fn trend_charts(o: &mut String, doc: &Json, axis: TrendAxis) {
    let moved = moved_points(doc);
    if moved.is_empty() {
        return;
    }
    o.push_str("<div class=\"trends\">");
    for p in moved {
        let pts: Vec<(f64, Option<f64>)> = arr(p, "trend")
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64, v.as_f64()))
            .collect();
        let (limits, first, last) = match axis {
            TrendAxis::Rounds => (
                p.get("range")
                    .and_then(Json::as_array)
                    .map_or_else(Vec::new, |r| {
                        vec![
                            (r[0].as_f64().unwrap_or(f64::NAN), "low"),
                            (r[1].as_f64().unwrap_or(f64::NAN), "high"),
                        ]
                    }),
                "round 1".to_string(),
                format!("round {}", pts.len()),
            ),
            TrendAxis::FirstLast => (Vec::new(), "first".to_string(), "last".to_string()),
        };
        let frame = ChartFrame {
            size: (320.0, 150.0),
            x_labels: (&first, &last),
        };
        o.push_str(&svg_chart(
            &pts,
            s(p, "name"),
            s(p, "unit"),
            &limits,
            &frame,
        ));
    }
    o.push_str("</div>");
}

/// A bar per value, scaled from the smallest to the largest (Markdown); at most 120 bars.
pub(crate) fn sparkline(vals: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    const WIDTH: usize = 120;
    // Long runs: the worst (largest) value of each bucket, so a spike never disappears.
    let vals: Vec<f64> = if vals.len() > WIDTH {
        vals.chunks(vals.len().div_ceil(WIDTH))
            .map(|c| c.iter().copied().fold(f64::NEG_INFINITY, f64::max))
            .collect()
    } else {
        vals.to_vec()
    };
    let (lo, hi) = vals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    vals.iter()
        .map(|v| {
            if hi > lo {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize]
            } else {
                BARS[3]
            }
        })
        .collect()
}

/// `{label} min/p50/p95/max a/b/c/d ms` and a sparkline of the answered samples (Markdown).
pub(crate) fn md_rtt_line(label: &str, stats: &Json, samples: &[Json]) -> String {
    let rtts: Vec<f64> = samples.iter().filter_map(ok_rtt).collect();
    format!(
        "{label} min/p50/p95/max {} ms `{}`",
        quantiles(stats, "/"),
        sparkline(&rtts)
    )
}

/// One line per point of `doc` that moved: first and last value and a sparkline (Markdown).
pub(crate) fn md_trends(o: &mut String, doc: &Json) {
    for p in moved_points(doc) {
        let t: Vec<f64> = arr(p, "trend").iter().filter_map(Json::as_f64).collect();
        let _ = writeln!(
            o,
            "- trend {}: {} → {} {} `{}`",
            md(s(p, "name")),
            val(&json!(t[0])),
            val(&json!(t[t.len() - 1])),
            md(s(p, "unit")),
            sparkline(&t)
        );
    }
}

// ------------------------------------------------------------------------------------- CSS

/// The report's whole style sheet (inline: the file must stand alone, offline).
pub(crate) const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1f24;margin:24px auto;max-width:1000px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px}th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:700;color:#fff}
.OK{background:#1a7f37}.WARNING{background:#9a6700}.CRITICAL{background:#cf222e}.UNKNOWN{background:#6e7781}
.verdict{font-size:20px;padding:6px 16px;margin:8px 0}.meta{color:#57606a;font-size:12.5px}
.device{border:1px solid #d0d7de;border-radius:6px;padding:4px 14px 10px;margin:14px 0;break-inside:avoid}
ul.problems{margin:4px 0 8px;padding-left:20px}ul.problems li{margin:2px 0}
.chart{max-width:100%;height:auto;display:block;margin:6px 0}.chart .ct{font-size:12px;font-weight:600;fill:#1b1f24}
.chart .tk{font-size:10px;fill:#57606a}.chart .ax{stroke:#57606a;stroke-width:1}.chart .gr{stroke:#eaeef2;stroke-width:1}
.chart .th{stroke:#cf222e;stroke-width:1;stroke-dasharray:4 3}.chart .ln{fill:none;stroke:#0969da;stroke-width:1.6}
.chart .pt{fill:#0969da}.chart .fail{font-size:12px;fill:#cf222e;font-weight:700}
.chart .band{fill:#1a7f37;fill-opacity:.12}.chart .proj{stroke:#9a6700;stroke-width:1.4;stroke-dasharray:6 3}
.chart .cross{fill:#cf222e;stroke:#fff;stroke-width:1}
.trends{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:4px 16px}
.trends .chart .ct{font-size:11px}.trends .chart .tk{font-size:9px}
footer{margin-top:32px;color:#57606a;font-size:12px;border-top:1px solid #d0d7de;padding-top:8px}
@media print{body{margin:0;max-width:none;font-size:11px}.device,table,svg{break-inside:avoid}h2{break-after:avoid}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_device_text() {
        assert_eq!(esc("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
        assert_eq!(esc("a\u{1b}[31m"), "a\\u{1b}[31m");
        assert_eq!(md("a|b`c"), "a\\|b\\`c");
    }

    #[test]
    fn escaping_parts_equals_escaping_the_whole() {
        let (a, b) = ("x<|`\\\n&'", "\"y|<");
        assert_eq!(esc(&format!("{a}{b}")), esc(a) + &esc(b));
        assert_eq!(md(&format!("{a}{b}")), md(a) + &md(b));
    }

    #[test]
    fn one_table_two_formats() {
        let t = Table::of(
            ["WARNING"],
            &[
                (Column::text("status"), |v| Entry::Verdict((*v).into())),
                (Column::mono("address"), |_| Entry::Code("hr:1|<".into())),
                (Column::num("value"), |_| {
                    Entry::Quantity("5".into(), String::new())
                }),
                (Column::mono("frames").html_only(), |_| {
                    Entry::Raw("7→8".into())
                }),
                (Column::num("short").markdown_only(), |_| {
                    Entry::NumberAnd("3".into(), "a<b|c".into())
                }),
            ],
        );
        let (mut h, mut m) = (String::new(), String::new());
        t.html(&mut h);
        t.markdown(&mut m);
        assert_eq!(
            h,
            "<table><tr><th>status</th><th>address</th><th>value</th><th>frames</th></tr>\
             <tr><td><span class=\"badge WARNING\">WARNING</span></td>\
             <td class=\"mono\">hr:1|&lt;</td><td class=\"num\">5</td>\
             <td class=\"mono\">7→8</td></tr></table>"
        );
        assert_eq!(
            m,
            "| status | address | value | short |\n|---|---|---:|---:|\n\
             | **WARNING** | `hr:1\\|&lt;` | 5  | 3 a&lt;b\\|c |\n"
        );
    }

    #[test]
    fn chart_has_gaps_and_marks_failures() {
        let frame = ChartFrame {
            size: (640.0, 200.0),
            x_labels: ("1", "5"),
        };
        let svg = svg_chart(
            &[
                (0.0, Some(1.0)),
                (1.0, Some(2.0)),
                (2.0, None),
                (3.0, Some(1.5)),
                (4.0, Some(1.0)),
            ],
            "t",
            "ms",
            &[(50.0, "warn")],
            &frame,
        );
        assert_eq!(
            svg.matches("<polyline").count(),
            2,
            "a failure breaks the line"
        );
        assert!(svg.contains('×'));
        assert!(!svg.contains("NaN"), "{svg}");
        let flat = svg_chart(
            &[(0.0, Some(5.0)), (1.0, Some(5.0))],
            "flat",
            "",
            &[],
            &frame,
        );
        assert!(!flat.contains("NaN") && !flat.contains("inf"), "{flat}");
    }

    #[test]
    fn sparkline_spans_the_bars() {
        assert_eq!(sparkline(&[0.0, 7.0]), "▁█");
        assert_eq!(sparkline(&[3.0, 3.0]), "▄▄");
        let long: Vec<f64> = (0..10_000)
            .map(|i| if i == 5_000 { 9.0 } else { 1.0 })
            .collect();
        let s = sparkline(&long);
        assert!(
            s.chars().count() <= 120 && s.contains('█'),
            "bounded, spike kept: {s}"
        );
    }
}
