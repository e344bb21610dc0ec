//! `scan`: who is there. OPC UA: `FindServers` and `GetEndpoints` (policies, modes, user tokens and
//! the server certificate's subject, thumbprint and validity). Modbus TCP: which unit IDs answer
//! (FC43 identity, else a one-register read; any answer, even an exception, means "present").
//! Read-only: nothing here writes.

use std::io::Write as _;

use opcua::crypto::SecurityPolicy;
use serde_json::json;

use super::{Ctx, Fail, Outcome};
use crate::{
    cli::ScanArgs,
    proto::modbus::{exception::describe_exception, AddressRange, Table},
    report::{write_rows, Rows},
    target::Target,
    transport::{
        modbus::{LinkError, ModbusLink},
        opcua::{self as ua, cert_info, default_pki, mode_name, sanitize},
    },
};

/// Run `scan`.
pub async fn run(ctx: &Ctx, args: &ScanArgs) -> anyhow::Result<Outcome> {
    let target: Target = args.target.parse()?;
    match &target {
        Target::OpcUa { .. } => scan_opcua(ctx, &target).await,
        Target::ModbusTcp { host, port, .. } => scan_modbus(ctx, host, *port, &args.units).await,
        other => Err(Fail::unknown(format!(
            "scan of {other} is not supported yet; scan speaks opc.tcp:// and modbus://"
        ))
        .into()),
    }
}

async fn scan_opcua(ctx: &Ctx, target: &Target) -> anyhow::Result<Outcome> {
    let url = target.url();
    let pki = default_pki();
    let client = ua::client(&pki, ctx.timeout, false)?;
    // FindServers first: a discovery server lists several; a plain server lists itself.
    let servers = tokio::time::timeout(ctx.timeout, client.find_servers(url.as_str(), None, None))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let endpoints = ua::get_endpoints(&client, &pki, &url, ctx.timeout).await?;
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
                    } else if ua::is_trusted(&pki, &i, der) {
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
    let mut out = std::io::stdout().lock();
    if !ctx.quiet || outcome != Outcome::Ok {
        if ctx.format == crate::report::Format::Table {
            for s in &servers {
                writeln!(
                    out,
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
                )?;
            }
        }
        write_rows(&mut out, ctx.format, &rows, ctx.color)?;
    }
    out.flush()?;
    Ok(outcome)
}

/// Unit IDs to scan: `1-10`, `1,2,5`; 248–255 are reserved by the Modbus spec.
fn units(text: &str) -> anyhow::Result<Vec<u8>> {
    let v = super::sim::parse_units(text)?;
    if v.last().is_some_and(|&u| u > 247) {
        return Err(Fail::unknown(format!(
            "--units {text}: give unit IDs from 0 to 247 like 1-10 or 1,2,5"
        ))
        .into());
    }
    Ok(v)
}

async fn scan_modbus(ctx: &Ctx, host: &str, port: u16, unit_text: &str) -> anyhow::Result<Outcome> {
    let list = units(unit_text)?;
    let mut rows = Rows::new(&["unit", "present", "identity", "probe"]);
    let pb = ctx.progress_bar(list.len() as u64, "scanning");
    let mut found = 0;
    for u in list {
        let t = Target::ModbusTcp {
            host: host.to_string(),
            port,
            unit: u,
        };
        let mut link = ModbusLink::new(&t, ctx.timeout)?;
        let (present, identity, probe) = match link.read_identity().await {
            Ok(Ok(objs)) => (
                true,
                objs.iter()
                    .map(|(_, v)| sanitize(v))
                    .collect::<Vec<_>>()
                    .join(" / "),
                "FC43 identity".to_string(),
            ),
            Err(LinkError::Connect(e)) => {
                pb.finish_and_clear();
                return Err(Fail::critical(format!("{t}: cannot connect: {e}")).into());
            }
            Ok(Err(_)) | Err(_) => {
                match link
                    .read(AddressRange::new(Table::HoldingRegister, 0, 1), 1, 1)
                    .await
                {
                    Ok(Ok(_)) => (true, String::new(), "hr:0 read".to_string()),
                    // 0x0B: a gateway with nothing behind that unit ID.
                    Ok(Err(0x0B)) => (false, String::new(), describe_exception(0x0B)),
                    Ok(Err(c)) => (true, String::new(), describe_exception(c)),
                    Err(e) => (false, String::new(), e.kind().name().to_string()),
                }
            }
        };
        pb.inc(1);
        if present {
            found += 1;
        }
        if present || ctx.verbose > 0 {
            rows.push(vec![
                json!(u),
                json!(present),
                json!(identity),
                json!(probe),
            ]);
        }
    }
    pb.finish_and_clear();
    let mut out = std::io::stdout().lock();
    write_rows(&mut out, ctx.format, &rows, ctx.color)?;
    out.flush()?;
    Ok(if found > 0 {
        Outcome::Ok
    } else {
        Outcome::Critical
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_lists() {
        assert_eq!(units("1-3,7").unwrap(), vec![1, 2, 3, 7]);
        assert!(units("5-1").is_err());
        assert!(units("250").is_err());
    }
}
