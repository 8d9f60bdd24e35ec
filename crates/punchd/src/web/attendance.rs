//! The attendance part of the JSON API, `/api/v1/attendance/…`: sites, employees (and file import), PIN
//! mappings and the unmapped queue, shifts, roster, punch-state policies (and their preview), the month (JSON, CSV,
//! XLSX), corrections, exception reviews, sign-off and reopen, the audit log and device watermarks. Behind the
//! same token check as the rest of `/api/v1`; the author of every change is `token:<name>`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use utoipa::OpenApi;

use super::auth::TokenName;
use super::error::Error;
use crate::app::App;
use crate::attendance::import::{self, RowError};
use crate::attendance::mapping::{self, Resolver, Unmapped};
use crate::attendance::monthly::{self, ExceptionRow, Month};
use crate::attendance::review::{self, PreviewReport};
use crate::attendance::rules::Shift;
use crate::attendance::setup::{self, AttError, ImportReport};
use crate::attendance::watermark::{self, Watermark};
use crate::store::attendance::{
    AuditEntry, Correction, Employee, PinMapping, PolicySetting, ReviewState, RosterEntry, Scope,
    Site,
};

impl From<AttError> for Error {
    fn from(e: AttError) -> Error {
        match e {
            AttError::Invalid(msg) => Error::BadRequest(msg),
            AttError::Store(e) => e.into(),
        }
    }
}

fn author(token: &TokenName) -> String {
    format!("token:{}", token.0)
}

/// The attendance routes (nested under `/api/v1` by `api::routes`, behind its token check).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/attendance/sites", get(list_sites).post(put_site))
        .route(
            "/attendance/employees",
            get(list_employees).post(put_employee),
        )
        .route("/attendance/employees/import", post(import_employees))
        .route(
            "/attendance/mappings",
            get(list_mappings).post(add_mapping).delete(remove_mapping),
        )
        .route("/attendance/unmapped", get(unmapped))
        .route("/attendance/shifts", get(list_shifts).post(put_shift))
        .route("/attendance/roster", get(list_roster).post(put_roster))
        .route("/attendance/policies", get(list_policies).post(put_policy))
        .route("/attendance/policies/preview", get(preview_policy))
        .route("/attendance/month", get(month))
        .route(
            "/attendance/corrections",
            get(list_corrections).post(add_correction),
        )
        .route(
            "/attendance/corrections/{id}/revoke",
            post(revoke_correction),
        )
        .route("/attendance/exceptions/review", post(review_exception))
        .route("/attendance/signoff", post(sign_off))
        .route("/attendance/reopen", post(reopen))
        .route("/attendance/audit", get(audit_log))
        .route("/attendance/watermarks", get(watermarks))
}

/// The attendance part of the OpenAPI document (paths relative to `/api/v1`, nested into `api::ApiDoc`).
#[derive(OpenApi)]
#[openapi(
    paths(
        list_sites,
        put_site,
        list_employees,
        put_employee,
        import_employees,
        list_mappings,
        add_mapping,
        remove_mapping,
        unmapped,
        list_shifts,
        put_shift,
        list_roster,
        put_roster,
        list_policies,
        put_policy,
        preview_policy,
        month,
        list_corrections,
        add_correction,
        revoke_correction,
        review_exception,
        sign_off,
        reopen,
        audit_log,
        watermarks
    ),
    components(schemas(
        Site,
        crate::store::attendance::Holiday,
        Employee,
        crate::store::attendance::EmployeeStatus,
        PinMapping,
        Scope,
        Unmapped,
        Shift,
        RosterEntry,
        PolicySetting,
        PreviewReport,
        Month,
        ExceptionRow,
        Correction,
        crate::store::attendance::CorrectionKind,
        ReviewState,
        AuditEntry,
        Watermark,
        ImportReport,
        RowError,
        ReviewRequest,
        SignOffRequest,
        ReopenRequest,
        UnmapQuery
    ))
)]
pub struct AttendanceDoc;

/// Sites with their holidays.
#[utoipa::path(get, path = "/attendance/sites", responses((status = 200, description = "Sites with their holidays", body = [Site])))]
async fn list_sites(State(app): State<App>) -> Result<Json<Vec<Site>>, Error> {
    Ok(Json(app.store.list_sites().await?))
}

/// Create or replace a site (zone, day-change time, weekly offs, holidays). 400 for an unknown zone.
#[utoipa::path(post, path = "/attendance/sites", request_body = Site, responses((status = 200, description = "Create or replace a site (zone, day-change time, weekly offs, holidays)", body = Site), (status = 400, description = "Invalid request (named in the error)")))]
async fn put_site(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Json(site): Json<Site>,
) -> Result<Json<Site>, Error> {
    setup::put_site(app.store.as_ref(), site.clone(), &author(&token)).await?;
    Ok(Json(site))
}

/// Employees, by code.
#[utoipa::path(get, path = "/attendance/employees", responses((status = 200, description = "Employees, by code", body = [Employee])))]
async fn list_employees(State(app): State<App>) -> Result<Json<Vec<Employee>>, Error> {
    Ok(Json(app.store.list_employees().await?))
}

/// Add or replace one employee. 400 for an unknown site or shift.
#[utoipa::path(post, path = "/attendance/employees", request_body = Employee, responses((status = 200, description = "Add or replace one employee", body = Employee), (status = 400, description = "Invalid request (named in the error)")))]
async fn put_employee(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Json(e): Json<Employee>,
) -> Result<Json<Employee>, Error> {
    setup::put_employee(app.store.as_ref(), e.clone(), &author(&token)).await?;
    Ok(Json(e))
}

/// Import options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ImportQuery {
    /// Import nothing when a row is bad.
    #[serde(default)]
    all_or_nothing: bool,
    /// Check only.
    #[serde(default)]
    dry_run: bool,
}

/// Import an employee file: the body is the file (CSV, or XLSX/XLS/ODS recognised by its signature). Bad rows
/// are reported by row number and the rest are imported (none with `all_or_nothing`). 200 with the report even
/// when rows are bad; 400 when the file has no header row.
#[utoipa::path(post, path = "/attendance/employees/import", params(ImportQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "Import an employee file", body = ImportReport), (status = 400, description = "Invalid request (named in the error)")))]
async fn import_employees(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Json<ImportReport>, Error> {
    let spreadsheet =
        body.starts_with(b"PK\x03\x04") || body.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]);
    let rows = if spreadsheet {
        import::read_spreadsheet(&body)
    } else {
        import::read_csv(&body)
    }
    .map_err(Error::BadRequest)?;
    let parsed = import::parse_rows(&rows).map_err(Error::BadRequest)?;
    let report = setup::import_employees(
        app.store.as_ref(),
        parsed,
        q.all_or_nothing,
        q.dry_run,
        &author(&token),
    )
    .await?;
    Ok(Json(report))
}

/// Explicit PIN mappings.
#[utoipa::path(get, path = "/attendance/mappings", responses((status = 200, description = "Explicit PIN mappings", body = [PinMapping])))]
async fn list_mappings(State(app): State<App>) -> Result<Json<Vec<PinMapping>>, Error> {
    Ok(Json(app.store.list_mappings().await?))
}

/// Map a PIN on a site or device to an employee; its punches count at once. 409 when the PIN would mean two
/// employees on one device.
#[utoipa::path(post, path = "/attendance/mappings", request_body = PinMapping, responses((status = 200, description = "Map a PIN on a site or device to an employee", body = PinMapping), (status = 409, description = "Conflicts with the stored state (named in the error)"), (status = 404, description = "No such employee (named in the error)")))]
async fn add_mapping(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Json(m): Json<PinMapping>,
) -> Result<Json<PinMapping>, Error> {
    setup::add_mapping(app.store.as_ref(), m.clone(), &author(&token)).await?;
    Ok(Json(m))
}

/// Which mapping to remove.
#[derive(Debug, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct UnmapQuery {
    /// site or device.
    scope: Scope,
    /// Site name or device SN.
    scope_key: String,
    /// The PIN.
    pin: String,
}

/// Remove a mapping; its punches go back to the unmapped queue.
#[utoipa::path(delete, path = "/attendance/mappings", params(UnmapQuery), responses((status = 204, description = "Done"), (status = 404, description = "Not found (named in the error)")))]
async fn remove_mapping(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Query(q): Query<UnmapQuery>,
) -> Result<axum::http::StatusCode, Error> {
    let subject = format!("{}:{}/{}", q.scope.as_str(), q.scope_key, q.pin);
    app.store
        .remove_mapping(
            q.scope,
            &q.scope_key,
            &q.pin,
            setup::audit(
                &author(&token),
                "mapping.remove",
                &subject,
                serde_json::json!({}),
            ),
        )
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The unmapped queue: PINs with stored punches that map to nobody (PIN, device, count, first and last seen).
#[utoipa::path(get, path = "/attendance/unmapped", responses((status = 200, description = "The unmapped queue", body = [Unmapped])))]
async fn unmapped(State(app): State<App>) -> Result<Json<Vec<Unmapped>>, Error> {
    let store = app.store.as_ref();
    let resolver = Resolver::new(
        &store.list_mappings().await?,
        &store.list_employees().await?,
        &store.list_devices().await?,
    );
    Ok(Json(mapping::unmapped(
        &resolver,
        &app.seen.get(&app.store).await?,
    )))
}

/// Shifts.
#[utoipa::path(get, path = "/attendance/shifts", responses((status = 200, description = "Shifts", body = [Shift])))]
async fn list_shifts(State(app): State<App>) -> Result<Json<Vec<Shift>>, Error> {
    Ok(Json(setup::load_shifts(app.store.as_ref()).await?))
}

/// Shift options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ShiftQuery {
    /// Replace a shift of the same name.
    #[serde(default)]
    replace: bool,
}

/// Add a shift (or replace one with `replace=true`). 400 for a zero-length shift or overlapping windows, 409 for a
/// name in use.
#[utoipa::path(post, path = "/attendance/shifts", params(ShiftQuery), request_body = Shift, responses((status = 200, description = "Add a shift (or replace one with `replace=true`)", body = Shift), (status = 400, description = "Invalid request (named in the error)"), (status = 409, description = "Conflicts with the stored state (named in the error)")))]
async fn put_shift(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Query(q): Query<ShiftQuery>,
    Json(shift): Json<Shift>,
) -> Result<Json<Shift>, Error> {
    setup::put_shift(
        app.store.as_ref(),
        shift.clone(),
        q.replace,
        &author(&token),
    )
    .await?;
    Ok(Json(shift))
}

/// A month (`YYYY-MM`) and a site.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct MonthQuery {
    /// `YYYY-MM`.
    month: String,
    /// The site (required except for the roster).
    #[serde(default)]
    site: Option<String>,
    /// json (default), csv or xlsx (month only).
    #[serde(default)]
    format: Option<String>,
}

fn month_dates(month: &str) -> Result<(NaiveDate, NaiveDate), Error> {
    let (_, _, dates) = monthly::parse_month(month)?;
    Ok((dates[0], dates[dates.len() - 1] + chrono::Duration::days(1)))
}

fn site_of(q: &MonthQuery) -> Result<String, Error> {
    q.site
        .clone()
        .ok_or_else(|| Error::BadRequest("the site query parameter is required".into()))
}

/// Roster lines of a month.
#[utoipa::path(get, path = "/attendance/roster", params(MonthQuery), responses((status = 200, description = "Roster lines of a month", body = [RosterEntry])))]
async fn list_roster(
    State(app): State<App>,
    Query(q): Query<MonthQuery>,
) -> Result<Json<Vec<RosterEntry>>, Error> {
    let (from, to) = month_dates(&q.month)?;
    Ok(Json(app.store.list_roster(from, to).await?))
}

/// Write roster lines (a shift, or `null` for a day off), all or nothing. 404 names a missing employee or shift.
#[utoipa::path(post, path = "/attendance/roster", request_body = [RosterEntry], responses((status = 204, description = "Done"), (status = 404, description = "Not found (named in the error)")))]
async fn put_roster(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Json(entries): Json<Vec<RosterEntry>>,
) -> Result<axum::http::StatusCode, Error> {
    setup::put_roster(app.store.as_ref(), entries, &author(&token)).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Punch-state policies.
#[utoipa::path(get, path = "/attendance/policies", responses((status = 200, description = "Punch-state policies", body = [PolicySetting])))]
async fn list_policies(State(app): State<App>) -> Result<Json<Vec<PolicySetting>>, Error> {
    Ok(Json(app.store.list_policies().await?))
}

/// Set the punch-state policy of a site or device (preview it first with `/attendance/policies/preview`).
#[utoipa::path(post, path = "/attendance/policies", request_body = PolicySetting, responses((status = 200, description = "Set the punch-state policy of a site or device (preview it first with `/attendance/policies/preview`)", body = PolicySetting), (status = 400, description = "Invalid request (named in the error)")))]
async fn put_policy(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Json(p): Json<PolicySetting>,
) -> Result<Json<PolicySetting>, Error> {
    setup::put_policy(app.store.as_ref(), p.clone(), &author(&token)).await?;
    Ok(Json(p))
}

/// Preview parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PreviewQuery {
    /// The site.
    site: String,
    /// `YYYY-MM`.
    month: String,
    /// The proposed policy.
    policy: String,
    /// Only for this device.
    #[serde(default)]
    device: Option<String>,
}

/// What a policy would change on a month's stored punches; nothing is written.
#[utoipa::path(get, path = "/attendance/policies/preview", params(PreviewQuery), responses((status = 200, description = "What a policy would change on a month's stored punches", body = PreviewReport)))]
async fn preview_policy(
    State(app): State<App>,
    Query(q): Query<PreviewQuery>,
) -> Result<Json<PreviewReport>, Error> {
    Ok(Json(
        review::preview(
            app.store.as_ref(),
            &q.site,
            &q.month,
            &q.policy,
            q.device.as_deref(),
            Utc::now(),
        )
        .await?,
    ))
}

/// The month of a site: grid, totals, exceptions, unmapped PINs, watermarks, sign-off and punches that arrived
/// after it. `format=csv` answers the grid as CSV, `format=xlsx` the workbook (sheets Grid and Exceptions).
#[utoipa::path(get, path = "/attendance/month", params(MonthQuery), responses((status = 200,
    description = "The month of a site (JSON), its grid as CSV (`format=csv`) or the workbook (`format=xlsx`)",
    content((Month = "application/json"), (String = "text/csv"),
        (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
    (status = 400, description = "Invalid month, site or format (named in the error)"),
    (status = 404, description = "No such site")))]
async fn month(State(app): State<App>, Query(q): Query<MonthQuery>) -> Result<Response, Error> {
    let site = site_of(&q)?;
    // Kept between requests and brought up to date with only what changed (attendance::month_cache).
    let m = app
        .month_cache
        .month(app.store.as_ref(), &site, &q.month, Utc::now())
        .await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(m.as_ref()).into_response()),
        "csv" => {
            let mut b = Vec::new();
            crate::attendance::export::write_csv(&m, &mut b)
                .map_err(|e| Error::Internal(e.to_string()))?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], b).into_response())
        }
        "xlsx" => {
            let b =
                crate::attendance::export::xlsx(&m).map_err(|e| Error::Internal(e.to_string()))?;
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                            .to_owned(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!(
                            "attachment; filename=\"attendance-{site}-{}.xlsx\"",
                            q.month
                        ),
                    ),
                ],
                b,
            )
                .into_response())
        }
        other => Err(Error::BadRequest(format!(
            "format {other:?} is not json, csv or xlsx"
        ))),
    }
}

/// Corrections of a month.
#[utoipa::path(get, path = "/attendance/corrections", params(MonthQuery), responses((status = 200, description = "Corrections of a month", body = [Correction])))]
async fn list_corrections(
    State(app): State<App>,
    Query(q): Query<MonthQuery>,
) -> Result<Json<Vec<Correction>>, Error> {
    let (from, to) = month_dates(&q.month)?;
    Ok(Json(app.store.list_corrections(from, to).await?))
}

/// Record a correction (add-punch, void-punch, set-status, approve-overtime, cut-overtime) with its reason; raw
/// punches never change. 409 when the month is signed off.
#[utoipa::path(post, path = "/attendance/corrections", request_body = Correction, responses((status = 200, description = "Record a correction (add-punch, void-punch, set-status, approve-overtime, cut-overtime) with its reason", body = Correction), (status = 400, description = "Invalid request (named in the error)"), (status = 409, description = "Conflicts with the stored state (named in the error)"), (status = 404, description = "No such employee or punch (named in the error)")))]
async fn add_correction(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Json(c): Json<Correction>,
) -> Result<Json<Correction>, Error> {
    Ok(Json(
        review::correct(app.store.as_ref(), c, &author(&token)).await?,
    ))
}

/// Why a correction is revoked.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct RevokeRequest {
    /// Why (required; audited).
    reason: String,
}

/// Revoke a correction: it stops counting in the month and stays stored (audited as `correction.revoke` with the
/// reason). A punch HR added and revoked after it was delivered is withdrawn from every sink that received it
/// (`checkin.voided`, like a voided punch). Answers the correction as it was. 409 when it is revoked already or its
/// month is signed off.
#[utoipa::path(post, path = "/attendance/corrections/{id}/revoke", params(("id" = i64, Path, description = "The correction id")), request_body = RevokeRequest, responses((status = 200, description = "The revoked correction", body = Correction), (status = 400, description = "Invalid request (named in the error)"), (status = 409, description = "Revoked already, or its month is signed off (named in the error)"), (status = 404, description = "No such correction")))]
async fn revoke_correction(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Path(id): Path<i64>,
    Json(r): Json<RevokeRequest>,
) -> Result<Json<Correction>, Error> {
    Ok(Json(
        review::revoke(app.store.as_ref(), id, &r.reason, &author(&token)).await?,
    ))
}

/// An exception review.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct ReviewRequest {
    /// The employee.
    employee_code: String,
    /// The working day.
    #[schema(value_type = String)]
    date: NaiveDate,
    /// The exception kind.
    kind: String,
    /// explained, approved or rejected.
    state: ReviewState,
    /// The explanation or reason.
    note: String,
}

/// Move an exception to explained, approved or rejected.
#[utoipa::path(post, path = "/attendance/exceptions/review", request_body = ReviewRequest, responses((status = 204, description = "Done"), (status = 400, description = "Invalid request (named in the error)"), (status = 409, description = "Conflicts with the stored state (named in the error)"), (status = 404, description = "No such employee (named in the error)")))]
async fn review_exception(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Json(r): Json<ReviewRequest>,
) -> Result<axum::http::StatusCode, Error> {
    review::review(
        app.store.as_ref(),
        &r.employee_code,
        r.date,
        &r.kind,
        r.state,
        &r.note,
        &author(&token),
    )
    .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// A sign-off.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct SignOffRequest {
    /// The site.
    site: String,
    /// `YYYY-MM`.
    month: String,
    /// Sign off with incomplete days.
    #[serde(default)]
    force: bool,
}

/// Sign off a site's month: its results are frozen until reopened. 400 with incomplete days unless `force`.
#[utoipa::path(post, path = "/attendance/signoff", request_body = SignOffRequest, responses((status = 200, description = "Sign off a site's month", body = Month), (status = 400, description = "Invalid request (named in the error)"), (status = 409, description = "Conflicts with the stored state (named in the error)"), (status = 404, description = "No such site (named in the error)")))]
async fn sign_off(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Json(r): Json<SignOffRequest>,
) -> Result<Json<Month>, Error> {
    Ok(Json(
        review::sign_off(
            app.store.as_ref(),
            &r.site,
            &r.month,
            r.force,
            &author(&token),
            Utc::now(),
        )
        .await?,
    ))
}

/// A reopen.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct ReopenRequest {
    /// The site.
    site: String,
    /// `YYYY-MM`.
    month: String,
    /// Why (required; audited).
    reason: String,
}

/// Reopen a signed-off month.
#[utoipa::path(post, path = "/attendance/reopen", request_body = ReopenRequest, responses((status = 204, description = "Done"), (status = 400, description = "Invalid request (named in the error)"), (status = 404, description = "Not found (named in the error)")))]
async fn reopen(
    State(app): State<App>,
    Extension(token): Extension<TokenName>,
    Json(r): Json<ReopenRequest>,
) -> Result<axum::http::StatusCode, Error> {
    review::reopen(
        app.store.as_ref(),
        &r.site,
        &r.month,
        &r.reason,
        &author(&token),
    )
    .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Audit log options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// At most this many entries (default 100, 0 = all).
    #[serde(default)]
    limit: Option<usize>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/attendance/audit", params(AuditQuery), responses((status = 200, description = "The audit log, newest first", body = [AuditEntry])))]
async fn audit_log(
    State(app): State<App>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, Error> {
    Ok(Json(app.store.list_audit(q.limit.unwrap_or(100)).await?))
}

/// Every device's watermark: the instant up to which punchd holds everything it will send.
#[utoipa::path(get, path = "/attendance/watermarks", responses((status = 200, description = "Every device's watermark", body = [Watermark])))]
async fn watermarks(State(app): State<App>) -> Result<Json<Vec<Watermark>>, Error> {
    let now = Utc::now();
    let devices = app.store.list_devices().await?;
    Ok(Json(
        watermark::watermarks(app.store.as_ref(), &devices, now).await?,
    ))
}
