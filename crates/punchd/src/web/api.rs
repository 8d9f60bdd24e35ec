//! The JSON API, `/api/v1`, documented as OpenAPI at `/api/v1/openapi.json`. Every route needs an API token
//! (`Authorization: Bearer <token>`, created with `punchd token create`).

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Extension, Json, Router};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

use super::auth::{require_token, TokenName};
use super::error::Error;
use crate::app::App;
use crate::domain::{Approval, Command, CommandKind, CommandStatus, Device, DeviceSn, Pin, Punch};
use crate::format::Format;
use crate::store::{
    CommandFilter, DevicePatch, DeviceUser, JournalEntry, PunchFilter, Template, TimeBound,
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

fn parse_sn(sn: &str) -> Result<DeviceSn, Error> {
    DeviceSn::parse(sn).map_err(|e| Error::BadRequest(format!("invalid SN: {e}")))
}

/// The API routes, behind the token check.
pub fn routes(app: App) -> axum::Router<App> {
    Router::new()
        .route("/devices", get(list_devices).post(create_device))
        .route("/devices/{sn}", get(get_device).patch(update_device))
        .route("/devices/{sn}/approve", post(approve_device))
        .route("/devices/{sn}/block", post(block_device))
        .route("/devices/{sn}/users", get(list_users))
        .route("/devices/{sn}/templates", get(list_templates))
        .route(
            "/devices/{sn}/commands",
            post(enqueue_command).get(list_device_commands),
        )
        .route("/punches", get(list_punches))
        .route("/commands", get(list_commands))
        .route("/commands/{id}", get(get_command))
        .route("/journal/{id}", get(get_journal))
        .merge(super::push_api::routes())
        .route_layer(middleware::from_fn_with_state(app, require_token))
        .route("/openapi.json", get(openapi))
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "punchd", description = "Attendance hub for biometric terminals: devices, punches, commands."),
    paths(
        list_devices, create_device, get_device, update_device, approve_device, block_device, list_users, list_templates,
        enqueue_command, list_device_commands, list_punches, list_commands, get_command, get_journal
    ),
    components(schemas(
        Device, Punch, Command, CommandKind, CommandStatus, Approval, DevicePatch, DeviceUser, Template,
        JournalEntry, PunchPage, NewPullDevice, crate::store::LineIssue, crate::domain::Transport
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

async fn openapi() -> impl IntoResponse {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::push_api::PushApi::openapi());
    doc.merge(super::seed::SeedApi::openapi());
    Json(doc)
}

/// All registered devices, by SN.
#[utoipa::path(get, path = "/api/v1/devices", responses((status = 200, body = [Device])))]
async fn list_devices(State(app): State<App>) -> Result<Json<Vec<Device>>, Error> {
    Ok(Json(app.store.list_devices().await?))
}

/// A pull terminal to register.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct NewPullDevice {
    /// Serial number as the terminal reports it.
    sn: String,
    /// `host` or `host:port` (4370 by default).
    address: String,
    /// tcp (default) or udp.
    #[serde(default)]
    transport: Option<crate::domain::Transport>,
    /// Comm key (0 = none).
    #[serde(default)]
    comm_key: u32,
    /// Seconds between pulls; 0 keeps a live connection. Default 300.
    #[serde(default)]
    pull_interval_secs: Option<u32>,
    /// Clear the terminal's attendance log after a verified complete pull.
    #[serde(default)]
    clear_after_pull: bool,
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
#[utoipa::path(post, path = "/api/v1/devices", request_body = NewPullDevice,
    responses((status = 201, body = Device), (status = 400), (status = 409)))]
async fn create_device(
    State(app): State<App>,
    Json(body): Json<NewPullDevice>,
) -> Result<(StatusCode, Json<Device>), Error> {
    let transport = body.transport.unwrap_or(crate::domain::Transport::Tcp);
    if transport == crate::domain::Transport::Push {
        return Err(Error::BadRequest(
            "push terminals register themselves on first contact; create only tcp or udp devices"
                .into(),
        ));
    }
    if let Some(zone) = &body.time_zone {
        crate::config::parse_time_zone(zone).map_err(|e| Error::BadRequest(e.to_string()))?;
    }
    let device = crate::devices::registry::new_pull_device(
        parse_sn(&body.sn)?,
        transport,
        body.address,
        body.comm_key,
        body.pull_interval_secs.unwrap_or(300),
        body.clear_after_pull,
        Utc::now(),
    );
    let device = app
        .store
        .create_device(Device {
            time_zone: body.time_zone,
            alias: body.alias,
            site: body.site,
            ..device
        })
        .await?;
    app.registry.update(device.clone());
    Ok((StatusCode::CREATED, Json(device)))
}

/// One device.
#[utoipa::path(get, path = "/api/v1/devices/{sn}", params(("sn" = String, Path, description = "serial number")),
    responses((status = 200, body = Device), (status = 404)))]
async fn get_device(State(app): State<App>, Path(sn): Path<String>) -> Result<Json<Device>, Error> {
    Ok(Json(app.store.get_device(&parse_sn(&sn)?).await?))
}

async fn patch(app: &App, sn: &DeviceSn, patch: DevicePatch) -> Result<Device, Error> {
    if let Some(Some(zone)) = &patch.time_zone {
        crate::config::parse_time_zone(zone).map_err(|e| Error::BadRequest(e.to_string()))?;
    }
    let device = app.store.update_device(sn, patch).await?;
    app.registry.update(device.clone());
    Ok(device)
}

/// Change a device's settings (approval, alias, site, time zone, poll delay, pull settings). Absent fields are
/// left as they are; `null` clears.
#[utoipa::path(patch, path = "/api/v1/devices/{sn}", params(("sn" = String, Path)), request_body = DevicePatch,
    responses((status = 200, body = Device), (status = 400), (status = 404)))]
async fn update_device(
    State(app): State<App>,
    Path(sn): Path<String>,
    Json(body): Json<DevicePatch>,
) -> Result<Json<Device>, Error> {
    Ok(Json(patch(&app, &parse_sn(&sn)?, body).await?))
}

/// Approve a device: its data is stored and acknowledged from its next request on.
#[utoipa::path(post, path = "/api/v1/devices/{sn}/approve", params(("sn" = String, Path)),
    responses((status = 200, body = Device), (status = 404)))]
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
#[utoipa::path(post, path = "/api/v1/devices/{sn}/block", params(("sn" = String, Path)),
    responses((status = 200, body = Device), (status = 404)))]
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
#[utoipa::path(get, path = "/api/v1/devices/{sn}/users", params(("sn" = String, Path)),
    responses((status = 200, body = [DeviceUser])))]
async fn list_users(
    State(app): State<App>,
    Path(sn): Path<String>,
) -> Result<Json<Vec<DeviceUser>>, Error> {
    Ok(Json(app.store.list_device_users(&parse_sn(&sn)?).await?))
}

/// Template filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct TemplateQuery {
    /// Only this PIN.
    pin: Option<String>,
}

/// Biometric templates the device reported.
#[utoipa::path(get, path = "/api/v1/devices/{sn}/templates", params(("sn" = String, Path), TemplateQuery),
    responses((status = 200, body = [Template])))]
async fn list_templates(
    State(app): State<App>,
    Path(sn): Path<String>,
    Query(q): Query<TemplateQuery>,
) -> Result<Json<Vec<Template>>, Error> {
    let pin = q.pin.map(Pin);
    Ok(Json(
        app.store
            .list_templates(&parse_sn(&sn)?, pin.as_ref())
            .await?,
    ))
}

/// Queue a command for a device. The body is a command kind, e.g. `{"type": "reboot"}` or
/// `{"type": "upsert_user", "pin": "42", "name": "Ann"}`. Answers the queued commands (more than one when the
/// command expands: `enable_user` restores the user's templates too).
#[utoipa::path(post, path = "/api/v1/devices/{sn}/commands", params(("sn" = String, Path)), request_body = CommandKind,
    responses((status = 201, body = [Command]), (status = 400), (status = 404)))]
async fn enqueue_command(
    State(app): State<App>,
    Path(sn): Path<String>,
    token: Option<Extension<TokenName>>,
    Json(kind): Json<CommandKind>,
) -> Result<(StatusCode, Json<Vec<Command>>), Error> {
    let by = token.map_or_else(
        || "api".to_owned(),
        |Extension(TokenName(name))| format!("api:{name}"),
    );
    let queued = app
        .commands
        .enqueue(&parse_sn(&sn)?, kind, &by, Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(queued)))
}

/// Command list filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct CommandQuery {
    /// Only this device.
    device: Option<String>,
    /// Only this status (queued, sent, succeeded, failed, expired).
    status: Option<CommandStatus>,
    /// At most this many (default 100).
    limit: Option<usize>,
}

async fn commands(
    app: &App,
    device: Option<DeviceSn>,
    q: CommandQuery,
) -> Result<Vec<Command>, Error> {
    Ok(app
        .store
        .list_commands(&CommandFilter {
            device_sn: device,
            status: q.status,
            limit: q.limit.unwrap_or(100),
        })
        .await?)
}

/// A device's command history, newest first.
#[utoipa::path(get, path = "/api/v1/devices/{sn}/commands", params(("sn" = String, Path), CommandQuery),
    responses((status = 200, body = [Command])))]
async fn list_device_commands(
    State(app): State<App>,
    Path(sn): Path<String>,
    Query(q): Query<CommandQuery>,
) -> Result<Json<Vec<Command>>, Error> {
    Ok(Json(commands(&app, Some(parse_sn(&sn)?), q).await?))
}

/// Commands, newest first.
#[utoipa::path(get, path = "/api/v1/commands", params(CommandQuery), responses((status = 200, body = [Command])))]
async fn list_commands(
    State(app): State<App>,
    Query(q): Query<CommandQuery>,
) -> Result<Json<Vec<Command>>, Error> {
    let device = q.device.as_deref().map(parse_sn).transpose()?;
    Ok(Json(commands(&app, device, q).await?))
}

/// One command, with its result.
#[utoipa::path(get, path = "/api/v1/commands/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = Command), (status = 404)))]
async fn get_command(State(app): State<App>, Path(id): Path<i64>) -> Result<Json<Command>, Error> {
    Ok(Json(app.store.get_command(id).await?))
}

/// Punch filter. `from` is inclusive, `to` exclusive; see [`parse_time_bound`] for the time forms.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
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
    /// Page size, 1–10000 (default 1000).
    limit: Option<usize>,
    /// json (default) or csv.
    format: Option<Format>,
}

/// A page of punches.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PunchPage {
    /// The punches, by id.
    punches: Vec<Punch>,
    /// Pass as `after` to get the next page; absent on the last page.
    next_after: Option<i64>,
}

/// Punches, by id (the order they were stored), filtered and paginated. `format=csv` answers CSV.
#[utoipa::path(get, path = "/api/v1/punches", params(PunchQuery),
    responses((status = 200, body = PunchPage), (status = 400)))]
async fn list_punches(
    State(app): State<App>,
    Query(q): Query<PunchQuery>,
) -> Result<Response, Error> {
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let filter = PunchFilter {
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
        limit,
    };
    let punches = app.store.list_punches(&filter).await?;
    let next_after = if punches.len() == limit {
        punches.last().map(|p| p.id)
    } else {
        None
    };
    match q.format.unwrap_or(Format::Json) {
        Format::Csv => {
            let mut out = Vec::new();
            crate::format::punch_csv_rows(&punches)
                .write_csv(&mut out)
                .map_err(|e| Error::Internal(e.to_string()))?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response())
        }
        Format::Json | Format::Table => Ok(Json(PunchPage {
            punches,
            next_after,
        })
        .into_response()),
    }
}

/// A raw journal entry: what arrived, when, and what became of it (the body is base64 in `body_base64`).
#[utoipa::path(get, path = "/api/v1/journal/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = JournalEntry), (status = 404)))]
async fn get_journal(
    State(app): State<App>,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, Error> {
    use base64::Engine;
    let entry = app.store.get_journal(id).await?;
    let mut value = serde_json::to_value(&entry).map_err(|e| Error::Internal(e.to_string()))?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "body_base64".into(),
            base64::engine::general_purpose::STANDARD
                .encode(&entry.body)
                .into(),
        );
    }
    Ok(Json(value))
}
