//! API routes for push terminals, merged into `/api/v1` (behind its token check):
//!
//! - `GET /api/v1/devices/{sn}/users/{pin}/files`: the files a terminal uploaded for a user (`POST
//!   /iclock/fdata?SN=…&PIN=…`, USERPIC and BIOPHOTO lines), without their bytes;
//! - `GET /api/v1/devices/{sn}/users/{pin}/files/{id}`: one file's bytes (`image/jpeg`, `image/png` or
//!   `application/octet-stream`, from its first bytes);
//! - `GET /api/v1/devices/{sn}/push-auth`: the terminal's authentication state (README "Terminal
//!   authentication"): accepted addresses, a held address waiting for `punchd devices approve`, whether a
//!   ComKey is required and a handshake key pinned (never the keys themselves).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::OpenApi;

use super::error::Error;
use crate::app::App;
use crate::domain::{DeviceSn, Pin};
use crate::store::push::{PushAuth, UserFile};

/// The routes (relative to `/api/v1`).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/devices/{sn}/users/{pin}/files", get(list_user_files))
        .route("/devices/{sn}/users/{pin}/files/{id}", get(get_user_file))
        .route("/devices/{sn}/push-auth", get(get_push_auth))
}

/// The OpenAPI paths of these routes (merged into `/api/v1/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    paths(list_user_files, get_user_file, get_push_auth),
    components(schemas(UserFile, PushAuth, PushAuthView))
)]
pub struct PushApi;

fn parse_sn(sn: &str) -> Result<DeviceSn, Error> {
    DeviceSn::parse(sn).map_err(|e| Error::BadRequest(format!("invalid SN: {e}")))
}

/// Files uploaded for a user, oldest first.
#[utoipa::path(get, path = "/api/v1/devices/{sn}/users/{pin}/files",
    params(("sn" = String, Path), ("pin" = String, Path)), security(("bearer" = ["read"])),
    responses((status = 200, description = "Files uploaded for a user, oldest first", body = [UserFile]), (status = 401, description = "Missing or invalid credentials")))]
async fn list_user_files(
    State(app): State<App>,
    Path((sn, pin)): Path<(String, String)>,
) -> Result<Json<Vec<UserFile>>, Error> {
    Ok(Json(
        app.store
            .list_user_files(&parse_sn(&sn)?, &Pin(pin))
            .await?,
    ))
}

/// One file's bytes, as the terminal sent them.
#[utoipa::path(get, path = "/api/v1/devices/{sn}/users/{pin}/files/{id}",
    params(("sn" = String, Path), ("pin" = String, Path), ("id" = i64, Path)), security(("bearer" = ["read"])),
    responses((status = 200, description = "the file's bytes", content_type = "application/octet-stream"),
        (status = 401, description = "Missing or invalid credentials"), (status = 404, description = "Not found (named in the error)")))]
async fn get_user_file(
    State(app): State<App>,
    Path((sn, pin, id)): Path<(String, String, i64)>,
) -> Result<Response, Error> {
    let (file, bytes) = app
        .store
        .get_user_file(&parse_sn(&sn)?, &Pin(pin), id)
        .await?;
    let content_type = if bytes.starts_with(&[0xFF, 0xD8]) {
        "image/jpeg"
    } else if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "application/octet-stream"
    };
    let disposition = format!(
        "attachment; filename=\"{}\"",
        file.file_name.replace(['"', '\\', '\r', '\n'], "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// A terminal's authentication state as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PushAuthView {
    /// The stored state.
    #[serde(flatten)]
    pub state: PushAuth,
    /// Whether binding applies (its own setting, else the server-wide one).
    pub binding: bool,
    /// Whether a ComKey is required.
    pub comm_key_set: bool,
    /// Whether a handshake `pushcommkey` is pinned.
    pub handshake_key_pinned: bool,
}

/// A push terminal's authentication state.
#[utoipa::path(get, path = "/api/v1/devices/{sn}/push-auth", params(("sn" = String, Path)),
    security(("bearer" = ["read"])), responses((status = 200, description = "A push terminal's authentication state", body = PushAuthView), (status = 401, description = "Missing or invalid credentials"), (status = 404, description = "Not found (named in the error)")))]
async fn get_push_auth(
    State(app): State<App>,
    Path(sn): Path<String>,
) -> Result<Json<PushAuthView>, Error> {
    let sn = parse_sn(&sn)?;
    app.store.get_device(&sn).await?;
    let state = app.store.push_auth(&sn).await?;
    Ok(Json(PushAuthView {
        binding: app.push_guard.binds(&state),
        comm_key_set: state.comm_key.is_some(),
        handshake_key_pinned: state.handshake_key.is_some(),
        state,
    }))
}
