//! HR's work on a month: corrections, exception reviews, sign-off and reopen, and the preview of a punch-state
//! policy. Each change carries an author and a reason and is written with its audit record; a signed-off month
//! refuses changes until it is reopened (with a reason, audited).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::monthly::{self, load_inputs, parse_month, parse_status, Month};
use super::rules::{self, MonthTotals, PunchStatePolicy, RulePunch};
use super::setup::{audit, AttError, AttResult};
use crate::domain::DeviceSn;
use crate::store::attendance::{Correction, CorrectionKind, ExceptionReview, ReviewState, SignOff};
use crate::store::{Store, StoreError};

fn month_of(day: NaiveDate) -> String {
    day.format("%Y-%m").to_string()
}

/// The site whose month a day of an employee belongs to (the employee's site).
async fn employee_site(store: &dyn Store, code: &str) -> AttResult<Option<String>> {
    Ok(store
        .list_employees()
        .await?
        .into_iter()
        .find(|e| e.code == code)
        .ok_or_else(|| AttError::Store(StoreError::NotFound(format!("employee {code}"))))?
        .site)
}

async fn refuse_if_signed_off(store: &dyn Store, code: &str, day: NaiveDate) -> AttResult<()> {
    if let Some(site) = employee_site(store, code).await? {
        let month = month_of(day);
        if let Some(s) = store.get_signoff(&site, &month).await? {
            return Err(AttError::Store(StoreError::Conflict(format!(
                "{site} {month} is signed off (by {} at {}); reopen it with a reason first",
                s.author,
                s.signed_at.to_rfc3339()
            ))));
        }
    }
    Ok(())
}

/// Record a correction after checking it: a reason is required; add-punch needs a time; void-punch a punch id;
/// set-status a known status; overtime decisions minutes. Refused for a signed-off month.
pub async fn correct(store: &dyn Store, mut c: Correction, author: &str) -> AttResult<Correction> {
    if c.reason.trim().is_empty() {
        return Err(AttError::Invalid("a correction needs a reason".into()));
    }
    let missing = match c.kind {
        CorrectionKind::AddPunch if c.punched_at.is_none() => Some("add-punch needs the punch time"),
        CorrectionKind::VoidPunch if c.punch_id.is_none() => Some("void-punch needs the punch id"),
        CorrectionKind::SetStatus if c.status.as_deref().and_then(parse_status).is_none() => Some(
            "set-status needs a status: present, absent, half-day, weekly-off, holiday, leave, inactive",
        ),
        CorrectionKind::CutOvertime if c.minutes.is_none() => Some("cut-overtime needs the minutes kept"),
        _ => None,
    };
    if let Some(m) = missing {
        return Err(AttError::Invalid(m.into()));
    }
    refuse_if_signed_off(store, &c.employee_code, c.day).await?;
    c.author = author.to_owned();
    c.created_at = Utc::now();
    let subject = format!("{}/{}", c.employee_code, c.day);
    let detail = serde_json::json!({"kind": c.kind, "reason": c.reason});
    Ok(store
        .add_correction(c, audit(author, "correction.add", &subject, detail))
        .await?)
}

/// Revoke correction `id` (HR takes it back, with a reason; audited as `correction.revoke`): it stops counting in
/// the month and stays stored. A punch HR added and revoked after it was delivered is withdrawn from every sink that
/// received it, like a voided punch (`sinks::withdraw`). Returns the correction as it was.
///
/// Errors: no reason (`Invalid`); unknown id (`NotFound`); revoked already (`Conflict`); its month is signed off
/// (`Conflict`: reopen it first).
pub async fn revoke(
    store: &dyn Store,
    id: i64,
    reason: &str,
    author: &str,
) -> AttResult<Correction> {
    if reason.trim().is_empty() {
        return Err(AttError::Invalid(
            "revoking a correction needs a reason".into(),
        ));
    }
    let (c, revoked_at) = store.get_correction(id).await?;
    if let Some(at) = revoked_at {
        return Err(AttError::Store(StoreError::Conflict(format!(
            "correction {id} was revoked already at {}",
            at.to_rfc3339()
        ))));
    }
    refuse_if_signed_off(store, &c.employee_code, c.day).await?;
    let subject = format!("{}/{}", c.employee_code, c.day);
    let detail = serde_json::json!({"kind": c.kind, "reason": reason});
    store
        .revoke_correction(
            id,
            Utc::now(),
            audit(author, "correction.revoke", &subject, detail),
        )
        .await?;
    Ok(c)
}

/// Move an exception to explained, approved or rejected (open is where every exception starts).
pub async fn review(
    store: &dyn Store,
    employee_code: &str,
    day: NaiveDate,
    kind: &str,
    state: ReviewState,
    note: &str,
    author: &str,
) -> AttResult<()> {
    if state == ReviewState::Open {
        return Err(AttError::Invalid(
            "an exception can be moved to explained, approved or rejected".into(),
        ));
    }
    if note.trim().is_empty() {
        return Err(AttError::Invalid(
            "a review needs a note (the explanation or the reason)".into(),
        ));
    }
    refuse_if_signed_off(store, employee_code, day).await?;
    let r = ExceptionReview {
        employee_code: employee_code.to_owned(),
        day,
        kind: kind.to_owned(),
        state,
        author: author.to_owned(),
        note: note.to_owned(),
        updated_at: Utc::now(),
    };
    let subject = format!("{employee_code}/{day}/{kind}");
    let detail = serde_json::json!({"state": state, "note": note});
    store
        .put_review(r, audit(author, "exception.review", &subject, detail))
        .await?;
    Ok(())
}

/// Sign off a site's month: compute it, refuse when days are incomplete unless `force`, freeze it.
pub async fn sign_off(
    store: &dyn Store,
    site: &str,
    month: &str,
    force: bool,
    author: &str,
    now: DateTime<Utc>,
) -> AttResult<Month> {
    parse_month(month)?;
    if store.get_signoff(site, month).await?.is_some() {
        return Err(AttError::Store(StoreError::Conflict(format!(
            "{site} {month} is signed off already; reopen it first"
        ))));
    }
    // The highest punch id before computing: a punch stored while we compute counts as arrived after.
    let max_punch_id = store.max_punch_id().await?;
    let m = monthly::month(store, site, month, now).await?;
    if m.incomplete_days > 0 && !force {
        let mut held: Vec<String> = m
            .employees
            .iter()
            .flat_map(|e| e.days.iter().flat_map(|d| d.held_by.iter().cloned()))
            .collect();
        held.sort();
        held.dedup();
        return Err(AttError::Invalid(format!(
            "{site} {month} has {} incomplete employee-days (held back by {}); sign off with --force (force=true) \
             to freeze them as they are",
            m.incomplete_days,
            held.join(", ")
        )));
    }
    let signoff = SignOff {
        site: site.to_owned(),
        month: month.to_owned(),
        signed_at: now,
        author: author.to_owned(),
        forced: force,
        max_punch_id,
        snapshot: serde_json::to_value(&m).map_err(|e| AttError::Invalid(e.to_string()))?,
    };
    let detail = serde_json::json!({"forced": force, "incomplete_days": m.incomplete_days});
    store
        .sign_off(
            signoff,
            audit(author, "signoff", &format!("{site}/{month}"), detail),
        )
        .await?;
    monthly::month(store, site, month, now).await
}

/// Reopen a signed-off month; the reason is required and audited.
pub async fn reopen(
    store: &dyn Store,
    site: &str,
    month: &str,
    reason: &str,
    author: &str,
) -> AttResult<()> {
    if reason.trim().is_empty() {
        return Err(AttError::Invalid(
            "reopening a signed-off month needs a reason".into(),
        ));
    }
    store
        .reopen(
            site,
            month,
            audit(
                author,
                "reopen",
                &format!("{site}/{month}"),
                serde_json::json!({"reason": reason}),
            ),
        )
        .await?;
    Ok(())
}

/// What a policy change would do to one employee.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmployeePreview {
    /// Employee code.
    pub code: String,
    /// Totals now.
    pub before: MonthTotals,
    /// Totals with the proposed policy.
    pub after: MonthTotals,
    /// Dates whose result changes.
    #[schema(value_type = Vec<String>)]
    pub changed_dates: Vec<NaiveDate>,
}

/// The preview of a policy change on the stored punches of a month.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreviewReport {
    /// The site.
    pub site: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The policy in force (site level).
    pub current: String,
    /// The proposed policy.
    pub proposed: String,
    /// The device it applies to (none = the whole site).
    pub device: Option<String>,
    /// Employees whose month changes (others are left out).
    pub employees: Vec<EmployeePreview>,
    /// Employee-days that change.
    pub changed_days: usize,
}

/// Preview a policy (for the site, or one device) on the month's stored punches; nothing is written.
pub async fn preview(
    store: &dyn Store,
    site: &str,
    month: &str,
    proposed: &str,
    device: Option<&str>,
    now: DateTime<Utc>,
) -> AttResult<PreviewReport> {
    let policy = PunchStatePolicy::parse(proposed).ok_or_else(|| {
        AttError::Invalid(format!(
            "policy {proposed:?} is not one of device, first-last, alternating, schedule"
        ))
    })?;
    let (_, _, dates) = parse_month(month)?;
    let inputs = load_inputs(store, site, now).await?;
    let mut next = inputs.policy.clone();
    match device {
        None => next.site = policy,
        Some(sn) => {
            let sn =
                DeviceSn::parse(sn).map_err(|e| AttError::Invalid(format!("invalid SN: {e}")))?;
            next.devices.retain(|(d, _)| *d != sn);
            next.devices.push((sn, policy));
        }
    }
    let first = dates[0];
    let after_last = dates[dates.len() - 1] + chrono::Duration::days(1);
    let roster: HashMap<_, _> = store
        .list_roster(first, after_last)
        .await?
        .into_iter()
        .map(|r| ((r.employee_code, r.day), r.shift))
        .collect();
    let from = monthly::local_to_utc(inputs.rules.zone, first.and_time(inputs.rules.day_change))
        - chrono::Duration::days(2);
    let to = monthly::local_to_utc(
        inputs.rules.zone,
        after_last.and_time(inputs.rules.day_change),
    ) + chrono::Duration::days(2);
    let punches = store
        .punches_between(inputs.devices.clone(), from, to)
        .await?;
    let mut by_employee: BTreeMap<String, Vec<RulePunch>> = BTreeMap::new();
    for p in &punches {
        if let Some(code) = inputs
            .resolver
            .resolve(p.device_sn.as_str(), p.pin.as_str())
        {
            by_employee
                .entry(code.to_owned())
                .or_default()
                .push(RulePunch {
                    id: p.id,
                    device_sn: p.device_sn.clone(),
                    at: p.punched_at_utc,
                    punch_state: p.punch_state,
                    added_by_correction: false,
                    voided: false,
                });
        }
    }
    let mut out = Vec::new();
    let mut changed_days = 0;
    for (code, punches) in &by_employee {
        let Some(e) = inputs.employees.iter().find(|e| &e.code == code) else {
            continue;
        };
        let plans = monthly::plan_days(&inputs, e, &dates, &roster, &HashMap::new())?;
        let p = rules::preview(&inputs.rules, &inputs.policy, &next, punches, &plans);
        if p.changes.is_empty() && p.before == p.after {
            continue;
        }
        changed_days += p.changes.len();
        out.push(EmployeePreview {
            code: code.clone(),
            before: p.before,
            after: p.after,
            changed_dates: p.changes.iter().map(|c| c.after.date).collect(),
        });
    }
    Ok(PreviewReport {
        site: site.to_owned(),
        month: month.to_owned(),
        current: inputs.policy.site.as_str().to_owned(),
        proposed: proposed.to_owned(),
        device: device.map(str::to_owned),
        employees: out,
        changed_days,
    })
}
