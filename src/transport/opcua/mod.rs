//! OPC UA client sessions (async-opcua): endpoint discovery, endpoint and identity choice, the
//! session's event loop, and the service calls (read, browse, resolve), every one bounded by
//! `--timeout`.
//!
//! async-opcua retries a dead host for a long time by default (session retry with backoff up to
//! 30 s, a 60 s request timeout): here one-shot commands get no retry and a request timeout of
//! `--timeout`, and every call is also wrapped in `tokio::time::timeout`. Only `watch` and `poll`
//! reconnect; watch sees every loss and reconnection as an [`Event`] so it can show the gap.
//!
//! Before a secured session opens, the server's certificate is checked against the per-user PKI
//! ([`pki`]), so an unknown, expired or mismatched certificate gives a specific message (subject,
//! thumbprint, validity and the command to trust it), never a bare timeout. Every failure is a
//! [`Fail`] naming the server and what to do. The pure text forms (node references, security,
//! values, status codes) are in `proto::opcua`.

pub mod pki;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use opcua::{
    client::{
        Client, ClientBuilder, IdentityToken, Password, Session, SessionConnectMode,
        SessionPollResult,
    },
    crypto::SecurityPolicy,
    types::{
        AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, DataValue,
        EndpointDescription, NodeClassMask, NodeId, ReadValueId, ReferenceDescription,
        ReferenceTypeId, StatusCode, TimestampsToReturn, UserTokenType,
    },
};
use tokio::sync::mpsc;

use crate::{
    outcome::{Fail, Outcome},
    proto::opcua::{
        node::{NodeRef, Ns},
        security::Security,
        variant::status_code_text,
    },
};

/// The application URI plcprobe's certificate carries in its subjectAltName.
pub const APPLICATION_URI: &str = "urn:plcprobe:client";

/// Who the session runs as.
#[derive(Clone)]
pub enum Identity {
    /// Anonymous.
    Anonymous,
    /// User name and password (from `PLCPROBE_PASSWORD` or a prompt, never argv).
    User(String, String),
    /// An X.509 user certificate (DER or PEM) and its private key (PEM).
    Cert(PathBuf, PathBuf),
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("Anonymous"),
            Identity::User(u, _) => write!(f, "User({u}, ***)"),
            Identity::Cert(c, _) => write!(f, "Cert({})", c.display()),
        }
    }
}

/// Everything needed to open a session.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// `opc.tcp://host:port[/path]` as the user gave it: it is where plcprobe connects, whatever
    /// host name the server advertises in its endpoints.
    pub url: String,
    /// Wanted security; `None` = no security if the server offers it.
    pub security: Option<Security>,
    /// Identity.
    pub identity: Identity,
    /// The per-user PKI folder (own certificate, trusted and rejected server certificates).
    pub pki: PathBuf,
    /// Trust the server's certificate now (`--trust-server`), adding it to `PKI/trusted/`.
    pub trust_server: bool,
    /// Bound of every step and request.
    pub timeout: Duration,
    /// Keep reconnecting after a loss (watch).
    pub reconnect: bool,
}

/// Session state changes seen by the event loop.
#[derive(Debug, Clone)]
pub enum Event {
    /// Connected (again): a new session, or the old one reactivated.
    Connected {
        /// True when a new session had to be created (subscriptions re-created).
        new_session: bool,
    },
    /// The connection was lost.
    Lost(StatusCode),
    /// A reconnect attempt failed.
    RetryFailed(StatusCode),
    /// The event loop ended (closed, or out of retries).
    Ended(Option<StatusCode>),
}

/// An open session and the stream of its state changes.
pub struct UaSession {
    /// The session.
    pub session: Arc<Session>,
    /// State changes (watch shows the gaps).
    pub events: mpsc::UnboundedReceiver<Event>,
    /// The endpoint in use.
    pub endpoint: EndpointDescription,
    /// Bound of each request.
    pub timeout: Duration,
    task: tokio::task::JoinHandle<()>,
    url: String,
    reconnect: bool,
}

impl Drop for UaSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client with plcprobe's settings and its own application instance certificate, created in
/// the PKI folder on first use.
pub fn client(pki: &Path, timeout: Duration, reconnect: bool) -> anyhow::Result<Client> {
    std::fs::create_dir_all(pki).map_err(|e| {
        Fail::unknown(format!(
            "cannot create the PKI folder {}: {e}; set PLCPROBE_PKI to a writable folder",
            pki.display()
        ))
    })?;
    let b = ClientBuilder::new()
        .application_name("plcprobe")
        .application_uri(APPLICATION_URI)
        .product_uri("urn:plcprobe")
        .pki_dir(pki)
        .create_sample_keypair(true)
        .trust_server_certs(false)
        .verify_server_certs(true)
        .session_name("plcprobe")
        .request_timeout(timeout)
        .session_timeout(60_000)
        .keep_alive_interval(Duration::from_secs(2).max(timeout))
        .max_failed_keep_alive_count(if reconnect { 2 } else { 0 })
        .session_retry_initial(Duration::from_millis(250))
        .session_retry_max(Duration::from_secs(2))
        .session_retry_limit(if reconnect { -1 } else { 0 })
        // watch re-creates its subscription itself on a new session: async-opcua 0.19's own
        // re-creation left a restarted server's subscription without data here.
        .recreate_subscriptions(false)
        .max_array_length(1_000_000)
        .max_message_size(64 * 1024 * 1024)
        .max_chunk_count(4096);
    b.client().map_err(|e| {
        Fail::unknown(format!(
            "cannot set up the OPC UA client (PKI {}): {}",
            pki.display(),
            e.join("; ")
        ))
        .into()
    })
}

async fn bounded<T>(
    timeout: Duration,
    what: impl FnOnce() -> String,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Fail> {
    tokio::time::timeout(timeout, fut).await.map_err(|_| {
        Fail::critical(format!(
            "{}: no answer within {} (--timeout); check that the server runs and the port is right",
            what(),
            humantime::format_duration(timeout)
        ))
    })
}

/// `GetEndpoints` on `url`, bounded by `timeout`.
pub async fn get_endpoints(
    client: &Client,
    pki: &Path,
    url: &str,
    timeout: Duration,
) -> Result<Vec<EndpointDescription>, Fail> {
    let r = bounded(
        timeout,
        || format!("{url}: GetEndpoints"),
        client.get_endpoints(url, &[], &[]),
    )
    .await?;
    r.map_err(|e| connect_failure(url, pki, e.status(), &e.to_string()))
}

/// A connection failure in words, with what to do.
pub fn connect_failure(url: &str, pki: &Path, s: StatusCode, detail: &str) -> Fail {
    let why = match s {
        StatusCode::BadCommunicationError
        | StatusCode::BadNotConnected
        | StatusCode::BadConnectionRejected
        | StatusCode::BadTcpInternalError
        | StatusCode::BadServerNotConnected
        | StatusCode::BadConnectionClosed => format!(
            "cannot connect ({}); check that the server runs, the host and port are right and no firewall is in between",
            status_code_text(s)
        ),
        StatusCode::BadTimeout => "no answer within --timeout".to_string(),
        StatusCode::BadUserAccessDenied
        | StatusCode::BadIdentityTokenRejected
        | StatusCode::BadIdentityTokenInvalid => format!(
            "the server refused the user identity ({}): wrong user name or password, or a user or user certificate not allowed on this endpoint; check --user and PLCPROBE_PASSWORD, or --cert/--key",
            status_code_text(s)
        ),
        StatusCode::BadCertificateUntrusted | StatusCode::BadSecurityChecksFailed => format!(
            "the server refused the secure channel ({}): most often it does not trust plcprobe's certificate yet; on the server, move plcprobe's certificate from its rejected list to its trusted list (plcprobe's is {}) and try again",
            status_code_text(s),
            pki.join("own").join("cert.der").display()
        ),
        StatusCode::BadCertificateHostNameInvalid => format!(
            "the server's certificate does not name this host ({}): connect with the host name in its certificate (see `plcprobe scan`), or have the certificate reissued",
            status_code_text(s)
        ),
        StatusCode::BadCertificateUriInvalid => format!(
            "the server's certificate does not carry the server's application URI ({})",
            status_code_text(s)
        ),
        StatusCode::BadCertificateTimeInvalid | StatusCode::BadCertificateIssuerTimeInvalid => {
            format!(
                "a certificate is outside its validity period ({}): check both clocks, or renew the certificate",
                status_code_text(s)
            )
        }
        StatusCode::BadSessionIdInvalid | StatusCode::BadSessionClosed => format!(
            "the session expired or was closed by the server ({})",
            status_code_text(s)
        ),
        StatusCode::BadTooManySessions => format!(
            "the server has no free session ({}); close another client or raise its session limit",
            status_code_text(s)
        ),
        other => format!("{} ({detail})", status_code_text(other)),
    };
    Fail::critical(format!("{url}: {why}"))
}

/// The endpoint matching the wanted security, or a message listing what the server offers.
pub fn pick_endpoint(
    url: &str,
    endpoints: &[EndpointDescription],
    want: Option<Security>,
) -> Result<EndpointDescription, Fail> {
    let sec_of = |e: &EndpointDescription| Security {
        policy: SecurityPolicy::from_uri(e.security_policy_uri.as_ref()),
        mode: e.security_mode,
    };
    let want = want.unwrap_or(Security::NONE);
    if let Some(e) = endpoints.iter().find(|e| sec_of(e) == want) {
        return Ok(e.clone());
    }
    let offered: Vec<String> = endpoints.iter().map(|e| sec_of(e).to_string()).collect();
    Err(Fail::critical(format!(
        "{url}: the server offers no endpoint with security {want}; it offers {}. Pick one with --security, e.g. --security {}",
        if offered.is_empty() { "none at all".to_string() } else { offered.join(", ") },
        offered
            .iter()
            .find(|o| o.as_str() == "Basic256Sha256,SignAndEncrypt")
            .or_else(|| offered.iter().find(|o| o.as_str() != "None"))
            .or(offered.first())
            .map_or("Basic256Sha256,SignAndEncrypt", String::as_str)
    )))
}

fn identity_token(
    id: &Identity,
    ep: &EndpointDescription,
    url: &str,
) -> Result<IdentityToken, Fail> {
    let want = match id {
        Identity::Anonymous => UserTokenType::Anonymous,
        Identity::User(..) => UserTokenType::UserName,
        Identity::Cert(..) => UserTokenType::Certificate,
    };
    let offered: Vec<UserTokenType> = ep
        .user_identity_tokens
        .iter()
        .flatten()
        .map(|t| t.token_type)
        .collect();
    if !offered.contains(&want) {
        let names: Vec<&str> = offered.iter().map(|t| token_name(*t)).collect();
        return Err(Fail::critical(format!(
            "{url}: this endpoint does not accept {} identities; it accepts {}{}",
            token_name(want),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
            match want {
                UserTokenType::Anonymous =>
                    "; give --user NAME (password from PLCPROBE_PASSWORD or a prompt)",
                _ => "",
            }
        )));
    }
    Ok(match id {
        Identity::Anonymous => IdentityToken::Anonymous,
        Identity::User(u, p) => IdentityToken::UserName(u.clone(), Password::new(p.clone())),
        Identity::Cert(c, k) => IdentityToken::new_x509_path(c, k).map_err(|e| {
            Fail::unknown(format!(
                "--cert {} / --key {}: cannot load the user certificate: {e}",
                c.display(),
                k.display()
            ))
        })?,
    })
}

fn token_name(t: UserTokenType) -> &'static str {
    match t {
        UserTokenType::Anonymous => "anonymous",
        UserTokenType::UserName => "user/password",
        UserTokenType::Certificate => "certificate",
        UserTokenType::IssuedToken => "issued-token",
    }
}

/// Open a session: `GetEndpoints`, pick the endpoint, check the server certificate, connect, and
/// wait for the session to be activated; all within `timeout` per step.
pub async fn connect(cfg: &UaConfig) -> Result<UaSession, Fail> {
    let make = |reconnect| {
        client(&cfg.pki, cfg.timeout, reconnect).map_err(|e| match e.downcast::<Fail>() {
            Ok(f) => f,
            Err(e) => Fail::unknown(format!("{e:#}")),
        })
    };
    // Discovery never retries, even for a session that will: async-opcua's GetEndpoints channel
    // follows the session retry policy, and a refused connection would read as a timeout.
    let mut client = make(false)?;
    let endpoints = get_endpoints(&client, &cfg.pki, &cfg.url, cfg.timeout).await?;
    if cfg.reconnect {
        client = make(true)?;
    }
    let mut ep = pick_endpoint(&cfg.url, &endpoints, cfg.security)?;
    let token = identity_token(&cfg.identity, &ep, &cfg.url)?;
    if cfg
        .security
        .is_some_and(|s| s.policy != SecurityPolicy::None)
    {
        pki::check_server_cert(&cfg.pki, &cfg.url, cfg.trust_server, &ep)?;
    }
    // Connect where the user pointed, not to the host name the server advertises (often a
    // name the technician's laptop cannot resolve, or another interface).
    ep.endpoint_url = cfg.url.as_str().into();
    let (session, event_loop) = client
        .connect_to_endpoint_directly(ep.clone(), token)
        .map_err(|e| connect_failure(&cfg.url, &cfg.pki, e.status(), &e.to_string()))?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        use futures_util::StreamExt as _;
        let stream = event_loop.enter();
        tokio::pin!(stream);
        loop {
            let ev = match stream.next().await {
                None => Event::Ended(None),
                Some(Err(s)) => Event::Ended(Some(s)),
                Some(Ok(SessionPollResult::Reconnected(mode))) => Event::Connected {
                    new_session: matches!(mode, SessionConnectMode::NewSession(_)),
                },
                Some(Ok(SessionPollResult::ConnectionLost(s))) => Event::Lost(s),
                Some(Ok(SessionPollResult::ReconnectFailed(s))) => Event::RetryFailed(s),
                Some(Ok(_)) => continue,
            };
            let end = matches!(ev, Event::Ended(_));
            if tx.send(ev).is_err() || end {
                break;
            }
        }
    });
    // Opening takes two exchanges after GetEndpoints (CreateSession, ActivateSession), each
    // within --timeout.
    let first = bounded(
        cfg.timeout * 2,
        || format!("{}: opening the session", cfg.url),
        async {
            loop {
                match rx.recv().await {
                    Some(Event::Connected { .. }) => return Ok(()),
                    Some(Event::RetryFailed(s) | Event::Ended(Some(s)) | Event::Lost(s))
                        if !cfg.reconnect || first_attempt_fatal(s) =>
                    {
                        return Err(s)
                    }
                    Some(Event::Ended(None)) | None => return Err(StatusCode::BadConnectionClosed),
                    Some(_) => {}
                }
            }
        },
    )
    .await;
    let failed = |f: Fail| {
        task.abort();
        f
    };
    match first {
        Ok(Ok(())) => {}
        Ok(Err(s)) => {
            return Err(failed(connect_failure(
                &cfg.url,
                &cfg.pki,
                s,
                "while opening the session",
            )))
        }
        Err(f) => return Err(failed(f)),
    }
    Ok(UaSession {
        session,
        events: rx,
        endpoint: ep,
        timeout: cfg.timeout,
        task,
        url: cfg.url.clone(),
        reconnect: cfg.reconnect,
    })
}

/// What a Read of one attribute of `ids` asks for.
pub fn read_ids(ids: &[NodeId], attr: AttributeId) -> Vec<ReadValueId> {
    ids.iter()
        .map(|id| ReadValueId {
            node_id: id.clone(),
            attribute_id: attr as u32,
            ..Default::default()
        })
        .collect()
}

/// The server does not know the session any more.
fn session_gone(s: StatusCode) -> bool {
    matches!(
        s,
        StatusCode::BadSessionIdInvalid
            | StatusCode::BadSessionClosed
            | StatusCode::BadSessionNotActivated
    )
}

/// Failures that no retry will fix: even `watch` reports them at once.
fn first_attempt_fatal(s: StatusCode) -> bool {
    matches!(
        s,
        StatusCode::BadUserAccessDenied
            | StatusCode::BadIdentityTokenRejected
            | StatusCode::BadIdentityTokenInvalid
            | StatusCode::BadCertificateUntrusted
            | StatusCode::BadSecurityChecksFailed
            | StatusCode::BadCertificateHostNameInvalid
            | StatusCode::BadCertificateUriInvalid
            | StatusCode::BadCertificateTimeInvalid
            | StatusCode::BadSecurityPolicyRejected
    )
}

impl UaSession {
    /// One service call bounded by `--timeout`; a failure names the server, `what` and the
    /// status (a session the server no longer has is replaced at once when reconnecting).
    pub async fn call<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, opcua::types::Error>>,
    ) -> Result<T, Fail> {
        self.call_within(what, 1, fut).await
    }

    /// [`Self::call`], bounded by `times` × `--timeout` (for calls that carry a lot of work).
    pub async fn call_within<T>(
        &self,
        what: &str,
        times: u32,
        fut: impl std::future::Future<Output = Result<T, opcua::types::Error>>,
    ) -> Result<T, Fail> {
        match tokio::time::timeout(self.timeout * times, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if self.reconnect && session_gone(e.status()) => {
                // The server no longer knows this session (it expired while the client was
                // stopped or asleep, or the server restarted). async-opcua would only notice on
                // failed keep-alives, seconds later: close the channel now, so the event loop
                // opens a new session at once.
                let _ = tokio::time::timeout(self.timeout, self.session.channel().close_channel())
                    .await;
                Err(Fail::critical(format!(
                    "{}: {what} failed: {}; the server no longer has this session, opening a new one",
                    self.url,
                    status_code_text(e.status())
                )))
            }
            Ok(Err(e)) => Err(Fail::critical(format!(
                "{}: {what} failed: {}",
                self.url,
                status_code_text(e.status())
            ))),
            Err(_) => Err(Fail::critical(format!(
                "{}: {what}: no answer within {} ({}--timeout)",
                self.url,
                humantime::format_duration(self.timeout * times),
                if times == 1 {
                    String::new()
                } else {
                    format!("{times} × ")
                }
            ))),
        }
    }

    /// Resolve node references to `NodeIds` (namespace URIs through the server's namespace
    /// array, browse paths by browsing). Unresolvable ones are `Err(status)`.
    pub async fn resolve(&self, refs: &[NodeRef]) -> Result<Vec<Result<NodeId, String>>, Fail> {
        let needs_ns = refs
            .iter()
            .any(|r| matches!(r, NodeRef::Id { ns: Ns::Uri(_), .. }));
        let nss = if needs_ns {
            Some(
                self.call(
                    "reading the namespace array",
                    self.session.read_namespace_array(),
                )
                .await?,
            )
        } else {
            None
        };
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            out.push(match r {
                NodeRef::Id {
                    ns: Ns::Index(n),
                    id,
                } => Ok(NodeId::new(*n, id.clone())),
                NodeRef::Id { ns: Ns::Uri(u), id } => {
                    match nss.as_ref().and_then(|m| m.get_index(u)) {
                        Some(n) => Ok(NodeId::new(n, id.clone())),
                        None => Err(format!(
                            "namespace `{u}` is not in the server's namespace array"
                        )),
                    }
                }
                NodeRef::Path(p) => self.resolve_path(p).await?,
            });
        }
        Ok(out)
    }

    async fn resolve_path(
        &self,
        path: &[(Option<u16>, String)],
    ) -> Result<Result<NodeId, String>, Fail> {
        let mut cur: NodeId = opcua::types::ObjectId::RootFolder.into();
        let mut walked = String::new();
        for (ns, name) in path {
            let children = self
                .browse_children(&cur, BrowseDirection::Forward, true)
                .await?;
            let hit = children.iter().find(|c| {
                c.browse_name.name.as_ref() == name.as_str()
                    && ns.is_none_or(|n| c.browse_name.namespace_index == n)
            });
            walked.push('/');
            walked.push_str(name);
            match hit {
                Some(c) => cur = c.node_id.node_id.clone(),
                None => {
                    return Ok(Err(format!(
                        "browse path: no child `{name}` under {} ({} children)",
                        if walked.len() == name.len() + 1 {
                            "/".to_string()
                        } else {
                            walked[..walked.len() - name.len() - 1].to_string()
                        },
                        children.len()
                    )))
                }
            }
        }
        Ok(Ok(cur))
    }

    /// Read Value (with both timestamps) of many nodes, in as few requests as the server's
    /// operation limit allows.
    pub async fn read_values(&self, ids: &[NodeId]) -> Result<Vec<DataValue>, Fail> {
        self.read_attrs(ids, AttributeId::Value).await
    }

    /// Read one attribute of many nodes, batched.
    pub async fn read_attrs(
        &self,
        ids: &[NodeId],
        attr: AttributeId,
    ) -> Result<Vec<DataValue>, Fail> {
        self.read_prepared(&read_ids(ids, attr)).await
    }

    /// Read prepared `ReadValueId`s (a poll builds them once), batched.
    pub async fn read_prepared(&self, req: &[ReadValueId]) -> Result<Vec<DataValue>, Fail> {
        const BATCH: usize = 1000;
        let mut out = Vec::with_capacity(req.len());
        for chunk in req.chunks(BATCH) {
            let mut r = self
                .call(
                    "Read",
                    self.session.read(chunk, TimestampsToReturn::Both, 0.0),
                )
                .await?;
            if r.len() != chunk.len() {
                return Err(Fail::critical(format!(
                    "{}: Read of {} nodes answered {} results",
                    self.url,
                    chunk.len(),
                    r.len()
                )));
            }
            out.append(&mut r);
        }
        Ok(out)
    }

    /// Every reference of `node` in `dir` (hierarchical ones only when `hier`), following
    /// continuation points.
    pub async fn browse_children(
        &self,
        node: &NodeId,
        dir: BrowseDirection,
        hier: bool,
    ) -> Result<Vec<ReferenceDescription>, Fail> {
        let desc = BrowseDescription {
            node_id: node.clone(),
            browse_direction: dir,
            reference_type_id: if hier {
                ReferenceTypeId::HierarchicalReferences.into()
            } else {
                NodeId::null()
            },
            include_subtypes: true,
            node_class_mask: NodeClassMask::all().bits(),
            result_mask: BrowseResultMask::All as u32,
        };
        let mut res = self
            .call("Browse", self.session.browse(&[desc], 1000, None))
            .await?;
        let mut out = Vec::new();
        while let Some(r) = res.pop() {
            if r.status_code.is_bad() {
                return Err(Fail::critical(format!(
                    "{}: Browse of {node}: {}",
                    self.url,
                    status_code_text(r.status_code)
                )));
            }
            out.extend(r.references.unwrap_or_default());
            if r.continuation_point.is_null() || r.continuation_point.as_ref().is_empty() {
                break;
            }
            res = self
                .call(
                    "BrowseNext",
                    self.session.browse_next(false, &[r.continuation_point]),
                )
                .await?;
        }
        Ok(out)
    }

    /// The server's URL as the user gave it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Close the session (bounded).
    pub async fn close(self) {
        let _ = tokio::time::timeout(
            self.timeout.min(Duration::from_secs(2)),
            self.session.disconnect(),
        )
        .await;
    }
}

/// The outcome of a failed status for exit codes: Bad is CRITICAL, Uncertain WARNING.
pub fn status_outcome(s: StatusCode) -> Outcome {
    if s.is_bad() {
        Outcome::Critical
    } else if s.is_uncertain() {
        Outcome::Warning
    } else {
        Outcome::Ok
    }
}
