//! Attendance end to end (issue 7): a real server and SQLite file, punches pushed as terminals send them (ATTLOG),
//! employees, mappings, shifts, the month, corrections, sign-off and the XLSX read back with calamine. Every
//! expected number is computed by hand in the comments.
//!
//! The months used are in the past (October 2026), so every device's watermark (its last contact, now) is past
//! every day: the days are complete unless a test says otherwise.

use calamine::{Data, Reader};
use serde_json::{json, Value};

use crate::harness::{cli, cli_json, sqlite, Server};

/// A site, a 09:00–18:00 shift with 10 min grace in, 5 min grace out and a 60 min break, weekly offs Sat/Sun.
fn setup_site(server: &Server, site: &str) {
    let db = &server.db;
    let out = cli(
        db,
        &[
            "sites",
            "add",
            site,
            "--zone",
            "Asia/Shanghai",
            "--weekly-off",
            "sat,sun",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    let shifts = cli(db, &["shifts", "--format", "json"]);
    if !shifts.stdout.contains("\"Day\"") {
        let out = cli(
            db,
            &[
                "shifts",
                "add",
                "Day",
                "--start",
                "09:00",
                "--end",
                "18:00",
                "--grace-in",
                "10m",
                "--grace-out",
                "5m",
                "--break",
                "60m",
            ],
        );
        assert!(out.ok, "{}", out.stderr);
    }
}

/// A push terminal on a site: it uploads once (registering itself), then gets its site.
fn device(server: &Server, sn: &str, site: &str, attlog: &str) {
    let r = server.attlog(sn, attlog);
    assert_eq!(r.status, 200, "{}", r.text());
    let out = cli(&server.db, &["devices", "set", sn, "--site", site]);
    assert!(out.ok, "{}", out.stderr);
}

fn month(server: &Server, site: &str, month: &str) -> Value {
    server.get_json(&format!("/attendance/month?site={site}&month={month}"))
}

fn row<'a>(m: &'a Value, code: &str) -> &'a Value {
    m["employees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["code"] == code)
        .unwrap_or_else(|| panic!("employee {code} not in the month: {m}"))
}

fn day<'a>(m: &'a Value, code: &str, d: usize) -> &'a Value {
    &row(m, code)["days"][d - 1]
}

fn exception_kinds(m: &Value, code: &str, date: &str) -> Vec<String> {
    m["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["employee_code"] == code && x["date"] == date)
        .map(|x| x["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn employee_import_reports_a_bad_row_and_imports_the_rest_or_nothing() {
    let server = Server::start();
    setup_site(&server, "HQ");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("staff.csv");
    // Row 1 is a title, row 2 the header; row 4 names an unknown shift, row 5 has no name, row 6 left without date.
    std::fs::write(
        &csv,
        "Staff list October,,,,,\n\
         Employee Code,Name,Status,Site,Default Shift,Left On\n\
         1,Ana,active,HQ,Day,\n\
         2,Bo,active,HQ,Night,\n\
         3,,active,HQ,Day,\n\
         4,Cy,left,HQ,Day,\n\
         5,Di,left,HQ,Day,2026-10-15\n",
    )
    .unwrap();
    let path = csv.to_str().unwrap();
    let out = cli(
        &server.db,
        &["employees", "import", path, "--all-or-nothing"],
    );
    assert!(!out.ok);
    assert!(out.stdout.contains("nothing imported"), "{}", out.stdout);
    assert_eq!(
        cli_json(&server.db, &["employees", "--format", "json"]),
        json!([])
    );

    let out = cli(&server.db, &["employees", "import", path]);
    assert!(!out.ok, "bad rows make the exit status 2");
    assert!(
        out.stderr.contains("row 4: shift \"Night\" is unknown"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("row 5: the name is empty"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("row 6: status is left but the left-on date is empty"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("2 employees imported; 2 good rows, 3 bad rows"),
        "{}",
        out.stdout
    );
    let list = cli_json(&server.db, &["employees", "--format", "json"]);
    let codes: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["1", "5"]);
    assert_eq!(list[1]["status"], "left");
    assert_eq!(list[1]["left_on"], "2026-10-15");

    // The same through the API, as an XLSX file: a dry run writes nothing, then the import writes the good row.
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["Employee Code", "Name", "Site", "Department"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_number(1, 0, 7.0).unwrap();
    sheet.write_string(1, 1, "Eve").unwrap();
    sheet.write_string(1, 2, "HQ").unwrap();
    sheet.write_string(1, 3, "Ops").unwrap();
    sheet.write_number(2, 0, 8.0).unwrap();
    sheet.write_string(2, 1, "Fay").unwrap();
    sheet.write_string(2, 2, "Nowhere").unwrap();
    let bytes = book.save_to_buffer().unwrap();
    let post = |query: &str| {
        let token = server.token();
        let mut req = format!(
            "POST /api/v1/attendance/employees/import{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            bytes.len()
        )
        .into_bytes();
        req.extend_from_slice(&bytes);
        server.raw(&req)
    };
    let r = post("?dry_run=true");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["imported"], 0);
    assert_eq!(r.json()["valid"], 1);
    assert_eq!(
        r.json()["errors"],
        json!([{"row": 3, "reason": "site \"Nowhere\" is unknown (add it with `punchd sites add`)"}])
    );
    let r = post("");
    assert_eq!(r.json()["imported"], 1);
    let eve = server.get_json("/attendance/employees");
    let eve = eve
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["code"] == "7")
        .unwrap()
        .clone();
    assert_eq!(eve["name"], "Eve");
    assert_eq!(eve["department"], "Ops");
    // The routes are in the OpenAPI document.
    let doc = server.get_json("/openapi.json");
    for path in [
        "/api/v1/attendance/month",
        "/api/v1/attendance/employees/import",
        "/api/v1/attendance/watermarks",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    // Every import is in the audit log with its author.
    let audit = server.get_json("/attendance/audit");
    assert_eq!(audit[0]["action"], "employee.import");
    assert_eq!(audit[0]["author"], "token:hubtest");
}

#[test]
fn a_pin_means_two_people_on_two_sites_and_a_new_mapping_counts_at_once() {
    let server = Server::start();
    setup_site(&server, "HQ");
    setup_site(&server, "BR");
    // PIN 7 on HQ is employee 7 (PIN = code); PIN 7 on BR is employee B7 (mapped on the site).
    for (code, name, site) in [("7", "Ana", "HQ"), ("B7", "Bea", "BR"), ("C9", "Cid", "BR")] {
        let out = cli(
            &server.db,
            &[
                "employees",
                "add",
                code,
                "--name",
                name,
                "--site",
                site,
                "--shift",
                "Day",
            ],
        );
        assert!(out.ok, "{}", out.stderr);
    }
    // Tuesday 2026-10-06 on both sites; PIN 7 on BR comes late (09:30 = 30 min after the start).
    device(
        &server,
        "HQDEV00001",
        "HQ",
        "7\t2026-10-06 09:00:00\t0\t1\n7\t2026-10-06 18:00:00\t1\t1\n",
    );
    device(
        &server,
        "BRDEV00001",
        "BR",
        "7\t2026-10-06 09:30:00\t0\t1\n7\t2026-10-06 18:00:00\t1\t1\n99\t2026-10-06 09:01:00\t0\t1\n99\t2026-10-06 18:02:00\t1\t1\n",
    );
    let r = server.api(
        "POST",
        "/attendance/mappings",
        Some(&json!({"scope": "site", "scope_key": "BR", "pin": "7", "employee_code": "B7"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // A device mapping that would make PIN 7 on BRDEV00001 someone else is refused: one PIN, two employees.
    let r = server.api(
        "POST",
        "/attendance/mappings",
        Some(&json!({"scope": "device", "scope_key": "BRDEV00001", "pin": "7", "employee_code": "7"})),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("two employees"), "{}", r.text());
    let out = cli(
        &server.db,
        &["pins", "map", "7", "--employee", "C9", "--site", "BR"],
    );
    assert!(
        !out.ok && out.stderr.contains("mapped to employee B7 already"),
        "{}",
        out.stderr
    );

    let hq = month(&server, "HQ", "2026-10");
    assert_eq!(day(&hq, "7", 6)["status"], "present");
    // 09:00–18:00 minus the 60 min break: 8 h.
    assert_eq!(day(&hq, "7", 6)["result"]["worked_secs"], 8 * 3600);
    assert!(hq["employees"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["code"] != "B7"));
    let br = month(&server, "BR", "2026-10");
    assert_eq!(day(&br, "B7", 6)["status"], "present");
    assert_eq!(day(&br, "B7", 6)["result"]["late_secs"], 30 * 60);
    assert_eq!(exception_kinds(&br, "B7", "2026-10-06"), ["late"]);
    assert_eq!(
        day(&br, "B7", 6)["result"]["worked_secs"],
        8 * 3600 + 30 * 60 - 3600
    );

    // PIN 99 is nobody yet: it waits in the unmapped queue, and the BR month lists it.
    let queue = server.get_json("/attendance/unmapped");
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
    assert_eq!(queue[0]["pin"], "99");
    assert_eq!(queue[0]["device_sn"], "BRDEV00001");
    assert_eq!(queue[0]["count"], 2);
    assert_eq!(queue[0]["first_seen"], "2026-10-06T01:01:00Z");
    assert_eq!(queue[0]["last_seen"], "2026-10-06T10:02:00Z");
    assert_eq!(br["unmapped"][0]["pin"], "99");
    assert_eq!(day(&br, "C9", 6)["status"], "absent");
    // Mapping it makes its punches count at once.
    let out = cli(
        &server.db,
        &[
            "pins",
            "map",
            "99",
            "--employee",
            "C9",
            "--device",
            "BRDEV00001",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(server.get_json("/attendance/unmapped"), json!([]));
    let br = month(&server, "BR", "2026-10");
    assert_eq!(day(&br, "C9", 6)["status"], "present");
    assert_eq!(br["unmapped"], json!([]));
}

#[test]
fn corrections_sign_off_a_late_upload_and_the_xlsx() {
    let server = Server::start();
    setup_site(&server, "HQ");
    let out = cli(
        &server.db,
        &[
            "employees",
            "add",
            "1",
            "--name",
            "Ana",
            "--site",
            "HQ",
            "--shift",
            "Day",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    // Mon 5th: in at 09:12 (12 min late), forgot to punch out.
    // Tue 6th: 08:55 in, a double tap at 08:55:30, 18:30 out.
    // Wed 7th: 09:10:00 in (exactly at the grace: on time), 17:55:00 out (exactly at the grace: no early exit).
    device(
        &server,
        "HQDEV00001",
        "HQ",
        "1\t2026-10-05 09:12:00\t0\t1\n\
         1\t2026-10-06 08:55:00\t0\t1\n1\t2026-10-06 08:55:30\t0\t1\n1\t2026-10-06 18:30:00\t1\t1\n\
         1\t2026-10-07 09:10:00\t0\t1\n1\t2026-10-07 17:55:00\t1\t1\n",
    );
    let m = month(&server, "HQ", "2026-10");
    assert_eq!(m["incomplete_days"], 0);
    assert_eq!(day(&m, "1", 3)["status"], "weekly-off");
    assert_eq!(day(&m, "1", 1)["status"], "absent");
    assert_eq!(day(&m, "1", 5)["result"]["late_secs"], 12 * 60);
    let kinds5 = exception_kinds(&m, "1", "2026-10-05");
    assert!(
        kinds5.contains(&"late".to_owned()) && kinds5.contains(&"missing-out".to_owned()),
        "{kinds5:?}"
    );
    // 08:55–18:30 = 9 h 35 min, minus 60 min break = 8 h 35 min; overtime 18:00–18:30.
    assert_eq!(day(&m, "1", 6)["result"]["worked_secs"], 8 * 3600 + 35 * 60);
    assert_eq!(day(&m, "1", 6)["result"]["overtime_secs"], 30 * 60);
    assert_eq!(exception_kinds(&m, "1", "2026-10-06"), ["double-tap"]);
    assert_eq!(exception_kinds(&m, "1", "2026-10-07"), Vec::<String>::new());
    assert_eq!(day(&m, "1", 7)["result"]["worked_secs"], 7 * 3600 + 45 * 60);

    let raw_before: Vec<(i64, String, String, i64)> = {
        let conn = sqlite(&server.db);
        let mut st = conn
            .prepare("SELECT id, pin, punched_at, punch_state FROM punches ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(raw_before.len(), 6);
    // HR adds the forgotten check-out (API) and the exception is explained.
    let r = server.api(
        "POST",
        "/attendance/corrections",
        Some(&json!({"employee_code": "1", "day": "2026-10-05", "kind": "add-punch",
                     "punched_at": "2026-10-05T18:00:00", "punch_state": 1, "reason": "forgot to punch out"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["author"], "token:hubtest");
    let r = server.api(
        "POST",
        "/attendance/corrections",
        Some(
            &json!({"employee_code": "1", "day": "2026-10-05", "kind": "add-punch", "reason": ""}),
        ),
    );
    assert_eq!(
        r.status,
        400,
        "a correction without a reason is refused: {}",
        r.text()
    );
    let out = cli(
        &server.db,
        &[
            "attendance",
            "review",
            "--employee",
            "1",
            "--date",
            "2026-10-05",
            "--kind",
            "late",
            "--state",
            "approved",
            "--note",
            "bus strike",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    let m = month(&server, "HQ", "2026-10");
    let d5 = day(&m, "1", 5);
    // 09:12–18:00 = 8 h 48 min, minus the break: 7 h 48 min.
    assert_eq!(d5["result"]["worked_secs"], 7 * 3600 + 48 * 60);
    assert_eq!(d5["status"], "present");
    assert_eq!(d5["corrections"].as_array().unwrap().len(), 1);
    let added = d5["result"]["punches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["added_by_correction"] == true)
        .unwrap();
    assert_eq!(added["at"], "2026-10-05T10:00:00Z");
    // The raw punches did not change.
    let raw_after: Vec<(i64, String, String, i64)> = {
        let conn = sqlite(&server.db);
        let mut st = conn
            .prepare("SELECT id, pin, punched_at, punch_state FROM punches ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(raw_after, raw_before);
    // Totals: Oct 2026 has 9 weekend days and 22 working days; present 5, 6, 7; absent 19.
    // Worked 7:48 + 8:35 + 7:45 = 24 h 08 min = 24.13 h; overtime 0.5 h; late once, 12 min.
    let t = &row(&m, "1")["totals"];
    assert_eq!(
        (
            t["days_present"].as_i64(),
            t["days_absent"].as_i64(),
            t["weekly_offs"].as_i64()
        ),
        (Some(3), Some(19), Some(9))
    );
    assert_eq!(t["worked_secs"], 24 * 3600 + 8 * 60);
    assert_eq!(
        (t["late_count"].as_i64(), t["late_secs"].as_i64()),
        (Some(1), Some(720))
    );

    // The XLSX through the API, read back with calamine.
    let r = server.api(
        "GET",
        "/attendance/month?site=HQ&month=2026-10&format=xlsx",
        None,
    );
    assert_eq!(r.status, 200);
    let mut book =
        calamine::open_workbook_auto_from_rs(std::io::Cursor::new(r.body.clone())).unwrap();
    assert_eq!(book.sheet_names(), ["Grid", "Exceptions"]);
    let grid = book.worksheet_range("Grid").unwrap();
    let cell = |r: u32, c: u32| grid.get_value((r, c)).cloned().unwrap_or(Data::Empty);
    assert_eq!(cell(0, 0), Data::String("code".into()));
    assert_eq!(cell(0, 2), Data::String("01".into()));
    assert_eq!(cell(1, 0), Data::String("1".into()));
    assert_eq!(cell(1, 1), Data::String("Ana".into()));
    // Day 5: present, corrected, its late exception approved (the missing OUT is gone with the added punch).
    // Day 6: the double tap is open. Day 3: weekly off.
    assert_eq!(cell(1, 2 + 4), Data::String("Pc".into()));
    assert_eq!(cell(1, 2 + 5), Data::String("P!".into()));
    assert_eq!(cell(1, 2 + 6), Data::String("P".into()));
    assert_eq!(cell(1, 2 + 2), Data::String("WO".into()));
    assert_eq!(cell(1, 2), Data::String("A".into()));
    // Totals start after the 31 day columns: present, absent, …, worked h (index 10), overtime h (11).
    let totals = 2 + 31;
    assert_eq!(cell(0, totals), Data::String("present".into()));
    assert_eq!(cell(1, totals), Data::Float(3.0));
    assert_eq!(cell(1, totals + 1), Data::Float(19.0));
    assert_eq!(cell(1, totals + 8), Data::Float(12.0));
    assert_eq!(cell(1, totals + 10), Data::Float(24.13));
    assert_eq!(cell(1, totals + 11), Data::Float(0.5));
    let exceptions = book.worksheet_range("Exceptions").unwrap();
    let rows: Vec<Vec<String>> = exceptions
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    let first_id = raw_before[0].0.to_string();
    let double_tap_id = raw_before[2].0.to_string();
    assert_eq!(
        rows,
        [
            ["employee", "date", "kind", "state", "minutes", "punches", "note"],
            [
                "1",
                "2026-10-05",
                "late",
                "approved",
                "12",
                first_id.as_str(),
                "bus strike"
            ],
            [
                "1",
                "2026-10-06",
                "double-tap",
                "open",
                "0",
                double_tap_id.as_str(),
                ""
            ],
        ]
    );

    // Sign-off (CLI). A month that is not over (its last days are past every watermark): refused without --force.
    // (A month after today's: "2026-11" stopped being unfinished on its last evening.)
    let unfinished = (chrono::Utc::now() + chrono::Duration::days(40))
        .format("%Y-%m")
        .to_string();
    let out = cli(
        &server.db,
        &["attendance", "signoff", &unfinished, "--site", "HQ"],
    );
    assert!(
        !out.ok && out.stderr.contains("incomplete") && out.stderr.contains("HQDEV00001"),
        "{}",
        out.stderr
    );
    let out = cli(
        &server.db,
        &[
            "attendance",
            "signoff",
            "2026-10",
            "--site",
            "HQ",
            "--author",
            "hr.lead",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    // A late upload for the signed-off month: stored, shown as arrived after sign-off, the grid stays frozen.
    let r = server.attlog("HQDEV00001", "1\t2026-10-08 09:00:00\t0\t1\n");
    assert_eq!(r.status, 200);
    assert_eq!(server.punches("HQDEV00001").len(), 7);
    let m = month(&server, "HQ", "2026-10");
    assert_eq!(m["signed_off"]["author"], "hr.lead");
    assert_eq!(day(&m, "1", 8)["status"], "absent");
    let late = m["arrived_after_signoff"].as_array().unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["punched_at_utc"], "2026-10-08T01:00:00Z");
    assert_eq!(late[0]["employee_code"], "1");
    let table = cli(
        &server.db,
        &["attendance", "month", "2026-10", "--site", "HQ"],
    );
    assert!(
        table.stdout.contains("arrived after sign-off: punch"),
        "{}",
        table.stdout
    );
    // Changes wait for a reopen, which needs a reason and is audited.
    let r = server.api("POST", "/attendance/corrections", Some(&json!({"employee_code": "1", "day": "2026-10-08", "kind": "set-status", "status": "leave", "reason": "sick"})));
    assert_eq!(r.status, 409, "{}", r.text());
    let r = server.api(
        "POST",
        "/attendance/reopen",
        Some(&json!({"site": "HQ", "month": "2026-10", "reason": ""})),
    );
    assert_eq!(r.status, 400);
    let r = server.api(
        "POST",
        "/attendance/reopen",
        Some(&json!({"site": "HQ", "month": "2026-10", "reason": "late upload from HQDEV00001"})),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let audit = server.get_json("/attendance/audit?limit=2");
    assert_eq!(audit[0]["action"], "reopen");
    assert_eq!(audit[0]["detail"]["reason"], "late upload from HQDEV00001");
    assert_eq!(audit[1]["action"], "signoff");
    let m = month(&server, "HQ", "2026-10");
    assert_eq!(m["signed_off"], Value::Null);
    assert_eq!(
        day(&m, "1", 8)["result"]["punches"][0]["at"],
        "2026-10-08T01:00:00Z"
    );
}

#[test]
fn a_policy_is_previewed_on_stored_punches_before_it_is_applied() {
    let server = Server::start();
    setup_site(&server, "PV");
    let out = cli(
        &server.db,
        &[
            "employees",
            "add",
            "2",
            "--name",
            "Bo",
            "--site",
            "PV",
            "--shift",
            "Day",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    // The terminal's state key was left on check-in all day: two INs at 09:00 and 18:00 on Tue 6th.
    device(
        &server,
        "PVDEV00001",
        "PV",
        "2\t2026-10-06 09:00:00\t0\t1\n2\t2026-10-06 18:00:00\t0\t1\n",
    );
    // A roster line pointing at a missing employee is refused as a whole.
    let r = server.api(
        "POST",
        "/attendance/roster",
        Some(
            &json!([{"employee_code": "2", "day": "2026-10-07", "shift": null},
                     {"employee_code": "404", "day": "2026-10-07", "shift": "Day"}]),
        ),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        server.get_json("/attendance/roster?month=2026-10"),
        json!([])
    );

    // Under `device` the two INs make no pair: nothing worked. Under `first-last` 09:00–18:00 minus the break: 8 h.
    let before = month(&server, "PV", "2026-10");
    assert_eq!(day(&before, "2", 6)["result"]["worked_secs"], 0);
    let preview =
        server.get_json("/attendance/policies/preview?site=PV&month=2026-10&policy=first-last");
    assert_eq!(preview["current"], "device");
    assert_eq!(preview["changed_days"], 1);
    assert_eq!(preview["employees"][0]["code"], "2");
    assert_eq!(
        preview["employees"][0]["changed_dates"],
        json!(["2026-10-06"])
    );
    assert_eq!(preview["employees"][0]["before"]["worked_secs"], 0);
    assert_eq!(preview["employees"][0]["after"]["worked_secs"], 8 * 3600);
    // The preview wrote nothing; the CLI gives the same answer.
    let mut again = month(&server, "PV", "2026-10");
    again["computed_at"] = before["computed_at"].clone();
    again["watermarks"] = before["watermarks"].clone();
    assert!(again == before, "the preview changed the month");
    assert_eq!(server.get_json("/attendance/policies"), json!([]));
    let cli_preview = cli_json(
        &server.db,
        &[
            "attendance",
            "policy",
            "preview",
            "first-last",
            "--site",
            "PV",
            "--month",
            "2026-10",
        ],
    );
    assert_eq!(cli_preview, preview);
    let out = cli(
        &server.db,
        &["attendance", "policy", "set", "first-last", "--site", "PV"],
    );
    assert!(out.ok, "{}", out.stderr);
    let after = month(&server, "PV", "2026-10");
    assert_eq!(day(&after, "2", 6)["result"]["worked_secs"], 8 * 3600);
    assert_eq!(day(&after, "2", 6)["result"]["policy"], "first-last");
}
