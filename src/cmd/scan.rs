//! `scan`: who is there. The device layer probes: Modbus unit IDs that answer (a one-register
//! read, then FC43 identity and FC17 server ID) on any transport, a serial bus's baud rate and
//! framing (a sweep, or listening only), register ranges that answer, OPC UA endpoints with
//! their security and server certificate. Read-only: nothing here writes.

use std::io::Write as _;

use super::{Ctx, Outcome};
use crate::{
    cli::ScanArgs,
    device::{Device, ScanRequest},
    report::write_rows,
    target::Target,
};

/// Run `scan`.
pub async fn run(ctx: &Ctx, args: &ScanArgs) -> anyhow::Result<Outcome> {
    let target: Target = args.target.parse()?;
    let mut dev = Device::new(&target, &ctx.device)?;
    let req = ScanRequest {
        units: args.units.clone(),
        bauds: args.baud.clone(),
        frames: args.frame.clone(),
        all: args.all,
        listen: args.listen,
        registers: args.registers,
        emit_profile: args.emit_profile.clone(),
        rate: args.rate,
        concurrency: args.concurrency,
        verbose: ctx.verbose > 0,
    };
    let pb = ctx.progress_bar(0, "scanning");
    let t = dev.scan(&req, &pb).await;
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
        } else {
            // Machine formats keep stdout to the rows; what a person should know goes to stderr.
            for n in &t.notes {
                eprintln!("plcprobe: {n}");
            }
        }
        write_rows(&mut out, ctx.format, &t.rows, ctx.color)?;
    }
    out.flush()?;
    for p in &t.problems {
        eprintln!("plcprobe: {p}");
    }
    Ok(t.outcome)
}
