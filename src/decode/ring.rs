//! The files a live capture writes (`capture -w FILE`): one pcapng file, or a series that
//! rotates by size (`--ring NxSIZE`) or by time (`--rotate DURATION`), the oldest removed when
//! there are more than N. Names follow dumpcap's: `line3_00001_20261127181900.pcapng`.
//!
//! Every file appears under its final name only with its whole header
//! (`fsutil::create_with_header`), so a reader never sees half a header; packets are written
//! in whole blocks, a batch at a time, so a reader or a kill at any moment finds a valid
//! capture up to a whole packet.

use std::{
    collections::VecDeque,
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::capture::{
    reader::Packet,
    writer::{enhanced_packet_with_flags, file_header, Interface},
};

/// `--ring N[xSIZE]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ring {
    /// Files kept.
    pub files: usize,
    /// Largest file, bytes (a file is closed before it would exceed it).
    pub size: Option<u64>,
}

impl Ring {
    /// Parse `10x100MB`, `10x1GiB`, `24` (files only, with `--rotate`).
    ///
    /// # Errors
    /// A sentence with examples.
    pub fn parse(s: &str) -> Result<Ring, String> {
        let bad = || {
            format!("--ring `{s}`: write N or NxSIZE, e.g. 10x100MB (ten files of 100 MB), 24 (with --rotate 1h); sizes in kB, MB, GB (powers of 1000) or KiB, MiB, GiB")
        };
        let (n, size) = match s.split_once(['x', 'X', '×']) {
            Some((n, size)) => (n, Some(size)),
            None => (s, None),
        };
        let files: usize = n.trim().parse().map_err(|_| bad())?;
        if files < 2 {
            return Err(format!("--ring `{s}`: a ring needs at least 2 files (one is being written while the oldest is removed)"));
        }
        let size = match size {
            None => None,
            Some(t) => {
                let t = t.trim();
                let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
                let (num, unit) = t.split_at(split);
                let num: u64 = num.parse().map_err(|_| bad())?;
                let mult: u64 = match unit.trim() {
                    "" | "B" => 1,
                    "k" | "kB" | "KB" => 1000,
                    "KiB" => 1 << 10,
                    "M" | "MB" => 1_000_000,
                    "MiB" => 1 << 20,
                    "G" | "GB" => 1_000_000_000,
                    "GiB" => 1 << 30,
                    _ => return Err(bad()),
                };
                let bytes = num.checked_mul(mult).ok_or_else(bad)?;
                if bytes < 64 << 10 {
                    return Err(format!(
                        "--ring `{s}`: files of less than 64 KiB would hold a few packets each; give a larger SIZE"
                    ));
                }
                Some(bytes)
            }
        };
        Ok(Ring { files, size })
    }
}

/// The capture file, or the series of them, being written.
pub struct CaptureFiles {
    base: PathBuf,
    header: Vec<u8>,
    ring: Option<Ring>,
    rotate: Option<Duration>,
    series: bool,
    cur: Option<(File, PathBuf)>,
    cur_size: u64,
    cur_start: Instant,
    number: u32,
    /// Files of the series still on disk, oldest first.
    kept: VecDeque<PathBuf>,
    buf: Vec<u8>,
    /// Packets written.
    pub packets: u64,
    /// Files removed by the ring.
    pub removed: u64,
}

impl CaptureFiles {
    /// Start writing `base` (or the first file of its series) for packets of `iface`.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(
        base: &Path,
        iface: &Interface,
        ring: Option<Ring>,
        rotate: Option<Duration>,
    ) -> anyhow::Result<CaptureFiles> {
        crate::fsutil::check_output_dir(base)?;
        let mut f = CaptureFiles {
            base: base.to_path_buf(),
            header: file_header(iface)?,
            ring,
            rotate,
            series: ring.is_some() || rotate.is_some(),
            cur: None,
            cur_size: 0,
            cur_start: Instant::now(),
            number: 0,
            kept: VecDeque::new(),
            buf: Vec::with_capacity(1 << 20),
            packets: 0,
            removed: 0,
        };
        f.next_file()?;
        Ok(f)
    }

    /// The name of file `n` of the series: `BASE_NNNNN_YYYYMMDDHHMMSS.EXT`, as dumpcap.
    fn series_name(&self, n: u32) -> PathBuf {
        let stem = self
            .base
            .file_stem()
            .map_or_else(|| "capture".into(), |s| s.to_string_lossy().into_owned());
        let ext = self
            .base
            .extension()
            .map_or_else(|| "pcapng".into(), |s| s.to_string_lossy().into_owned());
        let stamp = chrono::Local::now().format("%Y%m%d%H%M%S");
        self.base
            .with_file_name(format!("{stem}_{n:05}_{stamp}.{ext}"))
    }

    fn next_file(&mut self) -> anyhow::Result<()> {
        self.close_current()?;
        self.number += 1;
        let path = if self.series {
            self.series_name(self.number)
        } else {
            self.base.clone()
        };
        let file = crate::fsutil::create_with_header(&path, &self.header)?;
        self.cur_size = self.header.len() as u64;
        self.cur_start = Instant::now();
        self.cur = Some((file, path.clone()));
        if self.series {
            self.kept.push_back(path);
            if let Some(r) = self.ring {
                while self.kept.len() > r.files {
                    if let Some(old) = self.kept.pop_front() {
                        if std::fs::remove_file(&old).is_ok() {
                            self.removed += 1;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn close_current(&mut self) -> io::Result<()> {
        self.flush()?;
        if let Some((f, _)) = self.cur.take() {
            f.sync_all()?;
        }
        Ok(())
    }

    /// Add one packet (written at the next [`CaptureFiles::flush`]); starts the next file of
    /// the series first when this one is full or old enough.
    ///
    /// # Errors
    /// Writing or creating a file failed.
    pub fn packet(&mut self, p: &Packet<'_>) -> anyhow::Result<()> {
        let before = self.buf.len();
        enhanced_packet_with_flags(
            &mut self.buf,
            p.ts_ns,
            p.data,
            p.orig_len,
            p.direction.flags(),
        )?;
        let block = (self.buf.len() - before) as u64;
        let full = self.ring.and_then(|r| r.size).is_some_and(|max| {
            self.cur_size + block > max && self.cur_size > self.header.len() as u64
        });
        let old = self.rotate.is_some_and(|d| self.cur_start.elapsed() >= d);
        if full || old {
            // This packet goes into the next file.
            let tail = self.buf.split_off(before);
            self.next_file()?;
            self.buf = tail;
        }
        self.cur_size += block;
        self.packets += 1;
        Ok(())
    }

    /// Start the next file of a `--rotate` series if its time has come (called when no
    /// packet arrives, so that an idle line still rotates).
    ///
    /// # Errors
    /// Creating the file failed.
    pub fn tick(&mut self) -> anyhow::Result<()> {
        if self.rotate.is_some_and(|d| self.cur_start.elapsed() >= d) {
            self.next_file()?;
        }
        Ok(())
    }

    /// Write what is buffered, as whole blocks.
    ///
    /// # Errors
    /// The write failed (disk full, …).
    pub fn flush(&mut self) -> io::Result<()> {
        if let (Some((f, _)), false) = (self.cur.as_mut(), self.buf.is_empty()) {
            f.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Flush, sync and close; the files of the series still on disk (or the one file).
    ///
    /// # Errors
    /// The last write or sync failed.
    pub fn finish(mut self) -> io::Result<Vec<PathBuf>> {
        let path = self.cur.as_ref().map(|c| c.1.clone());
        self.close_current()?;
        Ok(if self.series {
            self.kept.into_iter().collect()
        } else {
            path.into_iter().collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_forms() {
        assert_eq!(
            Ring::parse("10x100MB").unwrap(),
            Ring {
                files: 10,
                size: Some(100_000_000)
            }
        );
        assert_eq!(Ring::parse("3x1MiB").unwrap().size, Some(1 << 20));
        assert_eq!(Ring::parse("24").unwrap().size, None);
        for bad in ["", "x", "1x100MB", "10x", "10x100XB", "10x1kB", "ax1MB"] {
            let e = Ring::parse(bad).unwrap_err();
            assert!(e.contains("--ring"), "{bad}: {e}");
        }
    }
}
