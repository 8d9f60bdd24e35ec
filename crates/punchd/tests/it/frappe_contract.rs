//! A Frappe CONTRACT server: a stand-in for a Frappe HR / ERPNext site that enforces exactly what
//! `shared/protocol/frappe-hr.md` documents (read from the HRMS/ERPNext/Frappe source), so the Frappe sink is held
//! to the contract, not to this server's convenience. Each rule cites its section.
//!
//! - §2 "Location by version": only the configured version's method path exists (HRMS v14+ `hrms.…`, ERPNext
//!   v12/v13 `erpnext.…`). frappe-hr.md does not say what a site answers for a missing module; this server answers
//!   404, and the sink's probe treats any answer but 200/401/403/417 as "not here".
//! - §4 auth: `Authorization: token <key>:<secret>` (scheme case-insensitive) or `Basic base64(key:secret)`; a wrong
//!   key or secret → 401 `AuthenticationError`; no credentials (Guest) → 403 `PermissionError`.
//! - §2 parameters (JSON or form body): empty `employee_field_value`/`timestamp` → 417 "'employee_field_value' and
//!   'timestamp' are required."; the employee is looked up by `employee_fieldname` (default
//!   `attendance_device_id`), first match, any status → none: 417 "No Employee found for the given employee field
//!   value. '{fieldname}': {value}".
//! - §1 validation: `Inactive` → 417 `InactiveEmployeeStatusError` (Left and Suspended are accepted); duplicate =
//!   same employee + time + log_type on HRMS (PR #621), employee + time on ERPNext v12/v13 → 417 "This employee
//!   already has a log with the same timestamp.<Br>…"; `log_type` is a Select of "", IN, OUT.
//! - `timestamp` must be naive `YYYY-MM-DD HH:MM:SS[.ffffff]` (§2: no offset accepted); 2025 HRMS truncates to
//!   whole seconds (§1 step 1).
//! - Success: 200 `{"message": {<Employee Checkin>}}` with `name` `EMP-CKIN-MM-YYYY-NNNNNN` (§1 naming, §2.4).
//! - Errors: the v1 body of §4 with `exc_type` and `_server_messages` (a JSON string of a list of JSON strings),
//!   WITHOUT `exc` (v15 hides tracebacks from API users), so a client that reads `exc` fails here.
//! - Injected faults: a burst of 5xx answers, slow answers, connections dropped without an answer.
//! - §4 REST resource routes (same auth): `GET /api/resource/Employee` = `frappe.client.get_list` with `fields`
//!   (JSON list, default `["name"]`), `filters` (JSON list of `[field, op, value]`; `=`, `!=` and `is` `set`/`not
//!   set` here), `limit_start`, `limit_page_length` (default **20**, `0` = all; so a client that does not page
//!   misses rows) → `{"data": [...]}`; `GET /api/resource/Shift Type/{name}` → `{"data": {...}}`, 404
//!   `DoesNotExistError` for an unknown name; `PUT` of the same = partial update (§4 "last sync" example): the
//!   body's fields are set, `last_sync_of_checkin` must be a Datetime (naive `YYYY-MM-DD HH:MM:SS[.ffffff]`, §2)
//!   or 417; answer `{"data": {...}}`. `GET /api/resource/Employee Checkin/{name}` (with the read-only
//!   `attendance` link, §1) and `DELETE` of it → **202** `{"data": "ok"}` (§4), 404 when unknown. Other doctypes:
//!   403 (the integration user has no rights on them), except `System Settings/System Settings` (the single
//!   doctype's document) with its `time_zone` when the test lets the user read it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;

/// Which Frappe the server plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Frappe HR (HRMS) v14+.
    Hrms,
    /// ERPNext v12/v13 (HR inside ERPNext).
    Erpnext13,
    /// A Frappe site without HR (neither path).
    NoHr,
}

/// An Employee (the fields that matter, frappe-hr.md §3).
#[derive(Debug, Clone)]
pub struct Employee {
    /// Document name (HR-EMP-00001).
    pub name: String,
    /// Active, Inactive, Suspended, Left.
    pub status: String,
    /// Field values by fieldname (`attendance_device_id`, `employee_number`, …).
    pub fields: HashMap<String, String>,
}

/// A stored Employee Checkin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkin {
    /// EMP-CKIN-MM-YYYY-NNNNNN.
    pub name: String,
    /// Employee document name.
    pub employee: String,
    /// Naive site-local time as stored.
    pub time: String,
    /// "", IN or OUT.
    pub log_type: String,
    /// device_id as sent.
    pub device_id: Option<String>,
}

/// What the server holds and what faults it injects next.
#[derive(Debug)]
pub struct Site {
    /// Version played.
    pub version: Version,
    /// API key.
    pub key: String,
    /// API secret.
    pub secret: String,
    /// Employees.
    pub employees: Vec<Employee>,
    /// Checkins in insertion order.
    pub checkins: Vec<Checkin>,
    /// Next N method calls answer 503.
    pub fail_next: usize,
    /// Next N method calls are answered after `slow_ms`.
    pub slow_next: usize,
    /// Delay of a slow answer.
    pub slow_ms: u64,
    /// Next N connections are closed without an answer.
    pub drop_next: usize,
    /// Method calls seen (any outcome).
    pub calls: usize,
    /// Shift Types by name: their `last_sync_of_checkin` (naive site time) or none.
    pub shift_types: HashMap<String, Option<String>>,
    /// Every accepted `PUT` of a Shift Type: (name, last_sync_of_checkin written).
    pub shift_type_writes: Vec<(String, String)>,
    /// Employee list requests seen: (limit_start, limit_page_length) as asked.
    pub employee_pages: Vec<(usize, usize)>,
    /// Check-ins auto attendance has linked: check-in name → Attendance name (the read-only `attendance` field).
    pub attendance_links: HashMap<String, String>,
    /// Check-ins deleted through `DELETE /api/resource/Employee Checkin/{name}`.
    pub deleted: Vec<String>,
    /// System Settings' `time_zone`; `None` = the API user may not read System Settings (403).
    pub system_time_zone: Option<String>,
}

/// A running contract server on 127.0.0.1:<port>.
pub struct FrappeContract {
    /// Port.
    pub port: u16,
    /// State, shared with the server.
    pub site: Arc<Mutex<Site>>,
    _runtime: tokio::runtime::Runtime,
}

impl FrappeContract {
    /// Start a site of `version` with these credentials.
    pub fn start(version: Version, key: &str, secret: &str) -> FrappeContract {
        let site = Arc::new(Mutex::new(Site {
            version,
            key: key.into(),
            secret: secret.into(),
            employees: Vec::new(),
            checkins: Vec::new(),
            fail_next: 0,
            slow_next: 0,
            slow_ms: 0,
            drop_next: 0,
            calls: 0,
            shift_types: HashMap::new(),
            shift_type_writes: Vec::new(),
            employee_pages: Vec::new(),
            attendance_links: HashMap::new(),
            deleted: Vec::new(),
            system_time_zone: None,
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = Router::new()
            .route("/api/method/{method}", post(method))
            .route("/api/resource/{doctype}", axum::routing::get(list_resource))
            .route(
                "/api/resource/{doctype}/{name}",
                axum::routing::get(get_resource)
                    .put(put_resource)
                    .delete(delete_resource),
            )
            .with_state(site.clone());
        let accept_site = site.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let drop_it = {
                    let mut s = accept_site.lock().unwrap();
                    if s.drop_next > 0 {
                        s.drop_next -= 1;
                        true
                    } else {
                        false
                    }
                };
                if drop_it {
                    // Read the request, then close without a word (a proxy or worker dying mid-request).
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        let _ = tokio::time::timeout(Duration::from_millis(200), stream.readable())
                            .await;
                        let _ = stream.try_read(&mut buf);
                        drop(stream);
                    });
                    continue;
                }
                let service = hyper_util::service::TowerToHyperService::new(router.clone());
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        FrappeContract {
            port,
            site,
            _runtime: runtime,
        }
    }

    /// The site URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Add an employee with `attendance_device_id`.
    pub fn employee(&self, name: &str, device_id: &str, status: &str) {
        let mut fields = HashMap::new();
        fields.insert("attendance_device_id".to_owned(), device_id.to_owned());
        fields.insert("name".to_owned(), name.to_owned());
        self.site.lock().unwrap().employees.push(Employee {
            name: name.into(),
            status: status.into(),
            fields,
        });
    }

    /// Add an employee with more fields (`employee_name`, `department`, `branch`, `date_of_joining`,
    /// `relieving_date`, …); `attendance_device_id` may be empty (not set).
    pub fn employee_with(&self, name: &str, device_id: &str, status: &str, more: &[(&str, &str)]) {
        let mut fields = HashMap::new();
        if !device_id.is_empty() {
            fields.insert("attendance_device_id".to_owned(), device_id.to_owned());
        }
        fields.insert("name".to_owned(), name.to_owned());
        for (k, v) in more {
            fields.insert((*k).to_owned(), (*v).to_owned());
        }
        self.site.lock().unwrap().employees.push(Employee {
            name: name.into(),
            status: status.into(),
            fields,
        });
    }

    /// Create a Shift Type with this `last_sync_of_checkin`.
    pub fn shift_type(&self, name: &str, last_sync: Option<&str>) {
        self.site
            .lock()
            .unwrap()
            .shift_types
            .insert(name.to_owned(), last_sync.map(str::to_owned));
    }

    /// A Shift Type's `last_sync_of_checkin` now.
    pub fn last_sync(&self, name: &str) -> Option<String> {
        self.site
            .lock()
            .unwrap()
            .shift_types
            .get(name)
            .cloned()
            .flatten()
    }

    /// Set an employee's status.
    pub fn set_status(&self, name: &str, status: &str) {
        let mut site = self.site.lock().unwrap();
        for e in site.employees.iter_mut().filter(|e| e.name == name) {
            e.status = status.into();
        }
    }

    /// The checkins held.
    pub fn checkins(&self) -> Vec<Checkin> {
        self.site.lock().unwrap().checkins.clone()
    }
}

/// The v1 error body of frappe-hr.md §4: `exc_type` and `_server_messages`, no `exc`.
fn frappe_error(status: StatusCode, exc_type: &str, message: &str) -> Response {
    let inner = serde_json::json!({
        "message": message, "title": "Message", "indicator": "red", "raise_exception": 1
    })
    .to_string();
    let server_messages = serde_json::to_string(&vec![inner]).unwrap();
    (
        status,
        axum::Json(serde_json::json!({
            "exc_type": exc_type,
            "_server_messages": server_messages,
        })),
    )
        .into_response()
}

fn method_path(version: Version) -> Option<&'static str> {
    match version {
        Version::Hrms => Some(
            "hrms.hr.doctype.employee_checkin.employee_checkin.add_log_based_on_employee_field",
        ),
        Version::Erpnext13 => Some(
            "erpnext.hr.doctype.employee_checkin.employee_checkin.add_log_based_on_employee_field",
        ),
        Version::NoHr => None,
    }
}

/// §4: `token key:secret` (any case) or `Basic base64(key:secret)`. `None` = no credentials (Guest).
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    let pair = match scheme.to_ascii_lowercase().as_str() {
        "token" => rest.trim().to_owned(),
        "basic" => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?,
        )
        .ok()?,
        _ => return None,
    };
    let (k, s) = pair.split_once(':')?;
    Some((k.to_owned(), s.to_owned()))
}

/// Parameters from a JSON or form body (§2: "JSON or form body").
fn params(headers: &HeaderMap, body: &[u8]) -> HashMap<String, Option<String>> {
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let s = match v {
                            serde_json::Value::Null => None,
                            serde_json::Value::String(s) => Some(s.clone()),
                            other => Some(other.to_string()),
                        };
                        (k.clone(), s)
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        url_form(body)
    }
}

fn url_form(body: &[u8]) -> HashMap<String, Option<String>> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            (k.to_owned(), Some(v))
        })
        .collect()
}

/// `timestamp`: naive `YYYY-MM-DD HH:MM:SS[.ffffff]`, truncated to whole seconds (§1 step 1).
fn naive_time(s: &str) -> Option<String> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(t.format("%Y-%m-%d %H:%M:%S").to_string())
}

async fn method(
    State(site): State<Arc<Mutex<Site>>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (slow, fail) = {
        let mut s = site.lock().unwrap();
        s.calls += 1;
        let slow = if s.slow_next > 0 {
            s.slow_next -= 1;
            Some(s.slow_ms)
        } else {
            None
        };
        let fail = if s.fail_next > 0 {
            s.fail_next -= 1;
            true
        } else {
            false
        };
        (slow, fail)
    };
    if let Some(ms) = slow {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if fail {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "<html>503 Service Temporarily Unavailable</html>",
        )
            .into_response();
    }
    let mut s = site.lock().unwrap();
    // Auth comes first: Frappe authenticates the request before resolving the method (§4).
    match credentials(&headers) {
        None => return frappe_error(StatusCode::FORBIDDEN, "PermissionError", "Not permitted"),
        Some((k, sec)) if k != s.key || sec != s.secret => {
            return frappe_error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
                "Invalid Request",
            )
        }
        Some(_) => {}
    }
    if method_path(s.version) != Some(method.as_str()) {
        return frappe_error(
            StatusCode::NOT_FOUND,
            "DoesNotExistError",
            &format!("Failed to get method for command {method}"),
        );
    }
    let p = params(&headers, &body);
    let get = |k: &str| p.get(k).cloned().flatten().filter(|v| !v.is_empty());
    let (Some(value), Some(timestamp)) = (get("employee_field_value"), get("timestamp")) else {
        return frappe_error(
            StatusCode::EXPECTATION_FAILED,
            "ValidationError",
            "'employee_field_value' and 'timestamp' are required.",
        );
    };
    let fieldname = get("employee_fieldname").unwrap_or_else(|| "attendance_device_id".into());
    let Some(employee) = s
        .employees
        .iter()
        .find(|e| e.fields.get(&fieldname) == Some(&value))
        .cloned()
    else {
        return frappe_error(
            StatusCode::EXPECTATION_FAILED,
            "ValidationError",
            &format!(
                "No Employee found for the given employee field value. '{fieldname}': {value}"
            ),
        );
    };
    let Some(time) = naive_time(&timestamp) else {
        return frappe_error(
            StatusCode::EXPECTATION_FAILED,
            "ValidationError",
            &format!("Datetime {timestamp} is not a naive YYYY-MM-DD HH:MM:SS (the site's zone has no offset)"),
        );
    };
    let log_type = get("log_type").unwrap_or_default();
    if !matches!(log_type.as_str(), "" | "IN" | "OUT") {
        return frappe_error(
            StatusCode::EXPECTATION_FAILED,
            "ValidationError",
            &format!(
                "Log Type cannot be \"{log_type}\". It should be one of \"\", \"IN\", \"OUT\""
            ),
        );
    }
    if employee.status == "Inactive" {
        return frappe_error(
            StatusCode::EXPECTATION_FAILED,
            "InactiveEmployeeStatusError",
            &format!(
                "Transactions cannot be created for an Inactive Employee {}.",
                employee.name
            ),
        );
    }
    let version = s.version;
    let duplicate = s.checkins.iter().find(|c| {
        c.employee == employee.name
            && c.time == time
            && (version == Version::Erpnext13 || c.log_type == log_type)
    });
    if let Some(existing) = duplicate {
        return frappe_error(
            StatusCode::EXPECTATION_FAILED,
            "ValidationError",
            &format!(
                "This employee already has a log with the same timestamp.<Br><a href=\"/app/employee-checkin/{0}\">{0}</a>",
                existing.name
            ),
        );
    }
    let seq = s.checkins.len() + s.deleted.len() + 1;
    let name = format!("EMP-CKIN-{}-{}-{seq:06}", &time[5..7], &time[0..4]);
    let checkin = Checkin {
        name: name.clone(),
        employee: employee.name.clone(),
        time: time.clone(),
        log_type: log_type.clone(),
        device_id: get("device_id"),
    };
    s.checkins.push(checkin.clone());
    axum::Json(serde_json::json!({
        "message": {
            "name": name,
            "doctype": "Employee Checkin",
            "docstatus": 0,
            "employee": employee.name,
            "time": time,
            "log_type": if log_type.is_empty() { serde_json::Value::Null } else { log_type.into() },
            "device_id": checkin.device_id,
            "skip_auto_attendance": 0,
        }
    }))
    .into_response()
}

/// §4 auth for the resource routes (same rule as methods).
fn check_auth(site: &Site, headers: &HeaderMap) -> Option<Response> {
    match credentials(headers) {
        None => Some(frappe_error(
            StatusCode::FORBIDDEN,
            "PermissionError",
            "Not permitted",
        )),
        Some((k, sec)) if k != site.key || sec != site.secret => Some(frappe_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            "Invalid Request",
        )),
        Some(_) => None,
    }
}

fn employee_value(e: &Employee, field: &str) -> serde_json::Value {
    match field {
        "name" => e.name.clone().into(),
        "status" => e.status.clone().into(),
        other => e
            .fields
            .get(other)
            .cloned()
            .map_or(serde_json::Value::Null, Into::into),
    }
}

/// One `[field, op, value]` filter (the 4-element `[doctype, field, op, value]` form too).
fn filter_matches(e: &Employee, filter: &serde_json::Value) -> Result<bool, String> {
    let parts: Vec<&serde_json::Value> = filter
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let (field, op, value) = match parts.as_slice() {
        [f, o, v] => (f, o, v),
        [_, f, o, v] => (f, o, v),
        _ => return Err(format!("bad filter {filter}")),
    };
    let (Some(field), Some(op)) = (field.as_str(), op.as_str()) else {
        return Err(format!("bad filter {filter}"));
    };
    let have = employee_value(e, field);
    let set = have.as_str().is_some_and(|s| !s.is_empty());
    match (op, value.as_str()) {
        ("is", Some("set")) => Ok(set),
        ("is", Some("not set")) => Ok(!set),
        ("=", _) => Ok(have == **value),
        ("!=", _) => Ok(have != **value),
        _ => Err(format!(
            "operator {op} is not played by the contract server"
        )),
    }
}

async fn list_resource(
    State(site): State<Arc<Mutex<Site>>>,
    Path(doctype): Path<String>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let mut s = site.lock().unwrap();
    if let Some(refused) = check_auth(&s, &headers) {
        return refused;
    }
    if doctype != "Employee" {
        return frappe_error(
            StatusCode::FORBIDDEN,
            "PermissionError",
            &format!("No permission for {doctype}"),
        );
    }
    let fields: Vec<String> = match query.get("fields") {
        None => vec!["name".into()],
        Some(f) => match serde_json::from_str(f) {
            Ok(f) => f,
            Err(_) => {
                return frappe_error(
                    StatusCode::EXPECTATION_FAILED,
                    "ValidationError",
                    "fields must be a JSON list",
                )
            }
        },
    };
    let filters: Vec<serde_json::Value> = match query.get("filters") {
        None => Vec::new(),
        Some(f) => match serde_json::from_str(f) {
            Ok(f) => f,
            Err(_) => {
                return frappe_error(
                    StatusCode::EXPECTATION_FAILED,
                    "ValidationError",
                    "filters must be JSON",
                )
            }
        },
    };
    let start: usize = query
        .get("limit_start")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let page: usize = query
        .get("limit_page_length")
        .or(query.get("limit"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    s.employee_pages.push((start, page));
    let mut rows = Vec::new();
    let mut employees: Vec<&Employee> = s.employees.iter().collect();
    employees.sort_by(|a, b| a.name.cmp(&b.name));
    for e in employees {
        let mut keep = true;
        for f in &filters {
            match filter_matches(e, f) {
                Ok(m) => keep &= m,
                Err(why) => {
                    return frappe_error(StatusCode::EXPECTATION_FAILED, "ValidationError", &why)
                }
            }
        }
        if keep {
            let row: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .map(|f| (f.clone(), employee_value(e, f)))
                .collect();
            rows.push(serde_json::Value::Object(row));
        }
    }
    let rows: Vec<_> = rows
        .into_iter()
        .skip(start)
        .take(if page == 0 { usize::MAX } else { page })
        .collect();
    axum::Json(serde_json::json!({ "data": rows })).into_response()
}

fn shift_type_doc(name: &str, last_sync: &Option<String>) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "doctype": "Shift Type",
        "start_time": "09:00:00",
        "end_time": "18:00:00",
        "enable_auto_attendance": 1,
        "last_sync_of_checkin": last_sync,
    })
}

async fn get_resource(
    State(site): State<Arc<Mutex<Site>>>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let s = site.lock().unwrap();
    if let Some(refused) = check_auth(&s, &headers) {
        return refused;
    }
    if doctype == "System Settings" && name == "System Settings" {
        if let Some(zone) = &s.system_time_zone {
            return axum::Json(serde_json::json!({ "data": {
                "name": "System Settings", "doctype": "System Settings", "time_zone": zone,
            }}))
            .into_response();
        }
    }
    if doctype == "Employee Checkin" {
        return match s.checkins.iter().find(|c| c.name == name) {
            Some(c) => axum::Json(serde_json::json!({ "data": {
                "name": c.name,
                "doctype": "Employee Checkin",
                "employee": c.employee,
                "time": c.time,
                "log_type": c.log_type,
                "device_id": c.device_id,
                "attendance": s.attendance_links.get(&c.name),
            }}))
            .into_response(),
            None => frappe_error(
                StatusCode::NOT_FOUND,
                "DoesNotExistError",
                &format!("Employee Checkin {name} not found"),
            ),
        };
    }
    if doctype != "Shift Type" {
        return frappe_error(
            StatusCode::FORBIDDEN,
            "PermissionError",
            &format!("No permission for {doctype}"),
        );
    }
    match s.shift_types.get(&name) {
        Some(last) => {
            axum::Json(serde_json::json!({ "data": shift_type_doc(&name, last) })).into_response()
        }
        None => frappe_error(
            StatusCode::NOT_FOUND,
            "DoesNotExistError",
            &format!("Shift Type {name} not found"),
        ),
    }
}

async fn put_resource(
    State(site): State<Arc<Mutex<Site>>>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut s = site.lock().unwrap();
    if let Some(refused) = check_auth(&s, &headers) {
        return refused;
    }
    if doctype != "Shift Type" {
        return frappe_error(
            StatusCode::FORBIDDEN,
            "PermissionError",
            &format!("No permission for {doctype}"),
        );
    }
    if !s.shift_types.contains_key(&name) {
        return frappe_error(
            StatusCode::NOT_FOUND,
            "DoesNotExistError",
            &format!("Shift Type {name} not found"),
        );
    }
    let p = params(&headers, &body);
    if let Some(value) = p.get("last_sync_of_checkin") {
        let Some(value) = value.as_deref().and_then(naive_time) else {
            return frappe_error(
                StatusCode::EXPECTATION_FAILED,
                "ValidationError",
                &format!("Last Sync of Checkin {value:?} is not a Datetime"),
            );
        };
        s.shift_types.insert(name.clone(), Some(value.clone()));
        s.shift_type_writes.push((name.clone(), value));
    }
    let last = s.shift_types.get(&name).cloned().flatten();
    axum::Json(serde_json::json!({ "data": shift_type_doc(&name, &last) })).into_response()
}

async fn delete_resource(
    State(site): State<Arc<Mutex<Site>>>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut s = site.lock().unwrap();
    if let Some(refused) = check_auth(&s, &headers) {
        return refused;
    }
    if doctype != "Employee Checkin" {
        return frappe_error(
            StatusCode::FORBIDDEN,
            "PermissionError",
            &format!("No permission for {doctype}"),
        );
    }
    let Some(idx) = s.checkins.iter().position(|c| c.name == name) else {
        return frappe_error(
            StatusCode::NOT_FOUND,
            "DoesNotExistError",
            &format!("Employee Checkin {name} not found"),
        );
    };
    s.checkins.remove(idx);
    s.deleted.push(name);
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "data": "ok" })),
    )
        .into_response()
}
