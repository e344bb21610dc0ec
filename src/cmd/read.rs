//! `read`: one-shot read of registers, coils or a profile's points, decoded; also `--guess`.

use std::io::Write;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use serde_json::json;

use super::{
    plan::{decode_args, read_columns, read_row, ItemResult, ReadPlan},
    Ctx, Outcome,
};
use crate::{
    cli::{PointsArgs, ReadArgs},
    profile::Profile,
    proto::modbus::{
        address::modicon_of,
        value::{decode, DataType, WordOrder},
        MAX_READ_BITS, MAX_READ_REGISTERS,
    },
    report::{write_rows, Rows},
    target::Target,
    transport::modbus::{Data, ModbusLink},
};

/// Split positional items into targets (anything with `://`) and addresses.
pub fn split_items(items: &[String]) -> anyhow::Result<(Vec<Target>, Vec<String>)> {
    let mut targets = Vec::new();
    let mut addrs = Vec::new();
    for it in items {
        // Addresses never hold '/' or three dots; such an item is a target missing its scheme
        // (`192.0.2.10`, `modbus//host`), and the target error says how to write one.
        if it.contains('/') || it.split('.').count() == 4 {
            targets.push(it.parse::<Target>()?);
        } else {
            addrs.push(it.clone());
        }
    }
    Ok((targets, addrs))
}

/// Resolve the targets and the plan shared by read and poll.
pub fn resolve(args: &PointsArgs) -> anyhow::Result<(Vec<Target>, ReadPlan)> {
    let PointsArgs {
        items,
        profile,
        decode,
    } = args;
    let (mut targets, addrs) = split_items(items)?;
    let (ty, order) = decode_args(decode)?;
    let plan = if let Some(path) = profile.as_deref() {
        let p = Profile::load(path)?;
        if !addrs.is_empty() {
            anyhow::bail!(
                "give either --profile or addresses, not both (got {})",
                addrs.join(" ")
            );
        }
        if ty.is_some() || decode.order.is_some() {
            anyhow::bail!("--type and --order do not apply with --profile: each point has its own type and order in {}", path.display());
        }
        if targets.is_empty() {
            targets.push(p.device.target.clone().ok_or_else(|| {
                anyhow::anyhow!("{} has no [device] target; give one on the command line, e.g. modbus://192.0.2.10/1", path.display())
            })?);
        }
        let plan = ReadPlan::from_profile(&p);
        if plan.items.is_empty() {
            anyhow::bail!(
                "{} has no Modbus points (points with `address`) to read",
                path.display()
            );
        }
        plan
    } else {
        if addrs.is_empty() {
            anyhow::bail!("nothing to read: give addresses after the target (e.g. hr:0..10 or 40101), or --profile FILE");
        }
        ReadPlan::from_addresses(&addrs, ty, order, MAX_READ_REGISTERS, MAX_READ_BITS)?
    };
    if targets.is_empty() {
        anyhow::bail!("no target: start with one like modbus://192.0.2.10:502/1");
    }
    Ok((targets, plan))
}

/// Run `read`.
pub async fn run(ctx: &Ctx, args: &ReadArgs) -> anyhow::Result<Outcome> {
    if let Some(o) = opcua_read(ctx, args).await? {
        return Ok(o);
    }
    if args.guess {
        return guess(ctx, args).await;
    }
    let (targets, plan) = resolve(&args.points)?;
    // Build every link first so a bad target kind fails before any traffic.
    let links = targets
        .iter()
        .map(|t| ModbusLink::new(t, ctx.timeout))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let several = targets.len() > 1;
    let pb = ctx.progress_bar(targets.len() as u64, "reading");
    let plan_ref = &plan;
    let pb_ref = &pb;
    let mut done: Vec<(usize, Vec<ItemResult>)> =
        futures_util::stream::iter(links.into_iter().enumerate())
            .map(|(i, mut link)| async move {
                let (results, _) = plan_ref.execute(&mut link).await;
                pb_ref.inc(1);
                (i, results)
            })
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
    pb.finish_and_clear();
    done.sort_by_key(|(i, _)| *i);

    let mut rows = Rows::new(&read_columns(plan.named, several));
    let mut outcome = Outcome::Ok;
    let mut problems = Vec::new();
    for (i, results) in &done {
        let t = &targets[*i];
        for (item, r) in plan.items.iter().zip(results) {
            if let Err(e) = &r.value {
                outcome = Outcome::Critical;
                if let crate::cmd::plan::ItemError::Link(_, m) = e {
                    let line = format!("{t}: {m}");
                    if !problems.contains(&line) {
                        problems.push(line);
                    }
                }
            }
            if ctx.quiet && r.value.is_ok() {
                continue;
            }
            rows.push(read_row(&plan, item, r, several.then_some(t)));
        }
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

/// What `read` or `poll` of an OPC UA device is asked for.
pub struct UaPoints {
    /// The server.
    pub target: Target,
    /// Nodes from the command line (empty with a profile).
    pub nodes: Vec<String>,
    /// The profile whose `node` points are read.
    pub profile: Option<Profile>,
}

/// `opc.tcp://… NODE…` or `--profile P` of an OPC UA device: `None` when the target is not
/// OPC UA (then the Modbus path resolves the arguments).
pub fn opcua_points(args: &PointsArgs) -> anyhow::Result<Option<UaPoints>> {
    let items = &args.items;
    // A Modbus target on the command line: no need to look at the profile here.
    if items.first().is_some_and(|t| !t.starts_with("opc.tcp://")) {
        return Ok(None);
    }
    let profile = args.profile.as_deref().map(Profile::load).transpose()?;
    let target = match items.first() {
        Some(t) => t.parse::<Target>()?,
        None => match profile.as_ref().and_then(|p| p.device.target.clone()) {
            Some(t @ Target::OpcUa { .. }) => t,
            _ => return Ok(None),
        },
    };
    if args.decode.ty.is_some() || args.decode.order.is_some() {
        anyhow::bail!(
            "--type and --order are for Modbus registers; OPC UA values carry their own type"
        );
    }
    let nodes = items.get(1..).unwrap_or_default().to_vec();
    if profile.is_some() && !nodes.is_empty() {
        anyhow::bail!("give either --profile or nodes, not both");
    }
    if nodes
        .iter()
        .any(|n| n.starts_with("opc.tcp://") || n.starts_with("modbus://"))
    {
        anyhow::bail!("give one OPC UA server at a time");
    }
    Ok(Some(UaPoints {
        target,
        nodes,
        profile,
    }))
}

/// `read opc.tcp://… NODE…` or `read --profile P` of an OPC UA device: `None` when the target
/// is not OPC UA.
async fn opcua_read(ctx: &Ctx, args: &ReadArgs) -> anyhow::Result<Option<Outcome>> {
    let Some(ua) = opcua_points(&args.points)? else {
        return Ok(None);
    };
    if args.guess {
        anyhow::bail!("--guess is for Modbus registers; OPC UA values carry their own type");
    }
    super::opcua::read(ctx, &ua.target, &ua.nodes, ua.profile.as_ref())
        .await
        .map(Some)
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
    let mut a = crate::proto::modbus::parse_address(addr)?;
    if a.table.is_bits() {
        anyhow::bail!(
            "{addr}: --guess decodes registers; {}s are single bits",
            a.table.name()
        );
    }
    if !a.explicit_count {
        a = crate::proto::modbus::AddressRange::new(
            a.table,
            a.start,
            4.min((65536 - u32::from(a.start)) as u16),
        );
    }
    if a.count > 4 {
        anyhow::bail!(
            "{addr}: --guess looks at up to 4 registers (64-bit values); give e.g. {}:{}+4",
            a.table.prefix(),
            a.start
        );
    }
    let mut link = ModbusLink::new(target, ctx.timeout)?;
    let words = match link.read(a, MAX_READ_REGISTERS, MAX_READ_BITS).await {
        Err(e) => {
            super::warn(format!("{target}: {e}"));
            return Ok(Outcome::Critical);
        }
        Ok(Err(code)) => {
            super::warn(format!(
                "{target}: {a} answered exception {}",
                crate::proto::modbus::exception::describe_exception(code)
            ));
            return Ok(Outcome::Critical);
        }
        Ok(Ok(Data::Words(w))) => w,
        Ok(Ok(Data::Bits(_))) => unreachable!("register table"),
    };
    let mut rows = Rows::new(&["address", "modicon", "registers", "type", "order", "value"]);
    let raw = words
        .iter()
        .map(|w| format!("0x{w:04X}"))
        .collect::<Vec<_>>()
        .join(" ");
    for ty in DataType::guess_types(words.len()) {
        let n = ty.registers() as usize;
        let orders: &[WordOrder] = if n > 1 {
            &WordOrder::ALL
        } else if matches!(ty, DataType::U16 | DataType::I16 | DataType::Hex) {
            &[WordOrder::Abcd, WordOrder::Badc]
        } else {
            &[WordOrder::Abcd]
        };
        for order in orders {
            let v = decode(&words[..n], ty, *order).map_or_else(
                |e| json!(format!("({e})")),
                |v| serde_json::to_value(v).unwrap_or_default(),
            );
            rows.push(vec![
                json!(a.at(0).to_string()),
                json!(modicon_of(a.table, a.start)),
                json!(raw),
                json!(ty.to_string()),
                json!(order.to_string()),
                v,
            ]);
        }
    }
    let mut out = std::io::stdout().lock();
    write_rows(&mut out, ctx.format, &rows, ctx.color).context("writing output")?;
    Ok(Outcome::Ok)
}
