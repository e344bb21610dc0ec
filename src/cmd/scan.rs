//! `scan`: who is there. The device layer probes: Modbus unit IDs that answer (FC43 identity,
//! else a one-register read), OPC UA endpoints with their security and server certificate.
//! Read-only: nothing here writes.

use std::io::Write as _;

use super::{Ctx, Outcome};
use crate::{cli::ScanArgs, device::Device, report::write_rows, target::Target};

/// Run `scan`.
pub async fn run(ctx: &Ctx, args: &ScanArgs) -> anyhow::Result<Outcome> {
    let target: Target = args.target.parse()?;
    let mut dev = Device::new(&target, &ctx.device)?;
    let pb = ctx.progress_bar(0, "scanning");
    let t = dev.scan(&args.units, &pb, ctx.verbose > 0).await;
    pb.finish_and_clear();
    let t = t?;
    dev.close().await;
    let mut out = std::io::stdout().lock();
    // -q: nothing when every finding is fine.
    if !ctx.quiet || t.outcome != Outcome::Ok {
        if ctx.format == crate::report::Format::Table {
            for n in &t.notes {
                writeln!(out, "{n}")?;
            }
        }
        write_rows(&mut out, ctx.format, &t.rows, ctx.color)?;
    }
    out.flush()?;
    Ok(t.outcome)
}
