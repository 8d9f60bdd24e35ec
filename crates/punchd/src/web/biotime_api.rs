//! A BioTime-compatible read API over punchd's own store (issue 9), so BioTime consumers (a Frappe app, an Odoo
//! module, pybiotime) can be pointed at punchd unchanged and read punches from every source (push, pull, import,
//! webhook, biotime).
//!
//! - `POST /api-token-auth/` and `POST /jwt-api-token-auth/` with `{"username": NAME, "password": TOKEN}`, where
//!   TOKEN is a punchd API token (`punchd token create NAME`) and NAME its name: the answer is
//!   `{"token": TOKEN}` (the same token; it has no expiry, so a JWT client never renews it). Wrong credentials get
//!   400 `{"non_field_errors": [...]}`, as BioTime answers.
//! - Every GET needs `Authorization: Token <token>`, `JWT <token>` or `Bearer <token>`; else 401
//!   `{"detail": ...}`.
//! - `GET /iclock/api/transactions/`: filters `start_time`, `end_time` (punch time, terminal wall time
//!   `YYYY-MM-DD HH:MM:SS`, inclusive), `emp_code`, `terminal_sn`; `ordering` `id`, `-id`, `punch_time`,
//!   `-punch_time`, `upload_time`, `-upload_time` (ties by id; anything else is id order); `page` (from 1) and
//!   `page_size` (default 10, at most 1000). The envelope is `{count, next, previous, msg: "", code: 0, data}`; a
//!   page past the end is 404 `{"detail": "Invalid page."}`.
//! - `GET /iclock/api/terminals/` (filters `sn`, `alias`, contains, case-insensitive): punchd's devices.
//!
//! Field mapping of a transaction: `id` = punchd's punch id (stable, increasing in arrival order); `emp_code` =
//! PIN; `punch_time` = the terminal's wall time; `upload_time` = punchd's receive time, as wall time in the
//! punch's zone (so "newest upload first" is arrival order); `punch_state` = the state code as a string (BioTime
//! sends strings); `verify_type` = the verify mode code (0 when unknown); `work_code`; `terminal_sn` = device SN;
//! `terminal_alias` and `area_alias` = the device's alias and site. `emp`, `first_name`, `last_name`,
//! `department`, `position`, `gps_location`, `temperature`, `longitude`, `latitude` are null (punchd keeps no
//! employees yet).

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDateTime;
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::auth::hash_token;
use crate::app::App;
use crate::domain::{DeviceSn, Pin, Punch};
use crate::store::sources::PunchOrder;
use crate::store::{PunchFilter, TimeBound};

/// Largest `page_size`.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// The routes, with their full paths.
pub fn routes(app: App) -> Router<App> {
    let reads = Router::new()
        .route("/iclock/api/transactions/", get(transactions))
        .route("/iclock/api/terminals/", get(terminals))
        .route_layer(middleware::from_fn_with_state(app, require));
    Router::new()
        .route("/api-token-auth/", post(login))
        .route("/jwt-api-token-auth/", post(login))
        .merge(reads)
}

fn detail(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "detail": message }))).into_response()
}

async fn login(State(app): State<App>, body: axum::body::Bytes) -> Response {
    let refused = || {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"non_field_errors": ["Unable to log in with provided credentials."]})),
        )
            .into_response()
    };
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return refused();
    };
    let (Some(user), Some(password)) = (
        body.get("username").and_then(Value::as_str),
        body.get("password").and_then(Value::as_str),
    ) else {
        return refused();
    };
    match app.store.find_token(&hash_token(password)).await {
        Ok(Some(info)) if info.name == user => Json(json!({ "token": password })).into_response(),
        Ok(_) => refused(),
        Err(e) => {
            tracing::error!(error = %e, "BioTime API login: store failed");
            detail(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable.")
        }
    }
}

async fn require(State(app): State<App>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| matches!(*scheme, "Token" | "JWT" | "Bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let Some(token) = token else {
        return detail(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided.",
        );
    };
    match app.store.find_token(&hash_token(&token)).await {
        Ok(Some(_)) => next.run(request).await,
        Ok(None) => detail(StatusCode::UNAUTHORIZED, "Invalid token."),
        Err(e) => {
            tracing::error!(error = %e, "BioTime API: store failed");
            detail(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable.")
        }
    }
}

/// (page, page size); `None` for a page number that is not a number from 1 (answered 404 "Invalid page.").
fn page_params(q: &HashMap<String, String>) -> Option<(u64, u64)> {
    let page = match q.get("page") {
        None => 1,
        Some(p) => p.parse::<u64>().ok().filter(|p| *p >= 1)?,
    };
    let size = q
        .get("page_size")
        .or_else(|| q.get("limit"))
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(10)
        .clamp(1, MAX_PAGE_SIZE);
    Some((page, size))
}

/// `next`/`previous` links: this URL with another page number.
fn link(headers: &HeaderMap, path: &str, q: &HashMap<String, String>, page: u64) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let mut pairs: Vec<(&String, String)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "page")
        .map(|(k, v)| (k, v.clone()))
        .collect();
    pairs.sort();
    let page_key = "page".to_owned();
    if page > 1 {
        pairs.push((&page_key, page.to_string()));
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                percent_encoding::utf8_percent_encode(k, percent_encoding::NON_ALPHANUMERIC),
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect();
    if query.is_empty() {
        format!("http://{host}{path}")
    } else {
        format!("http://{host}{path}?{}", query.join("&"))
    }
}

fn envelope(
    headers: &HeaderMap,
    path: &str,
    q: &HashMap<String, String>,
    page: u64,
    size: u64,
    count: u64,
    data: Vec<Value>,
) -> Response {
    let next = (page * size < count).then(|| link(headers, path, q, page + 1));
    let previous = (page > 1).then(|| link(headers, path, q, page - 1));
    Json(json!({
        "count": count, "next": next, "previous": previous, "msg": "", "code": 0, "data": data
    }))
    .into_response()
}

fn wall(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S"))
        .ok()
}

async fn transactions(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some((page, size)) = page_params(&q) else {
        return detail(StatusCode::NOT_FOUND, "Invalid page.");
    };
    let mut filter = PunchFilter::default();
    if let Some(s) = q.get("start_time") {
        match wall(s) {
            Some(t) => filter.from = Some(TimeBound::Local(t)),
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"start_time": ["Enter a valid date/time."]})),
                )
                    .into_response()
            }
        }
    }
    if let Some(s) = q.get("end_time") {
        match wall(s) {
            // Inclusive, as BioTime filters: up to the next second, exclusive.
            Some(t) => filter.to = Some(TimeBound::Local(t + chrono::Duration::seconds(1))),
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"end_time": ["Enter a valid date/time."]})),
                )
                    .into_response()
            }
        }
    }
    if let Some(e) = q.get("emp_code") {
        filter.pin = Some(Pin(e.clone()));
    }
    if let Some(sn) = q.get("terminal_sn") {
        match DeviceSn::parse(sn) {
            Ok(sn) => filter.device_sn = Some(sn),
            Err(_) => {
                return envelope(
                    &headers,
                    "/iclock/api/transactions/",
                    &q,
                    1,
                    size,
                    0,
                    Vec::new(),
                )
            }
        }
    }
    let order = match q.get("ordering").map(String::as_str) {
        Some("-id") => PunchOrder::IdDesc,
        Some("punch_time") => PunchOrder::PunchTime,
        Some("-punch_time") => PunchOrder::PunchTimeDesc,
        Some("upload_time") => PunchOrder::Received,
        Some("-upload_time") => PunchOrder::ReceivedDesc,
        _ => PunchOrder::Id,
    };
    let count = match app.store.count_punches(&filter).await {
        Ok(c) => c,
        Err(e) => return super::error::Error::from(e).into_response(),
    };
    let offset = (page - 1) * size;
    if offset > 0 && offset >= count {
        return detail(StatusCode::NOT_FOUND, "Invalid page.");
    }
    let punches = match app.store.punch_page(&filter, order, offset, size).await {
        Ok(p) => p,
        Err(e) => return super::error::Error::from(e).into_response(),
    };
    let devices: HashMap<String, (Option<String>, Option<String>)> = app
        .registry
        .devices_where(|_| true)
        .into_iter()
        .map(|d| (d.sn.to_string(), (d.alias, d.site)))
        .collect();
    let data = punches
        .iter()
        .map(|p| transaction(p, devices.get(p.device_sn.as_str())))
        .collect();
    envelope(
        &headers,
        "/iclock/api/transactions/",
        &q,
        page,
        size,
        count,
        data,
    )
}

fn transaction(p: &Punch, device: Option<&(Option<String>, Option<String>)>) -> Value {
    let zone: Tz = p.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let upload = p
        .received_at
        .with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let (alias, site) = device.cloned().unwrap_or((None, None));
    json!({
        "id": p.id,
        "emp": null,
        "emp_code": p.pin.as_str(),
        "first_name": null,
        "last_name": null,
        "department": null,
        "position": null,
        "punch_time": p.punched_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        "punch_state": p.punch_state.map(|s| s.to_string()).unwrap_or_else(|| "255".to_owned()),
        "punch_state_display": null,
        "verify_type": p.verify_mode.unwrap_or(0),
        "verify_type_display": null,
        "work_code": p.work_code,
        "gps_location": null,
        "area_alias": site,
        "terminal_sn": p.device_sn.as_str(),
        "temperature": null,
        "is_mask": null,
        "terminal_alias": alias,
        "upload_time": upload,
        "longitude": null,
        "latitude": null,
    })
}

async fn terminals(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some((page, size)) = page_params(&q) else {
        return detail(StatusCode::NOT_FOUND, "Invalid page.");
    };
    let mut devices = app.registry.devices_where(|_| true);
    devices.sort_by(|a, b| a.sn.as_str().cmp(b.sn.as_str()));
    let rows: Vec<Value> = devices
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            q.get("sn")
                .is_none_or(|s| d.sn.as_str().to_lowercase().contains(&s.to_lowercase()))
                && q.get("alias").is_none_or(|s| {
                    d.alias
                        .as_deref()
                        .unwrap_or_default()
                        .to_lowercase()
                        .contains(&s.to_lowercase())
                })
        })
        .map(|(i, d)| {
            json!({
                "id": i + 1,
                "sn": d.sn.as_str(),
                "ip_address": d.last_ip,
                "alias": d.alias.clone().unwrap_or_else(|| d.sn.to_string()),
                "terminal_name": d.device_type,
                "fw_ver": d.firmware,
                "push_ver": d.push_version,
                "state": "1",
                "terminal_tz": null,
                "area": d.site.as_ref().map(|s| json!({"area_name": s})),
                "last_activity": d.last_seen.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
                "area_name": d.site,
            })
        })
        .collect();
    let count = rows.len() as u64;
    let offset = (page - 1) * size;
    if offset > 0 && offset >= count {
        return detail(StatusCode::NOT_FOUND, "Invalid page.");
    }
    let data = rows
        .into_iter()
        .skip(offset as usize)
        .take(size as usize)
        .collect();
    envelope(
        &headers,
        "/iclock/api/terminals/",
        &q,
        page,
        size,
        count,
        data,
    )
}
