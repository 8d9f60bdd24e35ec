//! Every captured push request in the shared samples, replayed the way a terminal sends it, through
//! `punchd replay --server` and through `punchd replay` into a database; then what was stored, read back through
//! the JSON API, the CLI and the SQLite file.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::harness::{self, cli, cli_json, sample, sample_files, Options, Server};

const SHANGHAI: &str = "default_time_zone = \"Asia/Shanghai\"\n";

/// `<status>\t<first line>[ (+n lines)]`, the way `punchd replay` prints an answer.
fn summary(status: u16, body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    let first = body.lines().next().unwrap_or("");
    let more = body.lines().count().saturating_sub(1);
    if more > 0 {
        format!("{status}\t{first} (+{more} lines)")
    } else {
        format!("{status}\t{first}")
    }
}

/// `punchd replay` stdout as file name → summary.
fn replay_summaries(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .map(|line| {
            let (path, rest) = line.split_once('\t').unwrap();
            let name = Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, rest.to_owned())
        })
        .collect()
}

/// Answers that carry the current time cannot be compared between runs: keep the part before `=`.
fn comparable(name: &str, summary: &str) -> String {
    if name.starts_with("us06_") || name.starts_with("sec21_") {
        summary.split('=').next().unwrap().to_owned()
    } else {
        summary.to_owned()
    }
}

/// The stored facts of every punch (what must not depend on how it arrived), sorted.
fn punch_facts(db: &Path) -> Vec<Value> {
    let all = cli_json(db, &["punches", "--format", "json"]);
    let mut facts: Vec<Value> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            json!([
                p["device_sn"],
                p["pin"],
                p["punched_at"],
                p["time_zone"],
                p["punched_at_utc"],
                p["punch_state"],
                p["verify_mode"],
                p["work_code"],
                p["extra"],
                p["source"]
            ])
        })
        .collect();
    facts.sort_by_key(|v| v.to_string());
    facts
}

/// Send every sample to `server` as raw bytes; file name → response.
fn replay_raw(server: &Server) -> BTreeMap<String, harness::Response> {
    sample_files()
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let captured = zk_push::sample::parse_captured_request(&std::fs::read(path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let response = server.raw(&harness::terminal_bytes(&captured, server.port));
            (name, response)
        })
        .collect()
}

#[test]
fn raw_http_replay_server_and_replay_into_database_agree_on_every_sample() {
    let files = sample_files();
    let file_args: Vec<String> = files
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();

    // 1. Raw bytes on a socket, as a terminal.
    let direct = Server::with(Options {
        config: Some(SHANGHAI.into()),
        ..Options::default()
    });
    let raw = replay_raw(&direct);
    for (name, response) in &raw {
        assert_eq!(response.status, 200, "{name}: {}", response.text());
        assert_eq!(
            response.header("content-type"),
            Some("text/plain"),
            "{name}"
        );
        let date = response
            .header("date")
            .unwrap_or_else(|| panic!("{name}: no Date header"));
        assert!(date.ends_with(" GMT"), "{name}: Date {date:?}");
        assert!(
            chrono::DateTime::parse_from_rfc2822(date).is_ok(),
            "{name}: Date {date:?} is not an HTTP date"
        );
        // Where the capture shows the vendor server's acknowledgement, ours says the same (`OK: 2` with a
        // space was the Express server's spelling; the count is what matters).
        let expected = sample(name)
            .expected_response
            .map(|r| String::from_utf8_lossy(&r).trim().to_owned());
        let is_upload = sample(name).method == "POST";
        match expected {
            Some(expected) if is_upload && expected.starts_with("OK:") => {
                assert_eq!(response.text(), expected.replace(' ', ""), "{name}");
            }
            // A bare `OK` (older documents) and our `OK:<n>` are both acknowledgements.
            Some(expected) if is_upload && expected == "OK" => {
                let text = response.text();
                assert!(text == "OK" || text.starts_with("OK:"), "{name}: {text}");
            }
            _ => {}
        }
    }

    // 2. `punchd replay --server` against a second server.
    let via_cli = Server::with(Options {
        config: Some(SHANGHAI.into()),
        ..Options::default()
    });
    let mut args = vec![
        "replay".to_owned(),
        "--server".to_owned(),
        format!("http://127.0.0.1:{}", via_cli.port),
    ];
    args.extend(file_args.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cli(&via_cli.db, &args);
    assert!(out.ok, "replay --server failed: {}", out.stderr);
    let server_summaries = replay_summaries(&out.stdout);

    // 3. `punchd replay` straight into a database.
    let dir = tempfile::tempdir().unwrap();
    let offline_db = dir.path().join("offline.db");
    let config = dir.path().join("punchd.toml");
    std::fs::write(&config, SHANGHAI).unwrap();
    let mut args = vec![
        "--config".to_owned(),
        config.to_string_lossy().into_owned(),
        "replay".to_owned(),
    ];
    args.extend(file_args.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cli(&offline_db, &args);
    assert!(out.ok, "replay into a database failed: {}", out.stderr);
    let offline_summaries = replay_summaries(&out.stdout);

    assert_eq!(server_summaries.len(), files.len());
    assert_eq!(offline_summaries.len(), files.len());
    for (name, response) in &raw {
        let direct_summary = comparable(name, &summary(response.status, &response.body));
        assert_eq!(
            comparable(name, &server_summaries[name]),
            direct_summary,
            "{name}: replay --server"
        );
        assert_eq!(
            comparable(name, &offline_summaries[name]),
            direct_summary,
            "{name}: replay into a database"
        );
    }
    // A few answers pinned exactly.
    assert_eq!(
        summary(200, &raw["att03_ATTLOG_7col_batch9.txt"].body),
        "200\tOK:9"
    );
    assert_eq!(
        summary(200, &raw["att06_OPERLOG_USER_x2.txt"].body),
        "200\tOK:2"
    );
    assert_eq!(
        summary(200, &raw["fld04_X100C_OPLOG_enrol_reply_OK_space.txt"].body),
        "200\tOK:2"
    );
    assert_eq!(
        summary(200, &raw["us02_ATTLOG_5col_workcode.txt"].body),
        "200\tOK:2"
    );
    assert_eq!(
        summary(200, &raw["zkeco02_remote_att_user.txt"].body),
        "200\tNONE"
    );
    assert_eq!(
        summary(200, &raw["att01_handshake_2.2.14_pushcommkey.txt"].body),
        "200\tGET OPTION FROM: 0316144680030 (+19 lines)"
    );

    // The same punches whichever way they came in.
    let facts = punch_facts(&direct.db);
    assert_eq!(facts.len(), 14, "{facts:#?}");
    assert_eq!(punch_facts(&via_cli.db), facts);
    assert_eq!(punch_facts(&offline_db), facts);
}

#[test]
fn stored_samples_read_back_through_the_api_cli_and_database() {
    let mut server = Server::start();
    let raw = replay_raw(&server);
    assert!(raw.values().all(|r| r.status == 200));

    // att03: nine punches, two PINs, Asia/Shanghai is UTC+8.
    let att03 = server.punches("0316144680030");
    let rows: Vec<(String, String, String)> = att03
        .iter()
        .map(|p| {
            (
                p["pin"].as_str().unwrap().to_owned(),
                p["punched_at"].as_str().unwrap().to_owned(),
                p["punched_at_utc"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("1452", 28),
        ("1452", 29),
        ("1452", 30),
        ("1452", 31),
        ("1452", 33),
        ("1452", 34),
        ("1452", 35),
        ("8965", 36),
        ("8965", 37),
    ]
    .iter()
    .map(|(pin, s)| {
        (
            (*pin).to_owned(),
            format!("2015-07-30T15:16:{s}"),
            format!("2015-07-30T07:16:{s}Z"),
        )
    })
    .collect();
    assert_eq!(rows, expected);
    for p in &att03 {
        assert_eq!(p["punch_state"], 0);
        assert_eq!(p["verify_mode"], 1);
        assert_eq!(p["work_code"], "0");
        assert_eq!(p["extra"], json!(["0", "0"]));
        assert_eq!(p["time_zone"], "Asia/Shanghai");
        assert_eq!(p["source"], "push");
        assert_eq!(p["device_sn"], "0316144680030");
    }
    // All nine came from one journal entry, which kept the body byte for byte.
    let journal_id = att03[0]["journal_id"].as_i64().unwrap();
    assert!(att03.iter().all(|p| p["journal_id"] == journal_id));
    let journal = server.get_json(&format!("/journal/{journal_id}"));
    assert_eq!(journal["kind"], "ATTLOG");
    assert_eq!(journal["n_records"], 9);
    assert_eq!(journal["n_stored"], 9);
    assert_eq!(journal["n_duplicate"], 0);
    assert_eq!(journal["errors"], json!([]));
    assert_eq!(
        journal["request"],
        "POST /iclock/cdata?SN=0316144680030&table=ATTLOG&Stamp=9999"
    );
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD
        .decode(journal["body_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(body, sample("att03_ATTLOG_7col_batch9.txt").body);

    // PIN filter and a local-day range.
    let page = server.get_json("/punches?device=0316144680030&pin=8965");
    assert_eq!(page["punches"].as_array().unwrap().len(), 2);
    let page =
        server.get_json("/punches?pin=1452&from=2015-07-30%2015:16:30&to=2015-07-30%2015:16:34");
    let times: Vec<&str> = page["punches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["punched_at"].as_str().unwrap())
        .collect();
    assert_eq!(
        times,
        [
            "2015-07-30T15:16:30",
            "2015-07-30T15:16:31",
            "2015-07-30T15:16:33"
        ]
    );

    // The other ATTLOG shapes: empty work code + trailing TAB, 11 columns, 255 states, 5 columns.
    let one = |sn: &str| {
        let all = server.punches(sn);
        assert_eq!(all.len(), 1, "{sn}: {all:#?}");
        all[0].clone()
    };
    let fld02 = one("SERIAL87654321");
    assert_eq!(
        (
            &fld02["pin"],
            &fld02["punched_at"],
            &fld02["punch_state"],
            &fld02["verify_mode"],
            &fld02["work_code"],
            &fld02["extra"]
        ),
        (
            &json!("1156"),
            &json!("2024-08-05T12:40:57"),
            &json!(1),
            &json!(1),
            &Value::Null,
            &json!(["0", "0"])
        )
    );
    let fld06 = one("CNYG213260182");
    assert_eq!(
        (
            &fld06["pin"],
            &fld06["punched_at"],
            &fld06["punch_state"],
            &fld06["verify_mode"],
            &fld06["work_code"],
            &fld06["extra"]
        ),
        (
            &json!("36"),
            &json!("2025-01-29T12:11:56"),
            &json!(1),
            &json!(15),
            &json!("0"),
            &json!(["0", "0", "0", "0", "0", "10904"])
        )
    );
    let fld09 = one("0782232260009");
    assert_eq!(
        (
            &fld09["pin"],
            &fld09["punched_at"],
            &fld09["punch_state"],
            &fld09["verify_mode"],
            &fld09["work_code"],
            &fld09["extra"]
        ),
        (
            &json!("3"),
            &json!("2023-10-16T08:38:16"),
            &json!(255),
            &json!(15),
            &json!("0"),
            &json!(["0", "0", "255", "0", "0"])
        )
    );
    assert_eq!(fld09["punched_at_utc"], "2023-10-16T00:38:16Z");
    let us02 = server.punches("12300001");
    let us02: Vec<Value> = us02
        .iter()
        .map(|p| {
            json!([
                p["pin"],
                p["punched_at"],
                p["punch_state"],
                p["verify_mode"],
                p["work_code"],
                p["extra"]
            ])
        })
        .collect();
    assert_eq!(
        us02,
        [
            json!(["982", "2008-02-25T12:08:21", 1, 0, "9001", []]),
            json!(["982", "2008-02-25T18:01:09", 1, 0, "9001", []]),
        ]
    );

    // The CLI shows the same: CSV (state with its name, 255 = unset) and JSON.
    let csv = cli(
        &server.db,
        &["punches", "--device", "0782232260009", "--format", "csv"],
    );
    assert!(csv.ok, "{}", csv.stderr);
    let mut reader = csv::Reader::from_reader(csv.stdout.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "id",
            "device_sn",
            "pin",
            "punched_at",
            "time_zone",
            "punched_at_utc",
            "punch_state",
            "punch_state_name",
            "verify_mode",
            "verify_mode_name",
            "work_code",
            "source",
            "received_at",
            "extra"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    let row: Vec<&str> = rows[0].iter().collect();
    // Columns beyond the known ones, as the terminal sent them (mask flag 255 in the 8th column), as a JSON
    // array: no raw tab in a CSV cell.
    assert_eq!(row[13], r#"["0","0","255","0","0"]"#);
    assert_eq!(
        row[1..12],
        [
            "0782232260009",
            "3",
            "2023-10-16 08:38:16",
            "Asia/Shanghai",
            "2023-10-16T00:38:16Z",
            "255",
            "unset",
            "15",
            "face",
            "0",
            "push"
        ]
    );
    let from_cli = cli_json(
        &server.db,
        &["punches", "--device", "0316144680030", "--format", "json"],
    );
    assert_eq!(from_cli, Value::Array(att03.clone()));
    let api_csv = server.api("GET", "/punches?device=12300001&format=csv", None);
    assert_eq!(api_csv.status, 200);
    assert_eq!(
        api_csv.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    let cli_csv = cli(
        &server.db,
        &["punches", "--device", "12300001", "--format", "csv"],
    );
    assert_eq!(api_csv.text(), cli_csv.stdout);

    // att06: two users, as the API and the CLI list them.
    let users = server.get_json("/devices/0316144680030/users");
    let users: Vec<Value> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            json!([
                u["pin"],
                u["name"],
                u["privilege"],
                u["password"],
                u["card"],
                u["group"],
                u["time_zones"],
                u["enabled"]
            ])
        })
        .collect();
    assert_eq!(
        users,
        [
            json!([
                "36234",
                "36234",
                0,
                "",
                "133440",
                "1",
                "0001000000000000",
                true
            ]),
            json!([
                "36235",
                "36235",
                0,
                "",
                "133441",
                "1",
                "0001000000000000",
                true
            ]),
        ]
    );
    let cli_users = cli_json(
        &server.db,
        &["users", "--device", "0316144680030", "--format", "json"],
    );
    assert_eq!(cli_users, server.get_json("/devices/0316144680030/users"));

    // att05 and fld04: the operation log, straight from the database.
    let conn = harness::sqlite(&server.db);
    let oplog: Vec<(String, i64, String, String, String)> = conn
        .prepare("SELECT device_sn, op_type, operator, op_at, objects FROM oplog ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let s = |v: &str| v.to_owned();
    assert_eq!(
        oplog,
        [
            (
                s("0316144680030"),
                4,
                s("14"),
                s("2015-07-30 10:22:34"),
                s(r#"["0","0","0","0"]"#)
            ),
            (
                s("SERIAL87654321"),
                30,
                s("0"),
                s("2024-08-05 12:48:25"),
                s(r#"["1160","0","0","0"]"#)
            ),
            (
                s("SERIAL87654321"),
                6,
                s("0"),
                s("2024-08-05 12:48:25"),
                s(r#"["1160","0","0","0"]"#)
            ),
        ]
    );

    // att04: the capture photo, named by the file name, with the bytes after the NUL.
    let att04 = sample("att04_ATTPHOTO.txt");
    let nul = att04.body.iter().position(|&b| b == 0).unwrap();
    let (pin, file_name, taken_at, content): (Option<String>, String, Option<String>, Vec<u8>) = conn
        .query_row(
            "SELECT pin, file_name, taken_at, content FROM photos WHERE device_sn = '0316144680030' AND kind = 'attphoto'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(pin.as_deref(), Some("123"));
    assert_eq!(file_name, "20150731103012-123.jpg");
    assert_eq!(taken_at.as_deref(), Some("2015-07-31 10:30:12"));
    assert_eq!(content, att04.body[nul + 1..]);

    // att02 INFO and att09 options merged into the device's info; firmware from INFO.
    let device = server.get_json("/devices/0316144680030");
    assert_eq!(device["firmware"], "Ver 2.0.12-20150625");
    assert_eq!(device["push_version"], "2.2.14");
    assert_eq!(device["language"], "83");
    assert_eq!(device["approval"], "approved");
    assert_eq!(device["transport"], "push");
    let info = &device["info"];
    assert_eq!(info["firmware"], "Ver 2.0.12-20150625");
    assert_eq!(info["IPAddress"], "192.168.16.27");
    assert_eq!(info["UserCount"], 0);
    assert_eq!(info["FPVersion"], "10");
    assert_eq!(info["FaceVersion"], "7");
    assert_eq!(info["FingerFunOn"], "1");
    assert_eq!(info["FaceFunOn"], "1");
    assert_eq!(info["UserPicURLFunOn"], "1");
    // fld11: a comma inside a value, empty values, firmware from FWVersion.
    let speedface = server.get_json("/devices/%3CSN%3E");
    assert_eq!(speedface["info"]["~OEMVendor"], "ZKTECO CO., LTD.");
    assert_eq!(speedface["info"]["FWVersion"], "ZAM180-NF50VA-Ver3.4.9");
    assert_eq!(speedface["info"]["PushVersion"], "Ver 2.0.33S-20220623");
    assert_eq!(speedface["info"]["~DeviceName"], "SpeedFace-V5L");
    assert_eq!(speedface["info"]["RegDeviceType"], "");
    assert_eq!(speedface["info"]["RoomStatus"], "0");
    // fld13 (SenseFace 2A) went through the same path.
    let senseface = server.get_json("/devices/NYU7253100765");
    assert_eq!(senseface["firmware"], "ZAM70-NF24HA-Ver3.3.12");
    assert_eq!(senseface["info"]["Language"], "76");

    // The CLI's device listing holds the same devices.
    let devices = cli_json(&server.db, &["devices", "--format", "json"]);
    let cli_sns: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["sn"].as_str().unwrap())
        .collect();
    let api_devices = server.get_json("/devices");
    let api_sns: Vec<&str> = api_devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["sn"].as_str().unwrap())
        .collect();
    assert_eq!(cli_sns, api_sns);
    assert!(cli_sns.contains(&"0316144680030") && cli_sns.contains(&"SERIAL87654321"));
    let cli_att = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["sn"] == "0316144680030")
        .unwrap();
    assert_eq!(cli_att["firmware"], "Ver 2.0.12-20150625");
    assert_eq!(cli_att["info"], device["info"]);

    // Stamps advanced per table. The server holds push stamps for up to a second and writes them as it stops
    // (store/sqlite/held_stamps.rs): read them after a clean stop.
    assert!(server.terminate(std::time::Duration::from_secs(20)));
    let stamps: Vec<(String, String)> = conn
        .prepare("SELECT table_name, value FROM stamps WHERE device_sn = '0316144680030' ORDER BY table_name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        stamps,
        [
            (s("ATTLOG"), s("9999")),
            (s("ATTPHOTO"), s("9999")),
            (s("IDCARD"), s("9999")),
            (s("OPERLOG"), s("9999"))
        ]
    );
}

/// The handshake reply of att01, byte for byte, for a zone with whole hours and one with half hours.
fn handshake_reply(zone: &str) -> harness::Response {
    let server = Server::with(Options {
        time_zone: Some(zone.into()),
        ..Options::default()
    });
    let captured = sample("att01_handshake_2.2.14_pushcommkey.txt");
    server.raw(&harness::terminal_bytes(&captured, server.port))
}

fn expected_handshake(time_zone: &str) -> String {
    format!(
        "GET OPTION FROM: 0316144680030\n\
         ATTLOGStamp=0\nOPERLOGStamp=0\nATTPHOTOStamp=0\nBIODATAStamp=0\n\
         Stamp=0\nOpStamp=0\nPhotoStamp=0\n\
         ErrorDelay=30\nDelay=10\nTransTimes=00:00;14:05\nTransInterval=1\n\
         TransFlag=TransData AttLog\tOpLog\tAttPhoto\tEnrollUser\tChgUser\tEnrollFP\tChgFP\tFPImag\tFACE\tUserPic\t\
         WORKCODE\tBioPhoto\n\
         TimeZone={time_zone}\nRealtime=1\nEncrypt=None\nServerVer=2.4.1\nPushProtVer=2.4.1\nPushOptionsFlag=1\n\
         PushOptions=~DeviceName,FWVersion,PushVersion,IPAddress,MAC,~Platform,UserCount,TransactionCount,\
         FPCount,FaceCount,FingerFunOn,FaceFunOn,FPVersion,FaceVersion,BioDataFun,BioPhotoFun,\
         MultiBioDataSupport,MultiBioPhotoSupport,MultiBioVersion\n"
    )
}

#[test]
fn handshake_reply_bytes_follow_the_configured_zone() {
    for (zone, minutes) in [("Asia/Kolkata", "330"), ("Asia/Shanghai", "8")] {
        let response = handshake_reply(zone);
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("text/plain"));
        let date = response.header("date").unwrap();
        assert!(date.ends_with(" GMT"), "{date}");
        assert_eq!(response.text(), expected_handshake(minutes), "{zone}");
    }
}

#[test]
fn handshake_stamps_are_the_stored_ones() {
    let server = Server::start();
    assert_eq!(
        server
            .attlog("0316144680030", "1\t2024-01-01 08:00:00\t0\t1\n")
            .text(),
        "OK:1"
    );
    let response = server.iclock(
        "POST",
        "/iclock/cdata?SN=0316144680030&table=OPERLOG&OpStamp=4242",
        b"OPLOG 4\t14\t2015-07-30 10:22:34\t0\t0\t0\t0\n",
    );
    assert_eq!(response.text(), "OK:1");
    let captured = sample("att01_handshake_2.2.14_pushcommkey.txt");
    let body = server
        .raw(&harness::terminal_bytes(&captured, server.port))
        .text();
    let stamps: Vec<&str> = body.lines().skip(1).take(7).collect();
    assert_eq!(
        stamps,
        [
            "ATTLOGStamp=9999",
            "OPERLOGStamp=4242",
            "ATTPHOTOStamp=0",
            "BIODATAStamp=0",
            "Stamp=9999",
            "OpStamp=4242",
            "PhotoStamp=0"
        ]
    );
}
