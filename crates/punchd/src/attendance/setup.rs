//! Checked changes to attendance facts (sites, employees, mappings, shifts, roster, policies), shared by the CLI
//! and the JSON API: everything is validated before anything is written, and each change is written with its
//! audit record in one transaction, so a refused change leaves nothing half-applied.

use std::collections::HashSet;

use chrono::NaiveTime;
use serde::Serialize;

use super::import::{ParsedFile, RowError};
use super::rules::{BreakRule, Shift};
use crate::store::attendance::{
    AuditRecord, Employee, PinMapping, PolicySetting, RosterEntry, Scope, ShiftDef, Site,
};
use crate::store::{Store, StoreError};

/// Why an attendance change was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AttError {
    /// The input is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Attendance result.
pub type AttResult<T> = std::result::Result<T, AttError>;

fn invalid<T>(msg: impl Into<String>) -> AttResult<T> {
    Err(AttError::Invalid(msg.into()))
}

/// An audit record.
pub fn audit(author: &str, action: &str, subject: &str, detail: serde_json::Value) -> AuditRecord {
    AuditRecord {
        author: author.to_owned(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        detail,
    }
}

/// Parse a clock time `HH:MM` or `HH:MM:SS`.
pub fn parse_clock(s: &str) -> AttResult<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s.trim(), "%H:%M:%S"))
        .map_err(|_| AttError::Invalid(format!("time {s:?} is not HH:MM")))
}

/// Parse a duration: `90s`, `10m`, `1h`, `1h30m`, or plain seconds.
pub fn parse_duration_secs(s: &str) -> AttResult<u32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| {
            AttError::Invalid(format!("duration {s:?} is not like 10m, 90s, 1h30m"))
        })?;
        num.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return invalid(format!("duration {s:?}: unknown unit {c:?} (use h, m, s)")),
        };
    }
    if !num.is_empty() {
        return invalid(format!("duration {s:?} needs a unit (h, m, s)"));
    }
    u32::try_from(total).map_err(|_| AttError::Invalid(format!("duration {s:?} is too long")))
}

/// Create or replace a site after checking its zone, day-change time and weekly offs.
pub async fn put_site(store: &dyn Store, site: Site, author: &str) -> AttResult<()> {
    if site.name.trim().is_empty() {
        return invalid("the site name is empty");
    }
    if site.time_zone.parse::<chrono_tz::Tz>().is_err() {
        return invalid(format!(
            "time zone {:?} is not an IANA zone (e.g. Europe/Berlin)",
            site.time_zone
        ));
    }
    parse_clock(&site.day_change)?;
    if let Some(d) = site.weekly_offs.iter().find(|d| !(1..=7).contains(*d)) {
        return invalid(format!(
            "weekly off {d} is not a weekday number 1 (Monday) … 7 (Sunday)"
        ));
    }
    let detail = serde_json::to_value(&site).unwrap_or_default();
    let name = site.name.clone();
    store
        .put_site(site, audit(author, "site.put", &name, detail))
        .await?;
    Ok(())
}

/// The outcome of an employee import.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Employees written (0 on a dry run or when `all_or_nothing` refused the file).
    pub imported: usize,
    /// Good rows (what would be written).
    pub valid: usize,
    /// Bad rows, by row number.
    pub errors: Vec<RowError>,
    /// Nothing was written because it was a dry run.
    pub dry_run: bool,
}

/// Check parsed rows against the store (known sites and shifts) and write the good ones: all of them, or none
/// when `all_or_nothing` is set and a row is bad, or none on a dry run.
pub async fn import_employees(
    store: &dyn Store,
    mut parsed: ParsedFile,
    all_or_nothing: bool,
    dry_run: bool,
    author: &str,
) -> AttResult<ImportReport> {
    let sites: HashSet<String> = store
        .list_sites()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let shifts: HashSet<String> = store
        .list_shifts()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let mut good = Vec::new();
    for (row, e) in parsed.employees {
        let problem = match (&e.site, &e.default_shift) {
            (Some(s), _) if !sites.contains(s) => Some(format!(
                "site {s:?} is unknown (add it with `punchd sites add`)"
            )),
            (_, Some(s)) if !shifts.contains(s) => Some(format!(
                "shift {s:?} is unknown (add it with `punchd shifts add`)"
            )),
            _ => None,
        };
        match problem {
            Some(reason) => parsed.errors.push(RowError { row, reason }),
            None => good.push(e),
        }
    }
    parsed.errors.sort_by_key(|e| e.row);
    let valid = good.len();
    let refused = all_or_nothing && !parsed.errors.is_empty();
    let write = !dry_run && !refused && !good.is_empty();
    if write {
        let detail = serde_json::json!({"employees": valid, "bad_rows": parsed.errors.len()});
        store
            .put_employees(good, audit(author, "employee.import", "employees", detail))
            .await?;
    }
    Ok(ImportReport {
        imported: if write { valid } else { 0 },
        valid,
        errors: parsed.errors,
        dry_run,
    })
}

/// Add or replace one employee after the same checks as an import row.
pub async fn put_employee(store: &dyn Store, e: Employee, author: &str) -> AttResult<()> {
    let parsed = ParsedFile {
        employees: vec![(1, e)],
        errors: Vec::new(),
    };
    if parsed.employees[0].1.code.trim().is_empty() || parsed.employees[0].1.name.trim().is_empty()
    {
        return invalid("code and name are required");
    }
    let report = import_employees(store, parsed, true, false, author).await?;
    match report.errors.first() {
        Some(err) => invalid(err.reason.clone()),
        None => Ok(()),
    }
}

/// Add a PIN mapping after checking that its device or site exists.
pub async fn add_mapping(store: &dyn Store, m: PinMapping, author: &str) -> AttResult<()> {
    if m.pin.is_empty() {
        return invalid("the PIN is empty");
    }
    match m.scope {
        Scope::Site => {
            if !store
                .list_sites()
                .await?
                .iter()
                .any(|s| s.name == m.scope_key)
            {
                return invalid(format!("site {:?} is unknown", m.scope_key));
            }
        }
        Scope::Device => {
            let sn = crate::domain::DeviceSn::parse(&m.scope_key)
                .map_err(|e| AttError::Invalid(format!("invalid SN {:?}: {e}", m.scope_key)))?;
            store.get_device(&sn).await?;
        }
    }
    let subject = format!("{}:{}/{}", m.scope.as_str(), m.scope_key, m.pin);
    let detail = serde_json::to_value(&m).unwrap_or_default();
    store
        .add_mapping(m, audit(author, "mapping.add", &subject, detail))
        .await?;
    Ok(())
}

/// Check and add (or, with `replace`, change) a shift. Refused ([`Shift::validate`]): an empty name, a shift
/// that starts when it ends, check-in/check-out windows that overlap the same shift the next day (overlapping
/// definitions), thresholds out of order; here also grace-in plus grace-out as long as the shift, a deducted break
/// as long as the shift; and a name in use (without `replace`).
pub async fn put_shift(
    store: &dyn Store,
    shift: Shift,
    replace: bool,
    author: &str,
) -> AttResult<()> {
    shift
        .validate()
        .map_err(|e| AttError::Invalid(e.to_string()))?;
    let span = i64::from(shift.length_secs());
    if let BreakRule::Deduct { secs, .. } = shift.break_rule {
        if i64::from(secs) >= span {
            return invalid(format!(
                "shift {}: a break of {} min does not fit a shift of {} min",
                shift.name,
                secs / 60,
                span / 60
            ));
        }
    }
    if i64::from(shift.grace_in_secs) + i64::from(shift.grace_out_secs) >= span {
        return invalid(format!(
            "shift {}: grace-in and grace-out overlap (together as long as the shift)",
            shift.name
        ));
    }
    let def = ShiftDef {
        name: shift.name.clone(),
        definition: serde_json::to_value(&shift).map_err(|e| AttError::Invalid(e.to_string()))?,
    };
    let detail = def.definition.clone();
    let name = def.name.clone();
    store
        .put_shift(def, replace, audit(author, "shift.put", &name, detail))
        .await?;
    Ok(())
}

/// The shifts of the store, readable by the rules; `Invalid` names a stored definition that is not.
pub async fn load_shifts(store: &dyn Store) -> AttResult<Vec<Shift>> {
    store
        .list_shifts()
        .await?
        .into_iter()
        .map(|d| {
            serde_json::from_value(d.definition).map_err(|e| {
                AttError::Invalid(format!("stored shift {} is unreadable: {e}", d.name))
            })
        })
        .collect()
}

/// Write roster lines, all or nothing (the store names the first unknown employee or shift).
pub async fn put_roster(
    store: &dyn Store,
    entries: Vec<RosterEntry>,
    author: &str,
) -> AttResult<()> {
    if entries.is_empty() {
        return invalid("no roster lines");
    }
    let detail = serde_json::json!({"lines": entries.len()});
    store
        .put_roster(entries, audit(author, "roster.put", "roster", detail))
        .await?;
    Ok(())
}

/// The punch-state policies punchd knows.
pub const POLICIES: &[&str] = &["device", "first-last", "alternating", "schedule"];

/// Set a policy after checking its name and scope.
pub async fn put_policy(store: &dyn Store, p: PolicySetting, author: &str) -> AttResult<()> {
    if !POLICIES.contains(&p.policy.as_str()) {
        return invalid(format!(
            "policy {:?} is not one of {}",
            p.policy,
            POLICIES.join(", ")
        ));
    }
    let subject = format!("{}:{}", p.scope.as_str(), p.scope_key);
    let detail = serde_json::to_value(&p).unwrap_or_default();
    store
        .put_policy(p, audit(author, "policy.put", &subject, detail))
        .await?;
    Ok(())
}
