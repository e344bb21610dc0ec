//! What a run comes to: the monitoring-plugin verdict every command returns ([`Outcome`], its
//! discriminant is the exit code, docs/DESIGN.md §6), a failure that carries its verdict
//! ([`Fail`]), and the one way a problem is told on stderr ([`warn`]). Every layer may use it;
//! it uses nothing of the crate.

/// Monitoring-plugin verdicts (docs/DESIGN.md §6); the discriminant is the exit code.
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

/// Print a one-paragraph problem to stderr, prefixed like every message of the tool.
pub fn warn(msg: impl std::fmt::Display) {
    eprintln!("plcprobe: {msg}");
}

/// A failure that carries its exit outcome (docs/DESIGN.md §6), e.g. CRITICAL for an unreachable
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
