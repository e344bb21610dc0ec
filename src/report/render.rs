//! Reports from results documents (`plcprobe.results/1`, kinds `check`, `diff`, `poll` and
//! `decode`): Markdown to paste into a ticket, one self-contained HTML file (inline CSS and SVG,
//! no JavaScript, no fetches: plant laptops are offline) that prints well to PDF, and JSON for
//! machines.
//!
//! Every report names the tool version, the exact command lines, the time, and each device's
//! identity. Device-supplied text is escaped for HTML and Markdown.
//!
//! This file is the document frame only: which documents are accepted ([`validate`]), the
//! overall verdict ([`overall`]), the head (verdict, time, tool version, one line per input) and
//! the foot (each input's command line), and the format chosen by the output's extension
//! ([`render_for_path`]). Each kind's section, in both formats, is written by its own file
//! beside this one (`check.rs`, `diff.rs`, `poll.rs`, `decode.rs`); the pieces they share are in
//! `markup.rs`.

use std::path::Path;

use serde_json::{json, Value as Json};

use super::{
    check, decode, diff,
    markup::{badge, esc, md, md_command, s, CSS, VERDICTS},
    poll, trend,
};

/// How a kind's section is written: to HTML, and to Markdown.
type Section = (fn(&mut String, &Json), fn(&mut String, &Json));

/// The section writers of each kind a report knows.
fn section(kind: &str) -> Option<Section> {
    match kind {
        "check" => Some((check::html, check::markdown)),
        "diff" => Some((diff::html, diff::markdown)),
        "poll" => Some((poll::html, poll::markdown)),
        "decode" => Some((decode::html, decode::markdown)),
        "trend" => Some((trend::html, trend::markdown)),
        _ => None,
    }
}

fn rank(v: &str) -> usize {
    VERDICTS.iter().position(|r| *r == v).unwrap_or(3)
}

/// The worst verdict of the documents.
pub fn overall(docs: &[Json]) -> &'static str {
    VERDICTS[docs
        .iter()
        .map(|d| rank(s(d, "verdict")))
        .max()
        .unwrap_or(0)]
}

/// Check that a document is a results document of a kind the report knows.
pub fn validate(name: &str, doc: &Json) -> anyhow::Result<()> {
    match (s(doc, "format"), s(doc, "kind")) {
        ("plcprobe.results/1", k) if section(k).is_some() => Ok(()),
        ("plcprobe.results/1", k) => anyhow::bail!("{name}: results of kind `{k}` cannot be reported yet; use results of check, diff, poll, decode or trend"),
        _ => anyhow::bail!("{name} is not a plcprobe results file; make one with `plcprobe check PLAN --results FILE`, `plcprobe poll … --results FILE`, `plcprobe decode CAPTURE --results FILE` or `plcprobe diff … --format json > FILE`"),
    }
}

/// What the frame of a report is made of in one format; [`frame`] puts it together.
struct Frame {
    /// Title, overall verdict, time and tool version, up to the list of inputs.
    head: String,
    /// One input in that list: its verdict, kind and summary.
    input: fn(&Json) -> String,
    /// After the list, before the sections.
    list_end: &'static str,
    /// This format's writer out of a kind's pair.
    section: fn(Section) -> fn(&mut String, &Json),
    /// After the sections, before the commands.
    foot: &'static str,
    /// One input's command line, time and tool version.
    command: fn(&Json) -> String,
    /// After the commands.
    end: &'static str,
}

/// Head, one line per input, each input's section, one command line per input.
fn frame(docs: &[Json], f: &Frame) -> String {
    let mut o = f.head.clone();
    for d in docs {
        o.push_str(&(f.input)(d));
    }
    o.push_str(f.list_end);
    for d in docs {
        if let Some(pair) = section(s(d, "kind")) {
            (f.section)(pair)(&mut o, d);
        }
    }
    o.push_str(f.foot);
    for d in docs {
        o.push_str(&(f.command)(d));
    }
    o.push_str(f.end);
    o
}

/// The self-contained HTML report.
pub fn render_html(docs: &[Json]) -> String {
    let verdict = overall(docs);
    let head = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>plcprobe report: {verdict}</title><style>{CSS}</style></head><body>\
         <h1>plcprobe diagnostic report</h1><div class=\"badge verdict {verdict}\">{verdict}</div>\
         <p class=\"meta\">generated {} by plcprobe {} from {} result file(s)</p><ul>",
        esc(&crate::clock::now_rfc3339()),
        env!("CARGO_PKG_VERSION"),
        docs.len()
    );
    let html = Frame {
        head,
        input: |d| {
            let (verdict, kind, summary) = (s(d, "verdict"), s(d, "kind"), s(d, "summary"));
            format!(
                "<li>{} {}: {}</li>",
                badge(verdict),
                esc(kind),
                esc(summary)
            )
        },
        list_end: "</ul>",
        section: |(html, _)| html,
        foot: "<footer>Commands:<ul>",
        command: |d| {
            let (command, at, version) =
                (s(d, "command"), s(d, "generated_at"), s(d, "tool_version"));
            format!(
                "<li><code>{}</code> at {} (plcprobe {})</li>",
                esc(command),
                esc(at),
                esc(version)
            )
        },
        end: "</ul></footer></body></html>\n",
    };
    frame(docs, &html)
}

/// The Markdown report.
pub fn render_markdown(docs: &[Json]) -> String {
    let head = format!(
        "# plcprobe diagnostic report: **{}**\n\nGenerated {} by plcprobe {}.\n\n",
        overall(docs),
        crate::clock::now_rfc3339(),
        env!("CARGO_PKG_VERSION")
    );
    let markdown = Frame {
        head,
        input: |d| {
            let (verdict, kind, summary) = (s(d, "verdict"), s(d, "kind"), s(d, "summary"));
            format!("- **{verdict}** {kind}: {}\n", md(summary))
        },
        list_end: "",
        section: |(_, markdown)| markdown,
        foot: "\n---\nCommands:\n",
        command: |d| {
            let (at, version) = (s(d, "generated_at"), s(d, "tool_version"));
            format!("- `{}` at {at} (plcprobe {version})\n", md_command(d))
        },
        end: "",
    };
    frame(docs, &markdown)
}

/// Render for an output path by its extension.
pub fn render_for_path(path: &Path, docs: &[Json]) -> anyhow::Result<Vec<u8>> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => Ok(render_html(docs).into_bytes()),
        Some("md" | "markdown") => Ok(render_markdown(docs).into_bytes()),
        Some("json") => {
            let mut v = serde_json::to_vec_pretty(
                &json!({"format": "plcprobe.report/1", "verdict": overall(docs), "tool_version": env!("CARGO_PKG_VERSION"), "inputs": docs}),
            )?;
            v.push(b'\n');
            Ok(v)
        }
        _ => anyhow::bail!(
            "{}: the report format follows the extension; use .html, .md or .json",
            path.display()
        ),
    }
}
