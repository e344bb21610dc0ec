//! `browse opc.tcp://…`: an OPC UA server's address space as a tree (or flat paths, `--flat`),
//! depth-first from the Objects folder or a given node, with each variable's data type and value;
//! `--references` lists one node's references instead. Read-only.

use std::collections::BTreeMap;

use opcua::types::{
    AttributeId, BrowseDirection, DataTypeId, NodeClass, NodeId, ObjectId, ReferenceTypeId, Variant,
};
use serde_json::{json, Value as Json};

use super::{Ctx, Fail, Outcome};
use crate::{
    cli::BrowseArgs,
    device::opcua::{dv_status, open_session},
    proto::opcua::{
        node::NodeRef,
        variant::{class_name, qname, status_code_name, variant_json},
    },
    report::{write_rows, Format, Rows},
    target::Target,
};

struct BrowseRow {
    depth: u32,
    path: String,
    name: String,
    id: NodeId,
    class: NodeClass,
    keep: bool,
    /// Index of the parent row (`usize::MAX` under the start node).
    parent: usize,
}

/// `browse`.
pub async fn run(ctx: &Ctx, args: &BrowseArgs) -> anyhow::Result<Outcome> {
    let target = opc_target(&args.target)?;
    let start = args
        .node
        .as_deref()
        .map(str::parse::<NodeRef>)
        .transpose()
        .map_err(Fail::unknown)?;
    let s = open_session(&ctx.device, &target, false).await?;
    let start_id = match &start {
        None => NodeId::from(ObjectId::ObjectsFolder),
        Some(r) => match s.resolve(std::slice::from_ref(r)).await?.remove(0) {
            Ok(id) => id,
            Err(why) => return Err(Fail::critical(format!("{target}: {r}: {why}")).into()),
        },
    };
    if args.references {
        let refs = s
            .browse_children(&start_id, BrowseDirection::Both, false)
            .await?;
        let mut rows = Rows::new(&["direction", "reference", "browse_name", "node", "class"]);
        for r in &refs {
            rows.push(vec![
                json!(if r.is_forward { "forward" } else { "inverse" }),
                json!(standard_name::<ReferenceTypeId>(&r.reference_type_id)),
                json!(qname(&r.browse_name)),
                json!(r.node_id.node_id.to_string()),
                json!(class_name(r.node_class)),
            ]);
        }
        s.close().await;
        write_rows(&mut std::io::stdout().lock(), ctx.format, &rows, ctx.color)?;
        return Ok(Outcome::Ok);
    }
    let filter = args.filter.as_ref().map(|f| f.to_lowercase());
    let mut out: Vec<BrowseRow> = Vec::new();
    let pb = ctx.progress_bar(0, "browsing");
    // Depth-first, children by browse name; a node reached twice (several parents) is listed
    // once per place but not descended into again.
    let mut seen = std::collections::HashSet::new();
    seen.insert(start_id.clone());
    let mut stack: Vec<(NodeId, u32, String, usize)> =
        vec![(start_id.clone(), 0, String::new(), usize::MAX)];
    while let Some((id, depth, path, parent)) = stack.pop() {
        if depth >= args.depth {
            continue;
        }
        let mut kids = s
            .browse_children(&id, BrowseDirection::Forward, true)
            .await?;
        kids.sort_by(|a, b| a.browse_name.name.as_ref().cmp(b.browse_name.name.as_ref()));
        pb.inc(1);
        let base = out.len();
        for k in &kids {
            let name = qname(&k.browse_name);
            out.push(BrowseRow {
                depth: depth + 1,
                path: format!("{path}/{name}"),
                name,
                id: k.node_id.node_id.clone(),
                class: k.node_class,
                keep: filter
                    .as_ref()
                    .is_none_or(|f| k.browse_name.name.as_ref().to_lowercase().contains(f)),
                parent,
            });
        }
        for (i, row) in out.iter().enumerate().skip(base) {
            if seen.insert(row.id.clone()) {
                stack.push((row.id.clone(), depth + 1, row.path.clone(), i));
            }
        }
    }
    pb.finish_and_clear();
    // Order rows as a tree: children right after their parent.
    let parents: Vec<usize> = out.iter().map(|r| r.parent).collect();
    let order = tree_order(&parents);
    // Keep filtered rows and their ancestors.
    let mut keep = vec![false; out.len()];
    for (i, row) in out.iter().enumerate() {
        if row.keep {
            let mut j = i;
            loop {
                keep[j] = true;
                match out[j].parent {
                    usize::MAX => break,
                    p => j = p,
                }
            }
        }
    }
    // Data type and value of the variables, in batched reads.
    let vars: Vec<NodeId> = order
        .iter()
        .filter(|&&i| keep[i] && out[i].class == NodeClass::Variable)
        .map(|&i| out[i].id.clone())
        .collect();
    let values = s.read_values(&vars).await?;
    let types = s.read_attrs(&vars, AttributeId::DataType).await?;
    s.close().await;
    let mut vi = values.into_iter().zip(types);
    // A tree indents the names in a table; json/jsonl/csv get the depth as a column instead.
    let depth_column = !args.flat && ctx.format != Format::Table;
    let mut columns = vec![
        if args.flat { "path" } else { "browse_name" },
        "node",
        "class",
        "data_type",
        "value",
    ];
    if depth_column {
        columns.push("depth");
    }
    let mut rows = Rows::new(&columns);
    for &i in &order {
        if !keep[i] {
            continue;
        }
        let r = &out[i];
        let (dt, v) = if r.class == NodeClass::Variable {
            let (dv, t) = vi.next().expect("one per variable");
            let dt = match t.value {
                Some(Variant::NodeId(n)) => standard_name::<DataTypeId>(&n),
                _ => String::new(),
            };
            let v = match (dv_status(&dv), &dv.value) {
                (s, _) if s.is_bad() => json!(status_code_name(s)),
                (_, Some(v)) => variant_json(v),
                _ => Json::Null,
            };
            // A tree is for reading: long arrays and structures are cut, JSON keeps them whole.
            let v = match v {
                Json::Array(_) | Json::String(_) if ctx.format == Format::Table => {
                    let t = crate::report::cell_text(&v);
                    if t.chars().count() > 60 {
                        json!(format!("{}…", t.chars().take(59).collect::<String>()))
                    } else {
                        v
                    }
                }
                v => v,
            };
            (dt, v)
        } else {
            (String::new(), Json::Null)
        };
        let label = if args.flat {
            r.path.clone()
        } else if depth_column {
            r.name.clone()
        } else {
            format!("{}{}", "  ".repeat(r.depth as usize - 1), r.name)
        };
        let mut row = vec![
            json!(label),
            json!(r.id.to_string()),
            json!(class_name(r.class)),
            json!(dt),
            v,
        ];
        if depth_column {
            row.push(json!(r.depth));
        }
        rows.push(row);
    }
    write_rows(&mut std::io::stdout().lock(), ctx.format, &rows, ctx.color)?;
    Ok(Outcome::Ok)
}

/// Indices in depth-first tree order from each row's parent index.
fn tree_order(parents: &[usize]) -> Vec<usize> {
    let mut kids: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &p) in parents.iter().enumerate() {
        kids.entry(p).or_default().push(i);
    }
    let mut order = Vec::with_capacity(parents.len());
    let mut stack: Vec<usize> = kids.get(&usize::MAX).cloned().unwrap_or_default();
    stack.reverse();
    while let Some(i) = stack.pop() {
        order.push(i);
        if let Some(k) = kids.get(&i) {
            stack.extend(k.iter().rev());
        }
    }
    order
}

/// The name of a standard node (namespace 0) from the table `T` of its ids (`DataTypeId`,
/// `ReferenceTypeId`), else the node id as text.
fn standard_name<T: TryFrom<u32> + std::fmt::Debug>(n: &NodeId) -> String {
    if n.namespace == 0 {
        if let opcua::types::Identifier::Numeric(x) = n.identifier {
            if let Ok(t) = T::try_from(x) {
                return format!("{t:?}");
            }
        }
    }
    n.to_string()
}

/// A target that must be OPC UA.
pub fn opc_target(text: &str) -> anyhow::Result<Target> {
    let t: Target = text.parse()?;
    if !matches!(t, Target::OpcUa { .. }) {
        return Err(Fail::unknown(format!(
            "{t} is not an OPC UA server; this command needs opc.tcp://HOST[:PORT]"
        ))
        .into());
    }
    Ok(t)
}
