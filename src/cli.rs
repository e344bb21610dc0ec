//! Command-line grammar (clap derive): the global flags of docs/DESIGN.md §1 and one Args struct per
//! command. Nothing here does I/O; commands turn their Args into a config and run it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report::Format;

/// Global flags, shared by every command.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// More detail (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only problems and the verdict; nothing on success.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub format: Format,
    /// Colour: auto (on a terminal, unless `NO_COLOR` is set), always or never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    /// Time to wait for a connection or an answer, e.g. 500ms, 2s.
    #[arg(long, default_value = "1s", value_parser = parse_duration, global = true)]
    pub timeout: std::time::Duration,
    /// Never show progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// OPC UA session settings.
    #[command(flatten)]
    pub ua: UaArgs,
    /// Serial adapter settings.
    #[command(flatten)]
    pub serial: SerialArgs,
}

/// How a serial adapter is driven (rtu:// targets), accepted by every command.
#[derive(Debug, Args, Clone, Copy, Default)]
#[command(next_help_heading = "Serial (rtu://)")]
pub struct SerialArgs {
    /// The adapter echoes what it sends (RS-485 local echo): read and check the echo, then the answer.
    #[arg(long, global = true)]
    pub echo: bool,
    /// Raise RTS while sending, for adapters without automatic direction control.
    #[arg(long, global = true)]
    pub rts: bool,
}

/// OPC UA session settings (opc.tcp:// targets), accepted by every command.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "OPC UA")]
pub struct UaArgs {
    /// Security policy and mode, e.g. None, Basic256Sha256,SignAndEncrypt,
    /// `Aes128_Sha256_RsaOaep,Sign`, `Aes256_Sha256_RsaPss,SignAndEncrypt` (default None).
    #[arg(long, global = true, value_name = "POLICY,MODE")]
    pub security: Option<String>,
    /// User name; the password comes from `PLCPROBE_PASSWORD` or a prompt, never the command line.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// X.509 user certificate (DER or PEM) for a certificate identity; needs --key.
    #[arg(long, global = true, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, global = true, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Trust the server's certificate and keep it in the PKI folder's trusted list.
    #[arg(long, global = true)]
    pub trust_server: bool,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal unless `NO_COLOR` is set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

use crate::clock::parse_duration;

const AFTER_HELP: &str = "\
Targets: modbus://HOST[:PORT][/UNIT]  rtu:///dev/ttyUSB0?baud=19200&frame=8E1&unit=3
         rtu+tcp://HOST:PORT[/UNIT]  opc.tcp://HOST[:PORT]
Addresses: hr:100  ir:0..10 (end exclusive)  co:7+8  di:0  or Modicon 40101 (= hr:100), 30001, 00001
Exit codes: 0 OK, 1 WARNING, 2 CRITICAL (unreachable, exception), 3 UNKNOWN (bad usage or input)

Start here:  plcprobe demo";

/// plcprobe: diagnose Modbus and OPC UA devices: read, poll, scan, simulate, check.
///
/// Read-only unless you run `write` with --allow-write.
#[derive(Debug, Parser)]
#[command(name = "plcprobe", version, about, long_about = None, after_help = AFTER_HELP, max_term_width = 110)]
pub struct Cli {
    /// Global flags.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read registers, coils or a profile's points once, decoded.
    #[command(after_help = "Examples:
  plcprobe read modbus://127.0.0.1:5020/1 hr:0..10
  plcprobe read modbus://127.0.0.1:5020/1 40101 --type f32 --order cdab
  plcprobe read modbus://127.0.0.1:5020/1 hr:100+2 --guess
  plcprobe read --profile profiles/demo-line.toml
  plcprobe read modbus://10.0.0.5/1 modbus://10.0.0.6/1 hr:0+4   # several devices")]
    Read(ReadArgs),
    /// Read repeatedly with live link statistics; ends with ping-style statistics.
    #[command(after_help = "Examples:
  plcprobe poll modbus://127.0.0.1:5020/1 hr:0..10 --interval 100ms --count 50
  plcprobe poll modbus://127.0.0.1:5020/1 hr:100+2 --type f32 --duration 10m --format jsonl
  plcprobe poll --profile profiles/demo-line.toml --count 20
Ctrl-C stops and prints the statistics. Exit 0 if every request was answered, 1 if some failed,
2 if none was answered.")]
    Poll(PollArgs),
    /// Write one value or several (guarded: needs --allow-write); shows before and after.
    #[command(after_help = "Examples:
  plcprobe write modbus://127.0.0.1:5020/1 hr:5 1234 --allow-write
  plcprobe write modbus://127.0.0.1:5020/1 40101 87.5 --type f32 --allow-write
  plcprobe write modbus://127.0.0.1:5020/1 hr:10 1,2,3 --allow-write      # FC16
  plcprobe write modbus://127.0.0.1:5020/1 co:0 on --allow-write          # FC05
One register uses FC06 (one coil FC05) unless --fc16; several use FC16 (FC15).")]
    Write(WriteArgs),
    /// Read every point of a profile into a snapshot file (a known-good baseline).
    #[command(after_help = "Examples:
  plcprobe snapshot modbus://10.0.0.5/1 --profile profiles/press.toml -o baselines/press.json
  plcprobe snapshot --profile profiles/demo-line.toml -o base.json      # target from the profile
The file is written atomically: a failed or killed run leaves the previous baseline as it was.
Exit 0 all points read, 1 some unreadable (recorded), 2 device unreachable (nothing written).")]
    Snapshot(SnapshotArgs),
    /// Compare a snapshot, or a live read of the baseline's points, with a baseline.
    #[command(after_help = "Examples:
  plcprobe diff baselines/press.json                          # live, from the baseline's target
  plcprobe diff baselines/press.json modbus://10.0.0.5/1      # live, from another target
  plcprobe diff baselines/press.json today.json --format json
Verdicts: changed, type-changed, unreadable, missing, new, unchanged, ignored (volatile).
Exit 0 no drift, 1 drift on severity=\"warning\" points or some reads failed, 2 drift beyond
tolerance, identity (firmware) change or an exception.")]
    Diff(DiffArgs),
    /// The cron health check of a plan: reachability, latency, value limits, drift, error rate.
    #[command(after_help = "Examples:
  plcprobe check plans/line1.toml
  plcprobe check plans/line1.toml -q --report /var/lib/plcprobe/line1-$(date +%F).html
  plcprobe check plans/line1.toml --format nagios          # for Nagios/Icinga/Zabbix agents
  plcprobe check plans/line1.toml --prometheus /var/lib/node_exporter/plcprobe.prom
  plcprobe check plans/line1.toml --results results/line1.json   # input for `plcprobe report`
  plcprobe check plans/line1.toml -q --history line1.db          # every run into a history store
Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad plan, baseline from another profile, a
check of the same plan still running, a history store that is not one or is newer); 2 also
when the history database cannot be reached (the check's output is still printed).")]
    Check(CheckArgs),
    /// What is getting worse in a history store, and when it will cross a limit.
    #[command(after_help = "Examples:
  plcprobe trend line1.db                                   # every device, the last 30 days
  plcprobe trend line1.db --device press --since 30d --format json
  plcprobe trend line1.db --horizon 14d --format nagios     # WARNING: a limit within 14 days
Per device and point: Theil-Sen slope per day with its 95 % interval, Mann-Kendall test (a trend
when p < 0.01), the next limit (range, tolerance around the baseline, latency_warn/crit, error
rate warn/crit) and when the line reaches it. At least 12 runs over 1 hour per series.
Exit 0 OK, 1 a crossing projected within --horizon (or past a warning limit), 2 past a
critical limit, 3 nothing to judge or an unreadable store.")]
    Trend(TrendArgs),
    /// Render results of check/diff as Markdown, one self-contained HTML file, or JSON.
    #[command(after_help = "Examples:
  plcprobe report results/line1.json -o incident-4711.html
  plcprobe report results/*.json -o incident-4711.md
  plcprobe diff base.json --format json > d.json && plcprobe report d.json -o drift.html
The format follows the extension of -o: .html, .md or .json.")]
    Report(ReportArgs),
    /// The history store of check runs: backfill it from results files, list what it holds.
    #[command(after_help = "Examples:
  plcprobe history import line1.db results/*.json          # backfill from `check --results` files
  plcprobe history show line1.db --since 7d --device press
  plcprobe history import 'postgres://plcprobe@historian/plant' results/*.json
A path is an embedded SQLite file (created when missing); postgres://USER@HOST[:PORT]/DB a
PostgreSQL database (password from PGPASSWORD, ~/.pgpass or a prompt; never in the URL).
Exit 0 done, 2 database unreachable, 3 not a store, newer schema, bad results file.")]
    History(HistoryArgs),
    /// One evidence file for a ticket: report, results, the snapshots they name, captures, and a
    /// manifest with SHA-256 of each; or check one (--verify).
    #[command(after_help = "Examples:
  plcprobe bundle -o incident-4711.zip results.json drift.json excerpt.pcapng
  plcprobe bundle --verify incident-4711.zip
Inputs by content: results files (check --results, diff --format json, poll/decode --results),
snapshots, captures (pcap, pcapng, gzip). Baselines a check names and the snapshots a diff
compared come along (relative paths from the current folder, else the results file's folder).
Written atomically; an input that changes while it is copied is refused. --verify: exit 0 every
member matches MANIFEST.json, 2 a member missing, extra or modified, 3 not a bundle.")]
    Bundle(BundleArgs),
    /// Decode a capture (pcap, pcapng, .gz): devices, transactions, timings, failures, writes.
    #[command(after_help = "Examples:
  plcprobe decode line3-night.pcapng                    # summary: devices, transactions, errors, slowest
  plcprobe decode capture.pcap --transactions           # one row per request/response pair
  plcprobe decode capture.pcap --writes                 # who wrote what, where, when
  plcprobe decode capture.pcap --device 10.0.0.5/1 --format jsonl > tx.jsonl
  plcprobe decode opcua.pcapng --pdus                   # every PDU / OPC UA message, like tshark
  plcprobe decode gw.pcap --modbus-port 5020 --rtu-port 4001
  plcprobe decode night.pcapng --from 02:10 --to 02:20 -w excerpt.pcapng   # cut to the incident
  plcprobe decode night.pcapng --from 2026-11-27T02:10:00+01:00 --transactions
--from/--to: RFC 3339, or HH:MM[:SS[.frac]] in UTC on the capture's first day (the next day when
earlier than its first packet); [from, to). Modbus/TCP on port 502 and OPC UA on 4840 by default, other ports by content (--no-detect to
turn that off). Exit 0 decoded, 1 capture truncated or cut by its snaplen, 3 not a capture.")]
    Decode(CaptureArgs),
    /// Capture live (an interface, or an RS-485 line), decoded as it goes; pcapng with -w.
    #[command(after_help = "Examples:
  sudo plcprobe capture -i eth1 -w line3.pcapng --duration 10m       # fieldbus traffic only, decoded live
  plcprobe capture -i eth1 --transactions --format jsonl | tee tx.jsonl
  plcprobe capture -i eth1 --ring 10x100MB -w line3.pcapng            # a ring of files for a night's watch
  plcprobe capture -i eth1 --filter 'host 10.0.0.5' -w press.pcapng
  plcprobe capture --serial /dev/ttyUSB1 --baud 19200 --frame 8E1 -w bus.pcapng
On a terminal a summary refreshed in place; Ctrl-C (or SIGTERM) stops: files are closed valid
and the final summary printed. Exit 0 clean, 1 packets dropped or requests failed, 3 no
permission (CAP_NET_RAW), no such interface or port.")]
    Capture(LiveArgs),
    /// Run a simulated device that serves a profile (loopback by default), with faults.
    #[command(after_help = "Examples:
  plcprobe sim profiles/demo-line.toml --modbus 127.0.0.1:5020
  plcprobe sim profiles/demo-line.toml --modbus 127.0.0.1:5020 --units 1-3 --fault drop=0.1
  plcprobe sim profiles/demo-line.toml --modbus 127.0.0.1:20000-20499      # 500 devices
  plcprobe sim profiles/demo-line.toml --fault delay=200ms --fault exception=0x06@0.05
Faults: delay=200ms[@P]  drop=P  exception=0xCC[@P]  disconnect-every=N  garbage=P
OPC UA only: bad-status=NAME[@P]  session-timeout=2s")]
    Sim(SimArgs),
    /// The whole story on a built-in simulated line: baseline, drift, check, report.
    #[command(after_help = "Examples:
  cargo run --release -- demo
  plcprobe demo --out /tmp        # writes /tmp/demo-report.html and /tmp/demo-report.md
Everything runs in this process on loopback; nothing is sent to any other address.")]
    Demo(DemoArgs),
    /// OPC UA: browse the address space as a tree (or flat with --flat).
    #[command(after_help = "Examples:
  plcprobe browse opc.tcp://127.0.0.1:4840 --depth 3
  plcprobe browse opc.tcp://127.0.0.1:4840 /Objects/2:Line1 --flat --filter Speed
  plcprobe browse opc.tcp://127.0.0.1:4840 i=2253 --references
Columns: browse name, NodeId, node class, data type and value (variables).")]
    Browse(BrowseArgs),
    /// OPC UA: subscribe to nodes and print every data change; reconnects and shows the gap.
    #[command(after_help = "Examples:
  plcprobe watch opc.tcp://127.0.0.1:4840 \"ns=2;s=Line1.Speed\" --interval 250ms
  plcprobe watch opc.tcp://127.0.0.1:4840 \"ns=2;s=Line1.Speed\" i=2258 --format jsonl --duration 10m
Ctrl-C stops. Exit 0 all good, 1 some value Uncertain or a gap, 2 the server was lost and not back.")]
    Watch(WatchArgs),
    /// OPC UA: list a server's endpoints (security policies, modes, user tokens, certificate);
    /// Modbus: which unit IDs answer.
    #[command(after_help = "Examples:
  plcprobe scan opc.tcp://127.0.0.1:4840
  plcprobe scan modbus://127.0.0.1:5020 --units 1-10
Read-only: OPC UA scan calls FindServers and GetEndpoints; Modbus scan reads the identity (FC43)
and one register per unit.")]
    Scan(ScanArgs),
    /// OPC UA: trust a server's certificate (fetched from its endpoints, or from a file).
    #[command(after_help = "Examples:
  plcprobe trust opc.tcp://10.0.0.7:4840             # shows subject and thumbprint, then trusts
  plcprobe trust server-cert.der
  plcprobe trust --list
Trusted certificates live in PKI/trusted/ (PKI: $PLCPROBE_PKI or ~/.local/share/plcprobe/pki).")]
    Trust(TrustArgs),
    /// Print shell completions.
    #[command(after_help = "Example:
  plcprobe completions bash > ~/.local/share/bash-completion/completions/plcprobe")]
    Completions(CompletionsArgs),
}

/// How values are decoded.
#[derive(Debug, Args, Clone)]
pub struct TypeOrderArgs {
    /// Data type: u16 i16 u32 i32 u64 i64 f32 f64 bool bits ascii:N hex bcd.
    #[arg(short = 't', long = "type")]
    pub ty: Option<String>,
    /// Word/byte order of multi-register values: abcd (default) badc cdab dcba.
    #[arg(short, long)]
    pub order: Option<String>,
}

/// What to read: targets and addresses, or a profile. Shared by read and poll.
#[derive(Debug, Args)]
pub struct PointsArgs {
    /// Targets (modbus://…), then addresses (hr:100, 40101, …).
    #[arg(value_name = "TARGET|ADDR")]
    pub items: Vec<String>,
    /// Every point of this profile (named, scaled, with units).
    #[arg(short, long)]
    pub profile: Option<PathBuf>,
    /// Decoding.
    #[command(flatten)]
    pub decode: TypeOrderArgs,
}

/// `read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// What to read.
    #[command(flatten)]
    pub points: PointsArgs,
    /// Show the raw value under every type and word order.
    #[arg(long, conflicts_with = "profile")]
    pub guess: bool,
    /// Devices read at once when several targets are given.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

/// `poll`.
#[derive(Debug, Args)]
pub struct PollArgs {
    /// What to poll (one target).
    #[command(flatten)]
    pub points: PointsArgs,
    /// Time between polls (0 = as fast as the device answers).
    #[arg(short, long, default_value = "1s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Stop after N polls.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Stop after this long, e.g. 10m.
    #[arg(short, long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Write the JSON results (statistics, per-poll round trips, value trends; input of
    /// `report`) here, atomically.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Write the statistics as a Prometheus textfile-collector file here, atomically.
    #[arg(long)]
    pub prometheus: Option<PathBuf>,
}

/// `write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Target, e.g. `modbus://127.0.0.1:5020/1`.
    pub target: String,
    /// Address, e.g. hr:5, 40006, co:0.
    pub address: String,
    /// Value, or several separated by commas (written to consecutive addresses).
    #[arg(allow_hyphen_values = true)]
    pub value: String,
    /// Required: confirms that you mean to change a live device.
    #[arg(long)]
    pub allow_write: bool,
    /// Use FC16 (FC15 for coils) even for one value.
    #[arg(long)]
    pub fc16: bool,
    /// Decoding/encoding.
    #[command(flatten)]
    pub decode: TypeOrderArgs,
}

/// `snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Target (default: the profile's `[device] target`).
    pub target: Option<String>,
    /// Profile whose points are read.
    #[arg(short, long)]
    pub profile: PathBuf,
    /// Snapshot file to write (atomically).
    #[arg(short, long)]
    pub output: PathBuf,
}

/// `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Known-good baseline snapshot.
    pub baseline: PathBuf,
    /// A snapshot file, or a target to read live (default: the baseline's own target, live).
    pub current: Option<String>,
    /// Compare even when the two were taken with different profiles.
    #[arg(long)]
    pub force: bool,
    /// Show unchanged and ignored points in the table too.
    #[arg(long)]
    pub all: bool,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The plan (TOML: `[defaults]` and `[[device]]` tables).
    pub plan: PathBuf,
    /// Wait for an overlapping run of the same plan to end instead of refusing to start.
    #[arg(long)]
    pub wait: bool,
    /// Check drift even against a baseline taken with another profile.
    #[arg(long)]
    pub force: bool,
    /// Write the JSON results (input of `report`) here, atomically.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Write a report here (.html, .md or .json), atomically.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write a Prometheus textfile-collector file here, atomically.
    #[arg(long)]
    pub prometheus: Option<PathBuf>,
    /// Record the run into this history store: a SQLite file path, or
    /// `postgres://USER@HOST[:PORT]/DB` (password from PGPASSWORD, ~/.pgpass or a prompt).
    /// Overrides `history` under the plan's `[defaults]`.
    #[arg(long, value_name = "STORE")]
    pub history: Option<String>,
}

/// `trend`.
#[derive(Debug, Args)]
pub struct TrendArgs {
    /// The history store: a file (`check --history FILE`) or a postgres:// URL.
    pub store: String,
    /// Only this device (its name in the plan).
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,
    /// The window: the runs of the last DUR (e.g. 30d, 36h).
    #[arg(long, default_value = "30d", value_parser = parse_duration, value_name = "DUR")]
    pub since: std::time::Duration,
    /// WARNING when a limit is projected to be crossed within DUR of the last run.
    #[arg(long, default_value = "14d", value_parser = parse_duration, value_name = "DUR")]
    pub horizon: std::time::Duration,
}

/// `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// What to do with the store.
    #[command(subcommand)]
    pub action: HistoryAction,
}

/// `history import` / `history show`.
#[derive(Debug, Subcommand)]
pub enum HistoryAction {
    /// Record `check --results` files into a store (runs already there are skipped).
    Import {
        /// The store: a SQLite file path or a postgres:// URL.
        store: String,
        /// Results files of `check` (`--results`, or `--format json` output).
        #[arg(required = true)]
        results: Vec<PathBuf>,
    },
    /// One row per run and device: verdict, requests, latency, every point's value.
    Show {
        /// The store: a SQLite file path or a postgres:// URL.
        store: String,
        /// Only runs that started within this time before now (e.g. 7d, 12h).
        #[arg(long, value_parser = crate::clock::parse_duration)]
        since: Option<std::time::Duration>,
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
        /// Print the whole loaded history (runs, every device's series, every point's values,
        /// range, baseline and tolerance) as one JSON document: what `trend` and `report` read.
        #[arg(long)]
        dump: bool,
    },
}

/// `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results files (`--results`, or `--format json` output of check, diff, poll, decode or
    /// trend), or a history store (a `check --history` file or a postgres:// URL): its trends
    /// over `--since`, with charts.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output file: .html (self-contained), .md or .json.
    #[arg(short, long)]
    pub output: PathBuf,
    /// A history store's window: the runs of the last DUR (e.g. 7d, 36h).
    #[arg(long, default_value = "7d", value_parser = parse_duration, value_name = "DUR")]
    pub since: std::time::Duration,
    /// A history store's trends: WARNING when a limit is projected within DUR of the last run.
    #[arg(long, default_value = "14d", value_parser = parse_duration, value_name = "DUR")]
    pub horizon: std::time::Duration,
    /// A history store's trends of this device only (its name in the plan).
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,
}

/// `bundle`.
#[derive(Debug, Args)]
pub struct BundleArgs {
    /// Results files, snapshots and captures to put in the bundle.
    #[arg(required_unless_present = "verify", conflicts_with = "verify")]
    pub inputs: Vec<PathBuf>,
    /// The archive to write (.zip), atomically.
    #[arg(
        short,
        long,
        value_name = "FILE.zip",
        required_unless_present = "verify"
    )]
    pub output: Option<PathBuf>,
    /// Check this bundle against its MANIFEST.json instead of making one.
    #[arg(long, value_name = "FILE.zip", conflicts_with = "output")]
    pub verify: Option<PathBuf>,
    /// Make the bundle even when a snapshot or baseline a results file names is not found (it
    /// is listed under `omitted` in the manifest).
    #[arg(long, conflicts_with = "verify")]
    pub allow_missing: bool,
}

/// `sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Profile whose points are served.
    pub profile: PathBuf,
    /// Modbus TCP listen address; repeat, or give a port range (127.0.0.1:20000-20499) for many
    /// devices. Port 0 picks a free port. Default 127.0.0.1:5020 unless --rtu or --rtu-tcp is given.
    #[arg(long)]
    pub modbus: Vec<String>,
    /// Serve Modbus RTU on this serial port (or one end of a pty pair): a path, 19200 8E1, or
    /// `rtu:///dev/pts/3?baud=9600&frame=8N1` (Linux ptys accept no parity only: use 8N1).
    #[arg(long, value_name = "DEVICE")]
    pub rtu: Vec<String>,
    /// Listen as an RTU-over-TCP gateway (RTU frames with CRC over TCP), e.g. 127.0.0.1:4001.
    #[arg(long, value_name = "ADDR")]
    pub rtu_tcp: Vec<String>,
    /// Unit IDs served, e.g. 1 or 1-3 or 1,5,7.
    #[arg(long, default_value = "1")]
    pub units: String,
    /// Fault injection, repeatable: `delay=200ms[@P]` `drop=P` `exception=0xCC[@P]` `disconnect-every=N` `garbage=P`; RTU: `crc=P` `silence=P` `wrong-unit=P`; OPC UA: `bad-status=NAME[@P]` `session-timeout=2s`.
    #[arg(long = "fault", value_name = "K=V")]
    pub faults: Vec<String>,
    /// Seed for noise and faults (same seed, same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Allow listening on a non-loopback address (the simulator answers anyone who connects).
    #[arg(long)]
    pub allow_remote: bool,
    /// Also serve the profile's points (those with `node`) over OPC UA on this address,
    /// security None and `Basic256Sha256` (Sign, `SignAndEncrypt`), user `operator` with
    /// `PLCPROBE_SIM_PASSWORD` if set.
    #[arg(long, value_name = "ADDR")]
    pub opcua: Option<String>,
    /// Do not serve Modbus (only --opcua).
    #[arg(long, requires = "opcua")]
    pub no_modbus: bool,
    /// Record the simulator's Modbus traffic to this pcapng file (Wireshark/tshark open it).
    #[arg(long, value_name = "FILE.pcapng")]
    pub record: Option<PathBuf>,
}

/// `decode`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Capture file: pcap or pcapng, optionally gzip-compressed.
    pub file: PathBuf,
    /// Only packets at or after TIME: RFC 3339 (2026-11-27T02:10:00Z; an offset such as +01:00
    /// applies), or a clock time HH:MM[:SS[.frac]] in UTC on the day of the capture's first
    /// packet (the next day when earlier than that packet's time: a capture across midnight).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Only packets before TIME (same forms as --from); the window is [from, to).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Write the window's packets (the whole capture without --from/--to) to this pcapng file,
    /// atomically, interfaces and timestamps as in the input; the summary or rows describe
    /// the same window.
    #[arg(short = 'w', long, value_name = "OUT.pcapng")]
    pub write: Option<PathBuf>,
    /// What to decode and show.
    #[command(flatten)]
    pub decode: DecodeArgs,
}

/// What `decode` and `capture` decode and show.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// One row per request: with its response, unanswered, pending at the end of the capture, or
    /// (OPC UA Publish) held by the server when its connection ended.
    #[arg(long, conflicts_with_all = ["writes", "pdus"])]
    pub transactions: bool,
    /// One row per write request (FC 5, 6, 15, 16, 21, 22, 23; OPC UA Write) with its values.
    #[arg(long, conflicts_with = "pdus")]
    pub writes: bool,
    /// One row per PDU / OPC UA message, in capture order.
    #[arg(long)]
    pub pdus: bool,
    /// Only this device: ADDR[/UNIT] or ADDR:PORT[/UNIT], e.g. 10.0.0.5/1.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// Another TCP port carrying Modbus/TCP (502 always does); repeatable.
    #[arg(long, value_name = "PORT")]
    pub modbus_port: Vec<u16>,
    /// A TCP port carrying Modbus RTU frames (RTU over TCP); repeatable.
    #[arg(long, value_name = "PORT")]
    pub rtu_port: Vec<u16>,
    /// Another TCP port carrying OPC UA Binary (4840 always does); repeatable.
    #[arg(long, value_name = "PORT")]
    pub opcua_port: Vec<u16>,
    /// Another port of S7comm (TCP; 102 always), EtherNet/IP (TCP and UDP; 44818), CIP I/O
    /// (UDP; 2222), DNP3 (TCP and UDP; 20000) or BACnet/IP (UDP; 47808), as PROTO=PORT, e.g.
    /// `dnp3=20001`; repeatable.
    #[arg(long = "port", value_name = "PROTO=PORT")]
    pub ports: Vec<String>,
    /// Do not recognise Modbus/TCP, OPC UA, S7comm, EtherNet/IP, DNP3 and BACnet on other
    /// ports by their content.
    #[arg(long)]
    pub no_detect: bool,
    /// Also write the summary as JSON results (input for `plcprobe report`).
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
}

/// `capture`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["interface", "serial"])))]
pub struct LiveArgs {
    /// Network interface to capture on (Linux; needs `CAP_NET_RAW`), e.g. eth1.
    #[arg(short, long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Serial port to sniff (RS-485 tap; nothing is ever written to it), e.g. /dev/ttyUSB1.
    #[arg(long, value_name = "DEV")]
    pub serial: Option<String>,
    /// Serial: the line's baud rate [default: 19200].
    // `-i eth1 --baud 9600` must be refused, not ignored: no clap default, and a conflict
    // with -i (clap takes `requires = "serial"` as met by the source group's -i).
    #[arg(long, conflicts_with = "interface")]
    pub baud: Option<u32>,
    /// Serial: data bits, parity (N/E/O), stop bits, e.g. 8E1, 8N2 [default: 8E1, the
    /// Modbus serial-line default].
    #[arg(long, conflicts_with = "interface")]
    pub frame: Option<String>,
    /// Write the captured packets to this pcapng file (with --ring/--rotate: the first of a
    /// series, numbered).
    #[arg(short = 'w', long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Keep a ring of N files, each up to SIZE (e.g. 10x100MB), removing the oldest.
    #[arg(long, value_name = "NxSIZE", requires = "write")]
    pub ring: Option<String>,
    /// Start a new file every DURATION (e.g. 1h); with --ring N only the last N are kept.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "write")]
    pub rotate: Option<std::time::Duration>,
    /// Capture filter (pcap-filter syntax, e.g. 'host 10.0.0.5'; compiled by plcprobe, run in
    /// the kernel). Default: TCP only, then only the flows that carry Modbus or OPC UA.
    #[arg(short, long, value_name = "EXPR", conflicts_with = "serial")]
    pub filter: Option<String>,
    /// Write every packet the filter passes, not only fieldbus flows.
    #[arg(long, requires = "write")]
    pub all_packets: bool,
    /// Capture through libpcap instead of the built-in packet socket (builds with the `pcap`
    /// feature only); `-i any` always does.
    #[arg(long, conflicts_with = "serial")]
    pub libpcap: bool,
    /// Put the interface in promiscuous mode (frames for other hosts: a mirror port).
    #[arg(short, long, conflicts_with = "serial")]
    pub promiscuous: bool,
    /// Stop after this long, e.g. 10m.
    #[arg(short, long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Stop after N packets.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// What to decode and show.
    #[command(flatten)]
    pub decode: DecodeArgs,
}

/// `browse`.
#[derive(Debug, Args)]
pub struct BrowseArgs {
    /// Server, e.g. <opc.tcp://127.0.0.1:4840>.
    pub target: String,
    /// Start node (`NodeId` or browse path; default the Objects folder).
    pub node: Option<String>,
    /// Levels below the start node.
    #[arg(short, long, default_value_t = 2)]
    pub depth: u32,
    /// One row per node with its path instead of an indented tree.
    #[arg(long)]
    pub flat: bool,
    /// Only nodes whose browse name contains this text (case-insensitive); their parents stay.
    #[arg(long)]
    pub filter: Option<String>,
    /// List the start node's references (all types, both directions) instead of the tree.
    #[arg(long)]
    pub references: bool,
}

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Server, e.g. <opc.tcp://127.0.0.1:4840>.
    pub target: String,
    /// Nodes (`NodeIds` or browse paths).
    #[arg(required = true)]
    pub nodes: Vec<String>,
    /// Sampling and publishing interval.
    #[arg(short, long, default_value = "1s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Stop after this long.
    #[arg(short, long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Stop after this many data changes.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
}

/// `scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// An `opc.tcp://…` server; `modbus://HOST[:PORT]`, `rtu+tcp://HOST:PORT` or
    /// `rtu:///dev/ttyUSB0` for a unit-ID scan.
    pub target: String,
    /// Modbus: unit IDs to try, e.g. 1-247 or 1,2,5.
    #[arg(long, default_value = "1-247")]
    pub units: String,
    /// Serial: baud rates to sweep, e.g. 9600,19200,38400,115200 (default: the target's).
    #[arg(long, value_delimiter = ',', value_name = "BAUDS")]
    pub baud: Vec<u32>,
    /// Serial: framings to sweep, e.g. 8E1,8N1,8N2,8O1 (default: the target's).
    #[arg(long, value_delimiter = ',', value_name = "FRAMES")]
    pub frame: Vec<String>,
    /// Serial sweep: try every setting, not only up to the first that answers.
    #[arg(long)]
    pub all: bool,
    /// Serial: send nothing; listen this long (e.g. 10s) and report which baud and framing make
    /// valid frames and which units the bus's master polls.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", conflicts_with = "registers")]
    pub listen: Option<std::time::Duration>,
    /// Modbus: also find which register ranges of the target's unit answer reads (gently, see --rate).
    #[arg(long)]
    pub registers: bool,
    /// With --registers: write a starting profile of what answered (points named by address, u16).
    #[arg(long, value_name = "FILE.toml", requires = "registers")]
    pub emit_profile: Option<PathBuf>,
    /// With --registers: most requests per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Modbus TCP: connections at once while scanning unit IDs behind a gateway (many PLCs and
    /// gateways accept only a few connections: keep it small on a running line).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

/// `trust`.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// opc.tcp://… (the certificate of its endpoints) or a certificate file (.der/.pem).
    #[arg(required_unless_present = "list")]
    pub source: Option<String>,
    /// List the trusted certificates.
    #[arg(long)]
    pub list: bool,
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for demo-report.html and demo-report.md (default: the current folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell.
    pub shell: clap_complete::Shell,
}
