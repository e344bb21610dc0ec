//! An OPC UA device: the [`Device`](super::Device) operations over one
//! [`UaSession`].
//!
//! Points are nodes (a profile's `node` points, or `NodeId`s and browse paths from the command
//! line), resolved once when the session opens; a round is one batched Read of them all, built
//! once. Identity is the server's `BuildInfo` (OPC UA Part 5 §12.4). A node that does not
//! resolve, or reads a Bad status, is a failed point in an answered round; a session that cannot
//! be opened is unreachable. Also here: the session settings ([`UaSettings`]) and the password
//! prompt, which `browse` and `watch` share through [`open_session`].

use std::{
    collections::BTreeMap,
    io::IsTerminal as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use opcua::{
    crypto::SecurityPolicy,
    types::{AttributeId, DataValue, NodeId, StatusCode, Variant, WriteValue},
};
use serde_json::{json, Value as Json};

use super::{
    refuse_write, Identity, ItemError, ItemResult, PointLabel, RequestOutcome, Settings, Table,
    Unreachable, WriteRequest,
};
use crate::{
    outcome::{Fail, Outcome},
    profile::{Point, Profile, Severity},
    proto::{
        modbus::value::Value,
        opcua::{
            node::NodeRef,
            security::{mode_name, Security},
            variant::{
                f32_value, status_code_name, status_code_text, variant_from_text, variant_json,
                variant_type,
            },
        },
        sanitize,
    },
    report::Rows,
    snapshot::{SnapPoint, Snapshot},
    target::Target,
    transport::{
        modbus::ErrorKind,
        opcua::{
            self as ua, connect,
            pki::{cert_info, default_pki},
            status_outcome, Identity as UaIdentity, UaConfig, UaSession,
        },
    },
};

/// OPC UA session settings from the command line and the environment, checked once: security,
/// identity, trust, and the PKI folder.
#[derive(Debug, Clone)]
pub struct UaSettings {
    /// Wanted security; `None` = no security if the server offers it.
    pub security: Option<Security>,
    /// User name (the password is asked for when a session opens, never taken from argv).
    pub user: Option<String>,
    /// X.509 user certificate and its private key.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Trust the server's certificate now (`--trust-server`).
    pub trust_server: bool,
    /// plcprobe's per-user PKI folder (own certificate, trusted and rejected servers).
    pub pki: PathBuf,
}

impl Default for UaSettings {
    /// No security, anonymous, the per-user PKI folder.
    fn default() -> Self {
        UaSettings {
            security: None,
            user: None,
            cert: None,
            trust_server: false,
            pki: default_pki(),
        }
    }
}

impl UaSettings {
    /// Check the flags: a security text that does not parse, or two identities, is bad usage.
    pub fn new(
        security: Option<&str>,
        user: Option<String>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        trust_server: bool,
    ) -> Result<UaSettings, Fail> {
        let security = security
            .map(str::parse::<Security>)
            .transpose()
            .map_err(|e| Fail::unknown(format!("--security: {e}")))?;
        if user.is_some() && cert.is_some() {
            return Err(Fail::unknown("give --user or --cert/--key, not both"));
        }
        Ok(UaSettings {
            security,
            user,
            cert: cert.zip(key),
            trust_server,
            pki: default_pki(),
        })
    }
}

/// The session settings for `target` (asks for the password of `--user` here).
pub fn session_config(
    settings: &Settings,
    target: &Target,
    reconnect: bool,
) -> anyhow::Result<UaConfig> {
    let ua = &settings.ua;
    let identity = match (&ua.user, &ua.cert) {
        (Some(u), _) => UaIdentity::User(u.clone(), password(u, target)?),
        (None, Some((c, k))) => UaIdentity::Cert(c.clone(), k.clone()),
        (None, None) => UaIdentity::Anonymous,
    };
    Ok(UaConfig {
        url: target.url(),
        security: ua.security,
        identity,
        pki: ua.pki.clone(),
        trust_server: ua.trust_server,
        timeout: settings.timeout,
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

/// A session to `target` for the commands that speak only OPC UA (`browse`, `watch`).
pub async fn open_session(
    settings: &Settings,
    target: &Target,
    reconnect: bool,
) -> anyhow::Result<UaSession> {
    let cfg = session_config(settings, target, reconnect)?;
    Ok(connect(&cfg).await?)
}

/// Resolve node texts; a text that does not parse is bad usage (exit 3).
pub fn parse_nodes(texts: &[String]) -> anyhow::Result<Vec<NodeRef>> {
    texts
        .iter()
        .map(|t| t.parse::<NodeRef>().map_err(|e| Fail::unknown(e).into()))
        .collect()
}

/// A timestamp of a value (source or server) as RFC 3339, or null.
pub fn ts(d: Option<&opcua::types::DateTime>) -> Json {
    d.filter(|d| !d.is_null()).map_or(Json::Null, |d| {
        json!(d
            .as_chrono()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    })
}

/// A value's status (Good when the server left it out).
pub fn dv_status(dv: &DataValue) -> StatusCode {
    dv.status.unwrap_or(StatusCode::Good)
}

/// `BuildInfo` variables (OPC UA Part 5 §12.4) and the identity keys snapshots use for them.
const BUILD_INFO: [(u32, &str); 5] = [
    (2263, "vendor"),
    (2261, "product_name"),
    (2264, "revision"),
    (2265, "build"),
    (2262, "product_uri"),
];

/// An open session and its resolved nodes.
struct Open {
    session: UaSession,
    ids: Vec<Result<NodeId, String>>,
    /// The Read of the resolved nodes, built once.
    req: Vec<opcua::types::ReadValueId>,
}

/// An OPC UA server and the nodes selected to read from it.
pub struct UaDevice {
    target: Target,
    settings: Settings,
    /// The points as snapshots record them (address = the node text).
    pub(super) specs: Vec<SnapPoint>,
    /// Their nodes, parsed.
    refs: Vec<NodeRef>,
    named: bool,
    open: Option<Open>,
    /// The data type of each point at its last good read (`Double`, …), and the scalar type
    /// it was made from (so it is formatted again only when it changes).
    types: Vec<(String, Option<opcua::types::VariantScalarTypeId>)>,
    /// Sessions connected so far (the first, then each reconnection).
    connects: u64,
    /// At most one service call per gap (`check`'s `rate`).
    pacer: crate::transport::pace::Pacer,
    /// The last round: values as read (for `read`'s timestamps), results, the request's
    /// outcome and its failure.
    values: Vec<DataValue>,
    results: Vec<ItemResult>,
    outcomes: Vec<RequestOutcome>,
    error: Option<String>,
}

impl UaDevice {
    pub(super) fn new(target: &Target, settings: &Settings) -> Self {
        Self {
            target: target.clone(),
            settings: settings.clone(),
            specs: Vec::new(),
            refs: Vec::new(),
            named: false,
            open: None,
            types: Vec::new(),
            connects: 0,
            pacer: crate::transport::pace::Pacer::default(),
            values: Vec::new(),
            results: Vec::new(),
            outcomes: Vec::new(),
            error: None,
        }
    }

    pub(super) fn target(&self) -> &Target {
        &self.target
    }

    fn set_specs(
        &mut self,
        specs: Vec<SnapPoint>,
        named: bool,
        source: &str,
    ) -> anyhow::Result<()> {
        self.refs = specs
            .iter()
            .map(|s| {
                s.address
                    .parse::<NodeRef>()
                    .map_err(|e| Fail::unknown(format!("{source}point `{}`: {e}", s.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.types = vec![(String::new(), None); specs.len()];
        self.specs = specs;
        self.named = named;
        Ok(())
    }

    pub(super) fn select_profile(&mut self, p: &Profile, verb: &str) -> anyhow::Result<()> {
        let specs = specs_from_profile(p);
        if specs.is_empty() {
            return Err(Fail::unknown(format!(
                "{} has no OPC UA points (points with `node`) to {verb} from {}",
                p.source, self.target
            ))
            .into());
        }
        self.set_specs(specs, true, &format!("{}: ", p.source))
    }

    /// Nodes from the command line: `NodeId`s and browse paths.
    pub(super) fn select_nodes(&mut self, items: &[String]) -> anyhow::Result<()> {
        if items.is_empty() {
            return Err(Fail::unknown(format!(
                "nothing to read: give nodes after the target, e.g. plcprobe read {} \"ns=2;s=Line1.Speed\" i=2258",
                self.target
            ))
            .into());
        }
        if items
            .iter()
            .any(|n| n.starts_with("opc.tcp://") || n.starts_with("modbus://"))
        {
            anyhow::bail!("give one OPC UA server at a time");
        }
        // Checked before connecting: a text that is no node is bad usage.
        parse_nodes(items)?;
        let specs = items.iter().map(|n| node_spec(n, n)).collect();
        self.set_specs(specs, false, "")
    }

    pub(super) fn select_baseline(
        &mut self,
        b: &Snapshot,
        source: &std::path::Path,
    ) -> anyhow::Result<()> {
        self.set_specs(b.points.clone(), true, &format!("{}: ", source.display()))
    }

    pub(super) fn points(&self) -> Vec<PointLabel> {
        self.specs
            .iter()
            .map(|s| PointLabel {
                label: s.name.to_string(),
                address: s.address.to_string(),
                unit: s.unit.to_string(),
            })
            .collect()
    }

    pub(super) fn named(&self) -> bool {
        self.named
    }

    #[allow(clippy::unused_self)] // one signature for every device
    pub(super) fn requests_per_round(&self) -> usize {
        1
    }

    pub(super) async fn open(
        &mut self,
        reconnect: bool,
    ) -> anyhow::Result<Result<(), Unreachable>> {
        let cfg = session_config(&self.settings, &self.target, reconnect)?;
        // Like a Modbus link's, the reason names no target: the caller names the device.
        let unreachable = |f: Fail| Unreachable(strip_url(&cfg.url, f.msg));
        let session = match connect(&cfg).await {
            Ok(s) => s,
            Err(f) if f.outcome == Outcome::Unknown => return Err(f.into()),
            Err(f) => return Ok(Err(unreachable(f))),
        };
        let ids = match session.resolve(&self.refs).await {
            Ok(ids) => ids,
            Err(f) => return Ok(Err(unreachable(f))),
        };
        let good: Vec<NodeId> = ids
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        self.open = Some(Open {
            session,
            req: ua::read_ids(&good, AttributeId::Value),
            ids,
        });
        self.connects = 1;
        Ok(Ok(()))
    }

    pub(super) fn set_pace(&mut self, gap: Duration) {
        self.pacer.set_gap(gap);
    }

    pub(super) async fn identity(&mut self) -> Result<Identity, Unreachable> {
        let Some(open) = &self.open else {
            return Err(Unreachable("no session".into()));
        };
        self.pacer.take_turn().await;
        let ids: Vec<NodeId> = BUILD_INFO.iter().map(|(i, _)| NodeId::new(0, *i)).collect();
        Ok(match open.session.read_values(&ids).await {
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
        })
    }

    pub(super) async fn round(&mut self) {
        let Some(open) = &self.open else {
            self.outcomes = vec![RequestOutcome {
                rtt: Duration::ZERO,
                error: Some(Err(ErrorKind::Connection)),
                connect_failed: true,
            }];
            self.error = Some("no session".into());
            return;
        };
        self.pacer.take_turn().await;
        let t0 = Instant::now();
        let res = open.session.read_prepared(&open.req).await;
        let rtt = t0.elapsed();
        let (outcome, err) = match res {
            Ok(v) => {
                self.values = v;
                (
                    RequestOutcome {
                        rtt,
                        error: None,
                        connect_failed: false,
                    },
                    None,
                )
            }
            Err(f) => {
                self.values.clear();
                // A failure that took the whole --timeout is a timeout; anything sooner is the
                // connection (refused, closed, a service fault).
                let kind = if rtt >= open.session.timeout {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Connection
                };
                (
                    RequestOutcome {
                        rtt,
                        error: Some(Err(kind)),
                        connect_failed: false,
                    },
                    Some(strip_url(open.session.url(), f.msg)),
                )
            }
        };
        let mut vals = self.values.iter();
        self.results = open
            .ids
            .iter()
            .zip(&self.specs)
            .zip(self.types.iter_mut())
            .map(|((id, spec), ty)| {
                let value = match id {
                    Err(why) => Err(ItemError::Status(why.clone())),
                    Ok(_) => match (&outcome.error, vals.next()) {
                        (Some(Err(k)), _) => {
                            Err(ItemError::Link(*k, err.clone().unwrap_or_default()))
                        }
                        (_, Some(dv)) => {
                            let sc = dv_status(dv);
                            if sc.is_bad() {
                                Err(ItemError::Status(status_code_name(sc)))
                            } else {
                                let v = dv.value.as_ref();
                                let key = v
                                    .filter(|v| !v.is_array())
                                    .and_then(Variant::scalar_type_id);
                                if key.is_none() || key != ty.1 {
                                    *ty = (variant_type(v), key);
                                }
                                Ok(to_value(v, spec.scale, spec.offset))
                            }
                        }
                        _ => Err(ItemError::Status("no result".into())),
                    },
                };
                ItemResult { raw: vec![], value }
            })
            .collect();
        self.outcomes = vec![outcome];
        self.error = err;
    }

    pub(super) fn outcomes(&self) -> &[RequestOutcome] {
        &self.outcomes
    }

    pub(super) fn request_errors(&self) -> Vec<Option<String>> {
        self.outcomes
            .iter()
            .map(|o| o.error.as_ref().and(self.error.clone()))
            .collect()
    }

    pub(super) fn failures(&self) -> Vec<String> {
        self.error.iter().cloned().collect()
    }

    pub(super) fn results(&self) -> Vec<ItemResult> {
        self.results.clone()
    }

    pub(super) fn connects(&mut self) -> u64 {
        if let Some(open) = &mut self.open {
            while let Ok(e) = open.session.events.try_recv() {
                if matches!(e, ua::Event::Connected { .. }) {
                    self.connects += 1;
                }
            }
        }
        self.connects
    }

    /// Each point's type is the OPC UA data type last read (so a type changed on the server
    /// shows as type-changed against a baseline), or the spec's when it has not been read.
    pub(super) fn retype(&self, points: &mut [SnapPoint]) {
        for (p, (t, _)) in points.iter_mut().zip(&self.types) {
            if !t.is_empty() {
                p.ty = t.as_str().into();
            }
        }
    }

    /// Open the session, read the identity (a server without one is still read) and one round:
    /// `Unreachable` when the session does not open or the round fails.
    pub(super) async fn read_once(&mut self) -> anyhow::Result<Result<Identity, Unreachable>> {
        if let Err(u) = self.open(false).await? {
            return Ok(Err(u));
        }
        let identity = self.identity().await.unwrap_or_else(|u| (None, u.0));
        self.round().await;
        if self.outcomes.iter().all(|o| o.error.is_some()) {
            let why = self.error.take().unwrap_or_else(|| "no answer".into());
            return Ok(Err(Unreachable(why)));
        }
        Ok(Ok(identity))
    }

    pub(super) fn read_columns(&self, several: bool) -> Vec<&'static str> {
        let mut cols = vec![];
        if several {
            cols.push("device");
        }
        if self.named {
            cols.push("name");
        }
        cols.extend(["node", "value"]);
        if self.named {
            cols.push("unit");
        }
        cols.extend(["type", "status", "source_time", "server_time"]);
        cols
    }

    pub(super) fn read_rows(
        &self,
        several: bool,
        quiet: bool,
        rows: &mut Rows,
    ) -> anyhow::Result<Outcome> {
        if let (Some(o), Some(open)) = (self.outcomes.first(), &self.open) {
            if o.error.is_some() {
                return Err(Fail::critical(format!(
                    "{}: {}",
                    open.session.url(),
                    self.error.clone().unwrap_or_default()
                ))
                .into());
            }
        }
        let ids = self.open.as_ref().map_or(&[][..], |o| &o.ids[..]);
        let mut values = self.values.iter();
        let mut outcome = Outcome::Ok;
        for ((r, id), spec) in self.refs.iter().zip(ids).zip(&self.specs) {
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
                let Some(dv) = values.next() else { break };
                let sc = dv_status(dv);
                let v = dv
                    .value
                    .as_ref()
                    .map_or(Json::Null, |v| scaled(variant_json(v), spec));
                (
                    status_outcome(sc),
                    v,
                    variant_type(dv.value.as_ref()),
                    status_code_name(sc),
                    ts(dv.source_timestamp.as_ref()),
                    ts(dv.server_timestamp.as_ref()),
                )
            };
            outcome = outcome.worst(row_outcome);
            // -q: only the nodes that are not Good.
            if quiet && row_outcome == Outcome::Ok {
                continue;
            }
            let mut row = vec![];
            if several {
                row.push(json!(self.target.url()));
            }
            if self.named {
                row.push(json!(spec.name));
            }
            row.extend([json!(r.to_string()), value]);
            if self.named {
                row.push(json!(spec.unit));
            }
            row.extend([json!(ty), json!(status), st, sv]);
            rows.push(row);
        }
        Ok(outcome)
    }

    /// Guarded write of one node with read-back; the value is parsed as the node's own type.
    pub(super) async fn write(&mut self, req: &WriteRequest<'_>) -> anyhow::Result<Table> {
        let target = self.target.clone();
        if req.fc16 || req.ty.is_some() || req.order.is_some() {
            anyhow::bail!("--fc16, --type and --order are for Modbus; an OPC UA write uses the node's own data type");
        }
        if !req.allow {
            return Err(refuse_write(&target, &req.address));
        }
        let r: NodeRef = req.address.parse().map_err(Fail::unknown)?;
        let s = open_session(&self.settings, &target, false).await?;
        let id = match s.resolve(std::slice::from_ref(&r)).await?.remove(0) {
            Ok(id) => id,
            Err(why) => return Err(Fail::critical(format!("{target}: {r}: {why}")).into()),
        };
        let before = s.read_values(std::slice::from_ref(&id)).await?.remove(0);
        if dv_status(&before).is_bad() {
            return Err(Fail::critical(format!(
                "{target}: {r}: cannot read the value before writing: {}",
                status_code_text(dv_status(&before))
            ))
            .into());
        }
        let like = before.value.clone().unwrap_or(Variant::Empty);
        let v = variant_from_text(req.value, &like).map_err(|e| {
            Fail::unknown(format!("{r} holds a {}: {e}", variant_type(Some(&like))))
        })?;
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
            json!(status_code_name(status)),
        ]);
        let (outcome, problems) = if status.is_bad() {
            (
                Outcome::Critical,
                vec![format!(
                    "{target}: the server refused the write of {r}: {}",
                    status_code_text(status)
                )],
            )
        } else if after.value.as_ref() != Some(&v) {
            (
                Outcome::Warning,
                vec![format!(
                    "{target}: {r}: read back {} after writing {} (the server may scale, clamp or overwrite it)",
                    after.value.as_ref().map_or(Json::Null, variant_json),
                    variant_json(&v)
                )],
            )
        } else {
            (Outcome::Ok, vec![])
        };
        Ok(Table::new(rows, outcome, problems))
    }

    /// `FindServers` and `GetEndpoints`: policies, modes, user tokens and the server
    /// certificate's subject, thumbprint, validity and whether it is trusted.
    pub(super) async fn scan(&mut self) -> anyhow::Result<Table> {
        let url = self.target.url();
        let timeout = self.settings.timeout;
        let pki = self.settings.ua.pki.clone();
        let client = ua::client(&pki, timeout, false)?;
        // FindServers first: a discovery server lists several; a plain server lists itself.
        let servers = tokio::time::timeout(timeout, client.find_servers(url.as_str(), None, None))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let endpoints = ua::get_endpoints(&client, &pki, &url, timeout).await?;
        let mut rows = Rows::new(&[
            "endpoint",
            "security_policy",
            "mode",
            "level",
            "user_tokens",
            "cert_subject",
            "cert_thumbprint",
            "cert_valid_to",
            "cert",
        ]);
        let mut outcome = Outcome::Ok;
        for e in &endpoints {
            let der = e.server_certificate.as_ref();
            let (subject, thumb, until, state) = if der.is_empty() {
                (
                    String::new(),
                    String::new(),
                    String::new(),
                    "none".to_string(),
                )
            } else {
                match cert_info(der) {
                    Ok((_, i)) => {
                        let state = if !i.time_valid {
                            outcome = outcome.worst(Outcome::Warning);
                            "EXPIRED or not yet valid"
                        } else if ua::pki::is_trusted(&pki, &i, der) {
                            "trusted"
                        } else {
                            "not trusted"
                        };
                        (i.subject, i.thumbprint, i.not_after, state.to_string())
                    }
                    Err(e) => (String::new(), String::new(), String::new(), e),
                }
            };
            let tokens: Vec<String> = e
                .user_identity_tokens
                .iter()
                .flatten()
                .map(|t| format!("{:?}", t.token_type))
                .collect();
            rows.push(vec![
                json!(sanitize(e.endpoint_url.as_ref())),
                json!(SecurityPolicy::from_uri(e.security_policy_uri.as_ref()).to_str()),
                json!(mode_name(e.security_mode)),
                json!(e.security_level),
                json!(tokens.join(",")),
                json!(subject),
                json!(thumb),
                json!(until),
                json!(state),
            ]);
        }
        let notes = servers
            .iter()
            .map(|s| {
                format!(
                    "server: {} ({}), {:?}, discovery {}",
                    sanitize(s.application_name.text.as_ref()),
                    sanitize(s.application_uri.as_ref()),
                    s.application_type,
                    s.discovery_urls
                        .iter()
                        .flatten()
                        .map(|u| sanitize(u.as_ref()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        Ok(Table {
            notes,
            ..Table::new(rows, outcome, vec![])
        })
    }

    pub(super) async fn close(self) {
        if let Some(open) = self.open {
            open.session.close().await;
        }
    }
}

/// Snapshot specs of a profile's OPC UA points (`node`), in profile order.
fn specs_from_profile(p: &Profile) -> Vec<SnapPoint> {
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
fn node_spec(name: &str, node: &str) -> SnapPoint {
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
        severity: Severity::Critical,
    }
}

/// Scale and offset of a point's OPC UA value. They turn Modbus raw counts into engineering
/// units: a point that also has an `address` carries them for Modbus, and its OPC UA variable is
/// taken to hold the engineering value already (as the simulator's does).
fn ua_scale(pt: &Point) -> (f64, f64) {
    if pt.address.is_some() {
        (1.0, 0.0)
    } else {
        (pt.scale, pt.offset)
    }
}

/// A point's scale and offset applied to a number as `read` shows it (OPC UA values are
/// usually engineering values already: scale 1, offset 0).
fn scaled(v: Json, spec: &SnapPoint) -> Json {
    match v.as_f64() {
        Some(x) if !v.is_boolean() && (spec.scale != 1.0 || spec.offset != 0.0) => {
            json!(x * spec.scale + spec.offset)
        }
        _ => v,
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
        Some(Variant::Float(x)) => n(f32_value(*x)),
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
