//! The Modbus read plan: what to read and how to decode it.
//!
//! A [`ReadPlan`] is a list of [`Item`]s (one decoded value each: a point of a profile, or one
//! value of an address range given on the command line) and the requests that fetch them, as
//! few as the spec and the device's limits allow. Only contiguous items are merged into one
//! request: reading a gap could hit an unmapped address and turn a good read into exception 0x02.

use std::time::Instant;

use super::{ItemError, ItemResult, RequestOutcome};
use crate::{
    profile::Profile,
    proto::modbus::{
        parse_address,
        value::{decode, Value},
        AddressRange, DataType, WordOrder, MAX_READ_BITS, MAX_READ_REGISTERS,
    },
    transport::modbus::{Answer, Data, ErrorKind, LinkError, ModbusLink},
};

/// One value to read and decode.
#[derive(Debug, Clone)]
pub struct Item {
    /// Point name (profiles) or the address text (command line).
    pub label: String,
    /// Registers or bits this value covers.
    pub range: AddressRange,
    /// Type.
    pub ty: DataType,
    /// Word order.
    pub order: WordOrder,
    /// Scale and offset (engineering value = raw * scale + offset).
    pub scale: f64,
    /// See `scale`.
    pub offset: f64,
    /// Engineering unit.
    pub unit: String,
}

/// Items plus the requests that fetch them.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    /// Values, in output order.
    pub items: Vec<Item>,
    /// Requests: a range and the indices of the items it carries.
    pub requests: Vec<(AddressRange, Vec<usize>)>,
    /// True when items come from a profile (named, scaled, with units).
    pub named: bool,
}

/// Raw answers of one run of a plan, one per request (reused across polls).
#[derive(Debug, Default)]
pub struct Fetched {
    /// Data or exception per request, or the link failure (kind, message).
    pub answers: Vec<Result<Answer<Data>, (ErrorKind, String)>>,
    /// Timing and error per request actually sent.
    pub outcomes: Vec<RequestOutcome>,
}

impl ReadPlan {
    /// A plan from command-line addresses. A single address covers one value of the type; a range
    /// covers as many values as fit (and must be a whole number of them).
    pub fn from_addresses(
        addrs: &[String],
        ty: Option<DataType>,
        order: WordOrder,
        max_registers: u16,
        max_bits: u16,
    ) -> anyhow::Result<ReadPlan> {
        let mut items = Vec::new();
        let mut ranges = Vec::new();
        for text in addrs {
            let a = parse_address(text)?;
            let ty = match (a.table.is_bits(), ty) {
                (true, None | Some(DataType::Bool)) => DataType::Bool,
                (true, Some(t)) => anyhow::bail!(
                    "{text}: {}s are single bits; --type {t} does not apply (leave --type out)",
                    a.table.name()
                ),
                (false, Some(t)) => t,
                (false, None) => DataType::U16,
            };
            let width = ty.registers();
            let range = if a.explicit_count {
                if a.count % width != 0 {
                    anyhow::bail!("{text}: {} item(s) is not a whole number of {ty} values ({width} registers each)", a.count);
                }
                a
            } else {
                if u32::from(a.start) + u32::from(width) > 65536 {
                    anyhow::bail!(
                        "{text}: a {ty} needs {width} registers and runs past address 65535"
                    );
                }
                AddressRange::new(a.table, a.start, width)
            };
            for i in 0..range.count / width {
                let r = AddressRange::new(range.table, range.start + i * width, width);
                items.push(Item {
                    label: r.to_string(),
                    range: r,
                    ty,
                    order,
                    scale: 1.0,
                    offset: 0.0,
                    unit: String::new(),
                });
            }
            ranges.push((
                range,
                items.len() - usize::from(range.count / width)..items.len(),
            ));
        }
        // Each address given is read as its own run of requests, split at the limits.
        let mut requests = Vec::new();
        for (range, idx) in ranges {
            let max = if range.table.is_bits() {
                max_bits.min(MAX_READ_BITS)
            } else {
                max_registers.min(MAX_READ_REGISTERS)
            };
            let width = items[idx.start].ty.registers();
            // Never split a value across two requests: round the chunk down to whole values.
            let max = (max / width).max(1) * width;
            for chunk in range.chunks(max) {
                let carried = idx
                    .clone()
                    .filter(|&i| chunk.overlaps(&items[i].range))
                    .collect();
                requests.push((chunk, carried));
            }
        }
        Ok(ReadPlan {
            items,
            requests,
            named: false,
        })
    }

    /// A plan for every Modbus point of a profile, batched.
    pub fn from_profile(p: &Profile) -> ReadPlan {
        let items = p
            .points
            .iter()
            .filter_map(|pt| {
                Some(Item {
                    label: pt.name.clone(),
                    range: pt.address?,
                    ty: pt.ty,
                    order: pt.order,
                    scale: pt.scale,
                    offset: pt.offset,
                    unit: pt.unit.clone(),
                })
            })
            .collect();
        Self::batched(items, p.device.max_registers, p.device.max_bits)
    }

    /// A plan for named items, batched: contiguous items of one table share a request, up to
    /// the device's limits.
    pub fn batched(items: Vec<Item>, max_registers: u16, max_bits: u16) -> ReadPlan {
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| (items[i].range.table, items[i].range.start));
        let mut requests: Vec<(AddressRange, Vec<usize>)> = Vec::new();
        for i in order {
            let r = items[i].range;
            let max = if r.table.is_bits() {
                max_bits.min(MAX_READ_BITS)
            } else {
                max_registers.min(MAX_READ_REGISTERS)
            };
            if let Some((last, idx)) = requests.last_mut() {
                if last.table == r.table
                    && last.end() == u32::from(r.start)
                    && u32::from(last.count) + u32::from(r.count) <= u32::from(max)
                {
                    last.count += r.count;
                    idx.push(i);
                    continue;
                }
            }
            requests.push((AddressRange::new(r.table, r.start, r.count), vec![i]));
        }
        ReadPlan {
            items,
            requests,
            named: true,
        }
    }

    /// Run every request once and keep the raw answers, undecoded (a `poll -q` never needs the
    /// values, and decoding 125 of them per request would cost more than the request).
    /// After a failure to connect the remaining requests are not sent (they would only wait out
    /// the same timeout); they carry the same error.
    pub async fn fetch(&self, link: &mut ModbusLink, out: &mut Fetched) {
        out.answers.clear();
        out.outcomes.clear();
        let mut dead: Option<(ErrorKind, String)> = None;
        for (range, _) in &self.requests {
            if let Some(d) = &dead {
                out.answers.push(Err(d.clone()));
                continue;
            }
            link.wait_turn().await;
            let t0 = Instant::now();
            let ans = link.read_chunk(*range).await;
            // Over RTU, the wire's own time from request to answer: the silence it keeps
            // before a request (t3.5, longer after a failure) is not the device's slowness.
            let rtt = link.last_rtu_rtt().unwrap_or_else(|| t0.elapsed());
            match ans {
                Ok(a) => {
                    let error = a.as_ref().err().map(|code| Ok(*code));
                    out.outcomes.push(RequestOutcome {
                        rtt,
                        error,
                        connect_failed: false,
                    });
                    out.answers.push(Ok(a));
                }
                Err(e) => {
                    let connect_failed = matches!(e, LinkError::Connect(_));
                    out.outcomes.push(RequestOutcome {
                        rtt,
                        error: Some(Err(e.kind())),
                        connect_failed,
                    });
                    let failure = (e.kind(), e.to_string());
                    if connect_failed {
                        dead = Some(failure.clone());
                    }
                    out.answers.push(Err(failure));
                }
            }
        }
    }

    /// Decode fetched answers into one result per item.
    pub fn decode(&self, fetched: &Fetched) -> Vec<ItemResult> {
        let mut results: Vec<Option<ItemResult>> = vec![None; self.items.len()];
        for ((range, idx), ans) in self.requests.iter().zip(&fetched.answers) {
            for &i in idx {
                results[i] = Some(match ans {
                    Ok(Ok(data)) => Self::decode_item(&self.items[i], *range, data),
                    Ok(Err(code)) => ItemResult {
                        raw: vec![],
                        value: Err(ItemError::Exception(*code)),
                    },
                    Err((k, m)) => ItemResult {
                        raw: vec![],
                        value: Err(ItemError::Link(*k, m.clone())),
                    },
                });
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every item belongs to a request"))
            .collect()
    }

    /// Fetch and decode: one result per item and one outcome per request.
    pub async fn execute(&self, link: &mut ModbusLink) -> (Vec<ItemResult>, Vec<RequestOutcome>) {
        let mut f = Fetched::default();
        self.fetch(link, &mut f).await;
        (self.decode(&f), f.outcomes)
    }

    fn decode_item(item: &Item, req: AddressRange, data: &Data) -> ItemResult {
        let off = usize::from(item.range.start - req.start);
        let n = usize::from(item.range.count);
        match data {
            Data::Bits(b) => {
                let bit = b[off];
                ItemResult {
                    raw: vec![u16::from(bit)],
                    value: Ok(Value::Bool(bit)),
                }
            }
            Data::Words(w) => {
                let raw = w[off..off + n].to_vec();
                let value = decode(&raw, item.ty, item.order)
                    .map_err(|e| ItemError::Decode(e.to_string()))
                    .map(|v| match (&v, v.as_f64()) {
                        (Value::Bool(_) | Value::Text(_), _) | (_, None) => v,
                        (_, Some(x)) if item.scale != 1.0 || item.offset != 0.0 => {
                            Value::F(round_scaled(x * item.scale + item.offset, item.scale))
                        }
                        _ => v,
                    });
                ItemResult { raw, value }
            }
        }
    }
}

/// Round a scaled value to the precision the scale implies (0.1 → one decimal), so 423 * 0.1
/// prints 42.3 and not 42.300000000000004.
fn round_scaled(v: f64, scale: f64) -> f64 {
    let decimals = (-scale.abs().log10()).ceil().clamp(0.0, 12.0) as i32 + 1;
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// Raw words as hex text, bits as 0/1.
pub fn raw_text(item: &Item, raw: &[u16]) -> String {
    if item.range.table.is_bits() {
        raw.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        raw.iter()
            .map(|w| format!("0x{w:04X}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of one address from the command line, within the Modbus limits (125
    /// registers, 2000 bits a request).
    fn plan(address: &str, ty: Option<DataType>) -> anyhow::Result<ReadPlan> {
        ReadPlan::from_addresses(&[address.into()], ty, WordOrder::Abcd, 125, 2000)
    }

    #[test]
    fn long_ranges_split_at_value_boundaries() {
        let p = plan("hr:0..300", Some(DataType::F32)).unwrap();
        assert_eq!(p.items.len(), 150);
        let sizes: Vec<u16> = p.requests.iter().map(|(r, _)| r.count).collect();
        assert_eq!(
            sizes,
            vec![124, 124, 52],
            "f32 values never straddle two requests"
        );
        let carried: usize = p.requests.iter().map(|(_, i)| i.len()).sum();
        assert_eq!(carried, 150);
        let p = plan("co:0..5000", None).unwrap();
        assert_eq!(
            p.requests.iter().map(|(r, _)| r.count).collect::<Vec<_>>(),
            vec![2000, 2000, 1000]
        );
    }

    #[test]
    fn refuses_partial_values() {
        let e = plan("hr:0..3", Some(DataType::F32)).unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
        let e = plan("co:0", Some(DataType::F32)).unwrap_err();
        assert!(e.to_string().contains("single bits"), "{e}");
    }

    #[test]
    fn profile_batches_contiguous_points() {
        let p = Profile::parse("demo", crate::profile::DEMO_PROFILE).unwrap();
        let plan = ReadPlan::from_profile(&p);
        // hr:100..103 (f32, i16) and hr:104..107 (u32, bits) are contiguous; hr:103 is a gap the
        // plan must not read across (it is unmapped and would answer 0x02).
        let hr: Vec<(u16, u16, usize)> = plan
            .requests
            .iter()
            .filter(|(r, _)| r.table == crate::proto::modbus::Table::HoldingRegister)
            .map(|(r, i)| (r.start, r.count, i.len()))
            .collect();
        assert_eq!(&hr[..2], &[(100, 3, 2), (104, 3, 2)]);
        assert!(plan.requests.len() < plan.items.len());
    }

    #[test]
    fn scaled_values_round_to_the_scale() {
        assert_eq!(round_scaled(423.0 * 0.1, 0.1), 42.3);
        assert_eq!(round_scaled(725.0 * 0.01, 0.01), 7.25);
        assert_eq!(round_scaled(12.0 * 2.0, 2.0), 24.0);
    }
}
