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
    let mut done: Vec<(usize, Device, Option<String>)> =
        futures_util::stream::iter(devices.into_iter().enumerate())
            .map(|(i, mut dev)| async move {
                let unreachable = match dev.open(false).await {
                    Err(e) => return Err(e),
                    Ok(Err(u)) => Some(u.0),
                    Ok(Ok(())) => {
                        dev.round().await;
                        None
                    }
                };
                pb_ref.inc(1);
                Ok((i, dev, unreachable))
            })
            .buffer_unordered(args.concurrency.max(1))
            .collect::<Vec<anyhow::Result<_>>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
    pb.finish_and_clear();
    done.sort_by_key(|(i, _, _)| *i);

    let mut rows = Rows::new(&done[0].1.read_columns(several));
    let mut outcome = Outcome::Ok;
    let mut problems = Vec::new();
    for (_, dev, unreachable) in &done {
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
    for (_, dev, _) in done {
        dev.close().await;
    }
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
