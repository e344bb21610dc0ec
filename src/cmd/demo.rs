//! `demo`: the main job on an embedded default. Starts the simulator on an ephemeral loopback
//! port in this process, reads the demo line's profile, then polls it for a few seconds with one
//! fault injected (5% of requests answered 0x06 Server Device Busy) and prints the statistics.
//! Exits 0 when the demo itself worked, whatever the injected fault did.

use std::{io::Write as _, time::Duration};

use super::{
    plan::{read_columns, read_row, ReadPlan},
    poll::{run_poll, PollJob},
    Ctx, Outcome,
};
use crate::{
    cli::DemoArgs,
    profile::{Profile, DEMO_PROFILE},
    report::write_rows,
    sim::{self, Faults, SimConfig},
    target::Target,
    transport::modbus::ModbusLink,
};

/// Run `demo`.
pub async fn run(ctx: &Ctx, args: &DemoArgs) -> anyhow::Result<Outcome> {
    let profile = Profile::parse("demo-line.toml (built in)", DEMO_PROFILE)?;
    let handle = sim::start(SimConfig {
        profile: profile.clone(),
        listen: vec!["127.0.0.1:0".parse()?],
        units: vec![1],
        faults: Faults::default(),
        seed: 7,
    })
    .await?;
    let addr = handle.addrs[0];
    let target: Target = format!("modbus://{addr}/1").parse()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "plcprobe demo: simulated \"{}\" on {}",
        profile.device.name,
        target.url()
    )?;
    writeln!(out, "\n1. Read every point of the profile once (`plcprobe read --profile profiles/demo-line.toml {}`):", target.url())?;
    out.flush()?;

    let plan = ReadPlan::from_profile(&profile);
    let mut link = ModbusLink::new(&target, ctx.timeout)?;
    let (results, _) = plan.execute(&mut link).await;
    let mut rows = crate::report::Rows::new(&read_columns(true, false));
    for (item, r) in plan.items.iter().zip(&results) {
        rows.push(read_row(&plan, item, r, None));
    }
    write_rows(&mut out, ctx.format, &rows, ctx.color)?;
    if let Some(bad) = results.iter().find_map(|r| r.value.as_ref().err()) {
        anyhow::bail!(
            "the demo's clean read failed ({}); this is a bug in plcprobe",
            bad.status()
        );
    }

    let fault = "exception=0x06@0.05";
    let mut faults = Faults::default();
    sim::parse_fault(&mut faults, fault)?;
    handle.state.set_faults(faults);
    writeln!(
        out,
        "\n2. Poll it every 50 ms for {} with a fault injected in the simulator (--fault {fault}):",
        humantime::format_duration(args.poll_for)
    )?;
    out.flush()?;
    drop(out);
    let job = PollJob {
        target: &target,
        plan: &plan,
        interval: Duration::from_millis(50),
        count: None,
        duration: Some(args.poll_for),
        rows: None,
        progress: ctx.progress_bar(args.poll_for.as_millis() as u64 / 50, "polling"),
    };
    let (stats, connects) = run_poll(ctx, job).await?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", stats.to_text(&target, connects))?;
    let busy = stats.exceptions.get(&6).copied().unwrap_or(0);
    writeln!(
        out,
        "\nThe simulator answered {busy} of {} requests with 0x06 Server Device Busy, as injected; every request is accounted for.\nNext: `plcprobe sim profiles/demo-line.toml` in one terminal and `plcprobe read modbus://127.0.0.1:5020/1 hr:100+2 --guess` in another.",
        stats.sent
    )?;
    out.flush()?;
    if stats.sent != stats.received + stats.error_count() || stats.received == 0 {
        anyhow::bail!("the demo poll lost track of requests; this is a bug in plcprobe");
    }
    Ok(Outcome::Ok)
}
