//! Usage, bad input and exit codes: every refusal is one clear paragraph and exit 3.

use crate::util::{profile, run};

#[test]
fn version_and_help() {
    let r = run(&["--version"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("plcprobe "), "{}", r.stdout);
    for cmd in ["read", "poll", "write", "sim", "demo", "completions"] {
        let r = run(&[cmd, "--help"]);
        assert_eq!(r.code, 0, "{cmd} --help");
        assert!(
            r.stdout.contains("Example"),
            "{cmd} --help has an example:\n{}",
            r.stdout
        );
    }
    let r = run(&["--help"]);
    assert!(r.stdout.contains("Exit codes"), "{}", r.stdout);
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let r = run(&["completions", shell]);
        assert_eq!(r.code, 0, "{shell}");
        assert!(r.stdout.contains("plcprobe"), "{shell}");
    }
}

#[test]
fn bad_usage_is_unknown_3() {
    let r = run(&["read", "--no-such-flag"]);
    assert_eq!(r.code, 3, "clap errors map to 3, not 2: {}", r.stderr);
    let r = run(&["frobnicate"]);
    assert_eq!(r.code, 3);
}

#[test]
fn bad_targets_addresses_and_types() {
    let cases: &[(&[&str], &str)] = &[
        (&["read", "modbus//127.0.0.1", "hr:0"], "no scheme"),
        (&["read", "192.0.2.10", "hr:0"], "no scheme"),
        (
            &["read", "http://127.0.0.1", "hr:0"],
            "unknown scheme `http`",
        ),
        (
            &["read", "modbus://127.0.0.1:99999/1", "hr:0"],
            "port `99999`",
        ),
        (
            &["read", "modbus://127.0.0.1/1", "xx:5"],
            "unknown table `xx`",
        ),
        (&["read", "modbus://127.0.0.1/1", "40000"], "1-based"),
        (&["read", "modbus://127.0.0.1/1", "hr:10..5"], "is empty"),
        (
            &["read", "modbus://127.0.0.1/1", "hr:0", "--type", "f16"],
            "unknown type `f16`",
        ),
        (
            &[
                "read",
                "modbus://127.0.0.1/1",
                "hr:0",
                "--type",
                "f32",
                "--order",
                "acbd",
            ],
            "unknown word/byte order",
        ),
        (
            &["read", "modbus://127.0.0.1/1", "hr:0..3", "--type", "f32"],
            "whole number",
        ),
        (&["read", "modbus://127.0.0.1/1"], "nothing to read"),
        (&["read", "hr:0"], "no target"),
        (
            &["read", "rtu:///dev/plcprobe-no-such-port", "hr:0"],
            "no such serial port",
        ),
        (
            &[
                "read",
                "modbus://127.0.0.1:1/1",
                "opc.tcp://127.0.0.1:1",
                "--profile",
                "profiles/demo-line.toml",
            ],
            "read into different columns",
        ),
        (
            &["read", "opc.tcp://127.0.0.1", "hr:0"],
            "is not a NodeId or browse path",
        ),
        (
            &[
                "write",
                "modbus://127.0.0.1/1",
                "hr:0",
                "70000",
                "--allow-write",
            ],
            "0 to 65535",
        ),
        (
            &[
                "write",
                "modbus://127.0.0.1/1",
                "ir:0",
                "1",
                "--allow-write",
            ],
            "read-only",
        ),
        (
            &[
                "write",
                "modbus://127.0.0.1/1",
                "co:0",
                "maybe",
                "--allow-write",
            ],
            "not a coil value",
        ),
        (
            &["read", "--profile", "/nonexistent/p.toml"],
            "cannot read profile /nonexistent/p.toml",
        ),
        (
            &["poll", "modbus://127.0.0.1/1", "hr:0", "--interval", "fast"],
            "not a duration",
        ),
    ];
    for (args, needle) in cases {
        let r = run(args);
        assert_eq!(r.code, 3, "{args:?} exits 3; stderr: {}", r.stderr);
        assert!(
            r.stderr.contains(needle),
            "{args:?}: expected `{needle}` in: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
        assert!(
            r.stdout.is_empty(),
            "{args:?}: nothing on stdout: {}",
            r.stdout
        );
    }
}

#[test]
fn profile_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[device]\nname = \"x\"\n\n[[point]]\nname = \"a\"\naddress = \"hr:0\"\ntype = \"f32\"\nscale = 0.1\n\n[[point]]\nname = \"b\"\naddress = \"hr:1\"\n").unwrap();
    let r = run(&[
        "read",
        "--profile",
        p.to_str().unwrap(),
        "modbus://127.0.0.1/1",
    ]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("bad.toml:10:") && r.stderr.contains("overlaps point `a` on line 4"),
        "{}",
        r.stderr
    );
    std::fs::write(
        &p,
        "[device]\nname = \"x\"\n[[point]]\nname = \"a\"\nadress = \"hr:0\"\n",
    )
    .unwrap();
    let r = run(&[
        "read",
        "--profile",
        p.to_str().unwrap(),
        "modbus://127.0.0.1/1",
    ]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("bad.toml:5:") && r.stderr.contains("adress"),
        "{}",
        r.stderr
    );
}

#[test]
fn write_refuses_without_allow_write_and_sends_nothing() {
    // A listener that would record any connection: nothing may connect.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let target = format!("modbus://{}/1", l.local_addr().unwrap());
    let r = run(&["write", &target, "hr:5", "1234"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("--allow-write") && r.stderr.contains("nothing was sent"),
        "{}",
        r.stderr
    );
    assert!(
        l.accept().is_err(),
        "write without --allow-write must not even connect"
    );
}

#[test]
fn sim_refuses_non_loopback_without_allow_remote() {
    let r = run(&[
        "sim",
        &profile("demo-line.toml"),
        "--modbus",
        "0.0.0.0:0",
        "--duration",
        "1s",
    ]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("not a loopback address"), "{}", r.stderr);
}

#[test]
fn sim_refuses_bad_faults() {
    // A bad value; and OPC UA faults on a Modbus-only simulator, which would do nothing:
    // refused, not ignored.
    for (fault, says) in [
        ("drop=2", "from 0 to 1"),
        ("session-timeout=2s", "OPC UA only"),
        ("bad-status=BadSensorFailure", "OPC UA only"),
    ] {
        let r = run(&[
            "sim",
            &profile("demo-line.toml"),
            "--modbus",
            "127.0.0.1:0",
            "--fault",
            fault,
            "--duration",
            "1s",
        ]);
        assert_eq!(r.code, 3, "{fault}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{fault}: {}", r.stderr);
    }
}

#[test]
fn a_missing_output_folder_is_refused_before_any_traffic() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let target = format!("modbus://{}/1", l.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/folder");
    let prof = profile("demo-line.toml");
    let out = |name: &str| missing.join(name).display().to_string();
    let cases: Vec<Vec<String>> = vec![
        vec![
            "snapshot".into(),
            target.clone(),
            "--profile".into(),
            prof.clone(),
            "-o".into(),
            out("b.json"),
        ],
        vec![
            "poll".into(),
            target.clone(),
            "hr:0".into(),
            "--count".into(),
            "1".into(),
            "--results".into(),
            out("r.json"),
        ],
        vec![
            "poll".into(),
            target.clone(),
            "hr:0".into(),
            "--count".into(),
            "1".into(),
            "--prometheus".into(),
            out("p.prom"),
        ],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("does not exist") && r.stderr.contains("nothing was read or sent"),
            "{}",
            r.stderr
        );
    }
    assert!(
        l.accept().is_err(),
        "nothing may connect before the output folder is known good"
    );
    let r = run(&[
        "report",
        &prof,
        "-o",
        &dir.path().join("x.pdf").display().to_string(),
    ]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("use .html, .md or .json"),
        "the format is checked before the inputs: {}",
        r.stderr
    );
}
