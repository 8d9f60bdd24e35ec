//! BioTime employees into punchd's employees (issue 9: "optionally employees are read too"), for a BioTime source
//! added with `--employees`.
//!
//! Every run reads `/personnel/api/employees/` (all pages, 100 per page) after the terminals and before the
//! transactions. Each row becomes (or updates) the punchd employee whose code is its `emp_code`; BioTime punches
//! carry the same `emp_code` as PIN, and a PIN equal to an employee code maps itself, so the punches read from
//! BioTime belong to these employees without any mapping.
//!
//! Fields: `emp_code` → code; `first_name` + `last_name` (or `full_name`, or the code) → name;
//! `department.dept_name` (9.x) or `dept_name` (8.x) → department; the first of `area[].area_name` (9.x) or of
//! the comma-separated `area_name` (8.x) → site; `hire_date` (`YYYY-MM-DD`) → first working day. What punchd
//! keeps of its own is left as it is: status, last working day, default shift, and a site, department or first
//! day BioTime does not give. Only employees that change are written (one transaction, one audit entry
//! `employee.import` by `biotime:<source>`), so a run that finds nothing new writes nothing. A row without an
//! `emp_code` is skipped with a warning. Employees removed from BioTime are not removed from punchd.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde_json::{json, Value};

use super::{read_all_pages, text, Api};
use crate::app::App;
use crate::store::attendance::{AuditRecord, Employee, EmployeeStatus};

/// The employee a BioTime row describes, over `existing` (punchd's record of the same code, if any).
///
/// Errors: the row has no `emp_code`.
pub fn employee_of(row: &Value, existing: Option<&Employee>) -> Result<Employee, String> {
    let code = text(row.get("emp_code")).ok_or("employee without emp_code")?;
    let first = text(row.get("first_name")).unwrap_or_default();
    let last = text(row.get("last_name")).unwrap_or_default();
    let name = match format!("{first} {last}").trim() {
        "" => text(row.get("full_name")).unwrap_or_else(|| code.clone()),
        both => both.to_owned(),
    };
    let department = text(row.get("department").and_then(|d| d.get("dept_name")))
        .or_else(|| text(row.get("dept_name")));
    let site = row
        .get("area")
        .and_then(Value::as_array)
        .and_then(|areas| areas.iter().find_map(|a| text(a.get("area_name"))))
        .or_else(|| {
            text(row.get("area_name"))
                .and_then(|names| names.split(',').next().map(|n| n.trim().to_owned()))
                .filter(|n| !n.is_empty())
        });
    let joined_on = text(row.get("hire_date"))
        .and_then(|d| NaiveDate::parse_from_str(d.get(..10).unwrap_or(&d), "%Y-%m-%d").ok());
    Ok(match existing {
        Some(e) => Employee {
            code,
            name,
            status: e.status,
            joined_on: joined_on.or(e.joined_on),
            left_on: e.left_on,
            site: site.or_else(|| e.site.clone()),
            department: department.or_else(|| e.department.clone()),
            default_shift: e.default_shift.clone(),
        },
        None => Employee {
            code,
            name,
            status: EmployeeStatus::Active,
            joined_on,
            left_on: None,
            site,
            department,
            default_shift: None,
        },
    })
}

/// Read every BioTime employee and write the new and changed ones to punchd's employees. Returns (employees
/// listed by BioTime, employees created or changed here).
///
/// Errors: an HTTP or JSON error while listing (nothing is written), or the store failed (in plain words).
pub(super) async fn sync(
    app: &App,
    api: &mut Api<'_>,
    source: &str,
) -> Result<(usize, usize), String> {
    let rows = read_all_pages(api, "/personnel/api/employees/", "emp_code").await?;
    let existing: HashMap<String, Employee> = app
        .store
        .list_employees()
        .await
        .map_err(|e| format!("reading punchd's employees failed: {e}"))?
        .into_iter()
        .map(|e| (e.code.clone(), e))
        .collect();
    let mut changed = Vec::new();
    for row in &rows {
        let code = text(row.get("emp_code")).unwrap_or_default();
        match employee_of(row, existing.get(&code)) {
            Ok(e) if existing.get(&e.code) == Some(&e) => {}
            Ok(e) => changed.push(e),
            Err(reason) => {
                tracing::warn!(source, row = %row, "BioTime employee skipped: {reason}");
            }
        }
    }
    let n_changed = changed.len();
    if n_changed > 0 {
        let codes: Vec<&str> = changed.iter().map(|e| e.code.as_str()).take(20).collect();
        let audit = AuditRecord {
            author: format!("biotime:{source}"),
            action: "employee.import".into(),
            subject: "employees".into(),
            detail: json!({"source": source, "changed": n_changed, "listed": rows.len(), "first_codes": codes}),
        };
        app.store
            .put_employees(changed, audit)
            .await
            .map_err(|e| format!("storing BioTime employees failed: {e}"))?;
    }
    Ok((rows.len(), n_changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_9x_and_8x_become_employees_and_keep_what_punchd_holds() {
        let v9 = json!({"emp_code": "1001", "first_name": "Ana", "last_name": "Lima",
            "department": {"id": 1, "dept_code": "10", "dept_name": "Sales"},
            "area": [{"id": 2, "area_code": "2", "area_name": "Warehouse"}], "hire_date": "2024-02-01"});
        let e = employee_of(&v9, None).unwrap();
        assert_eq!(
            e,
            Employee {
                code: "1001".into(),
                name: "Ana Lima".into(),
                status: EmployeeStatus::Active,
                joined_on: NaiveDate::from_ymd_opt(2024, 2, 1),
                left_on: None,
                site: Some("Warehouse".into()),
                department: Some("Sales".into()),
                default_shift: None,
            }
        );
        let v8 = json!({"emp_code": 1002, "first_name": "", "last_name": "", "dept_name": "Ops",
            "area_name": "North, South"});
        let held = Employee {
            code: "1002".into(),
            name: "old".into(),
            status: EmployeeStatus::Left,
            joined_on: NaiveDate::from_ymd_opt(2020, 1, 1),
            left_on: NaiveDate::from_ymd_opt(2026, 1, 31),
            site: None,
            department: None,
            default_shift: Some("early".into()),
        };
        let e = employee_of(&v8, Some(&held)).unwrap();
        assert_eq!(e.name, "1002");
        assert_eq!(e.site.as_deref(), Some("North"));
        assert_eq!(e.department.as_deref(), Some("Ops"));
        assert_eq!(e.status, EmployeeStatus::Left);
        assert_eq!(e.left_on, held.left_on);
        assert_eq!(e.joined_on, held.joined_on);
        assert_eq!(e.default_shift.as_deref(), Some("early"));
        assert!(employee_of(&json!({"first_name": "x"}), None).is_err());
    }
}
