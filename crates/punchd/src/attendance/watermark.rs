//! Completeness: per device, the **watermark** — the instant up to which punchd holds everything the device will
//! send — and, per site and working day, which devices still hold the day back.
//!
//! The watermark is the device's `last_seen` as the store keeps it:
//! - push terminals (push.md §6): `last_seen` moves on every request the terminal makes; a terminal uploads its
//!   new ATTLOG lines before (or in) the poll that follows them and punchd acknowledges an upload only after it
//!   is durable, so a terminal that polled at T has delivered everything it recorded before T. While it is offline
//!   the watermark stays at its last contact.
//! - pull terminals: `last_seen` moves only when a pull succeeds (`record_device_health` with no error): the time
//!   of the last complete read.
//!
//! **Backlog.** A terminal can be in contact (so its `last_seen` is fresh) while it still holds punches it has not
//! uploaded: back online after an outage, it polls first and uploads its log in chunks. Every terminal reports how
//! many punches its log holds (`TransactionCount`: push `INFO`, pull free sizes, kept in the device's `info`); when
//! that is more than punchd holds of the terminal, the difference is its **backlog** and the terminal holds back
//! every day until it is delivered ([`watermarks`]). Fewer on the terminal than in punchd (a cleared log) is no
//! backlog.
//!
//! A day is complete when every device of its site has a watermark at or past the day's end plus the checkout
//! window ([`CHECKOUT_WINDOW_SECS`]) and no backlog; a site without devices has no complete day.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::devices::health;
use crate::domain::Device;

/// The check-out window after a day's end that a device must also have delivered (vendor convention: 2 h).
pub const CHECKOUT_WINDOW_SECS: i64 = 2 * 3600;

/// One device's watermark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Watermark {
    /// The device SN.
    pub device_sn: String,
    /// Its site.
    pub site: Option<String>,
    /// push, tcp, udp or biotime.
    pub transport: String,
    /// Everything up to this instant (UTC) is held; `None` when the device never delivered.
    pub watermark: Option<DateTime<Utc>>,
    /// Whether the device counts as online now (devices::health).
    pub online: bool,
    /// Where the watermark comes from: `last contact (push)`, `last complete pull`, or `last complete BioTime
    /// read` (sources::biotime).
    pub basis: String,
    /// Punches the terminal reports holding beyond those punchd holds of it (see the module doc); while it is
    /// above 0 the device holds back every day. `None` when the terminal never reported its count.
    #[serde(default)]
    pub backlog: Option<u64>,
}

/// The watermark of a device at `now`.
pub fn watermark(device: &Device, now: DateTime<Utc>) -> Watermark {
    use crate::domain::Transport;
    Watermark {
        device_sn: device.sn.as_str().to_owned(),
        site: device.site.clone(),
        transport: device.transport.as_str().to_owned(),
        watermark: device.last_seen,
        online: health::is_online(device, now),
        basis: match device.transport {
            Transport::Push => "last contact (push)".into(),
            Transport::Biotime => "last complete BioTime read".into(),
            _ => "last complete pull".into(),
        },
        backlog: None,
    }
}

/// The number of punches the terminal last said its log holds (`TransactionCount` in its info), if it said.
pub fn reported_log_count(device: &Device) -> Option<u64> {
    match device.info.get("TransactionCount")? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The watermarks of `devices` at `now`, with their backlog: the terminal's reported log count minus the punches
/// punchd holds of it (counted in the store, only for terminals that reported a count).
///
/// Errors: the store fails.
pub async fn watermarks(
    store: &dyn crate::store::Store,
    devices: &[Device],
    now: DateTime<Utc>,
) -> Result<Vec<Watermark>, crate::store::StoreError> {
    let mut marks = Vec::with_capacity(devices.len());
    for device in devices {
        let mut mark = watermark(device, now);
        if let Some(reported) = reported_log_count(device) {
            let held = store
                .count_punches(&crate::store::PunchFilter {
                    device_sn: Some(device.sn.clone()),
                    ..Default::default()
                })
                .await?;
            mark.backlog = Some(reported.saturating_sub(held));
        }
        marks.push(mark);
    }
    Ok(marks)
}

/// The devices (SNs) whose watermark is before `needed`, or that have a backlog: they hold back a day ending at
/// `needed`.
pub fn held_by(marks: &[Watermark], needed: DateTime<Utc>) -> Vec<String> {
    marks
        .iter()
        .filter(|m| m.watermark.is_none_or(|w| w < needed) || m.backlog.is_some_and(|b| b > 0))
        .map(|m| m.device_sn.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Approval, DeviceSn, NewPunch, Pin, PunchState, Source, Transport};
    use crate::store::sqlite::{Durability, SqliteStore};
    use crate::store::{Batch, RawEntry, Store};
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, h, 0, 0)
            .single()
            .expect("time")
    }

    fn batch(sn: &DeviceSn, hours: &[u32], reported: Option<u64>) -> Batch {
        let mut batch = Batch::new(RawEntry {
            received_at: at(20),
            device_sn: Some(sn.clone()),
            source: Source::Push,
            kind: "ATTLOG".into(),
            request: "POST /iclock/cdata".into(),
            remote_addr: None,
            body: Vec::new(),
            errors: Vec::new(),
        });
        batch.punches = hours
            .iter()
            .map(|&h| NewPunch {
                device_sn: sn.clone(),
                pin: Pin("7".into()),
                punched_at: at(h).naive_utc(),
                time_zone: "UTC".into(),
                punched_at_utc: at(h),
                punch_state: Some(PunchState::from_code(0)),
                verify_mode: None,
                work_code: None,
                extra: Vec::new(),
                source: Source::Push,
            })
            .collect();
        batch.device_info = reported.map(|n| {
            let mut info = serde_json::Map::new();
            info.insert("TransactionCount".into(), n.into());
            (sn.clone(), info)
        });
        batch
    }

    /// A terminal in contact that reports more punches than punchd holds of it holds every day back until the
    /// rest arrives; a cleared terminal (fewer) does not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reported_backlog_holds_days_back_until_it_is_uploaded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteStore::open(&dir.path().join("wm.db"), Durability::PowerSafe).expect("open");
        let sn = DeviceSn::parse("BACKLOG1").expect("sn");
        let device = Device {
            sn: sn.clone(),
            approval: Approval::Approved,
            transport: Transport::Push,
            alias: None,
            site: None,
            time_zone: None,
            address: None,
            comm_key: None,
            pull_interval_secs: None,
            clear_after_pull: false,
            first_seen: at(7),
            last_seen: None,
            last_ip: None,
            firmware: None,
            push_version: None,
            language: None,
            device_type: None,
            poll_delay_secs: 30,
            info: Default::default(),
            last_error: None,
            clock_drift_secs: None,
            safe_clear: true,
        };
        store.create_device(device).await.expect("device");
        // In contact at 21:00.
        store
            .record_device_health(&sn, at(21), None, None)
            .await
            .expect("contact");
        // Never reported a count: no backlog known.
        store
            .write_batch(batch(&sn, &[8, 9, 10], None))
            .await
            .expect("batch");
        let devices = store.list_devices().await.expect("devices");
        let marks = watermarks(&store, &devices, at(21)).await.expect("marks");
        assert_eq!((marks[0].watermark, marks[0].backlog), (Some(at(21)), None));
        assert!(held_by(&marks, at(20)).is_empty());
        // The terminal says its log holds 5: two are still on it.
        store
            .write_batch(batch(&sn, &[], Some(5)))
            .await
            .expect("info");
        let devices = store.list_devices().await.expect("devices");
        let marks = watermarks(&store, &devices, at(21)).await.expect("marks");
        assert_eq!(marks[0].backlog, Some(2));
        assert_eq!(held_by(&marks, at(20)), ["BACKLOG1"]);
        // They arrive: nothing held back. A later clear (the terminal reports 0) is no backlog.
        store
            .write_batch(batch(&sn, &[11, 12], None))
            .await
            .expect("batch");
        let marks = watermarks(&store, &devices, at(21)).await.expect("marks");
        assert_eq!(marks[0].backlog, Some(0));
        assert!(held_by(&marks, at(20)).is_empty());
        store
            .write_batch(batch(&sn, &[], Some(0)))
            .await
            .expect("info");
        let devices = store.list_devices().await.expect("devices");
        let marks = watermarks(&store, &devices, at(21)).await.expect("marks");
        assert_eq!(marks[0].backlog, Some(0));
    }
}
