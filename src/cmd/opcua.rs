//! OPC UA commands: `read` and `write` of opc.tcp:// targets, `browse`, `watch`, `trust`, and the
//! snapshot of a profile's `node` points (shared by snapshot, diff and check).

use std::{
    collections::BTreeMap,
    io::{IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

use opcua::{
    client::{DataChangeCallback, MonitoredItem, MonitoredItemMap, OnSubscriptionNotificationCore},
    types::{
        AttributeId, BrowseDirection, DataValue, MonitoredItemCreateRequest, NodeClass, NodeId,
        ObjectId, StatusCode, TimestampsToReturn, Variant, WriteValue,
    },
};
use serde_json::{json, Value as Json};

use super::{
    plan::{ItemError, ItemResult, RequestOutcome},
    Ctx, Fail, Outcome,
};
use crate::{
    cli::{BrowseArgs, TrustArgs, UaArgs, WatchArgs},
    proto::modbus::value::Value,
    report::{write_rows, Format, RowStream, Rows},
    snapshot::{ProfileRef, SnapPoint, Snapshot, Unreachable},
    target::Target,
    transport::{
        modbus::ErrorKind,
        opcua::{
            self as ua, cert_info, class_name, connect, default_pki, qname, status_name,
            status_outcome, status_text, variant_json, variant_type, Identity, NodeRef, Security,
            UaConfig, UaSession,
        },
    },
};

/// The session settings for `target` from the OPC UA flags and the environment.
pub fn ua_config(
    ua: &UaArgs,
    timeout: Duration,
    target: &Target,
    reconnect: bool,
) -> anyhow::Result<UaConfig> {
    let security = ua
        .security
        .as_deref()
        .map(str::parse::<Security>)
        .transpose()
        .map_err(|e| Fail::unknown(format!("--security: {e}")))?;
    let identity = match (&ua.user, &ua.cert, &ua.key) {
        (Some(_), Some(_), _) => {
            return Err(Fail::unknown("give --user or --cert/--key, not both").into())
        }
        (Some(u), None, _) => Identity::User(u.clone(), password(u, target)?),
        (None, Some(c), Some(k)) => Identity::Cert(c.clone(), k.clone()),
        _ => Identity::Anonymous,
    };
    Ok(UaConfig {
        url: target.url(),
        security,
        identity,
        pki: default_pki(),
        trust_server: ua.trust_server,
        timeout,
        reconnect,
    })
}

/// The password of `user`: `PLCPROBE_PASSWORD`, else a prompt on a terminal; never argv.
fn password(user: &str, target: &Target) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("PLCPROBE_PASSWORD") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Fail::unknown(format!(
            "--user {user}: no password: set PLCPROBE_PASSWORD (cron, scripts) or run on a terminal to be asked; plcprobe never takes a password on the command line"
        ))
        .into());
    }
    rpassword::prompt_password(format!("Password for {user} at {target}: "))
        .map_err(|e| Fail::unknown(format!("cannot read the password: {e}")).into())
}

async fn open(ctx: &Ctx, target: &Target, reconnect: bool) -> anyhow::Result<UaSession> {
    let cfg = ua_config(&ctx.ua, ctx.timeout, target, reconnect)?;
    Ok(connect(&cfg).await?)
}

/// Resolve node texts; a text that does not parse is bad usage (exit 3).
fn parse_nodes(texts: &[String]) -> anyhow::Result<Vec<NodeRef>> {
    texts
        .iter()
        .map(|t| t.parse::<NodeRef>().map_err(|e| Fail::unknown(e).into()))
        .collect()
}

fn ts(d: Option<&opcua::types::DateTime>) -> Json {
    d.filter(|d| !d.is_null()).map_or(Json::Null, |d| {
        json!(d
            .as_chrono()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    })
}

fn dv_status(dv: &DataValue) -> StatusCode {
    dv.status.unwrap_or(StatusCode::Good)
}

/// One-shot read of nodes, or of a profile's `node` points.
pub async fn read(
    ctx: &Ctx,
    target: &Target,
    nodes: &[String],
    profile: Option<&crate::profile::Profile>,
) -> anyhow::Result<Outcome> {
    let (labels, refs): (Vec<Option<&crate::profile::Point>>, Vec<NodeRef>) = if let Some(p) =
        profile
    {
        let pts: Vec<&crate::profile::Point> =
            p.points.iter().filter(|pt| pt.node.is_some()).collect();
        if pts.is_empty() {
            return Err(Fail::unknown(format!(
                "{} has no OPC UA points (points with `node`) to read from {target}",
                p.source
            ))
            .into());
        }
        let refs = pts
            .iter()
            .map(|pt| {
                pt.node
                    .as_deref()
                    .expect("filtered")
                    .parse::<NodeRef>()
                    .map_err(|e| Fail::unknown(format!("{}: point `{}`: {e}", p.source, pt.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        (pts.into_iter().map(Some).collect(), refs)
    } else {
        if nodes.is_empty() {
            return Err(Fail::unknown(format!(
                "nothing to read: give nodes after the target, e.g. plcprobe read {target} \"ns=2;s=Line1.Speed\" i=2258"
            ))
            .into());
        }
        (vec![None; nodes.len()], parse_nodes(nodes)?)
    };
    let s = open(ctx, target, false).await?;
    let ids = s.resolve(&refs).await?;
    let good: Vec<NodeId> = ids
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let mut values = s.read_values(&good).await?.into_iter();
    let named = profile.is_some();
    let mut cols = vec![];
    if named {
        cols.push("name");
    }
    cols.extend(["node", "value"]);
    if named {
        cols.push("unit");
    }
    cols.extend(["type", "status", "source_time", "server_time"]);
    let mut rows = Rows::new(&cols);
    let mut outcome = Outcome::Ok;
    for ((r, id), pt) in refs.iter().zip(&ids).zip(&labels) {
        let (row_outcome, value, ty, status, st, sv) = if let Err(why) = id {
            (
                Outcome::Critical,
                Json::Null,
                String::new(),
                why.clone(),
                Json::Null,
                Json::Null,
            )
        } else {
            let dv = values.next().expect("one value per node");
            let sc = dv_status(&dv);
            let v = dv
                .value
                .as_ref()
                .map_or(Json::Null, |v| scaled(variant_json(v), *pt));
            (
                status_outcome(sc),
                v,
                variant_type(dv.value.as_ref()),
                status_name(sc),
                ts(dv.source_timestamp.as_ref()),
                ts(dv.server_timestamp.as_ref()),
            )
        };
        outcome = outcome.worst(row_outcome);
        // -q: only the nodes that are not Good.
        if ctx.quiet && row_outcome == Outcome::Ok {
            continue;
        }
        let mut row = vec![];
        if let Some(p) = pt {
            row.push(json!(p.name));
        }
        row.extend([json!(r.to_string()), value]);
        if let Some(p) = pt {
            row.push(json!(p.unit));
        }
        row.extend([json!(ty), json!(status), st, sv]);
        rows.push(row);
    }
    s.close().await;
    let mut out = std::io::stdout().lock();
    if !(ctx.quiet && rows.rows.is_empty()) {
        write_rows(&mut out, ctx.format, &rows, ctx.color)?;
    }
    out.flush()?;
    Ok(outcome)
}

/// A profile point's scale and offset applied to a number (OPC UA values are usually
/// engineering values already: scale 1, offset 0).
fn scaled(v: Json, p: Option<&crate::profile::Point>) -> Json {
    match (p.map(ua_scale), v.as_f64()) {
        (Some((scale, offset)), Some(x)) if !v.is_boolean() && (scale != 1.0 || offset != 0.0) => {
            json!(x * scale + offset)
        }
        _ => v,
    }
}

/// Scale and offset of a point's OPC UA value. They turn Modbus raw counts into engineering
/// units: a point that also has an `address` carries them for Modbus, and its OPC UA variable is
/// taken to hold the engineering value already (as the simulator's does).
fn ua_scale(pt: &crate::profile::Point) -> (f64, f64) {
    if pt.address.is_some() {
        (1.0, 0.0)
    } else {
        (pt.scale, pt.offset)
    }
}

/// Guarded write of one node with read-back.
pub async fn write(ctx: &Ctx, target: &Target, node: &str, text: &str) -> anyhow::Result<Outcome> {
    let r: NodeRef = node.parse().map_err(Fail::unknown)?;
    let s = open(ctx, target, false).await?;
    let id = match s.resolve(std::slice::from_ref(&r)).await?.remove(0) {
        Ok(id) => id,
        Err(why) => return Err(Fail::critical(format!("{target}: {r}: {why}")).into()),
    };
    let before = s.read_values(std::slice::from_ref(&id)).await?.remove(0);
    if dv_status(&before).is_bad() {
        return Err(Fail::critical(format!(
            "{target}: {r}: cannot read the value before writing: {}",
            status_text(dv_status(&before))
        ))
        .into());
    }
    let like = before.value.clone().unwrap_or(Variant::Empty);
    let v = ua::variant_from_text(text, &like)
        .map_err(|e| Fail::unknown(format!("{r} holds a {}: {e}", variant_type(Some(&like)))))?;
    let wv = WriteValue {
        node_id: id.clone(),
        attribute_id: AttributeId::Value as u32,
        index_range: opcua::types::NumericRange::default(),
        value: DataValue::value_only(v.clone()),
    };
    let res = s
        .call(&format!("Write of {r}"), s.session.write(&[wv]))
        .await?;
    let status = res
        .first()
        .copied()
        .unwrap_or(StatusCode::BadUnexpectedError);
    let after = s.read_values(std::slice::from_ref(&id)).await?.remove(0);
    s.close().await;
    let mut rows = Rows::new(&["node", "before", "written", "after", "type", "status"]);
    rows.push(vec![
        json!(r.to_string()),
        before.value.as_ref().map_or(Json::Null, variant_json),
        variant_json(&v),
        after.value.as_ref().map_or(Json::Null, variant_json),
        json!(variant_type(Some(&v))),
        json!(status_name(status)),
    ]);
    let mut out = std::io::stdout().lock();
    write_rows(&mut out, ctx.format, &rows, ctx.color)?;
    out.flush()?;
    if status.is_bad() {
        super::warn(format!(
            "{target}: the server refused the write of {r}: {}",
            status_text(status)
        ));
        return Ok(Outcome::Critical);
    }
    if after.value.as_ref() != Some(&v) {
        super::warn(format!(
            "{target}: {r}: read back {} after writing {} (the server may scale, clamp or overwrite it)",
            after.value.as_ref().map_or(Json::Null, variant_json),
            variant_json(&v)
        ));
        return Ok(Outcome::Warning);
    }
    Ok(Outcome::Ok)
}

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
pub async fn browse(ctx: &Ctx, args: &BrowseArgs) -> anyhow::Result<Outcome> {
    let target = opc_target(&args.target)?;
    let start = args
        .node
        .as_deref()
        .map(str::parse::<NodeRef>)
        .transpose()
        .map_err(Fail::unknown)?;
    let s = open(ctx, &target, false).await?;
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
                json!(reference_name(&r.reference_type_id)),
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
                Some(Variant::NodeId(n)) => data_type_name(&n),
                _ => String::new(),
            };
            let v = match (dv_status(&dv), &dv.value) {
                (s, _) if s.is_bad() => json!(status_name(s)),
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

fn data_type_name(n: &NodeId) -> String {
    if n.namespace == 0 {
        if let opcua::types::Identifier::Numeric(x) = n.identifier {
            if let Ok(t) = opcua::types::DataTypeId::try_from(x) {
                return format!("{t:?}");
            }
        }
    }
    n.to_string()
}

fn reference_name(n: &NodeId) -> String {
    if n.namespace == 0 {
        if let opcua::types::Identifier::Numeric(x) = n.identifier {
            if let Ok(t) = opcua::types::ReferenceTypeId::try_from(x) {
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

/// One data change or session event, for the watch output.
enum Note {
    Change(usize, DataValue),
    Session(String, bool),
    /// A publish response (data or keep-alive) and the server's publish time.
    Alive(opcua::types::DateTime),
}

/// The watch subscription's callback: every publish response, keep-alives included, reports
/// its server publish time (a gap is measured on the server's clock, from its last message
/// before the loss to its first after, even when watch only sees the loss later, e.g. after
/// the laptop slept); data changes go on to the inner callback.
struct Alive<T>(tokio::sync::mpsc::UnboundedSender<Note>, T);

impl<T: OnSubscriptionNotificationCore> OnSubscriptionNotificationCore for Alive<T> {
    fn on_subscription_notification(
        &mut self,
        notification: opcua::types::NotificationMessage,
        items: MonitoredItemMap<'_>,
    ) {
        let _ = self.0.send(Note::Alive(notification.publish_time));
        self.1.on_subscription_notification(notification, items);
    }
}

/// `watch`.
pub async fn watch(ctx: &Ctx, args: &WatchArgs) -> anyhow::Result<Outcome> {
    let target = opc_target(&args.target)?;
    let refs = parse_nodes(&args.nodes)?;
    let mut s = open(ctx, &target, true).await?;
    let ids = s.resolve(&refs).await?;
    for (r, id) in refs.iter().zip(&ids) {
        if let Err(why) = id {
            return Err(Fail::critical(format!("{target}: {r}: {why}")).into());
        }
    }
    let ids: Vec<NodeId> = ids.into_iter().map(|r| r.expect("checked")).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Note>();
    let mut sub = subscribe(&s, &target, &ids, &refs, args.interval, &tx).await?;
    if !ctx.quiet {
        super::warn(format!(
            "watching {} node{} on {target} every {} (Ctrl-C stops)",
            refs.len(),
            if refs.len() == 1 { "" } else { "s" },
            humantime::format_duration(args.interval)
        ));
    }
    let mut out = RowStream::new(
        Box::new(std::io::stdout().lock()),
        ctx.format,
        [
            "time",
            "node",
            "value",
            "type",
            "status",
            "source_time",
            "event",
        ]
        .iter()
        .map(ToString::to_string)
        .collect(),
        &[24, 20, 12, 7, 6, 24, 0],
    );
    let deadline = args.duration.map(|d| Instant::now() + d);
    let mut changes = 0u64;
    let mut outcome = Outcome::Ok;
    // While the server is lost: when watch saw it, and the server's last publish time before.
    let mut lost_at: Option<(Instant, Option<opcua::types::DateTime>)> = None;
    let mut last_publish: Option<opcua::types::DateTime> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let events = std::mem::replace(&mut s.events, tokio::sync::mpsc::unbounded_channel().1);
    let txe = tx.clone();
    let ev_task = tokio::spawn(async move {
        let mut events = events;
        while let Some(e) = events.recv().await {
            let note = match e {
                ua::Event::Lost(st) if st.is_good() => {
                    Note::Session("connection lost".into(), true)
                }
                ua::Event::Lost(st) => {
                    Note::Session(format!("connection lost: {}", status_text(st)), true)
                }
                ua::Event::Connected { new_session } => Note::Session(
                    if new_session {
                        "reconnected: the server no longer had the old session (expired or restarted); new session, subscription re-created".into()
                    } else {
                        "reconnected: session reactivated".into()
                    },
                    false,
                ),
                ua::Event::RetryFailed(_) => continue,
                ua::Event::Ended(st) => Note::Session(
                    format!(
                        "session ended{}",
                        st.map(|s| format!(": {}", status_text(s)))
                            .unwrap_or_default()
                    ),
                    true,
                ),
            };
            if txe.send(note).is_err() {
                break;
            }
        }
    });
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        let note = tokio::select! {
            n = rx.recv() => n,
            () = sleep => break,
            _ = &mut ctrl_c => break,
        };
        let Some(note) = note else { break };
        let now = super::now_rfc3339();
        match note {
            Note::Alive(t) => {
                last_publish = Some(t);
                // The first message after a loss ends the gap.
                if let Some((seen, before)) = lost_at.take() {
                    let server = before
                        .map(|b| (t.as_chrono() - b.as_chrono()).num_milliseconds())
                        .filter(|ms| *ms >= 0);
                    let text = match server {
                        Some(ms) => format!(
                            "data again: gap {:.1} s without data (server time, from its last message before the loss)",
                            ms as f64 / 1e3
                        ),
                        None => format!(
                            "data again: gap {:.1} s without data (since the loss was seen)",
                            seen.elapsed().as_secs_f64()
                        ),
                    };
                    event_row(&mut out, &now, &text)?;
                }
            }
            Note::Change(i, dv) => {
                let sc = dv_status(&dv);
                outcome = outcome.worst(match status_outcome(sc) {
                    Outcome::Critical => Outcome::Warning,
                    o => o,
                });
                out.row(&[
                    json!(now),
                    json!(refs.get(i).map_or_else(String::new, ToString::to_string)),
                    dv.value.as_ref().map_or(Json::Null, variant_json),
                    json!(variant_type(dv.value.as_ref())),
                    json!(status_name(sc)),
                    ts(dv.source_timestamp.as_ref()),
                    json!(""),
                ])?;
                changes += 1;
                if args.count.is_some_and(|c| changes >= c) {
                    break;
                }
            }
            Note::Session(text, lost) => {
                // A new session has none of the old subscriptions: make it again (async-opcua's
                // own re-creation is off, see `transport::opcua::client`).
                let text = if text.contains("new session") {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        s.session.delete_subscription(sub),
                    )
                    .await;
                    match subscribe(&s, &target, &ids, &refs, args.interval, &tx).await {
                        Ok(id) => {
                            sub = id;
                            text
                        }
                        Err(f) => format!("{text}; re-creating the subscription failed: {}", f.msg),
                    }
                } else {
                    text
                };
                if lost {
                    lost_at.get_or_insert((Instant::now(), last_publish));
                    outcome = outcome.worst(Outcome::Warning);
                }
                event_row(&mut out, &now, &text)?;
            }
        }
    }
    ev_task.abort();
    if lost_at.is_some() {
        outcome = Outcome::Critical;
        super::warn(format!(
            "{target}: the server was lost and no data had come back when watch ended"
        ));
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), s.session.delete_subscription(sub)).await;
    s.close().await;
    Ok(outcome)
}

/// A watch row that carries only an event (loss, reconnection, gap).
fn event_row(out: &mut RowStream<'_>, now: &str, text: &str) -> std::io::Result<()> {
    out.row(&[
        json!(now),
        json!(""),
        Json::Null,
        json!(""),
        json!(""),
        Json::Null,
        json!(text),
    ])
}

/// Create the watch subscription and its monitored items (client handle = node index + 1).
async fn subscribe(
    s: &UaSession,
    target: &Target,
    ids: &[NodeId],
    refs: &[NodeRef],
    interval: Duration,
    tx: &tokio::sync::mpsc::UnboundedSender<Note>,
) -> Result<u32, Fail> {
    let txc = tx.clone();
    let ms = interval.as_secs_f64() * 1e3;
    let sub = s
        .call(
            "CreateSubscription",
            s.session.create_subscription(
                interval,
                30,
                // A keep-alive after 3 quiet intervals bounds how early a measured gap can start.
                3,
                0,
                0,
                true,
                Alive(
                    tx.clone(),
                    DataChangeCallback::new(move |dv: DataValue, item: &MonitoredItem| {
                        let _ = txc.send(Note::Change(item.client_handle() as usize - 1, dv));
                    }),
                ),
            ),
        )
        .await?;
    let items: Vec<MonitoredItemCreateRequest> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut r: MonitoredItemCreateRequest = id.clone().into();
            r.requested_parameters.client_handle = i as u32 + 1;
            r.requested_parameters.sampling_interval = ms;
            r.requested_parameters.queue_size = 10;
            r
        })
        .collect();
    let mut created = Vec::new();
    for chunk in items.chunks(1000) {
        let r = s
            .call_within(
                "CreateMonitoredItems",
                4,
                s.session
                    .create_monitored_items(sub, TimestampsToReturn::Both, chunk.to_vec()),
            )
            .await?;
        created.extend(r);
    }
    for (c, r) in created.iter().zip(refs) {
        if c.result.status_code.is_bad() {
            return Err(Fail::critical(format!(
                "{target}: {r}: cannot monitor: {}",
                status_text(c.result.status_code)
            )));
        }
    }
    Ok(sub)
}

/// `trust`.
pub async fn trust_cmd(ctx: &Ctx, args: &TrustArgs) -> anyhow::Result<Outcome> {
    let pki = default_pki();
    if args.list {
        let dir = pki.join("trusted");
        let mut rows = Rows::new(&["subject", "thumbprint", "not_before", "not_after", "file"]);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for p in entries {
            let Ok(der) = std::fs::read(&p) else { continue };
            if let Ok((_, i)) = cert_info(&der) {
                rows.push(vec![
                    json!(i.subject),
                    json!(i.thumbprint),
                    json!(i.not_before),
                    json!(i.not_after),
                    json!(p.display().to_string()),
                ]);
            }
        }
        write_rows(&mut std::io::stdout().lock(), ctx.format, &rows, ctx.color)?;
        return Ok(Outcome::Ok);
    }
    let src = args.source.as_deref().expect("clap requires it");
    let ders: Vec<(String, Vec<u8>)> = if src.contains("://") {
        let target = opc_target(src)?;
        let client = ua::client(&pki, ctx.timeout, false)?;
        let eps = ua::get_endpoints(&client, &pki, &target.url(), ctx.timeout).await?;
        let mut v: Vec<(String, Vec<u8>)> = Vec::new();
        for e in &eps {
            let der = e.server_certificate.as_ref().to_vec();
            if !der.is_empty() && !v.iter().any(|(_, d)| *d == der) {
                v.push((target.to_string(), der));
            }
        }
        if v.is_empty() {
            return Err(Fail::critical(format!("{target}: no endpoint carries a certificate (the server offers security None only): nothing to trust")).into());
        }
        v
    } else {
        let bytes =
            std::fs::read(src).map_err(|e| Fail::unknown(format!("{src}: cannot read: {e}")))?;
        let der = if bytes.starts_with(b"-----BEGIN") {
            pem_to_der(&bytes).ok_or_else(|| {
                Fail::unknown(format!("{src}: a PEM file without a CERTIFICATE block"))
            })?
        } else {
            bytes
        };
        vec![(src.to_string(), der)]
    };
    for (from, der) in ders {
        let (_, info) = cert_info(&der).map_err(|e| Fail::unknown(format!("{from}: {e}")))?;
        let path = ua::trust(&pki, &info, &der)?;
        if !ctx.quiet {
            println!(
                "trusted {from}\n  subject:    {}\n  thumbprint: {} (SHA-1)\n  valid:      {} to {}{}\n  file:       {}",
                info.subject,
                info.thumbprint,
                info.not_before,
                info.not_after,
                if info.time_valid { "" } else { "  (NOT valid now)" },
                path.display()
            );
        }
    }
    Ok(Outcome::Ok)
}

fn pem_to_der(pem: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = text[start..].find("-----END CERTIFICATE-----")? + start;
    let b64: String = text[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

// ---- profiles: snapshot, diff and check of `node` points --------------------------------

/// Snapshot specs of a profile's OPC UA points (`node`), in profile order.
pub fn specs_from_profile(p: &crate::profile::Profile) -> Vec<SnapPoint> {
    p.points
        .iter()
        .filter_map(|pt| {
            let node = pt.node.as_ref()?;
            let (scale, offset) = ua_scale(pt);
            Some(SnapPoint {
                scale,
                offset,
                unit: pt.unit.as_str().into(),
                tolerance: pt.tolerance,
                range: pt.range.map(|(a, b)| [a, b]),
                volatile: pt.volatile,
                severity: pt.severity,
                ..node_spec(&pt.name, node)
            })
        })
        .collect()
}

/// The spec of one node read as it is (no unit, scale 1): a node given on the command line.
pub fn node_spec(name: &str, node: &str) -> SnapPoint {
    SnapPoint {
        name: name.into(),
        address: node.into(),
        modicon: compact_str::CompactString::default(),
        ty: compact_str::CompactString::default(),
        order: "abcd".into(),
        scale: 1.0,
        offset: 0.0,
        raw: vec![],
        value: Json::Null,
        unit: compact_str::CompactString::default(),
        status: compact_str::CompactString::default(),
        tolerance: None,
        range: None,
        volatile: false,
        severity: crate::profile::Severity::Critical,
    }
}

/// A profile's OPC UA points read over one session: identity from the server's `BuildInfo` and
/// one batched Read per round.
pub struct UaSource {
    session: UaSession,
    ids: Vec<Result<NodeId, String>>,
    /// The Read of the resolved nodes, built once.
    req: Vec<opcua::types::ReadValueId>,
    scales: Vec<(f64, f64)>,
    /// The data type of each point at its last good read (`Double`, …), and the scalar type
    /// it was made from (so it is formatted again only when it changes).
    types: Vec<(String, Option<opcua::types::VariantScalarTypeId>)>,
    /// Sessions connected so far (the first, then each reconnection).
    connects: u64,
}

/// `BuildInfo` variables (OPC UA Part 5 §12.4) and the identity keys snapshots use for them.
const BUILD_INFO: [(u32, &str); 5] = [
    (2263, "vendor"),
    (2261, "product_name"),
    (2264, "revision"),
    (2265, "build"),
    (2262, "product_uri"),
];

impl UaSource {
    /// Connect and resolve the specs' nodes. `Err(Unreachable)` when the server cannot be
    /// reached (snapshot writes nothing); a bad node text is an error of the profile.
    pub async fn open(
        ua: &UaArgs,
        target: &Target,
        specs: &[SnapPoint],
        timeout: Duration,
        reconnect: bool,
    ) -> anyhow::Result<Result<UaSource, Unreachable>> {
        let refs = specs
            .iter()
            .map(|s| {
                s.address
                    .parse::<NodeRef>()
                    .map_err(|e| Fail::unknown(format!("point `{}`: {e}", s.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cfg = ua_config(ua, timeout, target, reconnect)?;
        // Like a Modbus link's, the reason names no target: snapshot, poll and check name the
        // device themselves.
        let unreachable = |f: Fail| Unreachable(strip_url(&cfg.url, f.msg));
        let session = match connect(&cfg).await {
            Ok(s) => s,
            Err(f) if f.outcome == Outcome::Unknown => return Err(f.into()),
            Err(f) => return Ok(Err(unreachable(f))),
        };
        let ids = match session.resolve(&refs).await {
            Ok(ids) => ids,
            Err(f) => return Ok(Err(unreachable(f))),
        };
        let good: Vec<NodeId> = ids
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        Ok(Ok(UaSource {
            session,
            req: ua::read_ids(&good, AttributeId::Value),
            ids,
            scales: specs.iter().map(|s| (s.scale, s.offset)).collect(),
            types: vec![(String::new(), None); specs.len()],
            connects: 1,
        }))
    }

    /// Connections made so far: the first, and each reconnection seen since.
    pub fn connects(&mut self) -> u64 {
        while let Ok(e) = self.session.events.try_recv() {
            if matches!(e, ua::Event::Connected { .. }) {
                self.connects += 1;
            }
        }
        self.connects
    }

    /// The server's identity (`BuildInfo`), as snapshots record it.
    pub async fn identity(&self) -> (Option<BTreeMap<String, String>>, String) {
        let ids: Vec<NodeId> = BUILD_INFO.iter().map(|(i, _)| NodeId::new(0, *i)).collect();
        match self.session.read_values(&ids).await {
            Ok(vals) => {
                let m: BTreeMap<String, String> = BUILD_INFO
                    .iter()
                    .zip(vals)
                    .filter_map(|((_, k), dv)| {
                        let v = dv.value?;
                        let s = match variant_json(&v) {
                            Json::String(s) if s.is_empty() => return None,
                            Json::String(s) => s,
                            Json::Null => return None,
                            other => other.to_string(),
                        };
                        Some(((*k).to_string(), s))
                    })
                    .collect();
                if m.is_empty() {
                    (
                        None,
                        "not available: the server's BuildInfo is empty".into(),
                    )
                } else {
                    (Some(m), "ok".into())
                }
            }
            Err(f) => (None, format!("not available: {}", f.msg)),
        }
    }

    /// One round: every point read in batched requests.
    pub async fn round(&mut self) -> (Vec<ItemResult>, Vec<RequestOutcome>, Option<String>) {
        let t0 = Instant::now();
        let res = self.session.read_prepared(&self.req).await;
        let rtt = t0.elapsed();
        let (mut vals, outcome, err) = match res {
            Ok(v) => (
                v.into_iter(),
                RequestOutcome {
                    rtt,
                    error: None,
                    connect_failed: false,
                },
                None,
            ),
            Err(f) => {
                // A failure that took the whole --timeout is a timeout; anything sooner is the
                // connection (refused, closed, a service fault).
                let kind = if rtt >= self.session.timeout {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Connection
                };
                (
                    Vec::new().into_iter(),
                    RequestOutcome {
                        rtt,
                        error: Some(Err(kind)),
                        connect_failed: false,
                    },
                    Some(strip_url(self.session.url(), f.msg)),
                )
            }
        };
        let results = self
            .ids
            .iter()
            .zip(&self.scales)
            .zip(self.types.iter_mut())
            .map(|((id, &(scale, offset)), ty)| {
                let value = match id {
                    Err(why) => Err(ItemError::Status(why.clone())),
                    Ok(_) => match (&outcome.error, vals.next()) {
                        (Some(Err(k)), _) => {
                            Err(ItemError::Link(*k, err.clone().unwrap_or_default()))
                        }
                        (_, Some(dv)) => {
                            let sc = dv_status(&dv);
                            if sc.is_bad() {
                                Err(ItemError::Status(status_name(sc)))
                            } else {
                                let v = dv.value.as_ref();
                                let key = v
                                    .filter(|v| !v.is_array())
                                    .and_then(Variant::scalar_type_id);
                                if key.is_none() || key != ty.1 {
                                    *ty = (variant_type(v), key);
                                }
                                Ok(to_value(dv.value.as_ref(), scale, offset))
                            }
                        }
                        _ => Err(ItemError::Status("no result".into())),
                    },
                };
                ItemResult { raw: vec![], value }
            })
            .collect();
        (results, vec![outcome], err)
    }

    /// A snapshot of results read from this source. Each point's type is the OPC UA data type
    /// last read (so a type changed on the server shows as type-changed against a baseline),
    /// or the spec's when it has not been read.
    pub fn snapshot(
        &self,
        specs: &[SnapPoint],
        results: &[ItemResult],
        identity: (Option<BTreeMap<String, String>>, String),
        profile: ProfileRef,
        taken_at: String,
    ) -> Snapshot {
        let mut snap = crate::snapshot::from_results(
            specs,
            results,
            identity,
            profile,
            taken_at,
            self.session.url().to_string(),
        );
        for (p, (t, _)) in snap.points.iter_mut().zip(&self.types) {
            if !t.is_empty() {
                p.ty = t.as_str().into();
            }
        }
        snap
    }

    /// Close the session.
    pub async fn close(self) {
        self.session.close().await;
    }
}

/// A failure's reason without the leading `URL: ` (for callers that name the device).
fn strip_url(url: &str, msg: String) -> String {
    match msg.strip_prefix(url).and_then(|m| m.strip_prefix(": ")) {
        Some(rest) => rest.to_string(),
        None => msg,
    }
}

/// An OPC UA value as a snapshot value (numbers scaled when the point says so).
fn to_value(v: Option<&Variant>, scale: f64, offset: f64) -> Value {
    let n = |x: f64| {
        if scale != 1.0 || offset != 0.0 {
            Value::F(x * scale + offset)
        } else {
            Value::F(x)
        }
    };
    match v {
        None | Some(Variant::Empty) => Value::Text(String::new()),
        Some(Variant::Boolean(b)) => Value::Bool(*b),
        Some(Variant::Float(x)) => n(ua::f32_value(*x)),
        Some(Variant::Double(x)) => n(*x),
        Some(v) => match variant_json(v) {
            Json::Number(x) if scale != 1.0 || offset != 0.0 => n(x.as_f64().unwrap_or(0.0)),
            Json::Number(x) => x
                .as_u64()
                .map(Value::U)
                .or_else(|| x.as_i64().map(Value::I))
                .unwrap_or_else(|| Value::F(x.as_f64().unwrap_or(0.0))),
            Json::String(s) => Value::Text(s),
            other => Value::Text(other.to_string()),
        },
    }
}

/// Take a snapshot of `specs` (OPC UA points) from `target`.
pub async fn take_snapshot(
    ctx: &Ctx,
    target: &Target,
    specs: &[SnapPoint],
    profile: ProfileRef,
) -> anyhow::Result<Result<Snapshot, String>> {
    let taken_at = super::now_rfc3339();
    let mut src = match UaSource::open(&ctx.ua, target, specs, ctx.timeout, false).await? {
        Ok(s) => s,
        Err(u) => return Ok(Err(u.0)),
    };
    let identity = src.identity().await;
    let (results, outcomes, err) = src.round().await;
    let snap = src.snapshot(specs, &results, identity, profile, taken_at);
    src.close().await;
    if outcomes.iter().all(|o| o.error.is_some()) {
        return Ok(Err(err.unwrap_or_else(|| "no answer".into())));
    }
    Ok(Ok(snap))
}

/// True for a target that speaks OPC UA.
pub fn is_opcua(t: &Target) -> bool {
    matches!(t, Target::OpcUa { .. })
}
