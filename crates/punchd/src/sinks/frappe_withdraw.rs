//! Voided punches flow out to Frappe: when HR voids a punch in the monthly review (a `void-punch` correction), the
//! Employee Checkin punchd created for it is withdrawn, where Frappe allows it (issue 8).
//!
//! Per voided punch and Frappe sink (`punchd serve` every minute; `punchd sinks withdraw-voids NAME` at once):
//! - its check-in is still pending (not delivered yet): wait; it is withdrawn once delivered (at-least-once
//!   delivery does not know about corrections, so the order is deliver, then withdraw);
//! - it was parked, or the sink never had it: nothing to withdraw (`not-delivered`);
//! - delivered, but Frappe gave no document name (it held the check-in already: "already has a log with the same
//!   timestamp", frappe-hr.md §10.2): `needs-hr`, since punchd does not know which document is its own;
//! - delivered with a name: `GET /api/resource/Employee Checkin/{name}` (§4); gone (404) → `withdrawn`; linked to an
//!   Attendance (`attendance` set: auto attendance used it, §1) → `needs-hr` (cancel that Attendance in Frappe
//!   first, then delete the check-in); otherwise `DELETE` the same resource (202, §4) → `withdrawn`.
//!
//! A punch HR added (an Employee Checkin with `device_id` `HR-CORRECTION`, [`super::added`]) whose add-punch
//! correction is revoked after its delivery is withdrawn the same way, by the document name Frappe gave it.
//!
//! Other answers (401/403, 5xx, unreachable) record nothing: the next round tries again. Every outcome is kept per
//! sink (`punchd sinks show NAME` lists them under `withdrawals`).

use chrono::Utc;
use serde::Serialize;

use super::frappe::{authorization, client, FrappeConfig};
use super::webhook::error_chain;
use crate::store::delivery::{VoidedPunch, Withdrawal, WithdrawalStatus};
use crate::store::outbox::{Sink, SinkKind};
use crate::store::Store;

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WithdrawReport {
    /// Outcomes recorded in this round.
    pub recorded: Vec<Withdrawal>,
    /// Voided punches whose check-in is not delivered yet (looked at again next round).
    pub waiting: usize,
    /// Voided punches that failed this round, with why (tried again next round).
    pub failed: Vec<String>,
}

fn checkin_url(config: &FrappeConfig, name: &str) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(config.url.trim_end_matches('/'))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("{} cannot be a base URL", config.url))?
        .pop_if_empty()
        .extend(["api", "resource", "Employee Checkin", name]);
    Ok(url)
}

/// Decide (and do) the withdrawal of one voided punch; `Ok(None)` = wait.
async fn withdraw_one(
    http: &reqwest::Client,
    config: &FrappeConfig,
    v: &VoidedPunch,
) -> anyhow::Result<Option<(WithdrawalStatus, String)>> {
    let name = match (v.delivery.as_deref(), v.remote_ref.as_deref()) {
        (Some("pending"), _) => return Ok(None),
        (Some("delivered"), Some(name)) => name.to_owned(),
        (Some("delivered"), None) => {
            return Ok(Some((
                WithdrawalStatus::NeedsHr,
                "Frappe held this check-in before punchd sent it, so punchd does not know its document: delete \
                 it in Frappe (Employee Checkin at this time for this employee)"
                    .into(),
            )))
        }
        (Some("parked"), _) => {
            return Ok(Some((
                WithdrawalStatus::NotDelivered,
                "parked, never reached Frappe: nothing to withdraw".into(),
            )))
        }
        _ => {
            return Ok(Some((
                WithdrawalStatus::NotDelivered,
                "no delivery record at this sink: never sent to it, or its record was pruned after the outbox \
                 retention (then check Frappe by hand)"
                    .into(),
            )))
        }
    };
    let url = checkin_url(config, &name)?;
    let send = |request: reqwest::RequestBuilder| {
        request
            .header(reqwest::header::AUTHORIZATION, authorization(config))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
    };
    let answer = send(http.get(url.clone()))
        .await
        .map_err(|e| anyhow::anyhow!("could not reach Frappe: {}", error_chain(&e)))?;
    let status = answer.status().as_u16();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    match status {
        200 => {}
        404 => {
            return Ok(Some((
                WithdrawalStatus::Withdrawn,
                format!("{name} was already gone from Frappe"),
            )))
        }
        other => anyhow::bail!("reading Employee Checkin {name}: HTTP {other}"),
    }
    if let Some(attendance) = body
        .pointer("/data/attendance")
        .and_then(|a| a.as_str())
        .filter(|a| !a.is_empty())
    {
        return Ok(Some((
            WithdrawalStatus::NeedsHr,
            format!(
                "{name} is linked to Attendance {attendance}: cancel that Attendance in Frappe, then delete {name}"
            ),
        )));
    }
    let answer = send(http.delete(url))
        .await
        .map_err(|e| anyhow::anyhow!("could not reach Frappe: {}", error_chain(&e)))?;
    match answer.status().as_u16() {
        200 | 202 => Ok(Some((
            WithdrawalStatus::Withdrawn,
            format!("{name} deleted from Frappe"),
        ))),
        404 => Ok(Some((
            WithdrawalStatus::Withdrawn,
            format!("{name} was already gone from Frappe"),
        ))),
        other => {
            let body: serde_json::Value = answer.json().await.unwrap_or_default();
            let message = super::frappe::server_messages(&body).join(" ");
            anyhow::bail!("deleting Employee Checkin {name}: HTTP {other} {message}")
        }
    }
}

/// One round for one Frappe sink.
///
/// Errors: the sink is not a Frappe sink, its settings are unreadable, or the store fails. Frappe's failures are
/// per punch in [`WithdrawReport::failed`].
pub async fn withdraw(store: &dyn Store, sink: &Sink) -> anyhow::Result<WithdrawReport> {
    if sink.kind != SinkKind::Frappe {
        anyhow::bail!("sink {} is not a Frappe sink", sink.name);
    }
    let config: FrappeConfig = serde_json::from_value(sink.config.clone())?;
    let voids = super::withdraw::to_withdraw(store, sink.id).await?;
    let mut report = WithdrawReport::default();
    if voids.is_empty() {
        return Ok(report);
    }
    let http = client(&config)?;
    for v in voids {
        match withdraw_one(&http, &config, &v).await {
            Ok(None) => report.waiting += 1,
            Ok(Some((status, note))) => {
                let w = Withdrawal {
                    correction_id: v.correction_id,
                    punch_id: v.punch_id,
                    status,
                    remote_ref: v.remote_ref.clone(),
                    note,
                    updated_at: Utc::now(),
                };
                store.record_withdrawal(sink.id, w.clone()).await?;
                report.recorded.push(w);
            }
            Err(e) => report
                .failed
                .push(format!("{}: {e:#}", super::withdraw::what(&v))),
        }
    }
    Ok(report)
}
