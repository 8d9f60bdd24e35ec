//! `/api/v1/sinks`: the same as `punchd sinks` (sinks/mod.rs) over the JSON API, and the documented webhook
//! payloads (`CheckInBatch`, schema `punchd.checkins.v1`; `VoidedCheckInBatch`, schema `punchd.checkin-voids.v1`)
//! in the OpenAPI document.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::OpenApi;

use super::auth::{scoped, TokenName};
use super::error::Error;
use crate::app::App;
use crate::domain::Scope;
use crate::sinks::added::AddedReport;
use crate::sinks::frappe_employees::{Conflict, SyncReport};
use crate::sinks::frappe_shift::{ShiftSync, SyncResult};
use crate::sinks::frappe_withdraw::WithdrawReport;
use crate::sinks::withdraw::{VoidedCheckIn, VoidedCheckInBatch};
use crate::sinks::{self, CheckIn, CheckInBatch, DeliveryOptions, SinkState, SinkStatus};
use crate::store::delivery::{CorrectionDelivery, Withdrawal, WithdrawalStatus};
use crate::store::outbox::{ParkKind, ParkedEvent, Sink, SinkCounts, SinkKind};

/// The sink routes (mounted under `/api/v1`, behind the token check).
/// Reading needs scope `read`; HR's part (withdrawing voided punches, reading employees from Frappe) `hr`;
/// pausing, resuming, retrying, replaying and advancing Frappe Shift Types `operate`; adding and removing a sink
/// (its URL and secrets) `admin`.
pub fn routes() -> Router<App> {
    let read = Router::new()
        .route("/sinks", get(list_sinks))
        .route("/sinks/{name}", get(show_sink));
    let hr = Router::new()
        .route("/sinks/{name}/withdraw-voids", post(withdraw_voids))
        .route("/sinks/{name}/deliver-added", post(deliver_added))
        .route("/sinks/{name}/employees-sync", post(employees_sync));
    let operate = Router::new()
        .route("/sinks/{name}/pause", post(pause_sink))
        .route("/sinks/{name}/resume", post(resume_sink))
        .route("/sinks/{name}/retry", post(retry_sink))
        .route("/sinks/{name}/replay", post(replay_sink))
        .route("/sinks/{name}/sync-shifts", post(sync_shifts));
    let admin = Router::new()
        .route("/sinks", post(add_sink))
        .route("/sinks/{name}", delete(remove_sink));
    Router::new()
        .merge(scoped(Scope::Read, read))
        .merge(scoped(Scope::Hr, hr))
        .merge(scoped(Scope::Operate, operate))
        .merge(scoped(Scope::Admin, admin))
}

/// The sink part of the OpenAPI document, merged into the API's.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_sinks,
        add_sink,
        show_sink,
        remove_sink,
        pause_sink,
        resume_sink,
        retry_sink,
        replay_sink,
        sync_shifts,
        withdraw_voids,
        deliver_added,
        employees_sync
    ),
    components(schemas(
        SinkStatus,
        SinkState,
        SinkKind,
        SinkCounts,
        ParkedEvent,
        ParkKind,
        NewSinkRequest,
        DeliveryOptions,
        SinkDetail,
        Changed,
        CheckInBatch,
        CheckIn,
        VoidedCheckInBatch,
        VoidedCheckIn,
        SyncResult,
        ShiftSync,
        WithdrawReport,
        Withdrawal,
        WithdrawalStatus,
        SyncReport,
        Conflict,
        AddedReport,
        CorrectionDelivery
    ))
)]
pub struct SinksDoc;

/// A sink to add. `config` holds the kind's settings: webhook `{url, secret, batch_size?, timeout_secs?}`
/// (deliveries are `CheckInBatch` bodies signed in `X-Punchd-Signature`); nats `{url, stream?}`; frappe
/// `{url, api_key, api_secret, employee_field?, log_type? (device|none), time_zone?, latitude?, longitude?,
/// timeout_secs?}` (the site is probed first).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewSinkRequest {
    /// Unique name (default: the kind).
    pub name: Option<String>,
    /// webhook, nats or frappe.
    pub kind: SinkKind,
    /// The kind's settings.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Also deliver punches stored before, from this instant (UTC).
    pub since: Option<DateTime<Utc>>,
    /// Retry settings.
    #[serde(default)]
    pub delivery: DeliveryOptions,
}

/// A sink's status and its parked events.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SinkDetail {
    /// Status.
    pub status: SinkStatus,
    /// Parked events (oldest first, at most 1000) with their reasons.
    pub parked: Vec<ParkedEvent>,
}

/// How many events an action changed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Changed {
    /// Events set to be delivered now.
    pub events: usize,
}

/// `retry` options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RetryQuery {
    /// Only events parked as unmapped.
    #[serde(default)]
    pub unmapped: bool,
}

/// `replay` options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayQuery {
    /// Deliver every punch from this instant again (RFC 3339); without it, the parked events.
    pub from: Option<DateTime<Utc>>,
}

/// Every sink with its state and counts.
#[utoipa::path(get, path = "/api/v1/sinks", security(("bearer" = ["read"])), responses((status = 200, description = "Every sink with its state and counts", body = [SinkStatus])))]
async fn list_sinks(State(app): State<App>) -> Result<Json<Vec<SinkStatus>>, Error> {
    let mut out = Vec::new();
    for sink in app.store.list_sinks().await? {
        out.push(sinks::status(app.store.as_ref(), &sink).await?);
    }
    Ok(Json(out))
}

/// Add a sink (Frappe is probed, NATS connected, first).
#[utoipa::path(post, path = "/api/v1/sinks", security(("bearer" = ["admin"])), request_body = NewSinkRequest,
    responses((status = 201, description = "Add a sink (Frappe is probed, NATS connected, first)", body = SinkStatus), (status = 400, description = "invalid settings or the probe failed"),
    (status = 409, description = "name taken")))]
async fn add_sink(
    State(app): State<App>,
    Json(req): Json<NewSinkRequest>,
) -> Result<(StatusCode, Json<SinkStatus>), Error> {
    let name = req.name.unwrap_or_else(|| req.kind.as_str().to_owned());
    let sink = sinks::add(
        app.store.as_ref(),
        name,
        req.kind,
        req.config,
        req.delivery,
        req.since,
    )
    .await
    .map_err(|e| match e.downcast::<crate::store::StoreError>() {
        Ok(store) => Error::from(store),
        Err(e) => Error::BadRequest(format!("{e:#}")),
    })?;
    Ok((
        StatusCode::CREATED,
        Json(sinks::status(app.store.as_ref(), &sink).await?),
    ))
}

/// One sink's status and parked events.
#[utoipa::path(get, path = "/api/v1/sinks/{name}", security(("bearer" = ["read"])), params(("name" = String, Path, description = "sink name")), responses((status = 200, description = "One sink's status and parked events", body = SinkDetail), (status = 404, description = "Not found (named in the error)")))]
async fn show_sink(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<SinkDetail>, Error> {
    let sink = app.store.get_sink(&name).await?;
    Ok(Json(SinkDetail {
        status: sinks::status(app.store.as_ref(), &sink).await?,
        parked: app.store.parked_events(sink.id, 1000).await?,
    }))
}

/// Remove a sink and its delivery state.
#[utoipa::path(delete, path = "/api/v1/sinks/{name}", security(("bearer" = ["admin"])), params(("name" = String, Path, description = "sink name")), responses((status = 204, description = "Done"), (status = 404, description = "Not found (named in the error)")))]
async fn remove_sink(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    app.store.delete_sink(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause a sink.
#[utoipa::path(post, path = "/api/v1/sinks/{name}/pause", security(("bearer" = ["operate"])), params(("name" = String, Path, description = "sink name")), responses((status = 204, description = "Done"), (status = 404, description = "Not found (named in the error)")))]
async fn pause_sink(State(app): State<App>, Path(name): Path<String>) -> Result<StatusCode, Error> {
    app.store.set_sink_paused(&name, true, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resume a sink (also one punchd paused for a configuration error).
#[utoipa::path(post, path = "/api/v1/sinks/{name}/resume", security(("bearer" = ["operate"])), params(("name" = String, Path, description = "sink name")), responses((status = 204, description = "Done"), (status = 404, description = "Not found (named in the error)")))]
async fn resume_sink(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    app.store.set_sink_paused(&name, false, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Try parked and waiting events now.
#[utoipa::path(post, path = "/api/v1/sinks/{name}/retry", security(("bearer" = ["operate"])), params(("name" = String, Path, description = "sink name"), RetryQuery),
    responses((status = 200, description = "Try parked and waiting events now", body = Changed), (status = 404, description = "Not found (named in the error)")))]
async fn retry_sink(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(q): Query<RetryQuery>,
) -> Result<Json<Changed>, Error> {
    let only = q.unmapped.then_some(ParkKind::Unmapped);
    let events = app.store.retry_sink(&name, only, Utc::now()).await?;
    Ok(Json(Changed { events }))
}

/// Deliver again every punch from a date (or the parked events).
#[utoipa::path(post, path = "/api/v1/sinks/{name}/replay", security(("bearer" = ["operate"])), params(("name" = String, Path, description = "sink name"), ReplayQuery),
    responses((status = 200, description = "Deliver again every punch from a date (or the parked events)", body = Changed), (status = 404, description = "Not found (named in the error)")))]
async fn replay_sink(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(q): Query<ReplayQuery>,
) -> Result<Json<Changed>, Error> {
    let events = match q.from {
        Some(from) => app.store.replay_sink(&name, from, Utc::now()).await?,
        None => app.store.retry_sink(&name, None, Utc::now()).await?,
    };
    Ok(Json(Changed { events }))
}

/// `employees-sync` options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmployeesSyncQuery {
    /// Replace punchd's values with Frappe's where they differ (without it, differences are listed as conflicts).
    #[serde(default)]
    pub overwrite: bool,
    /// Only report what would change; write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// A Frappe sink by name: 404 when there is none, 400 when it is another kind.
async fn frappe_sink(app: &App, name: &str) -> Result<Sink, Error> {
    let sink = app.store.get_sink(name).await?;
    if sink.kind != SinkKind::Frappe {
        return Err(Error::BadRequest(format!(
            "sink {name} is a {} sink; this applies to Frappe sinks only",
            sink.kind.as_str()
        )));
    }
    Ok(sink)
}

/// A failure of a round that talks to the sink: the store's own errors keep their status; the rest (the sink's
/// settings, Frappe unreachable or refusing) are 502 with the reason.
fn round_error(e: anyhow::Error) -> Error {
    match e.downcast::<crate::store::StoreError>() {
        Ok(store) => Error::from(store),
        Err(e) => Error::BadGateway(format!("{e:#}")),
    }
}

/// Frappe: advance the sink's Shift Types' `last_sync_of_checkin` to the watermark of the devices feeding them now
/// (`punchd serve` does it every minute), and say what each came to and which device holds it back. The same as
/// `punchd sinks sync-shifts NAME`. Frappe's answers per Shift Type are in each result's `note`.
#[utoipa::path(post, path = "/api/v1/sinks/{name}/sync-shifts", security(("bearer" = ["operate"])),
    params(("name" = String, Path, description = "sink name")),
    responses((status = 200, description = "One result per Shift Type of the sink (empty: none configured)", body = [SyncResult]),
        (status = 400, description = "Not a Frappe sink"), (status = 404, description = "Not found (named in the error)"),
        (status = 502, description = "The sink's settings could not be used")))]
async fn sync_shifts(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<Vec<SyncResult>>, Error> {
    let sink = frappe_sink(&app, &name).await?;
    let results = crate::sinks::frappe_shift::sync(
        app.store.as_ref(),
        &sink,
        app.config.default_time_zone,
        Utc::now(),
    )
    .await
    .map_err(round_error)?;
    Ok(Json(results))
}

/// Withdraw the check-ins of punches HR voided, at this sink, now (`punchd serve` does it every minute): Frappe
/// deletes the Employee Checkin punchd created (unless an Attendance links it: `needs-hr`); webhook and NATS get a
/// `checkin.voided` event (`VoidedCheckInBatch` / `VoidedCheckIn`). The same as `punchd sinks withdraw-voids
/// NAME`. Per-punch failures are in `failed` and tried again next round.
#[utoipa::path(post, path = "/api/v1/sinks/{name}/withdraw-voids", security(("bearer" = ["hr"])),
    params(("name" = String, Path, description = "sink name")),
    responses((status = 200, description = "What this round recorded, what waits for delivery, what failed", body = WithdrawReport),
        (status = 404, description = "Not found (named in the error)"),
        (status = 502, description = "The sink's settings could not be used")))]
async fn withdraw_voids(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<WithdrawReport>, Error> {
    let sink = app.store.get_sink(&name).await?;
    let report = crate::sinks::withdraw::withdraw(app.store.as_ref(), &sink)
        .await
        .map_err(round_error)?;
    Ok(Json(report))
}

/// Deliver the punches HR added in the monthly review (add-punch corrections) that this sink has not had yet, now
/// (`punchd serve` does it every minute), like any other check-in: Frappe gets an Employee Checkin (device
/// `HR-CORRECTION`), webhook and NATS a check-in with `source` `correction` and `correction_id`. The same as
/// `punchd sinks deliver-added NAME`. Failures are per punch in `failed` and tried again next round.
#[utoipa::path(post, path = "/api/v1/sinks/{name}/deliver-added", security(("bearer" = ["hr"])),
    params(("name" = String, Path, description = "sink name")),
    responses((status = 200, description = "What this round recorded and what failed", body = AddedReport),
        (status = 404, description = "Not found (named in the error)"),
        (status = 409, description = "Another round was delivering this sink's added punches for 20 s; try again"),
        (status = 502, description = "The sink's settings could not be used")))]
async fn deliver_added(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<AddedReport>, Error> {
    let sink = app.store.get_sink(&name).await?;
    crate::sinks::added::deliver_exclusively(
        app.store.clone(),
        &app.leases,
        &sink,
        app.config.default_time_zone,
        crate::sinks::added::WAIT_FOR_ROUND,
    )
    .await
    .map_err(round_error)?
    .map(Json)
    .ok_or_else(|| Error::Conflict(crate::sinks::added::another_round(&name)))
}

/// Frappe: read Employees (those with the sink's employee field set) into punchd's employees now. New ones are
/// created; differences with local ones are listed as conflicts and left alone unless `overwrite`. The author
/// recorded in the audit log is `token:<name>`. The same as `punchd sinks employees-sync NAME`.
#[utoipa::path(post, path = "/api/v1/sinks/{name}/employees-sync", security(("bearer" = ["hr"])),
    params(("name" = String, Path, description = "sink name"), EmployeesSyncQuery),
    responses((status = 200, description = "What the sync did (or, with dry_run, would do)", body = SyncReport),
        (status = 400, description = "Not a Frappe sink"), (status = 404, description = "Not found (named in the error)"),
        (status = 502, description = "Frappe could not be read (unreachable, or the API user may not read Employee)")))]
async fn employees_sync(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Path(name): Path<String>,
    Query(q): Query<EmployeesSyncQuery>,
) -> Result<Json<SyncReport>, Error> {
    let sink = frappe_sink(&app, &name).await?;
    let report = crate::sinks::frappe_employees::sync(
        app.store.as_ref(),
        &sink,
        q.overwrite,
        q.dry_run,
        &format!("token:{}", token.0),
    )
    .await
    .map_err(round_error)?;
    Ok(Json(report))
}
