//! Reading employee files: CSV (the `csv` crate) and XLSX/XLS/ODS (calamine, first sheet).
//!
//! The header row is found, not assumed: the first of the file's first 10 rows that names both a code column and a
//! name column. Column names are matched case-insensitively with these aliases (Frappe HR's and vendor exports'
//! words): code = `employee code`, `code`, `employee`, `employee id`, `emp code`, `attendance_device_id`, `id`;
//! name = `name`, `employee name`, `full name`; `status`; `joined on` / `date of joining`; `left on` /
//! `relieving date`; `site` / `branch`; `department`; `default shift` / `shift`. Other columns are ignored.
//!
//! Every data row becomes an [`Employee`] or a [`RowError`] naming its row number (1-based, as a spreadsheet shows
//! it) and why. Dates are `YYYY-MM-DD`, `DD.MM.YYYY` or a spreadsheet date cell.

use std::collections::HashSet;
use std::path::Path;

use chrono::NaiveDate;
use serde::Serialize;

use crate::store::attendance::{Employee, EmployeeStatus};

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// 1-based row number in the file (the header row counts).
    pub row: usize,
    /// Why.
    pub reason: String,
}

/// What a file yielded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ParsedFile {
    /// Rows that are good (before checks against the store).
    pub employees: Vec<(usize, Employee)>,
    /// Rows that are not.
    pub errors: Vec<RowError>,
}

const CODE: &[&str] = &[
    "employee code",
    "code",
    "employee",
    "employee id",
    "emp code",
    "attendance_device_id",
    "attendance device id",
    "id",
];
const NAME: &[&str] = &["name", "employee name", "full name"];
const STATUS: &[&str] = &["status"];
const JOINED: &[&str] = &["joined on", "date of joining", "joined", "join date"];
const LEFT: &[&str] = &["left on", "relieving date", "left", "leave date"];
const SITE: &[&str] = &["site", "branch", "location"];
const DEPARTMENT: &[&str] = &["department", "dept"];
const SHIFT: &[&str] = &["default shift", "shift"];

fn normalise(s: &str) -> String {
    s.trim()
        .to_ascii_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn column(header: &[String], aliases: &[&str]) -> Option<usize> {
    aliases.iter().find_map(|a| {
        let a = normalise(a);
        header.iter().position(|h| normalise(h) == a)
    })
}

/// Parse a date cell given as text.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let s = s.trim();
    for fmt in ["%Y-%m-%d", "%d.%m.%Y", "%Y/%m/%d", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return Ok(d);
        }
    }
    Err(format!("{s:?} is not a date (YYYY-MM-DD)"))
}

/// Turn rows of text cells (the whole file, header included) into employees and row errors.
pub fn parse_rows(rows: &[Vec<String>]) -> Result<ParsedFile, String> {
    let header_at = rows
        .iter()
        .take(10)
        .position(|r| column(r, CODE).is_some() && column(r, NAME).is_some())
        .ok_or_else(|| {
            "no header row found in the first 10 rows: one needs an employee code column (\"Employee Code\", \
             \"Code\") and a \"Name\" column"
                .to_owned()
        })?;
    let header = &rows[header_at];
    let col = |aliases| column(header, aliases);
    let (code_c, name_c) = (col(CODE), col(NAME));
    let (status_c, joined_c, left_c) = (col(STATUS), col(JOINED), col(LEFT));
    let (site_c, dept_c, shift_c) = (col(SITE), col(DEPARTMENT), col(SHIFT));
    let mut out = ParsedFile::default();
    let mut seen = HashSet::new();
    for (i, row) in rows.iter().enumerate().skip(header_at + 1) {
        let row_no = i + 1;
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let cell = |c: Option<usize>| -> Option<String> {
            c.and_then(|c| row.get(c))
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let result = (|| -> Result<Employee, String> {
            let code = cell(code_c).ok_or("the employee code is empty")?;
            let name = cell(name_c).ok_or("the name is empty")?;
            let status = match cell(status_c) {
                None => EmployeeStatus::Active,
                Some(s) => EmployeeStatus::parse(&s)
                    .ok_or_else(|| format!("status {s:?} is not one of active, inactive, left"))?,
            };
            let joined_on = cell(joined_c).map(|s| parse_date(&s)).transpose()?;
            let left_on = cell(left_c).map(|s| parse_date(&s)).transpose()?;
            if status == EmployeeStatus::Left && left_on.is_none() {
                return Err("status is left but the left-on date is empty".into());
            }
            if let (Some(j), Some(l)) = (joined_on, left_on) {
                if l < j {
                    return Err(format!("left on {l} is before joined on {j}"));
                }
            }
            if !seen.insert(code.clone()) {
                return Err(format!("employee code {code} appears twice in the file"));
            }
            Ok(Employee {
                code,
                name,
                status,
                joined_on,
                left_on,
                site: cell(site_c),
                department: cell(dept_c),
                default_shift: cell(shift_c),
            })
        })();
        match result {
            Ok(e) => out.employees.push((row_no, e)),
            Err(reason) => out.errors.push(RowError {
                row: row_no,
                reason,
            }),
        }
    }
    Ok(out)
}

/// Read a CSV file's rows as text cells (UTF-8; a BOM is skipped; rows may have different lengths).
pub fn read_csv(bytes: &[u8]) -> Result<Vec<Vec<String>>, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    reader
        .records()
        .enumerate()
        .map(|(i, r)| {
            r.map(|r| r.iter().map(str::to_owned).collect())
                .map_err(|e| format!("row {}: {e}", i + 1))
        })
        .collect()
}

/// Read the first sheet of a spreadsheet (XLSX, XLS, ODS) as text cells; date cells become `YYYY-MM-DD`.
pub fn read_spreadsheet(bytes: &[u8]) -> Result<Vec<Vec<String>>, String> {
    use calamine::{Data, Reader};
    let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable spreadsheet: {e}"))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or("the workbook has no sheet")?
        .map_err(|e| format!("reading the first sheet: {e}"))?;
    // Keep spreadsheet row numbers: calamine's range starts at the first used cell.
    let (first_row, first_col) = range.start().unwrap_or((0, 0));
    let mut rows: Vec<Vec<String>> = vec![Vec::new(); first_row as usize];
    for r in range.rows() {
        let mut cells = vec![String::new(); first_col as usize];
        cells.extend(r.iter().map(|c| {
            match c {
                Data::Empty => String::new(),
                Data::String(s) => s.clone(),
                Data::Int(i) => i.to_string(),
                Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
                Data::Float(f) => f.to_string(),
                Data::Bool(b) => b.to_string(),
                Data::DateTime(d) => d
                    .as_datetime()
                    .map(|t| t.date().to_string())
                    .unwrap_or_default(),
                Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
                Data::Error(e) => format!("#{e:?}"),
            }
        }));
        rows.push(cells);
    }
    Ok(rows)
}

/// Read an employee file by its extension (`.csv`, else a spreadsheet).
pub fn read_file(path: &Path) -> Result<ParsedFile, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let is_csv = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let rows = if is_csv {
        read_csv(&bytes)?
    } else {
        read_spreadsheet(&bytes)?
    };
    parse_rows(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Vec<String>> {
        read_csv(text.as_bytes()).unwrap()
    }

    #[test]
    fn the_header_is_found_below_a_title_and_bad_rows_name_their_number() {
        let parsed = parse_rows(&rows(
            "Staff list November,,\n\
             Employee Code,Name,Status,Left On\n\
             7,Ana,active,\n\
             ,Nobody,active,\n\
             8,Bo,left,\n\
             9,Cy,retired,\n\
             10,Di,left,2026-11-10\n\
             7,Ana again,active,\n",
        ))
        .unwrap();
        let codes: Vec<_> = parsed
            .employees
            .iter()
            .map(|(r, e)| (*r, e.code.as_str()))
            .collect();
        assert_eq!(codes, vec![(3, "7"), (7, "10")]);
        let errors: Vec<_> = parsed.errors.iter().map(|e| e.row).collect();
        assert_eq!(errors, vec![4, 5, 6, 8]);
        assert!(parsed.errors[2].reason.contains("retired"));
        assert_eq!(
            parsed.employees[1].1.left_on,
            NaiveDate::from_ymd_opt(2026, 11, 10)
        );
    }

    #[test]
    fn a_file_without_a_header_is_refused() {
        assert!(parse_rows(&rows("1,2,3\n4,5,6\n")).is_err());
    }
}
