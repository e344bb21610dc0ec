//! plcprobe's entry point: parse arguments, run the command on a single-threaded tokio runtime,
//! print an error once, and map the outcome to a monitoring-plugin exit code (docs/DESIGN.md §6).
//! A single-threaded runtime is deliberate: a request/response loop is faster on one core than
//! hopping between worker threads (see docs/PERFORMANCE.md).

use std::process::ExitCode;

use clap::Parser as _;
use plcprobe::{cli::Cli, outcome::Outcome};

fn main() -> ExitCode {
    // async-opcua asks the environment for OPCUA_TRACE_LOCKS on every lock it takes (a
    // `getenv`, about 1% of an OPC UA read on each side) unless the variable says yes, which it
    // then remembers. Saying yes costs nothing here: tracing is compiled out (Cargo.toml,
    // `max_level_off`), so no lock is ever traced. Set before any thread exists.
    if std::env::var_os("OPCUA_TRACE_LOCKS").is_none() {
        std::env::set_var("OPCUA_TRACE_LOCKS", "1");
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // Help and version are not errors; bad usage is UNKNOWN (3), not clap's 2.
            return if e.use_stderr() {
                ExitCode::from(Outcome::Unknown.code() as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("plcprobe: error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let outcome = match runtime.block_on(plcprobe::run(cli)) {
        Ok(o) => o,
        Err(e) if is_broken_pipe(&e) => Outcome::Ok,
        Err(e) => {
            eprintln!("plcprobe: error: {e:#}");
            // A failure that knows its verdict (an unreachable server is CRITICAL) keeps it.
            e.downcast_ref::<plcprobe::outcome::Fail>()
                .map_or(Outcome::Unknown, |f| f.outcome)
        }
    };
    ExitCode::from(outcome.code() as u8)
}

/// `plcprobe … | head` closing the pipe early is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
