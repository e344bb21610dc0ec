//! `write`: the one command that changes a device. Refuses without `--allow-write` (exit 3,
//! nothing sent); otherwise the device reads the current value, writes, reads back, and the
//! rows show before and after.

use std::io::Write as _;

use super::{type_order, Ctx, Outcome};
use crate::{
    cli::WriteArgs,
    device::{Device, WriteRequest},
    report::write_rows,
    target::Target,
};

/// Run `write`.
pub async fn run(ctx: &Ctx, args: &WriteArgs) -> anyhow::Result<Outcome> {
    let target: Target = args.target.parse()?;
    let (ty, order) = type_order(&args.decode)?;
    let req = WriteRequest {
        address: &args.address,
        value: &args.value,
        allow: args.allow_write,
        fc16: args.fc16,
        ty,
        order,
    };
    let mut dev = Device::new(&target, &ctx.device)?;
    let t = dev.write(&req).await?;
    dev.close().await;
    let mut out = std::io::stdout().lock();
    if !t.rows.rows.is_empty() {
        write_rows(&mut out, ctx.format, &t.rows, ctx.color)?;
    }
    out.flush()?;
    for p in t.problems {
        super::warn(p);
    }
    Ok(t.outcome)
}
