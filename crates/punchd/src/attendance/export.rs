//! The month as a table (terminal), CSV and XLSX (rust_xlsxwriter): sheet `Grid` (employees × days, then totals)
//! and sheet `Exceptions` (one row per exception, unmapped PIN and punch arrived after sign-off).
//!
//! Grid cells: P present, A absent, H half day, WO weekly off, HO holiday, L leave, - inactive, ? incomplete;
//! `!` after the mark = an exception still open or explained, `c` = a correction applies. Durations in totals are
//! hours with two decimals (worked, overtime) and whole minutes (late, early exit).

use std::io::Write;

use super::monthly::{status_mark, Month};

/// Totals column headers, in order.
pub const TOTALS: &[&str] = &[
    "present",
    "absent",
    "half days",
    "weekly offs",
    "holidays",
    "leave",
    "incomplete",
    "late days",
    "late min",
    "early exit min",
    "worked h",
    "overtime h",
    "off-day overtime h",
    "exceptions",
];

fn hours(secs: i64) -> f64 {
    (secs as f64 / 36.0).round() / 100.0
}

/// The grid as rows of cells: header first. Numbers are numbers in XLSX (see [`Cell`]).
pub fn grid(m: &Month) -> Vec<Vec<Cell>> {
    let mut header = vec![Cell::Text("code".into()), Cell::Text("name".into())];
    header.extend(
        m.dates
            .iter()
            .map(|d| Cell::Text(d.format("%d").to_string())),
    );
    header.extend(TOTALS.iter().map(|t| Cell::Text((*t).to_owned())));
    let mut rows = vec![header];
    for e in &m.employees {
        let mut row = vec![Cell::Text(e.code.clone()), Cell::Text(e.name.clone())];
        for d in &e.days {
            let mut mark = status_mark(d.status).to_owned();
            if d.open_exceptions > 0 {
                mark.push('!');
            }
            if !d.corrections.is_empty() {
                mark.push('c');
            }
            row.push(Cell::Text(mark));
        }
        let t = &e.totals;
        row.extend([
            Cell::Int(i64::from(t.days_present)),
            Cell::Int(i64::from(t.days_absent)),
            Cell::Int(i64::from(t.half_days)),
            Cell::Int(i64::from(t.weekly_offs)),
            Cell::Int(i64::from(t.holidays)),
            Cell::Int(i64::from(t.leave_days)),
            Cell::Int(i64::from(t.incomplete_days)),
            Cell::Int(i64::from(t.late_count)),
            Cell::Int(t.late_secs / 60),
            Cell::Int(t.early_exit_secs / 60),
            Cell::Num(hours(t.worked_secs)),
            Cell::Num(hours(t.overtime_secs)),
            Cell::Num(hours(t.overtime_off_day_secs)),
            Cell::Int(i64::from(t.exceptions)),
        ]);
        rows.push(row);
    }
    rows
}

/// The exceptions sheet as rows of cells: header first.
pub fn exception_rows(m: &Month) -> Vec<Vec<Cell>> {
    let t = |s: &str| Cell::Text(s.to_owned());
    let mut rows = vec![vec![
        t("employee"),
        t("date"),
        t("kind"),
        t("state"),
        t("minutes"),
        t("punches"),
        t("note"),
    ]];
    for x in &m.exceptions {
        rows.push(vec![
            t(&x.employee_code),
            t(&x.date.to_string()),
            t(&x.kind),
            t(x.state.as_str()),
            Cell::Int(x.secs / 60),
            t(&x.punch_ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(" ")),
            t(&x.note),
        ]);
    }
    for u in &m.unmapped {
        rows.push(vec![
            t(""),
            t(&u.first_seen.date_naive().to_string()),
            t("unmapped-pin"),
            t("open"),
            Cell::Int(0),
            t(""),
            t(&format!(
                "PIN {} on {}: {} punches",
                u.pin, u.device_sn, u.count
            )),
        ]);
    }
    for p in &m.arrived_after_signoff {
        rows.push(vec![
            t(p.employee_code.as_deref().unwrap_or("")),
            t(&p.punched_at_utc.to_rfc3339()),
            t("arrived-after-sign-off"),
            t("open"),
            Cell::Int(0),
            t(&p.id.to_string()),
            t(&format!(
                "PIN {} on {}, received {}",
                p.pin,
                p.device_sn,
                p.received_at.to_rfc3339()
            )),
        ]);
    }
    rows
}

/// A cell of an export.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A decimal number.
    Num(f64),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Text(s) => f.write_str(s),
            Cell::Int(i) => write!(f, "{i}"),
            Cell::Num(n) => write!(f, "{n:.2}"),
        }
    }
}

fn text_rows(rows: &[Vec<Cell>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(ToString::to_string).collect())
        .collect()
}

/// The grid as CSV (header row, one row per employee).
pub fn write_csv(m: &Month, out: impl Write) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    for row in text_rows(&grid(m)) {
        w.write_record(&row).map_err(std::io::Error::other)?;
    }
    w.flush()
}

/// The grid, then the exceptions, as aligned text for a terminal.
pub fn write_table(m: &Month, out: &mut impl Write) -> std::io::Result<()> {
    let signed = match &m.signed_off {
        Some(s) => format!(
            "signed off by {} at {}{}",
            s.author,
            s.signed_at.to_rfc3339(),
            if s.forced { " (forced)" } else { "" }
        ),
        None => "not signed off".into(),
    };
    writeln!(
        out,
        "{} {} ({}), {}; {} incomplete employee-days",
        m.site, m.month, m.time_zone, signed, m.incomplete_days
    )?;
    aligned(&text_rows(&grid(m)), out)?;
    let x = exception_rows(m);
    if x.len() > 1 {
        writeln!(out)?;
        writeln!(out, "exceptions:")?;
        aligned(&text_rows(&x), out)?;
    }
    for p in &m.arrived_after_signoff {
        writeln!(
            out,
            "arrived after sign-off: punch {} PIN {} on {} at {}",
            p.id,
            p.pin,
            p.device_sn,
            p.punched_at_utc.to_rfc3339()
        )?;
    }
    Ok(())
}

fn aligned(rows: &[Vec<String>], out: &mut impl Write) -> std::io::Result<()> {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; n];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", line.join(" ").trim_end())?;
    }
    Ok(())
}

/// The month as an XLSX workbook: sheet `Grid` and sheet `Exceptions`.
pub fn xlsx(m: &Month) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut book = rust_xlsxwriter::Workbook::new();
    for (name, rows) in [("Grid", grid(m)), ("Exceptions", exception_rows(m))] {
        let sheet = book.add_worksheet();
        sheet.set_name(name)?;
        for (r, row) in rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let (r, c) = (r as u32, c as u16);
                match cell {
                    Cell::Text(s) => sheet.write_string(r, c, s)?,
                    Cell::Int(i) => sheet.write_number(r, c, *i as f64)?,
                    Cell::Num(n) => sheet.write_number(r, c, *n)?,
                };
            }
        }
    }
    book.save_to_buffer()
}
