//! The UI's rules through the router, without a socket or a browser: sign-in, sessions, CSRF, roles as scopes,
//! security headers. (The browser tests in `tests/it/ui_browser.rs` drive the same pages in Chromium.)

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::Utc;
use tower::ServiceExt;

use crate::app::App;
use crate::config::{Config, Overrides};
use crate::domain::{Approval, DeviceSn, Role};
use crate::store::sqlite::{Durability, SqliteStore};
use crate::store::DeviceContact;

struct Fixture {
    app: App,
    /// One router for the whole test, as `serve` has (the sign-in limiter lives in it).
    router: axum::Router,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("ui.db"), Durability::PowerSafe).expect("open");
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
    app.store
        .upsert_device(DeviceContact {
            sn: DeviceSn::parse("UIT0001").expect("sn"),
            poll_delay_secs: 10,
            approval_if_new: Approval::Pending,
            transport: crate::domain::Transport::Push,
            seen_at: Utc::now(),
            ip: None,
            firmware: None,
            push_version: None,
            language: None,
            device_type: None,
        })
        .await
        .expect("device");
    app.registry.refresh().await.expect("refresh");
    Fixture {
        router: crate::web::router(app.clone()),
        app,
        _dir: dir,
    }
}

async fn send(f: &Fixture, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = f.router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn form(path: &str, cookie: Option<&str>, body: &str) -> Request<Body> {
    let mut r = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "hub:8080");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::from(body.to_owned())).expect("request")
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path).header(header::HOST, "hub:8080");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::empty()).expect("request")
}

/// Sign in; returns the session cookie (`pd_session=…`) and the CSRF token of the session.
async fn sign_in(f: &Fixture, name: &str) -> (String, String) {
    let app = &f.app;
    let (status, headers, _) = send(
        f,
        form(
            "/ui/login",
            None,
            &format!("name={name}&password={name}-password&next=%2Fui%2Fterminals"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/terminals");
    let cookie = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("pd_session="))
        .expect("session cookie")
        .to_owned();
    assert!(
        cookie.contains("; HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("pair").to_owned();
    let session = app
        .store
        .find_ui_session(
            &crate::web::auth::hash_token(pair.trim_start_matches("pd_session=")),
            Utc::now() - chrono::Duration::minutes(1),
        )
        .await
        .expect("find")
        .expect("session stored");
    assert_eq!(session.account.name, name);
    (pair, session.csrf_token)
}

#[tokio::test]
async fn pages_need_a_session_and_carry_the_security_headers() {
    let f = fixture().await;
    let (status, headers, _) = send(&f, get("/ui/terminals", None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/ui/login?next=%2Fui%2Fterminals"
    );
    let (status, headers, body) = send(&f, get("/ui/login", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-security-policy"], super::layout::CSP);
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(
        !body.contains("<script>") && !body.contains("style="),
        "{body}"
    );
    let (status, headers, _) = send(&f, get("/", None)).await;
    assert_eq!(
        (status, &headers[header::LOCATION]),
        (StatusCode::SEE_OTHER, &"/ui".parse().expect("value"))
    );
    let (status, headers, body) = send(&f, get("/ui/assets/ui.js", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(body.contains("EventSource"));
}

#[tokio::test]
async fn a_wrong_password_is_refused_beside_the_field_and_counted() {
    let f = fixture().await;
    for attempt in 1..=6 {
        let (status, _, body) = send(&f, form("/ui/login", None, "name=ana&password=wrong")).await;
        if attempt <= 5 {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
            assert!(
                body.contains("the account name or password is wrong"),
                "{body}"
            );
            assert!(body.contains("aria-invalid=\"true\""), "{body}");
        } else {
            // The sixth within the window is refused without looking at the password, even the right one.
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert!(body.contains("too many failed attempts"), "{body}");
        }
    }
    let (status, _, _) = send(
        &f,
        form("/ui/login", None, "name=ana&password=ana-password"),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Another account from the same address is not blocked.
    let (status, _, _) = send(
        &f,
        form("/ui/login", None, "name=vik&password=vik-password"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_post_needs_the_csrf_token_and_the_scope_of_its_api_twin() {
    let f = fixture().await;
    let approve = "/ui/terminals/UIT0001/approve";
    let sn = DeviceSn::parse("UIT0001").expect("sn");

    // A viewer (scope read) may look but not approve, even with a good token.
    let (viewer, viewer_csrf) = sign_in(&f, "vik").await;
    let (status, _, body) = send(&f, get("/ui/terminals/UIT0001", Some(&viewer))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Sending commands needs role admin"), "{body}");
    let (status, _, body) = send(
        &f,
        form(approve, Some(&viewer), &format!("_csrf={viewer_csrf}")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains("your role (viewer) may not do this: it needs scope operate"),
        "{body}"
    );
    // HR (scope hr) neither: approving terminals is `operate`.
    let (hr, hr_csrf) = sign_in(&f, "hilde").await;
    let (status, _, _) = send(&f, form(approve, Some(&hr), &format!("_csrf={hr_csrf}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        f.app.store.get_device(&sn).await.expect("device").approval,
        Approval::Pending
    );

    // An admin without the token, with another session's token, or from another origin: refused.
    let (admin, admin_csrf) = sign_in(&f, "ana").await;
    for body in ["", "_csrf=", &format!("_csrf={viewer_csrf}")] {
        let (status, _, _) = send(&f, form(approve, Some(&admin), body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "body {body:?}");
    }
    let mut cross = form(approve, Some(&admin), &format!("_csrf={admin_csrf}"));
    cross.headers_mut().insert(
        header::ORIGIN,
        "http://evil.example".parse().expect("value"),
    );
    let (status, _, _) = send(&f, cross).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        f.app.store.get_device(&sn).await.expect("device").approval,
        Approval::Pending
    );

    // With its token the admin approves: stored, and the redirect carries the flash.
    let (status, headers, _) = send(
        &f,
        form(approve, Some(&admin), &format!("a=1&_csrf={admin_csrf}")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/terminals/UIT0001");
    assert_eq!(
        f.app.store.get_device(&sn).await.expect("device").approval,
        Approval::Approved
    );

    // A command from the admin is queued in the admin's name; field errors come back beside the field.
    let commands = "/ui/terminals/UIT0001/commands";
    let (status, _, body) = send(
        &f,
        form(
            commands,
            Some(&admin),
            &format!("_csrf={admin_csrf}&kind=delete_user&pin="),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("this command needs the user&#39;s PIN")
            || body.contains("this command needs the user's PIN"),
        "{body}"
    );
    let (status, headers, _) = send(
        &f,
        form(
            commands,
            Some(&admin),
            &format!("_csrf={admin_csrf}&kind=fetch_info"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{headers:?}");
    let queued = f
        .app
        .store
        .list_commands(&crate::store::CommandFilter {
            device_sn: Some(sn.clone()),
            status: None,
            limit: 0,
        })
        .await
        .expect("commands");
    let queued: Vec<(&str, &str)> = queued
        .iter()
        .map(|c| (c.kind.name(), c.requested_by.as_str()))
        .collect();
    assert_eq!(queued, [("fetch_info", "ui:ana")]);

    // Sign-out ends the session in the store.
    let (status, _, _) = send(
        &f,
        form("/ui/logout", Some(&admin), &format!("_csrf={admin_csrf}")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = send(&f, get("/ui", Some(&admin))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_dashboard_and_live_page_render_for_a_viewer() {
    let f = fixture().await;
    let (viewer, _) = sign_in(&f, "vik").await;
    let (status, _, body) = send(&f, get("/ui", Some(&viewer))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("waiting for approval"), "{body}");
    assert!(body.contains("aria-current=\"page\">Dashboard"), "{body}");
    let (status, _, body) = send(&f, get("/ui/live?device=UIT0001", Some(&viewer))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("data-live-events=\"/ui/live/events?device=UIT0001\""),
        "{body}"
    );
}
