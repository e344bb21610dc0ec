//! A lock per check plan, so two overlapping cron runs never poll the same PLCs at once.
//!
//! An advisory `flock` on a file in the temp folder named after the plan's absolute path. The
//! kernel releases it when the process ends, however it ends, so a killed run leaves no stale
//! lock. The file records the holder's pid and start time for the refusal message.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct PlanLock {
    _file: File,
    /// Where the lock file is.
    pub path: PathBuf,
}

/// The lock file of a plan.
pub fn lock_path(plan: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(plan).unwrap_or_else(|_| plan.to_path_buf());
    let h = Sha256::digest(abs.to_string_lossy().as_bytes());
    let tag: String = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
    std::env::temp_dir().join(format!("plcprobe-check-{tag}.lock"))
}

/// Take the plan's lock. Without `wait`, an overlapping run is refused with who holds it.
pub fn lock_plan(plan: &Path, wait: bool) -> anyhow::Result<PlanLock> {
    let path = lock_path(plan);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open the lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) if wait => {
            file.lock()
                .map_err(|e| anyhow::anyhow!("cannot wait for {}: {e}", path.display()))?;
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            anyhow::bail!(
                "another `plcprobe check {}` is still running ({}); this run stops so that two checks never poll the same devices at once. Add --wait to run after it, or look for a hung run",
                plan.display(),
                if holder.trim().is_empty() { "holder unknown".to_string() } else { holder.trim().to_string() }
            );
        }
        Err(TryLockError::Error(e)) => anyhow::bail!("cannot lock {}: {e}", path.display()),
    }
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    write!(
        file,
        "pid {}, started {}",
        std::process::id(),
        crate::clock::now_rfc3339()
    )?;
    file.flush()?;
    Ok(PlanLock { _file: file, path })
}
