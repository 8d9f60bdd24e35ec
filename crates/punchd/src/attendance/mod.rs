//! Attendance: punches become working days, months and exceptions HR reviews (issue 7).
//!
//! - [`rules`]: the pure rules engine (working-day assignment, punch-state policy, shifts, day and month results).
//!   No IO, no store, no async: everything is a function of punches and settings passed in.

pub mod rules;
