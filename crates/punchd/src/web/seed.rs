//! The management routes of the seed integration guide, served for clients written against it:
//!
//! - `POST /api/push/devices/{sn}/command` `{"command": "DATA UPDATE USERINFO PIN=1\tName=Ann"}`: one raw push
//!   command line, queued as the `raw` command;
//! - `POST /api/push/devices/{sn}/upload-users` `{"users": [{"pin": "1001", "name": "Ann", …}]}`: one
//!   `upsert_user` per user (every user is checked first: one bad user queues nothing);
//! - `POST /api/push/devices/{sn}/upload-attendance` `{"from": "2026-11-01 00:00:00", "to": "…"}`: one
//!   `reupload_punches` for the range (terminal local time; both optional: from 2000-01-01 to tomorrow).
//!
//! Same token as `/api/v1` (`Authorization: Bearer <token>`). Each answers `201` with
//! `{"sn": …, "command_ids": [ids], "commands": [the queued commands]}`; errors are `400`/`404` with a message.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{middleware, Extension, Json, Router};
use chrono::{Days, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

use super::auth::{require_token, scoped, TokenName};
use super::error::Error;
use crate::app::App;
use crate::domain::Scope;
use crate::domain::{Command, CommandKind, DeviceSn};

/// The routes, nested under `/api/push`, behind the token check.
pub fn routes(app: App) -> Router<App> {
    let routes = Router::new()
        .route("/devices/{sn}/command", post(raw_command))
        .route("/devices/{sn}/upload-users", post(upload_users))
        .route("/devices/{sn}/upload-attendance", post(upload_attendance));
    scoped(Scope::Operate, routes).route_layer(middleware::from_fn_with_state(app, require_token))
}

/// The OpenAPI paths of these routes (merged into `/api/v1/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    paths(raw_command, upload_users, upload_attendance),
    components(schemas(SeedCommand, SeedUser, SeedUsers, SeedAttendance, Queued))
)]
pub struct SeedApi;

/// A raw push command line.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SeedCommand {
    /// The command text after `C:<id>:` (push.md §8.2), one line.
    pub command: String,
}

/// A user to send (field names of the seed guide and of the push wire form are both accepted).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SeedUser {
    /// User id on the terminal.
    #[serde(alias = "PIN", alias = "Pin", alias = "user_id")]
    pub pin: String,
    /// Name.
    #[serde(default, alias = "Name")]
    pub name: String,
    /// 0 user, 2 enroller, 6 admin, 10 custom (push only), 14 super admin.
    #[serde(default, alias = "Pri", alias = "pri")]
    pub privilege: u16,
    /// Password.
    #[serde(default, alias = "Passwd", alias = "passwd")]
    pub password: String,
    /// Card number.
    #[serde(default, alias = "Card", alias = "card_number", alias = "cardno")]
    pub card: String,
    /// Group.
    #[serde(default, alias = "Grp", alias = "grp")]
    pub group: String,
}

/// Users to send: `{"users": [...]}` or a bare array.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SeedUsers {
    /// `{"users": [...]}`.
    Wrapped {
        /// The users.
        users: Vec<SeedUser>,
    },
    /// `[...]`.
    Bare(Vec<SeedUser>),
}

/// A range of punches to ask the terminal for again (terminal local time).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct SeedAttendance {
    /// Start (`YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DD`); default 2000-01-01.
    #[serde(default, alias = "start", alias = "start_time", alias = "StartTime")]
    pub from: Option<String>,
    /// End, same forms (a bare date means its end); default tomorrow.
    #[serde(default, alias = "end", alias = "end_time", alias = "EndTime")]
    pub to: Option<String>,
}

/// What was queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Queued {
    /// The device.
    pub sn: String,
    /// Ids of the queued commands (also `C:<id>:` on the wire); follow them at `/api/v1/commands/{id}`.
    pub command_ids: Vec<i64>,
    /// The queued commands.
    pub commands: Vec<Command>,
}

fn by(token: Option<Extension<TokenName>>) -> String {
    token.map_or_else(
        || "api:seed".to_owned(),
        |Extension(TokenName(name))| format!("api:{name}"),
    )
}

fn parse_sn(sn: &str) -> Result<DeviceSn, Error> {
    DeviceSn::parse(sn).map_err(|e| Error::BadRequest(format!("invalid SN: {e}")))
}

async fn queue(
    app: &App,
    sn: &DeviceSn,
    kinds: Vec<CommandKind>,
    by: &str,
) -> Result<(StatusCode, Json<Queued>), Error> {
    let mut commands = Vec::new();
    for kind in kinds {
        commands.extend(app.commands.enqueue(sn, kind, by, Utc::now()).await?);
    }
    Ok((
        StatusCode::CREATED,
        Json(Queued {
            sn: sn.to_string(),
            command_ids: commands.iter().map(|c| c.id).collect(),
            commands,
        }),
    ))
}

/// Queue one raw push command line (the `raw` command).
#[utoipa::path(post, path = "/api/push/devices/{sn}/command", params(("sn" = String, Path)),
    request_body = SeedCommand, security(("bearer" = ["operate"])),
    responses((status = 201, description = "Queue one raw push command line (the `raw` command)", body = Queued), (status = 400, description = "Invalid request (named in the error)"), (status = 401, description = "Missing or invalid credentials"), (status = 404, description = "Not found (named in the error)")))]
async fn raw_command(
    State(app): State<App>,
    Path(sn): Path<String>,
    token: Option<Extension<TokenName>>,
    Json(body): Json<SeedCommand>,
) -> Result<(StatusCode, Json<Queued>), Error> {
    let sn = parse_sn(&sn)?;
    let text = body.command.trim_end_matches(['\r', '\n']).to_owned();
    queue(&app, &sn, vec![CommandKind::Raw { text }], &by(token)).await
}

/// Queue an `upsert_user` for each user; every user is checked first (PIN, name, privilege, card; see
/// `devices::validate`), so one refused user queues nothing.
#[utoipa::path(post, path = "/api/push/devices/{sn}/upload-users", params(("sn" = String, Path)),
    request_body = SeedUsers, security(("bearer" = ["operate"])),
    responses((status = 201, description = "Queue an `upsert_user` for each user", body = Queued), (status = 400, description = "Invalid request (named in the error)"), (status = 401, description = "Missing or invalid credentials"), (status = 404, description = "Not found (named in the error)")))]
async fn upload_users(
    State(app): State<App>,
    Path(sn): Path<String>,
    token: Option<Extension<TokenName>>,
    Json(body): Json<SeedUsers>,
) -> Result<(StatusCode, Json<Queued>), Error> {
    let sn = parse_sn(&sn)?;
    let users = match body {
        SeedUsers::Wrapped { users } | SeedUsers::Bare(users) => users,
    };
    if users.is_empty() {
        return Err(Error::BadRequest("no users given".into()));
    }
    let device = app.store.get_device(&sn).await?;
    let kinds: Vec<CommandKind> = users
        .into_iter()
        .map(|u| CommandKind::UpsertUser {
            pin: u.pin,
            name: u.name,
            privilege: u.privilege,
            password: u.password,
            card: u.card,
            group: u.group,
        })
        .collect();
    for (idx, kind) in kinds.iter().enumerate() {
        crate::devices::validate::check_command(kind, device.transport)
            .map_err(|e| Error::BadRequest(format!("user {}: {e}", idx + 1)))?;
    }
    queue(&app, &sn, kinds, &by(token)).await
}

fn local_time(s: &str, end: bool) -> Result<NaiveDateTime, Error> {
    let s = s.trim();
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t);
        }
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        Error::BadRequest(format!(
            "time {s:?} is not a terminal local time (2026-11-20 08:00:00, 2026-11-20T08:00:00 or 2026-11-20)"
        ))
    })?;
    Ok(if end {
        date.and_hms_opt(23, 59, 59)
    } else {
        date.and_hms_opt(0, 0, 0)
    }
    .unwrap_or_default())
}

/// Queue a `reupload_punches` for the range (push: `DATA QUERY ATTLOG StartTime=…\tEndTime=…`).
#[utoipa::path(post, path = "/api/push/devices/{sn}/upload-attendance", params(("sn" = String, Path)),
    request_body = SeedAttendance, security(("bearer" = ["operate"])),
    responses((status = 201, description = "Queue a `reupload_punches` for the range", body = Queued), (status = 400, description = "Invalid request (named in the error)"), (status = 401, description = "Missing or invalid credentials"), (status = 404, description = "Not found (named in the error)")))]
async fn upload_attendance(
    State(app): State<App>,
    Path(sn): Path<String>,
    token: Option<Extension<TokenName>>,
    body: Option<Json<SeedAttendance>>,
) -> Result<(StatusCode, Json<Queued>), Error> {
    let sn = parse_sn(&sn)?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let from = match &body.from {
        Some(s) => local_time(s, false)?,
        None => NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default(),
    };
    let to = match &body.to {
        Some(s) => local_time(s, true)?,
        None => (Utc::now().date_naive() + Days::new(1))
            .and_hms_opt(23, 59, 59)
            .unwrap_or_default(),
    };
    if to < from {
        return Err(Error::BadRequest(format!(
            "range ends ({to}) before it starts ({from})"
        )));
    }
    queue(
        &app,
        &sn,
        vec![CommandKind::ReuploadPunches { from, to }],
        &by(token),
    )
    .await
}
