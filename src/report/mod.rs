//! Output writers over `W: Write` (docs/DESIGN.md §7): one row model, four formats with the same
//! fields. `table` is for people (comfy-table), `json` an array of objects, `jsonl` one object a
//! line, `csv` a header and rows. Numbers stay numbers in json/jsonl.

pub mod decode;
pub mod render;

use std::io::{self, Write};

use clap::ValueEnum;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, Color, ContentArrangement, Table};
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

/// Rows with named columns.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// Column names (also the JSON keys).
    pub columns: Vec<String>,
    /// Cells, one Vec per row, same length as `columns`.
    pub rows: Vec<Vec<Json>>,
}

impl Rows {
    /// Empty rows with these columns.
    pub fn new<S: AsRef<str>>(columns: &[S]) -> Self {
        Self {
            columns: columns.iter().map(|c| c.as_ref().to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row.
    pub fn push(&mut self, row: Vec<Json>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// One row as a JSON object.
    pub fn object(&self, row: &[Json]) -> Json {
        let mut m = Map::with_capacity(self.columns.len());
        for (k, v) in self.columns.iter().zip(row) {
            m.insert(k.clone(), v.clone());
        }
        Json::Object(m)
    }
}

/// Text of a cell for table and csv.
pub fn cell_text(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        Json::Array(a) => a.iter().map(cell_text).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

fn status_color(text: &str) -> Option<Color> {
    if text == "ok" || text == "OK" {
        Some(Color::Green)
    } else if text.starts_with("0x")
        || text.contains("timeout")
        || text.contains("error")
        || text.starts_with("CRIT")
    {
        Some(Color::Red)
    } else if text.starts_with("WARN") {
        Some(Color::Yellow)
    } else {
        None
    }
}

/// Write all rows at once in `format`. `color` colours the `status` column of tables.
pub fn write_rows(w: &mut dyn Write, format: Format, rows: &Rows, color: bool) -> io::Result<()> {
    match format {
        Format::Table | Format::Nagios => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header(rows.columns.iter());
            let status_col = rows.columns.iter().position(|c| *c == "status");
            for r in &rows.rows {
                t.add_row(r.iter().enumerate().map(|(i, v)| {
                    let text = cell_text(v);
                    let mut c = Cell::new(&text);
                    if color && Some(i) == status_col {
                        if let Some(col) = status_color(&text) {
                            c = c.fg(col);
                        }
                    }
                    c
                }));
            }
            // Colour is only ever set on cells explicitly (above), so the terminal is left
            // visible to comfy-table: on a terminal, long cells wrap to its width; on a pipe
            // there is no width and nothing wraps.
            writeln!(w, "{t}")
        }
        Format::Json => {
            let arr: Vec<Json> = rows.rows.iter().map(|r| rows.object(r)).collect();
            serde_json::to_writer_pretty(&mut *w, &arr)?;
            writeln!(w)
        }
        Format::Jsonl => {
            for r in &rows.rows {
                serde_json::to_writer(&mut *w, &rows.object(r))?;
                writeln!(w)?;
            }
            Ok(())
        }
        Format::Csv => {
            let mut c = csv::Writer::from_writer(w);
            c.write_record(&rows.columns)?;
            for r in &rows.rows {
                c.write_record(r.iter().map(cell_text))?;
            }
            c.flush()
        }
    }
}

/// Streams rows one at a time (for `poll`): the header once, then a row per call.
pub struct RowStream<'w> {
    w: Box<dyn Write + 'w>,
    format: Format,
    columns: Vec<String>,
    widths: Vec<usize>,
    started: bool,
}

impl<'w> RowStream<'w> {
    /// A stream of rows with these columns; `widths` are minimum table widths.
    pub fn new(
        w: Box<dyn Write + 'w>,
        format: Format,
        columns: Vec<String>,
        widths: &[usize],
    ) -> Self {
        let widths = columns
            .iter()
            .zip(widths.iter().chain(std::iter::repeat(&0)))
            .map(|(c, w)| (*w).max(c.len()))
            .collect();
        Self {
            w,
            format,
            columns,
            widths,
            started: false,
        }
    }

    /// Write one row (and the header before the first).
    pub fn row(&mut self, row: &[Json]) -> io::Result<()> {
        match self.format {
            Format::Table | Format::Nagios => {
                if !self.started {
                    let head: Vec<String> = self
                        .columns
                        .iter()
                        .zip(&self.widths)
                        .map(|(c, w)| format!("{c:<w$}"))
                        .collect();
                    writeln!(self.w, "{}", head.join("  ").trim_end())?;
                }
                let line: Vec<String> = row
                    .iter()
                    .zip(&self.widths)
                    .map(|(v, w)| format!("{:<w$}", cell_text(v)))
                    .collect();
                writeln!(self.w, "{}", line.join("  ").trim_end())?;
            }
            Format::Jsonl | Format::Json => {
                // A stream has no end to close an array with, so json streams as jsonl.
                // Written field by field: no per-row map of cloned keys.
                let mut line = Vec::with_capacity(64 + 16 * row.len());
                line.push(b'{');
                for (i, (k, v)) in self.columns.iter().zip(row).enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    serde_json::to_writer(&mut line, k)?;
                    line.push(b':');
                    serde_json::to_writer(&mut line, v)?;
                }
                line.extend_from_slice(b"}\n");
                self.w.write_all(&line)?;
            }
            Format::Csv => {
                let mut c = csv::Writer::from_writer(Vec::new());
                if !self.started {
                    c.write_record(&self.columns)?;
                }
                c.write_record(row.iter().map(cell_text))?;
                let buf = c
                    .into_inner()
                    .map_err(|e| io::Error::other(e.to_string()))?;
                self.w.write_all(&buf)?;
            }
        }
        self.started = true;
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Rows {
        let mut r = Rows::new(&["name", "value", "status"]);
        r.push(vec![json!("a"), json!(1.5), json!("ok")]);
        r.push(vec![
            json!("b,c"),
            Json::Null,
            json!("0x02 Illegal Data Address"),
        ]);
        r
    }

    fn render(f: Format) -> String {
        let mut out = Vec::new();
        write_rows(&mut out, f, &sample(), false).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn same_fields_in_every_format() {
        let j: Json = serde_json::from_str(&render(Format::Json)).unwrap();
        assert_eq!(j[0]["value"], json!(1.5));
        assert_eq!(j[1]["status"], json!("0x02 Illegal Data Address"));
        let lines: Vec<Json> = render(Format::Jsonl)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, j.as_array().unwrap().clone());
        let csv = render(Format::Csv);
        assert_eq!(
            csv,
            "name,value,status\na,1.5,ok\n\"b,c\",,0x02 Illegal Data Address\n"
        );
        let t = render(Format::Table);
        assert!(
            t.contains("0x02 Illegal Data Address") && t.contains("name"),
            "{t}"
        );
    }

    #[test]
    fn stream_writes_header_once() {
        let mut buf = Vec::new();
        {
            let mut s = RowStream::new(
                Box::new(&mut buf),
                Format::Csv,
                vec!["a".into(), "b".into()],
                &[],
            );
            s.row(&[json!(1), json!("x")]).unwrap();
            s.row(&[json!(2), json!("y")]).unwrap();
        }
        assert_eq!(String::from_utf8(buf).unwrap(), "a,b\n1,x\n2,y\n");
    }
}
