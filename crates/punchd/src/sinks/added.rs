//! Punches HR added in the monthly review (add-punch corrections) are delivered to every sink like any other
//! check-in (issue 8: "an added punch is delivered like any other").
//!
//! An added punch is no stored punch (raw punches never change; the correction is HR's record, with author and
//! reason), so it has no outbox event: each sink is offered the add-punch corrections it has no outcome for yet
//! (`punchd serve` every minute; `punchd sinks deliver-added NAME` or `POST /api/v1/sinks/{name}/deliver-added` at
//! once), through the same deliverer as every other check-in:
//! - Frappe: one Employee Checkin for the employee, `device_id` `HR-CORRECTION`, `log_type` from the punch state HR
//!   gave (or none), the time converted like any other (frappe-hr.md §2);
//! - webhook: a check-in in a `punchd.checkins.v1` batch with `source` `correction`, `correction_id` set, device
//!   `HR-CORRECTION`, `idempotency_key` `c1-<correction id>-<when HR added it, unix ms>` ([`super::added_key`]);
//! - NATS: that check-in on `punchd.checkins.<site>.<employee>` (`Nats-Msg-Id` that key and `.checkin`); no
//!   message on `punchd.punches.*`, since there is no stored punch.
//!
//! The employee is the correction's employee code as it is (no PIN mapping); the time is the site local wall time HR
//! typed, in the zone of the employee's site (else punchd's default zone). Outcomes per sink are recorded
//! (`punchd sinks show NAME` lists them under `added`): delivered, or parked when the sink refused it for good
//! (webhook 4xx). A failure worth retrying, and "employee not found/inactive" in Frappe, record nothing: the next
//! round tries again. A sink without a start date gets the punches added after it was created; with one, all.
//!
//! Revoking the add-punch correction (`punchd attendance revoke ID`) before its delivery means it is never
//! delivered; after it, the check-in is withdrawn from every sink that had it, like a voided punch
//! ([`super::withdraw`]).
//!
//! One round at a time per sink ([`deliver_exclusively`], the lease `added:<sink name>`): two rounds at once
//! (serve's minute round and the API, the CLI, another instance) would both find a punch undelivered and both send
//! it. Frappe creates the check-in for the first and refuses the second as a duplicate, which left its outcome
//! without the document's name, so a later withdrawal could only ask HR to delete it by hand.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{build, Attempt};
use crate::attendance::monthly::CORRECTION_DEVICE;
use crate::domain::{DeviceSn, Pin, Punch, Source};
use crate::store::delivery::{AddedPunch, CorrectionDelivery};
use crate::store::outbox::{OutboxEvent, ParkKind, Sink};
use crate::store::Store;

/// Added punches looked at per round.
const ROUND: usize = 500;

/// What one round did at one sink.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AddedReport {
    /// Outcomes recorded in this round.
    pub recorded: Vec<CorrectionDelivery>,
    /// Added punches not delivered this round, with why (tried again next round).
    pub failed: Vec<String>,
}

/// The check-in event of an added punch, for delivery through a sink's deliverer.
pub fn event_of(added: &AddedPunch, zone: chrono_tz::Tz, site: Option<String>) -> OutboxEvent {
    let utc: DateTime<Utc> = added
        .punched_at
        .and_local_timezone(zone)
        .earliest()
        .map_or_else(
            || DateTime::from_naive_utc_and_offset(added.punched_at, Utc),
            |t| t.with_timezone(&Utc),
        );
    OutboxEvent {
        id: 0,
        created_at: added.created_at,
        attempts: 0,
        next_attempt_at: added.created_at,
        punch: Punch {
            id: 0,
            // A fixed, valid SN (the monthly review's own name for added punches).
            device_sn: DeviceSn::parse(CORRECTION_DEVICE)
                .unwrap_or_else(|_| unreachable!("HR-CORRECTION is a valid SN")),
            pin: Pin(added.employee_code.clone()),
            punched_at: added.punched_at,
            time_zone: zone.name().to_owned(),
            punched_at_utc: utc,
            received_at: added.created_at,
            punch_state: added.punch_state,
            verify_mode: None,
            work_code: None,
            extra: Vec::new(),
            // Not read for an added punch: `CheckIn::of` says `correction` when `correction_id` is set.
            source: Source::Import,
            journal_id: 0,
        },
        device_alias: None,
        device_site: site,
        employee: Some(added.employee_code.clone()),
        correction_id: Some(added.correction_id),
    }
}

/// One round for one sink: deliver the punches HR added that it has no outcome for yet.
///
/// Errors: the sink's settings cannot be used, or the store fails. A sink's failure is per punch in
/// [`AddedReport::failed`].
pub async fn deliver(
    store: &dyn Store,
    sink: &Sink,
    default_zone: chrono_tz::Tz,
) -> anyhow::Result<AddedReport> {
    let added = store.added_punches_to_deliver(sink.id, ROUND).await?;
    let mut report = AddedReport::default();
    if added.is_empty() {
        return Ok(report);
    }
    let deliverer = build(sink)?;
    let zones: HashMap<String, chrono_tz::Tz> = store
        .list_sites()
        .await?
        .into_iter()
        .filter_map(|s| Some((s.name, s.time_zone.parse().ok()?)))
        .collect();
    let sites: HashMap<String, Option<String>> = store
        .list_employees()
        .await?
        .into_iter()
        .map(|e| (e.code, e.site))
        .collect();
    let events: Vec<OutboxEvent> = added
        .iter()
        .map(|a| {
            let site = sites.get(&a.employee_code).cloned().flatten();
            let zone = site
                .as_ref()
                .and_then(|s| zones.get(s).copied())
                .unwrap_or(default_zone);
            event_of(a, zone, site)
        })
        .collect();
    // A sink that cares about order per employee (Frappe) gets them one at a time, in correction order.
    let size = if deliverer.ordered() {
        1
    } else {
        deliverer.batch_size().max(1)
    };
    for chunk in events.chunks(size) {
        let attempts = deliverer.deliver(chunk).await;
        for (i, event) in chunk.iter().enumerate() {
            let correction_id = event.correction_id.unwrap_or_default();
            let what = format!(
                "added punch {correction_id} ({} {})",
                event.punch.pin.as_str(),
                event.punch.punched_at
            );
            let (status, remote_ref, note) = match attempts.get(i) {
                Some(Attempt::Delivered(remote)) => {
                    ("delivered", remote.clone(), "delivered".to_owned())
                }
                Some(Attempt::Park(ParkKind::Unmapped, reason)) => {
                    report.failed.push(format!("{what}: {reason}"));
                    continue;
                }
                Some(Attempt::Park(_, reason)) => ("parked", None, reason.clone()),
                Some(Attempt::Retry(reason) | Attempt::Pause(reason)) => {
                    report.failed.push(format!("{what}: {reason}"));
                    continue;
                }
                None => {
                    report
                        .failed
                        .push(format!("{what}: the sink gave no answer"));
                    continue;
                }
            };
            let d = CorrectionDelivery {
                correction_id,
                status: status.to_owned(),
                remote_ref,
                note,
                updated_at: Utc::now(),
            };
            store.record_correction_delivery(sink.id, d.clone()).await?;
            report.recorded.push(d);
        }
    }
    Ok(report)
}

/// How long a round asked for by the API or the CLI waits for one already under way at the same sink: less than
/// the API's request timeout (`limits.request_timeout_secs`, 30 s by default), so the caller hears why.
pub const WAIT_FOR_ROUND: Duration = Duration::from_secs(20);

/// What an asked-for round says when another round held the sink for all of [`WAIT_FOR_ROUND`].
pub fn another_round(sink: &str) -> String {
    format!(
        "another round (punchd serve's, another instance's or a CLI's) was delivering the added punches of sink \
         {sink} for {} s; try again",
        WAIT_FOR_ROUND.as_secs()
    )
}

/// [`deliver`] while holding the sink's lease `added:<sink name>`, so no other round (this process, the CLI,
/// another instance) offers the same punches to this sink meanwhile. Waits up to `wait` for a round under way to
/// end; `Ok(None)` when it did not end in time (nothing was delivered).
///
/// Errors: as [`deliver`], and the store failing to hand out the lease.
pub async fn deliver_exclusively(
    store: Arc<dyn Store>,
    leases: &crate::leases::Leases,
    sink: &Sink,
    default_zone: chrono_tz::Tz,
    wait: Duration,
) -> anyhow::Result<Option<AddedReport>> {
    let name = format!("added:{}", sink.name);
    // A holder of its own for each round: two rounds of one process (serve's and the API's) must exclude each
    // other too, and a lease lets its own holder in again.
    let round = crate::leases::Leases {
        holder: format!("{}/added-{:08x}", leases.holder, rand::random::<u32>()),
        ..leases.clone()
    };
    let until = Instant::now() + wait;
    let held = loop {
        if let Some(held) = round.try_hold(store.clone(), &name).await? {
            break held;
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let report = deliver(store.as_ref(), sink, default_zone).await;
    held.release().await;
    report.map(Some)
}

/// One round over every sink that is not paused: called by the sink supervisor every minute. A sink whose added
/// punches another round is delivering is left to that round.
pub async fn deliver_all(
    store: Arc<dyn Store>,
    leases: &crate::leases::Leases,
    default_zone: chrono_tz::Tz,
) {
    let Ok(sinks) = store.list_sinks().await else {
        return;
    };
    for sink in sinks.iter().filter(|s| !s.paused) {
        match deliver_exclusively(store.clone(), leases, sink, default_zone, Duration::ZERO).await {
            Ok(None) => {
                tracing::debug!(sink = %sink.name, "added punches: another round is under way; left to it")
            }
            Ok(Some(report)) => {
                for d in &report.recorded {
                    tracing::info!(sink = %sink.name, correction = d.correction_id, status = %d.status,
                        "added punch: {}", d.note);
                }
                for f in &report.failed {
                    tracing::warn!(sink = %sink.name, "delivering a punch HR added failed: {f}");
                }
            }
            Err(e) => {
                tracing::warn!(sink = %sink.name, "delivering punches HR added failed: {e:#}")
            }
        }
    }
}
