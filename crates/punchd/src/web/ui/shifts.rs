//! Shifts, roster, punch-state policy and sites (`/ui/shifts`, `/ui/roster`, `/ui/policy`, `/ui/sites`).
//!
//! The shift form speaks minutes and clock times and becomes an `attendance::rules::Shift`; the roster form
//! writes one line per employee and date of a range (chosen weekdays only); the policy page previews a policy on
//! a month's stored punches (nothing written) before it is set. Reading needs scope `read`, changing `hr`, as
//! the JSON API; every change goes through `attendance::setup` (checked and audited, author `ui:<name>`).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use chrono::{Datelike, NaiveDate, NaiveTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, csrf_field, enc, field, select, table, text, Flash, FormErrors};
use super::paging::Pager;
use super::people::{author, form_error, refusal};
use super::{require, Nav, UiCtx, UiError, UiUser};
use crate::app::App;
use crate::attendance::review;
use crate::attendance::rules::{BreakRule, LateFrom, OvertimeRounding, Shift, WorkedTime};
use crate::attendance::setup::{self, POLICIES};
use crate::domain::Scope;
use crate::store::attendance::{Holiday, PolicySetting, RosterEntry, Scope as MapScope, Site};

/// Roster lines per page.
const ROSTER_PER_PAGE: usize = 100;

/// Most roster lines one form may write (an employee list times a date range).
const MAX_ROSTER_LINES: usize = 50_000;

/// The routes (relative to `/ui`).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/shifts", get(shifts_page).post(save_shift))
        .route("/roster", get(roster_page).post(save_roster))
        .route("/policy", get(policy_page).post(save_policy))
        .route("/sites", get(sites_page).post(save_site))
}

fn weekday_name(d: u8) -> &'static str {
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][usize::from(d.clamp(1, 7) - 1)]
}

fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

fn mins(secs: u32) -> String {
    (secs / 60).to_string()
}

/// Parse a whole number of minutes (empty = 0) into seconds, or record why not.
fn minutes_field(errors: &mut FormErrors, name: &str, value: &str) -> u32 {
    let v = value.trim();
    if v.is_empty() {
        return 0;
    }
    match v.parse::<u32>() {
        Ok(m) if m <= 24 * 60 => m * 60,
        Ok(_) => {
            errors.add(name, "at most 1440 minutes (a day)");
            0
        }
        Err(_) => {
            errors.add(name, format!("{v:?} is not a whole number of minutes"));
            0
        }
    }
}

fn clock_field(errors: &mut FormErrors, name: &str, value: &str) -> NaiveTime {
    match setup::parse_clock(value) {
        Ok(t) => t,
        Err(_) => {
            errors.add(name, format!("{:?} is not a time (HH:MM)", value.trim()));
            NaiveTime::MIN
        }
    }
}

// ---------------------------------------------------------------------------------------------------- shifts

/// The shift form, as typed (durations in minutes).
#[derive(Debug, Clone, Deserialize)]
pub struct ShiftForm {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Start, `HH:MM` site wall time.
    #[serde(default)]
    pub start: String,
    /// End, `HH:MM`; before the start = overnight.
    #[serde(default)]
    pub end: String,
    /// Grace after the start, minutes.
    #[serde(default)]
    pub grace_in: String,
    /// Grace before the end, minutes.
    #[serde(default)]
    pub grace_out: String,
    /// `none`, `deduct` or `punches`.
    #[serde(default)]
    pub break_rule: String,
    /// Deducted break, minutes.
    #[serde(default)]
    pub break_mins: String,
    /// Deduct only after this many worked minutes.
    #[serde(default)]
    pub break_after: String,
    /// Check-in window before the start, minutes.
    #[serde(default)]
    pub checkin_window: String,
    /// Check-out window after the end, minutes.
    #[serde(default)]
    pub checkout_window: String,
    /// `shift-start` or `grace-end`.
    #[serde(default)]
    pub late_from: String,
    /// `every-pair` or `first-in-last-out`.
    #[serde(default)]
    pub worked_time: String,
    /// Absent below this many worked minutes (0 = off).
    #[serde(default)]
    pub absent_below: String,
    /// Half day below this many worked minutes (0 = off).
    #[serde(default)]
    pub half_day_below: String,
    /// Overtime also before the start (`true`).
    #[serde(default)]
    pub ot_before_start: String,
    /// Overtime below this many minutes is dropped.
    #[serde(default)]
    pub ot_min_block: String,
    /// Round overtime to this many minutes.
    #[serde(default)]
    pub ot_rounding: String,
    /// `down`, `nearest` or `up`.
    #[serde(default)]
    pub ot_rounding_mode: String,
    /// At most this many overtime minutes a day (0 = no cap).
    #[serde(default)]
    pub ot_cap: String,
    /// Replace a shift of the same name (`true`).
    #[serde(default)]
    pub replace: String,
}

impl Default for ShiftForm {
    fn default() -> ShiftForm {
        ShiftForm::of(&Shift::new(
            "",
            NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN),
            NaiveTime::from_hms_opt(18, 0, 0).unwrap_or(NaiveTime::MIN),
        ))
    }
}

impl ShiftForm {
    fn of(s: &Shift) -> ShiftForm {
        let (break_rule, break_mins, break_after) = match s.break_rule {
            BreakRule::None => ("none", 0, 0),
            BreakRule::Deduct {
                secs,
                min_worked_secs,
            } => ("deduct", secs, min_worked_secs),
            BreakRule::Punches => ("punches", 0, 0),
        };
        ShiftForm {
            name: s.name.clone(),
            start: hhmm(s.start),
            end: hhmm(s.end),
            grace_in: mins(s.grace_in_secs),
            grace_out: mins(s.grace_out_secs),
            break_rule: break_rule.into(),
            break_mins: mins(break_mins),
            break_after: mins(break_after),
            checkin_window: mins(s.checkin_window_secs),
            checkout_window: mins(s.checkout_window_secs),
            late_from: match s.late_from {
                LateFrom::ShiftStart => "shift-start",
                LateFrom::GraceEnd => "grace-end",
            }
            .into(),
            worked_time: match s.worked_time {
                WorkedTime::EveryPair => "every-pair",
                WorkedTime::FirstInLastOut => "first-in-last-out",
            }
            .into(),
            absent_below: mins(s.absent_below_secs),
            half_day_below: mins(s.half_day_below_secs),
            ot_before_start: if s.overtime.before_start { "true" } else { "" }.into(),
            ot_min_block: mins(s.overtime.min_block_secs),
            ot_rounding: mins(s.overtime.rounding_secs),
            ot_rounding_mode: match s.overtime.rounding {
                OvertimeRounding::Down => "down",
                OvertimeRounding::Nearest => "nearest",
                OvertimeRounding::Up => "up",
            }
            .into(),
            ot_cap: mins(s.overtime.daily_cap_secs),
            replace: String::new(),
        }
    }

    /// The shift, or the message of each wrong field (the rules' own checks run when it is saved).
    pub fn parse(&self) -> Result<Shift, FormErrors> {
        let mut e = FormErrors::new();
        if self.name.trim().is_empty() {
            e.add("name", "the name is required");
        }
        let start = clock_field(&mut e, "start", &self.start);
        let end = clock_field(&mut e, "end", &self.end);
        let mut s = Shift::new(self.name.trim(), start, end);
        s.grace_in_secs = minutes_field(&mut e, "grace_in", &self.grace_in);
        s.grace_out_secs = minutes_field(&mut e, "grace_out", &self.grace_out);
        s.break_rule = match self.break_rule.as_str() {
            "none" | "" => BreakRule::None,
            "punches" => BreakRule::Punches,
            "deduct" => {
                let secs = minutes_field(&mut e, "break_mins", &self.break_mins);
                if secs == 0 && e.get("break_mins").is_none() {
                    e.add("break_mins", "a deducted break needs its minutes");
                }
                BreakRule::Deduct {
                    secs,
                    min_worked_secs: minutes_field(&mut e, "break_after", &self.break_after),
                }
            }
            other => {
                e.add(
                    "break_rule",
                    format!("{other:?} is not none, deduct or punches"),
                );
                BreakRule::None
            }
        };
        s.checkin_window_secs = minutes_field(&mut e, "checkin_window", &self.checkin_window);
        s.checkout_window_secs = minutes_field(&mut e, "checkout_window", &self.checkout_window);
        s.late_from = match self.late_from.as_str() {
            "grace-end" => LateFrom::GraceEnd,
            _ => LateFrom::ShiftStart,
        };
        s.worked_time = match self.worked_time.as_str() {
            "first-in-last-out" => WorkedTime::FirstInLastOut,
            _ => WorkedTime::EveryPair,
        };
        s.absent_below_secs = minutes_field(&mut e, "absent_below", &self.absent_below);
        s.half_day_below_secs = minutes_field(&mut e, "half_day_below", &self.half_day_below);
        s.overtime.before_start = self.ot_before_start == "true";
        s.overtime.min_block_secs = minutes_field(&mut e, "ot_min_block", &self.ot_min_block);
        s.overtime.rounding_secs = minutes_field(&mut e, "ot_rounding", &self.ot_rounding);
        s.overtime.rounding = match self.ot_rounding_mode.as_str() {
            "nearest" => OvertimeRounding::Nearest,
            "up" => OvertimeRounding::Up,
            _ => OvertimeRounding::Down,
        };
        s.overtime.daily_cap_secs = minutes_field(&mut e, "ot_cap", &self.ot_cap);
        if e.is_empty() {
            Ok(s)
        } else {
            Err(e)
        }
    }
}

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(v, l)| ((*v).to_owned(), (*l).to_owned()))
        .collect()
}

/// `GET /ui/shifts`: every shift, and the form to add or replace one.
async fn shifts_page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    Ok(
        render_shifts(&app, &ctx, &ShiftForm::default(), &FormErrors::new())
            .await?
            .into_response(),
    )
}

fn break_text(b: BreakRule) -> String {
    match b {
        BreakRule::None => "paid (none deducted)".into(),
        BreakRule::Punches => "from break punches".into(),
        BreakRule::Deduct {
            secs,
            min_worked_secs,
        } => format!(
            "{} min deducted{}",
            secs / 60,
            if min_worked_secs > 0 {
                format!(" after {} min worked", min_worked_secs / 60)
            } else {
                String::new()
            }
        ),
    }
}

async fn render_shifts(
    app: &App,
    ctx: &UiCtx,
    form: &ShiftForm,
    errors: &FormErrors,
) -> Result<axum::response::Html<String>, UiError> {
    let shifts = setup::load_shifts(app.store.as_ref())
        .await
        .map_err(super::people::att_error)?;
    let rows: Vec<Vec<Markup>> = shifts
        .iter()
        .map(|s| {
            vec![
                text(&s.name),
                text(format!(
                    "{}–{}{}",
                    hhmm(s.start),
                    hhmm(s.end),
                    if s.is_overnight() { " (overnight)" } else { "" }
                )),
                text(format!(
                    "{} / {} min",
                    s.grace_in_secs / 60,
                    s.grace_out_secs / 60
                )),
                text(break_text(s.break_rule)),
                text(format!(
                    "−{} / +{} min",
                    s.checkin_window_secs / 60,
                    s.checkout_window_secs / 60
                )),
                text(if s.overtime.daily_cap_secs > 0 {
                    format!("cap {} min/day", s.overtime.daily_cap_secs / 60)
                } else {
                    "no cap".into()
                }),
            ]
        })
        .collect();
    let e = |f: &str| errors.get(f);
    let body = html! {
        p { a href="/ui/roster" { "Roster" } " · " a href="/ui/sites" { "Sites" } " · " a href="/ui/policy" { "Punch-state policy" } }
        (table("Shifts", &["Name", "Hours", "Grace in / out", "Break", "Windows", "Overtime"], rows, "No shift yet."))
        @if ctx.may(Scope::Hr) {
            h2 { "Add or replace a shift" }
            form.card method="post" action="/ui/shifts" novalidate {
                (csrf_field(ctx))
                (form_error(errors))
                (field("Name", "name", "text", &form.name, e("name"), None))
                div.row {
                    (field("Start", "start", "time", &form.start, e("start"), None))
                    (field("End", "end", "time", &form.end, e("end"), Some("before the start = ends the next day")))
                }
                div.row {
                    (field("Grace in (min)", "grace_in", "number", &form.grace_in, e("grace_in"), None))
                    (field("Grace out (min)", "grace_out", "number", &form.grace_out, e("grace_out"), None))
                }
                div.row {
                    (select("Breaks", "break_rule", &opts(&[("none", "paid, none deducted"), ("deduct", "deduct automatically"), ("punches", "from break punches")]), &form.break_rule, e("break_rule")))
                    (field("Deducted break (min)", "break_mins", "number", &form.break_mins, e("break_mins"), None))
                    (field("Deduct after worked (min)", "break_after", "number", &form.break_after, e("break_after"), None))
                }
                div.row {
                    (field("Check-in window (min)", "checkin_window", "number", &form.checkin_window, e("checkin_window"), None))
                    (field("Check-out window (min)", "checkout_window", "number", &form.checkout_window, e("checkout_window"), None))
                }
                div.row {
                    (select("Late counted from", "late_from", &opts(&[("shift-start", "the shift start"), ("grace-end", "the end of the grace")]), &form.late_from, None))
                    (select("Worked time", "worked_time", &opts(&[("every-pair", "every IN–OUT pair"), ("first-in-last-out", "first IN to last OUT")]), &form.worked_time, None))
                }
                div.row {
                    (field("Absent below (min worked)", "absent_below", "number", &form.absent_below, e("absent_below"), Some("0 = off")))
                    (field("Half day below (min worked)", "half_day_below", "number", &form.half_day_below, e("half_day_below"), Some("0 = off")))
                }
                fieldset {
                    legend { "Overtime" }
                    div.field { label { input type="checkbox" name="ot_before_start" value="true" checked[form.ot_before_start == "true"]; " Also before the shift start" } }
                    div.row {
                        (field("Minimum block (min)", "ot_min_block", "number", &form.ot_min_block, e("ot_min_block"), None))
                        (field("Rounding (min)", "ot_rounding", "number", &form.ot_rounding, e("ot_rounding"), None))
                        (select("Round", "ot_rounding_mode", &opts(&[("down", "down"), ("nearest", "to nearest"), ("up", "up")]), &form.ot_rounding_mode, None))
                        (field("Daily cap (min)", "ot_cap", "number", &form.ot_cap, e("ot_cap"), Some("0 = no cap")))
                    }
                }
                div.field { label { input type="checkbox" name="replace" value="true" checked[form.replace == "true"]; " Replace the shift of this name" } }
                button type="submit" { "Save shift" }
            }
        }
    };
    Ok(layout::html(layout::page(ctx, "Shifts", Nav::Shifts, body)))
}

/// `POST /ui/shifts` (scope `hr`), as `POST /api/v1/attendance/shifts`.
async fn save_shift(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Form(form): Form<ShiftForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let errors = match form.parse() {
        Ok(shift) => {
            let name = shift.name.clone();
            match setup::put_shift(
                app.store.as_ref(),
                shift,
                form.replace == "true",
                &author(&user),
            )
            .await
            {
                Ok(()) => {
                    return Ok(layout::redirect_with_flash(
                        "/ui/shifts",
                        Flash::ok(format!("Shift {name} saved")),
                    ))
                }
                Err(e) => {
                    let message = refusal(e)?;
                    let mut errors = FormErrors::new();
                    let field = if message.contains("exists") || message.contains("in use") {
                        "name"
                    } else {
                        "_form"
                    };
                    errors.add(field, message);
                    errors
                }
            }
        }
        Err(errors) => errors,
    };
    Ok((
        axum::http::StatusCode::BAD_REQUEST,
        render_shifts(&app, &ctx, &form, &errors).await?,
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------------- roster

/// Which roster lines to show.
#[derive(Debug, Default, Deserialize)]
pub struct RosterQuery {
    /// `YYYY-MM` (default: this month, UTC).
    #[serde(default)]
    pub month: String,
    /// Only lines of employees whose code contains this.
    #[serde(default)]
    pub q: String,
    /// 1-based page.
    #[serde(default)]
    pub page: usize,
}

/// The roster form: employees × dates (on chosen weekdays) → a shift or a day off.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RosterForm {
    /// Employee codes separated by commas, spaces or new lines.
    #[serde(default)]
    pub employees: String,
    /// First date, `YYYY-MM-DD`.
    #[serde(default)]
    pub from: String,
    /// Last date (inclusive).
    #[serde(default)]
    pub to: String,
    /// The shift (empty = a day off).
    #[serde(default)]
    pub shift: String,
    /// Monday … Sunday included (`true`); none ticked = every day.
    #[serde(default)]
    pub wd1: String,
    /// Tuesday.
    #[serde(default)]
    pub wd2: String,
    /// Wednesday.
    #[serde(default)]
    pub wd3: String,
    /// Thursday.
    #[serde(default)]
    pub wd4: String,
    /// Friday.
    #[serde(default)]
    pub wd5: String,
    /// Saturday.
    #[serde(default)]
    pub wd6: String,
    /// Sunday.
    #[serde(default)]
    pub wd7: String,
}

impl RosterForm {
    fn weekdays(&self) -> [bool; 7] {
        [
            &self.wd1, &self.wd2, &self.wd3, &self.wd4, &self.wd5, &self.wd6, &self.wd7,
        ]
        .map(|v| v == "true")
    }

    /// The roster lines, or the message of each wrong field.
    pub fn parse(&self) -> Result<Vec<RosterEntry>, FormErrors> {
        let mut errors = FormErrors::new();
        let codes: Vec<&str> = self
            .employees
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        if codes.is_empty() {
            errors.add("employees", "name at least one employee code");
        }
        let mut date = |name: &str, s: &str| match NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                errors.add(name, format!("{:?} is not a date (YYYY-MM-DD)", s.trim()));
                None
            }
        };
        let from = date("from", &self.from);
        let to = date("to", &self.to);
        let mut lines = Vec::new();
        if let (Some(from), Some(to)) = (from, to) {
            if to < from {
                errors.add("to", "the last date is before the first");
            } else if (to - from).num_days() > 366 {
                errors.add("to", "at most a year at once");
            } else {
                let weekdays = self.weekdays();
                let every = !weekdays.contains(&true);
                let dates: Vec<NaiveDate> = from
                    .iter_days()
                    .take_while(|d| *d <= to)
                    .filter(|d| every || weekdays[d.weekday().num_days_from_monday() as usize])
                    .collect();
                if dates.is_empty() {
                    errors.add("from", "no date of the range falls on the chosen weekdays");
                }
                if codes.len() * dates.len() > MAX_ROSTER_LINES {
                    errors.add(
                        "employees",
                        format!("at most {MAX_ROSTER_LINES} lines at once (employees × dates)"),
                    );
                }
                let shift = (!self.shift.trim().is_empty()).then(|| self.shift.trim().to_owned());
                for code in &codes {
                    for d in &dates {
                        lines.push(RosterEntry {
                            employee_code: (*code).to_owned(),
                            day: *d,
                            shift: shift.clone(),
                        });
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(lines)
        } else {
            Err(errors)
        }
    }
}

fn this_month() -> String {
    Utc::now().format("%Y-%m").to_string()
}

/// `GET /ui/roster`: a month's roster lines (paged) and the form to write more.
async fn roster_page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Query(q): Query<RosterQuery>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    Ok(
        render_roster(&app, &ctx, &q, &RosterForm::default(), &FormErrors::new())
            .await?
            .into_response(),
    )
}

async fn render_roster(
    app: &App,
    ctx: &UiCtx,
    q: &RosterQuery,
    form: &RosterForm,
    errors: &FormErrors,
) -> Result<axum::response::Html<String>, UiError> {
    let month = if q.month.is_empty() {
        this_month()
    } else {
        q.month.clone()
    };
    let (_, _, dates) =
        crate::attendance::monthly::parse_month(&month).map_err(super::people::att_error)?;
    let first = dates[0];
    let next = dates[dates.len() - 1] + chrono::Duration::days(1);
    // One page is read from the store, with the count of every matching line: a month of 10,000 employees holds
    // 300,000 lines. A page past the end shows the last one, as the pager clamps it.
    let filter = q.q.trim();
    let mut page = app
        .store
        .list_roster_page(
            first,
            next,
            filter,
            ROSTER_PER_PAGE,
            q.page
                .max(1)
                .saturating_sub(1)
                .saturating_mul(ROSTER_PER_PAGE),
        )
        .await?;
    let total = usize::try_from(page.total).unwrap_or(usize::MAX);
    let pager = Pager::new(q.page, ROSTER_PER_PAGE, total);
    if page.lines.is_empty() && total > 0 {
        page = app
            .store
            .list_roster_page(first, next, filter, ROSTER_PER_PAGE, pager.range().start)
            .await?;
    }
    let rows: Vec<Vec<Markup>> = page
        .lines
        .iter()
        .map(|l| {
            vec![
                text(&l.employee_code),
                text(format!(
                    "{} {}",
                    l.day,
                    weekday_name(l.day.weekday().number_from_monday() as u8)
                )),
                text(l.shift.as_deref().unwrap_or("day off")),
            ]
        })
        .collect();
    let shifts: Vec<(String, String)> = std::iter::once((String::new(), "— day off —".to_owned()))
        .chain(
            app.store
                .list_shifts()
                .await?
                .into_iter()
                .map(|s| (s.name.clone(), s.name)),
        )
        .collect();
    let weekdays = form.weekdays();
    let e = |f: &str| errors.get(f);
    let base = format!("/ui/roster?month={}&q={}", enc(&month), enc(&q.q));
    let body = html! {
        p { a href="/ui/shifts" { "← Shifts" } }
        form.row.card method="get" action="/ui/roster" {
            (field("Month", "month", "month", &month, None, None))
            (field("Employee code contains", "q", "search", &q.q, None, None))
            button type="submit" { "Show" }
        }
        (table(&format!("Roster of {month} ({total} lines)"), &["Employee", "Day", "Shift"], rows,
            "No roster line this month: employees work their default shift."))
        (pager.links(|n| format!("{base}&page={n}")))
        @if ctx.may(Scope::Hr) {
            h2 { "Plan shifts" }
            form.card method="post" action="/ui/roster" novalidate {
                (csrf_field(ctx))
                (form_error(errors))
                div.field.invalid[e("employees").is_some()] {
                    label for="f-employees" { "Employee codes" }
                    textarea #f-employees name="employees" rows="3"
                        aria-invalid=[e("employees").map(|_| "true")]
                        aria-describedby=@if e("employees").is_some() { "f-employees-hint f-employees-error" } @else { "f-employees-hint" } { (form.employees) }
                    small.hint #f-employees-hint { "separated by commas, spaces or lines" }
                    @if let Some(m) = e("employees") { span.error #f-employees-error { (m) } }
                }
                div.row {
                    (field("From", "from", "date", &form.from, e("from"), None))
                    (field("To (inclusive)", "to", "date", &form.to, e("to"), None))
                }
                fieldset {
                    legend { "Only on (none ticked = every day)" }
                    @for d in 1u8..=7 {
                        label.check {
                            input type="checkbox" name={"wd" (d)} value="true" checked[weekdays[usize::from(d - 1)]];
                            " " (weekday_name(d))
                        }
                        " "
                    }
                }
                (select("Shift", "shift", &shifts, &form.shift, e("shift")))
                button type="submit" { "Write roster" }
            }
        }
    };
    Ok(layout::html(layout::page(ctx, "Roster", Nav::Shifts, body)))
}

/// `POST /ui/roster` (scope `hr`), as `POST /api/v1/attendance/roster`: all lines or none.
async fn save_roster(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Form(form): Form<RosterForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let errors = match form.parse() {
        Ok(lines) => {
            let n = lines.len();
            let month = lines
                .first()
                .map(|l| l.day.format("%Y-%m").to_string())
                .unwrap_or_default();
            match setup::put_roster(app.store.as_ref(), lines, &author(&user)).await {
                Ok(()) => {
                    return Ok(layout::redirect_with_flash(
                        &format!("/ui/roster?month={}", enc(&month)),
                        Flash::ok(format!("{n} roster lines written")),
                    ))
                }
                Err(e) => {
                    let message = refusal(e)?;
                    let mut errors = FormErrors::new();
                    let field = if message.contains("shift") {
                        "shift"
                    } else if message.contains("employee") {
                        "employees"
                    } else {
                        "_form"
                    };
                    errors.add(field, message);
                    errors
                }
            }
        }
        Err(errors) => errors,
    };
    Ok((
        axum::http::StatusCode::BAD_REQUEST,
        render_roster(&app, &ctx, &RosterQuery::default(), &form, &errors).await?,
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------------- policy

/// The policy form (also the preview's query).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PolicyForm {
    /// `site` or `device`.
    #[serde(default)]
    pub scope: String,
    /// The site name, or the device SN.
    #[serde(default)]
    pub scope_key: String,
    /// `device`, `first-last`, `alternating` or `schedule`.
    #[serde(default)]
    pub policy: String,
    /// Double-tap interval, seconds (default 60).
    #[serde(default)]
    pub double_tap_secs: String,
    /// For the preview: the site whose month to preview (a device policy: the device's site).
    #[serde(default)]
    pub site: String,
    /// For the preview: `YYYY-MM`.
    #[serde(default)]
    pub month: String,
    /// `1` to show the preview.
    #[serde(default)]
    pub preview: String,
}

impl PolicyForm {
    /// The setting, or the message of each wrong field.
    pub fn parse(&self) -> Result<PolicySetting, FormErrors> {
        let mut errors = FormErrors::new();
        let scope = MapScope::parse(&self.scope);
        if scope.is_none() {
            errors.add("scope", "choose a site or a device");
        }
        if self.scope_key.trim().is_empty() {
            errors.add("scope_key", "name the site or the device SN");
        }
        if !POLICIES.contains(&self.policy.as_str()) {
            errors.add("policy", format!("choose one of {}", POLICIES.join(", ")));
        }
        let double_tap_secs = match self.double_tap_secs.trim() {
            "" => 60,
            s => match s.parse::<u32>() {
                Ok(n) if n <= 3600 => n,
                _ => {
                    errors.add("double_tap_secs", "a whole number of seconds, at most 3600");
                    60
                }
            },
        };
        match scope {
            Some(scope) if errors.is_empty() => Ok(PolicySetting {
                scope,
                scope_key: self.scope_key.trim().to_owned(),
                policy: self.policy.clone(),
                double_tap_secs,
            }),
            _ => Err(errors),
        }
    }
}

const POLICY_HELP: &[(&str, &str)] = &[
    (
        "device",
        "the punch state the terminal sent (check-in 0, check-out 1, …)",
    ),
    (
        "first-last",
        "the first punch of the day is IN, the last OUT, the rest not counted",
    ),
    ("alternating", "IN, OUT, IN, OUT … in time order"),
    (
        "schedule",
        "by the shift: near its start IN, near its end OUT",
    ),
];

/// `GET /ui/policy`: the policies in force, the form, and (with `preview=1`) what a policy would change.
async fn policy_page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Query(form): Query<PolicyForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    Ok(render_policy(&app, &ctx, &form, &FormErrors::new())
        .await?
        .into_response())
}

async fn render_policy(
    app: &App,
    ctx: &UiCtx,
    form: &PolicyForm,
    errors: &FormErrors,
) -> Result<axum::response::Html<String>, UiError> {
    let store = app.store.as_ref();
    let policies = store.list_policies().await?;
    let sites = store.list_sites().await?;
    let rows: Vec<Vec<Markup>> = policies
        .iter()
        .map(|p| {
            vec![
                text(p.scope.as_str()),
                text(&p.scope_key),
                text(&p.policy),
                text(format!("{} s", p.double_tap_secs)),
            ]
        })
        .collect();
    let mut form = form.clone();
    if form.scope.is_empty() {
        form.scope = "site".into();
    }
    if form.policy.is_empty() {
        form.policy = "device".into();
    }
    if form.month.is_empty() {
        form.month = this_month();
    }
    if form.site.is_empty() && form.scope == "site" {
        form.site = form.scope_key.clone();
    }
    let mut preview_error = None;
    let preview = if form.preview == "1" {
        let device = (form.scope == "device").then_some(form.scope_key.trim());
        let site = if form.site.is_empty() {
            sites.first().map(|s| s.name.clone()).unwrap_or_default()
        } else {
            form.site.clone()
        };
        match review::preview(store, &site, &form.month, &form.policy, device, Utc::now()).await {
            Ok(r) => Some(r),
            Err(e) => {
                preview_error = Some(refusal(e)?);
                None
            }
        }
    } else {
        None
    };
    let site_options: Vec<(String, String)> = sites
        .iter()
        .map(|s| (s.name.clone(), s.name.clone()))
        .collect();
    let e = |f: &str| errors.get(f);
    let body = html! {
        dl.facts {
            @for (name, help) in POLICY_HELP { dt { (name) } dd { (help) } }
        }
        (table("Policies in force", &["Scope", "Site or device", "Policy", "Double tap"], rows,
            "No policy set: every site uses the punch state the terminal sent (device)."))
        h2 { "Preview, then set" }
        form.card method="get" action="/ui/policy" novalidate {
            input type="hidden" name="preview" value="1";
            (form_error(errors))
            div.row {
                (select("Applies to", "scope", &opts(&[("site", "a site"), ("device", "one device")]), &form.scope, e("scope")))
                (field("Site name or device SN", "scope_key", "text", &form.scope_key, e("scope_key"), None))
                (select("Policy", "policy", &POLICIES.iter().map(|p| ((*p).to_owned(), (*p).to_owned())).collect::<Vec<_>>(), &form.policy, e("policy")))
                (field("Double tap (s)", "double_tap_secs", "number", &form.double_tap_secs, e("double_tap_secs"), Some("default 60")))
            }
            div.row {
                (select("Preview on the site", "site", &site_options, &form.site, None))
                (field("Month", "month", "month", &form.month, None, None))
            }
            button type="submit" { "Preview" }
        }
        @if let Some(m) = preview_error { div.flash.error role="alert" { "Preview: " (m) } }
        @if let Some(r) = &preview {
            section.card aria-labelledby="preview-h" {
                h3 #preview-h { "Preview: " (r.proposed) " instead of " (r.current) " on " (r.site) " " (r.month)
                    @if let Some(d) = &r.device { " (device " (d) ")" } }
                p role="status" { (r.changed_days) " employee-days would change, for " (r.employees.len()) " employees. Nothing is written by a preview." }
                (table("What would change", &["Employee", "Present before → after", "Worked h before → after", "Exceptions before → after", "Dates"],
                    r.employees.iter().take(200).map(|p| vec![
                        text(&p.code),
                        text(format!("{} → {}", p.before.days_present, p.after.days_present)),
                        text(format!("{:.1} → {:.1}", p.before.worked_secs as f64 / 3600.0, p.after.worked_secs as f64 / 3600.0)),
                        text(format!("{} → {}", p.before.exceptions, p.after.exceptions)),
                        text(p.changed_dates.iter().map(|d| d.format("%d").to_string()).collect::<Vec<_>>().join(" ")),
                    ]).collect(),
                    "No employee's month would change."))
                @if ctx.may(Scope::Hr) {
                    form method="post" action="/ui/policy" {
                        (csrf_field(ctx))
                        input type="hidden" name="scope" value=(form.scope);
                        input type="hidden" name="scope_key" value=(form.scope_key);
                        input type="hidden" name="policy" value=(form.policy);
                        input type="hidden" name="double_tap_secs" value=(form.double_tap_secs);
                        button type="submit" { "Set " (form.policy) " for " (form.scope) " " (form.scope_key) }
                    }
                }
            }
        }
    };
    Ok(layout::html(layout::page(
        ctx,
        "Punch-state policy",
        Nav::Policy,
        body,
    )))
}

/// `POST /ui/policy` (scope `hr`), as `POST /api/v1/attendance/policies`.
async fn save_policy(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Form(form): Form<PolicyForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let errors = match form.parse() {
        Ok(p) => {
            let what = format!("{} for {} {}", p.policy, p.scope.as_str(), p.scope_key);
            match setup::put_policy(app.store.as_ref(), p, &author(&user)).await {
                Ok(()) => {
                    return Ok(layout::redirect_with_flash(
                        "/ui/policy",
                        Flash::ok(format!("Policy {what} set")),
                    ))
                }
                Err(e) => {
                    let mut errors = FormErrors::new();
                    errors.add("_form", refusal(e)?);
                    errors
                }
            }
        }
        Err(errors) => errors,
    };
    Ok((
        axum::http::StatusCode::BAD_REQUEST,
        render_policy(&app, &ctx, &form, &errors).await?,
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------------- sites

/// The site form.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SiteForm {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// IANA zone.
    #[serde(default)]
    pub time_zone: String,
    /// Day-change time `HH:MM`.
    #[serde(default)]
    pub day_change: String,
    /// Holidays, one a line: `YYYY-MM-DD name`.
    #[serde(default)]
    pub holidays: String,
    /// Weekly off Monday (`true`) … Sunday.
    #[serde(default)]
    pub wd1: String,
    /// Tuesday.
    #[serde(default)]
    pub wd2: String,
    /// Wednesday.
    #[serde(default)]
    pub wd3: String,
    /// Thursday.
    #[serde(default)]
    pub wd4: String,
    /// Friday.
    #[serde(default)]
    pub wd5: String,
    /// Saturday.
    #[serde(default)]
    pub wd6: String,
    /// Sunday.
    #[serde(default)]
    pub wd7: String,
}

impl SiteForm {
    fn of(s: &Site) -> SiteForm {
        let off = |d: u8| {
            if s.weekly_offs.contains(&d) {
                "true"
            } else {
                ""
            }
            .to_owned()
        };
        SiteForm {
            name: s.name.clone(),
            time_zone: s.time_zone.clone(),
            day_change: s.day_change.clone(),
            holidays: s
                .holidays
                .iter()
                .map(|h| format!("{} {}", h.day, h.name))
                .collect::<Vec<_>>()
                .join("\n"),
            wd1: off(1),
            wd2: off(2),
            wd3: off(3),
            wd4: off(4),
            wd5: off(5),
            wd6: off(6),
            wd7: off(7),
        }
    }

    /// The site, or the message of each wrong field.
    pub fn parse(&self) -> Result<Site, FormErrors> {
        let mut errors = FormErrors::new();
        if self.name.trim().is_empty() {
            errors.add("name", "the name is required");
        }
        if self.time_zone.trim().parse::<chrono_tz::Tz>().is_err() {
            errors.add(
                "time_zone",
                format!(
                    "{:?} is not an IANA zone (e.g. Europe/Berlin)",
                    self.time_zone.trim()
                ),
            );
        }
        let day_change = if self.day_change.trim().is_empty() {
            "00:00".to_owned()
        } else {
            hhmm(clock_field(&mut errors, "day_change", &self.day_change))
        };
        let mut holidays = Vec::new();
        for (i, line) in self.holidays.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (day, name) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            match NaiveDate::parse_from_str(day, "%Y-%m-%d") {
                Ok(day) => holidays.push(Holiday {
                    day,
                    name: name.trim().to_owned(),
                }),
                Err(_) => {
                    errors.add(
                        "holidays",
                        format!("line {}: {day:?} is not a date (YYYY-MM-DD name)", i + 1),
                    );
                    break;
                }
            }
        }
        let weekly_offs = [
            &self.wd1, &self.wd2, &self.wd3, &self.wd4, &self.wd5, &self.wd6, &self.wd7,
        ]
        .iter()
        .zip(1u8..)
        .filter(|(v, _)| v.as_str() == "true")
        .map(|(_, d)| d)
        .collect();
        if errors.is_empty() {
            Ok(Site {
                name: self.name.trim().to_owned(),
                time_zone: self.time_zone.trim().to_owned(),
                day_change,
                weekly_offs,
                holidays,
            })
        } else {
            Err(errors)
        }
    }
}

/// Which site to edit.
#[derive(Debug, Default, Deserialize)]
pub struct SiteQuery {
    /// Site name (empty = a new one).
    #[serde(default)]
    pub name: String,
}

/// `GET /ui/sites`: sites, and the form to add or change one.
async fn sites_page(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Query(q): Query<SiteQuery>,
) -> Result<Response, UiError> {
    require(&user, Scope::Read)?;
    let form = app
        .store
        .list_sites()
        .await?
        .iter()
        .find(|s| s.name == q.name)
        .map(SiteForm::of)
        .unwrap_or_else(|| SiteForm {
            day_change: "00:00".into(),
            wd6: "true".into(),
            wd7: "true".into(),
            ..SiteForm::default()
        });
    Ok(render_sites(&app, &ctx, &form, &FormErrors::new())
        .await?
        .into_response())
}

async fn render_sites(
    app: &App,
    ctx: &UiCtx,
    form: &SiteForm,
    errors: &FormErrors,
) -> Result<axum::response::Html<String>, UiError> {
    let sites = app.store.list_sites().await?;
    let rows: Vec<Vec<Markup>> = sites
        .iter()
        .map(|s| {
            vec![
                html! { a href={"/ui/sites?name=" (enc(&s.name))} { (s.name) } },
                text(&s.time_zone),
                text(&s.day_change),
                text(
                    s.weekly_offs
                        .iter()
                        .map(|d| weekday_name(*d))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                text(s.holidays.len().to_string()),
                html! { a href={"/ui/review?site=" (enc(&s.name))} { "Review" } },
            ]
        })
        .collect();
    let offs = [
        &form.wd1, &form.wd2, &form.wd3, &form.wd4, &form.wd5, &form.wd6, &form.wd7,
    ]
    .map(|v| v == "true");
    let e = |f: &str| errors.get(f);
    let body = html! {
        p { a href="/ui/shifts" { "← Shifts" } }
        (table("Sites", &["Name", "Time zone", "Day change", "Weekly offs", "Holidays", "Month"], rows, "No site yet."))
        @if ctx.may(Scope::Hr) {
            h2 { "Add or change a site" }
            form.card method="post" action="/ui/sites" novalidate {
                (csrf_field(ctx))
                (form_error(errors))
                (field("Name", "name", "text", &form.name, e("name"), Some("what terminals carry in their site setting")))
                (field("Time zone", "time_zone", "text", &form.time_zone, e("time_zone"), Some("IANA name, e.g. Europe/Berlin")))
                (field("Day change", "day_change", "time", &form.day_change, e("day_change"), Some("when a day without a shift starts")))
                fieldset {
                    legend { "Weekly offs" }
                    @for d in 1u8..=7 {
                        label.check {
                            input type="checkbox" name={"wd" (d)} value="true" checked[offs[usize::from(d - 1)]];
                            " " (weekday_name(d))
                        }
                        " "
                    }
                }
                div.field.invalid[e("holidays").is_some()] {
                    label for="f-holidays" { "Holidays" }
                    textarea #f-holidays name="holidays" rows="4"
                        aria-invalid=[e("holidays").map(|_| "true")]
                        aria-describedby=@if e("holidays").is_some() { "f-holidays-hint f-holidays-error" } @else { "f-holidays-hint" } { (form.holidays) }
                    small.hint #f-holidays-hint { "one a line: YYYY-MM-DD name" }
                    @if let Some(m) = e("holidays") { span.error #f-holidays-error { (m) } }
                }
                button type="submit" { "Save site" }
            }
        }
    };
    Ok(layout::html(layout::page(ctx, "Sites", Nav::Shifts, body)))
}

/// `POST /ui/sites` (scope `hr`), as `POST /api/v1/attendance/sites`.
async fn save_site(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Form(form): Form<SiteForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Hr)?;
    let errors = match form.parse() {
        Ok(site) => {
            let name = site.name.clone();
            match setup::put_site(app.store.as_ref(), site, &author(&user)).await {
                Ok(()) => {
                    return Ok(layout::redirect_with_flash(
                        &format!("/ui/sites?name={}", enc(&name)),
                        Flash::ok(format!("Site {name} saved")),
                    ))
                }
                Err(e) => {
                    let mut errors = FormErrors::new();
                    errors.add("_form", refusal(e)?);
                    errors
                }
            }
        }
        Err(errors) => errors,
    };
    Ok((
        axum::http::StatusCode::BAD_REQUEST,
        render_sites(&app, &ctx, &form, &errors).await?,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shift_form_round_trips_and_names_bad_minutes() {
        let mut shift = Shift::new(
            "Day",
            NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
            NaiveTime::from_hms_opt(18, 0, 0).expect("time"),
        );
        shift.grace_in_secs = 600;
        shift.break_rule = BreakRule::Deduct {
            secs: 1800,
            min_worked_secs: 6 * 3600,
        };
        shift.overtime.daily_cap_secs = 7200;
        assert_eq!(ShiftForm::of(&shift).parse(), Ok(shift));

        let mut bad = ShiftForm {
            name: " ".into(),
            start: "25:00".into(),
            grace_in: "ten".into(),
            break_rule: "deduct".into(),
            ..ShiftForm::default()
        };
        bad.break_mins = String::new();
        let errors = bad.parse().expect_err("invalid");
        assert_eq!(errors.get("name"), Some("the name is required"));
        assert_eq!(errors.get("start"), Some("\"25:00\" is not a time (HH:MM)"));
        assert_eq!(
            errors.get("grace_in"),
            Some("\"ten\" is not a whole number of minutes")
        );
        assert_eq!(
            errors.get("break_mins"),
            Some("a deducted break needs its minutes")
        );
    }

    #[test]
    fn a_roster_form_writes_the_chosen_weekdays_of_the_range() {
        let form = RosterForm {
            employees: "E1, E2\nE3".into(),
            from: "2026-11-02".into(),
            to: "2026-11-08".into(),
            shift: "Day".into(),
            wd1: "true".into(),
            wd3: "true".into(),
            ..RosterForm::default()
        };
        let lines = form.parse().expect("valid");
        assert_eq!(lines.len(), 6);
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.employee_code == "E2")
                .map(|l| l.day.to_string())
                .collect::<Vec<_>>(),
            ["2026-11-02", "2026-11-04"]
        );
        assert!(lines.iter().all(|l| l.shift.as_deref() == Some("Day")));
        let backwards = RosterForm {
            employees: "E1".into(),
            from: "2026-11-08".into(),
            to: "2026-11-02".into(),
            ..RosterForm::default()
        };
        assert_eq!(
            backwards.parse().expect_err("invalid").get("to"),
            Some("the last date is before the first")
        );
    }

    #[test]
    fn a_site_form_reads_offs_and_holidays() {
        let form = SiteForm {
            name: "HQ".into(),
            time_zone: "Europe/Berlin".into(),
            day_change: "04:00".into(),
            holidays: "2026-12-25 Christmas\n\n2026-12-26".into(),
            wd6: "true".into(),
            wd7: "true".into(),
            ..SiteForm::default()
        };
        let site = form.parse().expect("valid");
        assert_eq!(site.weekly_offs, [6, 7]);
        assert_eq!(site.day_change, "04:00");
        assert_eq!(site.holidays.len(), 2);
        assert_eq!(site.holidays[0].name, "Christmas");
        assert_eq!(SiteForm::of(&site).parse(), Ok(site));
        let bad = SiteForm {
            name: "X".into(),
            time_zone: "Mars/Base".into(),
            holidays: "25.12.2026 Christmas".into(),
            ..SiteForm::default()
        };
        let errors = bad.parse().expect_err("invalid");
        assert!(errors.get("time_zone").is_some());
        assert_eq!(
            errors.get("holidays"),
            Some("line 1: \"25.12.2026\" is not a date (YYYY-MM-DD name)")
        );
    }

    #[test]
    fn a_policy_form_needs_a_known_policy() {
        let form = PolicyForm {
            scope: "site".into(),
            scope_key: "HQ".into(),
            policy: "first-last".into(),
            ..PolicyForm::default()
        };
        assert_eq!(form.parse().expect("valid").double_tap_secs, 60);
        let bad = PolicyForm {
            policy: "random".into(),
            double_tap_secs: "-1".into(),
            ..PolicyForm::default()
        };
        let errors = bad.parse().expect_err("invalid");
        assert!(errors.get("policy").is_some() && errors.get("scope").is_some());
        assert!(errors.get("double_tap_secs").is_some());
    }
}
