//! The HR pages through the router (no socket, no browser), checked against what the store holds afterwards:
//! mapping an unmapped PIN, correcting a day, sign-off and reopen, the export, roles, the sink buttons. The
//! browser scenarios (`tests/browser/scenarios/{people,review,delivery}.mjs`) drive the same pages in Chromium.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{NaiveDate, TimeZone, Utc};
use tower::ServiceExt;

use crate::app::App;
use crate::attendance::monthly;
use crate::attendance::rules::DayStatus;
use crate::config::{Config, Overrides};
use crate::domain::{Approval, DeviceSn, NewPunch, Pin, PunchState, Role, Source, Transport};
use crate::store::attendance::{
    AuditRecord, Employee, EmployeeStatus, PinMapping, Scope as MapScope, Site,
};
use crate::store::outbox::{NewSink, SinkKind};
use crate::store::sqlite::{Durability, SqliteStore};
use crate::store::{Batch, DeviceContact, DevicePatch, RawEntry};

const SN: &str = "UIP0001";
const MONTH: &str = "2026-10";

struct Fixture {
    app: App,
    _dir: tempfile::TempDir,
}

fn audit() -> AuditRecord {
    AuditRecord {
        author: "test".into(),
        action: "setup".into(),
        subject: "fixture".into(),
        detail: serde_json::json!({}),
    }
}

fn employee(code: &str, name: &str) -> Employee {
    Employee {
        code: code.into(),
        name: name.into(),
        status: EmployeeStatus::Active,
        joined_on: None,
        left_on: None,
        site: Some("HQ".into()),
        department: None,
        default_shift: None,
    }
}

/// Accounts ana (admin), hilde (hr), vik (viewer); site HQ (UTC, no weekly offs); terminal UIP0001 on HQ, seen
/// now (so every day of October is complete); employee P100 on HQ; PIN 4711 punched IN 08:55 and OUT 17:05 on
/// 2026-10-05, mapped to nobody.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        SqliteStore::open(&dir.path().join("pages.db"), Durability::PowerSafe).expect("open");
    let config = Config::load(None, &Overrides::default()).expect("config");
    let app = App::with_store(config, std::sync::Arc::new(store))
        .await
        .expect("app");
    for (name, role) in [
        ("ana", Role::Admin),
        ("hilde", Role::Hr),
        ("vik", Role::Viewer),
    ] {
        let hash = super::session::hash_password(&format!("{name}-password")).expect("hash");
        app.store
            .create_ui_account(name, role, &hash, Utc::now())
            .await
            .expect("account");
    }
    let s = app.store.as_ref();
    s.put_site(
        Site {
            name: "HQ".into(),
            time_zone: "UTC".into(),
            day_change: "00:00".into(),
            weekly_offs: Vec::new(),
            holidays: Vec::new(),
        },
        audit(),
    )
    .await
    .expect("site");
    let sn = DeviceSn::parse(SN).expect("sn");
    s.upsert_device(DeviceContact {
        sn: sn.clone(),
        poll_delay_secs: 10,
        approval_if_new: Approval::Approved,
        transport: Transport::Push,
        seen_at: Utc::now(),
        ip: None,
        firmware: None,
        push_version: None,
        language: None,
        device_type: None,
    })
    .await
    .expect("device");
    s.update_device(
        &sn,
        DevicePatch {
            site: Some(Some("HQ".into())),
            ..DevicePatch::default()
        },
    )
    .await
    .expect("site of the device");
    s.record_seen(vec![crate::store::SeenUpdate {
        sn: sn.clone(),
        at: Utc::now(),
        ip: None,
    }])
    .await
    .expect("seen");
    s.put_employees(vec![employee("P100", "Paula")], audit())
        .await
        .expect("employee");
    let body =
        "4711\t2026-10-05 08:55:00\t0\t1\t0\t0\t0\n4711\t2026-10-05 17:05:00\t1\t1\t0\t0\t0\n";
    let mut batch = Batch::new(RawEntry {
        received_at: Utc::now(),
        device_sn: Some(sn.clone()),
        source: Source::Push,
        kind: "ATTLOG".into(),
        request: "POST /iclock/cdata?SN=UIP0001&table=ATTLOG".into(),
        remote_addr: None,
        body: body.as_bytes().to_vec(),
        errors: Vec::new(),
    });
    for (h, m, state) in [(8, 55, PunchState::CheckIn), (17, 5, PunchState::CheckOut)] {
        let local = NaiveDate::from_ymd_opt(2026, 10, 5)
            .and_then(|d| d.and_hms_opt(h, m, 0))
            .expect("time");
        batch.punches.push(NewPunch {
            device_sn: sn.clone(),
            pin: Pin("4711".into()),
            punched_at: local,
            time_zone: "UTC".into(),
            punched_at_utc: Utc.from_utc_datetime(&local),
            punch_state: Some(state),
            verify_mode: None,
            work_code: None,
            extra: Vec::new(),
            source: Source::Push,
        });
    }
    s.write_batch(batch).await.expect("punches");
    app.registry.refresh().await.expect("refresh");
    Fixture { app, _dir: dir }
}

async fn send(app: &App, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = crate::web::router(app.clone())
        .oneshot(request)
        .await
        .expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .expect("body");
    (status, headers, body.to_vec())
}

async fn send_text(
    app: &App,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let (status, headers, body) = send(app, request).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// The review grid at `path`, following the page that says its month is being computed (as the browser does,
/// by its `<meta>` refresh) until the grid is there.
async fn grid_page(app: &App, session: &Session, path: &str) -> (StatusCode, String) {
    for _ in 0..1_000 {
        let (status, _, body) = send_text(app, session.get(path)).await;
        if !body.contains("<meta http-equiv=\"refresh\"") {
            return (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{path}: the month was still being computed after 1,000 views");
}

/// A signed-in user: the session cookie and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Session {
    fn get(&self, path: &str) -> Request<Body> {
        Request::get(path)
            .header(header::HOST, "hub:8080")
            .header(header::COOKIE, &self.cookie)
            .body(Body::empty())
            .expect("request")
    }

    /// A form post; `fields` are already URL-encoded pairs, the CSRF token is added.
    fn post(&self, path: &str, fields: &str) -> Request<Body> {
        Request::post(path)
            .header(header::HOST, "hub:8080")
            .header(header::COOKIE, &self.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("_csrf={}&{fields}", self.csrf)))
            .expect("request")
    }
}

async fn sign_in(app: &App, name: &str) -> Session {
    let request = Request::post("/ui/login")
        .header(header::HOST, "hub:8080")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("name={name}&password={name}-password")))
        .expect("request");
    let (status, headers, _) = send(app, request).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "sign-in of {name}");
    let cookie = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("pd_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned();
    let session = app
        .store
        .find_ui_session(
            &crate::web::auth::hash_token(cookie.trim_start_matches("pd_session=")),
            Utc::now() - chrono::Duration::minutes(1),
        )
        .await
        .expect("find")
        .expect("session");
    Session {
        cookie,
        csrf: session.csrf_token,
    }
}

async fn status_on(app: &App, code: &str, day: u32) -> DayStatus {
    let m = monthly::month(app.store.as_ref(), "HQ", MONTH, Utc::now())
        .await
        .expect("month");
    let e = m
        .employees
        .iter()
        .find(|e| e.code == code)
        .unwrap_or_else(|| panic!("{code} is in the month"));
    e.days[day as usize - 1].status
}

#[tokio::test]
async fn an_unmapped_pin_is_mapped_in_one_click_and_its_day_counts() {
    let f = fixture().await;
    let app = &f.app;
    assert_eq!(status_on(app, "P100", 5).await, DayStatus::Absent);
    let hr = sign_in(app, "hilde").await;
    let viewer = sign_in(app, "vik").await;

    let (status, _, body) = send_text(app, hr.get("/ui/unmapped")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("<strong>4711</strong>") && body.contains("Map PIN 4711 on UIP0001"),
        "{body}"
    );

    let map = format!("device_sn={SN}&pin=4711&scope=site&employee_code=P100&new_name=");
    let (status, _, _) = send_text(app, viewer.post("/ui/unmapped/map", &map)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(app.store.list_mappings().await.expect("list").is_empty());

    // An unknown code without a name: refused beside the field, nothing stored.
    let (status, _, body) = send_text(
        app,
        hr.post(
            "/ui/unmapped/map",
            &format!("device_sn={SN}&pin=4711&scope=site&employee_code=NOPE&new_name="),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("no employee NOPE; give a name to create one, or an existing code")
            && body.contains("aria-invalid=\"true\""),
        "{body}"
    );
    assert!(app.store.list_mappings().await.expect("list").is_empty());

    let (status, headers, _) = send_text(app, hr.post("/ui/unmapped/map", &map)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/unmapped");
    let flash = headers[header::SET_COOKIE].to_str().expect("cookie");
    assert!(
        flash.contains("2%20stored%20punches%20now%20count"),
        "{flash}"
    );
    assert_eq!(
        app.store.list_mappings().await.expect("list"),
        [PinMapping {
            scope: MapScope::Site,
            scope_key: "HQ".into(),
            pin: "4711".into(),
            employee_code: "P100".into(),
        }]
    );
    assert_eq!(status_on(app, "P100", 5).await, DayStatus::Present);
    let audit = app.store.list_audit(1).await.expect("audit");
    assert_eq!(
        (
            audit[0].record.action.as_str(),
            audit[0].record.author.as_str()
        ),
        ("mapping.add", "ui:hilde")
    );
    // The review page, computed before the mapping, shows it at once (the audit changed the cache's key).
    let (_, body) = grid_page(app, &hr, "/ui/review?site=HQ&month=2026-10&q=P100").await;
    assert!(
        body.contains("aria-label=\"P100 2026-10-05: present\""),
        "{body}"
    );

    // One click also creates the employee when the code is new and a name is given.
    let (status, _, _) = send_text(
        app,
        hr.post(
            "/ui/unmapped/map",
            &format!("device_sn={SN}&pin=4712&scope=device&employee_code=P4712&new_name=Pia+New"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let created = app
        .store
        .list_employees()
        .await
        .expect("employees")
        .into_iter()
        .find(|e| e.code == "P4712")
        .expect("created");
    assert_eq!(
        (created.name.as_str(), created.site.as_deref()),
        ("Pia New", Some("HQ"))
    );
}

#[tokio::test]
async fn a_day_is_corrected_then_the_month_signed_off_downloaded_and_reopened() {
    let f = fixture().await;
    let app = &f.app;
    app.store
        .add_mapping(
            PinMapping {
                scope: MapScope::Device,
                scope_key: SN.into(),
                pin: "4711".into(),
                employee_code: "P100".into(),
            },
            audit(),
        )
        .await
        .expect("mapping");
    let hr = sign_in(app, "hilde").await;
    let day = "/ui/review/day?site=HQ&month=2026-10&employee=P100&date=2026-10-05";
    let (status, _, body) = send_text(app, hr.get(day)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("4711\t2026-10-05 08:55:00\t0\t1\t0\t0\t0"),
        "the raw line the terminal sent: {body}"
    );
    let base = "site=HQ&month=2026-10&employee=P100&date=2026-10-06&form=add&kind=add-punch&punched_at=2026-10-06T09%3A00&punch_state=0";
    let (status, _, body) = send_text(
        app,
        hr.post("/ui/review/correct", &format!("{base}&reason=")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("say why (kept in the audit log)"), "{body}");
    let first = NaiveDate::from_ymd_opt(2026, 10, 1).expect("date");
    let next = NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
    assert!(app
        .store
        .list_corrections(first, next)
        .await
        .expect("list")
        .is_empty());

    let (status, _, _) = send_text(
        app,
        hr.post(
            "/ui/review/correct",
            &format!("{base}&reason=badge+forgotten"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let corrections = app.store.list_corrections(first, next).await.expect("list");
    assert_eq!(corrections.len(), 1);
    assert_eq!(
        (
            corrections[0].author.as_str(),
            corrections[0].reason.as_str(),
            corrections[0].punch_state
        ),
        ("ui:hilde", "badge forgotten", Some(0))
    );

    let (status, _, _) =
        send_text(app, hr.post("/ui/review/signoff", "site=HQ&month=2026-10")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let signoff = app
        .store
        .get_signoff("HQ", MONTH)
        .await
        .expect("read")
        .expect("signed off");
    assert_eq!(
        (signoff.author.as_str(), signoff.forced),
        ("ui:hilde", false)
    );

    // A signed-off month refuses corrections; the refusal is shown on the day page.
    let (status, _, body) = send_text(
        app,
        hr.post("/ui/review/correct", &format!("{base}&reason=again")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("HQ 2026-10 is signed off"), "{body}");
    assert_eq!(
        app.store
            .list_corrections(first, next)
            .await
            .expect("list")
            .len(),
        1
    );

    let (status, headers, xlsx) = send(
        app,
        hr.get("/ui/review/export?site=HQ&month=2026-10&format=xlsx"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"attendance-HQ-2026-10.xlsx\""
    );
    assert!(xlsx.starts_with(b"PK\x03\x04"));
    let (_, _, csv) = send_text(
        app,
        hr.get("/ui/review/export?site=HQ&month=2026-10&format=csv"),
    )
    .await;
    let p100 = csv
        .lines()
        .find(|l| l.starts_with("P100,"))
        .expect("P100 row");
    assert!(p100.starts_with("P100,Paula,A,A,A,A,P,P"), "{p100}");

    let (status, _, body) = send_text(
        app,
        hr.post("/ui/review/reopen", "site=HQ&month=2026-10&reason="),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("say why the month is reopened"), "{body}");
    assert!(app
        .store
        .get_signoff("HQ", MONTH)
        .await
        .expect("read")
        .is_some());
    let (status, _, _) = send_text(
        app,
        hr.post(
            "/ui/review/reopen",
            "site=HQ&month=2026-10&reason=late+sick+note",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(app
        .store
        .get_signoff("HQ", MONTH)
        .await
        .expect("read")
        .is_none());
}

/// The grid cell's label of P100 on a day of October (the review page, through the month cache).
async fn grid_label(app: &App, session: &Session, day: u32) -> String {
    let (status, body) = grid_page(app, session, "/ui/review?site=HQ&month=2026-10&q=P100").await;
    assert_eq!(status, StatusCode::OK);
    let start = format!("aria-label=\"P100 2026-10-{day:02}: ");
    let at = body
        .find(&start)
        .unwrap_or_else(|| panic!("{start} in {body}"))
        + "aria-label=\"".len();
    body[at..].split('"').next().expect("label").to_owned()
}

#[tokio::test]
async fn a_correction_is_revoked_from_the_day_page_and_the_day_recomputed() {
    let f = fixture().await;
    let app = &f.app;
    let hr = sign_in(app, "hilde").await;
    let viewer = sign_in(app, "vik").await;
    let day = "/ui/review/day?site=HQ&month=2026-10&employee=P100&date=2026-10-06";
    // The grid is computed (and cached) before anything changes.
    assert_eq!(grid_label(app, &hr, 6).await, "P100 2026-10-06: absent");
    let add = "site=HQ&month=2026-10&employee=P100&date=2026-10-06&form=add&kind=add-punch&punched_at=2026-10-06T09%3A00&punch_state=0&reason=badge+forgotten";
    let (status, _, _) = send_text(app, hr.post("/ui/review/correct", add)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let first = NaiveDate::from_ymd_opt(2026, 10, 1).expect("date");
    let next = NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
    let added = app.store.list_corrections(first, next).await.expect("list");
    assert_eq!(added.len(), 1);
    let id = added[0].id;
    assert_ne!(grid_label(app, &hr, 6).await, "P100 2026-10-06: absent");

    // HR sees a Revoke form per live correction; a viewer neither sees one nor may post it.
    let (_, _, body) = send_text(app, hr.get(day)).await;
    assert!(
        body.contains("action=\"/ui/review/revoke\"")
            && body.contains(&format!("name=\"correction\" value=\"{id}\""))
            && body.contains(&format!(
                "aria-label=\"Revoke correction #{id} (added punch 09:00:00 state 0)\""
            )),
        "{body}"
    );
    let (status, _, body) = send_text(app, viewer.get(day)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("badge forgotten") && !body.contains("/ui/review/revoke"),
        "{body}"
    );
    let revoke = format!(
        "site=HQ&month=2026-10&employee=P100&date=2026-10-06&form=revoke-{id}&correction={id}"
    );
    let (status, _, _) = send_text(
        app,
        viewer.post("/ui/review/revoke", &format!("{revoke}&reason=nope")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // No reason: refused beside the field, nothing changed.
    let (status, _, body) = send_text(
        app,
        hr.post("/ui/review/revoke", &format!("{revoke}&reason=+")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains(&format!(
            "id=\"f-revoke-{id}-reason-error\">say why it is revoked (kept in the audit log)"
        )),
        "{body}"
    );
    // A correction of another day is not revoked from this one.
    let (status, _, _) = send_text(
        app,
        hr.post(
            "/ui/review/revoke",
            &format!("site=HQ&month=2026-10&employee=P100&date=2026-10-07&form=revoke-{id}&correction={id}&reason=x"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let records = app
        .store
        .corrections_of("P100", first, next)
        .await
        .expect("corrections");
    assert_eq!(records[0].revoked, None);

    let (status, headers, _) = send_text(
        app,
        hr.post(
            "/ui/review/revoke",
            &format!("{revoke}&reason=found+the+badge+log"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/ui/review/day?site=HQ&month=2026%2D10&employee=P100&date=2026-10-06"
    );
    let flash = headers[header::SET_COOKIE].to_str().expect("cookie");
    assert!(
        flash.contains(&format!(
            "Correction%20%23{id}%20%28add%2Dpunch%29%20revoked"
        )),
        "{flash}"
    );
    // Stored: still there, revoked now, with who and why; gone from what counts.
    let (c, revoked_at) = app.store.get_correction(id).await.expect("get");
    assert_eq!(
        (c.reason.as_str(), c.author.as_str()),
        ("badge forgotten", "ui:hilde")
    );
    let revoked_at = revoked_at.expect("revoked_at set");
    assert!(
        (Utc::now() - revoked_at).num_seconds().abs() < 60,
        "{revoked_at}"
    );
    let records = app
        .store
        .corrections_of("P100", first, next)
        .await
        .expect("corrections");
    let r = records[0].revoked.as_ref().expect("revoked");
    assert_eq!(
        (r.at, r.author.as_str(), r.reason.as_str()),
        (revoked_at, "ui:hilde", "found the badge log")
    );
    assert!(app
        .store
        .list_corrections(first, next)
        .await
        .expect("list")
        .is_empty());
    let audit = app.store.list_audit(1).await.expect("audit");
    assert_eq!(
        (
            audit[0].record.action.as_str(),
            audit[0].record.author.as_str(),
            audit[0].record.subject.as_str(),
            audit[0].record.detail["correction"].as_i64(),
            audit[0].record.detail["detail"]["reason"].as_str(),
        ),
        (
            "correction.revoke",
            "ui:hilde",
            "P100/2026-10-06",
            Some(id),
            Some("found the badge log")
        )
    );
    // The day is recomputed (through the month cache, which followed the audit entry) and the page says who
    // revoked it, when and why, with no form left for it.
    assert_eq!(grid_label(app, &hr, 6).await, "P100 2026-10-06: absent");
    assert_eq!(status_on(app, "P100", 6).await, DayStatus::Absent);
    let (_, _, body) = send_text(app, hr.get(day)).await;
    assert!(
        body.contains(&format!(
            "revoked</span> {} by ui:hilde: found the badge log",
            revoked_at.format("%Y-%m-%d %H:%M")
        )) && !body.contains("action=\"/ui/review/revoke\"")
            && body.contains("No punch on this day."),
        "{body}"
    );
    // Twice: refused with the message on the page.
    let (status, _, body) = send_text(
        app,
        hr.post("/ui/review/revoke", &format!("{revoke}&reason=again")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains(&format!("correction {id} was revoked already")),
        "{body}"
    );

    // A signed-off month refuses a revocation, with the message; the correction keeps counting.
    let status_fix = "site=HQ&month=2026-10&employee=P100&date=2026-10-07&form=status&kind=set-status&status=leave&reason=sick";
    let (status, _, _) = send_text(app, hr.post("/ui/review/correct", status_fix)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let leave = app.store.list_corrections(first, next).await.expect("list");
    assert_eq!(leave.len(), 1);
    let (status, _, _) = send_text(
        app,
        hr.post("/ui/review/signoff", "site=HQ&month=2026-10&force=true"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, body) = send_text(
        app,
        hr.post(
            "/ui/review/revoke",
            &format!(
                "site=HQ&month=2026-10&employee=P100&date=2026-10-07&form=revoke-{0}&correction={0}&reason=late",
                leave[0].id
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("HQ 2026-10 is signed off") && body.contains("role=\"alert\""),
        "{body}"
    );
    assert_eq!(
        app.store.list_corrections(first, next).await.expect("list"),
        leave
    );
    assert_eq!(
        app.store.list_audit(1).await.expect("audit")[0]
            .record
            .action,
        "signoff"
    );
}

#[tokio::test]
async fn the_roster_page_reads_one_page_from_the_store() {
    let f = fixture().await;
    let app = &f.app;
    let codes = ["R1", "R2", "R3", "R4", "R5"];
    app.store
        .put_employees(codes.iter().map(|c| employee(c, c)).collect(), audit())
        .await
        .expect("employees");
    let mut lines: Vec<crate::store::attendance::RosterEntry> = Vec::new();
    for code in codes {
        for d in 1..=31 {
            lines.push(crate::store::attendance::RosterEntry {
                employee_code: code.into(),
                day: NaiveDate::from_ymd_opt(2026, 10, d).expect("date"),
                shift: None,
            });
        }
    }
    // Either side of October: not in its roster.
    for (m, d) in [(9, 30), (11, 1)] {
        lines.push(crate::store::attendance::RosterEntry {
            employee_code: "R1".into(),
            day: NaiveDate::from_ymd_opt(2026, m, d).expect("date"),
            shift: None,
        });
    }
    app.store.put_roster(lines, audit()).await.expect("roster");
    let viewer = sign_in(app, "vik").await;
    let row = |code: &str, date: &str| format!("<td>{code}</td><td>{date}</td><td>day off</td>");

    let (status, _, body) = send_text(app, viewer.get("/ui/roster?month=2026-10")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Roster of 2026-10 (155 lines)")
            && body.contains("Page 1 of 2 (1–100 of 155)")
            && body.contains(&row("R1", "2026-10-01 Thu"))
            && body.contains(&row("R4", "2026-10-07 Wed"))
            && !body.contains(&row("R4", "2026-10-08 Thu"))
            && !body.contains("2026-09-30")
            && !body.contains("2026-11-01"),
        "{body}"
    );
    assert_eq!(body.matches("<td>day off</td>").count(), 100);
    // Line 101 is R4's 8 October; a page past the end shows the last one.
    for path in [
        "/ui/roster?month=2026-10&page=2",
        "/ui/roster?month=2026-10&page=9",
    ] {
        let (_, _, body) = send_text(app, viewer.get(path)).await;
        assert!(
            body.contains("Page 2 of 2 (101–155 of 155)")
                && body.contains(&row("R4", "2026-10-08 Thu"))
                && !body.contains(&row("R4", "2026-10-07 Wed")),
            "{path}: {body}"
        );
        assert_eq!(body.matches("<td>day off</td>").count(), 55, "{path}");
    }
    // The employee filter is applied in the store, before paging; it is case-sensitive, as typed.
    let (_, _, body) = send_text(app, viewer.get("/ui/roster?month=2026-10&q=R5")).await;
    assert!(
        body.contains("Roster of 2026-10 (31 lines)")
            && body.contains("Page 1 of 1 (1–31 of 31)")
            && body.contains(&row("R5", "2026-10-31 Sat")),
        "{body}"
    );
    let (_, _, body) = send_text(app, viewer.get("/ui/roster?month=2026-10&q=r5")).await;
    assert!(body.contains("No roster line this month"), "{body}");
}

#[tokio::test]
async fn viewers_read_every_page_but_change_nothing() {
    let f = fixture().await;
    let app = &f.app;
    let viewer = sign_in(app, "vik").await;
    for path in [
        "/ui/people",
        "/ui/people/edit?code=P100",
        "/ui/mappings",
        "/ui/unmapped",
        "/ui/shifts",
        "/ui/roster",
        "/ui/policy",
        "/ui/sites",
        "/ui/review",
        "/ui/review/day?site=HQ&month=2026-10&employee=P100&date=2026-10-05",
        "/ui/audit",
        "/ui/delivery",
        "/ui/sources",
    ] {
        let (status, _, body) = send_text(app, viewer.get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(
            !body.contains("method=\"post\" action=\"/ui/review")
                && !body.contains("action=\"/ui/people/save\""),
            "{path} shows a form to a viewer"
        );
    }
    for (path, fields) in [
        ("/ui/people/save", "code=X1&name=X&status=active"),
        ("/ui/review/signoff", "site=HQ&month=2026-10"),
        ("/ui/sites", "name=B&time_zone=UTC"),
        (
            "/ui/mappings/add",
            "scope=device&scope_key=UIP0001&pin=1&employee_code=P100",
        ),
    ] {
        let (status, _, _) = send_text(app, viewer.post(path, fields)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(app.store.list_employees().await.expect("list").len(), 1);
    assert_eq!(app.store.list_sites().await.expect("list").len(), 1);
    assert!(app
        .store
        .get_signoff("HQ", MONTH)
        .await
        .expect("read")
        .is_none());
}

#[tokio::test]
async fn employee_and_site_forms_answer_beside_the_field() {
    let f = fixture().await;
    let app = &f.app;
    let hr = sign_in(app, "hilde").await;
    let (status, _, body) = send_text(
        app,
        hr.post(
            "/ui/people/save",
            "code=E9&name=&status=left&joined_on=2026-01-01",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("the name is required"), "{body}");
    assert!(
        body.contains("an employee who left needs the last working day"),
        "{body}"
    );
    let (status, _, body) = send_text(
        app,
        hr.post(
            "/ui/people/save",
            "code=E9&name=Eve&status=active&site=Mars",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("site &quot;Mars&quot; is unknown"), "{body}");
    assert!(app
        .store
        .list_employees()
        .await
        .expect("list")
        .iter()
        .all(|e| e.code != "E9"));
    let (status, headers, _) = send_text(
        app,
        hr.post(
            "/ui/people/save",
            "code=E9&name=Eve&status=active&site=HQ&department=Stores",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/people/edit?code=E9");
    let eve = app
        .store
        .list_employees()
        .await
        .expect("list")
        .into_iter()
        .find(|e| e.code == "E9")
        .expect("stored");
    assert_eq!(eve.department.as_deref(), Some("Stores"));

    let (status, _, body) =
        send_text(app, hr.post("/ui/sites", "name=B&time_zone=Mars%2FBase")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("is not an IANA zone"), "{body}");
}

#[tokio::test]
async fn the_grid_pages_through_employees() {
    let f = fixture().await;
    let app = &f.app;
    let many: Vec<Employee> = (0..120)
        .map(|i| employee(&format!("Q{i:03}"), &format!("Worker {i}")))
        .collect();
    app.store
        .put_employees(many, audit())
        .await
        .expect("employees");
    let hr = sign_in(app, "hilde").await;
    let (status, body) = grid_page(app, &hr, "/ui/review?site=HQ&month=2026-10&page=3").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Page 3 of 3 (101–121 of 121)"), "{body}");
    // Rows are in code order: P100 first, then Q000…; page 3 starts at Q099.
    assert!(
        body.contains("Q099") && body.contains("Q119") && !body.contains(">Q098<"),
        "{body}"
    );
}

#[tokio::test]
async fn sink_buttons_need_operate_and_change_the_sink() {
    let f = fixture().await;
    let app = &f.app;
    app.store
        .create_sink(
            NewSink {
                name: "hr-hook".into(),
                kind: SinkKind::Webhook,
                config: serde_json::json!({"url": "http://127.0.0.1:9/hook", "secret": "s"}),
                since: None,
            },
            Utc::now(),
        )
        .await
        .expect("sink");
    let hr = sign_in(app, "hilde").await;
    let (status, _, body) = send_text(app, hr.get("/ui/delivery")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("hr-hook") && !body.contains("Pause hr-hook"),
        "{body}"
    );
    let (status, _, _) = send_text(
        app,
        hr.post("/ui/delivery/action", "name=hr-hook&action=pause"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!app.store.get_sink("hr-hook").await.expect("sink").paused);
    let admin = sign_in(app, "ana").await;
    let (status, headers, _) = send_text(
        app,
        admin.post("/ui/delivery/action", "name=hr-hook&action=pause"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/ui/delivery/sink?name=hr%2Dhook"
    );
    assert!(app.store.get_sink("hr-hook").await.expect("sink").paused);
}

#[tokio::test]
async fn read_now_asks_for_a_biotime_read_for_operators_only() {
    let f = fixture().await;
    let app = &f.app;
    let biotime = |name: &str, kind| crate::store::sources::NewSource {
        name: name.into(),
        kind,
        token_hash: None,
        time_zone: None,
        settings: serde_json::Map::new(),
        secret: Some("pw".into()),
    };
    use crate::store::sources::SourceKind;
    app.store
        .create_source(biotime("bt-hq", SourceKind::Biotime), Utc::now())
        .await
        .expect("biotime");
    app.store
        .create_source(biotime("files", SourceKind::Import), Utc::now())
        .await
        .expect("import");
    let hr = sign_in(app, "hilde").await;
    let (status, _, body) = send_text(app, hr.get("/ui/sources")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("bt-hq") && !body.contains("Read now"),
        "{body}"
    );
    let (status, _, _) = send_text(app, hr.post("/ui/sources/run", "name=bt-hq")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let requested = |name: &'static str| async move {
        app.store
            .get_source(name)
            .await
            .expect("source")
            .run_requested_at
    };
    assert_eq!(requested("bt-hq").await, None);

    let admin = sign_in(app, "ana").await;
    let (_, _, body) = send_text(app, admin.get("/ui/sources")).await;
    assert_eq!(
        body.matches("action=\"/ui/sources/run\"").count(),
        1,
        "one button, for the BioTime source: {body}"
    );
    assert!(body.contains("aria-label=\"Read bt-hq now\""), "{body}");
    let before = Utc::now();
    let (status, headers, _) = send_text(app, admin.post("/ui/sources/run", "name=bt-hq")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/sources");
    assert!(requested("bt-hq")
        .await
        .is_some_and(|t| t >= before - chrono::Duration::seconds(1)));
    // An import source has nothing to read: said on the page, nothing stored.
    let (status, headers, _) = send_text(app, admin.post("/ui/sources/run", "name=files")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let flash = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        flash.contains("=error:") && flash.contains("import"),
        "{flash}"
    );
    assert_eq!(requested("files").await, None);
    // Without the CSRF token: refused.
    let (status, _, _) = send_text(
        app,
        Request::post("/ui/sources/run")
            .header(header::HOST, "hub:8080")
            .header(header::COOKIE, &admin.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("name=bt-hq"))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// The audit entries of UI account changes, oldest first: (author, action, subject).
async fn account_audit(app: &App) -> Vec<(String, String, String)> {
    let mut log: Vec<(String, String, String)> = app
        .store
        .list_audit(0)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.record.action.starts_with("ui_account."))
        .map(|e| (e.record.author, e.record.action, e.record.subject))
        .collect();
    log.reverse();
    log
}

fn entry(author: &str, action: &str, subject: &str) -> (String, String, String) {
    (author.into(), action.into(), subject.into())
}

#[tokio::test]
async fn an_admin_adds_an_account_with_the_cli_rules_and_it_signs_in() {
    let f = fixture().await;
    let app = &f.app;
    let admin = sign_in(app, "ana").await;
    let (status, _, body) = send_text(app, admin.get("/ui/accounts")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("href=\"/ui/accounts/hilde\"") && body.contains("Add account"),
        "{body}"
    );

    // Bad name, no role, short password: each message next to its field, nothing stored.
    let (status, _, body) = send_text(
        app,
        admin.post(
            "/ui/accounts",
            "name=no+spaces&role=&password=short&password2=short",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for (field, message) in [
        ("name", "letters, digits"),
        ("role", "choose viewer, hr or admin"),
        ("password", "at least 10 characters"),
    ] {
        let at = body
            .find(&format!("id=\"f-{field}-error\""))
            .unwrap_or_else(|| panic!("no error beside {field}: {body}"));
        assert!(body[at..].contains(message), "{field}: {body}");
    }
    assert!(
        !body.contains("short"),
        "the password is not echoed: {body}"
    );
    let (status, _, body) = send_text(
        app,
        admin.post(
            "/ui/accounts",
            "name=nina&role=hr&password=nina-password&password2=nina-passwort",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("the two passwords differ"), "{body}");
    assert_eq!(app.store.list_ui_accounts().await.expect("list").len(), 3);

    // A good form: stored with its role and an argon2 hash that signs in; audited.
    let (status, headers, _) = send_text(
        app,
        admin.post(
            "/ui/accounts",
            "name=nina&role=hr&password=nina-password&password2=nina-password",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/accounts/nina");
    let nina = app.store.get_ui_account("nina").await.expect("nina");
    assert_eq!((nina.role, nina.disabled), (Role::Hr, false));
    let hr = sign_in(app, "nina").await;
    let (status, _, _) = send_text(app, hr.get("/ui/review")).await;
    assert_eq!(status, StatusCode::OK);
    // The name is taken now.
    let (status, _, body) = send_text(
        app,
        admin.post(
            "/ui/accounts",
            "name=nina&role=viewer&password=other-password&password2=other-password",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("an account with this name exists"), "{body}");
    assert_eq!(
        app.store.get_ui_account("nina").await.expect("nina").role,
        Role::Hr
    );
    assert_eq!(
        account_audit(app).await,
        [entry("ui:ana", "ui_account.add", "nina")]
    );
}

#[tokio::test]
async fn an_admin_changes_role_password_and_state_and_signs_an_account_out() {
    let f = fixture().await;
    let app = &f.app;
    let admin = sign_in(app, "ana").await;
    let viewer = sign_in(app, "vik").await;
    let hr = sign_in(app, "hilde").await;
    let signed_in = |s: &Session| s.get("/ui/live");

    // Role: the live session goes on with the new role.
    let (status, _, _) = send_text(app, admin.post("/ui/accounts/vik/role", "role=hr")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.store.get_ui_account("vik").await.expect("vik").role,
        Role::Hr
    );
    let (status, _, body) = send_text(app, viewer.get("/ui")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<span class=\"role\">(hr)</span>"), "{body}");
    let (status, _, body) = send_text(app, admin.post("/ui/accounts/vik/role", "role=root")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"f-role-error\""), "{body}");

    // The only enabled admin can be neither demoted nor disabled from the UI.
    let (status, _, body) =
        send_text(app, admin.post("/ui/accounts/ana/role", "role=viewer")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("the only enabled admin"), "{body}");
    let (status, _, _) = send_text(app, admin.post("/ui/accounts/ana/disable", "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let ana = app.store.get_ui_account("ana").await.expect("ana");
    assert_eq!((ana.role, ana.disabled), (Role::Admin, false));

    // Sign out everywhere: vik's session is over, hilde's is not.
    let (status, _, _) = send_text(app, admin.post("/ui/accounts/vik/sign-out", "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, headers, _) = send_text(app, signed_in(&viewer)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[header::LOCATION]
        .to_str()
        .expect("location")
        .starts_with("/ui/login"));
    let (status, _, _) = send_text(app, signed_in(&hr)).await;
    assert_eq!(status, StatusCode::OK);

    // Disable ends hilde's session and keeps her out; enable lets her in again.
    let (status, _, _) = send_text(app, admin.post("/ui/accounts/hilde/disable", "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        app.store
            .get_ui_account("hilde")
            .await
            .expect("hilde")
            .disabled
    );
    let (status, _, _) = send_text(app, signed_in(&hr)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = send_text(app, admin.post("/ui/accounts/hilde/enable", "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    sign_in(app, "hilde").await;

    // A new password: too short is refused beside the field; a good one replaces the hash.
    let (status, _, body) = send_text(
        app,
        admin.post(
            "/ui/accounts/vik/password",
            "password=short&password2=short",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"f-password-error\""), "{body}");
    let (status, _, _) = send_text(
        app,
        admin.post(
            "/ui/accounts/vik/password",
            "password=vik-new-password&password2=vik-new-password",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, hash) = app
        .store
        .ui_password_hash("vik")
        .await
        .expect("hash")
        .expect("vik");
    assert!(super::session::verify_password("vik-new-password", &hash));
    assert!(!super::session::verify_password("vik-password", &hash));

    assert_eq!(
        account_audit(app).await,
        [
            entry("ui:ana", "ui_account.role", "vik"),
            entry("ui:ana", "ui_account.sign_out", "vik"),
            entry("ui:ana", "ui_account.disable", "hilde"),
            entry("ui:ana", "ui_account.enable", "hilde"),
            entry("ui:ana", "ui_account.password", "vik"),
        ]
    );
}

#[tokio::test]
async fn accounts_are_for_admins_only() {
    let f = fixture().await;
    let app = &f.app;
    for name in ["hilde", "vik"] {
        let s = sign_in(app, name).await;
        let (status, _, body) = send_text(app, s.get("/ui")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !body.contains("href=\"/ui/accounts\""),
            "no link for {name}"
        );
        for path in ["/ui/accounts", "/ui/accounts/ana"] {
            let (status, _, body) = send_text(app, s.get(path)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{name} {path}");
            assert!(body.contains("it needs scope admin"), "{body}");
        }
        for (path, fields) in [
            (
                "/ui/accounts",
                "name=eve&role=admin&password=eve-password&password2=eve-password",
            ),
            ("/ui/accounts/vik/role", "role=admin"),
            ("/ui/accounts/ana/disable", ""),
            ("/ui/accounts/ana/sign-out", ""),
            (
                "/ui/accounts/ana/password",
                "password=eve-password&password2=eve-password",
            ),
        ] {
            let (status, _, _) = send_text(app, s.post(path, fields)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{name} {path}");
        }
    }
    let names: Vec<(String, Role, bool)> = app
        .store
        .list_ui_accounts()
        .await
        .expect("list")
        .into_iter()
        .map(|a| (a.name, a.role, a.disabled))
        .collect();
    assert_eq!(
        names,
        [
            ("ana".to_owned(), Role::Admin, false),
            ("hilde".to_owned(), Role::Hr, false),
            ("vik".to_owned(), Role::Viewer, false)
        ]
    );
    assert!(account_audit(app).await.is_empty());
    let admin = sign_in(app, "ana").await;
    let (_, _, body) = send_text(app, admin.get("/ui")).await;
    assert!(body.contains("href=\"/ui/accounts\""));
}

#[tokio::test]
async fn a_queued_command_is_cancelled_from_the_terminal_page_by_an_operator_only() {
    let f = fixture().await;
    let app = &f.app;
    let sn = DeviceSn::parse(SN).expect("sn");
    let queued = app
        .commands
        .enqueue(&sn, crate::domain::CommandKind::Reboot, "test", Utc::now())
        .await
        .expect("enqueue");
    let id = queued[0].id;
    let page = format!("/ui/terminals/{SN}");
    let cancel = format!("/ui/terminals/{SN}/commands/{id}/cancel");
    let button = format!("aria-label=\"Cancel command {id}\"");

    let viewer = sign_in(app, "vik").await;
    let (status, _, body) = send_text(app, viewer.get(&page)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Queued commands") && !body.contains(&button),
        "{body}"
    );
    let (status, _, body) = send_text(app, viewer.post(&cancel, "")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("it needs scope operate"), "{body}");
    let hr = sign_in(app, "hilde").await;
    let (status, _, _) = send_text(app, hr.post(&cancel, "")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.store.get_command(id).await.expect("command").status,
        crate::domain::CommandStatus::Queued
    );

    let admin = sign_in(app, "ana").await;
    let (_, _, body) = send_text(app, admin.get(&page)).await;
    assert!(body.contains(&button), "{body}");
    // Another terminal's URL does not reach the command.
    let (status, _, _) = send_text(
        app,
        admin.post(&format!("/ui/terminals/OTHER0001/commands/{id}/cancel"), ""),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, _) = send_text(app, admin.post(&cancel, "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        format!("/ui/terminals/{SN}#commands")
    );
    let command = app.store.get_command(id).await.expect("command");
    assert_eq!(command.status, crate::domain::CommandStatus::Cancelled);
    assert!(command.message.unwrap_or_default().contains("ui:ana"));
    // Twice: refused with the reason, as the API's 409.
    let (status, headers, _) = send_text(app, admin.post(&cancel, "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let flash = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(flash.contains("pd_flash"), "{flash}");
    let (_, _, body) = send_text(app, admin.get(&page)).await;
    assert!(!body.contains(&button), "{body}");
}

/// A month not computed within the grid's wait (its slot held, as a long computation holds it): the view answers
/// at once a page that says so and loads itself again, with the navigation and the choice of month; asking again
/// while it is computed does not start another computation; once it is done, the grid.
#[tokio::test]
async fn a_month_being_computed_answers_a_page_that_loads_itself_again() {
    let f = fixture().await;
    let app = &f.app;
    let hr = sign_in(app, "hilde").await;
    let path = "/ui/review?site=HQ&month=2026-10&q=P100";
    let held = app.month_cache.hold("HQ", MONTH).await;
    for _ in 0..2 {
        // Bounded only so a page that waits for the held month fails here instead of hanging.
        let (status, _, body) = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            send_text(app, hr.get(path)),
        )
        .await
        .expect("answered while the month is being computed");
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("<meta http-equiv=\"refresh\" content=\"1\">")
                && body.contains(
                    "The month 2026-10 of site HQ (1 employee) is being computed. This page loads itself \
                     again until the grid is there."
                )
                && body.contains("<h1>Review HQ 2026-10</h1>")
                && body.contains("<a href=\"/ui/review\" aria-current=\"page\">Review</a>")
                && body.contains("name=\"month\"")
                && body.contains(
                    "<a href=\"/ui/review?site=HQ&amp;month=2026%2D10&amp;q=P100&amp;only=&amp;page=1\">Load it now</a>"
                ),
            "{body}"
        );
        assert!(!body.contains("Month grid"), "{body}");
    }
    drop(held);
    let (status, body) = grid_page(app, &hr, path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Month grid of HQ, 2026-10") && !body.contains("http-equiv"),
        "{body}"
    );
    assert_eq!(app.month_cache.stats().full, 1, "computed once");
}

/// While the per-PIN summary is not there (a first start's whole read holds it), the pages that need it answer
/// 503 with `Retry-After: 1` and a page that says why and loads itself again, instead of a request that hangs;
/// once it is there, the pages.
#[tokio::test]
async fn pages_needing_the_per_pin_summary_say_it_is_being_prepared_until_it_is() {
    let f = fixture().await;
    let app = &f.app;
    let hr = sign_in(app, "hilde").await;
    let pages = ["/ui", "/ui/terminals", "/ui/unmapped"];
    let held = app.seen.hold_reading_whole().await;
    for path in pages {
        let (status, headers, body) = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            send_text(app, hr.get(path)),
        )
        .await
        .expect("answered while the summary is held");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert_eq!(headers[header::RETRY_AFTER], "1", "{path}");
        assert!(
            body.contains("<meta http-equiv=\"refresh\" content=\"1\">")
                && body.contains("<h1>Being prepared</h1>")
                && body.contains("punchd is counting the punches of every terminal and PIN."),
            "{path}: {body}"
        );
    }
    drop(held);
    for path in pages {
        let body = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            loop {
                let (status, _, body) = send_text(app, hr.get(path)).await;
                if status == StatusCode::OK {
                    return body;
                }
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the page once the summary is free");
        assert!(!body.contains("http-equiv"), "{path}: {body}");
    }
}
