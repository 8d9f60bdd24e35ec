//! Frappe beyond check-ins (issue 8), against the contract server (`frappe_contract.rs`): Shift Types'
//! `last_sync_of_checkin` follows the slowest feeding device and never passes an undelivered punch (frappe-hr.md
//! §5), a per-device log type rule (§6 `punch_direction`), and employees read from Frappe (§3, §4).

use std::time::Duration;

use chrono::{TimeZone, Utc};

use crate::frappe_contract::{FrappeContract, Version};
use crate::harness::{cli, cli_json, sqlite, Server};

fn attlog(pin: &str, at: &str, state: u8) -> String {
    format!("{pin}\t{at}\t{state}\t1\t0\t0\t0\n")
}

fn pending(server: &Server) -> u64 {
    let all = cli_json(&server.db, &["sinks", "--format", "json"]);
    all[0]["pending"].as_u64().unwrap()
}

fn drained(server: &Server) {
    server.wait_for("sink drained", Duration::from_secs(30), || {
        (pending(server) == 0).then_some(())
    });
}

/// A device's watermark (its `last_seen`) as Frappe should see it: naive Asia/Shanghai wall time, whole seconds.
fn watermark_in_shanghai(server: &Server, sn: &str) -> String {
    let ms: i64 = sqlite(&server.db)
        .query_row("SELECT last_seen FROM devices WHERE sn = ?1", [sn], |r| {
            r.get(0)
        })
        .unwrap();
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn sync_shifts(server: &Server) -> serde_json::Value {
    cli_json(&server.db, &["sinks", "sync-shifts", "frappe"])
}

#[test]
fn frappe_last_sync_follows_the_slowest_device_forward_only_never_past_an_undelivered_punch() {
    let site = FrappeContract::start(Version::Hrms, "K", "S");
    site.employee("HR-EMP-00001", "101", "Active");
    site.shift_type("Day Shift", None);
    site.shift_type("Night", Some("2099-01-01 00:00:00"));
    site.shift_type("Plant", Some("2024-01-01 00:00:00"));
    let server = Server::start();
    let url = site.url();
    let added = cli(
        &server.db,
        &[
            "sinks",
            "add",
            "frappe",
            "--url",
            &url,
            "--api-key",
            "K",
            "--api-secret",
            "S",
            "--time-zone",
            "Asia/Shanghai",
            "--backoff-ms",
            "50",
            "--backoff-max-secs",
            "1",
            "--shift-type",
            "Day Shift=SHIFTA0001,SHIFTB0001",
            "--shift-type",
            "Night",
            "--shift-type",
            "Plant=NEVERSEEN1",
            "--device-log-type",
            "SHIFTB0001=out",
        ],
    );
    assert!(added.ok, "{}", added.stderr);
    assert_eq!(
        server
            .attlog("SHIFTA0001", &attlog("101", "2024-05-01 08:00:00", 0))
            .text(),
        "OK:1"
    );
    // State 0 (check-in) on the exit terminal: the device rule makes it OUT.
    assert_eq!(
        server
            .attlog("SHIFTB0001", &attlog("101", "2024-05-01 17:00:00", 0))
            .text(),
        "OK:1"
    );
    drained(&server);
    let mut got: Vec<(String, String)> = site
        .checkins()
        .into_iter()
        .map(|c| (c.time, c.log_type))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("2024-05-01 08:00:00".to_owned(), "IN".to_owned()),
            ("2024-05-01 17:00:00".to_owned(), "OUT".to_owned())
        ]
    );

    // Everything delivered: Day Shift goes to the slower device's watermark (A polled first).
    let results = sync_shifts(&server);
    let first = watermark_in_shanghai(&server, "SHIFTA0001");
    assert!(first <= watermark_in_shanghai(&server, "SHIFTB0001"));
    assert_eq!(
        site.last_sync("Day Shift").as_deref(),
        Some(first.as_str()),
        "{results}"
    );
    // (Written by this call, or by serve's own minute round a moment before: the same value.)
    assert_eq!(results[0]["target"], first.as_str());
    assert!(
        results[0]["held_by"][0]
            .as_str()
            .unwrap()
            .starts_with("SHIFTA0001: watermark"),
        "{results}"
    );
    // Night (every device) is already past its target: never moved back. Plant's device never delivered.
    assert_eq!(
        site.last_sync("Night").as_deref(),
        Some("2099-01-01 00:00:00")
    );
    assert!(results[1]["written"].is_null(), "{results}");
    assert_eq!(
        site.last_sync("Plant").as_deref(),
        Some("2024-01-01 00:00:00")
    );
    assert_eq!(results[2]["target"], serde_json::Value::Null);
    assert_eq!(
        results[2]["held_by"][0],
        "no approved device feeds this Shift Type"
    );

    // The sink is paused and A uploads a late punch: A's watermark moves, but Frappe does not have the punch, so
    // Day Shift may not pass it (forward only: it stays where it was).
    assert!(cli(&server.db, &["sinks", "pause", "frappe"]).ok);
    assert_eq!(
        server
            .attlog("SHIFTA0001", &attlog("101", "2024-05-02 09:00:00", 0))
            .text(),
        "OK:1"
    );
    let results = sync_shifts(&server);
    assert_eq!(results[0]["target"], "2024-05-02 09:00:00", "{results}");
    assert!(results[0]["written"].is_null(), "{results}");
    assert_eq!(site.last_sync("Day Shift").as_deref(), Some(first.as_str()));
    let shown = cli_json(&server.db, &["sinks", "show", "frappe"]);
    assert!(
        shown["shift_types"][0]["held_by"][0]
            .as_str()
            .unwrap()
            .starts_with("SHIFTA0001: 1 punches not yet delivered to Frappe"),
        "{shown}"
    );

    // Delivered, and B polls again: Day Shift advances to the slower of the two new watermarks.
    assert!(cli(&server.db, &["sinks", "resume", "frappe"]).ok);
    drained(&server);
    assert_eq!(
        server
            .attlog("SHIFTB0001", &attlog("101", "2024-05-02 18:00:00", 1))
            .text(),
        "OK:1"
    );
    drained(&server);
    sync_shifts(&server);
    let second = watermark_in_shanghai(&server, "SHIFTA0001")
        .min(watermark_in_shanghai(&server, "SHIFTB0001"));
    // (Whole seconds: within the same second as the first it is not moved again.)
    assert!(second >= first);
    assert_eq!(
        site.last_sync("Day Shift").as_deref(),
        Some(second.as_str())
    );
    // Every write moved it forward. serve's own round (at start, then every minute, on the sinks' runtime) may
    // have written too, at any moment: before B's first upload it may have moved Day Shift to A's delivered
    // punch (a terminal punchd has never heard from cannot hold a Shift Type back), always forward.
    let writes: Vec<String> = site
        .site
        .lock()
        .unwrap()
        .shift_type_writes
        .iter()
        .map(|(name, at)| {
            assert_eq!(name, "Day Shift");
            at.clone()
        })
        .collect();
    assert!(writes.windows(2).all(|w| w[0] < w[1]), "{writes:?}");
    assert!(writes.contains(&first), "{writes:?}");
    assert_eq!(writes.last(), Some(&second), "{writes:?}");
    assert!(
        writes.iter().all(|w| *w <= first || *w == second),
        "nothing between the two syncs but forward moves: {writes:?}"
    );
}

#[test]
fn frappe_employees_sync_creates_new_ones_and_lists_conflicts_without_overwriting() {
    let site = FrappeContract::start(Version::Hrms, "K", "S");
    site.employee_with(
        "HR-EMP-00001",
        "101",
        "Active",
        &[
            ("employee_name", "Ann Example"),
            ("department", "Sales - AC"),
            ("date_of_joining", "2024-01-15"),
        ],
    );
    site.employee_with(
        "HR-EMP-00002",
        "102",
        "Left",
        &[
            ("employee_name", "Bo Left"),
            ("relieving_date", "2025-05-31"),
            ("branch", "HQ"),
        ],
    );
    site.employee_with(
        "HR-EMP-00003",
        "",
        "Active",
        &[("employee_name", "No Device")],
    );
    site.site.lock().unwrap().system_time_zone = Some("Asia/Kolkata".into());
    let server = Server::start();
    let url = site.url();
    let added = cli(
        &server.db,
        &[
            "sinks",
            "add",
            "frappe",
            "--url",
            &url,
            "--api-key",
            "K",
            "--api-secret",
            "S",
        ],
    );
    assert!(added.ok, "{}", added.stderr);
    // No --time-zone: the site's own zone is read from System Settings.
    assert!(
        added.stdout.contains("sent in Asia/Kolkata"),
        "{}",
        added.stdout
    );
    // 102 exists in punchd already, edited locally (still active).
    let local = cli(
        &server.db,
        &["employees", "add", "102", "--name", "Bo Local"],
    );
    assert!(local.ok, "{}", local.stderr);

    let dry = cli_json(
        &server.db,
        &["sinks", "employees-sync", "frappe", "--dry-run"],
    );
    assert_eq!(dry["created"], serde_json::json!(["101"]));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        cli_json(&server.db, &["employees", "--format", "json"])
            .as_array()
            .unwrap()
            .len(),
        1,
        "dry run wrote nothing"
    );
    let report = cli_json(&server.db, &["sinks", "employees-sync", "frappe"]);
    assert_eq!(
        report["read"], 2,
        "only employees with attendance_device_id set: {report}"
    );
    assert_eq!(report["created"], serde_json::json!(["101"]));
    let conflicts: Vec<String> = report["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {} {} {}",
                c["code"], c["field"], c["local"], c["frappe"]
            )
        })
        .collect();
    assert_eq!(
        conflicts,
        [
            "\"102\" \"name\" \"Bo Local\" \"Bo Left\"",
            "\"102\" \"status\" \"active\" \"left\"",
            "\"102\" \"left_on\" \"\" \"2025-05-31\"",
        ]
    );
    let employees = cli_json(&server.db, &["employees", "--format", "json"]);
    let ann = employees
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["code"] == "101")
        .unwrap();
    assert_eq!(
        (
            ann["name"].as_str(),
            ann["status"].as_str(),
            ann["department"].as_str(),
            ann["joined_on"].as_str()
        ),
        (
            Some("Ann Example"),
            Some("active"),
            Some("Sales - AC"),
            Some("2024-01-15")
        )
    );
    // The list was asked for with paging (Frappe's default page is 20 rows).
    assert!(site
        .site
        .lock()
        .unwrap()
        .employee_pages
        .iter()
        .all(|p| p.1 == 500));

    let report = cli_json(
        &server.db,
        &["sinks", "employees-sync", "frappe", "--overwrite"],
    );
    assert_eq!(report["updated"], serde_json::json!(["102"]));
    assert_eq!(report["unchanged"], 1);
    let employees = cli_json(&server.db, &["employees", "--format", "json"]);
    let bo = employees
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["code"] == "102")
        .unwrap();
    assert_eq!(
        (
            bo["name"].as_str(),
            bo["status"].as_str(),
            bo["left_on"].as_str()
        ),
        (Some("Bo Left"), Some("left"), Some("2025-05-31"))
    );
    let audit = cli_json(&server.db, &["attendance", "audit"]);
    assert!(
        audit.to_string().contains("employee.sync-frappe"),
        "{audit}"
    );
}

/// A voided punch's check-in is deleted from Frappe (frappe-hr.md §4 DELETE), unless auto attendance already linked
/// it (§1 `attendance`): then HR must act in Frappe. A check-in not delivered yet waits, and is withdrawn once
/// delivered.
#[test]
fn frappe_voided_punches_are_withdrawn_unless_attendance_links_them() {
    let site = FrappeContract::start(Version::Hrms, "K", "S");
    site.employee("HR-EMP-00001", "101", "Active");
    let server = Server::start();
    let url = site.url();
    let added = cli(
        &server.db,
        &[
            "sinks",
            "add",
            "frappe",
            "--url",
            &url,
            "--api-key",
            "K",
            "--api-secret",
            "S",
            "--backoff-ms",
            "50",
        ],
    );
    assert!(added.ok, "{}", added.stderr);
    assert!(cli(&server.db, &["employees", "add", "101", "--name", "Ann"]).ok);
    let body = [
        attlog("101", "2024-05-01 08:00:00", 0),
        attlog("101", "2024-05-01 12:00:00", 1),
        attlog("101", "2024-05-01 17:00:00", 1),
    ]
    .concat();
    assert_eq!(server.attlog("WDRAW00001", &body).text(), "OK:3");
    drained(&server);
    // Auto attendance linked the 12:00 check-in.
    let name_at = |time: &str| {
        site.checkins()
            .into_iter()
            .find(|c| c.time == time)
            .map(|c| c.name)
            .unwrap()
    };
    let noon = name_at("2024-05-01 12:00:00");
    let evening = name_at("2024-05-01 17:00:00");
    site.site
        .lock()
        .unwrap()
        .attendance_links
        .insert(noon.clone(), "HR-ATT-2024-00001".into());
    // One more punch while the sink is paused: not delivered yet.
    assert!(cli(&server.db, &["sinks", "pause", "frappe"]).ok);
    assert_eq!(
        server
            .attlog("WDRAW00001", &attlog("101", "2024-05-01 18:00:00", 1))
            .text(),
        "OK:1"
    );
    let ids: Vec<(String, i64)> = server
        .punches("WDRAW00001")
        .iter()
        .map(|p| {
            (
                p["punched_at"].as_str().unwrap().to_owned(),
                p["id"].as_i64().unwrap(),
            )
        })
        .collect();
    let id_at = |t: &str| {
        ids.iter()
            .find(|(at, _)| at.contains(t))
            .map(|(_, id)| id.to_string())
            .unwrap()
    };
    for t in ["12:00:00", "17:00:00", "18:00:00"] {
        let void = cli(
            &server.db,
            &[
                "attendance",
                "correct",
                "void-punch",
                "--employee",
                "101",
                "--date",
                "2024-05-01",
                "--punch",
                &id_at(t),
                "--reason",
                "wrong terminal",
            ],
        );
        assert!(void.ok, "{}", void.stderr);
    }
    let report = cli_json(&server.db, &["sinks", "withdraw-voids", "frappe"]);
    let outcomes: Vec<(String, String)> = report["recorded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["status"].as_str().unwrap().to_owned(),
                w["remote_ref"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("needs-hr".to_owned(), noon.clone()),
            ("withdrawn".to_owned(), evening.clone())
        ],
        "{report}"
    );
    assert_eq!(report["waiting"], 1, "{report}");
    assert_eq!(
        site.site.lock().unwrap().deleted,
        std::slice::from_ref(&evening)
    );
    assert!(
        site.checkins().iter().any(|c| c.name == noon),
        "the linked check-in stays"
    );

    // Delivered after the resume, then withdrawn.
    assert!(cli(&server.db, &["sinks", "resume", "frappe"]).ok);
    drained(&server);
    let late = name_at("2024-05-01 18:00:00");
    // (By this call, or by serve's own minute round now that the sink runs again.)
    cli_json(&server.db, &["sinks", "withdraw-voids", "frappe"]);
    assert_eq!(site.site.lock().unwrap().deleted, [evening, late]);
    // Nothing is done twice; the outcomes are listed with the sink.
    let again = cli_json(&server.db, &["sinks", "withdraw-voids", "frappe"]);
    assert_eq!(again["recorded"], serde_json::json!([]));
    let shown = cli_json(&server.db, &["sinks", "show", "frappe"]);
    assert_eq!(shown["withdrawals"].as_array().unwrap().len(), 3, "{shown}");
    assert!(
        shown["withdrawals"][0]["note"]
            .as_str()
            .unwrap()
            .contains("HR-ATT-2024-00001"),
        "{shown}"
    );
}

/// An API call with a token of a given scope (`Server::api` uses an admin token).
fn api_as(server: &Server, token: &str, method: &str, path: &str) -> crate::harness::Response {
    server.raw(
        format!(
            "{method} /api/v1{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

/// The sink actions that were CLI-only, over the API (issue 8): `sync-shifts` (scope operate),
/// `employees-sync` and `withdraw-voids` (scope hr), in the OpenAPI document, answering what the CLI prints.
#[test]
fn frappe_sink_actions_over_the_api_with_scopes() {
    let site = FrappeContract::start(Version::Hrms, "K", "S");
    site.employee("HR-EMP-00001", "101", "Active");
    site.employee("HR-EMP-00002", "102", "Active");
    site.shift_type("Day Shift", None);
    let server = Server::start();
    let added = cli(
        &server.db,
        &[
            "sinks",
            "add",
            "frappe",
            "--url",
            &site.url(),
            "--api-key",
            "K",
            "--api-secret",
            "S",
            "--time-zone",
            "UTC",
            "--shift-type",
            "Day Shift",
        ],
    );
    assert!(added.ok, "{}", added.stderr);
    let hr = {
        let out = cli(&server.db, &["token", "create", "payroll", "--scope", "hr"]);
        assert!(out.ok, "{}", out.stderr);
        out.stdout.trim().to_owned()
    };

    // Employees from Frappe: a dry run writes nothing, then they are created; the author is the token.
    let dry = api_as(
        &server,
        &hr,
        "POST",
        "/sinks/frappe/employees-sync?dry_run=true",
    );
    assert_eq!(dry.status, 200, "{}", dry.text());
    assert_eq!(
        (dry.json()["created"].clone(), dry.json()["dry_run"].clone()),
        (serde_json::json!(["101", "102"]), serde_json::json!(true))
    );
    assert!(server
        .get_json("/attendance/employees")
        .as_array()
        .unwrap()
        .is_empty());
    let synced = api_as(&server, &hr, "POST", "/sinks/frappe/employees-sync");
    assert_eq!(synced.status, 200, "{}", synced.text());
    assert_eq!(synced.json()["created"], serde_json::json!(["101", "102"]));
    let codes: Vec<String> = server
        .get_json("/attendance/employees")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, ["101", "102"]);

    // Shift Types: operate, not hr.
    assert_eq!(
        api_as(&server, &hr, "POST", "/sinks/frappe/sync-shifts").status,
        403
    );
    assert_eq!(
        server
            .attlog("APISHIFT01", &attlog("101", "2024-05-01 08:00:00", 0))
            .text(),
        "OK:1"
    );
    drained(&server);
    let shifts = server.api("POST", "/sinks/frappe/sync-shifts", None);
    assert_eq!(shifts.status, 200, "{}", shifts.text());
    let shifts = shifts.json();
    assert_eq!(shifts[0]["shift_type"], "Day Shift", "{shifts}");
    assert_eq!(
        shifts[0]["devices"],
        serde_json::json!(["APISHIFT01"]),
        "{shifts}"
    );
    // Written by this call (or by serve's own minute round just before it).
    assert!(site.last_sync("Day Shift").is_some(), "{shifts}");
    assert!(shifts[0]["target"].is_string(), "{shifts}");

    // Voided punches: hr may run the round; nothing voided yet.
    let voids = api_as(&server, &hr, "POST", "/sinks/frappe/withdraw-voids");
    assert_eq!(voids.status, 200, "{}", voids.text());
    assert_eq!(
        voids.json(),
        serde_json::json!({"recorded": [], "waiting": 0, "failed": []})
    );

    // A read token may do none of it; unknown sinks are 404; Frappe-only actions on another kind are 400.
    let read = {
        let out = cli(&server.db, &["token", "create", "viewer"]);
        out.stdout.trim().to_owned()
    };
    for action in ["withdraw-voids", "employees-sync", "sync-shifts"] {
        assert_eq!(
            api_as(&server, &read, "POST", &format!("/sinks/frappe/{action}")).status,
            403,
            "{action}"
        );
        assert_eq!(
            server
                .api("POST", &format!("/sinks/nope/{action}"), None)
                .status,
            404,
            "{action}"
        );
    }
    let hook = serde_json::json!({"name": "hook", "kind": "webhook",
        "config": {"url": "http://127.0.0.1:9/x", "secret": "s"}});
    assert_eq!(server.api("POST", "/sinks", Some(&hook)).status, 201);
    for action in ["employees-sync", "sync-shifts"] {
        let r = server.api("POST", &format!("/sinks/hook/{action}"), None);
        assert_eq!(r.status, 400, "{action}: {}", r.text());
        assert!(r.text().contains("Frappe sinks only"), "{}", r.text());
    }

    // Documented.
    let doc = server.get_json("/openapi.json");
    for path in [
        "/api/v1/sinks/{name}/sync-shifts",
        "/api/v1/sinks/{name}/withdraw-voids",
        "/api/v1/sinks/{name}/employees-sync",
    ] {
        assert!(
            doc["paths"][path]["post"].is_object(),
            "{path} not documented"
        );
    }
    for schema in [
        "VoidedCheckInBatch",
        "VoidedCheckIn",
        "WithdrawReport",
        "SyncReport",
        "SyncResult",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} not documented"
        );
    }
}
