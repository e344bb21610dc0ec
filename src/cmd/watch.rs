//! `watch opc.tcp://… NODE…`: an OPC UA subscription; prints each data change as it comes, and
//! the session's losses, reconnections and the gap without data (on the server's clock). The
//! subscription is re-created after a reconnection. Read-only.

use std::time::{Duration, Instant};

use opcua::{
    client::{DataChangeCallback, MonitoredItem, MonitoredItemMap, OnSubscriptionNotificationCore},
    types::{DataValue, MonitoredItemCreateRequest, NodeId, TimestampsToReturn},
};
use serde_json::{json, Value as Json};

use super::{browse::opc_target, Ctx, Fail, Outcome};
use crate::{
    cli::WatchArgs,
    device::opcua::{dv_status, open_session, parse_nodes, ts},
    proto::opcua::{
        node::NodeRef,
        variant::{status_code_name, status_code_text, variant_json, variant_type},
    },
    report::RowWriter,
    target::Target,
    transport::opcua::{self as ua, status_outcome, UaSession},
};

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
pub async fn run(ctx: &Ctx, args: &WatchArgs) -> anyhow::Result<Outcome> {
    let target = opc_target(&args.target)?;
    let refs = parse_nodes(&args.nodes)?;
    let mut s = open_session(&ctx.device, &target, true).await?;
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
    let mut out = RowWriter::streaming(
        Box::new(std::io::stdout().lock()),
        ctx.format,
        &[
            "time",
            "node",
            "value",
            "type",
            "status",
            "source_time",
            "event",
        ],
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
                    Note::Session(format!("connection lost: {}", status_code_text(st)), true)
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
                        st.map(|s| format!(": {}", status_code_text(s)))
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
                out.json_row(&[
                    json!(now),
                    json!(refs.get(i).map_or_else(String::new, ToString::to_string)),
                    dv.value.as_ref().map_or(Json::Null, variant_json),
                    json!(variant_type(dv.value.as_ref())),
                    json!(status_code_name(sc)),
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
    out.finish()?;
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
fn event_row(out: &mut RowWriter<'_>, now: &str, text: &str) -> std::io::Result<()> {
    out.json_row(&[
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
                status_code_text(c.result.status_code)
            )));
        }
    }
    Ok(sub)
}
