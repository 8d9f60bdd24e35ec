//! The monthly review (`/ui/review`): a site's month grid, paged (10,000 employees stay responsive: one page of
//! 50 rows is rendered from the month kept by [`crate::attendance::month_cache`]), exceptions highlighted; a day's
//! detail with its punches (device, state, what they counted as, the raw line the terminal sent), and HR's work
//! on it — add or void a punch, set the status, decide overtime, review an exception, revoke a correction, each
//! with a reason; sign-off and reopen; CSV and XLSX downloads; the audit log (`/ui/audit`).
//!
//! Reading and downloading need scope `read`; every change needs `hr`, as the JSON API. Changes go through
//! `attendance::review` (checked, audited, refused on a signed-off month), author `ui:<name>`.
//!
//! The grid waits for its month at most [`GRID_WAIT`] ([`MonthCache::month_within`]): a month computed whole (the
//! first view of a month, or after a change that recomputes all of it) goes on in the background, and the page
//! says so and loads itself again every [`COMPUTING_REFRESH_SECS`] until the grid is there (or the computation's
//! error, which the next view shows). The day page, the grid shown again with a refused sign-off or reopen, and the
//! CSV and XLSX downloads wait for the month as long as it takes (they come after the grid, or are files).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, badge, csrf_field, enc, table, text, Flash, FormErrors};
use super::paging::Pager;
use super::people::{att_error, author, form_error, refusal};
use super::{require, Nav, UiCtx, UiError, UiUser};
use crate::app::App;
use crate::attendance::month_cache::MonthCache;
use crate::attendance::monthly::{status_mark, DayCell, EmployeeMonth, ExceptionRow, Month};
use crate::attendance::review;
use crate::attendance::rules::{ClassifiedPunch, DayStatus, PunchRole};
use crate::domain::{PunchState, Scope};
use crate::store::attendance::{Correction, CorrectionKind, CorrectionRecord, ReviewState};
use crate::store::{PunchFilter, Store, TimeBound};

/// Employees per page of the grid.
pub const PER_PAGE: usize = 50;

/// How long the grid page waits for its month before it answers that the month is being computed. Bringing a
/// computed month up to date takes a few ms; computing one whole does not fit (185 ms for a site of 1,000
/// employees at 10 M punches, seconds for 10,000), so HR gets a page that loads itself again instead of a request
/// that hangs, and the page's server time stays under issue 11's 100 ms.
pub const GRID_WAIT: Duration = Duration::from_millis(60);

/// Seconds after which the "being computed" page loads itself again.
pub const COMPUTING_REFRESH_SECS: u32 = 1;

/// Audit log entries per page.
const AUDIT_PER_PAGE: usize = 100;

/// The statuses HR may set on a day.
const STATUSES: &[&str] = &[
    "present",
    "absent",
    "half-day",
    "leave",
    "weekly-off",
    "holiday",
    "inactive",
];

/// The review routes (relative to `/ui`), with the instance's month cache (shared with the JSON API).
pub fn routes(cache: Arc<MonthCache>) -> Router<App> {
    Router::new()
        .route("/review", get(grid_page))
        .route("/review/day", get(day_page))
        .route("/review/correct", post(correct))
        .route("/review/exception", post(review_exception))
        .route("/review/revoke", post(revoke))
        .route("/review/signoff", post(sign_off))
        .route("/review/reopen", post(reopen))
        .route("/review/export", get(export))
        .route("/audit", get(audit_page))
        .layer(Extension(cache))
}

/// Which month and which rows.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GridQuery {
    /// Site (default: the first).
    #[serde(default)]
    pub site: String,
    /// `YYYY-MM` (default: this month in the site's zone).
    #[serde(default)]
    pub month: String,
    /// Only employees whose code or name contains this (case-insensitive).
    #[serde(default)]
    pub q: String,
    /// `exceptions` = only employees with an open exception; `incomplete` = only with an incomplete day.
    #[serde(default)]
    pub only: String,
    /// 1-based page.
    #[serde(default)]
    pub page: usize,
}

/// Fill in the site and month a query leaves out: the first site, this month in its zone.
async fn resolve(store: &dyn Store, site: &str, month: &str) -> Result<(String, String), UiError> {
    let sites = store.list_sites().await?;
    let site = if site.is_empty() {
        sites
            .first()
            .ok_or_else(|| {
                UiError::NotFound("no site yet: add one under Shifts → Sites first".into())
            })?
            .clone()
    } else {
        sites
            .iter()
            .find(|s| s.name == site)
            .ok_or_else(|| UiError::NotFound(format!("no site {site:?}")))?
            .clone()
    };
    let month = if month.is_empty() {
        let zone: Tz = site.time_zone.parse().unwrap_or(Tz::UTC);
        Utc::now().with_timezone(&zone).format("%Y-%m").to_string()
    } else {
        month.to_owned()
    };
    Ok((site.name, month))
}

/// The rows of the grid a query selects, in code order.
pub fn select_rows<'a>(m: &'a Month, q: &str, only: &str) -> Vec<&'a EmployeeMonth> {
    let needle = q.trim().to_lowercase();
    m.employees
        .iter()
        .filter(|e| {
            needle.is_empty()
                || e.code.to_lowercase().contains(&needle)
                || e.name.to_lowercase().contains(&needle)
        })
        .filter(|e| match only {
            "exceptions" => e.days.iter().any(|d| d.open_exceptions > 0),
            "incomplete" => e.days.iter().any(|d| d.status == DayStatus::Incomplete),
            _ => true,
        })
        .collect()
}

fn status_name(s: DayStatus) -> &'static str {
    match s {
        DayStatus::Present => "present",
        DayStatus::Absent => "absent",
        DayStatus::HalfDay => "half day",
        DayStatus::WeeklyOff => "weekly off",
        DayStatus::Holiday => "holiday",
        DayStatus::Leave => "leave",
        DayStatus::Inactive => "inactive",
        DayStatus::Incomplete => "incomplete",
    }
}

fn status_class(s: DayStatus) -> &'static str {
    match s {
        DayStatus::Present => "s-p",
        DayStatus::Absent => "s-a",
        DayStatus::HalfDay => "s-h",
        DayStatus::WeeklyOff | DayStatus::Holiday => "s-off",
        DayStatus::Leave => "s-l",
        DayStatus::Inactive => "s-i",
        DayStatus::Incomplete => "s-q",
    }
}

/// Hours and minutes, `7:45`.
pub fn hm(secs: i64) -> String {
    let m = secs.max(0) / 60;
    format!("{}:{:02}", m / 60, m % 60)
}

fn day_url(site: &str, month: &str, code: &str, date: NaiveDate) -> String {
    format!(
        "/ui/review/day?site={}&month={}&employee={}&date={date}",
        enc(site),
        enc(month),
        enc(code)
    )
}

fn grid_url(site: &str, month: &str) -> String {
    format!("/ui/review?site={}&month={}", enc(site), enc(month))
}

/// One page of the month grid: employees as rows, dates as columns, then totals. Every cell links to its day;
/// a cell with an open exception is marked (`!`, and a class for colour), one with a correction `c`.
pub fn grid_table(m: &Month, rows: &[&EmployeeMonth]) -> Markup {
    html! {
        div.table-wrap.grid tabindex="0" role="region" aria-label={"Month grid " (m.site) " " (m.month)} {
            table.grid {
                caption { "Month grid of " (m.site) ", " (m.month) " (P present, A absent, H half day, WO weekly off, HO holiday, L leave, - inactive, ? incomplete; ! open exception, c corrected)" }
                thead {
                    tr {
                        th scope="col" { "Employee" }
                        @for d in &m.dates {
                            th scope="col" abbr=(d.format("%A %-d")) { (d.format("%-d")) br; small { (d.format("%a")) } }
                        }
                        th.num scope="col" abbr="present" { "P" }
                        th.num scope="col" abbr="absent" { "A" }
                        th.num scope="col" { "Late" }
                        th.num scope="col" abbr="worked hours" { "Worked" }
                        th.num scope="col" abbr="overtime hours" { "OT" }
                        th.num scope="col" abbr="open exceptions" { "Open" }
                    }
                }
                tbody {
                    @for e in rows {
                        tr {
                            th scope="row" { span.code { (e.code) } " " span.name { (e.name) } }
                            @for cell in &e.days { (grid_cell(m, e, cell)) }
                            td.num { (e.totals.days_present) }
                            td.num { (e.totals.days_absent) }
                            td.num { (e.totals.late_count) }
                            td.num { (hm(e.totals.worked_secs)) }
                            td.num { (hm(e.totals.overtime_secs + e.totals.overtime_off_day_secs)) }
                            td.num { (e.days.iter().map(|d| d.open_exceptions).sum::<u32>()) }
                        }
                    }
                }
            }
        }
    }
}

fn grid_cell(m: &Month, e: &EmployeeMonth, cell: &DayCell) -> Markup {
    let date = cell.result.date;
    let mut mark = status_mark(cell.status).to_owned();
    if cell.open_exceptions > 0 {
        mark.push('!');
    }
    if !cell.corrections.is_empty() {
        mark.push('c');
    }
    let mut label = format!("{} {}: {}", e.code, date, status_name(cell.status));
    if cell.open_exceptions > 0 {
        label.push_str(&format!(", {} open exceptions", cell.open_exceptions));
    }
    if !cell.corrections.is_empty() {
        label.push_str(", corrected");
    }
    html! {
        td class={(status_class(cell.status)) @if cell.open_exceptions > 0 { " x" }} {
            a href=(day_url(&m.site, &m.month, &e.code, date)) aria-label=(label) title=(label) { (mark) }
        }
    }
}

/// The extension the cache rides in.
type Cache = Extension<Arc<MonthCache>>;

/// `GET /ui/review`: the month grid of a site, a page of employees at a time.
async fn grid_page(
    State(app): State<App>,
    Extension(cache): Cache,
    user: UiUser,
    ctx: UiCtx,
    Query(q): Query<GridQuery>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    Ok(
        render_grid(&app, &cache, &ctx, &q, &FormErrors::new(), Some(GRID_WAIT))
            .await?
            .into_response(),
    )
}

/// The grid page; `wait`: how long to wait for the month before answering the "being computed" page (`None`:
/// as long as it takes).
async fn render_grid(
    app: &App,
    cache: &Arc<MonthCache>,
    ctx: &UiCtx,
    q: &GridQuery,
    errors: &FormErrors,
    wait: Option<Duration>,
) -> Result<axum::response::Html<String>, UiError> {
    let store = app.store.as_ref();
    let sites = store.list_sites().await?;
    if sites.is_empty() {
        let body = html! {
            p { "No site yet. A month is reviewed per site: " a href="/ui/sites" { "add a site" } " (its time zone, weekly offs and holidays), then set the site of its terminals." }
        };
        return Ok(layout::html(layout::page(ctx, "Review", Nav::Review, body)));
    }
    let (site, month) = resolve(store, &q.site, &q.month).await?;
    let m = match wait {
        None => cache
            .month(store, &site, &month, Utc::now())
            .await
            .map_err(att_error)?,
        Some(wait) => match cache
            .month_within(&app.store, &site, &month, Utc::now(), wait)
            .await
            .map_err(att_error)?
        {
            Some(m) => m,
            None => {
                let employees = store
                    .list_employees()
                    .await?
                    .iter()
                    .filter(|e| e.site.as_deref() == Some(site.as_str()))
                    .count();
                return Ok(layout::html(layout::refreshing_page(
                    ctx,
                    &format!("Review {site} {month}"),
                    Nav::Review,
                    computing_body(&sites, &site, &month, employees, q),
                    COMPUTING_REFRESH_SECS,
                )));
            }
        },
    };
    Ok(layout::html(layout::page(
        ctx,
        &format!("Review {site} {month}"),
        Nav::Review,
        grid_body(ctx, &m, &sites, q, errors),
    )))
}

/// The choice of site, month, employee and rows above the grid.
fn grid_form(
    sites: &[crate::store::attendance::Site],
    site: &str,
    month: &str,
    q: &GridQuery,
) -> Markup {
    let site_options: Vec<(String, String)> = sites
        .iter()
        .map(|s| (s.name.clone(), s.name.clone()))
        .collect();
    let only_options: Vec<(String, String)> = [
        ("", "every employee"),
        ("exceptions", "with open exceptions"),
        ("incomplete", "with incomplete days"),
    ]
    .iter()
    .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
    .collect();
    html! {
        form.row.card method="get" action="/ui/review" {
            (layout::select("Site", "site", &site_options, site, None))
            (layout::field("Month", "month", "month", month, None, None))
            (layout::field("Employee", "q", "search", &q.q, None, Some("code or name")))
            (layout::select("Show", "only", &only_options, &q.only, None))
            button type="submit" { "Show" }
        }
    }
}

/// The grid page's content while its month is being computed in the background: the same choice of month, what
/// is being computed, and a link to load the page at once (it also loads itself again).
pub fn computing_body(
    sites: &[crate::store::attendance::Site],
    site: &str,
    month: &str,
    employees: usize,
    q: &GridQuery,
) -> Markup {
    let again = format!(
        "{}&q={}&only={}&page={}",
        grid_url(site, month),
        enc(&q.q),
        enc(&q.only),
        q.page.max(1)
    );
    html! {
        link rel="stylesheet" href="/ui/assets/pages.css";
        (grid_form(sites, site, month, q))
        section.card aria-labelledby="computing-h" {
            h2 #computing-h { "Being computed" }
            p role="status" {
                "The month " (month) " of site " (site) " (" (employees) " "
                (if employees == 1 { "employee" } else { "employees" }) ") is being computed. "
                "This page loads itself again until the grid is there."
            }
            p { a href=(again) { "Load it now" } }
        }
    }
}

/// The grid page's content for one page of rows (pure: the benchmark renders it without a server).
pub fn grid_body(
    ctx: &UiCtx,
    m: &Month,
    sites: &[crate::store::attendance::Site],
    q: &GridQuery,
    errors: &FormErrors,
) -> Markup {
    let rows = select_rows(m, &q.q, &q.only);
    let pager = Pager::new(q.page, PER_PAGE, rows.len());
    let page_rows = &rows[pager.range()];
    let open: usize = m
        .exceptions
        .iter()
        .filter(|x| matches!(x.state, ReviewState::Open | ReviewState::Explained))
        .count();
    let base = format!(
        "{}&q={}&only={}",
        grid_url(&m.site, &m.month),
        enc(&q.q),
        enc(&q.only)
    );
    let page_codes: std::collections::HashSet<&str> =
        page_rows.iter().map(|e| e.code.as_str()).collect();
    let page_exceptions: Vec<&ExceptionRow> = m
        .exceptions
        .iter()
        .filter(|x| page_codes.contains(x.employee_code.as_str()))
        .filter(|x| matches!(x.state, ReviewState::Open | ReviewState::Explained))
        .take(200)
        .collect();
    let hr = ctx.may(Scope::Hr);
    html! {
        link rel="stylesheet" href="/ui/assets/pages.css";
        (grid_form(sites, &m.site, &m.month, q))
        ul.tiles {
            li { a href=(grid_url(&m.site, &m.month)) { span.n { (m.employees.len()) } span.what { "employees" } } }
            li class=@if open > 0 { "warn" } @else { "" } {
                a href={(grid_url(&m.site, &m.month)) "&only=exceptions"} { span.n { (open) } span.what { "open exceptions" } }
            }
            li class=@if m.incomplete_days > 0 { "warn" } @else { "" } {
                a href={(grid_url(&m.site, &m.month)) "&only=incomplete"} { span.n { (m.incomplete_days) } span.what { "incomplete days" } }
            }
            li class=@if m.unmapped.is_empty() { "" } @else { "bad" } {
                a href="/ui/unmapped" { span.n { (m.unmapped.len()) } span.what { "unmapped PINs" } }
            }
        }
        section.card aria-labelledby="signoff-h" {
            h2 #signoff-h { "Sign-off" }
            @if let Some(s) = &m.signed_off {
                p { (badge("ok", "signed off")) " by " (s.author) " at " (s.signed_at.format("%Y-%m-%d %H:%M UTC"))
                    @if s.forced { " (with incomplete days)" } ". The grid below is the frozen one." }
                @if !m.arrived_after_signoff.is_empty() {
                    p { (badge("warn", format!("{} punches arrived after the sign-off", m.arrived_after_signoff.len()))) " — reopen the month to count them." }
                }
                @if hr {
                    form method="post" action="/ui/review/reopen" novalidate {
                        (csrf_field(ctx))
                        input type="hidden" name="site" value=(m.site);
                        input type="hidden" name="month" value=(m.month);
                        (form_error(errors))
                        (layout::field("Why reopen", "reason", "text", "", errors.get("reason"), Some("required; kept in the audit log")))
                        button.secondary type="submit" { "Reopen " (m.month) }
                    }
                }
            } @else {
                p { (badge("muted", "open")) " Computed " (m.computed_at.format("%Y-%m-%d %H:%M:%S UTC")) "." }
                @if hr {
                    form method="post" action="/ui/review/signoff" novalidate {
                        (csrf_field(ctx))
                        input type="hidden" name="site" value=(m.site);
                        input type="hidden" name="month" value=(m.month);
                        (form_error(errors))
                        div.field.invalid[errors.get("force").is_some()] {
                            label {
                                input type="checkbox" name="force" value="true"
                                    aria-invalid=[errors.get("force").map(|_| "true")]
                                    aria-describedby=[errors.get("force").map(|_| "f-force-error")];
                                " Sign off with incomplete days as they are"
                            }
                            @if let Some(e) = errors.get("force") { span.error #f-force-error { (e) } }
                        }
                        button type="submit" { "Sign off " (m.site) " " (m.month) }
                    }
                }
            }
            p {
                "Download: "
                a href={"/ui/review/export?site=" (enc(&m.site)) "&month=" (enc(&m.month)) "&format=xlsx"} download { "XLSX" }
                " · "
                a href={"/ui/review/export?site=" (enc(&m.site)) "&month=" (enc(&m.month)) "&format=csv"} download { "CSV" }
                " · " a href="/ui/audit" { "Audit log" }
            }
        }
        (grid_table(m, page_rows))
        (pager.links(|n| format!("{base}&page={n}")))
        h2 { "Open exceptions on this page" }
        (table(
            "Open exceptions of the employees above",
            &["Employee", "Day", "Exception", "State", "Note"],
            page_exceptions.iter().map(|x| vec![
                text(&x.employee_code),
                layout::link(&day_url(&m.site, &m.month, &x.employee_code, x.date), x.date.to_string()),
                text(&x.kind),
                text(x.state.as_str()),
                text(&x.note),
            ]).collect(),
            "No open exception on this page.",
        ))
    }
}

/// Which day.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DayQuery {
    /// Site.
    #[serde(default)]
    pub site: String,
    /// `YYYY-MM`.
    #[serde(default)]
    pub month: String,
    /// Employee code.
    #[serde(default)]
    pub employee: String,
    /// The working day, `YYYY-MM-DD`.
    #[serde(default)]
    pub date: String,
}

/// `GET /ui/review/day`: one employee-day with its punches and HR's forms.
async fn day_page(
    State(app): State<App>,
    Extension(cache): Cache,
    user: UiUser,
    ctx: UiCtx,
    Query(q): Query<DayQuery>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    Ok(render_day(
        &app,
        &cache,
        &ctx,
        &q,
        &CorrectionForm::default(),
        &FormErrors::new(),
    )
    .await?
    .into_response())
}

/// The raw line a punch was read from, and where it came from.
struct RawLine {
    source: String,
    line: Option<String>,
}

/// Find the line of a journal body that holds this punch: the PIN and the terminal's local time as written in
/// ATTLOG bodies (`YYYY-MM-DD HH:MM:SS`), else the line with the PIN and the `T`-separated time (JSON, CSV).
pub fn find_raw_line(body: &[u8], pin: &str, punched_at: NaiveDateTime) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let spaced = punched_at.format("%Y-%m-%d %H:%M:%S").to_string();
    let t_sep = punched_at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let starts_with_pin = |l: &str| {
        l.split(['\t', ',', ';'])
            .next()
            .is_some_and(|first| first.trim().trim_matches('"') == pin)
    };
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .find(|l| starts_with_pin(l) && l.contains(&spaced))
        .or_else(|| {
            lines
                .iter()
                .find(|l| l.contains(pin) && (l.contains(&spaced) || l.contains(&t_sep)))
        })
        .map(|l| l.chars().take(300).collect())
}

async fn raw_lines(store: &dyn Store, punches: &[ClassifiedPunch]) -> Vec<RawLine> {
    let mut out = Vec::new();
    for p in punches {
        if p.added_by_correction || p.id <= 0 {
            out.push(RawLine {
                source: "HR correction".into(),
                line: None,
            });
            continue;
        }
        let filter = PunchFilter {
            device_sn: Some(p.device_sn.clone()),
            from: Some(TimeBound::Utc(p.at)),
            to: Some(TimeBound::Utc(p.at + chrono::Duration::seconds(1))),
            ..PunchFilter::default()
        };
        let found = match store.list_punches(&filter).await {
            Ok(list) => list.into_iter().find(|x| x.id == p.id),
            Err(e) => {
                tracing::warn!(error = %e, punch = p.id, "review: reading a punch failed");
                None
            }
        };
        let Some(punch) = found else {
            out.push(RawLine {
                source: "—".into(),
                line: None,
            });
            continue;
        };
        let line = match store.get_journal(punch.journal_id).await {
            Ok(j) => find_raw_line(&j.body, punch.pin.as_str(), punch.punched_at),
            Err(_) => None,
        };
        out.push(RawLine {
            source: format!("{} · journal #{}", punch.source.as_str(), punch.journal_id),
            line,
        });
    }
    out
}

fn zone_of(m: &Month) -> Tz {
    m.time_zone.parse().unwrap_or(Tz::UTC)
}

fn local(m: &Month, t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.with_timezone(&zone_of(m)).format("%H:%M").to_string())
        .unwrap_or_else(|| "—".into())
}

fn role_name(r: PunchRole) -> &'static str {
    match r {
        PunchRole::In => "IN",
        PunchRole::Out => "OUT",
        PunchRole::BreakOut => "break out",
        PunchRole::BreakIn => "break in",
        PunchRole::NotCounted => "not counted",
    }
}

/// A labelled input inside one of several forms on a page: the id carries the form's name so ids stay unique.
fn input_in(
    form: &str,
    label: &str,
    name: &str,
    kind: &str,
    value: &str,
    error: Option<&str>,
) -> Markup {
    let id = format!("f-{form}-{name}");
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            input id=(id) name=(name) type=(kind) value=(value) required[name == "reason" || name == "note"]
                aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| format!("{id}-error"))];
            @if let Some(e) = error { span.error id={(id) "-error"} { (e) } }
        }
    }
}

fn select_in(
    form: &str,
    label: &str,
    name: &str,
    options: &[(String, String)],
    selected: &str,
) -> Markup {
    let id = format!("f-{form}-{name}");
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                @for (v, l) in options { option value=(v) selected[v == selected] { (l) } }
            }
        }
    }
}

fn hidden_day(ctx: &UiCtx, m: &Month, code: &str, date: NaiveDate, form: &str) -> Markup {
    html! {
        (csrf_field(ctx))
        input type="hidden" name="site" value=(m.site);
        input type="hidden" name="month" value=(m.month);
        input type="hidden" name="employee" value=(code);
        input type="hidden" name="date" value=(date.to_string());
        input type="hidden" name="form" value=(form);
    }
}

async fn render_day(
    app: &App,
    cache: &MonthCache,
    ctx: &UiCtx,
    q: &DayQuery,
    form: &CorrectionForm,
    errors: &FormErrors,
) -> Result<axum::response::Html<String>, UiError> {
    let store = app.store.as_ref();
    let (site, month) = resolve(store, &q.site, &q.month).await?;
    let m = cache
        .month(store, &site, &month, Utc::now())
        .await
        .map_err(att_error)?;
    let date = NaiveDate::parse_from_str(&q.date, "%Y-%m-%d")
        .map_err(|_| UiError::BadRequest(format!("date {:?} is not YYYY-MM-DD", q.date)))?;
    let e = m
        .employees
        .iter()
        .find(|e| e.code == q.employee)
        .ok_or_else(|| {
            UiError::NotFound(format!(
                "employee {:?} is not in {site} {month}",
                q.employee
            ))
        })?;
    let cell = e
        .days
        .iter()
        .find(|d| d.result.date == date)
        .ok_or_else(|| UiError::NotFound(format!("{date} is not in {month}")))?;
    let r = &cell.result;
    let raws = raw_lines(store, &r.punches).await;
    let (from, to) = (date, date + chrono::Duration::days(1));
    // Revoked ones too: the table says who took them back, when and why.
    let corrections: Vec<CorrectionRecord> = store.corrections_of(&e.code, from, to).await?;
    let exceptions: Vec<&ExceptionRow> = m
        .exceptions
        .iter()
        .filter(|x| x.employee_code == e.code && x.date == date)
        .collect();
    let may_change = ctx.may(Scope::Hr) && m.signed_off.is_none();
    let err = |f: &str, name: &str| (form.form == f).then(|| errors.get(name)).flatten();
    let val = |f: &str, name: &str, default: &str| -> String {
        if form.form == f {
            form.value(name).to_owned()
        } else {
            default.to_owned()
        }
    };
    let state_options: Vec<(String, String)> = [
        (0u16, "check-in"),
        (1, "check-out"),
        (2, "break-out"),
        (3, "break-in"),
        (4, "overtime-in"),
        (5, "overtime-out"),
    ]
    .iter()
    .map(|(c, n)| (c.to_string(), format!("{n} ({c})")))
    .collect();
    let statuses: Vec<(String, String)> = STATUSES
        .iter()
        .map(|s| ((*s).to_owned(), (*s).to_owned()))
        .collect();
    let review_states: Vec<(String, String)> = ["explained", "approved", "rejected"]
        .iter()
        .map(|s| ((*s).to_owned(), (*s).to_owned()))
        .collect();
    let title = format!("{} {} — {}", e.code, e.name, date.format("%a %Y-%m-%d"));
    let body = html! {
        link rel="stylesheet" href="/ui/assets/pages.css";
        p { a href={(grid_url(&m.site, &m.month)) "&q=" (enc(&e.code))} { "← " (m.site) " " (m.month) } }
        @if m.signed_off.is_some() {
            div.flash.info role="status" { "This month is signed off: reopen it on the review page to change a day." }
        }
        (form_error(errors))
        dl.facts {
            dt { "Status" } dd { (status_name(cell.status)) @if !cell.held_by.is_empty() { " (waiting for " (cell.held_by.join(", ")) ")" } }
            dt { "Day" } dd { (format!("{:?}", r.kind).to_lowercase()) @if let Some(s) = &r.shift { ", shift " (s) } @if let Some(n) = &r.note { " (" (n) ")" } }
            dt { "Policy" } dd { (r.policy.as_str()) }
            dt { "First IN / last OUT" } dd { (local(&m, r.first_in)) " / " (local(&m, r.last_out)) " (" (m.time_zone) ")" }
            dt { "Worked" } dd { (hm(r.worked_secs)) " (breaks " (hm(r.break_secs)) ")" }
            dt { "Late / early exit" } dd { (hm(r.late_secs)) " / " (hm(r.early_exit_secs)) }
            dt { "Overtime" } dd { (hm(r.overtime_secs)) @if r.overtime_off_day_secs > 0 { " + off-day " (hm(r.overtime_off_day_secs)) } }
        }
        h2 { "Punches" }
        (table(
            "Punches of the day (site local time)",
            &["Time", "Device", "State", "Counted as", "Raw line", "Void"],
            r.punches.iter().zip(&raws).map(|(p, raw)| {
                let f = format!("void-{}", p.id);
                vec![
                    html! {
                        (p.at_local.format("%H:%M:%S"))
                        @if p.at_local.date() != date { " (" (p.at_local.format("%m-%d")) ")" }
                    },
                    text(p.device_sn.as_str()),
                    text(p.punch_state.map(|c| format!("{} ({c})", PunchState::from_code(c).name())).unwrap_or_else(|| "—".into())),
                    html! {
                        (role_name(p.role))
                        @if p.double_tap { " " (badge("warn", "double tap")) }
                        @if p.outside_shift { " " (badge("warn", "outside shift")) }
                        @if p.voided { " " (badge("bad", "voided")) }
                        @if p.added_by_correction { " " (badge("muted", "added by HR")) }
                    },
                    html! {
                        small { (raw.source) }
                        @if let Some(l) = &raw.line { br; code.raw { (l) } }
                    },
                    html! {
                        @if may_change && !p.voided && p.id > 0 {
                            form.void method="post" action="/ui/review/correct" novalidate {
                                (hidden_day(ctx, &m, &e.code, date, &f))
                                input type="hidden" name="kind" value="void-punch";
                                input type="hidden" name="punch_id" value=(p.id);
                                (input_in(&f, "Reason", "reason", "text", &val(&f, "reason", ""), err(&f, "reason")))
                                button.danger type="submit" aria-label={"Void the punch at " (p.at_local.format("%H:%M:%S"))} { "Void" }
                            }
                        }
                    },
                ]
            }).collect(),
            "No punch on this day.",
        ))
        h2 { "Exceptions" }
        @if exceptions.is_empty() { p.empty { "None." } }
        @for (i, x) in exceptions.iter().enumerate() {
            section.card {
                h3 { (x.kind) " " (badge(match x.state { ReviewState::Open => "warn", ReviewState::Explained => "warn", ReviewState::Approved => "ok", ReviewState::Rejected => "bad" }, x.state.as_str())) }
                @if !x.note.is_empty() { p { (x.note) } }
                @if may_change && x.kind != "incomplete" {
                    @let f = format!("exc-{i}");
                    form method="post" action="/ui/review/exception" novalidate {
                        (hidden_day(ctx, &m, &e.code, date, &f))
                        input type="hidden" name="kind" value=(x.kind);
                        div.row {
                            (select_in(&f, "Decision", "state", &review_states, &val(&f, "state", "approved")))
                            (input_in(&f, "Note", "note", "text", &val(&f, "note", ""), err(&f, "note")))
                            button type="submit" { "Record" }
                        }
                    }
                }
            }
        }
        @if may_change {
            h2 { "Correct the day" }
            div.forms {
                form.card method="post" action="/ui/review/correct" novalidate {
                    h3 { "Add a punch" }
                    (hidden_day(ctx, &m, &e.code, date, "add"))
                    input type="hidden" name="kind" value="add-punch";
                    (input_in("add", "Time (site local)", "punched_at", "datetime-local", &val("add", "punched_at", &format!("{date}T18:00")), err("add", "punched_at")))
                    (select_in("add", "Punch state", "punch_state", &state_options, &val("add", "punch_state", "1")))
                    (input_in("add", "Reason", "reason", "text", &val("add", "reason", ""), err("add", "reason")))
                    button type="submit" { "Add punch" }
                }
                form.card method="post" action="/ui/review/correct" novalidate {
                    h3 { "Set the status" }
                    (hidden_day(ctx, &m, &e.code, date, "status"))
                    input type="hidden" name="kind" value="set-status";
                    (select_in("status", "Status", "status", &statuses, &val("status", "status", "present")))
                    (input_in("status", "Reason", "reason", "text", &val("status", "reason", ""), err("status", "reason")))
                    button type="submit" { "Set status" }
                }
                form.card method="post" action="/ui/review/correct" novalidate {
                    h3 { "Overtime" }
                    (hidden_day(ctx, &m, &e.code, date, "overtime"))
                    (select_in("overtime", "Decision", "kind", &[("approve-overtime".to_owned(), "approve".to_owned()), ("cut-overtime".to_owned(), "cut".to_owned())], &val("overtime", "kind", "approve-overtime")))
                    (input_in("overtime", "Minutes kept", "minutes", "number", &val("overtime", "minutes", &((r.overtime_secs + r.overtime_off_day_secs) / 60).to_string()), err("overtime", "minutes")))
                    (input_in("overtime", "Reason", "reason", "text", &val("overtime", "reason", ""), err("overtime", "reason")))
                    button type="submit" { "Record overtime" }
                }
            }
        }
        h2 { "Corrections" }
        (table(
            "Corrections of this day",
            &["When (UTC)", "Who", "What", "Why", "Revoked"],
            corrections.iter().map(|rec| {
                let c = &rec.correction;
                let f = format!("revoke-{}", c.id);
                vec![
                    text(c.created_at.format("%Y-%m-%d %H:%M").to_string()),
                    text(&c.author),
                    text(correction_text(c)),
                    text(&c.reason),
                    html! {
                        @if let Some(r) = &rec.revoked {
                            (badge("muted", "revoked"))
                            " " (r.at.format("%Y-%m-%d %H:%M"))
                            @if !r.author.is_empty() { " by " (r.author) }
                            @if !r.reason.is_empty() { ": " (r.reason) }
                        } @else if may_change {
                            form.void method="post" action="/ui/review/revoke" novalidate {
                                (hidden_day(ctx, &m, &e.code, date, &f))
                                input type="hidden" name="correction" value=(c.id);
                                (input_in(&f, "Reason", "reason", "text", &val(&f, "reason", ""), err(&f, "reason")))
                                button.danger type="submit" aria-label={"Revoke correction #" (c.id) " (" (correction_text(c)) ")"} { "Revoke" }
                            }
                        } @else {
                            "no"
                        }
                    },
                ]
            }).collect(),
            "No correction.",
        ))
    };
    Ok(layout::html(layout::page(ctx, &title, Nav::Review, body)))
}

fn correction_text(c: &Correction) -> String {
    match c.kind {
        CorrectionKind::AddPunch => format!(
            "added punch {} state {}",
            c.punched_at
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default(),
            c.punch_state.map(|s| s.to_string()).unwrap_or_default()
        ),
        CorrectionKind::VoidPunch => format!("voided punch #{}", c.punch_id.unwrap_or_default()),
        CorrectionKind::SetStatus => format!("status {}", c.status.as_deref().unwrap_or("")),
        CorrectionKind::ApproveOvertime => {
            format!("overtime approved ({} min)", c.minutes.unwrap_or_default())
        }
        CorrectionKind::CutOvertime => {
            format!("overtime cut to {} min", c.minutes.unwrap_or_default())
        }
    }
}

/// A correction as typed on the day page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CorrectionForm {
    /// Site.
    #[serde(default)]
    pub site: String,
    /// `YYYY-MM`.
    #[serde(default)]
    pub month: String,
    /// Employee code.
    #[serde(default)]
    pub employee: String,
    /// The working day.
    #[serde(default)]
    pub date: String,
    /// Which form on the page (`add`, `status`, `overtime`, `void-<id>`, `exc-<n>`, `revoke-<id>`), to show errors
    /// there.
    #[serde(default)]
    pub form: String,
    /// `add-punch`, `void-punch`, `set-status`, `approve-overtime`, `cut-overtime`.
    #[serde(default)]
    pub kind: String,
    /// add-punch: site local time, `YYYY-MM-DDTHH:MM[:SS]`.
    #[serde(default)]
    pub punched_at: String,
    /// add-punch: punch state code.
    #[serde(default)]
    pub punch_state: String,
    /// void-punch: the punch id.
    #[serde(default)]
    pub punch_id: String,
    /// set-status: the status.
    #[serde(default)]
    pub status: String,
    /// Overtime minutes kept.
    #[serde(default)]
    pub minutes: String,
    /// Why (required).
    #[serde(default)]
    pub reason: String,
    /// Exception review: explained, approved or rejected.
    #[serde(default)]
    pub state: String,
    /// Exception review: the note.
    #[serde(default)]
    pub note: String,
    /// Revoke: the correction's id.
    #[serde(default)]
    pub correction: String,
}

impl CorrectionForm {
    fn value(&self, name: &str) -> &str {
        match name {
            "punched_at" => &self.punched_at,
            "punch_state" => &self.punch_state,
            "status" => &self.status,
            "minutes" => &self.minutes,
            "reason" => &self.reason,
            "kind" => &self.kind,
            "state" => &self.state,
            "note" => &self.note,
            _ => "",
        }
    }

    fn query(&self) -> DayQuery {
        DayQuery {
            site: self.site.clone(),
            month: self.month.clone(),
            employee: self.employee.clone(),
            date: self.date.clone(),
        }
    }

    /// The correction, or the message of each wrong field.
    pub fn parse(&self) -> Result<Correction, FormErrors> {
        let mut errors = FormErrors::new();
        let kind = CorrectionKind::parse(&self.kind);
        if kind.is_none() {
            errors.add("_form", format!("{:?} is not a correction", self.kind));
        }
        let day = NaiveDate::parse_from_str(&self.date, "%Y-%m-%d").ok();
        if day.is_none() {
            errors.add("_form", format!("date {:?} is not YYYY-MM-DD", self.date));
        }
        if self.reason.trim().is_empty() {
            errors.add("reason", "say why (kept in the audit log)");
        }
        let mut c = Correction {
            id: 0,
            employee_code: self.employee.clone(),
            day: day.unwrap_or_default(),
            kind: kind.unwrap_or(CorrectionKind::SetStatus),
            punched_at: None,
            punch_state: None,
            punch_id: None,
            status: None,
            minutes: None,
            author: String::new(),
            reason: self.reason.trim().to_owned(),
            created_at: Utc::now(),
        };
        match kind {
            Some(CorrectionKind::AddPunch) => {
                let t = self.punched_at.trim();
                match NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
                    .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
                {
                    Ok(at) => {
                        if let Some(d) = day {
                            let gap = (at.date() - d).num_days();
                            if !(-1..=1).contains(&gap) {
                                errors.add(
                                    "punched_at",
                                    "the time must be on the day (or the day before or after)",
                                );
                            }
                        }
                        c.punched_at = Some(at);
                    }
                    Err(_) => errors.add("punched_at", "give the date and time (YYYY-MM-DDTHH:MM)"),
                }
                match self.punch_state.trim().parse::<u16>() {
                    Ok(s) => c.punch_state = Some(s),
                    Err(_) => errors.add("punch_state", "choose a punch state"),
                }
            }
            Some(CorrectionKind::VoidPunch) => match self.punch_id.trim().parse::<i64>() {
                Ok(id) if id > 0 => c.punch_id = Some(id),
                _ => errors.add("_form", "which punch to void is missing"),
            },
            Some(CorrectionKind::SetStatus) => {
                if STATUSES.contains(&self.status.as_str()) {
                    c.status = Some(self.status.clone());
                } else {
                    errors.add("status", format!("choose one of {}", STATUSES.join(", ")));
                }
            }
            Some(CorrectionKind::ApproveOvertime | CorrectionKind::CutOvertime) => {
                match self.minutes.trim() {
                    "" if kind == Some(CorrectionKind::ApproveOvertime) => {}
                    s => match s.parse::<u32>() {
                        Ok(m) if m <= 24 * 60 => c.minutes = Some(m),
                        _ => errors.add("minutes", "a whole number of minutes, 0 to 1440"),
                    },
                }
            }
            None => {}
        }
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }
}

async fn day_again(
    app: &App,
    cache: &MonthCache,
    ctx: &UiCtx,
    form: &CorrectionForm,
    errors: &FormErrors,
) -> Result<Response, UiError> {
    Ok((
        axum::http::StatusCode::BAD_REQUEST,
        render_day(app, cache, ctx, &form.query(), form, errors).await?,
    )
        .into_response())
}

fn back_to_day(form: &CorrectionForm, text: String) -> Result<Response, UiError> {
    let date = NaiveDate::parse_from_str(&form.date, "%Y-%m-%d")
        .map_err(|_| UiError::BadRequest("bad date".into()))?;
    Ok(layout::redirect_with_flash(
        &day_url(&form.site, &form.month, &form.employee, date),
        Flash::ok(text),
    ))
}

/// `POST /ui/review/correct` (scope `hr`): add or void a punch, set the status, decide overtime — as `POST
/// /api/v1/attendance/corrections`.
async fn correct(
    State(app): State<App>,
    Extension(cache): Cache,
    user: UiUser,
    ctx: UiCtx,
    Form(form): Form<CorrectionForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let c = match form.parse() {
        Ok(c) => c,
        Err(errors) => return day_again(&app, &cache, &ctx, &form, &errors).await,
    };
    let what = c.kind.as_str();
    match review::correct(app.store.as_ref(), c, &author(&user)).await {
        Ok(stored) => {
            // The month cache follows the correction's audit entry: only this employee's days are redone.
            back_to_day(
                &form,
                format!("Correction #{} ({what}) recorded", stored.id),
            )
        }
        Err(e) => {
            let mut errors = FormErrors::new();
            errors.add("_form", refusal(e)?);
            day_again(&app, &cache, &ctx, &form, &errors).await
        }
    }
}

/// `POST /ui/review/exception` (scope `hr`): explain, approve or reject an exception, as `POST
/// /api/v1/attendance/exceptions/review`.
async fn review_exception(
    State(app): State<App>,
    Extension(cache): Cache,
    user: UiUser,
    ctx: UiCtx,
    Form(form): Form<CorrectionForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let mut errors = FormErrors::new();
    let state = match ReviewState::parse(&form.state) {
        Some(s) if s != ReviewState::Open => Some(s),
        _ => {
            errors.add("state", "choose explained, approved or rejected");
            None
        }
    };
    if form.note.trim().is_empty() {
        errors.add("note", "a note is required (the explanation or the reason)");
    }
    let date = NaiveDate::parse_from_str(&form.date, "%Y-%m-%d")
        .map_err(|_| UiError::BadRequest(format!("date {:?} is not YYYY-MM-DD", form.date)))?;
    let Some(state) = state.filter(|_| errors.is_empty()) else {
        return day_again(&app, &cache, &ctx, &form, &errors).await;
    };
    match review::review(
        app.store.as_ref(),
        &form.employee,
        date,
        &form.kind,
        state,
        form.note.trim(),
        &author(&user),
    )
    .await
    {
        Ok(()) => {
            // The month cache follows the review's audit entry: only this day's cell is redone.
            back_to_day(&form, format!("Exception {} {}", form.kind, state.as_str()))
        }
        Err(e) => {
            errors.add("_form", refusal(e)?);
            day_again(&app, &cache, &ctx, &form, &errors).await
        }
    }
}

/// `POST /ui/review/revoke` (scope `hr`): take back a correction of the day, with a reason, as `POST
/// /api/v1/attendance/corrections/{id}/revoke` — it stops counting and stays stored (shown as revoked, by whom,
/// when, why); a punch HR added and revoked after its delivery is withdrawn from every sink. Refused (the message
/// on the day page) without a reason, when it is revoked already, or when its month is signed off; 400 for a
/// correction that is not of the form's employee and day.
async fn revoke(
    State(app): State<App>,
    Extension(cache): Cache,
    user: UiUser,
    ctx: UiCtx,
    Form(form): Form<CorrectionForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let id = form.correction.trim().parse::<i64>().map_err(|_| {
        UiError::BadRequest(format!("{:?} is not a correction id", form.correction))
    })?;
    let (c, _) = app.store.get_correction(id).await?;
    if c.employee_code != form.employee || c.day.to_string() != form.date {
        return Err(UiError::BadRequest(format!(
            "correction {id} is of {} on {}, not of this day",
            c.employee_code, c.day
        )));
    }
    let mut errors = FormErrors::new();
    if form.reason.trim().is_empty() {
        errors.add("reason", "say why it is revoked (kept in the audit log)");
        return day_again(&app, &cache, &ctx, &form, &errors).await;
    }
    match review::revoke(app.store.as_ref(), id, form.reason.trim(), &author(&user)).await {
        Ok(c) => {
            // The month cache follows the revocation's audit entry: only this employee's days are redone.
            back_to_day(
                &form,
                format!("Correction #{id} ({}) revoked", c.kind.as_str()),
            )
        }
        Err(e) => {
            errors.add("_form", refusal(e)?);
            day_again(&app, &cache, &ctx, &form, &errors).await
        }
    }
}

/// Sign-off or reopen, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MonthForm {
    /// Site.
    #[serde(default)]
    pub site: String,
    /// `YYYY-MM`.
    #[serde(default)]
    pub month: String,
    /// Sign off with incomplete days (`true`).
    #[serde(default)]
    pub force: String,
    /// Reopen: why.
    #[serde(default)]
    pub reason: String,
}

async fn grid_again(
    app: &App,
    cache: &Arc<MonthCache>,
    ctx: &UiCtx,
    form: &MonthForm,
    errors: &FormErrors,
) -> Result<Response, UiError> {
    let q = GridQuery {
        site: form.site.clone(),
        month: form.month.clone(),
        ..GridQuery::default()
    };
    Ok((
        axum::http::StatusCode::BAD_REQUEST,
        render_grid(app, cache, ctx, &q, errors, None).await?,
    )
        .into_response())
}

/// `POST /ui/review/signoff` (scope `hr`), as `POST /api/v1/attendance/signoff`.
async fn sign_off(
    State(app): State<App>,
    Extension(cache): Cache,
    user: UiUser,
    ctx: UiCtx,
    Form(form): Form<MonthForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let force = form.force == "true";
    match review::sign_off(
        app.store.as_ref(),
        &form.site,
        &form.month,
        force,
        &author(&user),
        Utc::now(),
    )
    .await
    {
        Ok(m) => {
            cache.forget_site(&form.site);
            Ok(layout::redirect_with_flash(
                &grid_url(&form.site, &form.month),
                Flash::ok(format!(
                    "{} {} signed off ({} employees{})",
                    m.site,
                    m.month,
                    m.employees.len(),
                    if force && m.incomplete_days > 0 {
                        format!(", {} incomplete days frozen as they are", m.incomplete_days)
                    } else {
                        String::new()
                    }
                )),
            ))
        }
        Err(e) => {
            let message = refusal(e)?;
            let mut errors = FormErrors::new();
            let field = if message.contains("incomplete") {
                "force"
            } else {
                "_form"
            };
            errors.add(field, message);
            grid_again(&app, &cache, &ctx, &form, &errors).await
        }
    }
}

/// `POST /ui/review/reopen` (scope `hr`), as `POST /api/v1/attendance/reopen`: the reason is required.
async fn reopen(
    State(app): State<App>,
    Extension(cache): Cache,
    user: UiUser,
    ctx: UiCtx,
    Form(form): Form<MonthForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    if form.reason.trim().is_empty() {
        let mut errors = FormErrors::new();
        errors.add(
            "reason",
            "say why the month is reopened (kept in the audit log)",
        );
        return grid_again(&app, &cache, &ctx, &form, &errors).await;
    }
    match review::reopen(
        app.store.as_ref(),
        &form.site,
        &form.month,
        form.reason.trim(),
        &author(&user),
    )
    .await
    {
        Ok(()) => {
            cache.forget_site(&form.site);
            Ok(layout::redirect_with_flash(
                &grid_url(&form.site, &form.month),
                Flash::ok(format!("{} {} reopened", form.site, form.month)),
            ))
        }
        Err(e) => {
            let mut errors = FormErrors::new();
            errors.add("_form", refusal(e)?);
            grid_again(&app, &cache, &ctx, &form, &errors).await
        }
    }
}

/// Which export.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    /// Site.
    pub site: String,
    /// `YYYY-MM`.
    pub month: String,
    /// `csv` or `xlsx`.
    pub format: String,
}

/// `GET /ui/review/export`: the month as CSV or XLSX (the same files as `GET /api/v1/attendance/month?format=`).
async fn export(
    State(app): State<App>,
    Extension(cache): Cache,
    user: UiUser,
    Query(q): Query<ExportQuery>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let m = cache
        .month(app.store.as_ref(), &q.site, &q.month, Utc::now())
        .await
        .map_err(att_error)?;
    // The site name goes into a header: keep it to characters that cannot break out of the quotes.
    let safe: String = q
        .site
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let (content_type, name, body) = match q.format.as_str() {
        "csv" => {
            let mut b = Vec::new();
            crate::attendance::export::write_csv(&m, &mut b)
                .map_err(|e| UiError::Internal(e.to_string()))?;
            (
                "text/csv; charset=utf-8",
                format!("attendance-{safe}-{}.csv", q.month),
                b,
            )
        }
        "xlsx" => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            format!("attendance-{safe}-{}.xlsx", q.month),
            crate::attendance::export::xlsx(&m).map_err(|e| UiError::Internal(e.to_string()))?,
        ),
        other => {
            return Err(UiError::BadRequest(format!(
                "format {other:?} is not csv or xlsx"
            )))
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Audit log page.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// 1-based page.
    #[serde(default)]
    pub page: usize,
}

/// `GET /ui/audit`: the audit log, newest first, paged.
async fn audit_page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Query(q): Query<AuditQuery>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let page = q.page.max(1);
    // One more than the pages up to this one, to know whether there is a next page.
    let entries = app.store.list_audit(page * AUDIT_PER_PAGE + 1).await?;
    let total = entries.len();
    let pager = Pager::new(page, AUDIT_PER_PAGE, total);
    let rows: Vec<Vec<Markup>> = entries[pager.range()]
        .iter()
        .map(|a| {
            let detail = a.record.detail.to_string();
            vec![
                text(a.at.format("%Y-%m-%d %H:%M:%S").to_string()),
                text(&a.record.author),
                text(&a.record.action),
                text(&a.record.subject),
                html! { code { (detail.chars().take(200).collect::<String>()) } },
            ]
        })
        .collect();
    let body = html! {
        p { a href="/ui/review" { "← Review" } }
        (table("Audit log, newest first", &["When (UTC)", "Who", "Action", "Subject", "Detail"], rows, "Nothing recorded yet."))
        nav.pager aria-label="Pages" {
            @if page > 1 { a href={"/ui/audit?page=" (page - 1)} rel="prev" { "‹ Newer" } " " }
            span { "Page " (page) }
            @if total > page * AUDIT_PER_PAGE { " " a href={"/ui/audit?page=" (page + 1)} rel="next" { "Older ›" } }
        }
    };
    Ok(layout::html(layout::page(&ctx, "Audit log", Nav::Review, body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_line_is_found_by_pin_and_local_time() {
        let body = b"7\t2026-11-02 08:58:12\t0\t1\t0\t0\n17\t2026-11-02 08:58:12\t0\t1\n7\t2026-11-02 18:01:00\t1\t1\n";
        let at = NaiveDate::from_ymd_opt(2026, 11, 2)
            .and_then(|d| d.and_hms_opt(8, 58, 12))
            .expect("time");
        assert_eq!(
            find_raw_line(body, "7", at).as_deref(),
            Some("7\t2026-11-02 08:58:12\t0\t1\t0\t0")
        );
        assert_eq!(
            find_raw_line(body, "17", at).as_deref(),
            Some("17\t2026-11-02 08:58:12\t0\t1")
        );
        let json = br#"{"device_sn":"X","events":[{"pin":"7","time":"2026-11-02T08:58:12"}]}"#;
        assert!(find_raw_line(json, "7", at).is_some());
        assert_eq!(find_raw_line(b"\x00\x01binary", "7", at), None);
    }

    fn form(kind: &str) -> CorrectionForm {
        CorrectionForm {
            employee: "E1".into(),
            date: "2026-11-02".into(),
            kind: kind.into(),
            reason: "forgot to punch out".into(),
            ..CorrectionForm::default()
        }
    }

    #[test]
    fn an_added_punch_needs_a_time_near_the_day_and_a_reason() {
        let mut f = form("add-punch");
        f.punched_at = "2026-11-02T18:05".into();
        f.punch_state = "1".into();
        let c = f.parse().expect("valid");
        assert_eq!(c.kind, CorrectionKind::AddPunch);
        assert_eq!(c.punch_state, Some(1));
        assert_eq!(
            c.punched_at.map(|t| t.to_string()).as_deref(),
            Some("2026-11-02 18:05:00")
        );
        f.punched_at = "2026-11-09T18:05".into();
        f.reason = " ".into();
        let errors = f.parse().expect_err("invalid");
        assert_eq!(
            errors.get("punched_at"),
            Some("the time must be on the day (or the day before or after)")
        );
        assert_eq!(
            errors.get("reason"),
            Some("say why (kept in the audit log)")
        );
    }

    #[test]
    fn status_and_overtime_forms_are_checked() {
        let mut s = form("set-status");
        s.status = "holidayish".into();
        assert!(s.parse().expect_err("invalid").get("status").is_some());
        s.status = "leave".into();
        assert_eq!(s.parse().expect("valid").status.as_deref(), Some("leave"));
        let mut o = form("cut-overtime");
        o.minutes = "x".into();
        assert_eq!(
            o.parse().expect_err("invalid").get("minutes"),
            Some("a whole number of minutes, 0 to 1440")
        );
        let approve = form("approve-overtime");
        assert_eq!(approve.parse().expect("valid").minutes, None);
    }

    #[test]
    fn durations_show_as_hours_and_minutes() {
        assert_eq!(hm(0), "0:00");
        assert_eq!(hm(7 * 3600 + 45 * 60 + 59), "7:45");
        assert_eq!(hm(-5), "0:00");
    }
}
