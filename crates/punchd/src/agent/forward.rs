//! The forwarding state machine of one device on the agent, persisted in the agent's SQLite
//! ([`Outbound`], table `agent_outbound`):
//!
//! ```text
//!  pulled ──(ingest commits punches + pull cursor)──► stored ──(state written, batch sent)──► sent
//!     ▲                                                 ▲                                      │
//!     └── crash before the commit: pulled again         └── timeout / error / restart ◄────────┤
//!                                                                                              ▼
//!                                                             acknowledged ◄──(hub's answer, state written)
//! ```
//!
//! - **pulled → stored** is one transaction of the agent's store (the pull scheduler hands punches to `ingest`
//!   with the pull cursor), so a power cut leaves either both or neither; the terminal still holds what was not
//!   stored, and the next pull reads it again.
//! - **stored → sent**: the batch range (`sent_id`, `sent_seq`) is written *before* the request leaves.
//! - **sent → acknowledged**: written after the hub answered, which it does only after its commit.
//! - A timeout, an error or a restart finds `sent` and moves back one step to `stored`: the same range is sent
//!   again (the hub keeps each punch once).
//!
//! Gaps: [`reconcile`] compares the agent's state with what the hub says it holds ([`DeviceStatus`]). The hub
//! ahead (it stored a batch whose answer was lost) moves `acked` forward. The hub behind in sequence, or holding
//! fewer punches than it acknowledged (rows deleted, a restored backup), raises an **alarm** and moves `acked`
//! back to the last point both agree on, from where everything is sent again: the hub's sequence, or with a gap
//! the start of the earliest batch the hub no longer holds in full (`DeviceStatus::resend_from`; sequence 1 with
//! a hub too old to say).

use chrono::{DateTime, Utc};

use super::client::{HubClient, HubError};
use super::wire::{Backlog, DeviceStatus, PunchBatch, WirePunch};
use crate::app::App;
use crate::domain::{DeviceSn, Punch};
use crate::store::agents::{NewAlarm, Outbound, Phase};

/// How often an idle device's watermark is sent to the hub, seconds.
const WATERMARK_EVERY_SECS: i64 = 30;

/// What one step of a device did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to send.
    Idle,
    /// A batch of this many punches was acknowledged.
    Sent(usize),
    /// The hub is behind; the state moved back (an alarm was raised). Send again at once.
    Rewound,
}

/// Raise an alarm on the agent: logged, counted in `punchd_agent_alarms_total`, kept in the agent's store until
/// the hub took it.
pub async fn raise_alarm(app: &App, sn: &DeviceSn, kind: &str, message: String) {
    tracing::error!(sn = %sn, kind, %message, "ALARM");
    app.metrics.agent_alarms.inc();
    let alarm = NewAlarm {
        agent_id: 0,
        device_sn: Some(sn.clone()),
        kind: kind.to_owned(),
        message,
        raised_at: Utc::now(),
    };
    if let Err(e) = app.store.raise_agent_alarm(alarm).await {
        tracing::warn!(sn = %sn, error = %e, "recording the alarm failed");
    }
}

/// The state with `acked` moved to sequence `seq` (the id of the `seq`-th local punch), nothing in flight.
async fn at_seq(app: &App, state: &Outbound, seq: i64) -> anyhow::Result<Option<Outbound>> {
    let Some(id) = app.store.punch_id_at_seq(&state.device_sn, seq).await? else {
        return Ok(None);
    };
    Ok(Some(Outbound {
        phase: Phase::Stored,
        acked_id: id,
        acked_seq: seq,
        sent_id: id,
        sent_seq: seq,
        sent_at: None,
        ..state.clone()
    }))
}

/// Bring a device's state in line with what the hub holds (after a start, a reconnect, or periodically).
///
/// Errors: the agent's store failed.
pub async fn reconcile(app: &App, status: &DeviceStatus) -> anyhow::Result<()> {
    let sn = DeviceSn::parse(&status.device_sn)
        .map_err(|e| anyhow::anyhow!("hub named device {:?}: {e}", status.device_sn))?;
    let mut state = app.store.outbound(&sn).await?;
    let before = state.clone();
    if state.phase == Phase::Sent {
        // A batch was in flight when the agent stopped or the hub went away: one step back.
        tracing::info!(sn = %sn, sent_seq = state.sent_seq, "a batch was in flight; it is sent again");
        state.phase = Phase::Stored;
        state.sent_id = state.acked_id;
        state.sent_seq = state.acked_seq;
        state.sent_at = None;
    }
    let hub_whole = status.count as i64 >= status.last_seq;
    if status.last_seq > state.acked_seq && hub_whole {
        // The hub stored a batch whose answer never arrived. (Not while the hub misses punches it acknowledged:
        // then the agent is re-sending them, from behind the hub's sequence.)
        match at_seq(app, &state, status.last_seq).await? {
            Some(ahead) => {
                state = Outbound {
                    phase: Phase::Acknowledged,
                    ..ahead
                }
            }
            None => tracing::warn!(
                sn = %sn,
                hub_seq = status.last_seq,
                agent_seq = state.acked_seq,
                "the hub holds more of this device than this agent ever stored (a new agent database?); sending all it has"
            ),
        }
    } else if status.last_seq < state.acked_seq {
        raise_alarm(
            app,
            &sn,
            "sequence",
            format!(
                "the hub holds {sn} up to sequence {} but acknowledged {}; sending again from {}",
                status.last_seq,
                state.acked_seq,
                status.last_seq + 1
            ),
        )
        .await;
        if let Some(back) = at_seq(app, &state, status.last_seq).await? {
            state = back;
        }
    }
    let agreed = state.acked_seq.min(status.last_seq);
    if (status.count as i64) < agreed {
        // Punches the hub acknowledged are gone. A hub that records its batches names the earliest one that lost
        // punches (`resend_from`): everything before it is held, so that is the last point both agree on. An
        // older hub does not say, and the start is the only such point. The hub keeps each punch once either way.
        let from = status
            .resend_from
            .filter(|from| (1..=agreed).contains(from))
            .unwrap_or(1);
        raise_alarm(
            app,
            &sn,
            "gap",
            format!(
                "the hub holds {} punches of {sn} but acknowledged {agreed}; sending again from sequence {from} \
                 ({} of {} punches)",
                status.count,
                state.acked_seq - from + 1,
                state.acked_seq
            ),
        )
        .await;
        state = match at_seq(app, &state, from - 1).await? {
            Some(back) => back,
            None => Outbound {
                phase: Phase::Stored,
                ..Outbound::new(sn.clone())
            },
        };
    }
    if state != before {
        app.store.save_outbound(state, Utc::now()).await?;
    }
    Ok(())
}

fn wire_punch(p: Punch) -> WirePunch {
    WirePunch {
        pin: p.pin.0,
        punched_at: p.punched_at,
        punch_state: p.punch_state,
        verify_mode: p.verify_mode,
        work_code: p.work_code,
        extra: p.extra,
    }
}

/// One step of a device: send the next batch past what the hub acknowledged and record the answer.
/// `complete_as_of` is sent with a batch that empties the device's backlog (`last_seen` read before the
/// punches, so every punch pulled before it is in the batch or already acknowledged).
///
/// Errors: the hub failed or refused (the state moved back to `stored`), or the agent's store failed.
pub async fn step(
    app: &App,
    hub: &HubClient,
    sn: &DeviceSn,
    batch_size: usize,
    backlog: Option<Backlog>,
    watermark_sent: &mut Option<DateTime<Utc>>,
) -> anyhow::Result<Step> {
    let device = app.store.get_device(sn).await?;
    let last_complete: Option<DateTime<Utc>> = device.last_seen;
    let time_zone = device
        .time_zone
        .clone()
        .unwrap_or_else(|| app.config.default_time_zone.name().to_owned());
    let mut state = app.store.outbound(sn).await?;
    if state.phase == Phase::Sent {
        state.phase = Phase::Stored;
        state.sent_id = state.acked_id;
        state.sent_seq = state.acked_seq;
    }
    let punches = app
        .store
        .punches_after(sn, state.acked_id, batch_size)
        .await?;
    if punches.is_empty() {
        // Nothing new, but the terminal was read again: tell the hub, so its watermark of the device moves on
        // (at most every [`WATERMARK_EVERY_SECS`]).
        if let Some(at) = last_complete {
            let due =
                watermark_sent.is_none_or(|sent| (at - sent).num_seconds() >= WATERMARK_EVERY_SECS);
            if due {
                let empty = PunchBatch {
                    device_sn: sn.to_string(),
                    time_zone: Some(time_zone),
                    first_seq: state.acked_seq + 1,
                    punches: Vec::new(),
                    complete_as_of: Some(at),
                    backlog,
                };
                hub.send_batch(&empty).await.map_err(|e| {
                    anyhow::Error::new(e).context(format!("sending the watermark of {sn}"))
                })?;
                *watermark_sent = Some(at);
            }
        }
        return Ok(Step::Idle);
    }
    let n = punches.len();
    let last_id = punches.last().map_or(state.acked_id, |p| p.id);
    let batch = PunchBatch {
        device_sn: sn.to_string(),
        time_zone: Some(time_zone),
        first_seq: state.acked_seq + 1,
        punches: punches.into_iter().map(wire_punch).collect(),
        complete_as_of: if n < batch_size { last_complete } else { None },
        backlog,
    };
    // stored → sent, on disk before the request leaves.
    let sent = Outbound {
        phase: Phase::Sent,
        sent_id: last_id,
        sent_seq: batch.last_seq(),
        sent_at: Some(Utc::now()),
        ..state.clone()
    };
    app.store.save_outbound(sent.clone(), Utc::now()).await?;
    match hub.send_batch(&batch).await {
        Ok(reply) if reply.acked_seq >= sent.sent_seq => {
            if batch.complete_as_of.is_some() {
                *watermark_sent = batch.complete_as_of;
            }
            let acked = Outbound {
                phase: Phase::Acknowledged,
                acked_id: sent.sent_id,
                acked_seq: sent.sent_seq,
                sent_at: None,
                ..sent
            };
            app.store.save_outbound(acked, Utc::now()).await?;
            Ok(Step::Sent(n))
        }
        Ok(reply) => {
            // Cannot happen with a hub of this version; treat as not acknowledged.
            back_one_step(app, state).await?;
            anyhow::bail!(
                "the hub acknowledged sequence {} of a batch ending at {}",
                reply.acked_seq,
                sent.sent_seq
            )
        }
        Err(HubError::Gap { last_seq }) => {
            raise_alarm(
                app,
                sn,
                "sequence",
                format!(
                    "the hub holds {sn} up to sequence {last_seq}, this agent had {} acknowledged; sending again from {}",
                    state.acked_seq,
                    last_seq + 1
                ),
            )
            .await;
            let back = at_seq(app, &state, last_seq).await?.unwrap_or(Outbound {
                phase: Phase::Stored,
                ..Outbound::new(sn.clone())
            });
            app.store.save_outbound(back, Utc::now()).await?;
            Ok(Step::Rewound)
        }
        Err(e) => {
            back_one_step(app, state).await?;
            Err(anyhow::Error::new(e).context(format!("sending a batch of {sn}")))
        }
    }
}

/// sent → stored after a failure: the range is sent again.
async fn back_one_step(app: &App, state: Outbound) -> anyhow::Result<()> {
    let back = Outbound {
        phase: Phase::Stored,
        sent_id: state.acked_id,
        sent_seq: state.acked_seq,
        sent_at: None,
        ..state
    };
    app.store.save_outbound(back, Utc::now()).await?;
    Ok(())
}
