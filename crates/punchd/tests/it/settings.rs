//! Device settings changed while the server runs (API at once, CLI within the housekeeping period) change how
//! the next punches are read: the device's zone wins over the default.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{cli, Server};

const SN: &str = "ZONE000001";

fn utc_of_last(server: &Server) -> String {
    let punches = server.punches(SN);
    punches.last().unwrap()["punched_at_utc"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_device_zone_set_through_the_api_or_the_cli_applies_to_the_next_punches() {
    let server = Server::start(); // default zone Asia/Shanghai (UTC+8)
    assert_eq!(
        server.attlog(SN, "1\t2024-07-01 08:00:00\t0\t1\n").text(),
        "OK:1"
    );
    assert_eq!(utc_of_last(&server), "2024-07-01T00:00:00Z");

    // Through the API: applies at once. Unknown zones are refused.
    let r = server.api(
        "PATCH",
        &format!("/devices/{SN}"),
        Some(&json!({"time_zone": "Not/AZone"})),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = server.api(
        "PATCH",
        &format!("/devices/{SN}"),
        Some(&json!({"time_zone": "Asia/Kathmandu", "alias": "Gate 2", "site": "HQ"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let device: Value = r.json();
    assert_eq!(
        (&device["time_zone"], &device["alias"], &device["site"]),
        (&json!("Asia/Kathmandu"), &json!("Gate 2"), &json!("HQ"))
    );
    assert_eq!(
        server.attlog(SN, "2\t2024-07-01 08:00:00\t0\t1\n").text(),
        "OK:1"
    );
    assert_eq!(utc_of_last(&server), "2024-07-01T02:15:00Z");
    let punches = server.punches(SN);
    assert_eq!(punches.last().unwrap()["time_zone"], "Asia/Kathmandu");
    // The handshake tells the terminal the device's zone (+05:45, no daylight saving time: minutes).
    let handshake = server
        .iclock("GET", &format!("/iclock/cdata?SN={SN}&options=all"), b"")
        .text();
    assert!(
        handshake.lines().any(|l| l == "TimeZone=345"),
        "{handshake}"
    );

    // null clears (the default applies again); absent fields are left alone.
    let r = server.api(
        "PATCH",
        &format!("/devices/{SN}"),
        Some(&json!({"time_zone": null})),
    );
    assert_eq!(r.status, 200);
    let device: Value = r.json();
    assert_eq!(
        (&device["time_zone"], &device["alias"]),
        (&Value::Null, &json!("Gate 2"))
    );
    assert_eq!(
        server.attlog(SN, "3\t2024-07-01 08:00:00\t0\t1\n").text(),
        "OK:1"
    );
    assert_eq!(utc_of_last(&server), "2024-07-01T00:00:00Z");

    // Through the CLI (another process): picked up within the housekeeping period.
    let out = cli(
        &server.db,
        &["devices", "set", SN, "--time-zone", "Asia/Kolkata"],
    );
    assert!(out.ok, "{}", out.stderr);
    let mut pin = 3;
    let utc = server.wait_for("the CLI's zone picked up", Duration::from_secs(8), || {
        pin += 1;
        assert_eq!(
            server
                .attlog(SN, &format!("{pin}\t2024-07-01 08:00:00\t0\t1\n"))
                .text(),
            "OK:1"
        );
        let utc = utc_of_last(&server);
        (utc != "2024-07-01T00:00:00Z").then_some(utc)
    });
    assert_eq!(utc, "2024-07-01T02:30:00Z");
    // Punches stored before a zone change keep the zone they were read with.
    let zones: Vec<String> = server
        .punches(SN)
        .iter()
        .take(3)
        .map(|p| p["time_zone"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(zones, ["Asia/Shanghai", "Asia/Kathmandu", "Asia/Shanghai"]);
}
