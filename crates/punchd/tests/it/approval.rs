//! Manual approval: a new terminal is answered `UNKNOWN DEVICE` and nothing it sends is stored until an operator
//! approves it (here with the CLI, while the server runs: the server picks the change up by revision).

use std::time::Duration;

use crate::harness::{cli, cli_json, Options, Server};

const PUNCH: &str = "0042\t2024-03-01 08:00:00\t0\t1\t0\t0\t0\n";

#[test]
fn manual_approval_refuses_until_the_cli_approves_then_stores_once() {
    let server = Server::with(Options {
        time_zone: Some("Europe/Berlin".into()),
        approval: Some("manual".into()),
        ..Options::default()
    });
    let sn = "MANUAL0001";
    for _ in 0..2 {
        let r = server.attlog(sn, PUNCH);
        assert_eq!((r.status, r.text()), (200, "UNKNOWN DEVICE".to_owned()));
        assert_eq!(r.header("content-type"), Some("text/plain"));
    }
    let handshake = server.iclock(
        "GET",
        &format!("/iclock/cdata?SN={sn}&options=all&pushver=2.4.1"),
        b"",
    );
    assert_eq!(handshake.text(), "UNKNOWN DEVICE");
    let poll = server.iclock("GET", &format!("/iclock/getrequest?SN={sn}"), b"");
    assert_eq!(poll.text(), "UNKNOWN DEVICE");

    assert_eq!(server.punches(sn).len(), 0);
    let conn = crate::harness::sqlite(&server.db);
    let n_journal: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM journal WHERE device_sn = ?1",
            [sn],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n_journal, 0, "nothing of a pending device is kept");
    let device = cli_json(&server.db, &["devices", "show", sn]);
    assert_eq!(device["approval"], "pending");
    assert_eq!(device["transport"], "push");

    let out = cli(&server.db, &["devices", "approve", sn]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        cli_json(&server.db, &["devices", "show", sn])["approval"],
        "approved"
    );
    let reply = server.wait_for("approval picked up", Duration::from_secs(8), || {
        let r = server.attlog(sn, PUNCH);
        assert_eq!(r.status, 200);
        (r.text() != "UNKNOWN DEVICE").then(|| r.text())
    });
    assert_eq!(reply, "OK:1");
    let punches = server.punches(sn);
    assert_eq!(punches.len(), 1);
    assert_eq!(punches[0]["pin"], "0042");
    assert_eq!(punches[0]["punched_at"], "2024-03-01T08:00:00");
    assert_eq!(punches[0]["punched_at_utc"], "2024-03-01T07:00:00Z");
    assert_eq!(punches[0]["time_zone"], "Europe/Berlin");

    // Blocked through the API: refused at once, data kept.
    let blocked = server.api("POST", &format!("/devices/{sn}/block"), None);
    assert_eq!(blocked.status, 200, "{}", blocked.text());
    assert_eq!(blocked.json()["approval"], "blocked");
    assert_eq!(
        server
            .attlog(sn, "0042\t2024-03-01 17:00:00\t1\t1\n")
            .text(),
        "UNKNOWN DEVICE"
    );
    assert_eq!(server.punches(sn).len(), 1);
}

#[test]
fn allow_list_approves_matching_terminals_on_first_contact() {
    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        config: Some("[approval]\nmode = \"manual\"\nallow = [\"CNYG*\"]\n".into()),
        ..Options::default()
    });
    assert_eq!(server.attlog("CNYG213260182", PUNCH).text(), "OK:1");
    assert_eq!(server.attlog("OTHER0001", PUNCH).text(), "UNKNOWN DEVICE");
    assert_eq!(
        server.get_json("/devices/CNYG213260182")["approval"],
        "approved"
    );
    assert_eq!(server.get_json("/devices/OTHER0001")["approval"], "pending");
}
