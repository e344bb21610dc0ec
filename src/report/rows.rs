//! The one row writer: every command's rows go out through [`RowWriter`] (streamed) or
//! [`write_rows`] (a whole [`Rows`] at once, which uses the same writer), in four formats with
//! the same columns (docs/DESIGN.md §7):
//!
//! - `table`: for people. Rows known up front are a boxed table (comfy-table, wrapped to the
//!   terminal); streamed rows (`poll`, `watch`, `decode --transactions`) are fixed-width lines
//!   that appear as they come. The `status` column may be coloured.
//! - `json`: one JSON array of row objects, also when streamed (closed by [`RowWriter::finish`],
//!   which every command calls, also after Ctrl-C).
//! - `jsonl`: one row object a line, flushed per row when streaming.
//! - `csv`: a header, then one record a row; null cells are empty.
//!
//! Cells are [`Cell`]s, borrowed where they can be, so a stream of a million transactions
//! builds no JSON tree and no per-row map. A *sparse* writer leaves null cells out of json and
//! jsonl objects (decode's rows, whose columns serve several protocols); otherwise every key is
//! in every object.

use std::{
    fmt::{self, Write as _},
    io::{self, Write},
};

use comfy_table::{presets::UTF8_FULL_CONDENSED, Color, ContentArrangement, Table};
use serde_json::Value as Json;

use super::Format;

/// Rows with named columns, all known before they are written.
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
}

/// One cell: a value a row writer writes the same way in every format.
#[derive(Clone, Copy)]
pub enum Cell<'a> {
    /// No value: `null` in json, empty in table and csv (left out of a sparse writer's objects).
    Null,
    /// Text.
    Str(&'a str),
    /// Text plcprobe made itself that holds no quote, backslash or control character (a
    /// function name, an RFC 3339 time): written without escaping, as a stream of millions of
    /// rows is mostly such words (checked in debug builds).
    Word(&'a str),
    /// Text plcprobe formats itself from numbers when it is written (an address, an endpoint):
    /// like a word, it holds no quote, backslash or control character (checked in debug
    /// builds). Device-supplied text is a `Str`.
    Show(&'a dyn fmt::Display),
    /// An unsigned integer.
    U(u64),
    /// A signed integer.
    I(i64),
    /// A number with exactly three decimals (milliseconds).
    Ms(f64),
    /// Any JSON value (numbers, arrays, objects as JSON; as text in table and csv).
    Json(&'a Json),
}

impl fmt::Debug for Cell<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.text(&mut s);
        write!(f, "{s:?}")
    }
}

impl Cell<'_> {
    fn is_null(&self) -> bool {
        matches!(self, Cell::Null | Cell::Json(Json::Null))
    }

    /// The cell as table/csv text, appended to `out`.
    fn text(&self, out: &mut String) {
        match self {
            Cell::Null => {}
            Cell::Str(s) | Cell::Word(s) => out.push_str(s),
            Cell::Show(d) => {
                let _ = write!(out, "{d}");
            }
            Cell::U(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::I(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Ms(v) => {
                let _ = write!(out, "{v:.3}");
            }
            Cell::Json(v) => out.push_str(&cell_text(v)),
        }
    }

    /// The cell as a JSON value, appended to `out`.
    fn json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Cell::Null => out.extend_from_slice(b"null"),
            Cell::Str(s) => serde_json::to_writer(&mut *out, s)?,
            Cell::Word(s) => {
                debug_assert!(!needs_escape(s.as_bytes()), "{s:?} is no word");
                out.push(b'"');
                out.extend_from_slice(s.as_bytes());
                out.push(b'"');
            }
            Cell::Show(d) => {
                let at = out.len();
                out.push(b'"');
                let _ = write!(out, "{d}");
                debug_assert!(!needs_escape(&out[at + 1..]), "{d} is no word");
                out.push(b'"');
            }
            Cell::U(v) => out.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
            Cell::I(v) => out.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
            Cell::Ms(v) => {
                if v.is_finite() {
                    let _ = write!(out, "{v:.3}");
                } else {
                    out.extend_from_slice(b"null"); // JSON has no NaN or infinity
                }
            }
            Cell::Json(v) => serde_json::to_writer(&mut *out, v)?,
        }
        Ok(())
    }
}

/// True when bytes need JSON string escaping (a quote, a backslash, a control character).
fn needs_escape(b: &[u8]) -> bool {
    b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\')
}

/// Text of a JSON cell for table and csv.
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

/// How a table shows: all rows at once in a box, or a line per row as rows come.
enum TableStyle {
    /// Boxed, wrapped to the terminal; printed by `finish`.
    Boxed(Table),
    /// Fixed-width lines, each column at least this wide (and as wide as its name, from the
    /// header on).
    Lines(Vec<usize>),
}

/// Writes rows with fixed columns in one format: a header first (table, csv), then one row per
/// call, then [`RowWriter::finish`].
pub struct RowWriter<'w> {
    w: Box<dyn Write + 'w>,
    format: Format,
    columns: Vec<String>,
    /// `,"name":` per column, encoded once (the comma is left out before the first).
    keys: Vec<Vec<u8>>,
    table: TableStyle,
    /// The columns a table shows (all when `None`), by index.
    table_cols: Option<Vec<usize>>,
    status_col: Option<usize>,
    color: bool,
    sparse: bool,
    flush_each: bool,
    rows: u64,
    line: Vec<u8>,
}

impl<'w> RowWriter<'w> {
    /// A writer of rows known as a whole (a boxed table).
    pub fn new<S: AsRef<str>>(w: Box<dyn Write + 'w>, format: Format, columns: &[S]) -> Self {
        let columns: Vec<String> = columns.iter().map(|c| c.as_ref().to_string()).collect();
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(columns.iter());
        // A terminal that reports a width of 0 (a pty nobody sized, some serial consoles):
        // wrapping to it would print one character per line; do not wrap at all.
        if t.width() == Some(0) {
            t.set_content_arrangement(ContentArrangement::Disabled);
        }
        Self::with_table(w, format, columns, TableStyle::Boxed(t))
    }

    /// A writer of rows that come one by one (`poll`, `watch`, `decode`): each row is written
    /// and flushed when it comes; a table is fixed-width lines, column `i` at least `widths[i]`
    /// wide (and as wide as its name).
    pub fn streaming<S: AsRef<str>>(
        w: Box<dyn Write + 'w>,
        format: Format,
        columns: &[S],
        widths: &[usize],
    ) -> Self {
        let columns: Vec<String> = columns.iter().map(|c| c.as_ref().to_string()).collect();
        let mut s = Self::with_table(w, format, columns, TableStyle::Lines(widths.to_vec()));
        s.flush_each = true;
        s
    }

    fn with_table(
        w: Box<dyn Write + 'w>,
        format: Format,
        columns: Vec<String>,
        table: TableStyle,
    ) -> Self {
        let keys = columns
            .iter()
            .map(|c| {
                let mut k = vec![b','];
                serde_json::to_writer(&mut k, c).expect("a string serialises");
                k.push(b':');
                k
            })
            .collect();
        Self {
            w,
            format,
            status_col: columns.iter().position(|c| c == "status"),
            columns,
            keys,
            table,
            table_cols: None,
            color: false,
            sparse: false,
            flush_each: false,
            rows: 0,
            line: Vec::with_capacity(512),
        }
    }

    /// Colour the `status` column of a boxed table.
    #[must_use]
    pub fn color(mut self, on: bool) -> Self {
        self.color = on;
        // comfy-table on its own styles only when stdout is a tty: `--color always` decides.
        if let (true, TableStyle::Boxed(t)) = (on, &mut self.table) {
            t.enforce_styling();
        }
        self
    }

    /// Show only these columns in a table (people read these first; machines get every
    /// column). With [`RowWriter::streaming`], the widths given there are these columns'.
    ///
    /// # Panics
    /// A name that is not a column (a bug in the caller).
    #[must_use]
    pub fn table_columns(mut self, names: &[&str]) -> Self {
        let idx: Vec<usize> = names
            .iter()
            .map(|n| {
                self.columns
                    .iter()
                    .position(|c| c == n)
                    .unwrap_or_else(|| panic!("table column `{n}` is not a column"))
            })
            .collect();
        if let TableStyle::Boxed(t) = &mut self.table {
            t.set_header(names.iter());
        }
        self.status_col = idx.iter().position(|&i| self.columns[i] == "status");
        self.table_cols = Some(idx);
        self
    }

    /// Leave null cells out of json and jsonl objects.
    #[must_use]
    pub fn sparse(mut self) -> Self {
        self.sparse = true;
        self
    }

    /// Flush after every row (streams); or not (one batch written at once).
    #[must_use]
    pub fn flush_each(mut self, on: bool) -> Self {
        self.flush_each = on;
        self
    }

    /// Write one row (the header before the first); `cells` has one cell per column.
    pub fn row(&mut self, cells: &[Cell<'_>]) -> io::Result<()> {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.line.clear();
        let first = self.rows == 0;
        match (self.format, &mut self.table) {
            (Format::Table | Format::Nagios, TableStyle::Boxed(t)) => {
                let row: Vec<comfy_table::Cell> = project(cells, self.table_cols.as_deref())
                    .enumerate()
                    .map(|(i, c)| {
                        let mut text = String::new();
                        c.text(&mut text);
                        let color = (self.color && Some(i) == self.status_col)
                            .then(|| status_color(&text))
                            .flatten();
                        let cell = comfy_table::Cell::new(text);
                        match color {
                            Some(col) => cell.fg(col),
                            None => cell,
                        }
                    })
                    .collect();
                t.add_row(row);
            }
            (Format::Table | Format::Nagios, TableStyle::Lines(widths)) => {
                if first {
                    // The header: each column as wide as asked and as its name.
                    let names: Vec<&str> = match &self.table_cols {
                        Some(idx) => idx.iter().map(|&i| self.columns[i].as_str()).collect(),
                        None => self.columns.iter().map(String::as_str).collect(),
                    };
                    *widths = line_widths(names.iter().copied(), widths);
                    line_of(&mut self.line, names.into_iter(), widths);
                }
                let texts: Vec<String> = project(cells, self.table_cols.as_deref())
                    .map(|c| {
                        let mut t = String::new();
                        c.text(&mut t);
                        t
                    })
                    .collect();
                line_of(&mut self.line, texts.iter().map(String::as_str), widths);
            }
            (Format::Json | Format::Jsonl, _) => {
                if self.format == Format::Json {
                    self.line
                        .extend_from_slice(if first { b"[\n" } else { b",\n" });
                }
                self.line.push(b'{');
                let open = self.line.len();
                for (k, c) in self.keys.iter().zip(cells) {
                    if self.sparse && c.is_null() {
                        continue;
                    }
                    let k = if self.line.len() == open { &k[1..] } else { k };
                    self.line.extend_from_slice(k);
                    c.json(&mut self.line)?;
                }
                self.line.push(b'}');
                if self.format == Format::Jsonl {
                    self.line.push(b'\n');
                }
            }
            (Format::Csv, _) => {
                if first {
                    csv_record(&mut self.line, self.columns.iter().map(String::as_str))?;
                }
                let texts: Vec<String> = cells
                    .iter()
                    .map(|c| {
                        let mut t = String::new();
                        c.text(&mut t);
                        t
                    })
                    .collect();
                csv_record(&mut self.line, texts.iter().map(String::as_str))?;
            }
        }
        self.rows += 1;
        self.w.write_all(&self.line)?;
        if self.flush_each {
            self.w.flush()?;
        }
        Ok(())
    }

    /// Write one row of JSON values.
    pub fn json_row(&mut self, row: &[Json]) -> io::Result<()> {
        let cells: Vec<Cell<'_>> = row.iter().map(Cell::Json).collect();
        self.row(&cells)
    }

    /// End the rows: the boxed table, the end of the json array (an empty `[]` when no row
    /// came), the csv header when no row came; then flush.
    pub fn finish(mut self) -> io::Result<()> {
        match (self.format, &self.table) {
            (Format::Table | Format::Nagios, TableStyle::Boxed(t)) => {
                // Colour is only ever set on cells explicitly, so the terminal is left visible
                // to comfy-table: on a terminal, long cells wrap to its width; on a pipe there
                // is no width and nothing wraps.
                writeln!(self.w, "{t}")?;
            }
            (Format::Json, _) if self.rows == 0 => self.w.write_all(b"[]\n")?,
            (Format::Json, _) => self.w.write_all(b"\n]\n")?,
            (Format::Csv, _) if self.rows == 0 => {
                self.line.clear();
                csv_record(&mut self.line, self.columns.iter().map(String::as_str))?;
                self.w.write_all(&self.line)?;
            }
            _ => {}
        }
        self.w.flush()
    }
}

/// Column widths: at least `min[i]` and the name's length.
fn line_widths<'a>(names: impl Iterator<Item = &'a str>, min: &[usize]) -> Vec<usize> {
    names
        .zip(min.iter().chain(std::iter::repeat(&0)))
        .map(|(c, w)| (*w).max(c.chars().count()))
        .collect()
}

/// The cells a table shows.
fn project<'c, 'a>(
    cells: &'c [Cell<'a>],
    idx: Option<&'c [usize]>,
) -> Box<dyn Iterator<Item = &'c Cell<'a>> + 'c> {
    match idx {
        Some(idx) => Box::new(idx.iter().map(move |&i| &cells[i])),
        None => Box::new(cells.iter()),
    }
}

/// One fixed-width line: each text padded to its column's width, two spaces apart.
fn line_of<'a>(out: &mut Vec<u8>, texts: impl Iterator<Item = &'a str>, widths: &[usize]) {
    let start = out.len();
    for (i, (t, w)) in texts.zip(widths).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"  ");
        }
        out.extend_from_slice(t.as_bytes());
        let n = t.chars().count();
        out.extend(std::iter::repeat_n(b' ', w.saturating_sub(n)));
    }
    while out.len() > start && out.last() == Some(&b' ') {
        out.pop();
    }
    out.push(b'\n');
}

/// One csv record, appended to `out` (the csv crate quotes what needs quoting).
fn csv_record<'a>(out: &mut Vec<u8>, fields: impl Iterator<Item = &'a str>) -> io::Result<()> {
    let mut c = csv::WriterBuilder::new()
        .has_headers(false)
        .buffer_capacity(256)
        .from_writer(out);
    c.write_record(fields)?;
    c.flush()
}

/// Write all rows at once in `format`. `color` colours the `status` column of tables.
pub fn write_rows(w: &mut dyn Write, format: Format, rows: &Rows, color: bool) -> io::Result<()> {
    let mut out = RowWriter::new(Box::new(w), format, &rows.columns).color(color);
    for r in &rows.rows {
        out.json_row(r)?;
    }
    out.finish()
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
        assert!(j[1].as_object().unwrap().contains_key("value"), "null kept");
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

    fn stream(format: Format, sparse: bool, rows: &[[Cell<'_>; 3]]) -> String {
        let mut buf = Vec::new();
        {
            let mut s = RowWriter::streaming(Box::new(&mut buf), format, &["a", "b", "c"], &[4]);
            if sparse {
                s = s.sparse();
            }
            for r in rows {
                s.row(r).unwrap();
            }
            s.finish().unwrap();
        }
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn a_stream_writes_its_header_once_and_closes_its_json() {
        let addr = std::net::Ipv4Addr::new(10, 0, 0, 5);
        let rows = [
            [Cell::U(1), Cell::Str("x\"y"), Cell::Ms(1.23456)],
            [Cell::I(-2), Cell::Show(&addr), Cell::Null],
        ];
        assert_eq!(
            stream(Format::Csv, false, &rows),
            "a,b,c\n1,\"x\"\"y\",1.235\n-2,10.0.0.5,\n"
        );
        assert_eq!(
            stream(Format::Jsonl, false, &rows),
            "{\"a\":1,\"b\":\"x\\\"y\",\"c\":1.235}\n{\"a\":-2,\"b\":\"10.0.0.5\",\"c\":null}\n"
        );
        assert_eq!(
            stream(Format::Jsonl, true, &rows).lines().nth(1),
            Some("{\"a\":-2,\"b\":\"10.0.0.5\"}")
        );
        let j: Json = serde_json::from_str(&stream(Format::Json, false, &rows)).unwrap();
        assert_eq!(j[1]["b"], json!("10.0.0.5"));
        assert_eq!(stream(Format::Json, false, &[]), "[]\n");
        assert_eq!(stream(Format::Csv, false, &[]), "a,b,c\n");
        assert_eq!(
            stream(Format::Table, false, &rows),
            "a     b  c\n1     x\"y  1.235\n-2    10.0.0.5\n"
        );
    }
}
