//! The per-user PKI folder and server-certificate trust: where plcprobe keeps its own
//! application instance certificate, the server certificates it trusts (`trusted/`) and those
//! async-opcua rejected (`rejected/`).
//!
//! Server certificates are not trusted by default (OPC UA Part 4 §6.1.3): a secured session opens
//! only when the endpoint's certificate is in `PKI/trusted/` (same bytes) and within its validity
//! period; otherwise the refusal names the subject, thumbprint and validity and how to trust it.
//! Trusting writes the file atomically and takes it out of `rejected/`. Every write plcprobe
//! makes to `trusted/` goes through here (`plcprobe trust` also lists that folder itself);
//! async-opcua creates the own certificate ([`super::client`]) and fills `rejected/`.

use std::path::{Path, PathBuf};

use opcua::{
    crypto::{CertificateStore, X509},
    types::EndpointDescription,
};

use crate::{outcome::Fail, proto::sanitize};

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

/// Refuse an unknown or expired server certificate before anything is sent under it.
pub(super) fn check_server_cert(
    pki: &Path,
    url: &str,
    trust_server: bool,
    ep: &EndpointDescription,
) -> Result<(), Fail> {
    let der = ep.server_certificate.as_ref();
    if der.is_empty() {
        return Err(Fail::critical(format!(
            "{url}: the server sent no certificate for a secured endpoint"
        )));
    }
    let (_, info) =
        cert_info(der).map_err(|e| Fail::critical(format!("{url}: server certificate: {e}")))?;
    if !info.time_valid {
        return Err(Fail::critical(format!(
            "{url}: the server's certificate is outside its validity period (valid {} to {}, now {}); subject {}, thumbprint {}. Renew the server's certificate, or check the clocks",
            info.not_before,
            info.not_after,
            crate::clock::now_rfc3339(),
            info.subject,
            info.thumbprint
        )));
    }
    if is_trusted(pki, &info, der) {
        return Ok(());
    }
    if trust_server {
        let p = trust(pki, &info, der).map_err(|e| Fail::unknown(format!("{e:#}")))?;
        crate::outcome::warn(format!(
            "trusting the server certificate of {url} (subject {}, thumbprint {}) from now on: {}",
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
        pki.join("trusted").display(),
    )))
}
