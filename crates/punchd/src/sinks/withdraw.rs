//! Voided punches flow out to every sink (issue 8): when HR voids a punch in the monthly review (a `void-punch`
//! correction), or revokes a punch HR added, each sink that received its check-in is told, the way that sink
//! allows.
//!
//! - Frappe: the Employee Checkin punchd created is deleted ([`super::frappe_withdraw`]).
//! - Webhook: a signed request whose body is a [`VoidedCheckInBatch`] (schema `punchd.checkin-voids.v1`, in the
//!   OpenAPI document), each entry a [`VoidedCheckIn`] with `event` = `checkin.voided` and the
//!   `checkin_idempotency_key` of the check-in it withdraws (the same key the check-in was delivered with). Same
//!   headers as check-in batches (`X-Punchd-Timestamp`, `X-Punchd-Signature`, `Idempotency-Key`), plus
//!   `X-Punchd-Event: checkin.voided`. Any 2xx means the receiver has it; anything else is tried again next round.
//! - NATS: one message per voided check-in on the check-in's own subject `punchd.checkins.<site>.<employee>`, with
//!   header `Punchd-Event: checkin.voided` (check-ins carry `Punchd-Event: checkin`), `Nats-Msg-Id` = the
//!   withdrawal's `idempotency_key`, body the [`VoidedCheckIn`]. Delivered when the stream acknowledged it.
//!
//! The void itself is durable where it is made (the correction, in the review's transaction); what became of it at
//! each sink is recorded per sink (`withdrawals`, shown by `punchd sinks show NAME`), so a round that fails or a
//! crash loses nothing: the next round (`punchd serve`, every minute; `punchd sinks withdraw-voids NAME` or `POST
//! /api/v1/sinks/{name}/withdraw-voids` at once) sends what is not recorded yet. Per voided punch and sink:
//! - its check-in is still pending (not delivered yet): wait, and withdraw it once delivered (the order a receiver
//!   sees is check-in, then withdrawal);
//! - it was parked, or the sink never had it: nothing to withdraw (`not-delivered`);
//! - delivered: the withdrawal is sent; once the receiver or the stream has it, `withdrawn`.
//!
//! A punch HR added (an add-punch correction, delivered by [`super::added`]) and then revoked (`punchd attendance
//! revoke ID`, `POST /api/v1/attendance/corrections/{id}/revoke`) is withdrawn the same way from every sink that
//! had it delivered: the withdrawal names the added check-in's key (`c1-<correction id>-<ms>`) as
//! `checkin_idempotency_key`, its `correction_id` is the add-punch correction, `punch_id` 0 and `device_sn`
//! `HR-CORRECTION` (there is no stored punch); NATS sends it on the subject the check-in went to (the employee's
//! site). One revoked before it was delivered is never delivered, so needs nothing.
//!
//! A voided punch that HR restores (the correction revoked) is not sent again as a check-in: its idempotency key
//! is the one the receiver already saw, then withdrew (replay it by hand if the receiver needs it back).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::frappe_withdraw::WithdrawReport;
use super::nats::{Nats, NatsConfig};
use super::webhook::{Webhook, WebhookConfig};
use crate::store::delivery::{VoidedPunch, Withdrawal, WithdrawalStatus};
use crate::store::outbox::{Sink, SinkKind};
use crate::store::Store;

/// Voided punches looked at per round.
const ROUND: usize = 500;

/// The schema name of [`VoidedCheckInBatch`].
pub const VOIDS_SCHEMA: &str = "punchd.checkin-voids.v1";
/// The `event` of a [`VoidedCheckIn`], and the value of the `X-Punchd-Event` / `Punchd-Event` header.
pub const VOIDED_EVENT: &str = "checkin.voided";

/// A check-in withdrawn because HR voided its punch, or revoked the punch HR had added (`checkin.voided`), as
/// webhook requests and NATS messages carry it. A receiver removes (or marks void) the check-in it holds under `checkin_idempotency_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VoidedCheckIn {
    /// Always `checkin.voided`.
    pub event: String,
    /// Stable per withdrawal: the check-in's key, `.void-` and the correction id. A receiver that has seen it must
    /// ignore it.
    pub idempotency_key: String,
    /// The `idempotency_key` the withdrawn check-in was delivered with (`c1-<correction id>-<ms>` for a punch HR added).
    pub checkin_idempotency_key: String,
    /// The void-punch correction (HR's change in the monthly review); for a punch HR added and then revoked, the
    /// revoked add-punch correction (the check-in's own `correction_id`).
    pub correction_id: i64,
    /// The voided punch's id in punchd; 0 for a punch HR added (no stored punch).
    pub punch_id: i64,
    /// The employee value the check-in carried (the employee code punchd maps the PIN to, or the PIN).
    pub employee: String,
    /// Terminal serial number (`HR-CORRECTION` for a punch HR added).
    pub device_sn: String,
    /// The device's site, if set (for a punch HR added: the employee's site).
    pub site: Option<String>,
    /// User id on the terminal (for a punch HR added: the employee code).
    pub pin: String,
    /// Terminal local wall time of the voided punch, `YYYY-MM-DDTHH:MM:SS` (for a punch HR added: the site local
    /// time HR typed).
    pub punched_at: String,
    /// Its punch state code, if the terminal sent one.
    pub punch_state: Option<u16>,
}

/// The body of a webhook withdrawal request: a versioned batch of [`VoidedCheckIn`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VoidedCheckInBatch {
    /// Always `punchd.checkin-voids.v1` for this shape.
    pub schema: String,
    /// When this attempt was sent (UTC).
    pub sent_at: DateTime<Utc>,
    /// The withdrawals, by correction id.
    pub voids: Vec<VoidedCheckIn>,
}

/// The withdrawal notice of a voided punch, for `employee` at `site`.
pub fn voided_checkin(v: &VoidedPunch, employee: String, site: Option<String>) -> VoidedCheckIn {
    let checkin_key = checkin_key_of(v);
    VoidedCheckIn {
        event: VOIDED_EVENT.into(),
        idempotency_key: format!("{checkin_key}.void-{}", v.correction_id),
        checkin_idempotency_key: checkin_key,
        correction_id: v.correction_id,
        punch_id: v.punch_id,
        employee,
        device_sn: v.device_sn.clone(),
        site,
        pin: v.pin.clone(),
        punched_at: v.punched_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        punch_state: v.punch_state,
    }
}

/// The idempotency key the voided punch's check-in was delivered with ([`super::idempotency_key`]; for a punch HR
/// added, [`super::added_key`]).
fn checkin_key_of(v: &VoidedPunch) -> String {
    if let Some(added_at) = v.added_at {
        return super::added_key(v.correction_id, added_at);
    }
    super::idempotency_key_of(&v.device_sn, &v.pin, v.punched_at, v.punch_state)
}

/// What sink `sink_id` must withdraw: voided punches, then punches HR added and revoked after their delivery.
pub(crate) async fn to_withdraw(
    store: &dyn Store,
    sink_id: i64,
) -> anyhow::Result<Vec<VoidedPunch>> {
    let mut all = store.voids_to_withdraw(sink_id, ROUND).await?;
    all.extend(store.revoked_additions_to_withdraw(sink_id, ROUND).await?);
    Ok(all)
}

/// What to do with one voided punch at a webhook or NATS sink: `None` = send the withdrawal; `Some(None)` = wait;
/// `Some(Some(..))` = record this outcome without sending.
fn decide(v: &VoidedPunch) -> Option<Option<(WithdrawalStatus, String)>> {
    match v.delivery.as_deref() {
        Some("delivered") => None,
        Some("pending") => Some(None),
        Some("parked") => Some(Some((
            WithdrawalStatus::NotDelivered,
            "parked, never reached the receiver: nothing to withdraw".into(),
        ))),
        _ => Some(Some((
            WithdrawalStatus::NotDelivered,
            "no delivery record at this sink: never sent to it, or its record was pruned after the outbox retention"
                .into(),
        ))),
    }
}

/// One round for one sink: Frappe deletes ([`super::frappe_withdraw::withdraw`]), webhook and NATS send
/// `checkin.voided`.
///
/// Errors: the sink's settings are unreadable, or the store fails. A receiver's failure is reported per punch in
/// [`WithdrawReport::failed`] and tried again next round.
pub async fn withdraw(store: &dyn Store, sink: &Sink) -> anyhow::Result<WithdrawReport> {
    if sink.kind == SinkKind::Frappe {
        return super::frappe_withdraw::withdraw(store, sink).await;
    }
    let voids = to_withdraw(store, sink.id).await?;
    let mut report = WithdrawReport::default();
    if voids.is_empty() {
        return Ok(report);
    }
    let employees = store.list_employees().await?;
    let resolver = crate::attendance::mapping::Resolver::new(
        &store.list_mappings().await?,
        &employees,
        &store.list_devices().await?,
    );
    let sites: std::collections::HashMap<String, Option<String>> = store
        .list_devices()
        .await?
        .into_iter()
        .map(|d| (d.sn.as_str().to_owned(), d.site))
        .collect();
    // A punch HR added went to its employee's site's subject (`super::added`).
    let employee_sites: std::collections::HashMap<&str, Option<String>> = employees
        .iter()
        .map(|e| (e.code.as_str(), e.site.clone()))
        .collect();
    let mut to_send: Vec<(VoidedPunch, VoidedCheckIn)> = Vec::new();
    let mut record = Vec::new();
    for v in voids {
        match decide(&v) {
            Some(None) => report.waiting += 1,
            Some(Some((status, note))) => record.push((v, status, note)),
            None if v.added_at.is_some() => {
                let site = employee_sites.get(v.pin.as_str()).cloned().flatten();
                let notice = voided_checkin(&v, v.pin.clone(), site);
                to_send.push((v, notice));
            }
            None => {
                let employee = resolver
                    .resolve(&v.device_sn, &v.pin)
                    .map_or_else(|| v.pin.clone(), str::to_owned);
                let site = sites.get(&v.device_sn).cloned().flatten();
                let notice = voided_checkin(&v, employee, site);
                to_send.push((v, notice));
            }
        }
    }
    if !to_send.is_empty() {
        let notices: Vec<VoidedCheckIn> = to_send.iter().map(|(_, n)| n.clone()).collect();
        let results: Vec<Result<String, String>> = match sink.kind {
            SinkKind::Webhook => {
                let hook = Webhook::new(serde_json::from_value::<WebhookConfig>(
                    sink.config.clone(),
                )?)?;
                match hook.send_voids(&notices).await {
                    Ok(()) => {
                        vec![Ok(format!("{VOIDED_EVENT} accepted by the receiver")); notices.len()]
                    }
                    Err(e) => vec![Err(e); notices.len()],
                }
            }
            SinkKind::Nats => {
                let nats = Nats::new(serde_json::from_value::<NatsConfig>(sink.config.clone())?);
                nats.publish_voids(&notices).await
            }
            SinkKind::Frappe => unreachable!("handled above"),
        };
        for ((v, notice), result) in to_send.into_iter().zip(results) {
            match result {
                Ok(note) => record.push((
                    v,
                    WithdrawalStatus::Withdrawn,
                    format!("{note} (key {})", notice.idempotency_key),
                )),
                Err(e) => report.failed.push(format!("{}: {e}", what(&v))),
            }
        }
    }
    for (v, status, note) in record {
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
    report.recorded.sort_by_key(|w| w.correction_id);
    Ok(report)
}

/// The voided punch in words, for reports and logs.
pub(crate) fn what(v: &VoidedPunch) -> String {
    if v.added_at.is_some() {
        format!(
            "punch added by correction {} ({} {})",
            v.correction_id, v.pin, v.punched_at
        )
    } else {
        format!(
            "punch {} ({} {} {})",
            v.punch_id, v.device_sn, v.pin, v.punched_at
        )
    }
}

/// One round over every sink that is not paused: called by the sink supervisor every minute.
pub async fn withdraw_all(store: &dyn Store) {
    let Ok(sinks) = store.list_sinks().await else {
        return;
    };
    for sink in sinks.iter().filter(|s| !s.paused) {
        match withdraw(store, sink).await {
            Ok(report) => {
                for w in &report.recorded {
                    tracing::info!(
                        sink = %sink.name,
                        punch = w.punch_id,
                        status = w.status.as_str(),
                        "voided punch: {}",
                        w.note
                    );
                }
                for f in &report.failed {
                    tracing::warn!(sink = %sink.name, "withdrawing a voided punch failed: {f}");
                }
            }
            Err(e) => tracing::warn!(sink = %sink.name, "withdrawing voided punches failed: {e:#}"),
        }
    }
}
