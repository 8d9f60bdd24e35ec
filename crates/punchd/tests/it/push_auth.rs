//! Issue 6, "Who may do what" (terminal part): an approved terminal's SN is no longer its only credential.
//! Requests come through a reverse proxy on 127.0.0.1 (listed in `[push] trusted_proxies`), so the terminal's
//! address is the one in `X-Forwarded-For`: tests never leave loopback.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{cli, cli_json, sqlite, Options, Server};

const SN: &str = "AUTHK40000001";

fn proxied(options: Options) -> Server {
    Server::with(Options {
        time_zone: Some("Asia/Shanghai".into()),
        config: Some(format!(
            "[push]\ntrusted_proxies = [\"127.0.0.1\"]\n{}",
            options.config.clone().unwrap_or_default()
        )),
        ..options
    })
}

/// A terminal request as forwarded by a proxy for `from`.
fn from(server: &Server, from: &str, method: &str, target: &str, body: &[u8]) -> (u16, String) {
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: iClock Proxy/1.09\r\nX-Forwarded-For: {from}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let r = server.raw(&request);
    (r.status, r.text())
}

fn attlog(server: &Server, addr: &str, line: &str) -> (u16, String) {
    from(
        server,
        addr,
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=ATTLOG&Stamp=1"),
        line.as_bytes(),
    )
}

fn n_punches(server: &Server) -> i64 {
    sqlite(&server.db)
        .query_row(
            "SELECT count(*) FROM punches WHERE device_sn = ?1",
            [SN],
            |r| r.get(0),
        )
        .unwrap()
}

const UNKNOWN: (u16, &str) = (200, "UNKNOWN DEVICE");

#[test]
fn an_approved_terminal_is_bound_to_its_address_and_a_new_one_waits_for_approval() {
    let server = proxied(Options::default());
    // First contact (auto approval) binds 10.0.0.5.
    assert_eq!(
        attlog(
            &server,
            "10.0.0.5",
            "1\t2026-11-30 08:00:00\t0\t1\t0\t0\t0\n"
        ),
        (200, "OK:1".to_owned())
    );
    // Someone who knows the SN, from elsewhere: no punch stored, no command read.
    let r = attlog(
        &server,
        "10.0.0.66",
        "666\t2026-11-30 08:01:00\t0\t1\t0\t0\t0\n",
    );
    assert_eq!((r.0, r.1.as_str()), UNKNOWN);
    let r = from(
        &server,
        "10.0.0.66",
        "GET",
        &format!("/iclock/getrequest?SN={SN}"),
        b"",
    );
    assert_eq!((r.0, r.1.as_str()), UNKNOWN);
    assert_eq!(n_punches(&server), 1);
    // The device state shows the held address; the log says what to do.
    let state = server.get_json(&format!("/devices/{SN}/push-auth"));
    assert_eq!(state["addresses"], serde_json::json!(["10.0.0.5"]));
    assert_eq!(state["held_address"], "10.0.0.66");
    assert_eq!(state["binding"], true);
    assert!(state["held_since"].is_string(), "{state}");
    let cli_state = cli_json(&server.db, &["devices", "push-auth", SN]);
    assert_eq!(cli_state["held_address"], "10.0.0.66");
    assert!(
        server.log().contains(&format!(
            "push terminal {SN} contacted from 10.0.0.66, which it was not approved from (accepted: 10.0.0.5)"
        )),
        "{}",
        server.log()
    );
    // The bound address is still served.
    assert_eq!(
        attlog(
            &server,
            "10.0.0.5",
            "2\t2026-11-30 08:02:00\t0\t1\t0\t0\t0\n"
        ),
        (200, "OK:1".to_owned())
    );

    // The terminal really moved (DHCP): the operator approves the new address.
    let out = cli(&server.db, &["devices", "approve", SN]);
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stderr.contains("10.0.0.66"), "{}", out.stderr);
    let ok = server.wait_for("the new address accepted", Duration::from_secs(5), || {
        let r = attlog(
            &server,
            "10.0.0.66",
            "3\t2026-11-30 08:03:00\t0\t1\t0\t0\t0\n",
        );
        (r.1 == "OK:1").then_some(r)
    });
    assert_eq!(ok, (200, "OK:1".to_owned()));
    let state = server.get_json(&format!("/devices/{SN}/push-auth"));
    assert_eq!(
        state["addresses"],
        serde_json::json!(["10.0.0.5", "10.0.0.66"])
    );
    assert_eq!(state["held_address"], Value::Null);
    let pins: Vec<String> = sqlite(&server.db)
        .prepare("SELECT pin FROM punches WHERE device_sn = ?1 ORDER BY punched_at")
        .unwrap()
        .query_map([SN], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(pins, ["1", "2", "3"]);

    // Binding off for this terminal (a DHCP site): any address.
    cli_json(&server.db, &["devices", "push-auth", SN, "--bind", "off"]);
    let r = server.wait_for("binding off", Duration::from_secs(5), || {
        let r = attlog(
            &server,
            "10.9.9.9",
            "4\t2026-11-30 08:04:00\t0\t1\t0\t0\t0\n",
        );
        (r.1 == "OK:1").then_some(r)
    });
    assert_eq!(r.0, 200);
}

#[test]
fn binding_can_be_turned_off_for_the_whole_server() {
    let server = proxied(Options {
        config: Some("bind_addresses = false\n".into()),
        ..Options::default()
    });
    assert_eq!(
        attlog(
            &server,
            "10.0.0.5",
            "1\t2026-11-30 08:00:00\t0\t1\t0\t0\t0\n"
        )
        .1,
        "OK:1"
    );
    assert_eq!(
        attlog(
            &server,
            "10.0.0.6",
            "2\t2026-11-30 08:01:00\t0\t1\t0\t0\t0\n"
        )
        .1,
        "OK:1"
    );
    assert_eq!(n_punches(&server), 2);
}

#[test]
fn headers_of_an_untrusted_peer_are_ignored() {
    // No trusted proxy: X-Forwarded-For cannot move a terminal, nor pretend to be it.
    let server = Server::start();
    assert_eq!(
        attlog(
            &server,
            "10.0.0.5",
            "1\t2026-11-30 08:00:00\t0\t1\t0\t0\t0\n"
        )
        .1,
        "OK:1"
    );
    assert_eq!(
        attlog(
            &server,
            "10.0.0.6",
            "2\t2026-11-30 08:01:00\t0\t1\t0\t0\t0\n"
        )
        .1,
        "OK:1"
    );
    let state = server.get_json(&format!("/devices/{SN}/push-auth"));
    assert_eq!(state["addresses"], serde_json::json!(["127.0.0.1"]));
}

#[test]
fn a_pending_terminal_is_bound_to_the_address_it_waited_from() {
    let server = proxied(Options {
        approval: Some("manual".into()),
        ..Options::default()
    });
    let r = from(
        &server,
        "10.0.0.7",
        "GET",
        &format!("/iclock/cdata?SN={SN}&options=all"),
        b"",
    );
    assert_eq!((r.0, r.1.as_str()), UNKNOWN);
    let r = server.api("POST", &format!("/devices/{SN}/approve"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let state = server.get_json(&format!("/devices/{SN}/push-auth"));
    assert_eq!(state["addresses"], serde_json::json!(["10.0.0.7"]));
    let r = attlog(
        &server,
        "10.0.0.8",
        "1\t2026-11-30 08:00:00\t0\t1\t0\t0\t0\n",
    );
    assert_eq!((r.0, r.1.as_str()), UNKNOWN);
    assert_eq!(
        attlog(
            &server,
            "10.0.0.7",
            "1\t2026-11-30 08:00:00\t0\t1\t0\t0\t0\n"
        )
        .1,
        "OK:1"
    );
}

#[test]
fn comm_key_is_required_once_the_terminal_sends_it() {
    let server = Server::start();
    let poll = |query: &str| -> String {
        server
            .iclock("GET", &format!("/iclock/getrequest?SN={SN}{query}"), b"")
            .text()
    };
    assert_eq!(poll(""), "OK");
    let state = cli_json(
        &server.db,
        &["devices", "push-auth", SN, "--comm-key", "8a7b6c5d"],
    );
    assert_eq!(state["comm_key_set"], true);
    assert!(
        state.get("comm_key").is_none(),
        "the key is never printed: {state}"
    );
    // Until the terminal applies the options, requests without a key still get the commands that set it.
    let reply = server.wait_for("the SET OPTION commands", Duration::from_secs(5), || {
        let r = poll("");
        r.starts_with("C:").then_some(r)
    });
    assert!(
        reply.contains(":SET OPTION PushComKey=8a7b6c5d\n"),
        "{reply}"
    );
    assert!(reply.contains(":SET OPTION IsPushComKey=1\n"), "{reply}");
    // A wrong key is refused as soon as the server has read the new setting: the CLI wrote it in another process,
    // and a running server reads push settings again every 2 s (devices/push_auth.rs, REFRESH_EVERY).
    let refused = server.wait_for("the wrong key refused", Duration::from_secs(5), || {
        let r = poll("&ComKey=00000000");
        (r == "UNKNOWN DEVICE").then_some(r)
    });
    assert_eq!(refused, "UNKNOWN DEVICE");
    // The right key is accepted, and from then on a request without it is refused.
    assert_eq!(poll("&ComKey=8a7b6c5d"), "OK");
    assert_eq!(poll(""), "UNKNOWN DEVICE");
    let r = server.attlog(SN, "1\t2026-11-30 08:00:00\t0\t1\t0\t0\t0\n");
    assert_eq!(r.text(), "UNKNOWN DEVICE");
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=ATTLOG&Stamp=1&ComKey=8a7b6c5d"),
        b"1\t2026-11-30 08:00:00\t0\t1\t0\t0\t0\n",
    );
    assert_eq!(r.text(), "OK:1");
    assert_eq!(n_punches(&server), 1);
    assert!(
        server.log().contains("carries no ComKey"),
        "{}",
        server.log()
    );
}

#[test]
fn the_handshake_pushcommkey_is_pinned() {
    let server = Server::start();
    let handshake = |key: Option<&str>| -> String {
        let key = key.map(|k| format!("&pushcommkey={k}")).unwrap_or_default();
        server
            .iclock(
                "GET",
                &format!("/iclock/cdata?SN={SN}&options=all&pushver=2.2.14&language=83{key}"),
                b"",
            )
            .text()
    };
    assert!(handshake(Some("4a9594af164f2b9779b59e8554b5df26"))
        .starts_with(&format!("GET OPTION FROM: {SN}\n")));
    assert_eq!(
        handshake(Some("ffffffffffffffffffffffffffffffff")),
        "UNKNOWN DEVICE"
    );
    assert_eq!(handshake(None), "UNKNOWN DEVICE");
    assert!(handshake(Some("4a9594af164f2b9779b59e8554b5df26")).starts_with("GET OPTION FROM: "));
    let state = server.get_json(&format!("/devices/{SN}/push-auth"));
    assert_eq!(state["handshake_key_pinned"], true);
    cli_json(
        &server.db,
        &["devices", "push-auth", SN, "--forget-handshake-key"],
    );
    let reply = server.wait_for("key forgotten", Duration::from_secs(5), || {
        let r = handshake(Some("ffffffffffffffffffffffffffffffff"));
        r.starts_with("GET OPTION").then_some(r)
    });
    assert!(reply.starts_with("GET OPTION FROM: "));
}
