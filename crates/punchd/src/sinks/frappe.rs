//! The Frappe HR / ERPNext sink: one Employee Checkin per check-in through the whitelisted method
//! `add_log_based_on_employee_field` (frappe-hr.md §2), with the outcomes of frappe-hr.md §10.
//!
//! - Method path: probed when the sink is added, HRMS (v14+) first, then ERPNext v12/v13 (§2 "Location by
//!   version"). The probe POSTs no parameters: a site that has the method answers 417 "'employee_field_value' and
//!   'timestamp' are required." (§2 behaviour 1) and creates nothing; 401/403 stop with a clear error.
//! - Request: `POST /api/method/<path>`, JSON body, `Authorization: token <api_key>:<api_secret>` (§4), parameters
//!   `employee_field_value` (punchd's employee code, else the PIN: [`super::employee_for`]), `employee_fieldname`
//!   (default `attendance_device_id`, §3), `timestamp` (naive `YYYY-MM-DD HH:MM:SS` in the site's zone: the instant
//!   converted to `time_zone` when configured, otherwise the terminal's local time unchanged), `device_id` (the
//!   device's alias, else its SN), `log_type` (`IN`/`OUT`/null by the chosen mode; the same punch always gets the
//!   same value, because Frappe's duplicate rule includes it, §1.3), `latitude`/`longitude` only when configured.
//! - Answers (§10.2, parsed from the status, `exc_type` and the decoded `_server_messages`, never `exc`, §4):
//!   200 → delivered, the document name kept; 417 "already has a log with the same timestamp" → delivered;
//!   417 "No Employee found" or an Inactive Employee (`InactiveEmployeeStatusError`) → parked as unmapped (retried
//!   at once when punchd's employees or mappings change, and every 10 minutes for fixes made in Frappe); any other
//!   417 → parked as rejected with Frappe's message (e.g. "Log Type is required", lat/long required, §1.5–6);
//!   401/403 → the sink pauses with a configuration error; 404 → paused (the method went away); 429, 5xx, timeouts
//!   and connection errors → retried with backoff.
//! - Per-device rule: `device_log_types` fixes `log_type` for a device (`in`, `out`, `device`, `none`), the sync
//!   tool's `punch_direction` (§6), e.g. an entrance terminal whose punches are all IN.
//! - Shift Types: `shift_types` names the Shift Types whose `last_sync_of_checkin` punchd advances
//!   ([`super::frappe_shift`], §5).
//! - Order: one event per employee at a time, in store order (alternating IN/OUT pairing, §5).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::webhook::error_chain;
use super::{employee_for, log_type_by_device, Attempt, Deliver};
use crate::store::outbox::{OutboxEvent, ParkKind};

/// The HRMS (v14, v15, v16) method path (frappe-hr.md §2).
pub const HRMS_METHOD: &str =
    "hrms.hr.doctype.employee_checkin.employee_checkin.add_log_based_on_employee_field";
/// The ERPNext v12/v13 method path (frappe-hr.md §2).
pub const ERPNEXT_METHOD: &str =
    "erpnext.hr.doctype.employee_checkin.employee_checkin.add_log_based_on_employee_field";

/// How a check-in's `log_type` is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogTypeMode {
    /// From the terminal's punch state ([`super::log_type_by_device`]).
    #[default]
    Device,
    /// Always empty: Frappe pairs the logs itself (Shift Type "Alternating entries as IN and OUT").
    None,
    /// By the attendance punch-state policy (not available yet: refused when the sink is added).
    Policy,
}

/// A Frappe sink's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrappeConfig {
    /// Site URL, e.g. `https://erp.example.com`.
    pub url: String,
    /// API key of the integration user (needs create on Employee Checkin, frappe-hr.md §1).
    pub api_key: String,
    /// API secret.
    pub api_secret: String,
    /// The Employee field the employee value is matched on (default `attendance_device_id`).
    #[serde(default = "default_field")]
    pub employee_field: String,
    /// How `log_type` is chosen.
    #[serde(default)]
    pub log_type: LogTypeMode,
    /// The site's IANA zone; when set, the punch's instant is converted to it. When not set, the terminal's local
    /// time is sent unchanged (right when terminals and the site share a zone).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Latitude to send (only when HR Settings require geolocation, frappe-hr.md §1.6).
    #[serde(default)]
    pub latitude: Option<f64>,
    /// Longitude to send.
    #[serde(default)]
    pub longitude: Option<f64>,
    /// The method path found by the probe.
    #[serde(default)]
    pub method: Option<String>,
    /// Seconds to wait for an answer (default 30).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Shift Types whose `last_sync_of_checkin` punchd advances to the completeness watermark of the devices that
    /// feed them (frappe-hr.md §5; [`super::frappe_shift`]). Empty: punchd leaves the field alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shift_types: Vec<super::frappe_shift::ShiftTypeFeed>,
    /// Per device (SN), a fixed `log_type` rule that overrides `log_type` for its punches: a terminal at the
    /// entrance sends every punch as IN, one at the exit as OUT (the sync tool's `punch_direction`, frappe-hr.md
    /// §6).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub device_log_types: std::collections::BTreeMap<String, DeviceLogType>,
}

/// A per-device `log_type` rule ([`FrappeConfig::device_log_types`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceLogType {
    /// Every punch of the device is `IN`.
    In,
    /// Every punch of the device is `OUT`.
    Out,
    /// From the punch state ([`super::log_type_by_device`]): 0/4 IN, 1/5 OUT, others none.
    Device,
    /// Always empty (Frappe pairs the logs itself).
    None,
}

impl DeviceLogType {
    /// Parse `in`, `out`, `device` or `none` (case-insensitive).
    pub fn parse(s: &str) -> Option<DeviceLogType> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "in" => DeviceLogType::In,
            "out" => DeviceLogType::Out,
            "device" => DeviceLogType::Device,
            "none" => DeviceLogType::None,
            _ => return None,
        })
    }
}

/// Parse `SN=in|out|device|none` (the CLI's `--device-log-type`).
///
/// Errors: no `=`, an empty SN, or an unknown rule.
pub fn parse_device_log_type(s: &str) -> Result<(String, DeviceLogType), String> {
    let (sn, rule) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not SN=in|out|device|none"))?;
    if sn.trim().is_empty() {
        return Err(format!("{s:?} has no SN"));
    }
    let rule = DeviceLogType::parse(rule)
        .ok_or_else(|| format!("{rule:?} is not in, out, device or none"))?;
    Ok((sn.trim().to_owned(), rule))
}

fn default_field() -> String {
    "attendance_device_id".into()
}

fn default_timeout() -> u64 {
    30
}

pub(crate) fn client(config: &FrappeConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(config.timeout_secs.max(1)))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("punchd/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

fn method_url(config: &FrappeConfig, method: &str) -> String {
    format!("{}/api/method/{method}", config.url.trim_end_matches('/'))
}

pub(crate) fn authorization(config: &FrappeConfig) -> String {
    format!("token {}:{}", config.api_key, config.api_secret)
}

/// The messages of a Frappe v1 error body: `_server_messages` is a JSON string holding a list of JSON strings,
/// each an object with `message` (frappe-hr.md §4). HTML line breaks become spaces.
pub fn server_messages(body: &serde_json::Value) -> Vec<String> {
    let Some(text) = body.get("_server_messages").and_then(|v| v.as_str()) else {
        return Vec::new();
    };
    let list: Vec<String> = serde_json::from_str(text).unwrap_or_default();
    list.iter()
        .map(|item| {
            serde_json::from_str::<serde_json::Value>(item)
                .ok()
                .and_then(|m| m.get("message").and_then(|v| v.as_str()).map(str::to_owned))
                .unwrap_or_else(|| item.clone())
        })
        .map(|m| m.replace("<Br>", " ").replace("<br>", " "))
        .collect()
}

/// Find the method path on the site: HRMS first, ERPNext v12/v13 second.
///
/// Errors: the site refuses the key (401) or the user's permission (403), cannot be reached, or has neither path.
pub async fn probe(config: &FrappeConfig) -> anyhow::Result<String> {
    if config.log_type == LogTypeMode::Policy {
        anyhow::bail!(
            "--log-type policy needs the attendance punch-state policies, which are not available yet; \
             use device (from the terminal's punch state) or none"
        );
    }
    if let Some(zone) = &config.time_zone {
        crate::config::parse_time_zone(zone)?;
    }
    let http = client(config)?;
    let mut tried = Vec::new();
    for method in [HRMS_METHOD, ERPNEXT_METHOD] {
        let answer = http
            .post(method_url(config, method))
            .header(reqwest::header::AUTHORIZATION, authorization(config))
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&serde_json::json!({}))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("could not reach {}: {}", config.url, error_chain(&e)))?;
        let status = answer.status().as_u16();
        match status {
            401 => anyhow::bail!(
                "{} refused the API key and secret (HTTP 401): check them (User → API Access → Generate Keys)",
                config.url
            ),
            403 => anyhow::bail!(
                "the API user has no permission (HTTP 403): it needs a role with create on Employee Checkin \
                 (HR User)"
            ),
            200 | 417 => return Ok(method.to_owned()),
            other => tried.push(format!("{method}: HTTP {other}")),
        }
    }
    anyhow::bail!(
        "{} has no Employee Checkin method ({}): is it a Frappe HR (HRMS) or ERPNext v12/v13 site?",
        config.url,
        tried.join("; ")
    )
}

/// The site's time zone as Frappe keeps it (`System Settings`, field `time_zone`, an IANA name), read through the
/// REST resource route of frappe-hr.md §4 (`GET /api/resource/System Settings/System Settings`; a single doctype's
/// document is named after it). `None` when the API user may not read it (403), the site does not answer, or the
/// value is not a known zone: the caller then keeps the terminal's local time and says so.
pub async fn read_site_time_zone(config: &FrappeConfig) -> Option<String> {
    let http = client(config).ok()?;
    let mut url = reqwest::Url::parse(config.url.trim_end_matches('/')).ok()?;
    url.path_segments_mut().ok()?.pop_if_empty().extend([
        "api",
        "resource",
        "System Settings",
        "System Settings",
    ]);
    let answer = http
        .get(url)
        .header(reqwest::header::AUTHORIZATION, authorization(config))
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .ok()?;
    if answer.status().as_u16() != 200 {
        return None;
    }
    let body: serde_json::Value = answer.json().await.ok()?;
    let zone = body.pointer("/data/time_zone")?.as_str()?;
    crate::config::parse_time_zone(zone).ok()?;
    Some(zone.to_owned())
}

/// The Frappe deliverer.
pub struct Frappe {
    config: FrappeConfig,
    method: String,
    zone: Option<chrono_tz::Tz>,
    http: reqwest::Client,
}

impl Frappe {
    /// Build from stored settings (the probe already ran when the sink was added).
    ///
    /// Errors: no method path stored, an unknown zone, or the HTTP client cannot be built.
    pub fn new(config: FrappeConfig) -> anyhow::Result<Frappe> {
        let method = config.method.clone().ok_or_else(|| {
            anyhow::anyhow!("no method path: add the sink again so punchd probes the site")
        })?;
        let zone = config
            .time_zone
            .as_deref()
            .map(crate::config::parse_time_zone)
            .transpose()?;
        Ok(Frappe {
            http: client(&config)?,
            config,
            method,
            zone,
        })
    }

    /// The request body for one event (frappe-hr.md §2 parameters).
    pub fn body(&self, event: &OutboxEvent) -> serde_json::Value {
        let p = &event.punch;
        let local = match self.zone {
            Some(zone) => p.punched_at_utc.with_timezone(&zone).naive_local(),
            None => p.punched_at,
        };
        let log_type = match self.config.device_log_types.get(p.device_sn.as_str()) {
            Some(DeviceLogType::In) => Some("IN"),
            Some(DeviceLogType::Out) => Some("OUT"),
            Some(DeviceLogType::Device) => log_type_by_device(p.punch_state),
            Some(DeviceLogType::None) => None,
            None => match self.config.log_type {
                LogTypeMode::Device => log_type_by_device(p.punch_state),
                LogTypeMode::None | LogTypeMode::Policy => None,
            },
        };
        let mut body = serde_json::json!({
            "employee_field_value": employee_for(event),
            "employee_fieldname": self.config.employee_field,
            "timestamp": local.format("%Y-%m-%d %H:%M:%S").to_string(),
            "device_id": event.device_alias.clone().unwrap_or_else(|| p.device_sn.as_str().to_owned()),
            "log_type": log_type,
        });
        if let (Some(lat), Some(long), Some(map)) = (
            self.config.latitude,
            self.config.longitude,
            body.as_object_mut(),
        ) {
            map.insert("latitude".into(), lat.into());
            map.insert("longitude".into(), long.into());
        }
        body
    }

    async fn deliver_one(&self, event: &OutboxEvent) -> Attempt {
        let body = self.body(event);
        let answer = self
            .http
            .post(method_url(&self.config, &self.method))
            .header(reqwest::header::AUTHORIZATION, authorization(&self.config))
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await;
        let response = match answer {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Attempt::Retry(format!(
                    "Frappe did not answer within {} s",
                    self.config.timeout_secs
                ))
            }
            Err(e) => {
                return Attempt::Retry(format!("could not reach Frappe: {}", error_chain(&e)))
            }
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let messages = server_messages(&json);
        let message = messages
            .first()
            .cloned()
            .unwrap_or_else(|| text.chars().take(200).collect());
        let exc_type = json.get("exc_type").and_then(|v| v.as_str()).unwrap_or("");
        match status {
            200 => Attempt::Delivered(
                json.pointer("/message/name")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            ),
            417 => {
                let lower = message.to_lowercase();
                let value = &body["employee_field_value"];
                if lower.contains("already has a log with the same timestamp") {
                    Attempt::Delivered(None)
                } else if lower.contains("no employee found") {
                    Attempt::Park(
                        ParkKind::Unmapped,
                        format!(
                            "unmapped in Frappe: no Employee has {} = {value} (Frappe: {message})",
                            self.config.employee_field
                        ),
                    )
                } else if exc_type == "InactiveEmployeeStatusError" || lower.contains("inactive employee") {
                    Attempt::Park(
                        ParkKind::Unmapped,
                        format!("the employee with {} = {value} is Inactive in Frappe (Frappe: {message})", self.config.employee_field),
                    )
                } else {
                    Attempt::Park(ParkKind::Rejected, format!("Frappe refused the check-in: {message}"))
                }
            }
            401 => Attempt::Pause(format!(
                "Frappe refused the API key and secret (HTTP 401: {message}); update them and resume the sink"
            )),
            403 => Attempt::Pause(format!(
                "the API user lacks permission (HTTP 403: {message}); it needs create on Employee Checkin (HR User)"
            )),
            404 => Attempt::Pause(format!(
                "Frappe has no method {} any more (HTTP 404); add the sink again so it is probed",
                self.method
            )),
            _ => Attempt::Retry(format!("Frappe answered HTTP {status}: {message}")),
        }
    }
}

#[async_trait::async_trait]
impl Deliver for Frappe {
    fn ordered(&self) -> bool {
        true
    }

    fn batch_size(&self) -> usize {
        1
    }

    async fn deliver(&self, events: &[OutboxEvent]) -> Vec<Attempt> {
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            out.push(self.deliver_one(event).await);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeviceSn, Pin, Punch, Source};
    use chrono::{NaiveDate, TimeZone, Utc};

    fn config(
        time_zone: Option<&str>,
        log_type: LogTypeMode,
        lat_long: Option<(f64, f64)>,
    ) -> FrappeConfig {
        FrappeConfig {
            url: "http://127.0.0.1:1".into(),
            api_key: "K".into(),
            api_secret: "S".into(),
            employee_field: "attendance_device_id".into(),
            log_type,
            time_zone: time_zone.map(str::to_owned),
            latitude: lat_long.map(|l| l.0),
            longitude: lat_long.map(|l| l.1),
            method: Some(HRMS_METHOD.into()),
            timeout_secs: 5,
            shift_types: Vec::new(),
            device_log_types: Default::default(),
        }
    }

    /// A punch at 08:00 in Shanghai (00:00 UTC), state 1 (check-out).
    fn event(alias: Option<&str>) -> OutboxEvent {
        let at = NaiveDate::from_ymd_opt(2024, 5, 1)
            .and_then(|d| d.and_hms_opt(8, 0, 0))
            .expect("time");
        let utc = Utc
            .with_ymd_and_hms(2024, 5, 1, 0, 0, 0)
            .single()
            .expect("utc");
        OutboxEvent {
            id: 1,
            created_at: utc,
            attempts: 0,
            next_attempt_at: utc,
            punch: Punch {
                id: 1,
                device_sn: DeviceSn::parse("FRAPPEUNIT1").expect("sn"),
                pin: Pin("0042".into()),
                punched_at: at,
                time_zone: "Asia/Shanghai".into(),
                punched_at_utc: utc,
                received_at: utc,
                punch_state: Some(1),
                verify_mode: Some(1),
                work_code: None,
                extra: Vec::new(),
                source: Source::Push,
                journal_id: 1,
            },
            device_alias: alias.map(str::to_owned),
            employee: None,
            correction_id: None,
            device_site: None,
        }
    }

    #[test]
    fn body_follows_frappe_hr_md_section_2() {
        let plain = Frappe::new(config(None, LogTypeMode::Device, None)).expect("sink");
        assert_eq!(
            plain.body(&event(None)),
            serde_json::json!({
                "employee_field_value": "0042",
                "employee_fieldname": "attendance_device_id",
                "timestamp": "2024-05-01 08:00:00",
                "device_id": "FRAPPEUNIT1",
                "log_type": "OUT",
            }),
            "terminal local time unchanged, SN as device_id, PIN with its leading zeros"
        );
        let kolkata = Frappe::new(config(
            Some("Asia/Kolkata"),
            LogTypeMode::None,
            Some((12.5, 77.25)),
        ))
        .expect("sink");
        assert_eq!(
            kolkata.body(&event(Some("Gate 1"))),
            serde_json::json!({
                "employee_field_value": "0042",
                "employee_fieldname": "attendance_device_id",
                "timestamp": "2024-05-01 05:30:00",
                "device_id": "Gate 1",
                "log_type": null,
                "latitude": 12.5,
                "longitude": 77.25,
            }),
            "converted to the site's zone, alias as device_id, no log type, lat/long when configured"
        );
    }

    #[test]
    fn a_device_rule_overrides_the_log_type_mode_for_that_device_only() {
        let mut settings = config(None, LogTypeMode::Device, None);
        settings
            .device_log_types
            .insert("FRAPPEUNIT1".into(), DeviceLogType::In);
        settings
            .device_log_types
            .insert("OTHER".into(), DeviceLogType::None);
        let sink = Frappe::new(settings.clone()).expect("sink");
        // The punch is a check-out (state 1) on FRAPPEUNIT1: the device's rule says IN.
        assert_eq!(sink.body(&event(None))["log_type"], "IN");
        settings.device_log_types.remove("FRAPPEUNIT1");
        let sink = Frappe::new(settings).expect("sink");
        assert_eq!(
            sink.body(&event(None))["log_type"],
            "OUT",
            "no rule: the mode"
        );
        assert_eq!(
            parse_device_log_type("GATE-1=out"),
            Ok(("GATE-1".to_owned(), DeviceLogType::Out))
        );
        assert!(parse_device_log_type("GATE-1").is_err());
        assert!(parse_device_log_type("GATE-1=sideways").is_err());
        assert!(parse_device_log_type("=in").is_err());
    }

    #[test]
    fn server_messages_are_decoded_from_the_nested_json_strings() {
        let body = serde_json::json!({
            "exc_type": "ValidationError",
            "_server_messages": "[\"{\\\"message\\\": \\\"This employee already has a log with the same timestamp.<Br><a href='/app/employee-checkin/EMP-CKIN-05-2024-000001'>EMP-CKIN-05-2024-000001</a>\\\", \\\"title\\\": \\\"Message\\\", \\\"indicator\\\": \\\"red\\\", \\\"raise_exception\\\": 1}\"]"
        });
        let messages = server_messages(&body);
        assert_eq!(messages.len(), 1);
        assert!(
            messages[0].starts_with("This employee already has a log with the same timestamp. <a")
        );
        assert!(server_messages(&serde_json::json!({"exc": "[\"Traceback\"]"})).is_empty());
    }
}
