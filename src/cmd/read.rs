//! `read`: one-shot read of registers, coils, nodes or a profile's points, decoded, from one or
//! several devices at once (bounded concurrency); also `--guess`.

use std::io::Write;

use futures_util::StreamExt as _;

use super::{points_devices, Ctx, Outcome};
use crate::{
    cli::ReadArgs,
    device::{split_items, Device},
    report::{write_rows, Rows},
};

/// Run `read`.
pub async fn run(ctx: &Ctx, args: &ReadArgs) -> anyhow::Result<Outcome> {
    if args.guess {
        return guess(ctx, args).await;
    }
    let devices = points_devices(ctx, &args.points)?;
    let several = devices.len() > 1;
    let pb = ctx.progress_bar(devices.len() as u64, "reading");
    let pb_ref = &pb;
    let mut opened: Vec<anyhow::Result<(usize, Device, Option<String>)>> =
        futures_util::stream::iter(devices.into_iter().enumerate())
            .map(|(i, mut dev)| async move {
                let unreachable = if let Err(u) = dev.open(false).await? {
                    Some(u.0)
                } else {
                    dev.round().await;
                    None
                };
                pb_ref.inc(1);
                Ok((i, dev, unreachable))
            })
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
    pb.finish_and_clear();
    opened.sort_by_key(|r| r.as_ref().map_or(0, |(i, _, _)| *i));
    let failed = opened
        .iter()
        .position(Result::is_err)
        .map(|i| opened.remove(i));
    let done: Vec<_> = opened.into_iter().filter_map(Result::ok).collect();
    // Rows are made before any session closes (OPC UA rows need the values read); every device
    // that opened is closed, whatever happened.
    let table = match failed {
        Some(Err(e)) => Err(e),
        _ => table(ctx, several, &done),
    };
    for (_, dev, _) in done {
        dev.close().await;
    }
    let (rows, outcome, problems) = table?;
    let mut out = std::io::stdout().lock();
    if !(ctx.quiet && rows.rows.is_empty()) {
        write_rows(&mut out, ctx.format, &rows, ctx.color)?;
    }
    out.flush()?;
    for p in problems {
        super::warn(p);
    }
    Ok(outcome)
}

/// The rows of every device read, their verdict and the problems to tell.
fn table(
    ctx: &Ctx,
    several: bool,
    done: &[(usize, Device, Option<String>)],
) -> anyhow::Result<(Rows, Outcome, Vec<String>)> {
    let mut rows = Rows::new(&done[0].1.read_columns(several));
    let mut outcome = Outcome::Ok;
    let mut problems = Vec::new();
    for (_, dev, unreachable) in done {
        if let Some(why) = unreachable {
            // Nothing answered: the device's verdict, told once; the others still show.
            if !several {
                return Err(super::Fail::critical(format!("{}: {why}", dev.target().url())).into());
            }
            outcome = Outcome::Critical;
            problems.push(format!("{}: {why}", dev.target()));
            continue;
        }
        outcome = outcome.worst(dev.read_rows(several, ctx.quiet, &mut rows, &mut problems)?);
    }
    Ok((rows, outcome, problems))
}

/// `--guess`: one raw value under every type and order.
async fn guess(ctx: &Ctx, args: &ReadArgs) -> anyhow::Result<Outcome> {
    let (targets, addrs) = split_items(&args.points.items)?;
    let [target] = targets.as_slice() else {
        anyhow::bail!("--guess reads one device; give exactly one target");
    };
    let [addr] = addrs.as_slice() else {
        anyhow::bail!(
            "--guess looks at one address; give exactly one, e.g. hr:100+4 (up to 4 registers)"
        );
    };
    let mut dev = Device::new(target, &ctx.device)?;
    let t = dev.guess(addr).await?;
    dev.close().await;
    if t.outcome == Outcome::Ok {
        let mut out = std::io::stdout().lock();
        write_rows(&mut out, ctx.format, &t.rows, ctx.color)?;
        out.flush()?;
    }
    for p in t.problems {
        super::warn(p);
    }
    Ok(t.outcome)
}
