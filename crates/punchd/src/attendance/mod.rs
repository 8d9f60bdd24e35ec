//! Attendance: punches become working days, months and exceptions HR reviews (issue 7).
//!
//! - [`rules`]: the pure rules engine (working-day assignment, punch-state policy, shifts, day and month results).
//!   No IO, no store, no async: everything is a function of punches and settings passed in.
//! - [`import`]: employee files (CSV, XLSX) with header detection and per-row errors.
//! - [`mapping`]: PIN → employee (device, site, PIN = employee code), resolved at read time; the unmapped queue.
//! - [`setup`]: checked, audited changes to sites, employees, mappings, shifts, roster and policies.
//! - [`watermark`]: completeness per device and day.
//! - [`monthly`]: a site's month (grid, totals, exceptions) from the store through the rules.
//! - [`month_cache`]: computed months kept and brought up to date by recomputing only what a change touches.
//! - [`seen_cache`]: punches per (device, PIN) kept and brought up to date from the punches stored since.
//! - [`review`]: corrections, exception reviews, sign-off and reopen, policy preview.
//! - [`export`]: the month as a table, CSV and XLSX.
//!
//! Raw punches are never changed here: corrections, reviews and sign-offs are records of their own.

pub mod export;
pub mod import;
pub mod mapping;
pub mod month_cache;
pub mod monthly;
pub mod review;
pub mod rules;
pub mod seen_cache;
pub mod setup;
pub mod watermark;
