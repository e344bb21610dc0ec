//! `write`: the one command that changes a device. Refuses without `--allow-write` (exit 3,
//! nothing sent); otherwise reads the current value, writes (FC05/FC06 for one value, FC15/FC16
//! for several or with `--fc16`), reads back and shows before and after.

use std::io::Write as _;

use serde_json::json;

use super::{plan::decode_args, Ctx, Outcome};
use crate::{
    cli::WriteArgs,
    proto::modbus::{
        address::modicon_of,
        exception::describe_exception,
        parse_address,
        value::{decode, encode_text, parse_bool, DataType},
        AddressRange, MAX_READ_BITS, MAX_READ_REGISTERS,
    },
    report::{write_rows, Rows},
    target::Target,
    transport::modbus::{Answer, Data, LinkError, ModbusLink},
};

/// Run `write`.
pub async fn run(ctx: &Ctx, args: &WriteArgs) -> anyhow::Result<Outcome> {
    let target: Target = args.target.parse()?;
    if super::opcua::is_opcua(&target) {
        if !args.allow_write {
            anyhow::bail!(
                "write changes a live device ({target}, {}); nothing was sent. Add --allow-write to confirm, after checking that the machine is in a safe state",
                args.address
            );
        }
        if args.fc16 || args.decode.ty.is_some() || args.decode.order.is_some() {
            anyhow::bail!("--fc16, --type and --order are for Modbus; an OPC UA write uses the node's own data type");
        }
        return super::opcua::write(ctx, &target, &args.address, &args.value).await;
    }
    let a = parse_address(&args.address)?;
    if !a.table.is_writable() {
        anyhow::bail!("{}: {}s are read-only in the Modbus data model; only holding registers (hr:) and coils (co:) can be written", args.address, a.table.name());
    }
    let (ty, order) = decode_args(&args.decode)?;
    let texts: Vec<&str> = args.value.split(',').map(str::trim).collect();
    // Encode first: a value that does not fit is refused before anything is sent.
    let (ty, words, bits) = if a.table.is_bits() {
        if ty.is_some_and(|t| t != DataType::Bool) {
            anyhow::bail!("{}: coils are single bits; leave --type out", args.address);
        }
        let bits = texts
            .iter()
            .map(|t| {
                parse_bool(t).ok_or_else(|| {
                    anyhow::anyhow!("`{t}` is not a coil value; use on/off, true/false or 1/0")
                })
            })
            .collect::<anyhow::Result<Vec<bool>>>()?;
        (DataType::Bool, Vec::new(), bits)
    } else {
        let ty = ty.unwrap_or(DataType::U16);
        let mut words = Vec::new();
        for t in &texts {
            words.extend(encode_text(t, ty, order)?);
        }
        (ty, words, Vec::new())
    };
    let count = if a.table.is_bits() {
        bits.len()
    } else {
        words.len()
    } as u16;
    if a.explicit_count && a.count != count {
        anyhow::bail!(
            "{} covers {} item(s) but {} value(s) of {ty} fill {count}",
            args.address,
            a.count,
            texts.len()
        );
    }
    if u32::from(a.start) + u32::from(count) > 65536 {
        anyhow::bail!(
            "{}: {count} item(s) from here run past address 65535",
            args.address
        );
    }
    let range = AddressRange::new(a.table, a.start, count);
    if !args.allow_write {
        anyhow::bail!(
            "write changes a live device ({target}, {range}); nothing was sent. Add --allow-write to confirm, after checking that the machine is in a safe state"
        );
    }

    let mut link = ModbusLink::new(&target, ctx.timeout)?;
    let fail = |e: LinkError| {
        super::warn(format!("{target}: {e}"));
        Ok(Outcome::Critical)
    };
    let before = match link.read(range, MAX_READ_REGISTERS, MAX_READ_BITS).await {
        Err(e) => return fail(e),
        Ok(b) => b,
    };
    let written: Answer<()> = match if a.table.is_bits() {
        link.write_coils(a.start, &bits, args.fc16).await
    } else {
        link.write_registers(a.start, &words, args.fc16).await
    } {
        Err(e) => return fail(e),
        Ok(w) => w,
    };
    let after = match link.read(range, MAX_READ_REGISTERS, MAX_READ_BITS).await {
        Err(e) => return fail(e),
        Ok(b) => b,
    };

    let fc = match (a.table.is_bits(), count == 1 && !args.fc16) {
        (true, true) => "FC05",
        (true, false) => "FC15",
        (false, true) => "FC06",
        (false, false) => "FC16",
    };
    let show = |d: &Answer<Data>, i: usize| -> serde_json::Value {
        match d {
            Err(code) => json!(describe_exception(*code)),
            Ok(Data::Bits(b)) => json!(b[i]),
            Ok(Data::Words(w)) => {
                let n = ty.registers() as usize;
                decode(&w[i * n..(i + 1) * n], ty, order).map_or_else(
                    |e| json!(e.to_string()),
                    |v| serde_json::to_value(v).unwrap_or_default(),
                )
            }
        }
    };
    let mut rows = Rows::new(&[
        "address", "modicon", "type", "function", "before", "written", "after", "status",
    ]);
    let width = if a.table.is_bits() { 1 } else { ty.registers() };
    let mut outcome = Outcome::Ok;
    for (i, text) in texts.iter().enumerate() {
        let start = a.start + i as u16 * width;
        let matches = match (&written, &after) {
            (Ok(()), Ok(Data::Words(w))) => {
                w[i * usize::from(width)..(i + 1) * usize::from(width)]
                    == words[i * usize::from(width)..(i + 1) * usize::from(width)]
            }
            (Ok(()), Ok(Data::Bits(b))) => b[i] == bits[i],
            _ => false,
        };
        let status = match &written {
            Err(code) => {
                outcome = Outcome::Critical;
                describe_exception(*code)
            }
            Ok(()) if matches => "ok".to_string(),
            Ok(()) => {
                outcome = outcome.worst(Outcome::Warning);
                "written, but reads back different".to_string()
            }
        };
        rows.push(vec![
            json!(AddressRange::single(a.table, start).to_string()),
            json!(modicon_of(a.table, start)),
            json!(ty.to_string()),
            json!(fc),
            show(&before, i),
            json!(text),
            show(&after, i),
            json!(status),
        ]);
    }
    let mut out = std::io::stdout().lock();
    write_rows(&mut out, ctx.format, &rows, ctx.color)?;
    out.flush()?;
    Ok(outcome)
}
