//! Commands end to end: queued through the API (and the CLI), delivered on `getrequest` as exact `C:<id>:` lines,
//! results posted on `devicecmd`, statuses, return codes and messages read back through the API.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{cli, Server};

const SN: &str = "CMDK40000001";

fn enqueue(server: &Server, sn: &str, kind: Value) -> i64 {
    let r = server.api("POST", &format!("/devices/{sn}/commands"), Some(&kind));
    assert_eq!(r.status, 201, "{kind}: {}", r.text());
    let queued = r.json();
    let queued = queued.as_array().unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["status"], "queued");
    assert_eq!(queued[0]["attempts"], 0);
    assert_eq!(queued[0]["requested_by"], "api:hubtest");
    queued[0]["id"].as_i64().unwrap()
}

fn poll(server: &Server, sn: &str) -> String {
    let r = server.iclock("GET", &format!("/iclock/getrequest?SN={sn}"), b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    r.text()
}

fn results(server: &Server, sn: &str, body: &str) {
    let r = server.iclock(
        "POST",
        &format!("/iclock/devicecmd?SN={sn}"),
        body.as_bytes(),
    );
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()), "{body}");
}

fn command(server: &Server, id: i64) -> Value {
    server.get_json(&format!("/commands/{id}"))
}

/// (status, attempts, return code, message) of a command.
fn state(server: &Server, id: i64) -> (String, i64, Option<i64>, Option<String>) {
    let c = command(server, id);
    (
        c["status"].as_str().unwrap().to_owned(),
        c["attempts"].as_i64().unwrap(),
        c["return_code"].as_i64(),
        c["message"].as_str().map(str::to_owned),
    )
}

fn st(
    status: &str,
    attempts: i64,
    code: Option<i64>,
    message: Option<&str>,
) -> (String, i64, Option<i64>, Option<String>) {
    (
        status.to_owned(),
        attempts,
        code,
        message.map(str::to_owned),
    )
}

#[test]
fn commands_are_delivered_as_exact_lines_and_results_are_recorded_once() {
    let server = Server::start();
    // The terminal registers and reports a user that will be deleted.
    assert!(server
        .iclock("GET", &format!("/iclock/cdata?SN={SN}&options=all"), b"")
        .text()
        .starts_with("GET OPTION FROM: "));
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=OPERLOG&Stamp=1"),
        b"USER PIN=77\tName=Bob\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000000000000\n",
    );
    assert_eq!(r.text(), "OK:1");
    assert_eq!(
        server
            .get_json(&format!("/devices/{SN}/users"))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Nothing queued yet.
    assert_eq!(poll(&server, SN), "OK");

    let upsert = enqueue(
        &server,
        SN,
        json!({"type": "upsert_user", "pin": "0042", "name": "Ann", "privilege": 14, "card": "123456"}),
    );
    let delete = enqueue(&server, SN, json!({"type": "delete_user", "pin": "77"}));
    let reboot = enqueue(&server, SN, json!({"type": "reboot"}));
    let info = enqueue(&server, SN, json!({"type": "fetch_info"}));
    let reupload = enqueue(
        &server,
        SN,
        json!({"type": "reupload_punches", "from": "2024-01-01T00:00:00", "to": "2024-01-31T23:59:59"}),
    );
    let option = enqueue(
        &server,
        SN,
        json!({"type": "set_option", "key": "Delay", "value": "20"}),
    );
    assert!(
        upsert < delete && delete < reboot && reboot < info && info < reupload && reupload < option
    );
    assert_eq!(
        command(&server, upsert)["wire"],
        "DATA UPDATE USERINFO PIN=0042\tName=Ann\tPri=14\tPasswd=\tCard=123456\tGrp=1\tTZ=0000000000000000"
    );

    // REBOOT ends a reply: what follows it waits for the next poll.
    assert_eq!(
        poll(&server, SN),
        format!(
            "C:{upsert}:DATA UPDATE USERINFO PIN=0042\tName=Ann\tPri=14\tPasswd=\tCard=123456\tGrp=1\tTZ=0000000000000000\n\
             C:{delete}:DATA DELETE USERINFO PIN=77\n\
             C:{reboot}:REBOOT\n"
        )
    );
    for id in [upsert, delete, reboot] {
        assert_eq!(state(&server, id), st("sent", 1, None, None), "{id}");
        assert!(command(&server, id)["sent_at"].is_string());
    }
    for id in [info, reupload, option] {
        assert_eq!(state(&server, id), st("queued", 0, None, None), "{id}");
    }
    assert_eq!(
        poll(&server, SN),
        format!(
            "C:{info}:INFO\n\
             C:{reupload}:DATA QUERY ATTLOG StartTime=2024-01-01 00:00:00\tEndTime=2024-01-31 23:59:59\n\
             C:{option}:SET OPTION Delay=20\n"
        )
    );
    // Everything delivered: a plain OK, and no command is delivered twice.
    assert_eq!(poll(&server, SN), "OK");

    // Several results in one body.
    results(
        &server,
        SN,
        &format!("ID={upsert}&Return=0&CMD=DATA\nID={delete}&Return=0&CMD=DATA\nID={reboot}&Return=0&CMD=REBOOT\n"),
    );
    assert_eq!(
        state(&server, upsert),
        st("succeeded", 1, Some(0), Some("success (Return=0)"))
    );
    assert_eq!(
        state(&server, delete),
        st("succeeded", 1, Some(0), Some("success (Return=0)"))
    );
    assert_eq!(
        state(&server, reboot),
        st("succeeded", 1, Some(0), Some("success (Return=0)"))
    );
    // A confirmed delete forgets the user; a confirmed upsert keeps the user punchd sent.
    let users = server.get_json(&format!("/devices/{SN}/users"));
    let pins: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["pin"].as_str().unwrap())
        .collect();
    assert_eq!(pins, ["0042"]);
    assert_eq!(users[0]["name"], "Ann");

    // INFO in its multi-line form, a failure and a success with a count, in one body.
    results(
        &server,
        SN,
        &format!(
            "ID={info}&Return=0&CMD=INFO\n~DeviceName=K40\nFWVersion=Ver 6.60 Apr 28 2017\nUserCount=12\nTransactionCount=345\n\
             ID={reupload}&Return=12&CMD=DATA\n\
             ID={option}&Return=-1&CMD=SET OPTION\n"
        ),
    );
    let info_command = command(&server, info);
    assert_eq!(info_command["status"], "succeeded");
    assert_eq!(info_command["return_code"], 0);
    assert_eq!(info_command["result"]["cmd"], "INFO");
    assert_eq!(
        info_command["result"]["fields"],
        json!({"~DeviceName": "K40", "FWVersion": "Ver 6.60 Apr 28 2017", "UserCount": "12", "TransactionCount": "345"})
    );
    assert!(info_command["finished_at"].is_string());
    assert_eq!(
        state(&server, reupload),
        st("succeeded", 1, Some(12), Some("success (Return=12)"))
    );
    assert_eq!(
        state(&server, option),
        st(
            "failed",
            1,
            Some(-1),
            Some("parameter error, not supported, or no data (Return=-1)")
        )
    );
    // The INFO result refreshed the device's facts.
    let device = server.get_json(&format!("/devices/{SN}"));
    assert_eq!(device["firmware"], "Ver 6.60 Apr 28 2017");
    assert_eq!(device["info"]["~DeviceName"], "K40");
    assert_eq!(device["info"]["UserCount"], "12");

    // Devices re-post results: a finished command is not changed again.
    let before = command(&server, option);
    results(
        &server,
        SN,
        &format!("ID={option}&Return=0&CMD=SET OPTION\nID={delete}&Return=-10&CMD=DATA\n"),
    );
    assert_eq!(command(&server, option), before);
    assert_eq!(
        state(&server, delete),
        st("succeeded", 1, Some(0), Some("success (Return=0)"))
    );

    // Nor are its effects applied again: user 77 enrolled anew survives a re-posted delete result.
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=OPERLOG&Stamp=2"),
        b"USER PIN=77\tName=Bob\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000000000000\n",
    );
    assert_eq!(r.text(), "OK:1");
    results(&server, SN, &format!("ID={delete}&Return=0&CMD=DATA\n"));
    let users = server.get_json(&format!("/devices/{SN}/users"));
    assert_eq!(users.as_array().unwrap().len(), 2, "{users}");
    assert_eq!(
        (&users[0]["pin"], &users[1]["pin"]),
        (&json!("0042"), &json!("77"))
    );

    // Listings: newest first, filtered by status.
    let listed = server.get_json(&format!("/devices/{SN}/commands"));
    let ids: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [option, reupload, info, reboot, delete, upsert]);
    let failed = server.get_json("/commands?status=failed");
    let ids: Vec<i64> = failed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [option]);

    // A device with no commands gets OK; unknown devices and unknown kinds are refused by the API.
    assert_eq!(poll(&server, "IDLE00001"), "OK");
    assert_eq!(
        server
            .api(
                "POST",
                "/devices/NOSUCHDEVICE/commands",
                Some(&json!({"type": "reboot"}))
            )
            .status,
        404
    );
    let bad = server.api(
        "POST",
        &format!("/devices/{SN}/commands"),
        Some(&json!({"type": "format_disk"})),
    );
    assert!(
        bad.status == 400 || bad.status == 422,
        "{}: {}",
        bad.status,
        bad.text()
    );
    let r = server.api("GET", "/commands/999999", None);
    assert_eq!(r.status, 404);
}

#[test]
fn results_for_unknown_ids_are_journaled_and_answered_ok() {
    let server = Server::start();
    assert_eq!(poll(&server, SN), "OK");
    let r = server.iclock(
        "POST",
        &format!("/iclock/devicecmd?SN={SN}"),
        b"ID=12345&Return=0&CMD=INFO\nID=abc&Return=0&CMD=DATA\nReturn=0\n",
    );
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    let conn = crate::harness::sqlite(&server.db);
    let (kind, errors): (String, String) = conn
        .query_row(
            "SELECT kind, errors FROM journal WHERE device_sn = ?1 ORDER BY id DESC LIMIT 1",
            [SN],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kind, "devicecmd");
    let errors: Value = serde_json::from_str(&errors).unwrap();
    let reasons: Vec<&str> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"command id is not one punchd issued"),
        "{errors}"
    );
}

#[test]
fn a_command_queued_with_the_cli_reaches_a_running_server() {
    let server = Server::start();
    assert_eq!(poll(&server, SN), "OK");
    let out = cli(
        &server.db,
        &[
            "commands",
            "--format",
            "json",
            "send",
            SN,
            "set-option",
            "Delay=30",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    let queued: Value = serde_json::from_str(&out.stdout).unwrap();
    let id = queued[0]["id"].as_i64().unwrap();
    assert!(queued[0]["requested_by"]
        .as_str()
        .unwrap()
        .starts_with("cli:"));
    let reply = server.wait_for(
        "the CLI's command delivered",
        Duration::from_secs(8),
        || {
            let reply = poll(&server, SN);
            (reply != "OK").then_some(reply)
        },
    );
    assert_eq!(reply, format!("C:{id}:SET OPTION Delay=30\n"));
    results(&server, SN, &format!("ID={id}&Return=0&CMD=SET OPTION\n"));
    let shown = cli(&server.db, &["commands", "show", &id.to_string()]);
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(shown["return_code"], 0);
}

#[test]
fn a_long_queue_is_delivered_over_several_polls_within_the_reply_limits() {
    let server = crate::harness::Server::with(crate::harness::Options {
        time_zone: Some("UTC".into()),
        config: Some("[push]\ncommands_per_poll = 4\ncommand_reply_bytes = 80\n".into()),
        ..crate::harness::Options::default()
    });
    assert_eq!(poll(&server, SN), "OK");
    let ids: Vec<i64> = (0..6)
        .map(|i| {
            enqueue(
                &server,
                SN,
                json!({"type": "set_option", "key": format!("Key{i}"), "value": "x".repeat(10)}),
            )
        })
        .collect();
    // Each line is `C:<id>:SET OPTION KeyN=xxxxxxxxxx\n` (about 35 bytes): two fit in 80 bytes.
    let mut delivered = Vec::new();
    for _ in 0..3 {
        let reply = poll(&server, SN);
        let lines: Vec<&str> = reply.lines().collect();
        assert_eq!(lines.len(), 2, "{reply}");
        assert!(reply.len() <= 80, "{reply}");
        delivered.extend(lines.iter().map(|l| l.to_owned().to_owned()));
    }
    assert_eq!(poll(&server, SN), "OK");
    let expected: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("C:{id}:SET OPTION Key{i}=xxxxxxxxxx"))
        .collect();
    assert_eq!(delivered, expected);
}

#[test]
fn disable_and_enable_user_round_trip_through_the_device() {
    let server = Server::start();
    let r = server.iclock(
        "POST",
        &format!("/iclock/cdata?SN={SN}&table=OPERLOG&Stamp=1"),
        b"USER PIN=77\tName=Bob\tPri=14\tPasswd=123\tCard=4455\tGrp=2\tTZ=0001000000000000\tVerify=1\n\
          FP PIN=77\tFID=6\tSize=8\tValid=1\tTMP=QUJDRA==\n",
    );
    assert_eq!(r.text(), "OK:2");
    let templates = server.get_json(&format!("/devices/{SN}/templates?pin=77"));
    assert_eq!(templates.as_array().unwrap().len(), 1);
    assert_eq!(templates[0]["template"], "QUJDRA==");

    // Disabling removes the user from the terminal; punchd keeps the record, marked disabled.
    let disable = enqueue(&server, SN, json!({"type": "disable_user", "pin": "77"}));
    assert_eq!(
        poll(&server, SN),
        format!("C:{disable}:DATA DELETE USERINFO PIN=77\n")
    );
    results(&server, SN, &format!("ID={disable}&Return=0&CMD=DATA\n"));
    let users = server.get_json(&format!("/devices/{SN}/users"));
    assert_eq!(
        (users[0]["pin"].clone(), users[0]["enabled"].clone()),
        (json!("77"), json!(false))
    );

    // Enabling writes the full stored record back, templates included, as one command per record.
    let r = server.api(
        "POST",
        &format!("/devices/{SN}/commands"),
        Some(&json!({"type": "enable_user", "pin": "77"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let queued = r.json();
    let ids: Vec<i64> = queued
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        poll(&server, SN),
        format!(
            "C:{}:DATA UPDATE USERINFO PIN=77\tName=Bob\tPri=14\tPasswd=123\tCard=4455\tGrp=2\tTZ=0001000000000000\tVerify=1\n\
             C:{}:DATA UPDATE FINGERTMP PIN=77\tFID=6\tSize=8\tValid=1\tTMP=QUJDRA==\n",
            ids[0], ids[1]
        )
    );
    results(
        &server,
        SN,
        &format!(
            "ID={}&Return=0&CMD=DATA\nID={}&Return=0&CMD=DATA\n",
            ids[0], ids[1]
        ),
    );
    let users = server.get_json(&format!("/devices/{SN}/users"));
    assert_eq!(users[0]["enabled"], true);

    // Enabling a user punchd never saw is refused (the full record is needed).
    let r = server.api(
        "POST",
        &format!("/devices/{SN}/commands"),
        Some(&json!({"type": "enable_user", "pin": "404"})),
    );
    assert_eq!(r.status, 400, "{}", r.text());
}
