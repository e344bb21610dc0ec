//! File writes that never leave a half-written file behind: write to a temporary file in the
//! destination's own folder (same file system), fsync it, then rename it over the destination.
//! A crash or a SIGKILL at any point leaves either the old file or the new one, whole.
//!
//! The temporary file is named `.NAME.PID.XXXXXX.tmp` beside the destination. A process killed
//! before its rename leaves one behind; the next write of the same file removes those whose
//! process is gone (Linux: no `/proc/PID`), so a cron job's folder does not fill with them.
//! `tests/crash.rs` kills plcprobe inside the rename (strace) for every file written this way.

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

/// The folder of `path`, its file name, and a new temporary file `.NAME.PID.XXXXXX.tmp` in
/// that folder (the same file system, so that a rename finishes the write).
fn temporary_beside(path: &Path) -> anyhow::Result<(&Path, &str, tempfile::NamedTempFile)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("plcprobe");
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.{}.", std::process::id()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "cannot create a temporary file in {} to write {}",
                dir.display(),
                path.display()
            )
        })?;
    Ok((dir, name, tmp))
}

/// Atomically replace `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic_with(path, |f| {
        f.write_all(bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    })
}

/// Atomically replace `path` with what `write` writes into the file it is handed (a
/// temporary beside `path`, for content made as it streams: a capture excerpt, a zip
/// archive). When `write` fails, the temporary is removed and `path` is left as it was.
pub fn write_atomic_with<T>(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (dir, name, mut tmp) = temporary_beside(path)?;
    let made = write(tmp.as_file_mut())?;
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
    remove_stale_temporaries(dir, name);
    Ok(made)
}

/// Create `path` for a file that grows after its start (a capture): `head` is written to a
/// temporary file beside it and flushed, and only then is it renamed to `path`, so a reader
/// never sees the file without its whole header. Replaces an existing `path`. The file is
/// returned open for appending.
pub fn create_with_header(path: &Path, head: &[u8]) -> anyhow::Result<std::fs::File> {
    let (dir, name, mut tmp) = temporary_beside(path)?;
    tmp.write_all(head)
        .and_then(|()| tmp.flush())
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    }
    let f = tmp
        .persist(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {}", path.display(), e.error))?;
    remove_stale_temporaries(dir, name);
    Ok(f)
}

/// Remove `.NAME.PID.XXXXXX.tmp` files in `dir` left by a writer of `NAME` that no longer runs.
/// Best effort: a file that cannot be removed stays, and nothing is removed where a process's
/// liveness cannot be told (no `/proc`).
fn remove_stale_temporaries(dir: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        // `PID.XXXXXX`: the writer's process id, then tempfile's random part (no dots).
        let Some((pid, random)) = rest.split_once('.') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if random.contains('.') || pid == std::process::id() {
            continue;
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
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

    #[test]
    fn a_dead_writers_temporary_is_removed_a_live_ones_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("base.json");
        // A pid above the kernel's limit (pid_max is at most 2^22) never runs.
        let dead = dir.path().join(".base.json.99999999.AbC123.tmp");
        let live = dir
            .path()
            .join(format!(".base.json.{}.XyZ789.tmp", std::process::id()));
        let init = dir.path().join(".base.json.1.QwE456.tmp");
        let other = dir.path().join(".other.json.99999999.AbC123.tmp");
        let unnamed = dir.path().join(".base.json.AbC123.tmp");
        for f in [&dead, &live, &init, &other, &unnamed] {
            std::fs::write(f, b"half").unwrap();
        }
        write_atomic(&p, b"whole").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"whole");
        let proc_fs = Path::new("/proc/self").exists();
        assert_eq!(dead.exists(), !proc_fs, "a dead writer's temporary goes");
        for kept in [&live, &init, &other, &unnamed] {
            assert!(kept.exists(), "{} kept", kept.display());
        }
    }
}
