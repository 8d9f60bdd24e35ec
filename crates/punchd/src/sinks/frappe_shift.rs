//! Completeness to Frappe: punchd advances each configured Shift Type's `last_sync_of_checkin` (frappe-hr.md §5)
//! only as far as every device feeding it has delivered, so Frappe's auto attendance never marks someone absent
//! because a terminal had not uploaded yet.
//!
//! Why: HRMS processes a shift's logs only once `last_sync_of_checkin` is past the shift's actual end, and marks
//! Absent every working day without logs before it (§5 "Why it matters to a hub"). The field means "all devices
//! have delivered everything up to here". The official sync tool sets it per Shift Type to the minimum pull time
//! of the mapped devices, and only when all of them succeeded (§6 "Loop"); punchd does the same with its
//! watermarks.
//!
//! The target of a Shift Type ([`plan`]) is the minimum, over the devices that feed it, of
//! - the device's watermark ([`crate::attendance::watermark`]: push, last contact; pull, last complete read;
//!   BioTime, last complete read) — a device that never delivered, or that still has a backlog (it reports more
//!   punches than punchd holds of it), holds the Shift Type back entirely;
//! - the earliest punch of that device this sink has not delivered or parked yet (pending, retrying, or not yet
//!   taken: [`crate::store::delivery::DeliveryStore::undelivered_by_device`]), since Frappe does not have it.
//!
//! The target is written as a naive wall time in the Frappe site's zone (the sink's `time_zone`; without one, the
//! device's zone, as check-in timestamps are then sent in terminal local time), the way §4's example writes it:
//! `PUT /api/resource/Shift Type/{name}` with `{"last_sync_of_checkin": "YYYY-MM-DD HH:MM:SS"}`. Forward only: the
//! current value is read first (`GET /api/resource/Shift Type/{name}`, §4) and never moved back, so a person or
//! HRMS's own `auto_update_last_sync` (§5) who set it later wins. Which device holds a Shift Type back is reported
//! ([`ShiftSync::held_by`]) by `punchd sinks show NAME` and in the log.

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::frappe::{authorization, client, FrappeConfig};
use super::webhook::error_chain;
use crate::attendance::watermark::{self, Watermark};
use crate::domain::{Approval, Device};
use crate::store::delivery::Undelivered;
use crate::store::outbox::{Sink, SinkKind};
use crate::store::Store;

/// A Shift Type whose `last_sync_of_checkin` punchd keeps, and the devices that feed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShiftTypeFeed {
    /// The Shift Type's name in Frappe (its document name, e.g. `Day Shift`).
    pub name: String,
    /// Device SNs that feed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Sites whose devices feed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<String>,
}

impl ShiftTypeFeed {
    /// Whether `device` feeds this Shift Type: listed by SN or by site; with neither list, every approved device.
    pub fn fed_by(&self, device: &Device) -> bool {
        if device.approval != Approval::Approved {
            return false;
        }
        if self.devices.is_empty() && self.sites.is_empty() {
            return true;
        }
        self.devices.iter().any(|sn| sn == device.sn.as_str())
            || device
                .site
                .as_ref()
                .is_some_and(|site| self.sites.contains(site))
    }
}

/// Parse `NAME` (fed by every device) or `NAME=SN,SN,site:SITE` (the CLI's `--shift-type`).
///
/// Errors: an empty name or an empty list item.
pub fn parse_feed(s: &str) -> Result<ShiftTypeFeed, String> {
    let (name, list) = match s.split_once('=') {
        Some((name, list)) => (name.trim(), Some(list)),
        None => (s.trim(), None),
    };
    if name.is_empty() {
        return Err(format!("{s:?} has no Shift Type name"));
    }
    let mut feed = ShiftTypeFeed {
        name: name.to_owned(),
        devices: Vec::new(),
        sites: Vec::new(),
    };
    for item in list.into_iter().flat_map(|l| l.split(',')) {
        let item = item.trim();
        match item.strip_prefix("site:") {
            Some(site) if !site.trim().is_empty() => feed.sites.push(site.trim().to_owned()),
            None if !item.is_empty() => feed.devices.push(item.to_owned()),
            _ => return Err(format!("{s:?}: empty device or site in the list")),
        }
    }
    Ok(feed)
}

/// What punchd may set a Shift Type's `last_sync_of_checkin` to now, and why not further.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ShiftSync {
    /// The Shift Type.
    pub shift_type: String,
    /// The devices that feed it (SNs).
    pub devices: Vec<String>,
    /// The target as a naive wall time in the Frappe site's zone; `None` while a device never delivered or no
    /// device feeds it (nothing may be processed).
    #[schema(value_type = Option<String>)]
    #[serde(serialize_with = "frappe_datetime")]
    pub target: Option<NaiveDateTime>,
    /// The target instant (UTC).
    pub target_utc: Option<DateTime<Utc>>,
    /// The devices holding the target back, each with why (`SN: watermark …`, `SN: N punches not yet delivered
    /// (oldest …)`, `SN: has never delivered`).
    pub held_by: Vec<String>,
}

/// A naive time as Frappe writes a Datetime: `YYYY-MM-DD HH:MM:SS`.
fn frappe_datetime<S: serde::Serializer>(
    t: &Option<NaiveDateTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&t.format("%Y-%m-%d %H:%M:%S").to_string()),
        None => s.serialize_none(),
    }
}

/// The target of one Shift Type (see the module doc): pure, from the devices, what the sink still owes per
/// device, and the zone each device's time is written in (`zone_of`).
pub fn plan(
    feed: &ShiftTypeFeed,
    devices: &[Device],
    marks: &[Watermark],
    owed: &[Undelivered],
    zone_of: impl Fn(&Device) -> chrono_tz::Tz,
) -> ShiftSync {
    let feeding: Vec<&Device> = devices.iter().filter(|d| feed.fed_by(d)).collect();
    let mut out = ShiftSync {
        shift_type: feed.name.clone(),
        devices: feeding.iter().map(|d| d.sn.as_str().to_owned()).collect(),
        target: None,
        target_utc: None,
        held_by: Vec::new(),
    };
    if feeding.is_empty() {
        out.held_by
            .push("no approved device feeds this Shift Type".into());
        return out;
    }
    // Per device: its bound (UTC), the bound as a wall time in its zone, and why.
    let mut bounds: Vec<(DateTime<Utc>, NaiveDateTime, String)> = Vec::new();
    for device in &feeding {
        let sn = device.sn.as_str();
        let found = marks.iter().find(|m| m.device_sn == sn);
        if let Some(backlog) = found.and_then(|m| m.backlog).filter(|b| *b > 0) {
            out.held_by.push(format!(
                "{sn}: still holds {backlog} punches it has not uploaded"
            ));
            continue;
        }
        let Some(mark) = found.and_then(|m| m.watermark) else {
            out.held_by.push(format!("{sn}: has never delivered"));
            continue;
        };
        let (bound, why) = match owed.iter().find(|o| o.device_sn == sn) {
            Some(o) if o.oldest_punch_at < mark => (
                o.oldest_punch_at,
                format!(
                    "{sn}: {} punches not yet delivered to Frappe (oldest {})",
                    o.events,
                    o.oldest_punch_at.to_rfc3339()
                ),
            ),
            _ => (mark, format!("{sn}: watermark {}", mark.to_rfc3339())),
        };
        // Whole seconds: Frappe's Datetime as the sink writes it (and forward-only compares it).
        let bound = bound.with_nanosecond(0).unwrap_or(bound);
        let local = bound.with_timezone(&zone_of(device)).naive_local();
        bounds.push((bound, local, why));
    }
    if !out.held_by.is_empty() {
        return out;
    }
    let Some(min_local) = bounds.iter().map(|b| b.1).min() else {
        return out;
    };
    out.target = Some(min_local);
    out.target_utc = bounds.iter().map(|b| b.0).min();
    out.held_by = bounds
        .into_iter()
        .filter(|b| b.1 == min_local)
        .map(|b| b.2)
        .collect();
    out
}

/// The zone a Frappe sink writes a device's times in: the sink's `time_zone`, else the device's, else `default`.
pub fn zone_for(config: &FrappeConfig, device: &Device, default: chrono_tz::Tz) -> chrono_tz::Tz {
    config
        .time_zone
        .as_deref()
        .or(device.time_zone.as_deref())
        .and_then(|z| z.parse().ok())
        .unwrap_or(default)
}

/// The plans of every Shift Type of a Frappe sink, from the store as it is now (no call to Frappe).
///
/// Errors: the sink is not a readable Frappe sink, or the store fails.
pub async fn plans(
    store: &dyn Store,
    sink: &Sink,
    default_zone: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<ShiftSync>> {
    if sink.kind != SinkKind::Frappe {
        return Ok(Vec::new());
    }
    let config: FrappeConfig = serde_json::from_value(sink.config.clone())?;
    if config.shift_types.is_empty() {
        return Ok(Vec::new());
    }
    let devices = store.list_devices().await?;
    let marks = watermark::watermarks(store, &devices, now).await?;
    let owed = store.undelivered_by_device(sink.id).await?;
    Ok(config
        .shift_types
        .iter()
        .map(|feed| {
            plan(feed, &devices, &marks, &owed, |d| {
                zone_for(&config, d, default_zone)
            })
        })
        .collect())
}

/// What one sync did to one Shift Type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncResult {
    /// The plan.
    #[serde(flatten)]
    pub plan: ShiftSync,
    /// The value Frappe held before (naive site time), if any.
    pub before: Option<String>,
    /// The value written, when punchd moved it forward.
    pub written: Option<String>,
    /// Why nothing was written, or the error, in plain words.
    pub note: String,
}

fn resource_url(config: &FrappeConfig, name: &str) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(config.url.trim_end_matches('/'))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("{} cannot be a base URL", config.url))?
        .pop_if_empty()
        .extend(["api", "resource", "Shift Type", name]);
    Ok(url)
}

fn frappe_time(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok()
}

/// Advance every Shift Type of a Frappe sink to its target (forward only) and say what happened to each.
///
/// Errors: the settings or the store cannot be read. Frappe's answers (a missing Shift Type, 401/403, 5xx) are
/// reported per Shift Type in [`SyncResult::note`], not as errors.
pub async fn sync(
    store: &dyn Store,
    sink: &Sink,
    default_zone: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<SyncResult>> {
    let plans = plans(store, sink, default_zone, now).await?;
    if plans.is_empty() {
        return Ok(Vec::new());
    }
    let config: FrappeConfig = serde_json::from_value(sink.config.clone())?;
    let http = client(&config)?;
    let mut results = Vec::new();
    for plan in plans {
        let mut result = SyncResult {
            plan,
            before: None,
            written: None,
            note: String::new(),
        };
        match advance(&http, &config, &mut result).await {
            Ok(()) => {}
            Err(e) => result.note = format!("{e:#}"),
        }
        results.push(result);
    }
    Ok(results)
}

async fn advance(
    http: &reqwest::Client,
    config: &FrappeConfig,
    result: &mut SyncResult,
) -> anyhow::Result<()> {
    let name = result.plan.shift_type.clone();
    let url = resource_url(config, &name)?;
    let answer = http
        .get(url.clone())
        .header(reqwest::header::AUTHORIZATION, authorization(config))
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("could not reach Frappe: {}", error_chain(&e)))?;
    let status = answer.status().as_u16();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    match status {
        200 => {}
        404 => anyhow::bail!("Frappe has no Shift Type named {name:?} (HTTP 404)"),
        401 | 403 => anyhow::bail!(
            "Frappe refused to read Shift Type {name:?} (HTTP {status}): the API user needs read and write on \
             Shift Type"
        ),
        other => anyhow::bail!("reading Shift Type {name:?}: HTTP {other}"),
    }
    let current = body
        .pointer("/data/last_sync_of_checkin")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    result.before = current.clone();
    let Some(target) = result.plan.target else {
        result.note = format!("held back: {}", result.plan.held_by.join("; "));
        return Ok(());
    };
    if let Some(current) = current.as_deref().and_then(frappe_time) {
        if current >= target {
            result.note = "Frappe's value is already at or past the target (forward only)".into();
            return Ok(());
        }
    }
    let value = target.format("%Y-%m-%d %H:%M:%S").to_string();
    let answer = http
        .put(url)
        .header(reqwest::header::AUTHORIZATION, authorization(config))
        .header(reqwest::header::ACCEPT, "application/json")
        .json(&serde_json::json!({ "last_sync_of_checkin": value }))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("could not reach Frappe: {}", error_chain(&e)))?;
    let status = answer.status().as_u16();
    if status != 200 {
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        let message = super::frappe::server_messages(&body)
            .into_iter()
            .next()
            .unwrap_or_default();
        anyhow::bail!("writing Shift Type {name:?}: HTTP {status} {message}");
    }
    result.written = Some(value);
    result.note = format!("held by {}", result.plan.held_by.join("; "));
    Ok(())
}

/// One round over every Frappe sink with Shift Types (not paused): called by the sink supervisor every minute.
pub async fn sync_all(store: &dyn Store, default_zone: chrono_tz::Tz) {
    let Ok(sinks) = store.list_sinks().await else {
        return;
    };
    for sink in sinks
        .iter()
        .filter(|s| s.kind == SinkKind::Frappe && !s.paused)
    {
        match sync(store, sink, default_zone, Utc::now()).await {
            Ok(results) => {
                for r in results {
                    if let Some(written) = &r.written {
                        tracing::info!(
                            sink = %sink.name,
                            shift_type = %r.plan.shift_type,
                            "last_sync_of_checkin advanced to {written} ({})",
                            r.note
                        );
                    } else {
                        tracing::debug!(
                            sink = %sink.name,
                            shift_type = %r.plan.shift_type,
                            "last_sync_of_checkin not moved: {}",
                            r.note
                        );
                    }
                }
            }
            Err(e) => {
                tracing::warn!(sink = %sink.name, "Shift Type sync failed: {e:#}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeviceSn, Transport};
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 2, h, m, 0)
            .single()
            .expect("time")
    }

    fn device(sn: &str, site: Option<&str>, last_seen: Option<DateTime<Utc>>) -> Device {
        Device {
            sn: DeviceSn::parse(sn).expect("sn"),
            approval: Approval::Approved,
            transport: Transport::Push,
            alias: None,
            site: site.map(str::to_owned),
            time_zone: None,
            address: None,
            comm_key: None,
            pull_interval_secs: None,
            clear_after_pull: false,
            first_seen: at(0, 0),
            last_seen,
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
        }
    }

    fn kolkata(_: &Device) -> chrono_tz::Tz {
        chrono_tz::Asia::Kolkata
    }

    fn marks(devices: &[Device]) -> Vec<Watermark> {
        devices
            .iter()
            .map(|d| watermark::watermark(d, at(10, 5)))
            .collect()
    }

    #[test]
    fn the_target_is_the_slowest_feeding_device_in_the_site_zone() {
        let devices = vec![
            device("GATE1", Some("HQ"), Some(at(10, 0))),
            device("GATE2", Some("HQ"), Some(at(9, 15))),
            device("PLANT1", Some("Plant"), None),
        ];
        let feed = parse_feed("Day Shift=site:HQ").expect("feed");
        let plan = plan(&feed, &devices, &marks(&devices), &[], kolkata);
        assert_eq!(plan.devices, ["GATE1", "GATE2"]);
        // 09:15 UTC is 14:45 in Kolkata.
        assert_eq!(
            plan.target.map(|t| t.to_string()).as_deref(),
            Some("2025-06-02 14:45:00")
        );
        assert_eq!(plan.target_utc, Some(at(9, 15)));
        assert_eq!(plan.held_by, ["GATE2: watermark 2025-06-02T09:15:00+00:00"]);
    }

    #[test]
    fn an_undelivered_punch_or_a_silent_device_holds_it_back() {
        let devices = vec![
            device("GATE1", Some("HQ"), Some(at(10, 0))),
            device("GATE2", Some("HQ"), Some(at(9, 15))),
            device("PLANT1", Some("Plant"), None),
        ];
        let owed = vec![Undelivered {
            device_sn: "GATE1".into(),
            events: 3,
            oldest_punch_at: at(8, 0),
        }];
        let feed = parse_feed("Day Shift=GATE1,GATE2").expect("feed");
        let plan_owed = plan(&feed, &devices, &marks(&devices), &owed, kolkata);
        assert_eq!(plan_owed.target_utc, Some(at(8, 0)));
        assert_eq!(
            plan_owed.held_by,
            ["GATE1: 3 punches not yet delivered to Frappe (oldest 2025-06-02T08:00:00+00:00)"]
        );
        // Every approved device (no list): PLANT1 never delivered, so nothing may be processed.
        let all = parse_feed("Night").expect("feed");
        let silent = plan(&all, &devices, &marks(&devices), &owed, kolkata);
        assert_eq!(
            (silent.target, silent.held_by.clone()),
            (None, vec!["PLANT1: has never delivered".to_owned()])
        );
        // A pending (unapproved) device feeds nothing.
        let mut pending = devices.clone();
        pending[2].approval = Approval::Pending;
        assert_eq!(
            plan(&all, &pending, &marks(&pending), &[], kolkata).target_utc,
            Some(at(9, 15))
        );
        // A backlog holds it back although the device is in contact.
        let mut behind = marks(&devices);
        behind[0].backlog = Some(12);
        let held = plan(&feed, &devices, &behind, &[], kolkata);
        assert_eq!(
            (held.target, held.held_by.clone()),
            (
                None,
                vec!["GATE1: still holds 12 punches it has not uploaded".to_owned()]
            )
        );
        let none = plan(
            &parse_feed("X=NOSUCH").expect("feed"),
            &devices,
            &marks(&devices),
            &[],
            kolkata,
        );
        assert_eq!(none.target, None);
    }

    #[test]
    fn feeds_parse_names_devices_and_sites() {
        assert_eq!(
            parse_feed("Day Shift = A1, site:HQ ,B2"),
            Ok(ShiftTypeFeed {
                name: "Day Shift".into(),
                devices: vec!["A1".into(), "B2".into()],
                sites: vec!["HQ".into()],
            })
        );
        assert!(parse_feed("=A1").is_err());
        assert!(parse_feed("Day=A1,,B2").is_err());
        assert!(parse_feed("Day=site:").is_err());
    }
}
