//! Issue 6, "What new users hit" (push): fdata user files and the seed guide's management routes.

use serde_json::{json, Value};

use crate::harness::{sqlite, Server};

const SN: &str = "SEEDK40000002";

fn handshake(server: &Server) {
    let r = server.iclock("GET", &format!("/iclock/cdata?SN={SN}&options=all"), b"");
    assert!(r.text().starts_with("GET OPTION FROM: "), "{}", r.text());
}

/// `POST /api/push<path>` with the API token (or without one).
fn seed(server: &Server, path: &str, body: &Value, token: bool) -> (u16, String) {
    let auth = if token {
        format!("Authorization: Bearer {}\r\n", server.token())
    } else {
        String::new()
    };
    let body = body.to_string();
    let r = server.raw(
        format!(
            "POST /api/push{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    (r.status, r.text())
}

#[test]
fn fdata_bytes_are_the_users_file_and_served_by_the_api() {
    let server = Server::start();
    handshake(&server);
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    jpeg.extend_from_slice(b"JFIF\0not really a picture\0\x01\x02\xFF\xD9");
    let r = server.iclock("POST", &format!("/iclock/fdata?SN={SN}&PIN=1001"), &jpeg);
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    // Sent again: kept once.
    server.iclock("POST", &format!("/iclock/fdata?SN={SN}&PIN=1001"), &jpeg);
    let files = server.get_json(&format!("/devices/{SN}/users/1001/files"));
    let files = files.as_array().unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["kind"], "userfile");
    assert_eq!(files[0]["size"], jpeg.len());
    assert!(files[0]["file_name"].as_str().unwrap().starts_with("1001-"));
    assert!(files[0]["file_name"].as_str().unwrap().ends_with(".jpg"));
    let id = files[0]["id"].as_i64().unwrap();
    let r = server.api("GET", &format!("/devices/{SN}/users/1001/files/{id}"), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.body, jpeg);
    // Stored in the database, not only in the journal.
    let stored: Vec<u8> = sqlite(&server.db)
        .query_row(
            "SELECT content FROM photos WHERE device_sn = ?1 AND pin = '1001' AND kind = 'userfile'",
            [SN],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, jpeg);
    // Another user's list does not show it, nor can it be fetched through them.
    assert_eq!(
        server.get_json(&format!("/devices/{SN}/users/1002/files")),
        json!([])
    );
    assert_eq!(
        server
            .api("GET", &format!("/devices/{SN}/users/1002/files/{id}"), None)
            .status,
        404
    );
    // The capture photo form of fdata still is a capture photo.
    let mut photo = b"PIN=20081119172119-4.jpg\nSN=X\nsize=4\nCMD=uploadphoto\0".to_vec();
    photo.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xD9]);
    let r = server.iclock(
        "POST",
        &format!("/iclock/fdata?SN={SN}&PIN=20081119172119-4.jpg&PhotoStamp=1"),
        &photo,
    );
    assert_eq!(r.text(), "OK");
    let kind: String = sqlite(&server.db)
        .query_row(
            "SELECT kind FROM photos WHERE file_name = '20081119172119-4.jpg'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kind, "attphoto");
    // The API document lists the route.
    let doc = server.get_json("/openapi.json");
    assert!(doc["paths"]["/api/v1/devices/{sn}/users/{pin}/files"]["get"].is_object());
    assert!(doc["paths"]["/api/push/devices/{sn}/upload-users"]["post"].is_object());
}

#[test]
fn seed_management_routes_queue_our_commands() {
    let server = Server::start();
    handshake(&server);
    // Token required, like /api/v1.
    let (status, _) = seed(
        &server,
        &format!("/devices/{SN}/command"),
        &json!({"command": "INFO"}),
        false,
    );
    assert_eq!(status, 401);

    let (status, body) = seed(
        &server,
        &format!("/devices/{SN}/command"),
        &json!({"command": "DATA UPDATE USERINFO PIN=1001\tName=Test User"}),
        true,
    );
    assert_eq!(status, 201, "{body}");
    let raw: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(raw["sn"], SN);
    let raw_id = raw["command_ids"][0].as_i64().unwrap();
    assert_eq!(
        raw["commands"][0]["kind"],
        json!({"type": "raw", "text": "DATA UPDATE USERINFO PIN=1001\tName=Test User"})
    );

    let (status, body) = seed(
        &server,
        &format!("/devices/{SN}/upload-users"),
        &json!({"users": [{"pin": "1001", "name": "Test User"}, {"PIN": "1002", "Name": "Bo", "Pri": 14, "Card": "42"}]}),
        true,
    );
    assert_eq!(status, 201, "{body}");
    let users: Value = serde_json::from_str(&body).unwrap();
    let user_ids: Vec<i64> = users["command_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(user_ids.len(), 2);
    assert_eq!(users["commands"][1]["kind"]["type"], "upsert_user");

    let (status, body) = seed(
        &server,
        &format!("/devices/{SN}/upload-attendance"),
        &json!({"from": "2026-11-01", "to": "2026-11-30"}),
        true,
    );
    assert_eq!(status, 201, "{body}");
    let att: Value = serde_json::from_str(&body).unwrap();
    let att_id = att["command_ids"][0].as_i64().unwrap();

    // The terminal gets exactly these lines.
    let reply = server
        .iclock("GET", &format!("/iclock/getrequest?SN={SN}"), b"")
        .text();
    assert_eq!(
        reply,
        format!(
            "C:{raw_id}:DATA UPDATE USERINFO PIN=1001\tName=Test User\n\
             C:{}:DATA UPDATE USERINFO PIN=1001\tName=Test User\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000000000000\n\
             C:{}:DATA UPDATE USERINFO PIN=1002\tName=Bo\tPri=14\tPasswd=\tCard=42\tGrp=1\tTZ=0000000000000000\n\
             C:{att_id}:DATA QUERY ATTLOG StartTime=2026-11-01 00:00:00\tEndTime=2026-11-30 23:59:59\n",
            user_ids[0], user_ids[1]
        )
    );

    // A bad user queues nothing; an unknown device is 404.
    let (status, body) = seed(
        &server,
        &format!("/devices/{SN}/upload-users"),
        &json!([{"pin": "7", "name": "Ok"}, {"pin": "", "name": "Nobody"}]),
        true,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("user 2: PIN is empty"), "{body}");
    let (status, _) = seed(
        &server,
        "/devices/NOSUCHSN/upload-users",
        &json!([{"pin": "7"}]),
        true,
    );
    assert_eq!(status, 404);
    assert_eq!(
        server
            .iclock("GET", &format!("/iclock/getrequest?SN={SN}"), b"")
            .text(),
        "OK"
    );
}
