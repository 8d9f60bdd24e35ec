//! `punchd attendance …`: policy, month, corrections, exceptions, sign-off, reopen, audit, watermarks.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use chrono::Utc;
use clap::Subcommand;

use super::{date, local_time, policy_setting};
use crate::attendance::{export, monthly, review, setup, watermark};
use crate::store::attendance::{Correction, CorrectionKind, ReviewState};
use crate::store::Store;

/// Output of `attendance month`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MonthFormat {
    /// Aligned text.
    Table,
    /// CSV of the grid.
    Csv,
    /// The whole month as JSON.
    Json,
    /// An XLSX workbook (sheets Grid and Exceptions); needs `--output`.
    Xlsx,
}

/// `attendance` actions.
#[derive(Debug, Subcommand)]
pub enum MonthAction {
    /// The month of a site: employees × days with a status per day, totals and exceptions.
    Month {
        /// `YYYY-MM`.
        month: String,
        /// The site.
        #[arg(long)]
        site: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = MonthFormat::Table)]
        format: MonthFormat,
        /// Write to this file instead of standard output (required for xlsx).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Punch-state policy: set, list, or preview on a month's stored punches.
    Policy {
        /// What to do.
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Correct a day: add or void a punch, set the status, approve or cut overtime.
    Correct {
        /// What.
        #[command(subcommand)]
        kind: CorrectKind,
    },
    /// Revoke a correction (its id, as `correct` printed it or `GET /api/v1/attendance/corrections` lists it): it
    /// stops counting and stays stored, audited. A punch HR added and revoked after its delivery is withdrawn from
    /// every sink that received it.
    Revoke {
        /// The correction id.
        correction: i64,
        /// Why (required, audited).
        #[arg(long)]
        reason: String,
        /// Who.
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// Move an exception to explained, approved or rejected.
    Review {
        /// The employee.
        #[arg(long)]
        employee: String,
        /// The working day.
        #[arg(long)]
        date: String,
        /// The exception kind (`missing-out`, `late`, …).
        #[arg(long)]
        kind: String,
        /// explained, approved or rejected.
        #[arg(long)]
        state: String,
        /// The explanation or reason.
        #[arg(long)]
        note: String,
        /// Who.
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// Sign off a site's month (frozen until reopened).
    Signoff {
        /// `YYYY-MM`.
        month: String,
        /// The site.
        #[arg(long)]
        site: String,
        /// Sign off even with incomplete days.
        #[arg(long)]
        force: bool,
        /// Who.
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// Reopen a signed-off month.
    Reopen {
        /// `YYYY-MM`.
        month: String,
        /// The site.
        #[arg(long)]
        site: String,
        /// Why (required, audited).
        #[arg(long)]
        reason: String,
        /// Who.
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// The audit log, newest first.
    Audit {
        /// At most this many entries (0 = all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Each device's watermark (completeness).
    Watermarks,
}

/// Policy actions.
#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Set the policy of a site or a device.
    Set {
        /// device, first-last, alternating or schedule.
        policy: String,
        /// For this site.
        #[arg(long, conflicts_with = "device", required_unless_present = "device")]
        site: Option<String>,
        /// For this device.
        #[arg(long)]
        device: Option<String>,
        /// Double-tap interval, seconds.
        #[arg(long, default_value_t = 60)]
        double_tap: u32,
        /// Who.
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// List policies.
    List,
    /// What a policy would change on a month's stored punches (writes nothing).
    Preview {
        /// The proposed policy.
        policy: String,
        /// The site.
        #[arg(long)]
        site: String,
        /// `YYYY-MM`.
        #[arg(long)]
        month: String,
        /// Only for this device of the site.
        #[arg(long)]
        device: Option<String>,
    },
}

/// Correction kinds.
#[derive(Debug, Subcommand)]
pub enum CorrectKind {
    /// Add a punch HR knows happened (site local time).
    AddPunch {
        /// The employee.
        #[arg(long)]
        employee: String,
        /// `YYYY-MM-DD HH:MM[:SS]`, site local.
        #[arg(long)]
        at: String,
        /// 0 check-in, 1 check-out, …
        #[arg(long)]
        state: Option<u16>,
        /// The working day (default: the date of `--at`).
        #[arg(long)]
        date: Option<String>,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Who.
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// Make a stored punch not count (it stays stored, unchanged).
    VoidPunch {
        /// The employee.
        #[arg(long)]
        employee: String,
        /// The working day.
        #[arg(long)]
        date: String,
        /// The punch id.
        #[arg(long)]
        punch: i64,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Who.
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// Set a day's status (present, absent, half-day, weekly-off, holiday, leave, inactive).
    SetStatus {
        /// The employee.
        #[arg(long)]
        employee: String,
        /// The working day.
        #[arg(long)]
        date: String,
        /// The status.
        #[arg(long)]
        status: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Who.
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// Approve a day's overtime (optionally up to some minutes).
    ApproveOvertime {
        /// The employee.
        #[arg(long)]
        employee: String,
        /// The working day.
        #[arg(long)]
        date: String,
        /// Keep at most this many minutes.
        #[arg(long)]
        minutes: Option<u32>,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Who.
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// Cut a day's overtime to some minutes (0 = none).
    CutOvertime {
        /// The employee.
        #[arg(long)]
        employee: String,
        /// The working day.
        #[arg(long)]
        date: String,
        /// Minutes kept.
        #[arg(long)]
        minutes: u32,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Who.
        #[arg(long, default_value = "cli")]
        author: String,
    },
}

fn blank(
    employee: String,
    day: chrono::NaiveDate,
    kind: CorrectionKind,
    reason: String,
) -> Correction {
    Correction {
        id: 0,
        employee_code: employee,
        day,
        kind,
        punched_at: None,
        punch_state: None,
        punch_id: None,
        status: None,
        minutes: None,
        author: String::new(),
        reason,
        created_at: Utc::now(),
    }
}

fn json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Run an `attendance` action.
pub async fn run(store: &dyn Store, action: MonthAction) -> anyhow::Result<()> {
    let now = Utc::now();
    match action {
        MonthAction::Month {
            month,
            site,
            format,
            output,
        } => {
            let m = monthly::month(store, &site, &month, now).await?;
            let bytes = match format {
                MonthFormat::Xlsx => export::xlsx(&m).map_err(|e| anyhow!("writing XLSX: {e}"))?,
                MonthFormat::Json => serde_json::to_vec_pretty(&m)?,
                MonthFormat::Csv => {
                    let mut b = Vec::new();
                    export::write_csv(&m, &mut b)?;
                    b
                }
                MonthFormat::Table => {
                    let mut b = Vec::new();
                    export::write_table(&m, &mut b)?;
                    b
                }
            };
            match output {
                Some(path) => {
                    std::fs::write(&path, bytes)
                        .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None if format == MonthFormat::Xlsx => bail!("--format xlsx needs --output FILE"),
                None => std::io::stdout().lock().write_all(&bytes)?,
            }
            Ok(())
        }
        MonthAction::Policy { action } => match action {
            PolicyAction::Set {
                policy,
                site,
                device,
                double_tap,
                author,
            } => {
                let p = policy_setting(site, device, policy, double_tap)?;
                let what = format!("{} {}", p.scope.as_str(), p.scope_key);
                setup::put_policy(store, p, &author).await?;
                println!("policy of {what} saved");
                Ok(())
            }
            PolicyAction::List => json(&store.list_policies().await?),
            PolicyAction::Preview {
                policy,
                site,
                month,
                device,
            } => {
                let report =
                    review::preview(store, &site, &month, &policy, device.as_deref(), now).await?;
                json(&report)
            }
        },
        MonthAction::Correct { kind } => {
            let (c, author) = match kind {
                CorrectKind::AddPunch {
                    employee,
                    at,
                    state,
                    date: d,
                    reason,
                    author,
                } => {
                    let at = local_time(&at)?;
                    let day = d.as_deref().map(date).transpose()?.unwrap_or(at.date());
                    let mut c = blank(employee, day, CorrectionKind::AddPunch, reason);
                    c.punched_at = Some(at);
                    c.punch_state = state;
                    (c, author)
                }
                CorrectKind::VoidPunch {
                    employee,
                    date: d,
                    punch,
                    reason,
                    author,
                } => {
                    let mut c = blank(employee, date(&d)?, CorrectionKind::VoidPunch, reason);
                    c.punch_id = Some(punch);
                    (c, author)
                }
                CorrectKind::SetStatus {
                    employee,
                    date: d,
                    status,
                    reason,
                    author,
                } => {
                    let mut c = blank(employee, date(&d)?, CorrectionKind::SetStatus, reason);
                    c.status = Some(status);
                    (c, author)
                }
                CorrectKind::ApproveOvertime {
                    employee,
                    date: d,
                    minutes,
                    reason,
                    author,
                } => {
                    let mut c = blank(employee, date(&d)?, CorrectionKind::ApproveOvertime, reason);
                    c.minutes = minutes;
                    (c, author)
                }
                CorrectKind::CutOvertime {
                    employee,
                    date: d,
                    minutes,
                    reason,
                    author,
                } => {
                    let mut c = blank(employee, date(&d)?, CorrectionKind::CutOvertime, reason);
                    c.minutes = Some(minutes);
                    (c, author)
                }
            };
            let stored = review::correct(store, c, &author).await?;
            json(&stored)
        }
        MonthAction::Revoke {
            correction,
            reason,
            author,
        } => {
            let revoked = review::revoke(store, correction, &reason, &author).await?;
            json(&revoked)
        }
        MonthAction::Review {
            employee,
            date: d,
            kind,
            state,
            note,
            author,
        } => {
            let state = ReviewState::parse(&state)
                .ok_or_else(|| anyhow!("state {state:?} is not explained, approved or rejected"))?;
            review::review(store, &employee, date(&d)?, &kind, state, &note, &author).await?;
            println!("{kind} of {employee} on {d}: {}", state.as_str());
            Ok(())
        }
        MonthAction::Signoff {
            month,
            site,
            force,
            author,
        } => {
            let m = review::sign_off(store, &site, &month, force, &author, now).await?;
            println!(
                "{site} {month} signed off by {author}{}",
                if m.incomplete_days > 0 {
                    format!(
                        " with {} incomplete employee-days (--force)",
                        m.incomplete_days
                    )
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        MonthAction::Reopen {
            month,
            site,
            reason,
            author,
        } => {
            review::reopen(store, &site, &month, &reason, &author).await?;
            println!("{site} {month} reopened");
            Ok(())
        }
        MonthAction::Audit { limit } => json(&store.list_audit(limit).await?),
        MonthAction::Watermarks => {
            let devices = store.list_devices().await?;
            let marks = watermark::watermarks(store, &devices, now).await?;
            json(&marks)
        }
    }
}
