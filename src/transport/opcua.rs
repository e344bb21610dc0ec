//! OPC UA client sessions (async-opcua): endpoint discovery, security, identities, the per-user
//! PKI, server-certificate trust, and every call bounded by `--timeout`.
//!
//! async-opcua retries a dead host for a long time by default (session retry with backoff up to
//! 30 s, a 60 s request timeout): here one-shot commands get no retry and a request timeout of
//! `--timeout`, and every call is also wrapped in `tokio::time::timeout`. Only `watch` and `poll`
//! reconnect; watch sees every loss and reconnection as an [`Event`] so it can show the gap.
//!
//! Server certificates are not trusted by default (OPC UA Part 4 §6.1.3): before a secured
//! session opens, the endpoint's certificate must be in `PKI/trusted/`, and is checked for its
//! validity period, so an unknown, expired or mismatched certificate gives a specific message
//! (subject, thumbprint, validity and the command to trust it), never a bare timeout.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use opcua::{
    client::{
        Client, ClientBuilder, IdentityToken, Password, Session, SessionConnectMode,
        SessionPollResult,
    },
    crypto::{CertificateStore, SecurityPolicy, X509},
    types::{
        AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, DataValue,
        EndpointDescription, Identifier, MessageSecurityMode, NodeClass, NodeClassMask, NodeId,
        QualifiedName, ReadValueId, ReferenceDescription, ReferenceTypeId, StatusCode,
        TimestampsToReturn, UserTokenType, Variant,
    },
};
use tokio::sync::mpsc;

use crate::outcome::{Fail, Outcome};

/// The application URI plcprobe's certificate carries in its subjectAltName.
pub const APPLICATION_URI: &str = "urn:plcprobe:client";

/// Security policy and message mode of a session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Security {
    /// Policy (None, `Basic256Sha256`, `Aes128_Sha256_RsaOaep`, `Aes256_Sha256_RsaPss`, …).
    pub policy: SecurityPolicy,
    /// None, Sign or `SignAndEncrypt`.
    pub mode: MessageSecurityMode,
}

impl Security {
    /// No security.
    pub const NONE: Security = Security {
        policy: SecurityPolicy::None,
        mode: MessageSecurityMode::None,
    };
}

impl std::fmt::Display for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.policy == SecurityPolicy::None {
            return f.write_str("None");
        }
        write!(f, "{},{}", self.policy.to_str(), mode_name(self.mode))
    }
}

/// `None`, `Sign` or `SignAndEncrypt`.
pub fn mode_name(m: MessageSecurityMode) -> &'static str {
    match m {
        MessageSecurityMode::Sign => "Sign",
        MessageSecurityMode::SignAndEncrypt => "SignAndEncrypt",
        MessageSecurityMode::None => "None",
        MessageSecurityMode::Invalid => "Invalid",
    }
}

impl FromStr for Security {
    type Err = String;

    /// `POLICY[,MODE]`: `None`, `Basic256Sha256,SignAndEncrypt`, `Aes128_Sha256_RsaOaep,Sign`…
    /// A policy without a mode means `SignAndEncrypt` (None for the None policy).
    fn from_str(s: &str) -> Result<Self, String> {
        const HELP: &str = "use POLICY,MODE: None, Basic256Sha256,Sign, Basic256Sha256,SignAndEncrypt, Aes128_Sha256_RsaOaep,SignAndEncrypt or Aes256_Sha256_RsaPss,SignAndEncrypt";
        let (p, m) = s.split_once(',').unwrap_or((s, ""));
        let policy = match p
            .trim()
            .to_ascii_lowercase()
            .replace(['_', '-'], "")
            .as_str()
        {
            "none" => SecurityPolicy::None,
            "basic256sha256" => SecurityPolicy::Basic256Sha256,
            "aes128sha256rsaoaep" => SecurityPolicy::Aes128Sha256RsaOaep,
            "aes256sha256rsapss" => SecurityPolicy::Aes256Sha256RsaPss,
            "basic256" => SecurityPolicy::Basic256,
            "basic128rsa15" => SecurityPolicy::Basic128Rsa15,
            _ => return Err(format!("unknown security policy `{p}`; {HELP}")),
        };
        let mode = match m.trim().to_ascii_lowercase().replace('-', "").as_str() {
            "" if policy == SecurityPolicy::None => MessageSecurityMode::None,
            "" | "signandencrypt" | "sign&encrypt" => MessageSecurityMode::SignAndEncrypt,
            "sign" => MessageSecurityMode::Sign,
            "none" => MessageSecurityMode::None,
            _ => return Err(format!("unknown security mode `{m}`; {HELP}")),
        };
        if (policy == SecurityPolicy::None) != (mode == MessageSecurityMode::None) {
            return Err(format!(
                "`{s}`: the None policy goes with mode None and only with it; {HELP}"
            ));
        }
        Ok(Security { policy, mode })
    }
}

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

/// The per-user PKI folder: `$PLCPROBE_PKI`, else `$XDG_DATA_HOME/plcprobe/pki`, else
/// `~/.local/share/plcprobe/pki`.
pub fn default_pki() -> PathBuf {
    if let Some(p) = std::env::var_os("PLCPROBE_PKI").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
        .unwrap_or_else(std::env::temp_dir);
    data.join("plcprobe").join("pki")
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
            status_text(s)
        ),
        StatusCode::BadTimeout => "no answer within --timeout".to_string(),
        StatusCode::BadUserAccessDenied
        | StatusCode::BadIdentityTokenRejected
        | StatusCode::BadIdentityTokenInvalid => format!(
            "the server refused the user identity ({}): wrong user name or password, or a user or user certificate not allowed on this endpoint; check --user and PLCPROBE_PASSWORD, or --cert/--key",
            status_text(s)
        ),
        StatusCode::BadCertificateUntrusted | StatusCode::BadSecurityChecksFailed => format!(
            "the server refused the secure channel ({}): most often it does not trust plcprobe's certificate yet; on the server, move plcprobe's certificate from its rejected list to its trusted list (plcprobe's is {}) and try again",
            status_text(s),
            pki.join("own").join("cert.der").display()
        ),
        StatusCode::BadCertificateHostNameInvalid => format!(
            "the server's certificate does not name this host ({}): connect with the host name in its certificate (see `plcprobe scan`), or have the certificate reissued",
            status_text(s)
        ),
        StatusCode::BadCertificateUriInvalid => format!(
            "the server's certificate does not carry the server's application URI ({})",
            status_text(s)
        ),
        StatusCode::BadCertificateTimeInvalid | StatusCode::BadCertificateIssuerTimeInvalid => {
            format!(
                "a certificate is outside its validity period ({}): check both clocks, or renew the certificate",
                status_text(s)
            )
        }
        StatusCode::BadSessionIdInvalid | StatusCode::BadSessionClosed => format!(
            "the session expired or was closed by the server ({})",
            status_text(s)
        ),
        StatusCode::BadTooManySessions => format!(
            "the server has no free session ({}); close another client or raise its session limit",
            status_text(s)
        ),
        other => format!("{} ({detail})", status_text(other)),
    };
    Fail::critical(format!("{url}: {why}"))
}

/// A status code as `BadNodeIdUnknown (0x80340000)`.
pub fn status_text(s: StatusCode) -> String {
    format!("{} (0x{:08X})", status_name(s), s.bits())
}

/// A status code's name only (`Good`, `BadNodeIdUnknown`).
pub fn status_name(s: StatusCode) -> String {
    s.sub_code().name().to_string()
}

/// What a technician needs to decide on a server certificate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// SHA-1 thumbprint, hex.
    pub thumbprint: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Key length in bits.
    pub key_bits: usize,
    /// Valid right now.
    pub time_valid: bool,
    /// The file name the PKI folder keeps it under.
    #[serde(skip)]
    pub file_name: String,
}

/// Describe a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<(X509, CertInfo), String> {
    let cert = X509::from_der(der).map_err(|e| format!("the certificate does not parse: {e}"))?;
    let nb = cert.not_before().map_err(|e| e.to_string())?;
    let na = cert.not_after().map_err(|e| e.to_string())?;
    let now = chrono::Utc::now();
    let info = CertInfo {
        subject: sanitize(&cert.subject_name()),
        thumbprint: cert.thumbprint().as_hex_string(),
        not_before: nb.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        not_after: na.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        key_bits: cert.key_length().unwrap_or(0),
        time_valid: nb <= now && now <= na,
        file_name: CertificateStore::cert_file_name(&cert),
    };
    Ok((cert, info))
}

/// Keep device-supplied text printable (STYLE §3).
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Is this certificate in `PKI/trusted/` (same bytes)?
pub fn is_trusted(pki: &Path, info: &CertInfo, der: &[u8]) -> bool {
    std::fs::read(pki.join("trusted").join(&info.file_name)).is_ok_and(|b| b == der)
}

/// Put a certificate into `PKI/trusted/` (atomically). Returns the path.
pub fn trust(pki: &Path, info: &CertInfo, der: &[u8]) -> anyhow::Result<PathBuf> {
    let dir = pki.join("trusted");
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(&info.file_name);
    crate::fsutil::write_atomic(&path, der)?;
    // A certificate once rejected stays refused by async-opcua while it sits in rejected/.
    let _ = std::fs::remove_file(pki.join("rejected").join(&info.file_name));
    Ok(path)
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

/// Refuse an unknown or expired server certificate before anything is sent under it.
fn check_server_cert(cfg: &UaConfig, ep: &EndpointDescription) -> Result<(), Fail> {
    let der = ep.server_certificate.as_ref();
    if der.is_empty() {
        return Err(Fail::critical(format!(
            "{}: the server sent no certificate for a secured endpoint",
            cfg.url
        )));
    }
    let (_, info) = cert_info(der)
        .map_err(|e| Fail::critical(format!("{}: server certificate: {e}", cfg.url)))?;
    if !info.time_valid {
        return Err(Fail::critical(format!(
            "{}: the server's certificate is outside its validity period (valid {} to {}, now {}); subject {}, thumbprint {}. Renew the server's certificate, or check the clocks",
            cfg.url,
            info.not_before,
            info.not_after,
            crate::clock::now_rfc3339(),
            info.subject,
            info.thumbprint
        )));
    }
    if is_trusted(&cfg.pki, &info, der) {
        return Ok(());
    }
    if cfg.trust_server {
        let p = trust(&cfg.pki, &info, der).map_err(|e| Fail::unknown(format!("{e:#}")))?;
        crate::outcome::warn(format!(
            "trusting the server certificate of {} (subject {}, thumbprint {}) from now on: {}",
            cfg.url,
            info.subject,
            info.thumbprint,
            p.display()
        ));
        return Ok(());
    }
    Err(Fail::unknown(format!(
        "{url}: the server's certificate is not trusted yet, so no secured session was opened.\n  subject:    {}\n  thumbprint: {} (SHA-1)\n  valid:      {} to {}\n  key:        {} bits\nCompare the thumbprint with the one the server shows, then trust it with `plcprobe trust {url}` (or add --trust-server to this command). Trusted certificates are kept in {}",
        info.subject,
        info.thumbprint,
        info.not_before,
        info.not_after,
        info.key_bits,
        cfg.pki.join("trusted").display(),
        url = cfg.url
    )))
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
        check_server_cert(cfg, &ep)?;
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

/// A node given on the command line or in a profile: a `NodeId` in any standard form, or a browse
/// path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRef {
    /// `i=`, `s=`, `g=`, `b=`, with `ns=` (index) or `nsu=` (namespace URI).
    Id {
        /// Namespace.
        ns: Ns,
        /// The identifier.
        id: Identifier,
    },
    /// `/Objects/2:Line1/Speed`: browse names from the Root folder; `N:` pins a namespace index,
    /// a bare name matches in any namespace.
    Path(Vec<(Option<u16>, String)>),
}

/// A namespace given by index or URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ns {
    /// `ns=N` (0 when absent).
    Index(u16),
    /// `nsu=URI`.
    Uri(String),
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeRef::Id {
                ns: Ns::Index(0),
                id,
            } => write!(f, "{id}"),
            NodeRef::Id {
                ns: Ns::Index(n),
                id,
            } => write!(f, "ns={n};{id}"),
            NodeRef::Id { ns: Ns::Uri(u), id } => write!(f, "nsu={u};{id}"),
            NodeRef::Path(p) => {
                for (ns, name) in p {
                    match ns {
                        Some(n) => write!(f, "/{n}:{name}")?,
                        None => write!(f, "/{name}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

impl FromStr for NodeRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const HELP: &str = "NodeIds look like i=2258, ns=2;s=Line1.Speed, ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a, ns=1;b=M/RbKBsRVkePCePcx24oRA==, nsu=urn:plant;s=Speed; browse paths like /Objects/Server/ServerStatus or /Objects/2:Line1/2:Speed";
        let t = s.trim();
        if let Some(path) = t.strip_prefix('/') {
            let mut segs = Vec::new();
            for seg in path.split('/') {
                if seg.is_empty() {
                    return Err(format!("`{s}`: empty browse-path segment; {HELP}"));
                }
                let (ns, name) = match seg.split_once(':') {
                    Some((n, name)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                        (
                            Some(n.parse::<u16>().map_err(|_| {
                                format!("`{s}`: namespace index `{n}` is above 65535")
                            })?),
                            name,
                        )
                    }
                    _ => (None, seg),
                };
                segs.push((ns, name.to_string()));
            }
            return Ok(NodeRef::Path(segs));
        }
        let (ns, rest) = if let Some(r) = t.strip_prefix("nsu=") {
            let (u, rest) = r
                .split_once(';')
                .ok_or_else(|| format!("`{s}`: nsu= needs `;` and an identifier; {HELP}"))?;
            if u.is_empty() {
                return Err(format!("`{s}`: empty namespace URI; {HELP}"));
            }
            (Ns::Uri(u.replace("%3b", ";").replace("%25", "%")), rest)
        } else if let Some(r) = t.strip_prefix("ns=") {
            let (n, rest) = r
                .split_once(';')
                .ok_or_else(|| format!("`{s}`: ns= needs `;` and an identifier; {HELP}"))?;
            let n = n.parse::<u16>().map_err(|_| {
                format!("`{s}`: namespace index `{n}` is not a number from 0 to 65535; {HELP}")
            })?;
            (Ns::Index(n), rest)
        } else {
            (Ns::Index(0), t)
        };
        let ok_kind = rest.len() > 2 && matches!(rest.get(..2), Some("i=" | "s=" | "g=" | "b="));
        let id = if ok_kind {
            Identifier::from_str(rest).ok()
        } else {
            None
        };
        match id {
            Some(id) => Ok(NodeRef::Id { ns, id }),
            None => Err(format!("`{s}` is not a NodeId or browse path; {HELP}")),
        }
    }
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
                    status_text(e.status())
                )))
            }
            Ok(Err(e)) => Err(Fail::critical(format!(
                "{}: {what} failed: {}",
                self.url,
                status_text(e.status())
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
                    status_text(r.status_code)
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

/// The data type name of a value (`Double`, `Int32`, `String`…), `Null` when empty.
pub fn variant_type(v: Option<&Variant>) -> String {
    match v {
        None | Some(Variant::Empty) => "Null".into(),
        Some(v) if v.is_array() => match v {
            Variant::Array(a) => format!("{:?}[]", a.value_type),
            _ => "Array".into(),
        },
        Some(v) => v
            .scalar_type_id()
            .map_or_else(|| "Variant".to_string(), |t| format!("{t:?}")),
    }
}

/// A value as JSON: numbers as numbers, text as text, arrays as arrays.
pub fn variant_json(v: &Variant) -> serde_json::Value {
    use serde_json::json;
    match v {
        Variant::Empty => serde_json::Value::Null,
        Variant::Boolean(b) => json!(b),
        Variant::SByte(x) => json!(x),
        Variant::Byte(x) => json!(x),
        Variant::Int16(x) => json!(x),
        Variant::UInt16(x) => json!(x),
        Variant::Int32(x) => json!(x),
        Variant::UInt32(x) => json!(x),
        Variant::Int64(x) => json!(x),
        Variant::UInt64(x) => json!(x),
        Variant::Float(x) => finite(f32_value(*x)),
        Variant::Double(x) => finite(*x),
        Variant::String(s) => json!(sanitize(s.as_ref())),
        Variant::LocalizedText(t) => json!(sanitize(t.text.as_ref())),
        Variant::QualifiedName(q) => json!(sanitize(q.name.as_ref())),
        Variant::DateTime(d) => json!(d.to_string()),
        Variant::NodeId(n) => json!(n.to_string()),
        Variant::StatusCode(s) => json!(status_name(*s)),
        Variant::Array(a) => serde_json::Value::Array(a.values.iter().map(variant_json).collect()),
        Variant::ExtensionObject(_) => json!(format!("({})", variant_type(Some(v)))),
        other => {
            let t = sanitize(&format!("{other}"));
            json!(if t.chars().count() > 200 {
                format!("{}…", t.chars().take(200).collect::<String>())
            } else {
                t
            })
        }
    }
}

/// An f32 as the f64 of its shortest text (180.4584, not 180.45838928222656), so values print
/// and diff as the device meant them.
pub fn f32_value(x: f32) -> f64 {
    // Rust's own shortest digits, written on the stack (a poll converts every value it reads).
    // Not ryu: on exact ties (1928087.25) it picks the other digit, and a baseline taken with
    // one would then differ from a snapshot taken with the other.
    use std::io::Write as _;
    let mut buf = [0u8; 64];
    let mut w = &mut buf[..];
    if write!(w, "{x}").is_err() {
        return f64::from(x);
    }
    let n = 64 - w.len();
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(f64::from(x))
}

fn finite(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or_else(
        || serde_json::json!(x.to_string()),
        serde_json::Value::Number,
    )
}

/// Parse text into a Variant of the node's current type (write).
pub fn variant_from_text(text: &str, like: &Variant) -> Result<Variant, String> {
    let t = text.trim();
    let bad = |ty: &str| format!("`{text}` is not a valid {ty}");
    Ok(match like {
        Variant::Boolean(_) => Variant::Boolean(match t.to_ascii_lowercase().as_str() {
            "1" | "true" | "on" => true,
            "0" | "false" | "off" => false,
            _ => return Err(bad("Boolean (true/false, 1/0, on/off)")),
        }),
        Variant::SByte(_) => Variant::SByte(t.parse().map_err(|_| bad("SByte"))?),
        Variant::Byte(_) => Variant::Byte(t.parse().map_err(|_| bad("Byte"))?),
        Variant::Int16(_) => Variant::Int16(t.parse().map_err(|_| bad("Int16"))?),
        Variant::UInt16(_) => Variant::UInt16(t.parse().map_err(|_| bad("UInt16"))?),
        Variant::Int32(_) => Variant::Int32(t.parse().map_err(|_| bad("Int32"))?),
        Variant::UInt32(_) => Variant::UInt32(t.parse().map_err(|_| bad("UInt32"))?),
        Variant::Int64(_) => Variant::Int64(t.parse().map_err(|_| bad("Int64"))?),
        Variant::UInt64(_) => Variant::UInt64(t.parse().map_err(|_| bad("UInt64"))?),
        Variant::Float(_) => {
            let x: f32 = t.parse().map_err(|_| bad("Float"))?;
            if !x.is_finite() {
                return Err(bad("finite Float"));
            }
            Variant::Float(x)
        }
        Variant::Double(_) => {
            let x: f64 = t.parse().map_err(|_| bad("Double"))?;
            if !x.is_finite() {
                return Err(bad("finite Double"));
            }
            Variant::Double(x)
        }
        Variant::String(_) => Variant::String(text.into()),
        other => {
            return Err(format!(
                "writing {} values is not supported; plcprobe writes numbers, booleans and strings",
                variant_type(Some(other))
            ))
        }
    })
}

/// Node class name.
pub fn class_name(c: NodeClass) -> &'static str {
    match c {
        NodeClass::Object => "Object",
        NodeClass::Variable => "Variable",
        NodeClass::Method => "Method",
        NodeClass::ObjectType => "ObjectType",
        NodeClass::VariableType => "VariableType",
        NodeClass::ReferenceType => "ReferenceType",
        NodeClass::DataType => "DataType",
        NodeClass::View => "View",
        NodeClass::Unspecified => "Unspecified",
    }
}

/// A qualified name as `ns:Name` (just `Name` in namespace 0).
pub fn qname(q: &QualifiedName) -> String {
    if q.namespace_index == 0 {
        sanitize(q.name.as_ref())
    } else {
        format!("{}:{}", q.namespace_index, sanitize(q.name.as_ref()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn node_ref_forms() {
        let id = |s: &str| s.parse::<NodeRef>().unwrap();
        assert_eq!(
            id("i=2258"),
            NodeRef::Id {
                ns: Ns::Index(0),
                id: Identifier::Numeric(2258)
            }
        );
        assert_eq!(
            id("ns=2;s=Line1.Speed"),
            NodeRef::Id {
                ns: Ns::Index(2),
                id: Identifier::String("Line1.Speed".into())
            }
        );
        assert_eq!(
            id("nsu=urn:plant;s=a;b"),
            NodeRef::Id {
                ns: Ns::Uri("urn:plant".into()),
                id: Identifier::String("a;b".into())
            }
        );
        assert!(matches!(
            id("ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a"),
            NodeRef::Id {
                id: Identifier::Guid(_),
                ..
            }
        ));
        assert!(matches!(
            id("ns=1;b=M/RbKBsRVkePCePcx24oRA=="),
            NodeRef::Id {
                id: Identifier::ByteString(_),
                ..
            }
        ));
        assert_eq!(
            id("/Objects/2:Line1/Speed"),
            NodeRef::Path(vec![
                (None, "Objects".into()),
                (Some(2), "Line1".into()),
                (None, "Speed".into())
            ])
        );
        for bad in [
            "",
            "x=1",
            "ns=;i=1",
            "ns=70000;i=1",
            "ns=2",
            "nsu=;i=1",
            "i=abc",
            "g=nope",
            "//a",
            "/a//b",
            "s=",
        ] {
            assert!(bad.parse::<NodeRef>().is_err(), "{bad}");
        }
        assert_eq!(id("ns=2;s=Line1.Speed").to_string(), "ns=2;s=Line1.Speed");
        assert_eq!(id("/Objects/2:Line1").to_string(), "/Objects/2:Line1");
    }

    #[test]
    fn security_forms() {
        assert_eq!("None".parse::<Security>().unwrap(), Security::NONE);
        let s: Security = "Basic256Sha256,SignAndEncrypt".parse().unwrap();
        assert_eq!(
            (s.policy, s.mode),
            (
                SecurityPolicy::Basic256Sha256,
                MessageSecurityMode::SignAndEncrypt
            )
        );
        let s: Security = "aes128_sha256_rsaoaep,sign".parse().unwrap();
        assert_eq!(
            (s.policy, s.mode),
            (
                SecurityPolicy::Aes128Sha256RsaOaep,
                MessageSecurityMode::Sign
            )
        );
        let s: Security = "Aes256_Sha256_RsaPss".parse().unwrap();
        assert_eq!(s.mode, MessageSecurityMode::SignAndEncrypt);
        assert_eq!(s.to_string(), "Aes256-Sha256-RsaPss,SignAndEncrypt");
        assert!("None,Sign".parse::<Security>().is_err());
        assert!("Basic256Sha256,None".parse::<Security>().is_err());
        assert!("Rot13".parse::<Security>().is_err());
    }

    #[test]
    fn write_text_follows_the_node_type() {
        assert_eq!(
            variant_from_text("42.5", &Variant::Double(0.0)),
            Ok(Variant::Double(42.5))
        );
        assert_eq!(
            variant_from_text("on", &Variant::Boolean(false)),
            Ok(Variant::Boolean(true))
        );
        assert!(variant_from_text("300", &Variant::Byte(0)).is_err());
        assert!(variant_from_text("NaN", &Variant::Double(0.0)).is_err());
        assert!(variant_from_text("1", &Variant::Empty).is_err());
    }

    proptest! {
        #[test]
        fn node_refs_round_trip(ns in 0u16..5, n in any::<u32>(), s in "[A-Za-z0-9_.]{1,20}") {
            for text in [format!("ns={ns};i={n}"), format!("ns={ns};s={s}")] {
                let r: NodeRef = text.parse().unwrap();
                let back = if ns == 0 { text.trim_start_matches("ns=0;").to_string() } else { text.clone() };
                prop_assert_eq!(r.to_string(), back);
            }
        }

        #[test]
        fn node_ref_parser_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<NodeRef>();
        }

        /// The same value as through `to_string`, for any f32 bits (ryu failed this on ties).
        #[test]
        fn f32_values_are_the_shortest_text(bits in any::<u32>()) {
            let x = f32::from_bits(bits);
            let by_std: f64 = x.to_string().parse().unwrap();
            let v = f32_value(x);
            prop_assert!(v == by_std || (v.is_nan() && by_std.is_nan()), "{x}: {v} vs {by_std}");
        }
    }

    #[test]
    fn f32_values_print_as_the_device_meant() {
        assert_eq!(f32_value(180.4584), 180.4584);
        assert_eq!(f32_value(0.1), 0.1);
        // 1928087.25 exactly, a tie between …087.2 and …087.3: the digits Rust prints.
        assert_eq!(f32_value(f32::from_bits(1_240_161_466)), 1_928_087.3);
        assert_eq!(f32_value(1e-40), 1e-40); // subnormal
        assert_eq!(f32_value(f32::MAX), 3.402_823_5e38);
        assert_eq!(f32_value(f32::INFINITY), f64::INFINITY);
        assert_eq!(f32_value(f32::NEG_INFINITY), f64::NEG_INFINITY);
        assert!(f32_value(f32::NAN).is_nan());
        assert_eq!(f32_value(-0.0).to_bits(), (-0.0f64).to_bits());
    }
}
