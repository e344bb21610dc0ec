//! What plcprobe does on a terminal and on a pipe (README "Global flags", DESIGN.md §1): the
//! `status` column is coloured with `--color always` (even on a pipe), on a terminal with
//! `--color auto` unless `NO_COLOR` is set to something, never with `--color never`; progress
//! bars are drawn on stderr only when it is a terminal and `--no-progress` is absent.
//!
//! The terminal is a real pseudo-terminal: `script -qfec CMD /dev/null` (util-linux) runs CMD
//! with stdin, stdout and stderr on a new pty and copies what it writes to our pipe. The
//! servers are `plcprobe sim` on loopback.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::util::{self, bin, tool, Guard, Sim};

/// Output of a command run on a pseudo-terminal (stdout and stderr both went to it).
struct Pty {
    code: i32,
    out: String,
}

/// `s` quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Run plcprobe with `args` on a pseudo-terminal 200 columns wide, with `env` set (and
/// `NO_COLOR` unset unless given). None (after `missing_peer`) when `script` is missing.
fn on_pty(args: &[&str], env: &[(&str, &str)]) -> Option<Pty> {
    let script = tool("script")?;
    // A pty made by `script` without a terminal of its own has 0 columns: give it a width.
    let mut line = format!(
        "stty cols 200 rows 50 && exec {}",
        sh_quote(env!("CARGO_BIN_EXE_plcprobe"))
    );
    for a in args {
        line.push(' ');
        line.push_str(&sh_quote(a));
    }
    let mut cmd = Command::new(script);
    cmd.args(["-qfec", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .env("PLCPROBE_TEST", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run script");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let mut child = Guard(child);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait for script") {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "plcprobe {args:?} on a pty did not end within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(e) = child.0.stderr.as_mut() {
        let _ = e.read_to_string(&mut err);
    }
    let out = String::from_utf8_lossy(&reader.join().expect("reader")).into_owned();
    assert!(err.is_empty(), "script itself complained: {err}");
    Some(Pty {
        code: status.code().unwrap_or(-1),
        out,
    })
}

/// The colour escape sequences in `s`: SGR (ESC `[` digits and `;` then `m`) with parameters
/// other than a bare reset (`ESC[m`, `ESC[0m` set no colour).
fn colours(s: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("\x1b[") {
        let after = &rest[i + 2..];
        let n = after
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(after.len());
        if after[n..].starts_with('m')
            && !after[..n].trim_matches(|c| c == '0' || c == ';').is_empty()
        {
            found.push(&rest[i..=i + 2 + n]);
        }
        rest = &rest[i + 2..];
    }
    found
}

/// `read` of three `ok` rows from `target` with `extra` flags: the status column is coloured
/// when colour is on. No progress bar, so the only escape sequences can be colours.
fn read_args(target: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["read", target, "hr:104..107", "--no-progress"];
    a.extend_from_slice(extra);
    a.into_iter().map(String::from).collect()
}

/// `args` on a pipe with `NO_COLOR` unset or set to `no_color`: its stdout (checked: exit 0,
/// the rows there, no escape codes on stderr).
fn read_on_pipe(args: &[String], no_color: Option<&str>) -> String {
    let mut c = bin();
    if let Some(v) = no_color {
        c.env("NO_COLOR", v);
    }
    let r = util::run_cmd(c, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    assert!(r.stdout.contains("hr:104"), "{args:?}: {}", r.stdout);
    assert!(!r.stderr.contains('\x1b'), "{args:?}: {:?}", r.stderr);
    r.stdout
}

/// `args` on a pty with `env`: its output (checked: exit 0, the rows there). None when
/// `script` is missing.
fn read_on_pty(args: &[String], env: &[(&str, &str)]) -> Option<String> {
    let p = on_pty(&args.iter().map(String::as_str).collect::<Vec<_>>(), env)?;
    assert_eq!(p.code, 0, "{args:?} {env:?}: {}", p.out);
    assert!(p.out.contains("hr:104"), "{args:?} {env:?}: {}", p.out);
    Some(p.out)
}

/// Coloured: the `ok` cells are green (comfy-table's 256-colour 10). Not coloured: no escape
/// sequence at all (not even the resets of a colour that was asked for and then dropped).
fn assert_colour(out: &str, coloured: bool, case: &str) {
    if coloured {
        assert!(
            !colours(out).is_empty() && out.contains("\x1b[38;5;10m ok"),
            "{case}: not coloured:\n{out:?}"
        );
    } else {
        assert!(!out.contains('\x1b'), "{case}: escape codes:\n{out:?}");
    }
}

#[test]
fn colour_follows_color_and_no_color() {
    let sim = Sim::start("demo-line.toml", &[]);
    let target = sim.target(1);
    // On a pipe: only --color always colours.
    for (extra, no_color, coloured) in [
        (&["--color", "always"][..], None, true),
        (&[][..], None, false),
        (&["--color", "auto"][..], None, false),
        (&["--color", "never"][..], None, false),
        (&[][..], Some("1"), false),
    ] {
        let out = read_on_pipe(&read_args(&target, extra), no_color);
        assert_colour(
            &out,
            coloured,
            &format!("pipe, {extra:?}, NO_COLOR={no_color:?}"),
        );
    }
    // On a terminal: auto colours unless NO_COLOR is set and not empty; never does not.
    for (extra, env, coloured) in [
        (&[][..], &[][..], true),
        (&["--color", "auto"][..], &[][..], true),
        (&[][..], &[("NO_COLOR", "1")][..], false),
        (&[][..], &[("NO_COLOR", "")][..], true),
        (&["--color", "never"][..], &[][..], false),
        (&["--color", "always"][..], &[][..], true),
    ] {
        let Some(out) = read_on_pty(&read_args(&target, extra), env) else {
            return;
        };
        assert_colour(&out, coloured, &format!("pty, {extra:?}, {env:?}"));
    }
}

/// DESIGN.md §1: `NO_COLOR` only changes what `auto` means; `--color always` colours anyway
/// (as no-color.org asks: an explicit flag overrides the variable).
#[test]
fn color_always_wins_over_no_color() {
    let sim = Sim::start("demo-line.toml", &[]);
    let args = read_args(&sim.target(1), &["--color", "always"]);
    let out = read_on_pipe(&args, Some("1"));
    assert_colour(&out, true, "pipe, --color always, NO_COLOR=1");
    let Some(out) = read_on_pty(&args, &[("NO_COLOR", "1")]) else {
        return;
    };
    assert_colour(&out, true, "pty, --color always, NO_COLOR=1");
}

/// A plan of three devices (units 1–3 of `sim`) polled 3 rounds at 40, 20 and 10
/// requests/s: the devices finish one after the other, about a second apart at most.
fn staggered_plan(dir: &std::path::Path, sim: &Sim) -> std::path::PathBuf {
    let mut t = String::from("[defaults]\npoll = 3\ntimeout = \"1s\"\n");
    for (unit, rate) in [(1, 40.0), (2, 20.0), (3, 10.0)] {
        t += &format!(
            "\n[[device]]\nname = \"unit{unit}\"\ntarget = \"{}\"\nprofile = \"{}\"\nrate = {rate}\n",
            sim.target(unit),
            util::profile("demo-line.toml")
        );
    }
    let p = dir.join("plan.toml");
    std::fs::write(&p, t).unwrap();
    p
}

#[test]
fn progress_bars_only_on_a_terminal() {
    let Some(_) = tool("script") else { return };
    let sim = Sim::start("demo-line.toml", &["--units", "1-3"]);
    let dir = tempfile::tempdir().unwrap();
    let plan = staggered_plan(dir.path(), &sim);
    let plan = plan.to_str().unwrap();
    // The bar: `{spinner} checking [{bar}] {pos}/{len} {elapsed}`. indicatif draws the first
    // state and every step of a short run (it limits drawing to ~20 a second, with a burst
    // allowance larger than these four steps), so each step shows on a terminal.
    let t0 = Instant::now();
    let p = on_pty(&["check", plan], &[]).expect("script is there");
    let took = t0.elapsed();
    assert_eq!(p.code, 0, "{}", p.out);
    assert!(p.out.contains("PLCPROBE OK"), "{}", p.out);
    let mut at = 0;
    for step in ["checking [", "] 0/3 ", "] 1/3 ", "] 2/3 ", "] 3/3 "] {
        let i = p.out[at..].find(step).unwrap_or_else(|| {
            panic!(
                "no `{step}` after byte {at} on the pty ({took:?}):\n{:?}",
                p.out
            )
        });
        at += i;
    }
    // The bar is cleared before the table: the verdict comes after the last step.
    assert!(p.out[at..].contains("PLCPROBE OK"), "{:?}", p.out);

    // --no-progress on a terminal: no bar, same result.
    let p = on_pty(&["check", plan, "--no-progress"], &[]).expect("script is there");
    assert_eq!(p.code, 0, "{}", p.out);
    assert!(p.out.contains("PLCPROBE OK"), "{}", p.out);
    assert!(!p.out.contains("checking"), "{:?}", p.out);
    assert!(!p.out.contains("\x1b[2K"), "no line clearing: {:?}", p.out);

    // On a pipe: nothing on stderr at all (no bar, no escape codes), the table on stdout.
    let r = util::run(&["check", plan]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("PLCPROBE OK"), "{}", r.stdout);
    assert_eq!(r.stderr, "", "stderr on a pipe");
    assert!(!r.stdout.contains('\x1b'), "{:?}", r.stdout);
}

/// `capture` on a terminal: the summary refreshed in place while capturing (devices and their
/// requests), then the final summary; on a pipe (tests/capture.rs) only what was asked.
#[test]
fn capture_refreshes_its_summary_in_place_on_a_terminal() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        util::skip("live capture needs root (CAP_NET_RAW); CI runs as root");
        return;
    }
    let sim = Sim::start("demo-line.toml", &[]);
    let port = sim.addrs[0].port().to_string();
    let target = sim.target(1);
    let poller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        util::run(&["poll", &target, "hr:100", "-i", "50ms", "-c", "40"])
    });
    let Some(pty) = on_pty(
        &[
            "capture",
            "-i",
            "lo",
            "--no-detect",
            "--modbus-port",
            &port,
            "--duration",
            "4s",
        ],
        &[],
    ) else {
        return;
    };
    assert_eq!(poller.join().unwrap().code, 0);
    assert_eq!(pty.code, 0, "{}", pty.out);
    let device = format!("127.0.0.1:{port}/1");
    // The live view names the interface, the rate and the device while it captures…
    let live = pty
        .out
        .split("capturing on lo:")
        .skip(1)
        .find(|v| v.contains(&device))
        .unwrap_or_else(|| panic!("no live view with the device:\n{}", pty.out));
    assert!(live.contains("requests/s"), "{live}");
    // …and is cleared for the final summary, which has the device's 40 requests.
    assert!(pty.out.contains("Devices"), "{}", pty.out);
    assert!(pty.out.contains("40 transactions"), "{}", pty.out);
}
