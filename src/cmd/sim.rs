//! `sim`: run the simulated device from a profile until Ctrl-C (or `--duration`).

use std::{io::Write as _, net::SocketAddr};

use super::{Ctx, Outcome};
use crate::transport::rtu::LineSettings;
use crate::{
    cli::SimArgs,
    profile::Profile,
    sim::{self, parse_fault, Faults, SimConfig},
};

/// Parse `HOST:PORT` or `HOST:FIRST-LAST` (IPv6 in brackets) into socket addresses.
pub fn parse_listen(text: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let bad = || {
        anyhow::anyhow!("--modbus `{text}` is not HOST:PORT or HOST:FIRST-LAST, e.g. 127.0.0.1:5020, [::1]:5020 or 127.0.0.1:20000-20499")
    };
    let (host, ports) = text.rsplit_once(':').ok_or_else(bad)?;
    let (first, last) = if let Some((a, b)) = ports.split_once('-') {
        (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        )
    } else {
        let p = ports.parse::<u16>().map_err(|_| bad())?;
        (p, p)
    };
    if last < first {
        return Err(bad());
    }
    (first..=last)
        .map(|p| {
            format!("{host}:{p}")
                .parse::<SocketAddr>()
                .map_err(|_| bad())
        })
        .collect()
}

/// `--rtu`: a serial port path (19200 8E1) or an `rtu://` URL with baud and frame.
fn serial_port(text: &str) -> anyhow::Result<crate::target::Target> {
    let url = if text.contains("://") {
        text.to_string()
    } else {
        format!("rtu://{text}")
    };
    let t: crate::target::Target = url.parse().map_err(|e| anyhow::anyhow!("--rtu: {e}"))?;
    if LineSettings::of(&t).is_none() {
        anyhow::bail!(
            "--rtu {text}: give a serial port, e.g. /dev/ttyUSB1 or rtu:///dev/pts/3?frame=8N1"
        );
    }
    Ok(t)
}

/// Run `sim`.
pub async fn run(ctx: &Ctx, args: &SimArgs) -> anyhow::Result<Outcome> {
    let profile = Profile::load(&args.profile)?;
    let mut listen = Vec::new();
    if !args.no_modbus {
        for m in &args.modbus {
            listen.extend(parse_listen(m)?);
        }
        if args.modbus.is_empty() && args.rtu.is_empty() && args.rtu_tcp.is_empty() {
            listen.extend(parse_listen("127.0.0.1:5020")?);
        }
    }
    if args.record.is_some() && !args.rtu.is_empty() {
        anyhow::bail!("--record records TCP connections (Modbus TCP and --rtu-tcp); a serial port's traffic is not recorded yet. Drop --record, or serve RTU over TCP with --rtu-tcp 127.0.0.1:4001 and record that");
    }
    let serial: Vec<crate::target::Target> = args
        .rtu
        .iter()
        .map(|r| serial_port(r))
        .collect::<anyhow::Result<_>>()?;
    let rtu = serial
        .iter()
        .filter_map(|t| LineSettings::of(t).map(|(p, l)| (p.to_string(), l)))
        .collect();
    let mut rtu_tcp = Vec::new();
    for a in &args.rtu_tcp {
        rtu_tcp.extend(parse_listen(a)?);
    }
    let ua_addr = match &args.opcua {
        Some(a) => {
            let v = parse_listen(a)?;
            if v.len() != 1 {
                anyhow::bail!("--opcua {a}: give one address, e.g. 127.0.0.1:4840");
            }
            Some(v[0])
        }
        None => None,
    };
    for (flag, a) in listen
        .iter()
        .map(|a| ("--modbus", a))
        .chain(rtu_tcp.iter().map(|a| ("--rtu-tcp", a)))
        .chain(ua_addr.iter().map(|a| ("--opcua", a)))
    {
        if !a.ip().is_loopback() && !args.allow_remote {
            anyhow::bail!("{flag} {a} is not a loopback address: the simulator would answer anyone on that network. Use 127.0.0.1 or [::1], or add --allow-remote if that is really what you want");
        }
    }
    let units = crate::target::parse_units(&args.units)?;
    let mut faults = Faults::default();
    for f in &args.faults {
        parse_fault(&mut faults, f)?;
    }
    if ua_addr.is_none() && (faults.bad_status.is_some() || faults.session_timeout.is_some()) {
        anyhow::bail!("--fault bad-status and session-timeout act on OPC UA only, and this simulator serves Modbus only; add --opcua 127.0.0.1:4840");
    }
    let record = match &args.record {
        Some(p) => Some(crate::capture::writer::Recorder::create(p).map_err(|e| {
            anyhow::anyhow!("--record {}: cannot create the file: {e}", p.display())
        })?),
        None => None,
    };
    let handle = sim::start(SimConfig {
        profile: profile.clone(),
        listen,
        rtu,
        rtu_tcp,
        units: units.clone(),
        faults,
        seed: args.seed,
        record: record.clone(),
    })
    .await?;
    let ua = match ua_addr {
        Some(a) => {
            let ua = sim::opcua::start(std::sync::Arc::clone(&handle.state), a, &profile).await?;
            if ua.nodes == 0 {
                anyhow::bail!("{} has no points with `node`: nothing to serve over OPC UA; add node = \"ns={};s=NAME\" to the points", profile.source, ua.ns);
            }
            Some(ua)
        }
        None => None,
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "plcprobe sim: \"{}\", {} points, unit(s) {}, faults: {}",
            profile.device.name,
            profile.points.len(),
            args.units,
            if args.faults.is_empty() {
                "none".to_string()
            } else {
                args.faults.join(" ")
            }
        )?;
        for a in &handle.addrs {
            writeln!(out, "listening on modbus://{a}")?;
        }
        for t in &serial {
            writeln!(out, "listening on {}", t.with_unit(units[0]).url())?;
        }
        for a in &handle.rtu_tcp_addrs {
            writeln!(out, "listening on rtu+tcp://{a}")?;
        }
        if let Some(ua) = &ua {
            writeln!(
                out,
                "listening on opc.tcp://{} ({} nodes in ns={} {})",
                ua.addr,
                ua.nodes,
                ua.ns,
                sim::opcua::NAMESPACE_URI
            )?;
        }
        out.flush()?;
    }
    let ctrl_c = tokio::signal::ctrl_c();
    match args.duration {
        Some(d) => {
            tokio::select! {
                () = tokio::time::sleep(d) => {}
                _ = ctrl_c => {}
            }
        }
        None => {
            let _ = ctrl_c.await;
        }
    }
    if !ctx.quiet {
        eprintln!(
            "plcprobe sim: stopped after {} requests",
            handle
                .state
                .requests
                .load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    drop(ua);
    if let (Some(rec), Some(path)) = (&record, &args.record) {
        drop(handle);
        let (n, err) = rec.status();
        if let Some(e) = err {
            anyhow::bail!(
                "--record {}: writing failed after {n} packets: {e}",
                path.display()
            );
        }
        if !ctx.quiet {
            eprintln!("plcprobe sim: recorded {n} packets to {}", path.display());
        }
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("127.0.0.1:5020").unwrap().len(), 1);
        assert_eq!(parse_listen("127.0.0.1:20000-20499").unwrap().len(), 500);
        assert_eq!(parse_listen("[::1]:0").unwrap()[0].to_string(), "[::1]:0");
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen("127.0.0.1:9-1").is_err());
    }

    #[test]
    fn unit_lists() {
        assert_eq!(crate::target::parse_units("1").unwrap(), vec![1]);
        assert_eq!(
            crate::target::parse_units("1-3,7").unwrap(),
            vec![1, 2, 3, 7]
        );
        assert!(crate::target::parse_units("0-300").is_err());
        assert!(crate::target::parse_units("x").is_err());
    }
}
