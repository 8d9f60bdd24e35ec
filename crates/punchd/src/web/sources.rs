//! HTTP for sources (issue 9):
//! - `POST /api/v1/sources/webhook`: the JSON webhook ([`crate::sources::webhook`]), authorised by the source's
//!   own token (`X-Device-Token: <token>` or `Authorization: Bearer <token>`), not by an API token;
//! - `GET /api/v1/sources` and `POST /api/v1/sources` (list, create a webhook source), API token;
//! - `POST /api/v1/sources/{name}/run`: read a BioTime source now (scope `operate`);
//! - `POST /api/v1/imports`: a file upload (multipart), imported as `punchd import` does, API token.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Extension, Json, Router};
use bytes::Bytes;
use chrono::Utc;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::auth::{generate_token, hash_token, require_token, scoped};
use super::error::Error;
use crate::app::App;
use crate::domain::Scope;
use crate::domain::{DeviceSn, Source};
use crate::ingest::Delivery;
use crate::sources::import::{
    self, ColumnSpec, FileFormat, ImportError, ImportInput, ImportOptions, ImportReport,
};
use crate::sources::push::RemoteAddr;
use crate::sources::webhook::{self, EventError};
use crate::store::sources::{NewSource, SourceInfo, SourceKind, SourceRun};
use crate::store::{Batch, LineIssue, RawEntry};

/// The OpenAPI paths of these routes (merged into `/api/v1/openapi.json`).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        receive_webhook,
        list_sources,
        create_source,
        run_source,
        upload_import
    ),
    components(schemas(
        WebhookReply,
        EventError,
        SourceInfo,
        SourceKind,
        NewWebhookSource,
        CreatedSource,
        ImportReport,
        import::PreviewRow,
        FileFormat
    ))
)]
pub struct SourcesDoc;

/// The routes, with their full paths: merge them into the root router.
pub fn routes(app: App) -> Router<App> {
    // Listing needs scope `read`, importing a file `operate`, adding a source (it mints a token) `admin`.
    let with_api_token = Router::new()
        .merge(scoped(
            Scope::Read,
            Router::new().route("/api/v1/sources", get(list_sources)),
        ))
        .merge(scoped(
            Scope::Operate,
            Router::new()
                .route("/api/v1/imports", post(upload_import))
                .route("/api/v1/sources/{name}/run", post(run_source)),
        ))
        .merge(scoped(
            Scope::Admin,
            Router::new().route("/api/v1/sources", post(create_source)),
        ))
        .route_layer(middleware::from_fn_with_state(app, require_token));
    Router::new()
        .route(
            "/api/v1/sources/webhook",
            post(receive_webhook).layer(DefaultBodyLimit::max(webhook::MAX_BODY_BYTES)),
        )
        .merge(with_api_token)
}

/// Set the per-source gauges from the store (called when `/metrics` is scraped); a store error leaves them.
pub async fn set_source_metrics(app: &App) {
    let sources = match app.store.list_sources().await {
        Ok(sources) => sources,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: listing sources failed");
            return;
        }
    };
    let m = &app.metrics;
    for s in sources {
        let labels = crate::metrics::SourceLabels {
            source: s.name.clone(),
            kind: s.kind.as_str().to_owned(),
        };
        m.source_punches_stored
            .get_or_create(&labels)
            .set(s.n_stored as i64);
        m.source_punches_duplicate
            .get_or_create(&labels)
            .set(s.n_duplicate as i64);
        m.source_rejected
            .get_or_create(&labels)
            .set(s.n_rejected as i64);
        m.source_failing
            .get_or_create(&labels)
            .set(i64::from(s.state == "failing"));
    }
}

/// What the webhook answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookReply {
    /// True when every event was stored or already held.
    pub ok: bool,
    /// Events newly stored.
    pub inserted: usize,
    /// Events already held (sent before, or twice in this request).
    pub duplicates: usize,
    /// Refused events with their reasons.
    pub errors: Vec<EventError>,
    /// Why the whole request was refused, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn reply(status: StatusCode, body: WebhookReply) -> Response {
    (status, Json(body)).into_response()
}

fn refused(status: StatusCode, error: String) -> Response {
    reply(
        status,
        WebhookReply {
            ok: false,
            inserted: 0,
            duplicates: 0,
            errors: Vec::new(),
            error: Some(error),
        },
    )
}

fn source_token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get("x-device-token").and_then(|v| v.to_str().ok()) {
        return Some(t.trim().to_owned());
    }
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
}

/// `POST /api/v1/sources/webhook`: JSON events from a device or app (the body is in
/// [`crate::sources::webhook`]). 200 when all were good, 422 with reasons per event when some were not (the
/// good ones are stored), 400 for a body that is not the expected object (nothing stored), 401 for a missing or
/// wrong token (nothing stored), 413 over 1 MiB, 503 when storage failed (nothing acknowledged; send again).
#[utoipa::path(post, path = "/api/v1/sources/webhook", request_body = Object, security(()),
    responses((status = 200, description = "Punches stored (counts in the reply)", body = WebhookReply), (status = 422, description = "Some events were rejected (reasons per event); the good ones are stored", body = WebhookReply), (status = 400, description = "The body is not the expected object (nothing stored)", body = WebhookReply),
              (status = 401, description = "Missing or wrong source token (nothing stored)", body = WebhookReply)))]
async fn receive_webhook(
    State(app): State<App>,
    remote: Option<Extension<RemoteAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = source_token(&headers) else {
        app.metrics.request("webhook", 401);
        return refused(
            StatusCode::UNAUTHORIZED,
            "missing source token (send X-Device-Token or Authorization: Bearer; `punchd sources add webhook` prints one)".into(),
        );
    };
    let source = match app.store.find_source_by_token(&hash_token(&token)).await {
        Ok(Some(s)) if s.kind == SourceKind::Webhook => s,
        Ok(_) => {
            app.metrics.request("webhook", 401);
            return refused(StatusCode::UNAUTHORIZED, "unknown source token".into());
        }
        Err(e) => {
            tracing::error!(error = %e, "webhook: looking up the token failed");
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; send again".into(),
            );
        }
    };
    let zone = source_zone(&app, &source);
    let raw = RawEntry {
        received_at: Utc::now(),
        device_sn: None,
        source: Source::Webhook,
        kind: "webhook".to_owned(),
        request: format!("POST /api/v1/sources/webhook (source {})", source.name),
        remote_addr: remote.map(|Extension(RemoteAddr(a))| a.ip().to_string()),
        body: body.to_vec(),
        errors: Vec::new(),
    };
    let events = match webhook::read_events(&body, zone) {
        Ok(events) => events,
        Err(reason) => {
            let mut raw = raw;
            raw.errors.push(LineIssue {
                line_no: 1,
                line: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
                reason: reason.clone(),
            });
            if let Err(e) = app.ingest.journal(raw).await {
                tracing::error!(error = %e, "webhook: journaling a refused body failed");
            }
            record(
                &app,
                &source,
                Some(format!("request refused: {reason}")),
                0,
                0,
                1,
            )
            .await;
            app.metrics.request("webhook", 400);
            return refused(StatusCode::BAD_REQUEST, reason);
        }
    };
    let mut raw = raw;
    raw.device_sn = Some(events.device_sn.clone());
    raw.errors = events
        .errors
        .iter()
        .map(|e| LineIssue {
            line_no: e.index + 1,
            line: format!("events[{}]", e.index),
            reason: e.reason.clone(),
        })
        .collect();
    let n_events = events.punches.len() + events.errors.len();
    let outcome = app
        .ingest
        .ingest(Delivery {
            device_sn: events.device_sn,
            time_zone: zone,
            source: Source::Webhook,
            punches: events.punches,
            batch: Batch::new(raw),
        })
        .await;
    match outcome {
        Ok(outcome) => {
            let error = events.errors.first().map(|first| {
                format!(
                    "{} of {n_events} events refused; events[{}]: {}",
                    events.errors.len(),
                    first.index,
                    first.reason
                )
            });
            record(
                &app,
                &source,
                error,
                outcome.n_stored as u64,
                outcome.n_duplicate as u64,
                events.errors.len() as u64,
            )
            .await;
            let ok = events.errors.is_empty();
            let status = if ok {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            app.metrics.request("webhook", status.as_u16());
            reply(
                status,
                WebhookReply {
                    ok,
                    inserted: outcome.n_stored,
                    duplicates: outcome.n_duplicate,
                    errors: events.errors,
                    error: None,
                },
            )
        }
        Err(e) => {
            tracing::error!(error = %e, source = %source.name, "webhook: storing failed; not acknowledged");
            record(&app, &source, Some(format!("storing failed: {e}")), 0, 0, 0).await;
            app.metrics.request("webhook", 503);
            refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; nothing was acknowledged, send again".into(),
            )
        }
    }
}

fn source_zone(app: &App, source: &SourceInfo) -> Tz {
    source
        .time_zone
        .as_deref()
        .and_then(|z| z.parse::<Tz>().ok())
        .unwrap_or_else(|| app.registry.default_time_zone())
}

async fn record(
    app: &App,
    source: &SourceInfo,
    error: Option<String>,
    n_stored: u64,
    n_duplicate: u64,
    n_rejected: u64,
) {
    let run = SourceRun {
        at: Utc::now(),
        error,
        n_stored,
        n_duplicate,
        n_rejected,
        cursor: None,
    };
    if let Err(e) = app.store.record_source_run(source.id, run).await {
        tracing::warn!(error = %e, source = %source.name, "recording the source's run failed");
    }
}

/// Every source with its state, cursor, last success, last error and counts, by name.
#[utoipa::path(get, path = "/api/v1/sources", security(("bearer" = ["read"])), responses((status = 200, description = "Every source with its state, cursor, last success, last error and counts, by name", body = [SourceInfo])))]
async fn list_sources(State(app): State<App>) -> Result<Json<Vec<SourceInfo>>, Error> {
    Ok(Json(app.store.list_sources().await?))
}

/// Read a BioTime source now, inside its interval and through its pause after a rejected password: the instance
/// holding the source's lease starts a read within a second or two. Answers the source with `run_requested_at`
/// set; its `last_run_at`, `state` and `last_error` show the read's outcome once it is done.
#[utoipa::path(post, path = "/api/v1/sources/{name}/run", security(("bearer" = ["operate"])), params(("name" = String, Path, description = "source name")),
    responses((status = 202, description = "The read is asked for; the source as it is now", body = SourceInfo), (status = 404, description = "Not found (named in the error)"),
              (status = 409, description = "Not a BioTime source, or switched off (named in the error)")))]
async fn run_source(State(app): State<App>, Path(name): Path<String>) -> Result<Response, Error> {
    let source =
        crate::sources::biotime::request_read(app.store.as_ref(), &name, Utc::now()).await?;
    Ok((StatusCode::ACCEPTED, Json(source)).into_response())
}

/// A webhook source to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewWebhookSource {
    /// `webhook` (the only kind created over the API for now).
    pub kind: String,
    /// Unique name.
    pub name: String,
    /// IANA zone naive times are read in (default: the configured default zone).
    pub time_zone: Option<String>,
}

/// A created source and its token (shown only once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedSource {
    /// The source.
    pub source: SourceInfo,
    /// The token to send as `X-Device-Token` (only its hash is kept).
    pub token: String,
}

/// Create a webhook source; the answer holds its token, shown only this once.
#[utoipa::path(post, path = "/api/v1/sources", security(("bearer" = ["admin"])), request_body = NewWebhookSource,
    responses((status = 201, description = "Create a webhook source", body = CreatedSource), (status = 409, description = "Conflicts with the stored state (named in the error)")))]
async fn create_source(
    State(app): State<App>,
    Json(new): Json<NewWebhookSource>,
) -> Result<Response, Error> {
    if new.kind != "webhook" {
        return Err(Error::BadRequest(format!(
            "kind {:?}: only webhook sources are created over the API",
            new.kind
        )));
    }
    let (source, token) = create_webhook_source(&app, &new.name, new.time_zone.as_deref())
        .await
        .map_err(|e| match e {
            CreateError::Invalid(m) => Error::BadRequest(m),
            CreateError::Store(e) => e.into(),
        })?;
    Ok((StatusCode::CREATED, Json(CreatedSource { source, token })).into_response())
}

/// Why a source was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A bad name or zone.
    #[error("{0}")]
    Invalid(String),
    /// The store refused (`Conflict` for a name in use).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Create a webhook source and its token (the CLI and the API share this).
///
/// Errors: an empty name, an unknown zone, a name in use, a store failure.
pub async fn create_webhook_source(
    app: &App,
    name: &str,
    time_zone: Option<&str>,
) -> Result<(SourceInfo, String), CreateError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(CreateError::Invalid(format!(
            "source name {name:?} must be 1–100 visible characters"
        )));
    }
    if let Some(zone) = time_zone {
        zone.parse::<Tz>()
            .map_err(|_| CreateError::Invalid(format!("{zone:?} is not an IANA time zone")))?;
    }
    let token = generate_token();
    let source = app
        .store
        .create_source(
            NewSource {
                name: name.to_owned(),
                kind: SourceKind::Webhook,
                token_hash: Some(hash_token(&token)),
                time_zone: time_zone.map(str::to_owned),
                settings: serde_json::Map::new(),
                secret: None,
            },
            Utc::now(),
        )
        .await?;
    Ok((source, token))
}

/// `POST /api/v1/imports` (multipart/form-data): the part `file` (its filename is used like the CLI's FILE) and
/// optional text parts `device`, `format` (attlog|csv|xlsx), `time_zone`, `columns`, `date_format`,
/// `attlog_layout` (push|machine) and `dry_run` (true|false), as `punchd import` takes them. Answers the
/// report (200), or 400 with the reason the file was refused.
#[utoipa::path(post, path = "/api/v1/imports", security(("bearer" = ["operate"])), responses((status = 200, description = "Import report (rows stored, duplicates, bad rows)", body = ImportReport), (status = 400, description = "Invalid request (named in the error)")))]
async fn upload_import(
    State(app): State<App>,
    mut multipart: Multipart,
) -> Result<Json<ImportReport>, Error> {
    let mut options = ImportOptions::default();
    let mut file: Option<Vec<u8>> = None;
    let bad = |e: axum::extract::multipart::MultipartError| {
        Error::BadRequest(format!("reading the upload: {e}"))
    };
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            options.file_name = field.file_name().unwrap_or("upload").to_owned();
            file = Some(field.bytes().await.map_err(bad)?.to_vec());
            continue;
        }
        let value = field.text().await.map_err(bad)?;
        let value = value.trim();
        match name.as_str() {
            "device" => {
                options.device = Some(
                    DeviceSn::parse(value)
                        .map_err(|e| Error::BadRequest(format!("device: {e}")))?,
                )
            }
            "format" => {
                options.format = Some(FileFormat::parse(value).ok_or_else(|| {
                    Error::BadRequest(format!("format {value:?} is not attlog, csv or xlsx"))
                })?)
            }
            "time_zone" => {
                options.time_zone = Some(value.parse::<Tz>().map_err(|_| {
                    Error::BadRequest(format!("time_zone {value:?} is not an IANA zone"))
                })?)
            }
            "columns" => {
                options.columns = Some(
                    value
                        .parse::<ColumnSpec>()
                        .map_err(|e| Error::BadRequest(format!("columns: {e}")))?,
                )
            }
            "date_format" => options.date_format = Some(value.to_owned()),
            "attlog_layout" => {
                options.attlog_layout = Some(match value {
                    "push" => import::AttlogLayout::Push,
                    "machine" => import::AttlogLayout::Machine,
                    other => {
                        return Err(Error::BadRequest(format!(
                            "attlog_layout {other:?} is not push or machine"
                        )))
                    }
                })
            }
            "dry_run" => options.dry_run = matches!(value, "true" | "1" | "yes" | "on"),
            other => return Err(Error::BadRequest(format!("unknown form field {other:?}"))),
        }
    }
    let bytes = file.ok_or_else(|| Error::BadRequest("the form has no `file` part".into()))?;
    match import::import(&app, ImportInput::Bytes(bytes), options, None).await {
        Ok(report) => Ok(Json(report)),
        Err(ImportError::Store(e)) => Err(e.into()),
        Err(e) => Err(Error::BadRequest(e.to_string())),
    }
}
