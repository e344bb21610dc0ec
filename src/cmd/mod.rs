//! One module per command. Each turns its clap Args into a plan, runs it and returns an
//! [`Outcome`]; `main` maps that to the exit code (DESIGN.md §6).

pub mod check;
pub mod completions;
pub mod decode;
pub mod demo;
pub mod diff;
pub mod opcua;
pub mod plan;
pub mod poll;
pub mod read;
pub mod report;
pub mod scan;
pub mod sim;
pub mod snapshot;
pub mod write;

use std::{io::IsTerminal, time::Duration};

use crate::{
    cli::{ColorChoice, GlobalArgs},
    report::Format,
};

/// Monitoring-plugin verdicts (DESIGN.md §6); the discriminant is the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// 0: everything answered as expected.
    Ok = 0,
    /// 1: partial: some reads failed.
    Warning = 1,
    /// 2: device unreachable, Modbus exception, check failed.
    Critical = 2,
    /// 3: bad usage, unreadable input, internal error.
    Unknown = 3,
}

impl Outcome {
    /// Process exit code.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The worse of two outcomes.
    #[must_use]
    pub fn worst(self, other: Outcome) -> Outcome {
        self.max(other)
    }
}

/// Settings every command shares, resolved from the global flags and the environment.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Output format.
    pub format: Format,
    /// Colour on stdout.
    pub color: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// `-q`: only problems.
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
    /// Progress bars allowed (stderr is a terminal and not --no-progress).
    pub progress: bool,
    /// OPC UA session flags.
    pub ua: crate::cli::UaArgs,
}

impl Ctx {
    /// Resolve global flags against the terminal and `NO_COLOR`.
    pub fn from_args(g: &GlobalArgs) -> Ctx {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match g.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && std::io::stdout().is_terminal(),
        };
        Ctx {
            format: g.format,
            color,
            timeout: g.timeout,
            quiet: g.quiet > 0,
            verbose: g.verbose,
            progress: !g.no_progress && std::io::stderr().is_terminal(),
            ua: g.ua.clone(),
        }
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

/// RFC 3339 UTC timestamp with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Print a one-paragraph problem to stderr, prefixed like every message of the tool.
pub fn warn(msg: impl std::fmt::Display) {
    eprintln!("plcprobe: {msg}");
}

/// A failure that carries its exit outcome (DESIGN.md §6), e.g. CRITICAL for an unreachable
/// server, UNKNOWN for an untrusted certificate: `main` prints the message once and exits with
/// the outcome's code.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct Fail {
    /// Exit outcome.
    pub outcome: Outcome,
    /// One paragraph: what failed, on which device or file, and what to do.
    pub msg: String,
}

impl Fail {
    /// CRITICAL (2): the device is unreachable or refused.
    pub fn critical(msg: impl Into<String>) -> Fail {
        Fail {
            outcome: Outcome::Critical,
            msg: msg.into(),
        }
    }

    /// UNKNOWN (3): bad usage or input, or a decision the user has to make.
    pub fn unknown(msg: impl Into<String>) -> Fail {
        Fail {
            outcome: Outcome::Unknown,
            msg: msg.into(),
        }
    }
}
