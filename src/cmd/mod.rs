//! One module per command. Each turns its clap Args into what the layers below take (a
//! [`Device`](crate::device::Device), a profile, a check plan…), runs it and returns an
//! [`Outcome`]; `main` maps that to the exit code (docs/DESIGN.md §6). Commands hold no protocol
//! of their own: the device layer does. [`Ctx`] is the global flags, resolved once.

pub mod browse;
pub mod bundle;
pub mod capture;
pub mod check;
pub mod completions;
pub mod decode;
pub mod demo;
pub mod diff;
pub mod history;
pub mod poll;
pub mod read;
pub mod report;
pub mod scan;
pub mod sim;
pub mod snapshot;
pub mod trend;
pub mod trust;
pub mod watch;
pub mod write;

use std::io::IsTerminal;

use crate::{
    cli::{ColorChoice, GlobalArgs, PointsArgs, TypeOrderArgs},
    device::{opcua::UaSettings, Settings},
    proto::modbus::{DataType, WordOrder},
    report::{write_rows, Format, Rows},
    target::Target,
};
pub use crate::{
    clock::now_rfc3339,
    outcome::{warn, Fail, Outcome},
};

/// Settings every command shares, resolved from the global flags and the environment.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Output format.
    pub format: Format,
    /// Colour on stdout.
    pub color: bool,
    /// `-q`: only problems.
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
    /// Progress bars allowed (stderr is a terminal and not --no-progress).
    pub progress: bool,
    /// How devices are opened: timeout and OPC UA session settings.
    pub device: Settings,
}

impl Ctx {
    /// Resolve global flags against the terminal and `NO_COLOR`; a bad `--security` or two
    /// identities are refused here, before anything is sent.
    pub fn from_args(g: &GlobalArgs) -> anyhow::Result<Ctx> {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match g.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && std::io::stdout().is_terminal(),
        };
        if color {
            // comfy-table styles through crossterm, which drops colour by itself when NO_COLOR
            // is set: `--color always` outranks NO_COLOR (docs/DESIGN.md §1).
            crossterm::style::force_color_output(true);
        }
        let ua = &g.ua;
        let device = Settings {
            timeout: g.timeout,
            serial: crate::transport::rtu::SerialOptions {
                echo: g.serial.echo,
                rts: g.serial.rts,
            },
            ua: UaSettings::new(
                ua.security.as_deref(),
                ua.user.clone(),
                ua.cert.clone(),
                ua.key.clone(),
                ua.trust_server,
            )?,
        };
        Ok(Ctx {
            format: g.format,
            color,
            quiet: g.quiet > 0,
            verbose: g.verbose,
            progress: !g.no_progress && std::io::stderr().is_terminal(),
            device,
        })
    }

    /// A progress bar on stderr when allowed, else a hidden one.
    pub fn progress_bar(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let pb = indicatif::ProgressBar::new(len);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} {elapsed}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_message(what.to_string());
        pb
    }
}

/// The table of a command with a verdict (`diff`, `check`): the rows, if any, then the verdict
/// line, which `-q` leaves out when all is well.
pub fn write_table_verdict(
    out: &mut dyn std::io::Write,
    ctx: &Ctx,
    rows: &Rows,
    outcome: Outcome,
    verdict: impl FnOnce() -> String,
) -> std::io::Result<()> {
    if !rows.rows.is_empty() {
        write_rows(out, Format::Table, rows, ctx.color)?;
    }
    if !(ctx.quiet && outcome == Outcome::Ok) {
        writeln!(out, "{}", verdict())?;
    }
    Ok(())
}

/// `--type` and `--order`, parsed.
pub fn type_order(d: &TypeOrderArgs) -> anyhow::Result<(Option<DataType>, Option<WordOrder>)> {
    let ty = d.ty.as_deref().map(str::parse::<DataType>).transpose()?;
    let order = d
        .order
        .as_deref()
        .map(str::parse::<WordOrder>)
        .transpose()?;
    Ok((ty, order))
}

/// What `read` and `poll` read: devices, each with the points selected (a profile's, or the
/// addresses or nodes on the command line).
pub fn points_devices(ctx: &Ctx, args: &PointsArgs) -> anyhow::Result<Vec<crate::device::Device>> {
    let (mut targets, items) = crate::device::split_items(&args.items)?;
    let (ty, order) = type_order(&args.decode)?;
    let profile = args
        .profile
        .as_deref()
        .map(crate::profile::Profile::load)
        .transpose()?;
    if let Some(p) = &profile {
        let path = args.profile.as_deref().expect("loaded").display();
        if !items.is_empty() {
            anyhow::bail!(
                "give either --profile or addresses, not both (got {})",
                items.join(" ")
            );
        }
        if ty.is_some() || order.is_some() {
            anyhow::bail!("--type and --order do not apply with --profile: each point has its own type and order in {path}");
        }
        if targets.is_empty() {
            targets.push(p.device.target.clone().ok_or_else(|| {
                anyhow::anyhow!("{path} has no [device] target; give one on the command line, e.g. modbus://192.0.2.10/1")
            })?);
        }
    }
    if targets.is_empty() {
        anyhow::bail!("no target: start with one like modbus://192.0.2.10:502/1");
    }
    // Every device is built and its points selected before any traffic: a bad target or
    // address fails first.
    let devices = targets
        .iter()
        .map(|t: &Target| {
            let mut d = crate::device::Device::new(t, &ctx.device)?;
            match &profile {
                Some(p) => d.select_profile(p, "read")?,
                None => d.select_items(&items, ty, order)?,
            }
            Ok(d)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // One table holds one kind of row: devices that read into other columns (Modbus beside
    // OPC UA) are read apart.
    if devices
        .windows(2)
        .any(|w| w[0].read_columns(false) != w[1].read_columns(false))
    {
        anyhow::bail!(
            "{} and {} read into different columns; read Modbus devices and OPC UA servers in separate commands",
            devices[0].target(),
            devices
                .iter()
                .find(|d| d.read_columns(false) != devices[0].read_columns(false))
                .expect("one differs")
                .target()
        );
    }
    Ok(devices)
}
