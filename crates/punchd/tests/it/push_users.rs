//! Issue 6, "What new users hit" (push): the seed guide's own examples (space-separated OPERLOG, form-shaped
//! BIODATA), punchd keeping the users it sends, and user command fields checked against what terminals accept.

use serde_json::{json, Value};

use crate::harness::{cli, sqlite, Server};

const SN: &str = "SEEDK40000001";

/// (PIN, name, group, privilege, verify mode) as stored.
type UserRow = (String, String, String, Option<i64>, Option<i64>);

fn handshake(server: &Server, sn: &str) {
    let r = server.iclock("GET", &format!("/iclock/cdata?SN={sn}&options=all"), b"");
    assert!(r.text().starts_with("GET OPTION FROM: "), "{}", r.text());
}

fn poll(server: &Server, sn: &str) -> String {
    server
        .iclock("GET", &format!("/iclock/getrequest?SN={sn}"), b"")
        .text()
}

fn enqueue(server: &Server, sn: &str, kind: &Value) -> i64 {
    let r = server.api("POST", &format!("/devices/{sn}/commands"), Some(kind));
    assert_eq!(r.status, 201, "{kind}: {}", r.text());
    r.json()[0]["id"].as_i64().unwrap()
}

/// Queue, deliver and confirm one command; returns its wire line.
fn run(server: &Server, sn: &str, kind: &Value) -> String {
    let id = enqueue(server, sn, kind);
    let delivered = poll(server, sn);
    let prefix = format!("C:{id}:");
    assert!(delivered.starts_with(&prefix), "{delivered}");
    let r = server.iclock(
        "POST",
        &format!("/iclock/devicecmd?SN={sn}"),
        format!("ID={id}&Return=0&CMD=DATA\n").as_bytes(),
    );
    assert_eq!(r.text(), "OK");
    assert_eq!(
        server.get_json(&format!("/commands/{id}"))["status"],
        "succeeded"
    );
    delivered[prefix.len()..].trim_end().to_owned()
}

fn user(server: &Server, sn: &str, pin: &str) -> Option<Value> {
    server
        .get_json(&format!("/devices/{sn}/users"))
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["pin"] == pin)
        .cloned()
}

#[test]
fn seed_operlog_example_with_spaces_is_a_user_named_test_user() {
    let server = Server::start();
    handshake(&server, SN);
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=OPERLOG&Stamp=1"),
        b"USER PIN=1001 Name=Test User Grp=1 Pri=0 Verify=1 TZ=0\n",
    );
    assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
    let rows: Vec<UserRow> = sqlite(&server.db)
        .prepare(
            "SELECT pin, name, grp, privilege, verify_mode FROM device_users WHERE device_sn = ?1",
        )
        .unwrap()
        .query_map([SN], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![(
            "1001".into(),
            "Test User".into(),
            "1".into(),
            Some(0),
            Some(1)
        )]
    );
    // The TAB form stays as it was.
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=OPERLOG&Stamp=2"),
        b"USER PIN=1002\tName=Tab User\tGrp=2\tPri=14\n",
    );
    assert_eq!(r.text(), "OK:1");
    let u = user(&server, SN, "1002").unwrap();
    assert_eq!(
        (
            u["name"].as_str(),
            u["group"].as_str(),
            u["privilege"].as_i64()
        ),
        (Some("Tab User"), Some("2"), Some(14))
    );
}

#[test]
fn seed_biodata_example_is_stored_as_a_template() {
    let server = Server::start();
    handshake(&server, SN);
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=BIODATA&Stamp=1"),
        b"Pin=1001&Tmp=TUlDUk9TT0ZUK1RFTVBMQVRF",
    );
    assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
    let templates = server.get_json(&format!("/devices/{SN}/templates"));
    let templates = templates.as_array().unwrap();
    assert_eq!(templates.len(), 1, "{templates:?}");
    assert_eq!(templates[0]["pin"], "1001");
    assert_eq!(templates[0]["kind"], "bio");
    assert_eq!(templates[0]["template"], "TUlDUk9TT0ZUK1RFTVBMQVRF");
}

#[test]
fn users_punchd_sends_are_kept_renamed_disabled_and_enabled_again() {
    let server = Server::start();
    handshake(&server, SN);
    let wire = run(
        &server,
        SN,
        &json!({"type": "upsert_user", "pin": "42", "name": "Ann", "privilege": 0, "card": "123456"}),
    );
    assert_eq!(
        wire,
        "DATA UPDATE USERINFO PIN=42\tName=Ann\tPri=0\tPasswd=\tCard=123456\tGrp=1\tTZ=0000000000000000"
    );
    let ann = user(&server, SN, "42").expect("PIN 42 is kept after a succeeded upsert_user");
    assert_eq!(
        (
            ann["name"].as_str(),
            ann["card"].as_str(),
            ann["group"].as_str(),
            ann["enabled"].as_bool()
        ),
        (Some("Ann"), Some("123456"), Some("1"), Some(true))
    );
    let out = cli(&server.db, &["users", "--device", SN, "--format", "csv"]);
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(&format!("{SN},42,Ann,"))),
        "{}",
        out.stdout
    );

    // A rename is reflected.
    run(
        &server,
        SN,
        &json!({"type": "upsert_user", "pin": "42", "name": "Ann Lee", "privilege": 0, "card": "123456"}),
    );
    assert_eq!(user(&server, SN, "42").unwrap()["name"], "Ann Lee");

    // Disable (push: removed from the terminal, kept here), then enable writes the kept record back.
    assert_eq!(
        run(&server, SN, &json!({"type": "disable_user", "pin": "42"})),
        "DATA DELETE USERINFO PIN=42"
    );
    assert_eq!(user(&server, SN, "42").unwrap()["enabled"], false);
    assert_eq!(
        run(&server, SN, &json!({"type": "enable_user", "pin": "42"})),
        "DATA UPDATE USERINFO PIN=42\tName=Ann Lee\tPri=0\tPasswd=\tCard=123456\tGrp=1\tTZ=0000000000000000"
    );
    assert_eq!(user(&server, SN, "42").unwrap()["enabled"], true);

    // A failed upsert changes nothing.
    let id = enqueue(
        &server,
        SN,
        &json!({"type": "upsert_user", "pin": "43", "name": "Bo", "privilege": 0}),
    );
    assert!(poll(&server, SN).starts_with(&format!("C:{id}:")));
    server.iclock(
        "POST",
        &format!("/iclock/devicecmd?SN={SN}"),
        format!("ID={id}&Return=-1&CMD=DATA\n").as_bytes(),
    );
    assert_eq!(user(&server, SN, "43"), None);
}

#[test]
fn user_command_fields_are_checked_against_what_terminals_accept() {
    let server = Server::start();
    handshake(&server, SN);
    let refused = |kind: Value| -> String {
        let r = server.api("POST", &format!("/devices/{SN}/commands"), Some(&kind));
        assert_eq!(r.status, 400, "{kind}: {}", r.text());
        r.text()
    };
    let body = refused(json!({"type": "upsert_user", "pin": "", "name": "Nobody"}));
    assert!(
        body.contains("PIN is empty; a terminal needs a user id"),
        "{body}"
    );
    let body = refused(json!({"type": "upsert_user", "pin": "1".repeat(25), "name": "Long"}));
    assert!(body.contains("is not 1–24 characters"), "{body}");
    let body = refused(json!({"type": "upsert_user", "pin": "7", "privilege": 3}));
    assert!(
        body.contains("privilege 3 is not one of [0, 2, 6, 10, 14]"),
        "{body}"
    );
    let body = refused(json!({"type": "upsert_user", "pin": "7", "card": "12ab"}));
    assert!(
        body.contains("neither a decimal number nor [XXXXXXXX] hex"),
        "{body}"
    );
    let body = refused(json!({"type": "upsert_user", "pin": "7", "name": "A\tB"}));
    assert!(body.contains("control character"), "{body}");
    refused(json!({"type": "delete_user", "pin": " "}));
    // Nothing was queued.
    assert_eq!(poll(&server, SN), "OK");
    let out = cli(&server.db, &["commands", "--format", "json"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap(),
        json!([])
    );
}
