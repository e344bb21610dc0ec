//! `trust`: add a server certificate to plcprobe's per-user PKI (from a file, or fetched from
//! the server's endpoints), after showing its subject, thumbprint and validity.

use serde_json::json;

use super::{browse::opc_target, Ctx, Fail, Outcome};
use crate::{
    cli::TrustArgs,
    report::{write_rows, Rows},
    transport::opcua::{self as ua, pki::cert_info},
};

/// `trust`.
pub async fn run(ctx: &Ctx, args: &TrustArgs) -> anyhow::Result<Outcome> {
    let pki = ctx.device.ua.pki.clone();
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
        let client = ua::client(&pki, ctx.device.timeout, false)?;
        let eps = ua::get_endpoints(&client, &pki, &target.url(), ctx.device.timeout).await?;
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
        let path = ua::pki::trust(&pki, &info, &der)?;
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
