//! README claims about Modbus, `check` and `scan` that no other test checks, each measured
//! against a real peer: the simulator's own recording of the traffic it saw (`sim --record`,
//! read back with `decode --pdus` / `--transactions`) or the pymodbus server.
//!
//! - check pacing: at most `rate` requests a second to one device, and at most `concurrency`
//!   devices in flight at once (request timestamps and connections from the recording);
//! - check latency verdicts: the median round trip against `latency_warn`/`latency_crit`
//!   (`sim --fault delay=…[@P]`), with exit codes 0/1/2;
//! - poll after a timeout: a late reply is not taken as the next answer, over Modbus TCP, RTU
//!   over TCP and a serial line (there: a reply up to half a timeout late; values and, where
//!   recorded, every request's own reply);
//! - a profile's `max_registers`: request sizes and count on the wire, values still right;
//! - `scan --units` against pymodbus and the simulator (which units, which answer, exit codes);
//! - FC43 refused: snapshot and check say "not available", as for pymodbus's FC43 answer with
//!   no objects.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde_json::{json, Value};

use crate::util::{profile, pymodbus_client, python, run, PtyPair, PyModbus, RtuSim, Run};

// --- helpers ------------------------------------------------------------------------------------

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Write `text` to `dir/name` and return its path.
fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A plan with `[defaults]` `defaults` and one device per `(name, target)`, all on `profile`.
fn plan(
    dir: &Path,
    name: &str,
    defaults: &str,
    devices: &[(String, String)],
    prof: &str,
) -> PathBuf {
    let mut text = format!("[defaults]\n{defaults}\n");
    for (n, t) in devices {
        text.push_str(&format!(
            "\n[[device]]\nname = \"{n}\"\ntarget = \"{t}\"\nprofile = \"{prof}\"\n"
        ));
    }
    file(dir, name, &text)
}

/// `plcprobe sim PROFILE LISTEN… --record FILE EXTRA…`; stop it with [`RtuSim::stop`] before
/// reading the file.
fn recording_sim(prof: &str, listen: &[&str], cap: &Path, extra: &[&str]) -> RtuSim {
    let mut args = vec!["--record", p(cap)];
    args.extend_from_slice(extra);
    RtuSim::start(prof, listen, &args)
}

/// Seconds since the epoch of a row's RFC 3339 `time`.
fn secs(row: &Value) -> f64 {
    let t = row["time"]
        .as_str()
        .unwrap_or_else(|| panic!("no time: {row}"));
    humantime::parse_rfc3339(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `decode FILE ARGS… --format jsonl`, each row.
fn decode(cap: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["decode", p(cap)];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "jsonl"]);
    let r = run(&all);
    assert_eq!(r.code, 0, "decode {args:?}: {}", r.stderr);
    r.jsonl()
}

/// Every PDU of the capture, in frame order.
fn pdus(cap: &Path, port_args: &[&str]) -> Vec<Value> {
    let mut a = vec!["--pdus"];
    a.extend_from_slice(port_args);
    decode(cap, &a)
}

/// The query PDUs of the capture (frame order).
fn queries(pdus: &[Value]) -> Vec<&Value> {
    pdus.iter().filter(|r| r["dir"] == "query").collect()
}

/// `check PLAN --format json`: the run and its results document.
fn check(plan: &Path) -> (Run, Value) {
    let r = run(&["check", p(plan), "--format", "json"]);
    let doc = r.json();
    (r, doc)
}

/// A JSON number.
fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A profile of u16 points `(name, address, value the simulator serves)`, no identity.
fn u16_profile(name: &str, points: &[(&str, &str, u16)]) -> String {
    let mut t = format!("[device]\nname = \"{name}\"\n");
    for (n, a, v) in points {
        t.push_str(&format!(
            "\n[[point]]\nname = \"{n}\"\naddress = \"{a}\"\nsim = {{ value = {v} }}\n"
        ));
    }
    t
}

// --- 1. check pacing ------------------------------------------------------------------------------

#[test]
fn check_sends_at_most_rate_requests_a_second_to_a_device() {
    // README: "at most `rate` requests per second to any one device". The demo profile takes
    // several requests a round; the simulator records when each request arrived.
    const RATE: f64 = 20.0;
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("check.pcapng");
    let sim = recording_sim("demo-line.toml", &["--modbus", "127.0.0.1:0"], &cap, &[]);
    let pl = plan(
        dir.path(),
        "plan.toml",
        &format!("rate = {RATE}\npoll = 4\ntimeout = \"1s\""),
        &[("press".into(), sim.modbus_target(1))],
        &profile("demo-line.toml"),
    );
    let (r, doc) = check(&pl);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let sent = doc["devices"][0]["sent"].as_u64().unwrap();
    sim.stop();
    let all = pdus(&cap, &[]);
    let q = queries(&all);
    // Every request of the short poll is in the capture, plus the identity read (FC43).
    let polled = q.iter().filter(|r| r["func_code"] != 43).count() as u64;
    assert_eq!(
        polled, sent,
        "requests in the capture vs the check's own count"
    );
    let t: Vec<f64> = q.iter().map(|r| secs(r)).collect();
    let n = t.len();
    assert!(
        n as f64 > 1.5 * RATE,
        "enough requests to span over a second: {n}"
    );
    // Timer and scheduling jitter allowed: well under one request's share of a second, so it
    // cannot admit an extra request.
    let jitter = 0.4 / RATE;
    let busiest = (0..n)
        .map(|i| {
            t[i..]
                .iter()
                .take_while(|&&x| x < t[i] + 1.0 - jitter)
                .count()
        })
        .max()
        .unwrap();
    let span = t[n - 1] - t[0];
    let rate_seen = (n - 1) as f64 / span;
    eprintln!(
        "check pacing at rate {RATE}: {n} requests in {span:.3} s ({rate_seen:.1}/s on average), \
         at most {busiest} in any {:.2} s",
        1.0 - jitter
    );
    assert!(
        busiest as f64 <= RATE,
        "{busiest} requests within one second to one device; the plan says rate = {RATE} \
         ({n} requests in {span:.3} s)"
    );
    assert!(
        span >= (n - 1) as f64 / RATE - jitter,
        "{n} requests at most {RATE}/s take at least {:.3} s; they took {span:.3} s \
         ({rate_seen:.1}/s)",
        (n - 1) as f64 / RATE
    );
}

/// Most devices of the recording in flight at once: each device (unit) from its first request
/// to its last reply.
fn most_in_flight(cap: &Path) -> (usize, usize) {
    let all = pdus(cap, &[]);
    let mut spans: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for r in &all {
        let dev = r["device"].as_str().unwrap().to_string();
        let t = secs(r);
        let e = spans.entry(dev).or_insert((f64::MAX, f64::MIN));
        if r["dir"] == "query" {
            e.0 = e.0.min(t);
        } else {
            e.1 = e.1.max(t);
        }
    }
    let mut events: Vec<(f64, i32)> = spans
        .values()
        .flat_map(|&(a, b)| {
            assert!(a < b, "a device with no reply after its first request");
            [(a, 1), (b, -1)]
        })
        .collect();
    // At the same instant an end comes before a start.
    events.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    (spans.len(), most as usize)
}

#[test]
fn check_runs_at_most_concurrency_devices_at_once() {
    // README/DESIGN: `concurrency` = devices checked at once. Five devices (five units of one
    // simulator, a connection each), each busy for a few paced rounds.
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for conc in [2usize, 5] {
        let cap = dir.path().join(format!("conc{conc}.pcapng"));
        let sim = recording_sim(
            "demo-line.toml",
            &["--modbus", "127.0.0.1:0"],
            &cap,
            &["--units", "1-5"],
        );
        let devices: Vec<(String, String)> = (1..=5)
            .map(|u| (format!("dev{u}"), sim.modbus_target(u)))
            .collect();
        let pl = plan(
            dir.path(),
            &format!("plan{conc}.toml"),
            &format!("rate = 90.0\npoll = 3\ntimeout = \"1s\"\nconcurrency = {conc}"),
            &devices,
            &profile("demo-line.toml"),
        );
        let (r, doc) = check(&pl);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_eq!(doc["devices"].as_array().unwrap().len(), 5);
        sim.stop();
        let (devs, most) = most_in_flight(&cap);
        assert_eq!(devs, 5, "five devices in the capture");
        eprintln!("check concurrency = {conc}, 5 devices: at most {most} in flight at once");
        seen.push((conc, most));
    }
    // At most `concurrency` at once, and that many: the devices are checked concurrently (the
    // capture shows all five at once when allowed, so it would show too many if there were).
    assert_eq!(
        seen,
        [(2, 2), (5, 5)],
        "(concurrency, most devices in flight)"
    );
}

// --- 2. latency verdicts ------------------------------------------------------------------------

/// One device on `profile`, every reply (or a share, `fault`) delayed; thresholds in ms.
fn latency_check(
    dir: &Path,
    fault: &str,
    seed: &str,
    poll: u32,
    warn: u64,
    crit: u64,
) -> (Run, Value) {
    let prof = file(
        dir,
        "one.toml",
        &u16_profile("one", &[("level", "hr:0", 1111)]),
    );
    let sim = RtuSim::start(
        p(&prof),
        &["--modbus", "127.0.0.1:0"],
        &["--fault", fault, "--seed", seed],
    );
    let pl = plan(
        dir,
        &format!("plan-{warn}-{crit}-{seed}.toml"),
        &format!(
            "rate = 1000.0\npoll = {poll}\ntimeout = \"2s\"\nlatency_warn = \"{warn}ms\"\nlatency_crit = \"{crit}ms\""
        ),
        &[("dev".into(), sim.modbus_target(1))],
        p(&prof),
    );
    let (r, doc) = check(&pl);
    drop(sim);
    (r, doc)
}

/// Round trips of the device's short poll, sorted, and their median (odd count).
fn sample_rtts(doc: &Value) -> (Vec<f64>, f64) {
    let mut v: Vec<f64> = doc["devices"][0]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| f(&s["rtt_ms"]))
        .collect();
    v.sort_by(f64::total_cmp);
    assert!(v.len() % 2 == 1, "an odd number of samples has one median");
    let m = v[v.len() / 2];
    (v, m)
}

#[test]
fn check_latency_verdicts_follow_the_median_round_trip() {
    // DESIGN §4b: median round trip above latency_crit / latency_warn: CRITICAL / WARNING;
    // exit codes 0/1/2 (§6). Every reply delayed by D: thresholds either side of D.
    const D: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let delay = format!("delay={D}ms");
    for (warn, crit, status, code) in [
        (D * 3 / 2, D * 3, "OK", 0),
        (D / 2, D * 3, "WARNING", 1),
        (D / 5, D / 2, "CRITICAL", 2),
    ] {
        let (r, doc) = latency_check(dir.path(), &delay, "1", 3, warn, crit);
        let dev = &doc["devices"][0];
        let p50 = f(&dev["latency_ms"]["p50"]);
        assert!(p50 >= D as f64, "every reply delayed {D} ms: p50 {p50}");
        assert_eq!(
            (dev["status"].as_str().unwrap(), r.code),
            (status, code),
            "p50 {p50} ms, warn {warn} ms, crit {crit} ms: {}",
            r.stdout
        );
        let problems = dev["problems"].to_string();
        assert_eq!(
            problems.contains("latency p50"),
            status != "OK",
            "{problems}"
        );
    }

    // The median, not the maximum nor the minimum: a share of the replies delayed by 2·D with
    // thresholds D/2 (warn) and D (crit). A minority delayed: the slowest are far above
    // latency_crit, yet the median is fast: OK. A majority delayed: the fastest are far below
    // latency_warn, yet the median is slow: CRITICAL.
    let slow = (D * 2) as f64;
    for (fault, seed, status, code) in [
        (format!("delay={}ms@0.3", D * 2), "1", "OK", 0),
        (format!("delay={}ms@0.7", D * 2), "1", "CRITICAL", 2),
    ] {
        let (r, doc) = latency_check(dir.path(), &fault, seed, 9, D / 2, D);
        let (rtts, median) = sample_rtts(&doc);
        let delayed = rtts.iter().filter(|&&x| x >= slow).count();
        // The scenario really is mixed (else it would not tell median from max or min).
        assert!(
            delayed > 0 && delayed < rtts.len(),
            "{fault} seed {seed}: {delayed} of {} delayed: {rtts:?}",
            rtts.len()
        );
        assert!(
            (median >= slow) == (status == "CRITICAL"),
            "{fault} seed {seed}: median {median} ms of {rtts:?}"
        );
        let dev = &doc["devices"][0];
        let p50 = f(&dev["latency_ms"]["p50"]);
        assert!(
            (p50 - median).abs() <= median * 0.01 + 0.01,
            "reported p50 {p50} ms, samples' median {median} ms"
        );
        eprintln!(
            "latency {fault}: {delayed}/{} replies delayed, median {median} ms, max {} ms → {}",
            rtts.len(),
            rtts[rtts.len() - 1],
            dev["status"]
        );
        assert_eq!(
            (dev["status"].as_str().unwrap(), r.code),
            (status, code),
            "{fault}: median {median} ms, warn {} ms, crit {D} ms: {rtts:?}",
            D / 2
        );
    }
}

// --- 3. a late reply is never taken as the next answer ------------------------------------------

/// Timeout T of the polls below.
const T_MS: u64 = 100;
const ROUNDS: usize = 12;

/// Two u32 points read by separate requests of the same shape, each a counter moving a
/// million a second: every reply the simulator sends carries its own value, so the value
/// plcprobe shows names the reply it took.
fn counter_profile(dir: &Path) -> PathBuf {
    file(
        dir,
        "counters.toml",
        "[device]\nname = \"counters\"\n\
         \n[[point]]\nname = \"a\"\naddress = \"hr:0\"\ntype = \"u32\"\nsim = { value = 0, ramp = 1000000 }\n\
         \n[[point]]\nname = \"b\"\naddress = \"hr:10\"\ntype = \"u32\"\nsim = { value = 1000000000, ramp = 1000000 }\n",
    )
}

/// `poll TARGET --profile PROF --count ROUNDS --interval 0 --timeout T --format json`: the
/// run, its rows and its statistics.
fn late_poll(target: &str, prof: &Path) -> (Run, Vec<Value>, Value) {
    let count = ROUNDS.to_string();
    let timeout = format!("{T_MS}ms");
    let r = run(&[
        "poll",
        target,
        "--profile",
        p(prof),
        "--count",
        &count,
        "--interval",
        "0",
        "--timeout",
        &timeout,
        "--format",
        "json",
    ]);
    let rows = r.json().as_array().unwrap().clone();
    assert_eq!(rows.len(), ROUNDS, "{}", r.stdout);
    let line = r
        .stderr
        .lines()
        .rev()
        .find(|l| l.contains("\"statistics\""))
        .unwrap_or_else(|| panic!("no statistics in: {}", r.stderr));
    let stats: Value = serde_json::from_str(line).unwrap();
    (r, rows, stats)
}

/// About half the replies delayed by `delay_ms`, seeded.
fn late_fault(delay_ms: u64) -> Vec<String> {
    vec![
        "--fault".into(),
        format!("delay={delay_ms}ms@0.5"),
        "--seed".into(),
        "11".into(),
    ]
}

/// One request of the recording: its connection, when it was sent, and when (and with what
/// value) the device answered it, from the device's side of the wire.
struct Req {
    conn: String,
    sent: f64,
    point: &'static str,
    reply: Option<(f64, u64)>,
}

/// poll over a TCP transport (`--modbus` or `--rtu-tcp`) with a delay of 1.5 T on about half
/// the replies, so late replies land while later requests wait for theirs; checked request by
/// request against the simulator's recording.
fn late_replies_never_taken(listen: &str, port_flag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let prof = counter_profile(dir.path());
    let cap = dir.path().join("late.pcapng");
    let fault = late_fault(T_MS * 3 / 2);
    let fault: Vec<&str> = fault.iter().map(String::as_str).collect();
    let sim = recording_sim(p(&prof), &[listen, "127.0.0.1:0"], &cap, &fault);
    let (target, port) = if listen == "--modbus" {
        let t = sim.modbus_target(1);
        let port = sim.url("modbus://").rsplit_once(':').unwrap().1.to_string();
        (t, port)
    } else {
        (sim.tcp_target(1), sim.tcp_port().to_string())
    };
    let (r, rows, stats) = late_poll(&target, &prof);
    sim.stop();

    let frames: BTreeMap<u64, Value> = pdus(&cap, &[port_flag, &port])
        .into_iter()
        .map(|r| (r["frame"].as_u64().unwrap(), r))
        .collect();
    let mut tx = decode(&cap, &["--transactions", port_flag, &port]);
    tx.sort_by_key(|t| t["request_frame"].as_u64().unwrap());
    assert_eq!(
        tx.len(),
        2 * ROUNDS,
        "two requests a round, each on the wire alone; statistics {stats}"
    );
    let t_s = T_MS as f64 / 1e3;
    let reqs: Vec<Req> = tx
        .iter()
        .map(|t| {
            let point = match t["address"].as_u64() {
                Some(0) => "a",
                Some(10) => "b",
                other => panic!("unexpected address {other:?}: {t}"),
            };
            let reply = t["response_frame"].as_u64().map(|fr| {
                let pdu = &frames[&fr];
                let w = &pdu["registers"];
                let value = w[0].as_u64().unwrap() << 16 | w[1].as_u64().unwrap();
                (secs(pdu), value)
            });
            Req {
                conn: t["master"].as_str().unwrap().to_string(),
                sent: secs(t),
                point,
                reply,
            }
        })
        .collect();
    // Request k is round k/2's read of its point. A value plcprobe shows is the value of that
    // request's own reply, of no other; no value means no reply came in time (the fast
    // replies take well under T/2, the delayed ones 1.5 T).
    let mut late = Vec::new();
    for (k, q) in reqs.iter().enumerate() {
        let row = &rows[k / 2];
        let took = &row[q.point];
        let after_ms = q.reply.map_or(f64::NAN, |(at, _)| (at - q.sent) * 1e3);
        if took.is_null() {
            assert!(
                q.reply.is_none_or(|(at, _)| at - q.sent > t_s / 2.0),
                "request {k} ({}) answered after {after_ms:.1} ms, yet no value: {row}",
                q.point
            );
            late.push(k);
            continue;
        }
        let own = q.reply.map(|r| r.1);
        let whose: Vec<usize> = (0..reqs.len())
            .filter(|&j| reqs[j].reply.map(|r| json!(r.1)).as_ref() == Some(took))
            .collect();
        assert_eq!(
            (Some(took), &whose[..]),
            (own.map(|v| json!(v)).as_ref(), &[k][..]),
            "request {k} ({}, its reply after {after_ms:.1} ms): plcprobe took the reply of \
             request(s) {whose:?}: {row}",
            q.point
        );
    }
    assert_eq!(
        stats["errors"]["timeout"].as_u64().unwrap_or(0),
        late.len() as u64,
        "timeouts counted vs requests without a value: {stats}"
    );
    assert_eq!(stats["errors"].as_object().unwrap().len(), 1, "{stats}");
    // The case the claim is about happened: a late reply was sent while a later request waited
    // for its own answer.
    let hazards = late
        .iter()
        .filter_map(|&k| reqs[k].reply.map(|(at, _)| (k, at)))
        .filter(|&(k, at)| {
            reqs[k + 1..].iter().any(|n| {
                let answered = n.reply.map_or(n.sent + t_s, |(a, _)| a.min(n.sent + t_s));
                n.sent < at && at < answered
            })
        })
        .count();
    assert!(
        hazards > 0,
        "no late reply arrived while a later request waited; the test proves nothing"
    );
    // After a timeout the link reconnects: nothing more is asked on that connection.
    for &k in &late {
        assert!(
            reqs[k + 1..].iter().all(|n| n.conn != reqs[k].conn),
            "request {k} timed out on {} and that connection was used again",
            reqs[k].conn
        );
    }
    eprintln!(
        "late replies ({listen}): {} requests, {} without a value, {hazards} late replies sent \
         while a later request waited; {} connections; poll exit {}",
        reqs.len(),
        late.len(),
        stats["connects"],
        r.code
    );
}

#[test]
fn poll_never_takes_a_late_reply_for_the_next_answer_over_modbus_tcp() {
    // README, poll: "after a timeout … it reconnects (a late reply can never be taken as the next
    // answer)".
    late_replies_never_taken("--modbus", "--modbus-port");
}

#[test]
fn poll_never_takes_a_late_reply_for_the_next_answer_over_rtu_over_tcp() {
    // RTU frames carry no transaction ID: only a fresh socket keeps a late reply out.
    late_replies_never_taken("--rtu-tcp", "--rtu-port");
}

#[test]
fn poll_never_takes_a_late_reply_for_the_next_answer_on_a_serial_line() {
    // README, serial: "after a timeout lets the line settle and drains late bytes, so a late
    // reply is never taken as the next answer"; DESIGN §2: "after a failure the line must stay
    // quiet for half the timeout and late bytes are drained". Replies delayed 1.25 T arrive
    // within that half timeout. No recording on a serial port: two registers with constant,
    // different values, so a reply taken for the other request shows as the other's value.
    const A: u16 = 1111;
    const B: u16 = 2222;
    let Some(pair) = PtyPair::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prof = file(
        dir.path(),
        "two.toml",
        &u16_profile("two", &[("a", "hr:0", A), ("b", "hr:10", B)]),
    );
    let fault = late_fault(T_MS * 5 / 4);
    let fault: Vec<&str> = fault.iter().map(String::as_str).collect();
    let _sim = RtuSim::serial(p(&prof), &pair.a, &fault);
    let target = format!("rtu://{}?baud=19200&frame=8N1&unit=1", pair.b);
    let (_, rows, stats) = late_poll(&target, &prof);
    let mut values = 0;
    for row in &rows {
        for (k, v) in [("a", A), ("b", B)] {
            if !row[k].is_null() {
                assert_eq!(
                    row[k], v,
                    "point {k} shows the other register's value: {row}"
                );
                values += 1;
            }
        }
    }
    let timeouts = stats["errors"]["timeout"].as_u64().unwrap_or(0);
    assert_eq!(
        stats["sent"].as_u64().unwrap(),
        2 * ROUNDS as u64,
        "{stats}"
    );
    assert_eq!(stats["received"].as_u64().unwrap(), values, "{stats}");
    assert_eq!(values + timeouts, 2 * ROUNDS as u64, "{stats}");
    assert!(
        timeouts > 0 && values > 0,
        "a mix of late and timely replies: {stats}"
    );
    eprintln!("late replies (serial): {values} answers, {timeouts} timeouts, all values right");
}

// --- 4. max_registers ---------------------------------------------------------------------------

/// Fewest requests of at most `max` registers for `items` (start, length), where only
/// contiguous items may share a request and no item is split (greedy is optimal here).
fn fewest_requests(items: &[(u16, u16)], max: u16) -> usize {
    let mut n = 0;
    let mut cur: Option<(u16, u16)> = None; // (start, end)
    for &(s, len) in items {
        cur = match cur {
            Some((a, e)) if e == s && s + len - a <= max => Some((a, s + len)),
            _ => {
                n += 1;
                Some((s, s + len))
            }
        };
    }
    n
}

#[test]
fn max_registers_splits_requests_on_the_wire_and_values_stay_right() {
    // README: snapshot reads "batched within the device's limits (`max_registers` in the
    // profile)"; DESIGN §3: never across a value, only contiguous items share a request.
    const MAX: u16 = 4;
    // (name, address, type, registers, value)
    let points: [(&str, u16, &str, u16, Value); 11] = [
        ("p0", 0, "u16", 1, json!(100)),
        ("p1", 1, "u16", 1, json!(101)),
        ("p2", 2, "u16", 1, json!(102)),
        ("p3", 3, "u32", 2, json!(70000)),
        ("p4", 5, "u16", 1, json!(105)),
        ("p5", 6, "f32", 2, json!(12.5)),
        ("p6", 8, "u16", 1, json!(108)),
        ("q0", 20, "u16", 1, json!(120)),
        ("q1", 21, "u16", 1, json!(121)),
        ("q2", 22, "u16", 1, json!(122)),
        ("q3", 23, "u16", 1, json!(123)),
    ];
    let body: String = points
        .iter()
        .map(|(n, a, t, _, v)| {
            format!("\n[[point]]\nname = \"{n}\"\naddress = \"hr:{a}\"\ntype = \"{t}\"\nsim = {{ value = {v} }}\n")
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let limited = file(
        dir.path(),
        "limited.toml",
        &format!("[device]\nname = \"split\"\nmax_registers = {MAX}\n{body}"),
    );
    let unlimited = file(
        dir.path(),
        "unlimited.toml",
        &format!("[device]\nname = \"split\"\n{body}"),
    );
    let items: Vec<(u16, u16)> = points.iter().map(|p| (p.1, p.3)).collect();
    let cap = dir.path().join("split.pcapng");
    let sim = recording_sim(p(&limited), &["--modbus", "127.0.0.1:0"], &cap, &[]);
    // One snapshot with the limit, then one without, each on its own connection.
    for (prof, out) in [(&limited, "limited.json"), (&unlimited, "unlimited.json")] {
        let out = dir.path().join(out);
        let r = run(&[
            "snapshot",
            &sim.modbus_target(1),
            "--profile",
            p(prof),
            "-o",
            p(&out),
        ]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let snap: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let got: Vec<(String, Value)> = snap["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_string(), p["value"].clone()))
            .collect();
        let want: Vec<(String, Value)> = points
            .iter()
            .map(|p| (p.0.to_string(), p.4.clone()))
            .collect();
        assert_eq!(got, want, "{}", prof.display());
    }
    sim.stop();
    let all = pdus(&cap, &[]);
    let reads: Vec<&Value> = queries(&all)
        .into_iter()
        .filter(|q| q["func_code"] == 3)
        .collect();
    let conns: Vec<u64> = reads
        .iter()
        .map(|q| q["sport"].as_u64().unwrap())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(conns.len(), 2, "two snapshots, two connections");
    let first_conn = reads[0]["sport"].as_u64().unwrap();
    let mut figures = Vec::new();
    for (label, conn, max) in [
        ("max_registers = 4", first_conn, MAX),
        (
            "no max_registers",
            *conns.iter().find(|&&c| c != first_conn).unwrap(),
            125,
        ),
    ] {
        let ranges: Vec<(u16, u16)> = reads
            .iter()
            .filter(|q| q["sport"] == conn)
            .map(|q| {
                let a = q["address"].as_u64().unwrap() as u16;
                (a, a + q["count"].as_u64().unwrap() as u16)
            })
            .collect();
        assert!(
            ranges.iter().all(|(a, e)| e - a <= max),
            "{label}: a request above {max} registers: {ranges:?}"
        );
        for (n, a, _, len, _) in &points {
            let holding = ranges
                .iter()
                .filter(|(s, e)| s <= a && a + len <= *e)
                .count();
            assert_eq!(
                holding, 1,
                "{label}: point {n} (hr:{a}+{len}) in {holding} requests: {ranges:?}"
            );
        }
        // Nothing read but the points' registers, nothing read twice.
        let mut read: Vec<u16> = ranges.iter().flat_map(|&(a, e)| a..e).collect();
        read.sort_unstable();
        let mut wanted: Vec<u16> = items.iter().flat_map(|&(a, l)| a..a + l).collect();
        wanted.sort_unstable();
        assert_eq!(read, wanted, "{label}: {ranges:?}");
        let fewest = fewest_requests(&items, max);
        assert_eq!(ranges.len(), fewest, "{label}: {ranges:?}");
        figures.push(format!("{label}: {} requests {ranges:?}", ranges.len()));
    }
    eprintln!("max_registers: {}", figures.join("; "));
}

// --- 5. scan --units against pymodbus -------------------------------------------------------------

#[test]
fn scan_units_lists_the_units_that_answer() {
    // README: "`scan modbus://HOST --units 1-10` lists the unit IDs that answer"; DESIGN §6: exit
    // 0 when a unit answered, 2 when none did. pymodbus serves units 1 and 2; what it answers
    // for the others is asked of pymodbus's own client first.
    let Some(py) = python() else { return };
    let peer = PyModbus::start(&py);
    let out = pymodbus_client(
        &py,
        peer.port,
        "import json\nout = {}\nfor u in range(0, 6):\n    r = c.read_holding_registers(0, count=1, device_id=u)\n    out[u] = ('exception', r.exception_code) if r.isError() else ('data', r.registers[0])\nprint(json.dumps(out))",
    );
    let truth: BTreeMap<String, (String, u64)> =
        serde_json::from_str(&out).expect("pymodbus client JSON");
    let r = run(&[
        "scan",
        &format!("modbus://127.0.0.1:{}", peer.port),
        "--units",
        "0-5",
        "-v",
        "--format",
        "json",
    ]);
    let rows = r.json().as_array().unwrap().clone();
    let mut present = BTreeSet::new();
    for row in &rows {
        let unit = row["unit"].as_u64().unwrap();
        let (kind, v) = &truth[&unit.to_string()];
        // Present: data, or any exception but a gateway's 0x0A/0x0B (DESIGN §2, scan).
        let answers = kind == "data" || !matches!(v, 0x0A | 0x0B);
        assert_eq!(
            row["present"], answers,
            "unit {unit}: pymodbus {kind} {v}: {row}"
        );
        let answer = row["answer"].as_str().unwrap();
        if kind == "data" {
            assert_eq!(answer, "hr:0 read", "{row}");
        } else {
            assert!(
                answer.starts_with(&format!("0x{v:02X} ")),
                "pymodbus exception {v}: {row}"
            );
        }
        if answers {
            present.insert(unit);
        }
    }
    assert_eq!(rows.len(), 6, "-v lists every unit tried: {}", r.stdout);
    assert!(present.contains(&1) && present.contains(&2), "{}", r.stdout);
    assert_eq!(r.code, 0, "{}", r.stderr);
    eprintln!("scan pymodbus units 0-5: present {present:?}; pymodbus answers {truth:?}");

    // Units that are not there: the simulator serves 2 and 4 and answers the others with the
    // gateway's 0x0B; none of 1, 3, 5 answering is exit 2.
    let sim = RtuSim::start(
        "demo-line.toml",
        &["--modbus", "127.0.0.1:0"],
        &["--units", "2,4"],
    );
    let host = sim.url("modbus://").to_string();
    let r = run(&["scan", &host, "--units", "1-5", "-v", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let found: Vec<(u64, bool)> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["unit"].as_u64().unwrap(),
                row["present"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [(1, false), (2, true), (3, false), (4, true), (5, false)],
        "{}",
        r.stdout
    );
    let r = run(&["scan", &host, "--units", "1,3,5"]);
    assert_eq!(r.code, 2, "no unit answered: {}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no unit answered") || r.stdout.contains("no unit answered"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}

// --- 6. FC43 not available ------------------------------------------------------------------------

#[test]
fn identity_is_not_available_when_the_device_refuses_fc43() {
    // README: snapshot records the FC43 identity, "'not available' when the device does not
    // answer FC43". A profile without [device.identity]: the simulator refuses FC43.
    let dir = tempfile::tempdir().unwrap();
    let prof = file(
        dir.path(),
        "bare.toml",
        &u16_profile("bare", &[("level", "hr:0", 1111)]),
    );
    let cap = dir.path().join("bare.pcapng");
    let sim = recording_sim(p(&prof), &["--modbus", "127.0.0.1:0"], &cap, &[]);
    let out = dir.path().join("snap.json");
    let r = run(&[
        "snapshot",
        &sim.modbus_target(1),
        "--profile",
        p(&prof),
        "-o",
        p(&out),
    ]);
    assert_eq!(r.code, 0, "the points were read: {}{}", r.stdout, r.stderr);
    let pl = plan(
        dir.path(),
        "plan.toml",
        "rate = 1000.0\npoll = 1",
        &[("bare".into(), sim.modbus_target(1))],
        p(&prof),
    );
    let (c, doc) = check(&pl);
    sim.stop();
    // What the device answered to FC43, from the capture.
    let all = pdus(&cap, &[]);
    let fc43: Vec<&Value> = all
        .iter()
        .filter(|r| r["dir"] == "response" && r["func_code"] == 43)
        .collect();
    assert!(!fc43.is_empty(), "plcprobe asked for the identity");
    assert!(
        fc43.iter().all(|r| r["exception"] == true),
        "the simulator refused FC43: {fc43:?}"
    );
    let code = fc43[0]["exception_code"].as_u64().unwrap();
    let why = format!("not available: 0x{code:02X} ");
    assert!(
        r.stdout.contains(&format!("identity {why}")),
        "{}",
        r.stdout
    );
    let snap: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(snap["identity"], Value::Null, "{snap}");
    assert!(
        snap["identity_status"].as_str().unwrap().starts_with(&why),
        "{snap}"
    );
    assert_eq!(snap["points"][0]["value"], 1111);
    // check: the same words; a device without FC43 is not a problem.
    let dev = &doc["devices"][0];
    assert!(
        dev["identity_status"].as_str().unwrap().starts_with(&why),
        "{dev}"
    );
    assert_eq!(
        (dev["status"].as_str().unwrap(), c.code),
        ("OK", 0),
        "{dev}"
    );

    // pymodbus answers FC43, with no objects: nothing is made up.
    let Some(py) = python() else { return };
    let peer = PyModbus::start(&py);
    let out = pymodbus_client(
        &py,
        peer.port,
        "r = c.read_device_information(read_code=2, object_id=0, device_id=1)\nprint(r.isError(), len(getattr(r, 'information', {}) or {}))",
    );
    let objects: usize = match out.split_whitespace().collect::<Vec<_>>()[..] {
        ["False", n] => n.parse().unwrap(),
        ref other => panic!("pymodbus FC43: {other:?}"),
    };
    let pyprof = file(
        dir.path(),
        "py.toml",
        &u16_profile("py", &[("unit", "hr:0", 0)]),
    );
    let out = dir.path().join("py.json");
    let r = run(&[
        "snapshot",
        &peer.target(1),
        "--profile",
        p(&pyprof),
        "-o",
        p(&out),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let snap: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        snap["points"][0]["value"], 1,
        "pymodbus hr:0 is the unit ID"
    );
    let got = snap["identity"].as_object().map_or(0, serde_json::Map::len);
    assert_eq!(got, objects, "pymodbus sent {objects} FC43 objects: {snap}");
    if objects == 0 {
        // An answer with no objects is no identity: "not available", as for a refusal.
        assert!(
            snap["identity"].is_null()
                && snap["identity_status"]
                    .as_str()
                    .unwrap()
                    .starts_with("not available"),
            "{snap}"
        );
    }
    eprintln!(
        "FC43: sim without identity → {:?}; pymodbus ({objects} objects) → identity {} / {:?}",
        dev["identity_status"], snap["identity"], snap["identity_status"]
    );
}
