//! Evidence bundles (`bundle -o FILE.zip INPUT…`, `bundle --verify FILE.zip`; docs/DESIGN.md
//! §5b): one zip archive to attach to a ticket, holding
//!
//! - `report.html` and `report.md`: the report of the results files given (`report`'s code),
//!   when results are given;
//! - `results/NAME`: each results file given (check, diff, poll, decode), byte for byte;
//! - `snapshots/NAME`: every snapshot given, and every baseline or snapshot a results file
//!   names: a check's `devices[].baseline`, a diff's `baseline_file` and `current_file`;
//! - `captures/NAME`: each capture (pcap, pcapng, gzip) given;
//! - `MANIFEST.json` (`plcprobe.bundle/1`), written last: tool version, the bundle's command
//!   line, host name, creation time, and per member its path, kind, size and SHA-256 (and for
//!   inputs where it came from, the command line that made it, which results referenced it).
//!
//! A path a results file names is taken as it is when absolute; a relative one is looked for
//! from the current folder (where `check`/`diff` resolved it when run from here), then from the
//! results file's folder. A referenced file found in neither is an error listing every missing
//! one (nothing written) unless `allow_missing`, which lists them under `omitted`.
//!
//! Every input is read twice: once to hash it (results and snapshots are also parsed from those
//! bytes), once to copy it into the archive while hashing again; its size, modification time
//! and inode are taken before the first and after the second. Any difference means the file
//! changed while the bundle was made: an error naming it, and nothing is left behind (the
//! archive is written to a temporary beside the destination and renamed only when whole:
//! `fsutil::write_atomic_with`).
//!
//! [`verify`] reads an archive back and checks every member against its manifest: missing,
//! extra and modified members are each a [`Problem`].

use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use serde_json::{json, Value as Json};
use sha2::{Digest as _, Sha256};

use crate::report::render;

/// The manifest's `format`.
pub const FORMAT: &str = "plcprobe.bundle/1";
/// The manifest's name in the archive.
pub const MANIFEST: &str = "MANIFEST.json";

/// What an input is, by its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A results document (`plcprobe.results/1`).
    Results,
    /// A snapshot (`plcprobe.snapshot/1`): given, or a baseline a results file names.
    Snapshot,
    /// A capture file (pcap, pcapng, gzip-compressed).
    Capture,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Results => "results",
            Kind::Snapshot => "snapshot",
            Kind::Capture => "capture",
        }
    }

    fn folder(self) -> &'static str {
        match self {
            Kind::Results => "results",
            Kind::Snapshot => "snapshots",
            Kind::Capture => "captures",
        }
    }
}

/// A file's identity and content as seen at one moment: what must not change while bundling.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    size: u64,
    modified: Option<std::time::SystemTime>,
    inode: (u64, u64),
    sha256: String,
}

/// One file going into the archive.
#[derive(Debug)]
struct Input {
    source: PathBuf,
    kind: Kind,
    /// Its path in the archive.
    member: String,
    before: Seen,
    /// The results document or snapshot, parsed from the bytes hashed.
    doc: Option<Json>,
    referenced_by: Vec<String>,
}

/// One member of a bundle as its manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Path in the archive.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// What [`make`] wrote.
#[derive(Debug)]
pub struct Made {
    /// Every member but the manifest, in archive order.
    pub members: Vec<Member>,
    /// Referenced files not found (only with `allow_missing`): (path as named, named by).
    pub omitted: Vec<(String, String)>,
    /// The worst verdict of the results given (None without results).
    pub verdict: Option<&'static str>,
}

/// The first bytes of pcap (either byte order, µs or ns), pcapng and gzip.
fn is_capture(head: &[u8]) -> bool {
    const MAGICS: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    head.starts_with(&[0x1f, 0x8b]) || MAGICS.iter().any(|m| head.starts_with(m))
}

fn sha_hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Size, modification time and inode of `path` now, and its SHA-256 (read whole); with the
/// bytes when `keep` (results and snapshots, parsed from exactly what was hashed).
fn look(path: &Path, keep: bool) -> anyhow::Result<(Seen, Option<Vec<u8>>)> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!(
            "{} is not a regular file (a folder, a pipe or a device); give results, snapshots or captures as files",
            path.display()
        );
    }
    let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut kept = keep.then(Vec::new);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(&buf[..n]);
        }
    }
    Ok((
        Seen {
            size: meta.len(),
            modified: meta.modified().ok(),
            inode: inode(&meta),
            sha256: sha_hex(h),
        },
        kept,
    ))
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Classify and read one input given on the command line (or referenced by a results file,
/// then it must be a snapshot).
fn read_input(path: &Path, referenced: bool) -> anyhow::Result<Input> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!(
            "{} is not a regular file (a folder, a pipe or a device); give results, snapshots or captures as files",
            path.display()
        );
    }
    let mut head = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let capture = is_capture(&head[..n]);
    let (before, bytes) = look(path, !capture)?;
    if capture {
        if referenced {
            anyhow::bail!("{} is a capture, not a snapshot", path.display());
        }
        return Ok(new_input(path, Kind::Capture, before, None));
    }
    let bytes = bytes.unwrap_or_default();
    let doc: Json = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is neither a capture (pcap, pcapng, gzip) nor JSON ({}:{}: {e}); a bundle takes results files, snapshots and captures",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    let shown = path.display().to_string();
    let kind = match doc["format"].as_str() {
        Some("plcprobe.snapshot/1") => Kind::Snapshot,
        Some("plcprobe.results/1") if !referenced => {
            render::validate(&shown, &doc)?;
            Kind::Results
        }
        _ if referenced => anyhow::bail!(
            "{shown} is not a plcprobe snapshot (its `format` is not plcprobe.snapshot/1)"
        ),
        _ => anyhow::bail!(
            "{shown} is JSON but neither plcprobe results (plcprobe.results/1) nor a snapshot (plcprobe.snapshot/1); a bundle takes results files, snapshots and captures"
        ),
    };
    Ok(new_input(path, kind, before, Some(doc)))
}

fn new_input(path: &Path, kind: Kind, before: Seen, doc: Option<Json>) -> Input {
    Input {
        source: path.to_path_buf(),
        kind,
        member: String::new(),
        before,
        doc,
        referenced_by: Vec::new(),
    }
}

/// The snapshot paths a results document names, as written in it.
fn references(doc: &Json) -> Vec<String> {
    let mut out = Vec::new();
    match doc["kind"].as_str() {
        Some("check") => {
            for d in doc["devices"].as_array().into_iter().flatten() {
                if let Some(b) = d["baseline"].as_str() {
                    out.push(b.to_string());
                }
            }
        }
        Some("diff") => {
            for k in ["baseline_file", "current_file"] {
                if let Some(p) = doc[k].as_str() {
                    out.push(p.to_string());
                }
            }
        }
        _ => {}
    }
    out
}

/// Where a referenced path is: as it is if absolute, else from the current folder, else from
/// the results file's folder. Err: the places looked at.
fn locate(named: &str, results: &Path) -> Result<PathBuf, Vec<PathBuf>> {
    let p = Path::new(named);
    let mut tried = vec![p.to_path_buf()];
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    if p.is_relative() {
        if let Some(dir) = results.parent().filter(|d| !d.as_os_str().is_empty()) {
            let q = dir.join(p);
            if q.is_file() {
                return Ok(q);
            }
            tried.push(q);
        }
    }
    Err(tried)
}

/// A member name `folder/NAME` not yet used (`NAME-2.ext`, `NAME-3.ext`, … otherwise).
fn member_name(kind: Kind, source: &Path, used: &mut std::collections::HashSet<String>) -> String {
    let file = source
        .file_name()
        .map_or_else(|| "input".to_string(), |f| f.to_string_lossy().into_owned());
    let (stem, ext) = match file.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (file.clone(), String::new()),
    };
    let mut k = 1;
    loop {
        let name = if k == 1 {
            format!("{}/{file}", kind.folder())
        } else {
            format!("{}/{stem}-{k}{ext}", kind.folder())
        };
        if used.insert(name.clone()) {
            return name;
        }
        k += 1;
    }
}

/// The key that makes two paths of one file one input.
fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Write the bundle of `inputs` to `out` (atomically); `command` is the bundle's own command
/// line for the manifest.
///
/// # Errors
/// An input unreadable or of no known kind, a referenced snapshot missing (unless
/// `allow_missing`), an input that changed while it was copied, or the archive cannot be
/// written. Nothing is left at `out` (nor beside it) then.
pub fn make(
    out: &Path,
    inputs: &[PathBuf],
    command: &str,
    allow_missing: bool,
) -> anyhow::Result<Made> {
    crate::fsutil::check_output_dir(out)?;
    let out_id = identity(out);
    let mut list: Vec<Input> = Vec::new();
    let mut index: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for p in inputs {
        let id = identity(p);
        if id == out_id {
            anyhow::bail!(
                "{} is the bundle being written; give it another name",
                p.display()
            );
        }
        if index.contains_key(&id) {
            continue;
        }
        index.insert(id, list.len());
        list.push(read_input(p, false)?);
    }
    // The snapshots the results name.
    let mut missing: Vec<(String, String, Vec<PathBuf>)> = Vec::new();
    for i in 0..list.len() {
        if list[i].kind != Kind::Results {
            continue;
        }
        let results = list[i].source.clone();
        let named = list[i].doc.as_ref().map(references).unwrap_or_default();
        for n in named {
            match locate(&n, &results) {
                Ok(found) => {
                    let id = identity(&found);
                    let at = if let Some(&at) = index.get(&id) {
                        at
                    } else {
                        index.insert(id, list.len());
                        list.push(
                            read_input(&found, true)
                                .with_context(|| format!("{} names {n}", results.display()))?,
                        );
                        list.len() - 1
                    };
                    let by = results.display().to_string();
                    if !list[at].referenced_by.contains(&by) {
                        list[at].referenced_by.push(by);
                    }
                }
                Err(tried) => missing.push((n, results.display().to_string(), tried)),
            }
        }
    }
    missing.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    if !missing.is_empty() && !allow_missing {
        let lines: Vec<String> = missing
            .iter()
            .map(|(n, by, tried)| {
                format!(
                    "{n} (named by {by}; looked for at {})",
                    tried
                        .iter()
                        .map(|t| t.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" and ")
                )
            })
            .collect();
        anyhow::bail!(
            "the bundle would lack {} file{} its results name: {}. Run bundle from the folder check or diff ran in, put the files there, or add --allow-missing to bundle without them (listed as omitted in the manifest); nothing was written",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            lines.join("; ")
        );
    }
    let mut used = std::collections::HashSet::new();
    for name in ["report.html", "report.md", MANIFEST] {
        used.insert(name.to_string());
    }
    for i in &mut list {
        i.member = member_name(i.kind, &i.source, &mut used);
    }
    let docs: Vec<Json> = list
        .iter()
        .filter(|i| i.kind == Kind::Results)
        .filter_map(|i| i.doc.clone())
        .collect();
    let verdict = (!docs.is_empty()).then(|| render::overall(&docs));
    let omitted: Vec<(String, String)> = missing.into_iter().map(|(n, by, _)| (n, by)).collect();
    let members = crate::fsutil::write_atomic_with(out, |file| {
        write_archive(file, &list, &docs, command, &omitted)
            .with_context(|| format!("cannot write the bundle {}", out.display()))
    })?;
    Ok(Made {
        members,
        omitted,
        verdict,
    })
}

/// A zip writer's options for a member of `size` bytes: deflated unless already compressed.
fn options(size: u64, compressed: bool, time: zip::DateTime) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(if compressed {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        })
        .last_modified_time(time)
        .unix_permissions(0o644)
        .large_file(size >= u64::from(u32::MAX))
}

fn zip_now() -> zip::DateTime {
    use chrono::{Datelike as _, Timelike as _};
    let n = chrono::Utc::now();
    let b = |v: u32| u8::try_from(v).unwrap_or(0);
    zip::DateTime::from_date_and_time(
        u16::try_from(n.year()).unwrap_or(1980),
        b(n.month()),
        b(n.day()),
        b(n.hour()),
        b(n.minute()),
        b(n.second()),
    )
    .unwrap_or_default()
}

/// Hashes what passes through it.
struct Hashing<W> {
    w: W,
    h: Sha256,
    n: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let k = self.w.write(b)?;
        self.h.update(&b[..k]);
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

fn write_archive(
    file: &mut File,
    list: &[Input],
    docs: &[Json],
    command: &str,
    omitted: &[(String, String)],
) -> anyhow::Result<Vec<Member>> {
    let time = zip_now();
    let mut zip = zip::ZipWriter::new(io::BufWriter::with_capacity(1 << 16, file));
    let mut members = Vec::new();
    let mut entries = Vec::new();
    if !docs.is_empty() {
        for (name, bytes) in [
            ("report.html", render::render_html(docs).into_bytes()),
            ("report.md", render::render_markdown(docs).into_bytes()),
        ] {
            zip.start_file(name, options(bytes.len() as u64, false, time))?;
            zip.write_all(&bytes)?;
            let mut h = Sha256::new();
            h.update(&bytes);
            let m = Member {
                path: name.to_string(),
                size: bytes.len() as u64,
                sha256: sha_hex(h),
            };
            entries.push(
                json!({"path": m.path, "kind": "report", "size": m.size, "sha256": m.sha256}),
            );
            members.push(m);
        }
    }
    for i in list {
        let compressed = i.kind == Kind::Capture && !is_pcap_or_pcapng(&i.source);
        zip.start_file(i.member.as_str(), options(i.before.size, compressed, time))?;
        let mut src =
            File::open(&i.source).with_context(|| format!("cannot read {}", i.source.display()))?;
        let mut sink = Hashing {
            w: &mut zip,
            h: Sha256::new(),
            n: 0,
        };
        io::copy(&mut src, &mut sink)
            .with_context(|| format!("cannot copy {} into the bundle", i.source.display()))?;
        let (n, copied) = (sink.n, sha_hex(sink.h));
        let after = std::fs::metadata(&i.source).ok();
        let after_seen = after
            .as_ref()
            .map(|m| (m.len(), m.modified().ok(), inode(m)));
        if n != i.before.size
            || copied != i.before.sha256
            || after_seen != Some((i.before.size, i.before.modified, i.before.inode))
        {
            anyhow::bail!(
                "{} changed while the bundle was being made ({} bytes and SHA-256 {}… when first read, {n} bytes and {}… when copied{}); a bundle only holds files at rest: wait until whatever writes it is done (or copy it first) and run bundle again; nothing was written",
                i.source.display(),
                i.before.size,
                &i.before.sha256[..12],
                &copied[..12],
                match after {
                    Some(m) if m.len() != n => format!(", {} bytes now", m.len()),
                    Some(_) => String::new(),
                    None => ", gone now".into(),
                }
            );
        }
        let mut e = json!({
            "path": i.member,
            "kind": i.kind.name(),
            "size": n,
            "sha256": copied,
            "source": i.source.display().to_string(),
        });
        if let Some(c) = i.doc.as_ref().and_then(|d| d["command"].as_str()) {
            e["command"] = json!(c);
        }
        if !i.referenced_by.is_empty() {
            e["referenced_by"] = json!(i.referenced_by);
        }
        entries.push(e);
        members.push(Member {
            path: i.member.clone(),
            size: n,
            sha256: copied,
        });
    }
    let manifest = json!({
        "format": FORMAT,
        "tool_version": env!("CARGO_PKG_VERSION"),
        "created_at": crate::clock::now_rfc3339(),
        "host": host_name(),
        "command": command,
        "members": entries,
        "omitted": omitted.iter().map(|(n, by)| json!({"path": n, "named_by": by, "why": "not found"})).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&manifest)? + "\n";
    zip.start_file(MANIFEST, options(text.len() as u64, false, time))?;
    zip.write_all(text.as_bytes())?;
    let mut w = zip.finish()?;
    w.flush()?;
    Ok(members)
}

/// pcap or pcapng (not gzip): worth deflating.
fn is_pcap_or_pcapng(path: &Path) -> bool {
    let mut head = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .is_ok_and(|n| n == 4 && is_capture(&head) && head[..2] != [0x1f, 0x8b])
}

/// This machine's name (the manifest's `host`).
fn host_name() -> String {
    nix::unistd::gethostname()
        .map_or_else(|_| "unknown".into(), |h| h.to_string_lossy().into_owned())
}

/// One way a bundle differs from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Listed in the manifest, not in the archive.
    Missing(String),
    /// In the archive, not in the manifest.
    Extra(String),
    /// In both, with other content: (path, size and SHA-256 listed, size and SHA-256 found).
    Modified(String, (u64, String), (u64, String)),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing(p) => write!(f, "MISSING {p}: listed in {MANIFEST}, not in the archive"),
            Problem::Extra(p) => write!(f, "EXTRA {p}: in the archive, not listed in {MANIFEST}"),
            Problem::Modified(p, (ls, lh), (fs, fh)) => write!(
                f,
                "MODIFIED {p}: {ls} bytes, SHA-256 {lh} in {MANIFEST}; {fs} bytes, SHA-256 {fh} in the archive"
            ),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug)]
pub struct Verified {
    /// The manifest.
    pub manifest: Json,
    /// Members that match.
    pub matching: usize,
    /// Every difference, in manifest order, then extra members.
    pub problems: Vec<Problem>,
}

/// Check every member of the bundle at `path` against its manifest.
///
/// # Errors
/// Not a zip archive, no `MANIFEST.json`, or a manifest that is not a plcprobe bundle's
/// (exit 3: not a bundle, as opposed to a bundle with problems).
pub fn verify(path: &Path) -> anyhow::Result<Verified> {
    let shown = path.display();
    let file = File::open(path).with_context(|| format!("cannot read {shown}"))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| {
        anyhow::anyhow!("{shown} is not a zip archive ({e}); give a bundle made by `plcprobe bundle -o FILE.zip …`")
    })?;
    let manifest: Json = {
        let mut m = zip.by_name(MANIFEST).map_err(|_| {
            anyhow::anyhow!("{shown} is a zip archive without {MANIFEST}: not a plcprobe bundle, so there is nothing to check it against")
        })?;
        let mut text = String::new();
        m.read_to_string(&mut text)
            .with_context(|| format!("{shown}: cannot read {MANIFEST}"))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{shown}: {MANIFEST} is not valid JSON ({e})"))?
    };
    if manifest["format"].as_str() != Some(FORMAT) {
        anyhow::bail!("{shown}: {MANIFEST} is not a plcprobe bundle manifest (format {FORMAT})");
    }
    let listed = manifest["members"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("{shown}: {MANIFEST} has no `members` list"))?
        .clone();
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(std::borrow::Cow::into_owned))
        .collect();
    let mut problems = Vec::new();
    let mut matching = 0;
    let mut known = std::collections::HashSet::new();
    known.insert(MANIFEST.to_string());
    for m in &listed {
        let p = m["path"].as_str().unwrap_or_default().to_string();
        known.insert(p.clone());
        let want = (
            m["size"].as_u64().unwrap_or(u64::MAX),
            m["sha256"].as_str().unwrap_or_default().to_string(),
        );
        let found = match zip.by_name(&p) {
            Ok(mut f) => {
                let mut sink = Hashing {
                    w: io::sink(),
                    h: Sha256::new(),
                    n: 0,
                };
                match io::copy(&mut f, &mut sink) {
                    Ok(_) => Some((sink.n, sha_hex(sink.h))),
                    // A damaged member (CRC, deflate stream) is modified content.
                    Err(_) => Some((sink.n, "unreadable (damaged)".to_string())),
                }
            }
            Err(_) => None,
        };
        match found {
            None => problems.push(Problem::Missing(p)),
            Some(f) if f == want => matching += 1,
            Some(f) => problems.push(Problem::Modified(p, want, f)),
        }
    }
    for n in names {
        if !known.contains(&n) {
            problems.push(Problem::Extra(n));
        }
    }
    Ok(Verified {
        manifest,
        matching,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_are_told_by_their_first_bytes() {
        for head in [
            &[0xd4, 0xc3, 0xb2, 0xa1][..],
            &[0x4d, 0x3c, 0xb2, 0xa1],
            &[0x0a, 0x0d, 0x0d, 0x0a],
            &[0x1f, 0x8b, 8, 0],
        ] {
            assert!(is_capture(head), "{head:x?}");
        }
        assert!(!is_capture(b"{\"fo") && !is_capture(b"PK\x03\x04") && !is_capture(b""));
    }

    #[test]
    fn member_names_are_unique_per_folder() {
        let mut used = std::collections::HashSet::new();
        let a = member_name(Kind::Results, Path::new("a/results.json"), &mut used);
        let b = member_name(Kind::Results, Path::new("b/results.json"), &mut used);
        let c = member_name(Kind::Snapshot, Path::new("b/results.json"), &mut used);
        let d = member_name(Kind::Capture, Path::new("x/.hidden"), &mut used);
        let e = member_name(Kind::Capture, Path::new("y/.hidden"), &mut used);
        assert_eq!(
            [a, b, c, d, e],
            [
                "results/results.json",
                "results/results-2.json",
                "snapshots/results.json",
                "captures/.hidden",
                "captures/.hidden-2",
            ]
        );
    }

    #[test]
    fn references_are_a_checks_baselines_and_a_diffs_files() {
        let check = json!({"kind": "check", "devices": [
            {"name": "a", "baseline": "base/a.json"}, {"name": "b", "baseline": null}, {"name": "c"}
        ]});
        assert_eq!(references(&check), ["base/a.json"]);
        let diff = json!({"kind": "diff", "baseline_file": "b.json", "current_file": null});
        assert_eq!(references(&diff), ["b.json"]);
        assert!(references(&json!({"kind": "decode"})).is_empty());
    }
}
