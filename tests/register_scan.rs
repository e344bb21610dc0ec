//! The register probe as a library (`plcprobe::device::register_scan`) against the simulator
//! serving the demo profile: it finds exactly the ranges the profile maps (the simulator answers
//! 0x02 Illegal Data Address everywhere else), sends only reads, and its profile loads.

use std::{path::Path, time::Duration};

use plcprobe::{
    device::register_scan::{emit_profile, probe, Found},
    profile::Profile,
    proto::modbus::Table,
    target::Target,
    transport::{modbus::ModbusLink, rtu::SerialOptions},
};

use crate::util::{self, Sim};

/// The demo profile's ranges of `table`: each point's `[start, start+width)`, adjacent ones
/// merged.
fn declared(profile: &Profile, table: Table) -> Vec<(u32, u32)> {
    let mut r: Vec<(u32, u32)> = profile
        .points
        .iter()
        .filter_map(|p| p.address)
        .filter(|a| a.table == table)
        .map(|a| (u32::from(a.start), a.end()))
        .collect();
    r.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for (s, e) in r {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn found_in(found: &[Found], table: Table) -> Vec<(u32, u32)> {
    found
        .iter()
        .filter(|f| f.table == table)
        .map(|f| (u32::from(f.start), f.end()))
        .collect()
}

#[test]
fn the_probe_finds_exactly_the_demo_map() {
    let sim = Sim::start("demo-line.toml", &[]);
    let demo = Profile::load(Path::new(&util::profile("demo-line.toml"))).expect("demo profile");
    let target: Target = sim.target(1).parse().expect("target");
    let tables = [Table::HoldingRegister, Table::InputRegister];
    let t0 = std::time::Instant::now();
    let p = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let mut link =
                ModbusLink::new(&target, Duration::from_secs(2), SerialOptions::default())
                    .expect("link");
            probe(
                &mut link,
                &tables,
                200.0,
                65_535,
                &indicatif::ProgressBar::hidden(),
            )
            .await
        })
        .expect("probe");
    let took = t0.elapsed();
    for table in tables {
        let want = declared(&demo, table);
        assert!(!want.is_empty());
        assert_eq!(
            found_in(&p.found, table),
            want,
            "{table:?}: {:#?}",
            p.notes()
        );
    }
    assert_eq!(p.found.len(), 7, "hr: 5 runs, ir: 2 runs");
    assert_eq!(p.tables.len(), 2);
    assert_eq!(p.timeouts, 0);
    assert_eq!(p.no_answer, 0);
    let per_table: Vec<u64> = p.tables.iter().map(|t| t.requests).collect();
    assert_eq!(per_table.iter().sum::<u64>(), p.requests);
    assert!(per_table.iter().all(|&n| n <= 300), "{per_table:?}");
    // Paced at 200 a second: the requests take at least their share of time.
    assert!(
        took.as_secs_f64() >= (p.requests - 2) as f64 / 200.0,
        "{} requests in {took:?}",
        p.requests
    );
    for t in &p.tables {
        assert!(t.last_data_at > 0 && t.last_data_at <= t.requests, "{t:?}");
    }
    eprintln!(
        "register probe of demo-line: {:#?}\nlast data at request {:?}",
        p.notes(),
        p.tables.iter().map(|t| t.last_data_at).collect::<Vec<_>>()
    );

    // The profile loads, with one point per register found, at the addresses found.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("found.toml");
    std::fs::write(
        &path,
        emit_profile(&target, &p.found, &p.notes().join("\n")),
    )
    .unwrap();
    let emitted = Profile::load(&path).expect("the emitted profile loads");
    assert_eq!(emitted.device.target.as_ref(), Some(&target));
    let registers: u32 = p.found.iter().map(|f| u32::from(f.count)).sum();
    assert_eq!(emitted.points.len(), registers as usize);
    assert!(emitted.points.iter().any(|pt| pt.name == "hr_100"));
    assert!(emitted.points.iter().any(|pt| pt.name == "ir_11"));
    // The profile's method says the same.
    assert_eq!(
        Profile::parse("p", &p.profile(&target))
            .unwrap()
            .points
            .len(),
        emitted.points.len()
    );
}
