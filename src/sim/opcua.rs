//! The simulator's OPC UA server (async-opcua): serves every profile point that has a `node`
//! as a variable under `Objects/<device name>`, with values computed at read (and sampling) time
//! from the same [`SimState`] the Modbus side uses, so both protocols show the same process.
//!
//! Endpoints: None, and `Basic256Sha256`, `Aes128_Sha256_RsaOaep` and `Aes256_Sha256_RsaPss` with Sign
//! and `SignAndEncrypt`, under a certificate generated at start in a private PKI folder (a
//! simulator trusts every client certificate). Identities: anonymous, and user `operator` with
//! the password from `PLCPROBE_SIM_PASSWORD` (default `plcprobe`).
//!
//! Faults: `bad-status` answers value reads with a status code; `delay`, `drop` and
//! `disconnect-every` act on the wire through a small proxy in front of the server, which only
//! exists when one of them is set (so a clean simulator is measured without it).

use std::{net::SocketAddr, sync::Arc};

use opcua::{
    crypto::SecurityPolicy,
    server::{
        address_space::VariableBuilder,
        diagnostics::NamespaceMetadata,
        node_manager::memory::{simple_node_manager, SimpleNodeManager},
        ServerBuilder, ServerUserToken, ANONYMOUS_USER_TOKEN_ID,
    },
    types::{
        DataTypeId, DataValue, DateTime, MessageSecurityMode, NodeId, ObjectId, QualifiedName,
        StatusCode, Variant,
    },
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use super::SimState;
use crate::proto::{
    modbus::DataType,
    opcua::node::{NodeRef, Ns},
};

/// The namespace the simulator's variables live in.
pub const NAMESPACE_URI: &str = "urn:plcprobe:sim:line";

/// User name of the simulator's password identity.
pub const SIM_USER: &str = "operator";

/// A running OPC UA simulator. Dropping it stops it.
pub struct UaSim {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Variables served.
    pub nodes: usize,
    /// The namespace index of [`NAMESPACE_URI`].
    pub ns: u16,
    handle: opcua::server::ServerHandle,
    tasks: Vec<JoinHandle<()>>,
    _pki: tempfile::TempDir,
}

impl Drop for UaSim {
    fn drop(&mut self) {
        self.handle.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The OPC UA data type a point is served as: its engineering value's natural type.
fn ua_type(p: &crate::profile::Point) -> DataTypeId {
    if p.scale != 1.0 || p.offset != 0.0 {
        return DataTypeId::Double;
    }
    match p.ty {
        DataType::U16 | DataType::Bits | DataType::Hex | DataType::Bcd => DataTypeId::UInt16,
        DataType::I16 => DataTypeId::Int16,
        DataType::U32 => DataTypeId::UInt32,
        DataType::I32 => DataTypeId::Int32,
        DataType::U64 => DataTypeId::UInt64,
        DataType::I64 => DataTypeId::Int64,
        DataType::F32 => DataTypeId::Float,
        DataType::F64 => DataTypeId::Double,
        DataType::Bool => DataTypeId::Boolean,
        DataType::Ascii(_) => DataTypeId::String,
    }
}

fn variant_of(ty: DataTypeId, v: Result<f64, &str>) -> Variant {
    let x = match v {
        Err(t) => return Variant::String(t.into()),
        Ok(x) => x,
    };
    match ty {
        DataTypeId::UInt16 => Variant::UInt16(x.round().clamp(0.0, 65535.0) as u16),
        DataTypeId::Int16 => Variant::Int16(x.round().clamp(-32768.0, 32767.0) as i16),
        DataTypeId::UInt32 => Variant::UInt32(x.round().max(0.0) as u32),
        DataTypeId::Int32 => Variant::Int32(x.round() as i32),
        DataTypeId::UInt64 => Variant::UInt64(x.round().max(0.0) as u64),
        DataTypeId::Int64 => Variant::Int64(x.round() as i64),
        DataTypeId::Float => Variant::Float(x as f32),
        DataTypeId::Boolean => Variant::Boolean(x != 0.0),
        DataTypeId::String => Variant::String(format!("{x}").into()),
        _ => Variant::Double(x),
    }
}

/// The `NodeId` a point's `node` names in the simulator; the namespace must be the simulator's.
fn node_id_of(text: &str, ns: u16, source: &str, point: &str) -> anyhow::Result<NodeId> {
    let r: NodeRef = text
        .parse()
        .map_err(|e| anyhow::anyhow!("{source}: point `{point}`: {e}"))?;
    match r {
        NodeRef::Id { ns: Ns::Index(n), id } if n == ns => Ok(NodeId::new(n, id)),
        NodeRef::Id { ns: Ns::Uri(u), id } if u == NAMESPACE_URI => Ok(NodeId::new(ns, id)),
        _ => anyhow::bail!(
            "{source}: point `{point}`: the simulator serves its nodes in namespace {ns} ({NAMESPACE_URI}); write node = \"ns={ns};s=…\" or \"nsu={NAMESPACE_URI};s=…\", not `{text}`"
        ),
    }
}

/// Start serving `state`'s points with a `node` on `addr`.
pub async fn start(
    state: Arc<SimState>,
    addr: SocketAddr,
    profile: &crate::profile::Profile,
) -> anyhow::Result<UaSim> {
    let device = profile.device.name.as_str();
    let source = profile.source.as_str();
    let ident = |k: &str| {
        profile
            .device
            .identity
            .iter()
            .find(|(key, _)| key == k)
            .map_or_else(String::new, |(_, v)| v.clone())
    };
    let pki = tempfile::Builder::new()
        .prefix("plcprobe-sim-pki")
        .tempdir()?;
    let faults = state.faults();
    let proxied = faults.delay.is_some() || faults.drop > 0.0 || faults.disconnect_every > 0;
    let public = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "--opcua {addr}: cannot listen: {e}; pick another port (or port 0 for any free one)"
        )
    })?;
    let public_addr = public.local_addr()?;
    let (listener, front) = if proxied {
        let l = TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await?;
        (l, Some(public))
    } else {
        (public, None)
    };
    let inner_addr = listener.local_addr()?;
    let host = match public_addr.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    let password = std::env::var("PLCPROBE_SIM_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "plcprobe".to_string());
    let tokens = [ANONYMOUS_USER_TOKEN_ID, SIM_USER];
    let mut b = ServerBuilder::new()
        .application_name("plcprobe sim")
        .application_uri("urn:plcprobe:sim")
        .product_uri("urn:plcprobe")
        .host(host.clone())
        .port(public_addr.port())
        .discovery_urls(vec![format!("opc.tcp://{host}:{}/", public_addr.port())])
        .pki_dir(pki.path())
        .create_sample_keypair(true)
        .trust_client_certs(true)
        .diagnostics_enabled(false)
        // The device identity of the profile, as OPC UA BuildInfo (Part 5 §12.4).
        .build_info(opcua::types::BuildInfo {
            product_uri: "urn:plcprobe".into(),
            manufacturer_name: ident("vendor").into(),
            product_name: ident("product_name").into(),
            software_version: ident("revision").into(),
            build_number: env!("CARGO_PKG_VERSION").into(),
            build_date: DateTime::now(),
        })
        .max_session_timeout_ms(
            faults
                .session_timeout
                .map_or(60_000, |d| d.as_millis().try_into().unwrap_or(u64::MAX)),
        )
        .add_user_token(SIM_USER, ServerUserToken::user_pass(SIM_USER, &password))
        .add_endpoint(
            "none",
            (
                "/",
                SecurityPolicy::None,
                MessageSecurityMode::None,
                &tokens as &[&str],
            ),
        );
    for (policy, name) in [
        (SecurityPolicy::Basic256Sha256, "basic256sha256"),
        (SecurityPolicy::Aes128Sha256RsaOaep, "aes128"),
        (SecurityPolicy::Aes256Sha256RsaPss, "aes256"),
    ] {
        for (mode, m) in [
            (MessageSecurityMode::Sign, "sign"),
            (MessageSecurityMode::SignAndEncrypt, "sign_encrypt"),
        ] {
            b = b.add_endpoint(
                format!("{name}_{m}"),
                ("/", policy, mode, &tokens as &[&str]),
            );
        }
    }
    let b = b.with_node_manager(simple_node_manager(
        NamespaceMetadata {
            namespace_uri: NAMESPACE_URI.to_owned(),
            ..Default::default()
        },
        "plcprobe-sim",
    ));
    let (server, handle) = b
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the OPC UA simulator: {e}"))?;
    let ns = handle
        .get_namespace_index(NAMESPACE_URI)
        .ok_or_else(|| anyhow::anyhow!("the simulator's namespace was not registered"))?;
    let nm = handle
        .node_managers()
        .get_of_type::<SimpleNodeManager>()
        .ok_or_else(|| anyhow::anyhow!("the simulator's node manager is missing"))?;

    let folder = NodeId::new(ns, "Device");
    let mut served = 0;
    {
        let mut space = nm.address_space().write();
        space.add_folder(
            &folder,
            QualifiedName::new(ns, device),
            device,
            &ObjectId::ObjectsFolder.into(),
        );
        for (i, p) in state.points().iter().enumerate() {
            let Some(text) = &p.node else { continue };
            let id = node_id_of(text, ns, source, &p.name)?;
            let ty = ua_type(p);
            VariableBuilder::new(
                &id,
                QualifiedName::new(ns, p.name.as_str()),
                p.name.as_str(),
            )
            .data_type(ty)
            .value(variant_of(ty, state.point_value(i)))
            .writable()
            .organized_by(&folder)
            .insert(&mut *space);
            let st = Arc::clone(&state);
            nm.inner().add_read_callback(id.clone(), move |_, _, _| {
                st.requests
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let now = DateTime::now();
                let bad = st.faults().bad_status.filter(|(_, p)| st.chance(*p));
                Ok(DataValue {
                    value: match bad {
                        Some(_) => None,
                        None => Some(
                            st.ua_written(i)
                                .unwrap_or_else(|| variant_of(ty, st.point_value(i))),
                        ),
                    },
                    status: Some(bad.map_or(StatusCode::Good, |(code, _)| StatusCode::from(code))),
                    source_timestamp: Some(now),
                    server_timestamp: Some(now),
                    ..Default::default()
                })
            });
            let st = Arc::clone(&state);
            nm.inner().add_write_callback(id, move |dv, _range| {
                let Some(v) = dv.value else {
                    return StatusCode::BadNothingToDo;
                };
                let expected = variant_of(ty, Ok(0.0));
                if std::mem::discriminant(&v) != std::mem::discriminant(&expected) {
                    return StatusCode::BadTypeMismatch;
                }
                st.set_ua_written(i, v);
                StatusCode::Good
            });
            served += 1;
        }
    }
    let mut tasks = vec![tokio::spawn(async move {
        let _ = server.run_with(listener).await;
    })];
    if let Some(public) = front {
        let st = Arc::clone(&state);
        tasks.push(tokio::spawn(proxy(public, inner_addr, st)));
    }
    Ok(UaSim {
        addr: public_addr,
        nodes: served,
        ns,
        handle,
        tasks,
        _pki: pki,
    })
}

/// Forward connections to the server, applying the wire faults per client message (OPC UA
/// Part 6 §7.1.2: an 8-byte header whose bytes 4..8 are the message size).
async fn proxy(public: TcpListener, inner: SocketAddr, state: Arc<SimState>) {
    loop {
        let Ok((client, _)) = public.accept().await else {
            continue;
        };
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(inner).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let down = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
                let _ = cw.shutdown().await;
            });
            let mut seen = 0u64;
            let mut buf = vec![0u8; 8];
            loop {
                if cr.read_exact(&mut buf[..8]).await.is_err() {
                    break;
                }
                let size = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
                if !(8..=64 * 1024 * 1024).contains(&size) {
                    break;
                }
                buf.resize(size, 0);
                if cr.read_exact(&mut buf[8..size]).await.is_err() {
                    break;
                }
                seen += 1;
                let f = st.faults();
                if f.disconnect_every > 0 && seen.is_multiple_of(f.disconnect_every) {
                    break;
                }
                // Hello and OpenSecureChannel always pass: the faults hit the session's traffic.
                let service = &buf[..3] == b"MSG";
                if service && st.chance(f.drop) {
                    break;
                }
                if let Some((d, p)) = f.delay {
                    if service && st.chance(p) {
                        tokio::time::sleep(d).await;
                    }
                }
                if sw.write_all(&buf[..size]).await.is_err() {
                    break;
                }
            }
            down.abort();
        });
    }
}
