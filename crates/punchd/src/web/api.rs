//! The JSON API, `/api/v1`, documented as OpenAPI at `/api/v1/openapi.json` ([`document`]). Every route needs
//! an API token (`Authorization: Bearer <token>`, created with `punchd token create NAME --scope …`) of the
//! route's scope: `read` for every `GET`, `hr` to change attendance, `operate` to queue or cancel commands and approve or block devices,
//! `admin` to create, change or delete devices. Errors are always `{"error": "…"}` ([`super::error`]).
//!
//! Adding an area: write `web/<area>.rs` with its handlers, a `routes()` that wraps each group in
//! [`auth::scoped`](super::auth::scoped), and a `#[derive(OpenApi)]` document whose paths declare the same scope
//! (`security(("bearer" = ["read"]))`); then add one `.merge(…)` line in [`routes`] and one in [`document`].

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Extension, Json, Router};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

use super::auth::{require_token, scoped, scoped_by_method, Caller};
use super::error::{ApiError, Error};
use crate::app::App;
use crate::domain::{Approval, Command, CommandKind, CommandStatus, Device, DeviceSn, Pin, Scope};
use crate::format::NamedPunch;
use crate::store::operations::{CancelError, JournalSummary};
use crate::store::{
    CommandFilter, DevicePatch, DeviceUser, JournalEntry, JournalFilter, PunchFilter, Template,
    TimeBound,
};

/// Parse a time filter given by a person or program:
/// - RFC 3339 with an offset (`2026-11-20T08:00:00Z`, `…+05:30`): an instant, compared with the UTC time;
/// - `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DD`: terminal local wall time (midnight for a
///   bare date), compared with the time the terminal recorded.
pub fn parse_time_bound(s: &str) -> Result<TimeBound, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(TimeBound::Utc(t.with_timezone(&Utc)));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(TimeBound::Local(t));
        }
    }
    if let Some(t) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(TimeBound::Local(t));
    }
    Err(format!(
        "time {s:?} is not RFC 3339 (2026-11-20T08:00:00Z) or a terminal local time (2026-11-20 08:00:00 or 2026-11-20)"
    ))
}

/// Read an instant given for a UTC field (journal arrival times): RFC 3339, or `YYYY-MM-DD[ HH:MM[:SS]]` read
/// as UTC.
pub fn parse_utc(s: &str) -> Result<DateTime<Utc>, String> {
    Ok(match parse_time_bound(s)? {
        TimeBound::Utc(t) => t,
        TimeBound::Local(t) => t.and_utc(),
    })
}

fn parse_sn(sn: &str) -> Result<DeviceSn, Error> {
    DeviceSn::parse(sn).map_err(|e| Error::BadRequest(format!("invalid SN: {e}")))
}

/// The largest page of a JSON listing (`limit`); more is refused with 400, and so is 0.
pub const MAX_PAGE: usize = 10_000;
/// The page size of a JSON listing when `limit` is absent.
pub const DEFAULT_PAGE: usize = 1000;
/// Rows read from the store per step while a CSV export streams.
const CSV_STEP: usize = 1000;

/// The page size asked for: absent → [`DEFAULT_PAGE`]; 0 or more than [`MAX_PAGE`] → 400 (never clamped in
/// silence).
fn page_limit(limit: Option<usize>) -> Result<usize, Error> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(Error::BadRequest(format!(
            "limit {n} is outside 1–{MAX_PAGE}; page with `after` (the `next_after` of the previous page)"
        ))),
    }
}

/// The API routes, each group behind its scope, all behind the token check; the OpenAPI document is public.
pub fn routes(app: App) -> axum::Router<App> {
    let read = Router::new()
        .route("/devices", get(list_devices))
        .route("/devices/{sn}", get(get_device))
        .route("/devices/{sn}/users", get(list_users))
        .route("/devices/{sn}/templates", get(list_templates))
        .route("/devices/{sn}/commands", get(list_device_commands))
        .route("/punches", get(list_punches))
        .route("/commands", get(list_commands))
        .route("/commands/{id}", get(get_command))
        .route("/journal", get(list_journal))
        .route("/journal/{id}", get(get_journal));
    let operate = Router::new()
        .route("/devices/{sn}/approve", post(approve_device))
        .route("/devices/{sn}/block", post(block_device))
        .route("/devices/{sn}/commands", post(enqueue_command))
        .route("/commands/{id}/cancel", post(cancel_command));
    let admin = Router::new().route("/devices", post(create_device)).route(
        "/devices/{sn}",
        axum::routing::patch(update_device).delete(delete_device),
    );
    Router::new()
        .merge(scoped(Scope::Read, read))
        .merge(scoped(Scope::Operate, operate))
        .merge(scoped(Scope::Admin, admin))
        .merge(scoped(Scope::Read, super::push_api::routes()))
        .merge(super::sinks::routes())
        .merge(scoped_by_method(
            Scope::Read,
            Scope::Hr,
            super::attendance::routes(),
        ))
        // Areas: `.merge(super::<area>::routes())` here, above the token layer (their groups already scoped).
        .route_layer(middleware::from_fn_with_state(app, require_token))
        .route("/openapi.json", get(openapi))
}

/// The API's own paths (see [`document`] for the whole document).
#[derive(OpenApi)]
#[openapi(
    info(title = "punchd", description = "Attendance hub for biometric terminals: devices, punches, commands, the raw journal.\n\n\
        Every `/api/v1` route needs `Authorization: Bearer <token>` (`punchd token create NAME --scope read|hr|operate|admin`). \
        Scopes include the lower ones: `read` (every GET), `hr` (change attendance: employees, mapping, shifts, policy, review, sign-off), `operate` (queue and cancel commands, approve and block devices), \
        `admin` (create, change and delete devices). Each operation lists the scope it needs under `security`. \
        Errors are `{\"error\": \"...\"}`: 401 without a valid token, 403 when its scope is too low."),
    paths(
        list_devices, create_device, get_device, update_device, delete_device, approve_device, block_device,
        list_users, list_templates, enqueue_command, list_device_commands, list_punches, list_commands,
        get_command, cancel_command, list_journal, get_journal, healthz_doc, metrics_doc, openapi_doc
    ),
    components(schemas(
        Device, NamedPunch, Command, CommandKind, CommandStatus, Approval, DevicePatch, DeviceUser, Template,
        JournalEntry, JournalSummary, JournalPage, PunchPage, NewPullDevice, DeletedDevice, ApiError, Scope,
        crate::store::LineIssue, crate::domain::Transport
    )),
    nest((path = "/api/v1", api = super::attendance::AttendanceDoc)),
    modifiers(&BearerAuth, &ErrorResponses),
)]
pub struct ApiDoc;

/// The whole OpenAPI document served at `/api/v1/openapi.json`: [`ApiDoc`] and every area's document (one
/// `merge` line each).
pub fn document() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::SecurityRequirement;
    let doc = ApiDoc::openapi();
    // Areas: doc.merge(super::<area>::Doc::openapi());
    let mut doc = doc;
    doc.merge(super::push_api::PushApi::openapi());
    doc.merge(super::seed::SeedApi::openapi());
    doc.merge(super::sinks::SinksDoc::openapi());
    doc.merge(super::sources::SourcesDoc::openapi());
    doc.merge(super::agent_api::AgentDoc::openapi());
    // Attendance routes read with scope `read` and change with `hr` (api::routes, scoped_by_method).
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/api/v1/attendance/") {
            continue;
        }
        let scope = |s: &str| Some(vec![SecurityRequirement::new("bearer", [s])]);
        if let Some(op) = item.get.as_mut() {
            op.security = scope("read");
        }
        for op in [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            op.security = scope("hr");
        }
    }
    ErrorResponses::apply(&mut doc);
    doc
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`pd_…`). The role names listed in an operation's security \
                         requirement are the token scope it needs: read < hr < operate < admin.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Gives every error response the [`ApiError`] body, every operation that needs a token its 401, 403 and 400
/// (a parameter or body that cannot be read) responses, and every operation with a body its 415.
struct ErrorResponses;

impl ErrorResponses {
    fn apply(openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ApiError")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let secured = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().any(|r| *r != Default::default()));
                if op.request_body.is_some() {
                    op.responses
                        .responses
                        .entry("415".to_owned())
                        .or_insert_with(|| {
                            error("The body is not `Content-Type: application/json`")
                        });
                }
                if secured {
                    for (status, text) in [
                        (
                            "400",
                            "The request cannot be read (a parameter or body is invalid)",
                        ),
                        ("401", "Missing or invalid API token"),
                        ("403", "The token's scope is too low for this operation"),
                    ] {
                        op.responses
                            .responses
                            .entry(status.to_owned())
                            .or_insert_with(|| error(text));
                    }
                }
                for (status, response) in op.responses.responses.iter_mut() {
                    if !status.starts_with('4') && !status.starts_with('5') {
                        continue;
                    }
                    if let RefOr::T(r) = response {
                        if r.content.is_empty() {
                            let description = r.description.clone();
                            *response = error(&description);
                        }
                    }
                }
            }
        }
    }
}

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        ErrorResponses::apply(openapi);
    }
}

async fn openapi() -> impl IntoResponse {
    Json(document())
}

/// Liveness and storage: `ok` when the store answers, 503 otherwise. No token.
#[utoipa::path(get, path = "/healthz", security(()), responses(
    (status = 200, description = "The server and its store answer", body = String, content_type = "text/plain"),
    (status = 503, description = "The store does not answer", body = String, content_type = "text/plain")))]
#[allow(dead_code)]
fn healthz_doc() {}

/// Prometheus metrics (OpenMetrics text). No token.
#[utoipa::path(get, path = "/metrics", security(()), responses(
    (status = 200, description = "Counters and gauges", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
#[allow(dead_code)]
fn metrics_doc() {}

/// This document. No token.
#[utoipa::path(get, path = "/api/v1/openapi.json", security(()), responses(
    (status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
#[allow(dead_code)]
fn openapi_doc() {}

/// All registered devices, by SN.
#[utoipa::path(get, path = "/api/v1/devices", security(("bearer" = ["read"])),
    responses((status = 200, description = "Devices", body = [Device])))]
async fn list_devices(State(app): State<App>) -> Result<Json<Vec<Device>>, Error> {
    Ok(Json(app.store.list_devices().await?))
}

/// A pull terminal to register.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPullDevice {
    /// Serial number as the terminal reports it.
    sn: String,
    /// `host` or `host:port` (4370 by default), port 1–65535.
    address: String,
    /// tcp (default) or udp.
    #[serde(default)]
    transport: Option<crate::domain::Transport>,
    /// Comm key (0 = none).
    #[serde(default)]
    comm_key: u32,
    /// Seconds between pulls, at most 604800 (a week); 0 keeps a live connection. Default 300.
    #[serde(default)]
    pull_interval_secs: Option<u32>,
    /// Clear the terminal's attendance log after a verified complete pull.
    #[serde(default)]
    clear_after_pull: bool,
    /// Safe clear: clear the attendance log only once every sink has delivered or parked every punch of this
    /// terminal (default true).
    #[serde(default)]
    safe_clear: Option<bool>,
    /// IANA zone of the terminal's clock.
    #[serde(default)]
    time_zone: Option<String>,
    /// A name people recognise.
    #[serde(default)]
    alias: Option<String>,
    /// Site.
    #[serde(default)]
    site: Option<String>,
}

/// Register a pull terminal; `punchd serve` pulls it on its schedule.
#[utoipa::path(post, path = "/api/v1/devices", request_body = NewPullDevice, security(("bearer" = ["admin"])),
    responses((status = 201, description = "Registered", body = Device),
        (status = 400, description = "Invalid settings"), (status = 409, description = "The SN is registered")))]
async fn create_device(
    State(app): State<App>,
    Json(body): Json<NewPullDevice>,
) -> Result<(StatusCode, Json<Device>), Error> {
    use crate::devices::settings;
    let transport = body.transport.unwrap_or(crate::domain::Transport::Tcp);
    if transport == crate::domain::Transport::Push {
        return Err(Error::BadRequest(
            "push terminals register themselves on first contact; create only tcp or udp devices"
                .into(),
        ));
    }
    if let Some(zone) = &body.time_zone {
        settings::check_time_zone(zone).map_err(Error::BadRequest)?;
    }
    let address = settings::check_address(&body.address).map_err(Error::BadRequest)?;
    let interval = settings::check_pull_interval(body.pull_interval_secs.unwrap_or(300))
        .map_err(Error::BadRequest)?;
    let device = crate::devices::registry::new_pull_device(
        parse_sn(&body.sn)?,
        transport,
        address,
        body.comm_key,
        interval,
        body.clear_after_pull,
        Utc::now(),
    );
    let device = app
        .store
        .create_device(Device {
            time_zone: body.time_zone,
            alias: body.alias,
            site: body.site,
            safe_clear: body.safe_clear.unwrap_or(true),
            ..device
        })
        .await?;
    app.registry.update(device.clone());
    Ok((StatusCode::CREATED, Json(device)))
}

/// One device.
#[utoipa::path(get, path = "/api/v1/devices/{sn}", params(("sn" = String, Path, description = "serial number")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The device", body = Device), (status = 404, description = "No such device")))]
async fn get_device(State(app): State<App>, Path(sn): Path<String>) -> Result<Json<Device>, Error> {
    Ok(Json(app.store.get_device(&parse_sn(&sn)?).await?))
}

async fn patch(app: &App, sn: &DeviceSn, patch: DevicePatch) -> Result<Device, Error> {
    let device = app.store.get_device(sn).await?;
    crate::devices::settings::check_patch(&device, &patch).map_err(Error::BadRequest)?;
    let device = app.store.update_device(sn, patch).await?;
    app.registry.update(device.clone());
    Ok(device)
}

/// Change a device's settings (approval, alias, site, time zone, poll delay, pull settings, safe clear). Absent fields are
/// left as they are; `null` clears; an unknown field is refused (400).
#[utoipa::path(patch, path = "/api/v1/devices/{sn}", params(("sn" = String, Path, description = "serial number")),
    request_body = DevicePatch, security(("bearer" = ["admin"])),
    responses((status = 200, description = "The device as changed", body = Device),
        (status = 400, description = "Invalid or unknown field"), (status = 404, description = "No such device")))]
async fn update_device(
    State(app): State<App>,
    Path(sn): Path<String>,
    Json(body): Json<DevicePatch>,
) -> Result<Json<Device>, Error> {
    Ok(Json(patch(&app, &parse_sn(&sn)?, body).await?))
}

/// What removing a device did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct DeletedDevice {
    /// The device removed.
    sn: String,
    /// Its punches, kept (with its journal entries, users, templates and command history).
    punches_kept: u64,
}

/// Remove a device: its registration, settings and stamps go, its queued commands are cancelled. Its punches,
/// journal entries, users, templates and command history are KEPT. A terminal that contacts punchd again
/// registers anew (pending under manual approval).
#[utoipa::path(delete, path = "/api/v1/devices/{sn}", params(("sn" = String, Path, description = "serial number")),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "Removed", body = DeletedDevice), (status = 404, description = "No such device")))]
async fn delete_device(
    State(app): State<App>,
    Path(sn): Path<String>,
) -> Result<Json<DeletedDevice>, Error> {
    let sn = parse_sn(&sn)?;
    app.store.delete_device(&sn, Utc::now()).await?;
    app.registry.remove(&sn);
    let punches_kept = app
        .store
        .count_punches(&PunchFilter {
            device_sn: Some(sn.clone()),
            ..PunchFilter::default()
        })
        .await?;
    tracing::info!(sn = %sn, punches_kept, "device removed through the API");
    Ok(Json(DeletedDevice {
        sn: sn.to_string(),
        punches_kept,
    }))
}

/// Approve a device: its data is stored and acknowledged from its next request on.
#[utoipa::path(post, path = "/api/v1/devices/{sn}/approve", params(("sn" = String, Path, description = "serial number")),
    security(("bearer" = ["operate"])),
    responses((status = 200, description = "The device", body = Device), (status = 404, description = "No such device")))]
async fn approve_device(
    State(app): State<App>,
    Path(sn): Path<String>,
) -> Result<Json<Device>, Error> {
    let body = DevicePatch {
        approval: Some(Approval::Approved),
        ..DevicePatch::default()
    };
    let device = patch(&app, &parse_sn(&sn)?, body).await?;
    crate::devices::push_auth::on_approve(app.store.as_ref(), &device, Utc::now()).await?;
    app.push_guard.forget(&device.sn);
    Ok(Json(device))
}

/// Block a device: it is answered `UNKNOWN DEVICE` and keeps its data.
#[utoipa::path(post, path = "/api/v1/devices/{sn}/block", params(("sn" = String, Path, description = "serial number")),
    security(("bearer" = ["operate"])),
    responses((status = 200, description = "The device", body = Device), (status = 404, description = "No such device")))]
async fn block_device(
    State(app): State<App>,
    Path(sn): Path<String>,
) -> Result<Json<Device>, Error> {
    let body = DevicePatch {
        approval: Some(Approval::Blocked),
        ..DevicePatch::default()
    };
    Ok(Json(patch(&app, &parse_sn(&sn)?, body).await?))
}

/// Users the device reported (OPERLOG `USER` lines or pull reads).
#[utoipa::path(get, path = "/api/v1/devices/{sn}/users", params(("sn" = String, Path, description = "serial number")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Users by PIN", body = [DeviceUser]), (status = 404, description = "No such device")))]
async fn list_users(
    State(app): State<App>,
    Path(sn): Path<String>,
) -> Result<Json<Vec<DeviceUser>>, Error> {
    let sn = parse_sn(&sn)?;
    app.store.get_device(&sn).await?;
    Ok(Json(app.store.list_device_users(&sn).await?))
}

/// Template filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TemplateQuery {
    /// Only this PIN.
    pin: Option<String>,
}

/// Biometric templates the device reported.
#[utoipa::path(get, path = "/api/v1/devices/{sn}/templates",
    params(("sn" = String, Path, description = "serial number"), TemplateQuery), security(("bearer" = ["read"])),
    responses((status = 200, description = "Templates", body = [Template]), (status = 404, description = "No such device")))]
async fn list_templates(
    State(app): State<App>,
    Path(sn): Path<String>,
    Query(q): Query<TemplateQuery>,
) -> Result<Json<Vec<Template>>, Error> {
    let sn = parse_sn(&sn)?;
    app.store.get_device(&sn).await?;
    let pin = q.pin.map(Pin);
    Ok(Json(app.store.list_templates(&sn, pin.as_ref()).await?))
}

/// Queue a command for a device. The body is a command kind, e.g. `{"type": "reboot"}` or
/// `{"type": "upsert_user", "pin": "42", "name": "Ann"}`. Answers the queued commands (more than one when the
/// command expands: `enable_user` restores the user's templates too).
#[utoipa::path(post, path = "/api/v1/devices/{sn}/commands", params(("sn" = String, Path, description = "serial number")),
    request_body = CommandKind, security(("bearer" = ["operate"])),
    responses((status = 201, description = "Queued", body = [Command]), (status = 400, description = "Invalid command"),
        (status = 404, description = "No such device")))]
async fn enqueue_command(
    State(app): State<App>,
    Path(sn): Path<String>,
    caller: Option<Extension<Caller>>,
    Json(kind): Json<CommandKind>,
) -> Result<(StatusCode, Json<Vec<Command>>), Error> {
    let queued = app
        .commands
        .enqueue(&parse_sn(&sn)?, kind, &requested_by(caller), Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(queued)))
}

fn requested_by(caller: Option<Extension<Caller>>) -> String {
    caller.map_or_else(
        || "api".to_owned(),
        |Extension(caller)| format!("api:{}", caller.name),
    )
}

/// Cancel a queued command. Only a `queued` command can be cancelled: once `sent` the terminal may already have
/// run it, so 409 says so (and so for a finished one).
#[utoipa::path(post, path = "/api/v1/commands/{id}/cancel", params(("id" = i64, Path, description = "command id")),
    security(("bearer" = ["operate"])),
    responses((status = 200, description = "Cancelled", body = Command), (status = 404, description = "No such command"),
        (status = 409, description = "Not queued (sent or finished)")))]
async fn cancel_command(
    State(app): State<App>,
    Path(id): Path<i64>,
    caller: Option<Extension<Caller>>,
) -> Result<Json<Command>, Error> {
    match app
        .store
        .cancel_command(id, &requested_by(caller), Utc::now())
        .await
    {
        Ok(command) => Ok(Json(command)),
        Err(e @ CancelError::NotQueued(_)) => Err(Error::Conflict(e.to_string())),
        Err(CancelError::Store(e)) => Err(e.into()),
    }
}

/// Command list filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CommandQuery {
    /// Only this device.
    device: Option<String>,
    /// Only this status (queued, sent, succeeded, failed, expired, cancelled).
    status: Option<CommandStatus>,
    /// At most this many, 1–10000 (default 100).
    limit: Option<usize>,
}

async fn commands(
    app: &App,
    device: Option<DeviceSn>,
    q: CommandQuery,
) -> Result<Vec<Command>, Error> {
    let limit = match q.limit {
        None => 100,
        some => page_limit(some)?,
    };
    Ok(app
        .store
        .list_commands(&CommandFilter {
            device_sn: device,
            status: q.status,
            limit,
        })
        .await?)
}

/// A device's command history, newest first.
#[utoipa::path(get, path = "/api/v1/devices/{sn}/commands",
    params(("sn" = String, Path, description = "serial number"), CommandQuery), security(("bearer" = ["read"])),
    responses((status = 200, description = "Commands", body = [Command])))]
async fn list_device_commands(
    State(app): State<App>,
    Path(sn): Path<String>,
    Query(q): Query<CommandQuery>,
) -> Result<Json<Vec<Command>>, Error> {
    Ok(Json(commands(&app, Some(parse_sn(&sn)?), q).await?))
}

/// Commands, newest first.
#[utoipa::path(get, path = "/api/v1/commands", params(CommandQuery), security(("bearer" = ["read"])),
    responses((status = 200, description = "Commands", body = [Command])))]
async fn list_commands(
    State(app): State<App>,
    Query(q): Query<CommandQuery>,
) -> Result<Json<Vec<Command>>, Error> {
    let device = q.device.as_deref().map(parse_sn).transpose()?;
    Ok(Json(commands(&app, device, q).await?))
}

/// One command, with its result.
#[utoipa::path(get, path = "/api/v1/commands/{id}", params(("id" = i64, Path, description = "command id")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The command", body = Command), (status = 404, description = "No such command")))]
async fn get_command(State(app): State<App>, Path(id): Path<i64>) -> Result<Json<Command>, Error> {
    Ok(Json(app.store.get_command(id).await?))
}

/// How punches are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum ExportFormat {
    /// A JSON page ([`PunchPage`]).
    #[default]
    Json,
    /// CSV with a header row, the whole range streamed.
    Csv,
}

/// Punch filter. `from` is inclusive, `to` exclusive; see [`parse_time_bound`] for the time forms.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PunchQuery {
    /// Only this device (SN).
    device: Option<String>,
    /// Only this PIN.
    pin: Option<String>,
    /// From: RFC 3339 instant, or terminal local `YYYY-MM-DD[ HH:MM:SS]`.
    from: Option<String>,
    /// To (exclusive), same forms.
    to: Option<String>,
    /// Only punches with an id greater than this (the `next_after` of the previous page).
    after: Option<i64>,
    /// JSON: page size, 1–10000 (default 1000); 0 or more is refused with 400. CSV: at most this many rows in
    /// all (default: every punch of the range).
    #[param(minimum = 1)]
    limit: Option<usize>,
    /// json (default, one page) or csv (the whole range, streamed).
    #[param(inline)]
    format: Option<ExportFormat>,
}

/// A page of punches.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PunchPage {
    /// The punches, by id.
    punches: Vec<NamedPunch>,
    /// Pass as `after` to get the next page; absent (null) on the last page.
    next_after: Option<i64>,
    /// The page size applied.
    limit: usize,
}

/// Punches, by id (the order they were stored), filtered. JSON answers one page (`limit`, `next_after`);
/// `format=csv` streams every punch of the range as CSV (read from the store 1000 at a time; memory stays
/// bounded whatever the range), with the columns of `punchd punches --format csv`.
#[utoipa::path(get, path = "/api/v1/punches", params(PunchQuery), security(("bearer" = ["read"])),
    responses((status = 200, description = "A page of punches (JSON), or every punch of the range (CSV)",
        content((PunchPage = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Invalid filter or limit")))]
async fn list_punches(
    State(app): State<App>,
    Query(q): Query<PunchQuery>,
) -> Result<Response, Error> {
    let format = q.format.unwrap_or_default();
    let mut filter = PunchFilter {
        device_sn: q.device.as_deref().map(parse_sn).transpose()?,
        pin: q.pin.map(Pin),
        from: q
            .from
            .as_deref()
            .map(parse_time_bound)
            .transpose()
            .map_err(Error::BadRequest)?,
        to: q
            .to
            .as_deref()
            .map(parse_time_bound)
            .transpose()
            .map_err(Error::BadRequest)?,
        after_id: q.after,
        limit: 0,
    };
    match format {
        ExportFormat::Json => {
            let limit = page_limit(q.limit)?;
            filter.limit = limit;
            let punches = app.store.list_punches(&filter).await?;
            let next_after = if punches.len() == limit {
                punches.last().map(|p| p.id)
            } else {
                None
            };
            Ok(Json(PunchPage {
                punches: punches.into_iter().map(NamedPunch::from).collect(),
                next_after,
                limit,
            })
            .into_response())
        }
        ExportFormat::Csv => {
            let cap = match q.limit {
                Some(0) => {
                    return Err(Error::BadRequest(
                        "limit 0: give at least 1, or leave it out for every punch".into(),
                    ))
                }
                other => other,
            };
            stream_csv(app, filter, cap).await
        }
    }
}

/// Stream the punches of `filter` as CSV, [`CSV_STEP`] rows read per step, at most `cap` rows. The first step
/// is read before answering, so a store that is down answers 503; a failure later cuts the body off (the
/// client sees an incomplete chunked body, never a short file that looks whole).
async fn stream_csv(
    app: App,
    mut filter: PunchFilter,
    cap: Option<usize>,
) -> Result<Response, Error> {
    use bytes::Bytes;
    filter.limit = cap.map_or(CSV_STEP, |c| c.min(CSV_STEP));
    let first = app.store.list_punches(&filter).await?;
    let mut head = Vec::new();
    crate::format::write_punch_csv(&first, true, &mut head)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let store = app.store.clone();
    tokio::spawn(async move {
        let mut sent = first.len();
        let mut last = first.last().map(|p| p.id);
        let mut full = first.len() == filter.limit;
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        while full && cap.is_none_or(|c| sent < c) {
            filter.after_id = last;
            filter.limit = cap.map_or(CSV_STEP, |c| (c - sent).min(CSV_STEP));
            let page = match store.list_punches(&filter).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "CSV export cut off: the store failed");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            full = page.len() == filter.limit;
            sent += page.len();
            last = page.last().map(|p| p.id);
            let mut chunk = Vec::new();
            if let Err(e) = crate::format::write_punch_csv(&page, false, &mut chunk) {
                let _ = tx.send(Err(e)).await;
                return;
            }
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return; // the client went away
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Journal filter. Times are arrival times (UTC): RFC 3339, or `YYYY-MM-DD[ HH:MM[:SS]]` read as UTC; `from`
/// inclusive, `to` exclusive.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct JournalQuery {
    /// Only this device (SN).
    device: Option<String>,
    /// Only this kind (`ATTLOG`, `OPERLOG`, `devicecmd`, `pull:attendance`, …).
    kind: Option<String>,
    /// true: only entries with lines that could not be read; false: only entries without.
    has_errors: Option<bool>,
    /// Arrived at or after.
    from: Option<String>,
    /// Arrived before.
    to: Option<String>,
    /// Only entries with an id greater than this (the `next_after` of the previous page).
    after: Option<i64>,
    /// Page size, 1–10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

/// A page of journal entries (without bodies: `GET /api/v1/journal/{id}` has the body).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct JournalPage {
    /// Entries, by id.
    entries: Vec<JournalSummary>,
    /// Pass as `after` to get the next page; absent (null) on the last page.
    next_after: Option<i64>,
    /// The page size applied.
    limit: usize,
}

/// Raw journal entries, by id, filtered and paginated: find the requests whose lines could not be read
/// (`has_errors=true`); log lines name the `journal_id`.
#[utoipa::path(get, path = "/api/v1/journal", params(JournalQuery), security(("bearer" = ["read"])),
    responses((status = 200, description = "A page of entries", body = JournalPage),
        (status = 400, description = "Invalid filter or limit")))]
async fn list_journal(
    State(app): State<App>,
    Query(q): Query<JournalQuery>,
) -> Result<Json<JournalPage>, Error> {
    let limit = page_limit(q.limit)?;
    let time = |s: &Option<String>| {
        s.as_deref()
            .map(parse_utc)
            .transpose()
            .map_err(Error::BadRequest)
    };
    let filter = JournalFilter {
        device_sn: q.device.as_deref().map(parse_sn).transpose()?,
        kind: q.kind,
        has_errors: q.has_errors,
        from: time(&q.from)?,
        to: time(&q.to)?,
        after_id: q.after,
        limit,
    };
    let entries = app.store.list_journal(&filter).await?;
    let next_after = if entries.len() == limit {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(JournalPage {
        entries,
        next_after,
        limit,
    }))
}

/// A raw journal entry: what arrived, when, and what became of it (the body is base64 in `body_base64`).
#[utoipa::path(get, path = "/api/v1/journal/{id}", params(("id" = i64, Path, description = "journal id")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The entry", body = JournalEntry), (status = 404, description = "No such entry")))]
async fn get_journal(
    State(app): State<App>,
    Path(id): Path<i64>,
) -> Result<Json<JournalEntry>, Error> {
    Ok(Json(app.store.get_journal(id).await?))
}
