//! Employees from Frappe (`punchd sinks employees-sync NAME`): read every Employee that has the sink's employee
//! field set, through the REST resource API (frappe-hr.md §4: `GET /api/resource/Employee` with `fields`, `filters`
//! `[[field, "is", "set"]]`, paged by `limit_start`/`limit_page_length`), and bring them into punchd's employees.
//!
//! - The punchd employee code is the value of the sink's employee field (default `attendance_device_id`, §3): the
//!   same value the sink sends back as `employee_field_value`, and, by the PIN = employee code convention, the PIN
//!   on the terminals, so those PINs map themselves with no mapping row.
//! - Fields: `employee_name` → name; `status` (§3: Active, Inactive, Suspended, Left) → active, inactive
//!   (Inactive and Suspended), left with `relieving_date` as the last day; `date_of_joining` → joined on;
//!   `department` → department; `branch` → site when punchd has a site of that name. The local default shift is
//!   kept (Frappe's shifts are not punchd's).
//! - Never silently: a new employee is created; an existing one whose fields differ is listed as a conflict per
//!   field and left as it is, unless `overwrite` is given. Employees with the field empty are skipped (counted).
//!   Every write is one audited transaction (`employee.sync-frappe`).

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::frappe::{authorization, client, FrappeConfig};
use super::webhook::error_chain;
use crate::store::attendance::{AuditRecord, Employee, EmployeeStatus, Site};
use crate::store::outbox::{Sink, SinkKind};
use crate::store::Store;

/// Rows asked for per page (Frappe's default is 20, §4).
const PAGE: usize = 500;

/// One Employee as Frappe lists it (the fields punchd reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrappeEmployee {
    /// Document name (`HR-EMP-00001`).
    pub name: String,
    /// The value of the sink's employee field (becomes the punchd employee code).
    pub key: String,
    /// `employee_name`.
    pub employee_name: Option<String>,
    /// `status`: Active, Inactive, Suspended or Left.
    pub status: String,
    /// `date_of_joining`.
    pub date_of_joining: Option<NaiveDate>,
    /// `relieving_date`.
    pub relieving_date: Option<NaiveDate>,
    /// `department`.
    pub department: Option<String>,
    /// `branch`.
    pub branch: Option<String>,
}

/// One field where punchd's employee and Frappe's disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Conflict {
    /// Employee code.
    pub code: String,
    /// The field (`name`, `status`, `left_on`, `joined_on`, `department`, `site`).
    pub field: String,
    /// punchd's value.
    pub local: String,
    /// Frappe's value.
    pub frappe: String,
}

/// What a sync did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    /// Employees Frappe listed with the field set.
    pub read: usize,
    /// Codes created.
    pub created: Vec<String>,
    /// Codes updated from Frappe (`overwrite`).
    pub updated: Vec<String>,
    /// Employees identical on both sides.
    pub unchanged: usize,
    /// Differences left as they are (without `overwrite`).
    pub conflicts: Vec<Conflict>,
    /// Frappe employees skipped, with why (the same code twice).
    pub skipped: Vec<String>,
    /// Nothing was written.
    pub dry_run: bool,
}

fn text(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn date(v: &serde_json::Value, key: &str) -> Option<NaiveDate> {
    text(v, key).and_then(|s| NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok())
}

/// Read every Employee with `config.employee_field` set, page by page.
///
/// Errors: Frappe cannot be reached or refuses (401/403: the API user needs read on Employee), or answers
/// something that is not a v1 list.
pub async fn read(config: &FrappeConfig) -> anyhow::Result<Vec<FrappeEmployee>> {
    let http = client(config)?;
    let field = config.employee_field.as_str();
    let mut fields = vec![
        "name",
        "employee_name",
        "status",
        "date_of_joining",
        "relieving_date",
        "department",
        "branch",
    ];
    if !fields.contains(&field) {
        fields.push(field);
    }
    let fields = serde_json::to_string(&fields)?;
    let filters = serde_json::json!([[field, "is", "set"]]).to_string();
    let url = format!("{}/api/resource/Employee", config.url.trim_end_matches('/'));
    let page = PAGE.to_string();
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let start = offset.to_string();
        let answer = http
            .get(&url)
            .query(&[
                ("fields", fields.as_str()),
                ("filters", filters.as_str()),
                ("order_by", "name asc"),
                ("limit_start", start.as_str()),
                ("limit_page_length", page.as_str()),
            ])
            .header(reqwest::header::AUTHORIZATION, authorization(config))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("could not reach {}: {}", config.url, error_chain(&e)))?;
        let status = answer.status().as_u16();
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        match status {
            200 => {}
            401 => anyhow::bail!("Frappe refused the API key and secret (HTTP 401)"),
            403 => anyhow::bail!(
                "the API user may not read Employee (HTTP 403): give it read on Employee"
            ),
            other => anyhow::bail!(
                "listing Employee: HTTP {other} {}",
                super::frappe::server_messages(&body).join(" ")
            ),
        }
        let rows = body
            .get("data")
            .and_then(|d| d.as_array())
            .ok_or_else(|| anyhow::anyhow!("listing Employee: the answer has no data list"))?;
        offset += rows.len();
        for row in rows {
            let Some(key) = text(row, field) else {
                continue;
            };
            out.push(FrappeEmployee {
                name: text(row, "name").unwrap_or_default(),
                key,
                employee_name: text(row, "employee_name"),
                status: text(row, "status").unwrap_or_else(|| "Active".into()),
                date_of_joining: date(row, "date_of_joining"),
                relieving_date: date(row, "relieving_date"),
                department: text(row, "department"),
                branch: text(row, "branch"),
            });
        }
        if rows.len() < PAGE {
            return Ok(out);
        }
    }
}

/// punchd's employee for a Frappe employee; the local one (if any) gives what Frappe does not carry.
fn employee_of(f: &FrappeEmployee, local: Option<&Employee>, sites: &[Site]) -> Employee {
    let status = match f.status.as_str() {
        "Left" => EmployeeStatus::Left,
        "Inactive" | "Suspended" => EmployeeStatus::Inactive,
        _ => EmployeeStatus::Active,
    };
    let site = f
        .branch
        .as_ref()
        .filter(|b| sites.iter().any(|s| &s.name == *b))
        .cloned()
        .or_else(|| local.and_then(|l| l.site.clone()));
    Employee {
        code: f.key.clone(),
        name: f.employee_name.clone().unwrap_or_else(|| f.name.clone()),
        status,
        joined_on: f.date_of_joining.or(local.and_then(|l| l.joined_on)),
        left_on: if status == EmployeeStatus::Left {
            f.relieving_date
        } else {
            None
        },
        site,
        department: f
            .department
            .clone()
            .or_else(|| local.and_then(|l| l.department.clone())),
        default_shift: local.and_then(|l| l.default_shift.clone()),
    }
}

fn show<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

/// Compare Frappe's employees with punchd's: the employees to write and the report. Pure.
pub fn reconcile(
    frappe: &[FrappeEmployee],
    local: &[Employee],
    sites: &[Site],
    overwrite: bool,
) -> (Vec<Employee>, SyncReport) {
    let by_code: HashMap<&str, &Employee> = local.iter().map(|e| (e.code.as_str(), e)).collect();
    let mut report = SyncReport {
        read: frappe.len(),
        ..SyncReport::default()
    };
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut write = Vec::new();
    for f in frappe {
        if let Some(first) = seen.insert(f.key.as_str(), f.name.as_str()) {
            report.skipped.push(format!(
                "{}: code {:?} is also {first}'s; kept {first}",
                f.name, f.key
            ));
            seen.insert(f.key.as_str(), first);
            continue;
        }
        let existing = by_code.get(f.key.as_str()).copied();
        let wanted = employee_of(f, existing, sites);
        let Some(existing) = existing else {
            report.created.push(wanted.code.clone());
            write.push(wanted);
            continue;
        };
        let pairs = [
            ("name", existing.name.clone(), wanted.name.clone()),
            (
                "status",
                existing.status.as_str().to_owned(),
                wanted.status.as_str().to_owned(),
            ),
            ("left_on", show(&existing.left_on), show(&wanted.left_on)),
            (
                "joined_on",
                show(&existing.joined_on),
                show(&wanted.joined_on),
            ),
            (
                "department",
                show(&existing.department),
                show(&wanted.department),
            ),
            ("site", show(&existing.site), show(&wanted.site)),
        ];
        let differences: Vec<Conflict> = pairs
            .into_iter()
            .filter(|(_, l, r)| l != r)
            .map(|(field, local, frappe)| Conflict {
                code: existing.code.clone(),
                field: field.to_owned(),
                local,
                frappe,
            })
            .collect();
        if differences.is_empty() {
            report.unchanged += 1;
        } else if overwrite {
            report.updated.push(wanted.code.clone());
            write.push(wanted);
        } else {
            report.conflicts.extend(differences);
        }
    }
    (write, report)
}

/// Read the employees of a Frappe sink's site and bring them into punchd (see the module doc).
///
/// Errors: the sink is not a Frappe sink, Frappe fails, or the store refuses the write (nothing written then).
pub async fn sync(
    store: &dyn Store,
    sink: &Sink,
    overwrite: bool,
    dry_run: bool,
    author: &str,
) -> anyhow::Result<SyncReport> {
    if sink.kind != SinkKind::Frappe {
        anyhow::bail!(
            "sink {} is a {} sink, not a Frappe one",
            sink.name,
            sink.kind.as_str()
        );
    }
    let config: FrappeConfig = serde_json::from_value(sink.config.clone())?;
    let frappe = read(&config).await?;
    let local = store.list_employees().await?;
    let sites = store.list_sites().await?;
    let (write, mut report) = reconcile(&frappe, &local, &sites, overwrite);
    report.dry_run = dry_run;
    if !dry_run && !write.is_empty() {
        store
            .put_employees(
                write,
                AuditRecord {
                    author: author.to_owned(),
                    action: "employee.sync-frappe".into(),
                    subject: sink.name.clone(),
                    detail: serde_json::json!({
                        "url": config.url,
                        "created": report.created,
                        "updated": report.updated,
                    }),
                },
            )
            .await?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frappe(name: &str, key: &str, status: &str) -> FrappeEmployee {
        FrappeEmployee {
            name: name.into(),
            key: key.into(),
            employee_name: Some(format!("Person {key}")),
            status: status.into(),
            date_of_joining: NaiveDate::from_ymd_opt(2024, 1, 15),
            relieving_date: (status == "Left")
                .then(|| NaiveDate::from_ymd_opt(2025, 5, 31))
                .flatten(),
            department: Some("Sales - AC".into()),
            branch: Some("HQ".into()),
        }
    }

    fn site(name: &str) -> Site {
        Site {
            name: name.into(),
            time_zone: "Europe/Berlin".into(),
            day_change: "00:00".into(),
            weekly_offs: Vec::new(),
            holidays: Vec::new(),
        }
    }

    #[test]
    fn new_employees_are_created_differences_are_conflicts_unless_overwritten() {
        let remote = vec![
            frappe("HR-EMP-00001", "101", "Active"),
            frappe("HR-EMP-00002", "102", "Left"),
            frappe("HR-EMP-00003", "103", "Suspended"),
            frappe("HR-EMP-00004", "101", "Active"),
        ];
        let sites = vec![site("HQ")];
        let (created, _) = reconcile(&remote[..1], &[], &sites, false);
        let mut local = created.clone();
        assert_eq!(
            local[0],
            Employee {
                code: "101".into(),
                name: "Person 101".into(),
                status: EmployeeStatus::Active,
                joined_on: NaiveDate::from_ymd_opt(2024, 1, 15),
                left_on: None,
                site: Some("HQ".into()),
                department: Some("Sales - AC".into()),
                default_shift: None,
            }
        );
        // A local edit of 101's name and shift; 102 exists locally as active.
        local[0].name = "Ann Local".into();
        local[0].default_shift = Some("Day".into());
        local.push(Employee {
            code: "102".into(),
            name: "Person 102".into(),
            status: EmployeeStatus::Active,
            joined_on: NaiveDate::from_ymd_opt(2024, 1, 15),
            left_on: None,
            site: Some("HQ".into()),
            department: Some("Sales - AC".into()),
            default_shift: None,
        });
        let (write, report) = reconcile(&remote, &local, &sites, false);
        assert_eq!(report.created, ["103"]);
        assert_eq!(write.len(), 1);
        assert_eq!(
            write[0].status,
            EmployeeStatus::Inactive,
            "Suspended is inactive"
        );
        assert_eq!(
            report.conflicts,
            vec![
                Conflict {
                    code: "101".into(),
                    field: "name".into(),
                    local: "Ann Local".into(),
                    frappe: "Person 101".into()
                },
                Conflict {
                    code: "102".into(),
                    field: "status".into(),
                    local: "active".into(),
                    frappe: "left".into()
                },
                Conflict {
                    code: "102".into(),
                    field: "left_on".into(),
                    local: String::new(),
                    frappe: "2025-05-31".into()
                },
            ]
        );
        assert_eq!(
            report.skipped.len(),
            1,
            "the same code twice: {:?}",
            report.skipped
        );
        let (write, report) = reconcile(&remote, &local, &sites, true);
        assert_eq!(report.updated, ["101", "102"]);
        assert_eq!(
            write[0].default_shift.as_deref(),
            Some("Day"),
            "local shift kept"
        );
        assert_eq!(write[1].left_on, NaiveDate::from_ymd_opt(2025, 5, 31));
        // Unknown branch: no site.
        let (write, _) = reconcile(&remote[..1], &[], &[], false);
        assert_eq!(write[0].site, None);
    }
}
