//! plcprobe: a toolkit for diagnosing SCADA/PLC systems: Modbus and OPC UA reads, polls, writes,
//! scans, browse and watch; a simulator with fault injection; snapshots, diffs and health checks;
//! capture decoding; reports.
//!
//! The binary (`src/main.rs`) only parses arguments and maps the [`outcome::Outcome`] to an exit
//! code; everything else lives here so the integration tests and benchmarks use the same code.
//! The layers, bottom up: pure codecs (`proto`) and the capture pipeline (`capture`); sockets
//! (`transport`); models (`profile`, `snapshot`, `check`) and output (`report`); the device
//! layer (`device`) and the simulator (`sim`); the command line (`cli`) and the commands (`cmd`).
//! docs/ARCHITECTURE.md draws them; `scripts/check-layers` keeps them pointing down.

pub mod bundle;
pub mod capture;
pub mod check;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod decode;
pub mod device;
pub mod fsutil;
pub mod history;
pub mod lock;
pub mod outcome;
pub mod profile;
pub mod proto;
pub mod report;
pub mod sim;
pub mod snapshot;
pub mod target;
pub mod transport;

use cli::{Cli, Command};
use cmd::Ctx;
use outcome::Outcome;

/// Run a parsed command line to its outcome.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let ctx = Ctx::from_args(&cli.global)?;
    // Many devices (or simulated ones) mean many sockets: lift the soft open-file limit to the
    // hard one, as a laptop's default 1024 is less than 1000 devices plus their connections.
    if matches!(
        cli.command,
        Command::Sim(_) | Command::Check(_) | Command::Read(_)
    ) {
        let _ = rlimit::increase_nofile_limit(u64::MAX);
    }
    if ctx.format == report::Format::Nagios
        && !matches!(cli.command, Command::Check(_) | Command::Trend(_))
    {
        anyhow::bail!("--format nagios is the output of `check` and `trend`; other commands print table, json, jsonl or csv");
    }
    match &cli.command {
        Command::Read(a) => cmd::read::run(&ctx, a).await,
        Command::Poll(a) => cmd::poll::run(&ctx, a).await,
        Command::Write(a) => cmd::write::run(&ctx, a).await,
        Command::Snapshot(a) => cmd::snapshot::run(&ctx, a).await,
        Command::Diff(a) => cmd::diff::run(&ctx, a).await,
        Command::Check(a) => cmd::check::run(&ctx, a).await,
        Command::Report(a) => cmd::report::run(&ctx, a).await,
        Command::History(a) => cmd::history::run(&ctx, a).await,
        Command::Trend(a) => cmd::trend::run(&ctx, a).await,
        Command::Bundle(a) => cmd::bundle::run(&ctx, a),
        Command::Decode(a) => cmd::decode::run(&ctx, a),
        Command::Capture(a) => cmd::capture::run(&ctx, a).await,
        Command::Sim(a) => cmd::sim::run(&ctx, a).await,
        Command::Demo(a) => cmd::demo::run(&ctx, a).await,
        Command::Browse(a) => cmd::browse::run(&ctx, a).await,
        Command::Watch(a) => cmd::watch::run(&ctx, a).await,
        Command::Scan(a) => cmd::scan::run(&ctx, a).await,
        Command::Trust(a) => cmd::trust::run(&ctx, a).await,
        Command::Completions(a) => Ok(cmd::completions::run(a)),
    }
}
