//! People (`/ui/people`, `/ui/mappings`, `/ui/unmapped`): employees (list and search, add and edit, status,
//! file import), PIN mappings, and the unmapped queue where one click maps a PIN to an employee — or creates the
//! employee — after which its stored punches count at once (mappings are resolved at read time) and the events
//! sinks parked as unmapped are tried again.
//!
//! Reading needs scope `read` (viewer); every change needs `hr`, as the JSON API's `/api/v1/attendance/…`
//! routes. Changes go through the same checked, audited calls (`attendance::setup`); the author is `ui:<name>`.

use std::collections::HashMap;

use axum::extract::{Multipart, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, NaiveDate, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, badge, csrf_field, enc, field, select, table, text, Flash, FormErrors};
use super::paging::Pager;
use super::{require, Nav, UiCtx, UiError, UiUser};
use crate::app::App;
use crate::attendance::import;
use crate::attendance::mapping::{self, Resolver, Unmapped};
use crate::attendance::setup::{self, AttError, ImportReport};
use crate::domain::Scope;
use crate::store::attendance::{Employee, EmployeeStatus, PinMapping, Scope as MapScope};
use crate::store::outbox::ParkKind;
use crate::store::Store;

/// Employees per page of the list.
const PER_PAGE: usize = 50;

/// The people pages' routes (relative to `/ui`).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/people", get(list_page))
        .route("/people/edit", get(edit_page))
        .route("/people/save", post(save))
        .route("/people/import", post(import_file))
        .route("/mappings", get(mappings_page))
        .route("/mappings/add", post(add_mapping))
        .route("/mappings/remove", post(remove_mapping))
        .route("/unmapped", get(unmapped_page))
        .route("/unmapped/map", post(map_unmapped))
}

/// The author recorded in the audit log for a change made in the UI.
pub fn author(user: &UiUser) -> String {
    format!("ui:{}", user.name)
}

/// An attendance refusal as a UI error (a refused change is shown on its form instead, where there is one).
pub fn att_error(e: AttError) -> UiError {
    match e {
        AttError::Invalid(m) => UiError::BadRequest(m),
        AttError::Store(e) => e.into(),
    }
}

/// The message of a refused change, for the form it came from; a store failure stays an error page.
pub fn refusal(e: AttError) -> Result<String, UiError> {
    match e {
        AttError::Invalid(m) => Ok(m),
        AttError::Store(crate::store::StoreError::NotFound(m)) => Ok(format!("not found: {m}")),
        AttError::Store(crate::store::StoreError::Conflict(m)) => Ok(m),
        AttError::Store(e) => Err(e.into()),
    }
}

/// A form-level error box (a refusal that belongs to no single field).
pub fn form_error(errors: &FormErrors) -> Markup {
    html! {
        @if let Some(m) = errors.get("_form") {
            div.flash.error role="alert" { (m) }
        }
    }
}

fn status_options() -> Vec<(String, String)> {
    ["active", "inactive", "left"]
        .iter()
        .map(|s| ((*s).to_owned(), (*s).to_owned()))
        .collect()
}

fn status_badge(s: EmployeeStatus) -> Markup {
    match s {
        EmployeeStatus::Active => badge("ok", "active"),
        EmployeeStatus::Inactive => badge("warn", "inactive"),
        EmployeeStatus::Left => badge("muted", "left"),
    }
}

/// Search and page of the employee list.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Text in the code, name, department or site (case-insensitive).
    #[serde(default)]
    pub q: String,
    /// Only this status (`active`, `inactive`, `left`).
    #[serde(default)]
    pub status: String,
    /// 1-based page.
    #[serde(default)]
    pub page: usize,
}

/// The employees matching a search, in code order.
pub fn search<'a>(employees: &'a [Employee], q: &str, status: &str) -> Vec<&'a Employee> {
    let needle = q.trim().to_lowercase();
    employees
        .iter()
        .filter(|e| status.is_empty() || e.status.as_str() == status)
        .filter(|e| {
            needle.is_empty()
                || e.code.to_lowercase().contains(&needle)
                || e.name.to_lowercase().contains(&needle)
                || e.department
                    .as_deref()
                    .is_some_and(|d| d.to_lowercase().contains(&needle))
                || e.site
                    .as_deref()
                    .is_some_and(|s| s.to_lowercase().contains(&needle))
        })
        .collect()
}

/// `GET /ui/people`: employees, searchable and paged, with the import form.
async fn list_page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    Ok(render_list(&app, &ctx, &q, None, None)
        .await?
        .into_response())
}

async fn render_list(
    app: &App,
    ctx: &UiCtx,
    q: &ListQuery,
    report: Option<&ImportReport>,
    import_error: Option<&str>,
) -> Result<axum::response::Html<String>, UiError> {
    let employees = app.store.list_employees().await?;
    let found = search(&employees, &q.q, &q.status);
    let pager = Pager::new(q.page, PER_PAGE, found.len());
    let rows: Vec<Vec<Markup>> = found[pager.range()]
        .iter()
        .map(|e| {
            vec![
                html! { a href={"/ui/people/edit?code=" (enc(&e.code))} { (e.code) } },
                text(&e.name),
                status_badge(e.status),
                text(e.site.as_deref().unwrap_or("—")),
                text(e.department.as_deref().unwrap_or("—")),
                text(e.default_shift.as_deref().unwrap_or("—")),
                html! { a href={"/ui/review?site=" (enc(e.site.as_deref().unwrap_or(""))) "&q=" (enc(&e.code))} { "Month" } },
            ]
        })
        .collect();
    let status_filter: Vec<(String, String)> = std::iter::once((String::new(), "any".to_owned()))
        .chain(status_options())
        .collect();
    let base = format!("/ui/people?q={}&status={}", enc(&q.q), enc(&q.status));
    let body = html! {
        p { a href="/ui/mappings" { "PIN mappings" } " · " a href="/ui/unmapped" { "Unmapped PINs" } }
        form.row.card method="get" action="/ui/people" role="search" {
            (field("Search", "q", "search", &q.q, None, Some("code, name, department or site")))
            (select("Status", "status", &status_filter, &q.status, None))
            button type="submit" { "Search" }
        }
        (table(
            &format!("Employees ({} found of {})", found.len(), employees.len()),
            &["Code", "Name", "Status", "Site", "Department", "Default shift", "Review"],
            rows,
            "No employee matches.",
        ))
        (pager.links(|n| format!("{base}&page={n}")))
        @if ctx.may(Scope::Hr) {
            h2 { "Add an employee" }
            p { a.button href="/ui/people/edit" { "New employee" } }
            h2 { "Import a file" }
            (import_form(ctx, import_error))
            @if let Some(r) = report { (import_report(r)) }
        }
    };
    Ok(layout::html(layout::page(ctx, "People", Nav::People, body)))
}

fn import_form(ctx: &UiCtx, error: Option<&str>) -> Markup {
    // Multipart bodies are not read by the session check: the CSRF token rides in the query.
    let action = format!(
        "/ui/people/import?{}={}",
        super::session::CSRF_FIELD,
        enc(ctx.csrf())
    );
    html! {
        form.card method="post" action=(action) enctype="multipart/form-data" {
            div.field.invalid[error.is_some()] {
                label for="f-file" { "Employee file (CSV or XLSX)" }
                input #f-file type="file" name="file" accept=".csv,.xlsx,.xls,.ods,text/csv" required
                    aria-describedby=@if error.is_some() { "f-file-hint f-file-error" } @else { "f-file-hint" }
                    aria-invalid=[error.map(|_| "true")];
                small.hint #f-file-hint { "A header row naming at least code and name; also status, joined on, left on, site, department, default shift." }
                @if let Some(e) = error { span.error #f-file-error { (e) } }
            }
            div.field {
                label { input type="checkbox" name="dry_run" value="true"; " Check only (write nothing)" }
            }
            div.field {
                label { input type="checkbox" name="all_or_nothing" value="true"; " Import nothing when a row is bad" }
            }
            button type="submit" { "Import" }
        }
    }
}

fn import_report(r: &ImportReport) -> Markup {
    let rows: Vec<Vec<Markup>> = r
        .errors
        .iter()
        .map(|e| vec![text(e.row.to_string()), text(&e.reason)])
        .collect();
    html! {
        section.card aria-labelledby="import-result" {
            h3 #import-result { "Import result" }
            p role="status" {
                @if r.dry_run { "Checked only: " (r.valid) " good rows would be imported" }
                @else { (r.imported) " employees imported (" (r.valid) " good rows)" }
                ", " (r.errors.len()) " bad rows."
            }
            (table("Bad rows", &["Row", "Why"], rows, "Every row was good."))
        }
    }
}

/// `POST /ui/people/import` (multipart): `file`, `dry_run`, `all_or_nothing`, as `POST
/// /api/v1/attendance/employees/import`.
async fn import_file(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    mut multipart: Multipart,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let mut file: Option<Vec<u8>> = None;
    let (mut dry_run, mut all_or_nothing) = (false, false);
    let bad = |e: axum::extract::multipart::MultipartError| {
        UiError::BadRequest(format!("reading the upload: {e}"))
    };
    while let Some(part) = multipart.next_field().await.map_err(bad)? {
        match part.name().unwrap_or_default() {
            "file" => file = Some(part.bytes().await.map_err(bad)?.to_vec()),
            "dry_run" => dry_run = part.text().await.map_err(bad)? == "true",
            "all_or_nothing" => all_or_nothing = part.text().await.map_err(bad)? == "true",
            _ => {}
        }
    }
    let q = ListQuery::default();
    let body = match file {
        Some(b) if !b.is_empty() => b,
        _ => {
            let page = render_list(&app, &ctx, &q, None, Some("choose a file to import")).await?;
            return Ok((axum::http::StatusCode::BAD_REQUEST, page).into_response());
        }
    };
    let spreadsheet =
        body.starts_with(b"PK\x03\x04") || body.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]);
    let parsed = if spreadsheet {
        import::read_spreadsheet(&body)
    } else {
        import::read_csv(&body)
    }
    .and_then(|rows| import::parse_rows(&rows));
    let parsed = match parsed {
        Ok(p) => p,
        Err(reason) => {
            let page = render_list(&app, &ctx, &q, None, Some(&reason)).await?;
            return Ok((axum::http::StatusCode::BAD_REQUEST, page).into_response());
        }
    };
    let report = setup::import_employees(
        app.store.as_ref(),
        parsed,
        all_or_nothing,
        dry_run,
        &author(&user),
    )
    .await
    .map_err(att_error)?;
    Ok(render_list(&app, &ctx, &q, Some(&report), None)
        .await?
        .into_response())
}

/// Which employee to edit (none = a new one).
#[derive(Debug, Default, Deserialize)]
pub struct EditQuery {
    /// The employee code.
    #[serde(default)]
    pub code: String,
}

/// The employee form's fields, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EmployeeForm {
    /// `true` when editing a stored employee (the code is then fixed).
    #[serde(default)]
    pub existing: String,
    /// Employee code.
    #[serde(default)]
    pub code: String,
    /// Full name.
    #[serde(default)]
    pub name: String,
    /// active, inactive or left.
    #[serde(default)]
    pub status: String,
    /// First working day, `YYYY-MM-DD` (site local).
    #[serde(default)]
    pub joined_on: String,
    /// Last working day, `YYYY-MM-DD` (site local).
    #[serde(default)]
    pub left_on: String,
    /// Site name (empty = none).
    #[serde(default)]
    pub site: String,
    /// Department.
    #[serde(default)]
    pub department: String,
    /// Default shift name (empty = none).
    #[serde(default)]
    pub default_shift: String,
}

impl EmployeeForm {
    fn of(e: &Employee) -> EmployeeForm {
        let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
        EmployeeForm {
            existing: "true".into(),
            code: e.code.clone(),
            name: e.name.clone(),
            status: e.status.as_str().into(),
            joined_on: date(e.joined_on),
            left_on: date(e.left_on),
            site: e.site.clone().unwrap_or_default(),
            department: e.department.clone().unwrap_or_default(),
            default_shift: e.default_shift.clone().unwrap_or_default(),
        }
    }

    /// The employee the form describes, or the message of each field that is wrong.
    pub fn parse(&self) -> Result<Employee, FormErrors> {
        let mut errors = FormErrors::new();
        let code = self.code.trim();
        if code.is_empty() {
            errors.add("code", "the employee code is required");
        } else if code.chars().any(char::is_control) || code.len() > 64 {
            errors.add("code", "the code must be 1–64 visible characters");
        }
        if self.name.trim().is_empty() {
            errors.add("name", "the name is required");
        }
        let status = EmployeeStatus::parse(&self.status).unwrap_or_else(|| {
            errors.add("status", "choose active, inactive or left");
            EmployeeStatus::Active
        });
        let mut date = |name: &str, s: &str| -> Option<NaiveDate> {
            let s = s.trim();
            if s.is_empty() {
                return None;
            }
            match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    errors.add(name, format!("{s:?} is not a date (YYYY-MM-DD)"));
                    None
                }
            }
        };
        let joined_on = date("joined_on", &self.joined_on);
        let left_on = date("left_on", &self.left_on);
        if let (Some(j), Some(l)) = (joined_on, left_on) {
            if l < j {
                errors.add("left_on", "the last day is before the first day");
            }
        }
        if status == EmployeeStatus::Left && left_on.is_none() && errors.get("left_on").is_none() {
            errors.add("left_on", "an employee who left needs the last working day");
        }
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Employee {
            code: code.to_owned(),
            name: self.name.trim().to_owned(),
            status,
            joined_on,
            left_on,
            site: opt(&self.site),
            department: opt(&self.department),
            default_shift: opt(&self.default_shift),
        })
    }
}

/// `GET /ui/people/edit?code=`: the form of one employee (empty code: a new one), with their PIN mappings.
async fn edit_page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Query(q): Query<EditQuery>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let form = if q.code.is_empty() {
        EmployeeForm {
            status: "active".into(),
            ..EmployeeForm::default()
        }
    } else {
        let e = app
            .store
            .list_employees()
            .await?
            .into_iter()
            .find(|e| e.code == q.code)
            .ok_or_else(|| UiError::NotFound(format!("no employee {:?}", q.code)))?;
        EmployeeForm::of(&e)
    };
    Ok(render_edit(&app, &ctx, &form, &FormErrors::new())
        .await?
        .into_response())
}

async fn render_edit(
    app: &App,
    ctx: &UiCtx,
    form: &EmployeeForm,
    errors: &FormErrors,
) -> Result<axum::response::Html<String>, UiError> {
    let store = app.store.as_ref();
    let none = || (String::new(), "— none —".to_owned());
    let sites: Vec<(String, String)> = std::iter::once(none())
        .chain(
            store
                .list_sites()
                .await?
                .into_iter()
                .map(|s| (s.name.clone(), s.name)),
        )
        .collect();
    let shifts: Vec<(String, String)> = std::iter::once(none())
        .chain(
            store
                .list_shifts()
                .await?
                .into_iter()
                .map(|s| (s.name.clone(), s.name)),
        )
        .collect();
    let existing = form.existing == "true";
    let title = if existing {
        format!("Employee {}", form.code)
    } else {
        "New employee".to_owned()
    };
    let mappings: Vec<PinMapping> = if existing {
        store
            .list_mappings()
            .await?
            .into_iter()
            .filter(|m| m.employee_code == form.code)
            .collect()
    } else {
        Vec::new()
    };
    let e = |f: &str| errors.get(f);
    let body = html! {
        p { a href="/ui/people" { "← All employees" } }
        @if ctx.may(Scope::Hr) {
            form.card method="post" action="/ui/people/save" novalidate {
                (csrf_field(ctx))
                (form_error(errors))
                input type="hidden" name="existing" value=(form.existing);
                @if existing {
                    input type="hidden" name="code" value=(form.code);
                    p { "Code: " strong { (form.code) } }
                } @else {
                    (field("Code", "code", "text", &form.code, e("code"), Some("a PIN equal to the code maps itself on the employee's site")))
                }
                (field("Name", "name", "text", &form.name, e("name"), None))
                (select("Status", "status", &status_options(), &form.status, e("status")))
                div.row {
                    (field("First working day", "joined_on", "date", &form.joined_on, e("joined_on"), None))
                    (field("Last working day", "left_on", "date", &form.left_on, e("left_on"), Some("for status left")))
                }
                (select("Site", "site", &sites, &form.site, e("site")))
                (field("Department", "department", "text", &form.department, e("department"), None))
                (select("Default shift", "default_shift", &shifts, &form.default_shift, e("default_shift")))
                button type="submit" { "Save" }
            }
        } @else {
            dl.facts {
                dt { "Code" } dd { (form.code) }
                dt { "Name" } dd { (form.name) }
                dt { "Status" } dd { (form.status) }
                dt { "Site" } dd { (form.site) }
                dt { "Department" } dd { (form.department) }
                dt { "Default shift" } dd { (form.default_shift) }
            }
        }
        @if existing {
            h2 { "PIN mappings" }
            (table(
                "PINs mapped to this employee",
                &["Scope", "Site or device", "PIN"],
                mappings.iter().map(|m| vec![text(m.scope.as_str()), text(&m.scope_key), text(&m.pin)]).collect(),
                "No explicit mapping (a PIN equal to the code maps itself on the employee's site).",
            ))
            p { a href={"/ui/review?site=" (enc(&form.site)) "&q=" (enc(&form.code))} { "This employee's month" } }
        }
    };
    Ok(layout::html(layout::page(ctx, &title, Nav::People, body)))
}

/// `POST /ui/people/save`: add or change one employee (scope `hr`), as `POST /api/v1/attendance/employees`.
async fn save(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Form(form): Form<EmployeeForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let again = |errors: FormErrors| {
        let app = app.clone();
        let ctx = ctx.clone();
        let form = form.clone();
        async move {
            let page = render_edit(&app, &ctx, &form, &errors).await?;
            Ok::<_, UiError>((axum::http::StatusCode::BAD_REQUEST, page).into_response())
        }
    };
    let employee = match form.parse() {
        Ok(e) => e,
        Err(errors) => return again(errors).await,
    };
    let employees = app.store.list_employees().await?;
    if form.existing != "true" && employees.iter().any(|e| e.code == employee.code) {
        let mut errors = FormErrors::new();
        errors.add(
            "code",
            format!("employee {} exists already; edit it instead", employee.code),
        );
        return again(errors).await;
    }
    let code = employee.code.clone();
    if let Err(e) = setup::put_employee(app.store.as_ref(), employee, &author(&user)).await {
        let message = refusal(e)?;
        let mut errors = FormErrors::new();
        let field = if message.starts_with("site") {
            "site"
        } else if message.starts_with("shift") {
            "default_shift"
        } else {
            "_form"
        };
        errors.add(field, message);
        return again(errors).await;
    }
    Ok(layout::redirect_with_flash(
        &format!("/ui/people/edit?code={}", enc(&code)),
        Flash::ok(format!("Employee {code} saved")),
    ))
}

/// `GET /ui/mappings`: every explicit PIN mapping, with the add form.
async fn mappings_page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    Ok(
        render_mappings(&app, &ctx, &MappingForm::default(), &FormErrors::new())
            .await?
            .into_response(),
    )
}

/// A mapping to add or remove, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MappingForm {
    /// `site` or `device`.
    #[serde(default)]
    pub scope: String,
    /// The site name or device SN.
    #[serde(default)]
    pub scope_key: String,
    /// The PIN as the device sends it.
    #[serde(default)]
    pub pin: String,
    /// The employee code.
    #[serde(default)]
    pub employee_code: String,
}

async fn render_mappings(
    app: &App,
    ctx: &UiCtx,
    form: &MappingForm,
    errors: &FormErrors,
) -> Result<axum::response::Html<String>, UiError> {
    let mappings = app.store.list_mappings().await?;
    let hr = ctx.may(Scope::Hr);
    let rows: Vec<Vec<Markup>> = mappings
        .iter()
        .map(|m| {
            let mut row = vec![
                text(m.scope.as_str()),
                text(&m.scope_key),
                text(&m.pin),
                html! { a href={"/ui/people/edit?code=" (enc(&m.employee_code))} { (m.employee_code) } },
            ];
            if hr {
                row.push(html! {
                    form.inline method="post" action="/ui/mappings/remove" {
                        (csrf_field(ctx))
                        input type="hidden" name="scope" value=(m.scope.as_str());
                        input type="hidden" name="scope_key" value=(m.scope_key);
                        input type="hidden" name="pin" value=(m.pin);
                        button.secondary type="submit" aria-label={"Remove the mapping of PIN " (m.pin) " on " (m.scope_key)} { "Remove" }
                    }
                });
            }
            row
        })
        .collect();
    let mut headers = vec!["Scope", "Site or device", "PIN", "Employee"];
    if hr {
        headers.push("Action");
    }
    let scopes = vec![
        ("device".to_owned(), "one device".to_owned()),
        ("site".to_owned(), "every device of a site".to_owned()),
    ];
    let e = |f: &str| errors.get(f);
    let body = html! {
        p { a href="/ui/people" { "← Employees" } " · " a href="/ui/unmapped" { "Unmapped PINs" } }
        (table("PIN mappings", &headers, rows, "No explicit mapping yet."))
        @if hr {
            h2 { "Add a mapping" }
            form.card method="post" action="/ui/mappings/add" novalidate {
                (csrf_field(ctx))
                (form_error(errors))
                (select("Applies to", "scope", &scopes, if form.scope.is_empty() { "device" } else { &form.scope }, e("scope")))
                (field("Device SN or site name", "scope_key", "text", &form.scope_key, e("scope_key"), None))
                (field("PIN", "pin", "text", &form.pin, e("pin"), Some("as the terminal sends it; leading zeros matter")))
                (field("Employee code", "employee_code", "text", &form.employee_code, e("employee_code"), None))
                button type="submit" { "Add mapping" }
            }
        }
    };
    Ok(layout::html(layout::page(
        ctx,
        "PIN mappings",
        Nav::People,
        body,
    )))
}

impl MappingForm {
    /// The mapping, or the message of each wrong field.
    pub fn parse(&self) -> Result<PinMapping, FormErrors> {
        let mut errors = FormErrors::new();
        let scope = MapScope::parse(self.scope.trim());
        if scope.is_none() {
            errors.add("scope", "choose one device or every device of a site");
        }
        if self.scope_key.trim().is_empty() {
            errors.add("scope_key", "name the device (SN) or the site");
        }
        if self.pin.is_empty() {
            errors.add("pin", "the PIN is required");
        } else if self.pin.trim() != self.pin {
            errors.add("pin", "the PIN has spaces around it");
        }
        if self.employee_code.trim().is_empty() {
            errors.add("employee_code", "the employee code is required");
        }
        match scope {
            Some(scope) if errors.is_empty() => Ok(PinMapping {
                scope,
                scope_key: self.scope_key.trim().to_owned(),
                pin: self.pin.clone(),
                employee_code: self.employee_code.trim().to_owned(),
            }),
            _ => Err(errors),
        }
    }
}

/// `POST /ui/mappings/add` (scope `hr`), as `POST /api/v1/attendance/mappings`.
async fn add_mapping(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Form(form): Form<MappingForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let outcome = match form.parse() {
        Ok(m) => map_and_replay(&app, m, &author(&user)).await?,
        Err(errors) => Err(errors),
    };
    match outcome {
        Ok(text) => Ok(layout::redirect_with_flash("/ui/mappings", Flash::ok(text))),
        Err(errors) => Ok((
            axum::http::StatusCode::BAD_REQUEST,
            render_mappings(&app, &ctx, &form, &errors).await?,
        )
            .into_response()),
    }
}

/// Add a mapping; then try again, on every sink, the events parked because the sink did not know the employee.
/// `Ok(Err(errors))` is a refusal to show on the form (the field named where the message says which).
async fn map_and_replay(
    app: &App,
    m: PinMapping,
    author: &str,
) -> Result<Result<String, FormErrors>, UiError> {
    let store = app.store.as_ref();
    let (pin, key, code) = (m.pin.clone(), m.scope_key.clone(), m.employee_code.clone());
    let scope = m.scope;
    if let Err(e) = setup::add_mapping(store, m, author).await {
        let message = refusal(e)?;
        let mut errors = FormErrors::new();
        let field = if message.contains("employee") {
            "employee_code"
        } else if message.contains("SN") || message.contains("site") || message.contains("device") {
            "scope_key"
        } else {
            "_form"
        };
        errors.add(field, message);
        return Ok(Err(errors));
    }
    let counted = pin_punches(app, scope, &key, &pin).await?;
    let retried = retry_unmapped(store).await;
    Ok(Ok(format!(
        "PIN {pin} on {} {key} → employee {code}: {counted} stored punches now count{}",
        scope.as_str(),
        if retried > 0 {
            format!("; {retried} parked deliveries are tried again")
        } else {
            String::new()
        }
    )))
}

/// How many stored punches a PIN has on the mapping's device or site.
async fn pin_punches(app: &App, scope: MapScope, key: &str, pin: &str) -> Result<u64, UiError> {
    let devices = app.store.list_devices().await?;
    let in_scope = |sn: &str| match scope {
        MapScope::Device => sn == key,
        MapScope::Site => devices
            .iter()
            .any(|d| d.sn.as_str() == sn && d.site.as_deref() == Some(key)),
    };
    Ok(app
        .seen
        .get(&app.store)
        .await?
        .iter()
        .filter(|s| s.pin == pin && in_scope(s.device_sn.as_str()))
        .map(|s| s.count)
        .sum())
}

/// Retry every sink's events parked as unmapped (what the sink supervisor also does on its timer); returns how
/// many were set to go. A failure is logged: the mapping is made either way, and the timer retries.
async fn retry_unmapped(store: &dyn Store) -> usize {
    let mut n = 0;
    match store.list_sinks().await {
        Ok(sinks) => {
            for sink in sinks {
                match store
                    .retry_sink(&sink.name, Some(ParkKind::Unmapped), Utc::now())
                    .await
                {
                    Ok(k) => n += k,
                    Err(e) => {
                        tracing::warn!(sink = %sink.name, error = %e, "retrying unmapped events failed")
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing sinks to retry unmapped events failed"),
    }
    n
}

/// `POST /ui/mappings/remove` (scope `hr`), as `DELETE /api/v1/attendance/mappings`: the PIN's punches go back
/// to the unmapped queue.
async fn remove_mapping(
    State(app): State<App>,
    user: UiUser,
    Form(form): Form<MappingForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let scope = MapScope::parse(&form.scope).ok_or_else(|| {
        UiError::BadRequest(format!("scope {:?} is not site or device", form.scope))
    })?;
    let subject = format!("{}:{}/{}", scope.as_str(), form.scope_key, form.pin);
    app.store
        .remove_mapping(
            scope,
            &form.scope_key,
            &form.pin,
            setup::audit(
                &author(&user),
                "mapping.remove",
                &subject,
                serde_json::json!({}),
            ),
        )
        .await?;
    Ok(layout::redirect_with_flash(
        "/ui/mappings",
        Flash::ok(format!(
            "Mapping of PIN {} on {} removed; its punches wait in the unmapped queue",
            form.pin, form.scope_key
        )),
    ))
}

/// One click on the unmapped queue: map this PIN to an existing employee, or create the employee.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MapForm {
    /// The device the PIN was seen on.
    #[serde(default)]
    pub device_sn: String,
    /// The PIN.
    #[serde(default)]
    pub pin: String,
    /// `device` (this terminal only) or `site` (every terminal of the device's site).
    #[serde(default)]
    pub scope: String,
    /// An existing employee's code, or the code of the employee to create.
    #[serde(default)]
    pub employee_code: String,
    /// The name of the employee to create (only when the code is new).
    #[serde(default)]
    pub new_name: String,
}

/// Which page of the unmapped queue.
#[derive(Debug, Default, Deserialize)]
pub struct UnmappedQuery {
    /// 1-based page (newest last punch first).
    #[serde(default)]
    pub page: usize,
}

/// `GET /ui/unmapped`: the unmapped queue, [`PER_PAGE`] PINs a page.
async fn unmapped_page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Query(q): Query<UnmappedQuery>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    Ok(render_unmapped(&app, &ctx, q.page, None)
        .await?
        .into_response())
}

/// The queue's page `page`; with a refused form, the page holding its row (where the message is shown).
async fn render_unmapped(
    app: &App,
    ctx: &UiCtx,
    page: usize,
    failed: Option<(&MapForm, &FormErrors)>,
) -> Result<axum::response::Html<String>, UiError> {
    let store = app.store.as_ref();
    let resolver = Resolver::new(
        &store.list_mappings().await?,
        &store.list_employees().await?,
        &store.list_devices().await?,
    );
    let mut queue = mapping::unmapped(&resolver, &super::pins_seen(app).await?);
    queue.sort_by(|a, b| {
        (b.last_seen, &a.device_sn, &a.pin).cmp(&(a.last_seen, &b.device_sn, &b.pin))
    });
    let page = failed
        .and_then(|(f, _)| {
            queue
                .iter()
                .position(|u| f.device_sn == u.device_sn && f.pin == u.pin)
        })
        .map_or(page, |i| i / PER_PAGE + 1);
    let pager = Pager::new(page, PER_PAGE, queue.len());
    let hr = ctx.may(Scope::Hr);
    let rows: Vec<Vec<Markup>> = queue[pager.range()]
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let mut row = vec![
                text(&u.device_sn),
                text(u.site.as_deref().unwrap_or("—")),
                html! { strong { (u.pin) } },
                text(u.count.to_string()),
                text(utc(u.first_seen)),
                text(utc(u.last_seen)),
            ];
            if hr {
                let errors = failed.filter(|(f, _)| f.device_sn == u.device_sn && f.pin == u.pin);
                row.push(map_form(ctx, i, u, errors));
            }
            row
        })
        .collect();
    let mut headers = vec![
        "Device",
        "Site",
        "PIN",
        "Punches",
        "First (UTC)",
        "Last (UTC)",
    ];
    if hr {
        headers.push("Map to");
    }
    let body = html! {
        p {
            "PINs on terminals that map to no employee. Their punches are kept; once a PIN is mapped they count at "
            "once in the month, and deliveries parked for it are tried again."
        }
        (table(&format!("Unmapped PINs ({})", queue.len()), &headers, rows, "No unmapped PIN: every punch has an employee."))
        (pager.links(|n| format!("/ui/unmapped?page={n}")))
    };
    Ok(layout::html(layout::page(
        ctx,
        "Unmapped PINs",
        Nav::Unmapped,
        body,
    )))
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn map_form(
    ctx: &UiCtx,
    i: usize,
    u: &Unmapped,
    failed: Option<(&MapForm, &FormErrors)>,
) -> Markup {
    let (form, errors) = match failed {
        Some((f, e)) => (f.clone(), e.clone()),
        None => (
            MapForm {
                scope: if u.site.is_some() { "site" } else { "device" }.into(),
                ..MapForm::default()
            },
            FormErrors::new(),
        ),
    };
    // Ids carry the row number: every row has the same form.
    let id = |name: &str| format!("m{i}-{name}");
    let err = |name: &str| errors.get(name).map(str::to_owned);
    html! {
        form.map method="post" action="/ui/unmapped/map" {
            (csrf_field(ctx))
            input type="hidden" name="device_sn" value=(u.device_sn);
            input type="hidden" name="pin" value=(u.pin);
            (form_error(&errors))
            div.field.invalid[err("employee_code").is_some()] {
                label for=(id("code")) { "Employee code" }
                input id=(id("code")) name="employee_code" type="text" value=(form.employee_code) required
                    aria-invalid=[err("employee_code").map(|_| "true")]
                    aria-describedby=[err("employee_code").map(|_| id("code-error"))];
                @if let Some(m) = err("employee_code") { span.error id=(id("code-error")) { (m) } }
            }
            div.field.invalid[err("new_name").is_some()] {
                label for=(id("name")) { "Name, to create a new employee" }
                input id=(id("name")) name="new_name" type="text" value=(form.new_name)
                    aria-invalid=[err("new_name").map(|_| "true")]
                    aria-describedby=[err("new_name").map(|_| id("name-error"))];
                @if let Some(m) = err("new_name") { span.error id=(id("name-error")) { (m) } }
            }
            @if u.site.is_some() {
                div.field {
                    label for=(id("scope")) { "For" }
                    select id=(id("scope")) name="scope" {
                        option value="site" selected[form.scope == "site"] { "every terminal of the site" }
                        option value="device" selected[form.scope == "device"] { "this terminal only" }
                    }
                }
            } @else {
                input type="hidden" name="scope" value="device";
            }
            button type="submit" aria-label={"Map PIN " (u.pin) " on " (u.device_sn)} { "Map" }
        }
    }
}

/// `POST /ui/unmapped/map` (scope `hr`): map the PIN to an existing employee; when the code is new and a name is
/// given, create the employee (on the device's site) first. Then the sinks' parked unmapped events are retried.
async fn map_unmapped(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Form(form): Form<MapForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let store = app.store.as_ref();
    let who = author(&user);
    let mut errors = FormErrors::new();
    let code = form.employee_code.trim().to_owned();
    let device = crate::domain::DeviceSn::parse(&form.device_sn)
        .map_err(|e| UiError::BadRequest(format!("device SN: {e}")))?;
    let site = store.get_device(&device).await?.site;
    let scope = match (form.scope.as_str(), &site) {
        ("site", Some(s)) => Some((MapScope::Site, s.clone())),
        ("device", _) => Some((MapScope::Device, device.as_str().to_owned())),
        _ => None,
    };
    if code.is_empty() {
        errors.add(
            "employee_code",
            "give the code of an employee (or of the one to create)",
        );
    }
    let employees: HashMap<String, Employee> = store
        .list_employees()
        .await?
        .into_iter()
        .map(|e| (e.code.clone(), e))
        .collect();
    let create = !code.is_empty() && !employees.contains_key(&code);
    if create && form.new_name.trim().is_empty() {
        errors.add(
            "employee_code",
            format!("no employee {code}; give a name to create one, or an existing code"),
        );
    }
    let Some((scope, key)) = scope else {
        errors.add(
            "_form",
            "this terminal has no site: map the PIN on the terminal only",
        );
        return again_unmapped(&app, &ctx, &form, &errors).await;
    };
    if !errors.is_empty() {
        return again_unmapped(&app, &ctx, &form, &errors).await;
    }
    let mut created = String::new();
    if create {
        let e = Employee {
            code: code.clone(),
            name: form.new_name.trim().to_owned(),
            status: EmployeeStatus::Active,
            joined_on: None,
            left_on: None,
            site: site.clone(),
            department: None,
            default_shift: None,
        };
        if let Err(e) = setup::put_employee(store, e, &who).await {
            errors.add("new_name", refusal(e)?);
            return again_unmapped(&app, &ctx, &form, &errors).await;
        }
        created = format!("employee {code} created; ");
    }
    let m = PinMapping {
        scope,
        scope_key: key,
        pin: form.pin.clone(),
        employee_code: code,
    };
    match map_and_replay(&app, m, &who).await? {
        Ok(text) => Ok(layout::redirect_with_flash(
            "/ui/unmapped",
            Flash::ok(format!("{created}{text}")),
        )),
        Err(errors) => again_unmapped(&app, &ctx, &form, &errors).await,
    }
}

async fn again_unmapped(
    app: &App,
    ctx: &UiCtx,
    form: &MapForm,
    errors: &FormErrors,
) -> Result<Response, UiError> {
    Ok((
        axum::http::StatusCode::BAD_REQUEST,
        render_unmapped(app, ctx, 1, Some((form, errors))).await?,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> EmployeeForm {
        EmployeeForm {
            code: "E7".into(),
            name: "Ada".into(),
            status: "active".into(),
            ..EmployeeForm::default()
        }
    }

    #[test]
    fn a_good_form_is_an_employee() {
        let mut f = form();
        f.joined_on = "2026-01-05".into();
        f.site = " HQ ".into();
        let e = f.parse().expect("valid");
        assert_eq!(e.code, "E7");
        assert_eq!(e.joined_on, NaiveDate::from_ymd_opt(2026, 1, 5));
        assert_eq!(e.site.as_deref(), Some("HQ"));
        assert_eq!(e.department, None);
    }

    #[test]
    fn each_bad_field_has_its_message() {
        let f = EmployeeForm {
            status: "gone".into(),
            joined_on: "5.1.26x".into(),
            ..EmployeeForm::default()
        };
        let errors = f.parse().expect_err("invalid");
        assert_eq!(errors.get("code"), Some("the employee code is required"));
        assert_eq!(errors.get("name"), Some("the name is required"));
        assert_eq!(
            errors.get("status"),
            Some("choose active, inactive or left")
        );
        assert_eq!(
            errors.get("joined_on"),
            Some("\"5.1.26x\" is not a date (YYYY-MM-DD)")
        );
        let mut left = form();
        left.status = "left".into();
        assert_eq!(
            left.parse().expect_err("no last day").get("left_on"),
            Some("an employee who left needs the last working day")
        );
    }

    #[test]
    fn search_matches_code_name_department_and_status() {
        let mut a = form().parse().expect("valid");
        a.department = Some("Stores".into());
        let mut b = a.clone();
        b.code = "E8".into();
        b.name = "Grace".into();
        b.status = EmployeeStatus::Left;
        b.department = None;
        let all = vec![a, b];
        let codes = |v: Vec<&Employee>| v.iter().map(|e| e.code.clone()).collect::<Vec<_>>();
        assert_eq!(codes(search(&all, "grace", "")), ["E8"]);
        assert_eq!(codes(search(&all, "stor", "")), ["E7"]);
        assert_eq!(codes(search(&all, "", "left")), ["E8"]);
        assert_eq!(codes(search(&all, "e", "")), ["E7", "E8"]);
    }

    #[test]
    fn a_mapping_form_names_its_wrong_fields() {
        let errors = MappingForm {
            scope: "room".into(),
            pin: " 7".into(),
            ..MappingForm::default()
        }
        .parse()
        .expect_err("invalid");
        assert!(errors.get("scope").is_some());
        assert_eq!(errors.get("pin"), Some("the PIN has spaces around it"));
        assert!(errors.get("scope_key").is_some() && errors.get("employee_code").is_some());
    }
}
