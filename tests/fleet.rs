//! A fleet under faults (issue 16): `plcprobe check` of 100 loopback devices, of which 70 answer,
//! 10 drop 30% of requests (`sim --fault drop=0.3`), 10 answer exception 0x06 half the time
//! (`--fault exception=0x06@0.5`), 5 are silent (every answer delayed past the plan's timeout)
//! and 5 refuse connections (ports the OS handed out, with nothing listening on them). One
//! `plcprobe sim` per fault class, one listener per device, the classes interleaved in the plan.
//!
//! From `check --results` and the simulators' own request counters: every request is accounted
//! for (per device: sent = answered + errors by kind, sample by sample; per simulator, exactly:
//! the requests it served are those the devices' results count); each verdict is what the
//! fault and the plan's thresholds predict, with errors of the fault's kind only; and the run
//! takes no longer than its timeouts, its pacing (rounds, rate) and its concurrency explain.
//! The faults are random draws of the simulators (seeded: `PLCPROBE_FLEET_SEED`, default 16);
//! every expectation is derived from counts, so the assertions hold for any seed.
//! `scripts/bench/fleet-faults.sh` measures the same fleet with 1000 devices.

use std::{
    collections::HashMap,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

use crate::util::{run, Sim};

/// The plan's per-request timeout.
const TIMEOUT: Duration = Duration::from_millis(200);
/// Rounds of the short poll.
const ROUNDS: u64 = 20;
/// Requests per round: the profile's points lie in two tables (one holding-register read, one
/// input-register read).
const PER_ROUND: u64 = 2;
/// At most this many requests per second to one device.
const RATE: f64 = 200.0;
/// Devices checked at once (fewer than the fleet, so devices queue).
const CONCURRENCY: usize = 32;
/// Failed share above which a device is WARNING / CRITICAL.
const ERROR_RATE_WARN: f64 = 0.0;
const ERROR_RATE_CRIT: f64 = 0.1;
/// A verdict the fault makes less likely than this per device is not expected (20 faulty
/// devices, at most 2 such verdicts each: a false failure in fewer than one run in 20,000).
const UNLIKELY: f64 = 1e-6;
/// Margins for a loaded 2-core machine (other builds and tests running): a process may wait
/// this long for a core after each timer or answer…
const STALL: Duration = Duration::from_millis(25);
/// …and the check's process start, plan load and results writing, in a debug build.
const PROCESS: Duration = Duration::from_secs(3);

/// What a device of the fleet does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Fault {
    Healthy,
    Drop,
    Busy,
    Silent,
    Refused,
}

/// The fleet: each fault, how many devices have it, and the simulator flags that make it.
fn classes() -> Vec<(Fault, usize, Vec<String>)> {
    vec![
        (Fault::Healthy, 70, vec![]),
        (Fault::Drop, 10, vec!["drop=0.3".into()]),
        (Fault::Busy, 10, vec!["exception=0x06@0.5".into()]),
        // Answers five timeouts late: long gone when they come.
        (
            Fault::Silent,
            5,
            vec![format!("delay={}ms", TIMEOUT.as_millis() * 5)],
        ),
        (Fault::Refused, 5, vec![]),
    ]
}

/// The share of requests the fault fails, and what it fails them with (an `errors` key).
fn failing(f: Fault) -> (f64, Option<&'static str>) {
    match f {
        Fault::Healthy | Fault::Refused => (0.0, None),
        Fault::Drop => (0.3, Some("timeout")),
        Fault::Busy => (0.5, Some("0x06 Server Device Busy")),
        Fault::Silent => (1.0, Some("timeout")),
    }
}

const PROFILE: &str = r#"[device]
name = "fleet device"
[device.identity]
vendor = "plcprobe"
product_code = "FLEET"
revision = "1.0"
product_name = "fleet under faults"

[[point]]
name = "level"
address = "hr:0"
sim = { value = 42 }

[[point]]
name = "flow"
address = "hr:1"
type = "i16"
scale = 0.1
sim = { value = -3.5 }

[[point]]
name = "temperature"
address = "ir:0"
type = "f32"
sim = { value = 21.5 }
"#;

/// `plcprobe sim` with `listeners` loopback listeners (ports from the OS).
fn fleet_sim(profile: &Path, listeners: usize, faults: &[String], seed: u64) -> Sim {
    let listen = vec!["127.0.0.1:0"; listeners];
    let mut extra = vec!["--seed".to_string(), seed.to_string()];
    for f in faults {
        extra.extend(["--fault".to_string(), f.clone()]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    // (`Sim` takes a profile name; an absolute path joins as that path.)
    Sim::start_on(profile.to_str().unwrap(), &listen, &extra)
}

/// Stop a simulator as Ctrl-C does and return the requests it served, by its own count.
fn served(sim: Sim) -> u64 {
    let said = sim.stop();
    said.lines()
        .find_map(|l| {
            l.strip_prefix("plcprobe sim: stopped after ")
                .and_then(|r| r.strip_suffix(" requests"))
        })
        .unwrap_or_else(|| panic!("the sim did not say how many requests it served:\n{said}"))
        .parse()
        .expect("a count")
}

/// Loopback ports with nothing listening, from the OS: each is the client end of a loopback
/// connection this test holds open, so no listener is given that port while the test runs (a
/// bind to port 0 never picks a port in use). A connection to one is refused.
struct RefusingPorts {
    ports: Vec<u16>,
    _held: Vec<(TcpStream, TcpStream)>,
    _listener: TcpListener,
}

fn refusing_ports(n: usize) -> RefusingPorts {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut held = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..n {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let port = client.local_addr().unwrap().port();
        let e = TcpStream::connect(("127.0.0.1", port)).expect_err("nothing listens there");
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{port}: {e}"
        );
        ports.push(port);
        held.push((client, server));
    }
    RefusingPorts {
        ports,
        _held: held,
        _listener: listener,
    }
}

/// The classes interleaved evenly over the plan (a real fleet does not sort its devices by
/// fault): device j of a class of n sits at (j + 0.5) / n of the way through.
fn interleave(counts: &[(Fault, usize)]) -> Vec<Fault> {
    let mut keyed: Vec<(f64, usize, Fault)> = counts
        .iter()
        .enumerate()
        .flat_map(|(c, &(f, n))| (0..n).map(move |j| ((j as f64 + 0.5) / n as f64, c, f)))
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, f)| f).collect()
}

/// The verdict of a failed share by the plan's thresholds (docs/DESIGN.md §4b).
fn verdict_of(rate: f64) -> &'static str {
    if rate > ERROR_RATE_CRIT {
        "CRITICAL"
    } else if rate > ERROR_RATE_WARN {
        "WARNING"
    } else {
        "OK"
    }
}

const VERDICTS: [&str; 4] = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];

fn rank(v: &str) -> usize {
    VERDICTS
        .iter()
        .position(|x| *x == v)
        .unwrap_or_else(|| panic!("not a verdict: {v}"))
}

/// The verdicts, from best to worst, that a device failing a share `p` of its `n` requests
/// (independently) gets with a probability of at least [`UNLIKELY`] each: the binomial
/// distribution of its failures, summed per verdict of [`verdict_of`].
fn likely_verdicts(p: f64, n: u64) -> Vec<&'static str> {
    let mut chance = [0.0f64; VERDICTS.len()];
    if p <= 0.0 || p >= 1.0 {
        chance[rank(verdict_of(p.clamp(0.0, 1.0)))] = 1.0;
    } else {
        let mut pmf = (1.0 - p).powf(n as f64);
        for k in 0..=n {
            chance[rank(verdict_of(k as f64 / n as f64))] += pmf;
            pmf *= (n - k) as f64 / (k + 1) as f64 * p / (1.0 - p);
        }
    }
    VERDICTS
        .iter()
        .zip(chance)
        .filter(|(_, c)| *c >= UNLIKELY)
        .map(|(v, _)| *v)
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// FC43 requests the identity read made, told by what it got: plcprobe asks for the Regular
/// category and, after an exception, for the Basic one (src/transport/modbus.rs); a link
/// failure ends the read. No device of this fleet both answers exceptions and loses requests,
/// so a timeout was the first request's.
fn identity_requests(d: &Value) -> u64 {
    let status = d["identity_status"].as_str().unwrap_or("");
    if d["identity"].get("product_name").is_some() {
        1 // the Regular category answered
    } else if status == "ok" || status.starts_with("not available: 0x") {
        2 // Regular answered an exception, then Basic answered or excepted too
    } else {
        1
    }
}

/// Whether the identity read ran out its timeout.
fn identity_timed_out(d: &Value) -> bool {
    d["identity_status"] == "not available: timeout"
}

/// Whether `count` lies within `z` standard deviations (and one) of a binomial count's mean.
fn within_band(count: u64, trials: u64, p: f64, z: f64) -> bool {
    let mean = trials as f64 * p;
    let sd = (trials as f64 * p * (1.0 - p)).sqrt();
    (count as f64 - mean).abs() <= z * sd + 1.0
}

/// The fleet, running: its simulators, the ports that refuse, and the plan over them.
struct Fleet {
    sims: Vec<(Fault, Sim)>,
    _refusing: RefusingPorts,
    /// Each device's fault, by name.
    fault_of: HashMap<String, Fault>,
    devices: usize,
}

impl Fleet {
    /// Start one simulator per fault class and write the plan `dir/plan.toml` over the fleet.
    fn start(dir: &Path, seed: u64) -> (Fleet, PathBuf) {
        let profile = dir.join("fleet.toml");
        std::fs::write(&profile, PROFILE).unwrap();
        let classes = classes();
        let mut sims = Vec::new();
        let mut refusing = None;
        for (f, n, flags) in &classes {
            if *f == Fault::Refused {
                refusing = Some(refusing_ports(*n));
            } else {
                sims.push((*f, fleet_sim(&profile, *n, flags, seed)));
            }
        }
        let refusing = refusing.expect("a refusing class");
        let mut plan = format!(
            "[defaults]\ntimeout = \"{t}ms\"\nlatency_warn = \"{t}ms\"\nlatency_crit = \"{t}ms\"\n\
             poll = {ROUNDS}\nrate = {RATE:?}\nerror_rate_warn = {ERROR_RATE_WARN:?}\n\
             error_rate_crit = {ERROR_RATE_CRIT:?}\nconcurrency = {CONCURRENCY}\n",
            t = TIMEOUT.as_millis()
        );
        let order = interleave(&classes.iter().map(|(f, n, _)| (*f, *n)).collect::<Vec<_>>());
        let mut next: HashMap<Fault, usize> = HashMap::new();
        let mut fault_of = HashMap::new();
        for (i, f) in order.iter().enumerate() {
            let j = next.entry(*f).or_default();
            let addr = if *f == Fault::Refused {
                format!("127.0.0.1:{}", refusing.ports[*j])
            } else {
                let sim = &sims.iter().find(|(g, _)| g == f).unwrap().1;
                sim.addrs[*j].to_string()
            };
            *j += 1;
            let name = format!("d{i:03}-{f:?}").to_lowercase();
            plan += &format!(
                "\n[[device]]\nname = \"{name}\"\ntarget = \"modbus://{addr}/1\"\nprofile = \"fleet.toml\"\n"
            );
            fault_of.insert(name, *f);
        }
        let path = dir.join("plan.toml");
        std::fs::write(&path, &plan).unwrap();
        let fleet = Fleet {
            sims,
            _refusing: refusing,
            fault_of,
            devices: order.len(),
        };
        (fleet, path)
    }

    /// Stop the simulators; the requests each served, by its own count.
    fn stop(self) -> Vec<(Fault, u64)> {
        self.sims.into_iter().map(|(f, s)| (f, served(s))).collect()
    }
}

/// What one device's results add up to.
#[derive(Default)]
struct Tally {
    /// Requests the results count, identity read included (what its simulator served).
    requests: u64,
    /// Requests of the short poll, and how many failed.
    sent: u64,
    failed: u64,
    /// How long it took, and the most its timeouts and pacing allow (with a stall per wait).
    took: Duration,
    bound: Duration,
    /// How much longer than its timeouts and pacing it took.
    overrun: Duration,
}

/// Judge one device's results against its fault; what is wrong goes to `wrong`.
fn judge(d: &Value, f: Fault, wrong: &mut Vec<String>) -> Tally {
    let mut check = |ok: bool, what: String| {
        if !ok {
            wrong.push(what);
        }
    };
    let status = d["status"].as_str().unwrap();
    let problems = d["problems"].to_string();
    let at = format!("{} ({status}, {problems})", d["name"].as_str().unwrap());
    let sent = num(&d["sent"]);
    let received = num(&d["received"]);
    let errors = d["errors"].as_object().expect("errors by kind");
    let failed: u64 = errors.values().map(num).sum();
    let samples = d["samples"].as_array().expect("samples");
    let took = Duration::from_secs_f64(d["duration_ms"].as_f64().unwrap() / 1e3);
    let n = ROUNDS * PER_ROUND;

    // Every request accounted for: answered with data, or an error of a named kind; one
    // sample each, failing with the same kinds, timeouts after the timeout and answers before.
    check(
        sent == received + failed,
        format!("{at}: sent {sent} != received {received} + errors {failed}"),
    );
    check(
        samples.len() as u64 == sent,
        format!("{at}: {} samples for {sent} requests", samples.len()),
    );
    let answered = samples.iter().filter(|s| s["error"].is_null()).count() as u64;
    check(
        answered == received,
        format!("{at}: {answered} samples without error, {received} received"),
    );
    let timed_out = |s: &Value| {
        s["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("no answer within"))
    };
    let timeouts = samples.iter().filter(|s| timed_out(s)).count() as u64;
    check(
        timeouts == errors.get("timeout").map_or(0, num),
        format!("{at}: {timeouts} samples timed out, errors {errors:?}"),
    );
    for s in samples {
        let rtt = Duration::from_secs_f64(s["rtt_ms"].as_f64().unwrap() / 1e3);
        check(
            timed_out(s) == (rtt >= TIMEOUT),
            format!("{at}: a sample of {rtt:?} (timeout {TIMEOUT:?}): {s}"),
        );
    }
    let rate = if sent == 0 {
        0.0
    } else {
        failed as f64 / sent as f64
    };
    check(
        (d["error_rate"].as_f64().unwrap() - rate).abs() < 1e-9,
        format!("{at}: error_rate {} for {failed}/{sent}", d["error_rate"]),
    );

    // The verdict the fault predicts, with errors of its kind only.
    let (p, kind) = failing(f);
    if f == Fault::Refused {
        check(
            status == "CRITICAL"
                && d["reachable"] == false
                && sent == 0
                && problems.contains("unreachable: cannot connect")
                && problems.contains("refused the connection"),
            format!("{at}: a refused connection is CRITICAL, unreachable, nothing sent"),
        );
    } else {
        check(
            sent == n,
            format!("{at}: {sent} requests sent, the plan asks {ROUNDS} rounds of {PER_ROUND}"),
        );
        check(
            errors.keys().all(|k| Some(k.as_str()) == kind),
            format!("{at}: errors {errors:?}, the fault makes only {kind:?}"),
        );
        // A point answering an exception in every round is CRITICAL whatever the rate.
        let standing = d["points"].as_array().unwrap().iter().any(|pt| {
            pt["status"].as_str().is_some_and(|s| s.starts_with("0x"))
                && pt["trend"].as_array().unwrap().iter().all(Value::is_null)
        });
        let expected = if standing {
            "CRITICAL"
        } else {
            verdict_of(rate)
        };
        check(
            status == expected,
            format!("{at}: {failed} of {sent} failed, the thresholds say {expected}"),
        );
        check(
            likely_verdicts(p, n).contains(&status),
            format!("{at}: {status} is not what {f:?} (p {p}) gives to {n} requests"),
        );
    }
    if f == Fault::Healthy {
        check(
            d["problems"].as_array().unwrap().is_empty()
                && d["identity_status"] == "ok"
                && d["reachable"] == true,
            format!("{at}: a healthy device has no problems"),
        );
    }
    if f == Fault::Silent {
        check(
            received == 0
                && d["latency_ms"].is_null()
                && identity_timed_out(d)
                && d["reachable"] == false,
            format!("{at}: a silent device answers nothing, so is not reachable"),
        );
    }

    // Its time: at least its timeouts and its pacing, at most both plus a stall per wait.
    let (waited, bound) = if f == Fault::Refused {
        (Duration::ZERO, Duration::ZERO)
    } else {
        let waited = TIMEOUT * (timeouts + u64::from(identity_timed_out(d))) as u32;
        let pacing = Duration::from_secs_f64(PER_ROUND as f64 / RATE) * (ROUNDS as u32 - 1);
        check(
            took >= waited && took >= pacing,
            format!("{at}: took {took:?}, less than its timeouts {waited:?} or pacing {pacing:?}"),
        );
        (waited, waited + pacing)
    };
    let slack = STALL * (sent + identity_requests(d) + ROUNDS) as u32;
    check(
        took <= bound + slack,
        format!(
            "{at}: took {took:?}, more than timeouts {waited:?} + pacing, {bound:?}, + {slack:?}"
        ),
    );
    Tally {
        requests: if f == Fault::Refused {
            0
        } else {
            sent + identity_requests(d)
        },
        sent,
        failed,
        took,
        bound: bound + slack,
        overrun: took.saturating_sub(bound),
    }
}

/// Devices start as soon as one of the CONCURRENCY running ones ends, so a run of devices
/// taking `ds` ends within sum/C + (1 - 1/C) max (list scheduling, Graham 1966).
fn list_scheduling_bound(ds: &[Duration]) -> Duration {
    let c = CONCURRENCY as f64;
    let sum: Duration = ds.iter().sum();
    let max = ds.iter().max().copied().unwrap_or_default();
    sum.div_f64(c) + max.mul_f64(1.0 - 1.0 / c)
}

#[test]
fn a_fleet_under_faults_is_accounted_for_judged_and_bounded() {
    let seed: u64 = std::env::var("PLCPROBE_FLEET_SEED")
        .ok()
        .map_or(16, |s| s.parse().expect("PLCPROBE_FLEET_SEED is a number"));
    // The plan must make each fault's verdict predictable: a lost request must show, and a
    // device busy half the time must be CRITICAL.
    let n = ROUNDS * PER_ROUND;
    assert_eq!(
        likely_verdicts(failing(Fault::Drop).0, n),
        ["WARNING", "CRITICAL"]
    );
    assert_eq!(likely_verdicts(failing(Fault::Busy).0, n), ["CRITICAL"]);

    let dir = tempfile::tempdir().unwrap();
    let (fleet, plan) = Fleet::start(dir.path(), seed);
    let results = dir.path().join("results.json");
    let r = run(&[
        "check",
        plan.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "-q",
    ]);
    let fault_of = fleet.fault_of.clone();
    let n_devices = fleet.devices;
    let served = fleet.stop();
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(&results)
            .unwrap_or_else(|e| panic!("no results ({e}); exit {}: {}", r.code, r.stderr)),
    )
    .unwrap();
    let devices = doc["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), n_devices, "one result per device");

    let mut wrong: Vec<String> = Vec::new();
    let mut per_class: HashMap<Fault, Tally> = HashMap::new();
    let (mut took, mut bounds) = (Vec::new(), Vec::new());
    let mut overrun = Duration::ZERO;
    let mut worst = "OK";
    for d in devices {
        let f = fault_of[d["name"].as_str().unwrap()];
        let t = judge(d, f, &mut wrong);
        let status = d["status"].as_str().unwrap();
        if rank(status) > rank(worst) {
            worst = status;
        }
        let c = per_class.entry(f).or_default();
        c.requests += t.requests;
        c.sent += t.sent;
        c.failed += t.failed;
        took.push(t.took);
        bounds.push(t.bound);
        overrun = overrun.max(t.overrun);
    }
    let mut check = |ok: bool, what: String| {
        if !ok {
            wrong.push(what);
        }
    };
    // Per simulator, exactly: the requests it served are those the results count.
    for (f, n_served) in &served {
        let counted = per_class.get(f).map_or(0, |c| c.requests);
        check(
            counted == *n_served,
            format!("{f:?}: the simulator served {n_served} requests, the results count {counted} (poll + identity)"),
        );
    }
    // Per class: the failed share is the fault's, within 5 standard deviations.
    for (f, c) in &per_class {
        let p = failing(*f).0;
        check(
            within_band(c.failed, c.sent, p, 5.0),
            format!(
                "{f:?}: {} of {} requests failed, the fault fails {p} of them",
                c.failed, c.sent
            ),
        );
    }
    // The run's verdict is its worst device's, and its exit code says so.
    check(
        doc["verdict"] == worst && r.code == 2 && worst == "CRITICAL",
        format!(
            "verdict {} exit {}, worst device {worst}",
            doc["verdict"], r.code
        ),
    );
    // The whole run: within the list-scheduling bound of its devices' times (give or take a
    // stall per wave of devices), and of the bounds their timeouts and pacing set.
    let run_bound = list_scheduling_bound(&took) + STALL * n_devices.div_ceil(CONCURRENCY) as u32;
    let plan_bound = list_scheduling_bound(&bounds);
    let run_ms = doc["duration_ms"].as_f64().unwrap();
    check(
        run_ms <= ms(run_bound),
        format!("the check took {run_ms} ms; its devices, {CONCURRENCY} at a time, {run_bound:?}"),
    );
    check(
        r.elapsed <= plan_bound + PROCESS,
        format!(
            "plcprobe check took {:?}, more than its devices' bounds allow ({plan_bound:?}) + {PROCESS:?} for the process",
            r.elapsed
        ),
    );
    eprintln!(
        "fleet of {n_devices} (seed {seed}): check {run_ms:.0} ms (bound {run_bound:?}), process {:?} (bound {plan_bound:?} + {PROCESS:?}); most over a device's timeouts + pacing: {overrun:?}; simulators served {served:?}",
        r.elapsed
    );
    assert!(
        wrong.is_empty(),
        "seed {seed}: {} findings:\n{}\nstderr: {}",
        wrong.len(),
        wrong
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        r.stderr
    );
}
