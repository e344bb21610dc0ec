//! `demo`: the whole story on an embedded default, in one process, on loopback only.
//!
//! 1. Three simulated devices of the demo line (press, conveyor, tank) on ephemeral ports.
//! 2. A read of the press, and a known-good baseline snapshot of each device.
//! 3. The line drifts: the press's oil temperature beyond its tolerance, the glue tank's level
//!    out of its range, and a fault on the conveyor (20% of requests answer 0x06 Server Device
//!    Busy).
//! 4. `check` of the three devices against their baselines.
//! 5. Everything the simulators answered was recorded (`sim --record`): `decode` of that
//!    capture shows the same story from the wire: transactions, exceptions, response times.
//!    `demo-report.html` and `demo-report.md` (check and decode) and `demo-capture.pcapng`
//!    are written to the current folder (or `--out`), with the verdict printed.
//!
//! Exits 0 when the demo itself worked, whatever verdict the drifted line gets.

use std::{io::Write as _, path::PathBuf, time::Duration};

use super::{snapshot, Ctx, Outcome};
use crate::{
    check::{
        output::{results_doc, write_report},
        plan::{Plan, PlanDevice, Thresholds},
        run::{run_plan, summary},
    },
    cli::DemoArgs,
    device::Device,
    profile::{Profile, DEMO_PROFILE},
    report::{verdict_name, write_rows, Rows},
    sim::{self, Faults, SimConfig, SimHandle},
    target::Target,
};

const DEVICES: [&str; 3] = ["press", "conveyor", "tank"];

/// Run `demo`.
pub async fn run(ctx: &Ctx, args: &DemoArgs) -> anyhow::Result<Outcome> {
    let work = tempfile::tempdir()?;
    let profile_path = work.path().join("demo-line.toml");
    std::fs::write(&profile_path, DEMO_PROFILE)?;
    let profile = Profile::load(&profile_path)?;
    let out_dir = args.out.clone().unwrap_or_else(|| PathBuf::from("."));
    if !out_dir.is_dir() {
        anyhow::bail!(
            "--out {} is not a folder; create it first",
            out_dir.display()
        );
    }

    let capture_tmp = work.path().join("demo-capture.pcapng");
    let recorder = crate::capture::writer::Recorder::create(&capture_tmp)?;
    let mut sims: Vec<SimHandle> = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    for (i, _) in DEVICES.iter().enumerate() {
        let h = sim::start(SimConfig {
            profile: profile.clone(),
            listen: vec!["127.0.0.1:0".parse()?],
            rtu: Vec::new(),
            rtu_tcp: Vec::new(),
            units: vec![1],
            faults: Faults::default(),
            seed: 7 + i as u64,
            record: Some(recorder.clone()),
        })
        .await?;
        targets.push(format!("modbus://{}/1", h.addrs[0]).parse()?);
        sims.push(h);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "plcprobe demo: a simulated line of three devices (\"{}\" profile) on loopback:",
        profile.device.name
    )?;
    for (name, t) in DEVICES.iter().zip(&targets) {
        writeln!(out, "  {name:<9} {}", t.url())?;
    }

    writeln!(
        out,
        "\n1. Read the press once (`plcprobe read --profile profiles/demo-line.toml {}`):",
        targets[0].url()
    )?;
    let mut press = Device::new(&targets[0], &ctx.device)?;
    press.select_profile(&profile, "read")?;
    press.round().await;
    let mut rows = Rows::new(&press.read_columns(false));
    press.read_rows(false, false, &mut rows, &mut Vec::new())?;
    write_rows(&mut out, ctx.format, &rows, ctx.color)?;
    let results = press.results();
    press.close().await;
    if let Some(bad) = results.iter().find_map(|r| r.value.as_ref().err()) {
        anyhow::bail!(
            "the demo's clean read failed ({}); this is a bug in plcprobe",
            bad.status()
        );
    }

    writeln!(out, "\n2. Take a known-good baseline of each device (`plcprobe snapshot … -o baselines/NAME.json`):")?;
    let baselines = work.path().join("baselines");
    std::fs::create_dir_all(&baselines)?;
    let mut devices = Vec::new();
    for (name, t) in DEVICES.iter().zip(&targets) {
        let snap = snapshot::take(ctx, t, &profile)
            .await?
            .map_err(|e| anyhow::anyhow!("demo baseline of {name}: {e}"))?;
        let path = baselines.join(format!("{name}.json"));
        snap.save(&path)?;
        writeln!(
            out,
            "  {name:<9} {} points, firmware revision {}",
            snap.points.len(),
            snap.identity
                .as_ref()
                .and_then(|i| i.get("revision"))
                .map_or("?", String::as_str)
        )?;
        devices.push(PlanDevice {
            name: (*name).to_string(),
            target: t.clone(),
            profile: profile_path.clone(),
            baseline: Some(path),
            thresholds: Thresholds {
                timeout: Duration::from_millis(500),
                poll: 5,
                rate: 100.0,
                ..Thresholds::default()
            },
            line: 0,
        });
    }

    writeln!(out, "\n3. The line drifts:")?;
    sims[0].state.set_value("press.temperature", 47.9);
    writeln!(
        out,
        "  press     oil temperature 42.3 → 47.9 °C (tolerance 1.5)"
    )?;
    let mut faults = Faults::default();
    sim::parse_fault(&mut faults, "exception=0x06@0.2")?;
    sims[1].state.set_faults(faults);
    writeln!(
        out,
        "  conveyor  20% of requests answered 0x06 Server Device Busy (--fault exception=0x06@0.2)"
    )?;
    sims[2].state.set_value("tank.level", 97.5);
    writeln!(out, "  tank      glue level 62 → 97.5 % (range 5 … 95)")?;

    writeln!(
        out,
        "\n4. The health check (`plcprobe check plans/line1.toml --report demo-report.html`):"
    )?;
    out.flush()?;
    drop(out);
    let plan = Plan {
        path: work.path().join("line1.toml"),
        concurrency: 8,
        history: None,
        devices,
    };
    let started = super::now_rfc3339();
    let t0 = std::time::Instant::now();
    let pb = ctx.progress_bar(plan.devices.len() as u64, "checking");
    let checked = run_plan(&plan, false, &ctx.device, &pb).await;
    pb.finish_and_clear();
    let verdict = checked
        .iter()
        .fold(Outcome::Ok, |o, d| o.worst(d.outcome()));
    let doc = results_doc(&plan, &checked, verdict, &started, t0.elapsed())?;
    let html = out_dir.join("demo-report.html");
    let md = out_dir.join("demo-report.md");

    // The simulators recorded every request and answer: stop them (closing the connections
    // writes their FIN), then decode the capture.
    let ports: Vec<u16> = sims.iter().map(|h| h.addrs[0].port()).collect();
    drop(sims);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let capture = out_dir.join("demo-capture.pcapng");
    crate::fsutil::write_atomic(&capture, &std::fs::read(&capture_tmp)?)?;
    let decoded = crate::decode::pipeline::decode_file(
        &capture,
        crate::capture::Config {
            modbus_ports: ports.clone(),
            ..crate::capture::Config::default()
        },
        None,
        crate::decode::pipeline::Mode::Summary,
        ctx.format,
        &mut std::io::sink(),
        &ctx.progress_bar(0, "decoding"),
    )?;
    let dec_doc = crate::decode::summary::summary_doc(&capture, &decoded);
    let docs = [doc, dec_doc];
    write_report(&html, &docs)?;
    write_report(&md, &docs)?;

    let mut out = std::io::stdout().lock();
    for d in &checked {
        writeln!(out, "  {:<8} {:<9} {}", d.status, d.name, d.problem_text())?;
    }
    let dd = &docs[1];
    writeln!(
        out,
        "\n5. What the wire showed (`plcprobe decode demo-capture.pcapng`): {} packets recorded by the simulators",
        dd["capture"]["packets"]
    )?;
    for dev in dd["devices"].as_array().into_iter().flatten() {
        let port = dev["device"]
            .as_str()
            .and_then(|d| d.rsplit_once(':'))
            .and_then(|(_, p)| p.split('/').next())
            .and_then(|p| p.parse::<u16>().ok());
        let name = port
            .and_then(|p| ports.iter().position(|q| *q == p))
            .map_or("?", |i| DEVICES[i]);
        let exc: Vec<String> = dev["exceptions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{} × 0x{:02X} {}",
                    e["count"],
                    e["code"].as_u64().unwrap_or(0),
                    e["name"].as_str().unwrap_or("")
                )
            })
            .collect();
        writeln!(
            out,
            "  {name:<9} {} requests, {} answered, response p50 {} ms / p95 {} ms{}",
            dev["requests"],
            dev["answered"],
            dev["rt_ms"]["p50"],
            dev["rt_ms"]["p95"],
            if exc.is_empty() {
                String::new()
            } else {
                format!(", {}", exc.join(", "))
            }
        )?;
    }
    writeln!(
        out,
        "\nVerdict: PLCPROBE {} ({})",
        verdict_name(verdict),
        summary(&checked)
    )?;
    writeln!(
        out,
        "Report:  {}\n         {}\nCapture: {} (opens in Wireshark)",
        html.display(),
        md.display(),
        capture.display()
    )?;
    writeln!(out, "\nNext: `plcprobe sim profiles/demo-line.toml` in one terminal, `plcprobe read modbus://127.0.0.1:5020/1 hr:200+2 --guess` in another.")?;
    out.flush()?;
    // The drift was staged: each device must show exactly what was done to it.
    let expect = [
        ("press", "press.temperature"),
        ("conveyor", "0x06"),
        ("tank", "tank.level"),
    ];
    for ((name, needle), d) in expect.iter().zip(&checked) {
        if d.name != *name || !d.problems.iter().any(|p| p.contains(needle)) {
            anyhow::bail!("the demo check missed the staged problem on {name} ({:?}); this is a bug in plcprobe", d.problems);
        }
    }
    // The wire must show the conveyor's 0x06 answers too.
    let conveyor = format!("127.0.0.1:{}/1", ports[1]);
    let busy = docs[1]["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["device"] == conveyor.as_str())
        .flat_map(|d| d["exceptions"].as_array().cloned().unwrap_or_default())
        .any(|e| e["code"] == 6);
    if !busy {
        anyhow::bail!(
            "the demo capture does not show the conveyor's 0x06 answers; this is a bug in plcprobe"
        );
    }
    Ok(Outcome::Ok)
}
