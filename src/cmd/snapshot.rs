//! `snapshot`: read every point of a profile (batched, within the device's limits) plus the
//! device's identity into a `plcprobe.snapshot/1` file, written atomically.

use std::io::Write as _;

use super::{Ctx, Outcome};
use crate::{
    cli::SnapshotArgs,
    device::Device,
    profile::Profile,
    snapshot::{self, profile_sha256, ProfileRef, Snapshot},
    target::Target,
};

/// Where a profile's snapshot comes from.
pub fn profile_ref(p: &Profile) -> ProfileRef {
    ProfileRef::of(p, profile_sha256(p))
}

/// Take a snapshot of `target` with `profile` (shared with demo).
pub async fn take(
    ctx: &Ctx,
    target: &Target,
    profile: &Profile,
) -> anyhow::Result<Result<Snapshot, String>> {
    let mut dev = Device::new(target, &ctx.device)?;
    dev.select_profile(profile, "snapshot")?;
    Ok(dev
        .take_snapshot(profile_ref(profile))
        .await?
        .map_err(|u| u.0))
}

/// Run `snapshot`.
pub async fn run(ctx: &Ctx, args: &SnapshotArgs) -> anyhow::Result<Outcome> {
    crate::fsutil::check_output_dir(&args.output)?;
    let profile = Profile::load(&args.profile)?;
    let target: Target = match &args.target {
        Some(t) => t.parse()?,
        None => profile.device.target.clone().ok_or_else(|| {
            anyhow::anyhow!("{} has no [device] target; give one, e.g. plcprobe snapshot modbus://192.0.2.10/1 --profile {} -o {}", args.profile.display(), args.profile.display(), args.output.display())
        })?,
    };
    let snap = match take(ctx, &target, &profile).await? {
        Ok(s) => s,
        Err(why) => {
            super::warn(format!(
                "{target}: {why}; nothing was written, {} is unchanged",
                args.output.display()
            ));
            return Ok(Outcome::Critical);
        }
    };
    snap.save(&args.output)?;
    let bad: Vec<&snapshot::SnapPoint> = snap.points.iter().filter(|p| !p.ok()).collect();
    let mut out = std::io::stdout().lock();
    if !ctx.quiet || !bad.is_empty() {
        writeln!(
            out,
            "{}: {} of {} points read, identity {}, written to {}",
            target,
            snap.points.len() - bad.len(),
            snap.points.len(),
            snap.identity
                .as_ref()
                .and_then(|i| i.get("revision"))
                .map_or_else(|| snap.identity_status.clone(), |r| format!("revision {r}")),
            args.output.display()
        )?;
        for p in &bad {
            writeln!(
                out,
                "  unreadable: {} ({}): {}",
                p.name, p.address, p.status
            )?;
        }
    }
    Ok(if bad.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Warning
    })
}
