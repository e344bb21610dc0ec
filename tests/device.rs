//! The device layer as a library (`plcprobe::device::Device`), against its own simulator and
//! against independent peers (the pymodbus server and the asyncua server of tests/peers): the
//! same calls read Modbus and OPC UA, exceptions and bad nodes are values in a round, an absent
//! device is `Unreachable`, and nothing is sent for a target kind this build cannot speak.

use std::path::Path;

use plcprobe::{
    device::{opcua::UaSettings, Device, ItemError, Settings, WriteRequest},
    profile::Profile,
    proto::modbus::{value::Value, DataType},
    target::Target,
};

use crate::util::{self, free_port, python, Peer, PyModbus, Sim, UaSim};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Settings with a 5 s timeout (a loaded 2-core machine) and a PKI folder of the test's own.
fn settings(pki: &Path) -> Settings {
    Settings {
        timeout: std::time::Duration::from_secs(5),
        serial: plcprobe::transport::rtu::SerialOptions::default(),
        ua: UaSettings {
            pki: pki.to_path_buf(),
            ..UaSettings::default()
        },
    }
}

fn device(target: &str, pki: &Path) -> Device {
    Device::new(&target.parse::<Target>().expect("target"), &settings(pki)).expect("device")
}

fn items(list: &[&str]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

fn demo_profile() -> Profile {
    Profile::load(Path::new(&util::profile("demo-line.toml"))).expect("demo profile")
}

#[test]
fn a_modbus_device_over_the_simulator() {
    let sim = Sim::start("demo-line.toml", &[]);
    let pki = tempfile::tempdir().unwrap();
    let profile = demo_profile();
    block_on(async {
        let mut d = device(&sim.target(1), pki.path());
        d.select_profile(&profile, "read").unwrap();
        assert!(d.named());
        assert_eq!(d.points().len(), 12, "every point with an address");
        assert!(
            d.requests_per_round() < 12,
            "contiguous points share requests"
        );
        d.open(false).await.unwrap().unwrap();
        let (identity, status) = d.identity().await.unwrap();
        assert_eq!(status, "ok");
        assert_eq!(identity.unwrap()["revision"], "1.4.2");
        for _ in 0..3 {
            d.round().await;
            assert_eq!(d.outcomes().len(), d.requests_per_round());
            assert!(d.outcomes().iter().all(|o| o.error.is_none()));
            assert_eq!(d.request_errors(), vec![None; d.requests_per_round()]);
            let results = d.results();
            assert_eq!(results.len(), 12);
            assert!(results.iter().all(|r| r.value.is_ok()), "{results:?}");
        }
        assert_eq!(d.connects(), 1, "one connection for every round");
        d.close().await;
        // A snapshot in one call; its points are the profile's.
        let mut d = device(&sim.target(1), pki.path());
        d.select_profile(&profile, "snapshot").unwrap();
        let ref_ = plcprobe::snapshot::ProfileRef::of(&profile, "0".repeat(64));
        let snap = d.take_snapshot(ref_).await.unwrap().unwrap();
        assert_eq!(snap.points.len(), 12);
        assert!(snap.points.iter().all(|p| p.status == "ok"));
    });
}

#[test]
fn a_modbus_device_over_pymodbus() {
    let Some(py) = python() else { return };
    let peer = PyModbus::start(&py);
    let pki = tempfile::tempdir().unwrap();
    block_on(async {
        // hr[i] = 3i + 1; an f32 of 123.456 at hr:100; nothing past hr:200 (exception 0x02).
        let mut d = device(&peer.target(1), pki.path());
        d.select_items(&items(&["hr:1..4", "hr:300"]), None, None)
            .unwrap();
        d.open(false).await.unwrap().unwrap();
        d.round().await;
        let r = d.results();
        let values: Vec<_> = r[..3].iter().map(|x| x.value.clone().unwrap()).collect();
        assert_eq!(values, [Value::U(4), Value::U(7), Value::U(10)]);
        assert_eq!(r[3].value, Err(ItemError::Exception(0x02)));
        assert_eq!(
            d.request_errors()[1].as_deref(),
            Some("0x02 Illegal Data Address")
        );
        d.close().await;
        let mut d = device(&peer.target(1), pki.path());
        d.select_items(&items(&["hr:100"]), Some(DataType::F32), None)
            .unwrap();
        d.round().await;
        match d.results()[0].value {
            Ok(Value::F(x)) => assert!((x - 123.456).abs() < 1e-3, "{x}"),
            ref other => panic!("{other:?}"),
        }
        // A guarded write with read-back, on the scratch registers.
        let req = WriteRequest {
            address: "hr:120",
            value: "4711",
            allow: true,
            fc16: false,
            ty: None,
            order: None,
        };
        let t = d.write(&req).await.unwrap();
        assert_eq!(
            t.outcome,
            plcprobe::outcome::Outcome::Ok,
            "{:?}",
            t.problems
        );
        assert_eq!(t.rows.rows[0][6], serde_json::json!(4711), "read back");
        // Without --allow-write nothing is sent.
        let refused = d
            .write(&WriteRequest {
                allow: false,
                ..req
            })
            .await;
        let Err(e) = refused else {
            panic!("a write without allow was sent")
        };
        assert!(e.to_string().contains("nothing was sent"), "{e}");
    });
}

#[test]
fn an_opcua_device_over_the_simulator_and_the_asyncua_server() {
    let pki = tempfile::tempdir().unwrap();
    let profile = demo_profile();
    let sim = UaSim::start("127.0.0.1:0", &[]);
    block_on(async {
        let mut d = device(&sim.url, pki.path());
        d.select_profile(&profile, "read").unwrap();
        assert_eq!(d.points().len(), 12, "every point with a node");
        assert_eq!(d.requests_per_round(), 1, "one batched Read");
        d.open(false).await.unwrap().unwrap();
        let (identity, _) = d.identity().await.unwrap();
        assert!(identity.is_some(), "BuildInfo");
        d.round().await;
        let r = d.results();
        assert_eq!(r.len(), 12);
        assert!(r.iter().all(|x| x.value.is_ok()), "{r:?}");
        d.close().await;
    });
    drop(sim);
    let Some(py) = python() else { return };
    let peer = Peer::start(&py, pki.path(), "valid");
    block_on(async {
        let mut d = device(&peer.url, pki.path());
        d.select_items(
            &items(&[
                "ns=2;s=Line1.Speed",
                "/Objects/2:Plant/2:Line1/2:Count",
                "ns=2;s=NoSuchNode",
            ]),
            None,
            None,
        )
        .unwrap();
        d.open(false).await.unwrap().unwrap();
        d.round().await;
        let r = d.results();
        assert!(matches!(r[0].value, Ok(Value::F(_))), "{:?}", r[0]);
        assert!(
            matches!(r[1].value, Ok(Value::I(_) | Value::U(_))),
            "{:?}",
            r[1]
        );
        assert!(
            matches!(r[2].value, Err(ItemError::Status(_))),
            "{:?}",
            r[2]
        );
        assert!(d.outcomes()[0].error.is_none(), "the round itself answered");
        let snap = d.snapshot(
            &r,
            (None, "not read".into()),
            plcprobe::snapshot::ProfileRef::of(&demo_profile(), String::new()),
            String::new(),
        );
        assert_eq!(snap.points[0].ty, "Double", "the type read, not the spec's");
        d.close().await;
    });
}

#[test]
fn absent_devices_are_unreachable_and_unknown_kinds_send_nothing() {
    let pki = tempfile::tempdir().unwrap();
    let port = free_port();
    block_on(async {
        let mut d = device(&format!("modbus://127.0.0.1:{port}/1"), pki.path());
        d.select_items(&items(&["hr:0"]), None, None).unwrap();
        d.open(false).await.unwrap().unwrap();
        let why = d.identity().await.unwrap_err().0;
        assert!(why.contains("cannot connect"), "{why}");
        let mut d = device(&format!("opc.tcp://127.0.0.1:{port}"), pki.path());
        d.select_items(&items(&["i=2258"]), None, None).unwrap();
        let why = d.open(false).await.unwrap().unwrap_err().0;
        assert!(!why.is_empty());
    });
    // A serial port that does not exist is refused when the device opens, before any traffic.
    let t: Target = "rtu:///dev/plcprobe-no-such-port?unit=3".parse().unwrap();
    let mut d = Device::new(&t, &settings(pki.path())).expect("an RTU device");
    d.select_items(&items(&["hr:0"]), None, None).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt.block_on(d.open(false)).expect_err("refused");
    assert!(e.to_string().contains("no such serial port"), "{e}");
    // Modbus addresses on an OPC UA device (and the reverse) are refused before any traffic.
    let mut d = device("opc.tcp://127.0.0.1:4840", pki.path());
    assert!(d
        .select_items(&items(&["hr:0"]), Some(DataType::F32), None)
        .is_err());
}
