//! File writes that never leave a half-written file behind: write to a temporary file in the
//! destination's own folder (same file system), fsync it, then rename it over the destination.
//! A crash or a SIGKILL at any point leaves either the old file or the new one, whole.

use std::{io::Write, path::Path};

use anyhow::Context as _;

/// Refuse an output path whose folder does not exist, before any device is read: a long
/// check or snapshot should not run only to fail at the end.
pub fn check_output_dir(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => return Ok(()),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        anyhow::bail!("cannot write {}: the folder {} does not exist; create it first (nothing was read or sent)", path.display(), dir.display())
    }
}

/// Atomically replace `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("plcprobe")
        ))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "cannot create a temporary file in {} to write {}",
                dir.display(),
                path.display()
            )
        })?;
    tmp.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Temporary files are private (0600); the result is not: keep the mode of the file being
    // replaced, else 0644, so node_exporter or a colleague can read what a cron job wrote.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot flush {} to disk", path.display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot replace {}: {}", path.display(), e.error))?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("snap.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o644
            );
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
            write_atomic(&p, b"third").unwrap();
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o640,
                "mode kept"
            );
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(check_output_dir(&p).is_ok() && check_output_dir(Path::new("x.json")).is_ok());
        let e = check_output_dir(&dir.path().join("no/such/dir/x.json")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = write_atomic(&dir.path().join("no/such/dir/x.json"), b"x").unwrap_err();
        assert!(format!("{e:#}").contains("no/such/dir"), "{e:#}");
    }
}
