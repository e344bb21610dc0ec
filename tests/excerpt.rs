//! `decode FILE --from T --to T -w OUT.pcapng`: capture excerpts checked against tshark (the
//! independent reader): the excerpt opens without a warning, holds exactly the packets tshark's
//! own time filter keeps on the input, with the same timestamps (to the nanosecond), interfaces
//! (link type, snaplen, resolution: capinfos) and lengths. Inputs: the project's fixture, its
//! pcap (µs) and nanosecond pcap rewrites and a two-interface merge (editcap, mergecap), a
//! capture shifted across midnight, and a public capture of `../shared/captures/`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::util::{root, run, skip, tool, tshark};

fn fixture() -> PathBuf {
    root().join("fixtures/pcap/modbus/sim-poll-exceptions-write.pcapng")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Per packet: time (epoch, ns), interface, captured and wire length.
const FIELDS: [&str; 10] = [
    "-T",
    "fields",
    "-e",
    "frame.time_epoch",
    "-e",
    "frame.interface_id",
    "-e",
    "frame.cap_len",
    "-e",
    "frame.len",
];

/// The epoch times of a file's packets as tshark prints them.
fn times(file: &Path) -> Vec<String> {
    tshark(file, &["-T", "fields", "-e", "frame.time_epoch"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// What capinfos says of each interface: encapsulation, snaplen, precision, ticks per second.
fn interfaces(file: &Path) -> Vec<String> {
    let out = Command::new("capinfos")
        .arg("-M")
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "capinfos {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("Interface #")
                || l.starts_with("Encapsulation")
                || l.starts_with("Capture length")
                || l.starts_with("Time precision")
                || l.starts_with("Time ticks per second")
        })
        .map(str::to_string)
        .collect()
}

/// The UTC clock time (`HH:MM:SS.nnnnnnnnn`) of an epoch time text as tshark prints it.
fn clock(epoch: &str) -> String {
    let (secs, frac) = epoch.split_once('.').unwrap();
    let secs: i64 = secs.parse().unwrap();
    let frac = format!("{frac:0<9}");
    let tod = secs.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{frac}",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    )
}

/// Cut `input` to `[from, to)` (texts as typed) into `out`, then compare the excerpt with
/// tshark's `frame.time_epoch` filter on the input (`from_epoch`, `to_epoch`), field by field.
fn cut_and_compare(input: &Path, out: &Path, window: (&str, &str), epochs: (&str, &str)) -> usize {
    let r = run(&[
        "decode",
        s(input),
        "--from",
        window.0,
        "--to",
        window.1,
        "-w",
        s(out),
        "-q",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let filter = format!(
        "frame.time_epoch >= {} && frame.time_epoch < {}",
        epochs.0, epochs.1
    );
    let mut args = vec!["-Y", filter.as_str()];
    args.extend(FIELDS);
    // A pcap file has one interface and tshark gives it no number: the excerpt numbers it 0.
    let expected: String = tshark(input, &args)
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split('\t').collect();
            if f[1].is_empty() {
                f[1] = "0";
            }
            f.join("\t") + "\n"
        })
        .collect();
    let got = tshark(out, &FIELDS);
    assert!(!got.is_empty(), "an empty excerpt proves nothing");
    assert_eq!(got, expected, "excerpt of {} vs tshark", input.display());
    assert_eq!(interfaces(out), interfaces(input), "interfaces");
    got.lines().count()
}

#[test]
fn an_excerpt_holds_what_tshark_filters_with_the_same_times_and_interfaces() {
    let (Some(_), Some(_), Some(_), Some(_)) = (
        tool("tshark"),
        tool("capinfos"),
        tool("editcap"),
        tool("mergecap"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pcapng = fixture();
    // The same packets as a µs pcap (shifted 100 µs) and a nanosecond pcap; and a pcapng with
    // two interfaces, one in ns and one in µs, their packets interleaved.
    let us = dir.path().join("us.pcap");
    let ns = dir.path().join("ns.pcap");
    let merged = dir.path().join("merged.pcapng");
    for (args, what) in [
        (
            vec!["-F", "pcap", "-t", "0.0001", s(&pcapng), s(&us)],
            "pcap",
        ),
        (vec!["-F", "nsecpcap", s(&pcapng), s(&ns)], "nsecpcap"),
    ] {
        let st = Command::new("editcap").args(&args).output().unwrap();
        assert!(st.status.success(), "editcap {what}");
    }
    let st = Command::new("mergecap")
        .args(["-F", "pcapng", "-w", s(&merged), s(&pcapng), s(&us)])
        .output()
        .unwrap();
    assert!(st.status.success(), "mergecap");
    for input in [&pcapng, &us, &ns, &merged] {
        let t = times(input);
        assert!(t.len() >= 150, "{}", input.display());
        // The 40th packet's time up to the 120th's: clock times, the ns digits included.
        let (a, b) = (&t[39], &t[119]);
        let out = dir.path().join("excerpt.pcapng");
        let n = cut_and_compare(input, &out, (&clock(a), &clock(b)), (a, b));
        assert!(n >= 80, "{}: {n} packets", input.display());
        // RFC 3339 with an offset says the same instants.
        let (secs, frac) = a.split_once('.').unwrap();
        let plus_one =
            chrono::DateTime::from_timestamp(secs.parse::<i64>().unwrap() + 3600, 0).unwrap();
        let from = format!("{}.{frac}+01:00", plus_one.format("%Y-%m-%dT%H:%M:%S"));
        let out2 = dir.path().join("excerpt2.pcapng");
        let n2 = cut_and_compare(input, &out2, (&from, &clock(b)), (a, b));
        assert_eq!(n2, n, "{from}");
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&out2).unwrap(),
            "the same window, the same bytes"
        );
    }
}

#[test]
fn a_clock_time_before_the_first_packets_time_of_day_is_the_next_day() {
    let (Some(_), Some(_)) = (tool("tshark"), tool("editcap")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let t = times(&fixture());
    // Shift the capture to start 0.2 s before a midnight: it ends 0.3 s after it.
    let first: f64 = t[0].parse().unwrap();
    let midnight = (first / 86_400.0).ceil() * 86_400.0;
    let shift = midnight - 0.2 - first;
    let night = dir.path().join("night.pcapng");
    let st = Command::new("editcap")
        .args(["-t", &format!("{shift:.9}"), s(&fixture()), s(&night)])
        .output()
        .unwrap();
    assert!(st.status.success());
    let out = dir.path().join("after-midnight.pcapng");
    let r = run(&["decode", s(&night), "--from", "00:00", "-w", s(&out), "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = tshark(
        &night,
        &[
            "-Y",
            &format!("frame.time_epoch >= {midnight}"),
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
        ],
    );
    let got = tshark(&out, &["-T", "fields", "-e", "frame.time_epoch"]);
    assert!(!got.is_empty() && got.lines().count() < t.len());
    assert_eq!(got, after);
    // `--to 00:00` alone: the packets before midnight.
    let r = run(&["decode", s(&night), "--to", "00:00", "-w", s(&out), "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        tshark(&out, &["-T", "fields", "-e", "frame.time_epoch"])
            .lines()
            .count()
            + after.lines().count(),
        t.len()
    );
}

#[test]
fn the_summary_describes_the_window_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let t = times_or_skip();
    let Some(t) = t else { return };
    let out = dir.path().join("w.pcapng");
    let r = run(&[
        "decode",
        s(&fixture()),
        "--from",
        &clock(&t[10]),
        "--to",
        &clock(&t[100]),
        "-w",
        s(&out),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let windowed = r.json();
    assert_eq!(windowed["window"]["packets"], 90);
    assert!(
        r.stderr.contains("90 of 158 packets written"),
        "{}",
        r.stderr
    );
    let whole = run(&["decode", s(&out), "--format", "json"]).json();
    for k in [
        "requests",
        "responses",
        "exceptions",
        "unanswered",
        "writes",
    ] {
        assert_eq!(windowed["totals"][k], whole["totals"][k], "{k}");
    }
    let all = run(&["decode", s(&fixture()), "--format", "json"]).json();
    assert_ne!(
        all["totals"]["transactions"],
        windowed["totals"]["transactions"]
    );
}

fn times_or_skip() -> Option<Vec<String>> {
    tool("tshark")?;
    Some(times(&fixture()))
}

#[test]
fn bad_windows_exit_3_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.pcapng");
    let f = fixture();
    let cases: [(&[&str], &str); 5] = [
        (&["--from", "half past two"], "--from `half past two` is not a time"),
        (&["--to", "2026-13-01T00:00:00Z"], "--to `2026-13-01T00:00:00Z` is not a time"),
        (
            &["--from", "2026-11-24T00:52:00Z", "--to", "2026-11-24T00:51:00Z"],
            "is not after --from",
        ),
        (
            &["--from", "2026-11-25T00:00:00Z"],
            "the capture runs from 2026-11-24T00:51:39.968224731Z to 2026-11-24T00:51:40.487666705Z",
        ),
        (&["--to", "2026-11-24T00:51:39.9Z"], "no packet of"),
    ];
    for (window, says) in cases {
        let mut args = vec!["decode", s(&f)];
        args.extend(window);
        args.extend(["-w", s(&out)]);
        let r = run(&args);
        assert_eq!(r.code, 3, "{window:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{window:?}: {}", r.stderr);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{window:?}: nothing written, no temporary left"
        );
    }
    // Not a capture: exit 3, nothing written.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a capture at all").unwrap();
    let r = run(&["decode", s(&text), "--from", "00:00", "-w", s(&out)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(!out.exists());
    let r = run(&["decode", s(&f), "-w", s(&f)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("is the capture being read"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_excerpt_of_a_public_capture_agrees_with_tshark() {
    let (Some(_), Some(_)) = (tool("tshark"), tool("capinfos")) else {
        return;
    };
    let input = root().join("../shared/captures/modbus-tcp/fc3_fc4_polling_retransmissions.pcap");
    if !input.exists() {
        skip(&format!("{} is absent", input.display()));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = times(&input);
    assert!(t.len() > 20);
    let (a, b) = (&t[t.len() / 4], &t[t.len() * 3 / 4]);
    let out = dir.path().join("public.pcapng");
    let n = cut_and_compare(&input, &out, (&clock(a), &clock(b)), (a, b));
    assert!(n > 0);
}
