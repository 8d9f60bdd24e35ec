//! The JSON webhook source (issue 9): a device or app holding a source token POSTs events to
//! `/api/v1/sources/webhook`; they go through the one ingest path with source `webhook`.
//!
//! The body (at most [`MAX_BODY_BYTES`]):
//!
//! ```json
//! {"device_id": "GATE-01", "events": [
//!   {"user_id": "1001", "time": "2026-11-02T08:01:00+03:00", "type": "IN", "verify": 15}
//! ]}
//! ```
//!
//! - `device_id` (string, required): the device SN the punches are stored under.
//! - `events` (array, required, at most [`MAX_EVENTS`]); each event:
//!   - `user_id` (string, required): the PIN, kept as sent (leading zeros matter, so a number is refused);
//!   - `time` (string, required): RFC 3339 with an offset (converted to the wall time in the source's zone), or a
//!     naive `YYYY-MM-DD[T ]HH:MM[:SS]` read as wall time in the source's zone;
//!   - `type` (optional): `IN`/`OUT`/`BREAK_OUT`/`BREAK_IN`/`OT_IN`/`OT_OUT` (any case, `-` or `_` or space) or
//!     the punch state number;
//!   - `verify` (optional integer): the verify mode code;
//!   - `work_code` (optional string).
//!
//! An event with another field, a wrong type or an unreadable value is refused with its index and reason; the
//! other events of the request are stored.
//!
//! The answer comes only after the events are durable: `{"ok": true, "inserted": n, "duplicates": m, "errors":
//! []}` (200) when every event was good, the same with `"ok": false` and the reasons (422) when some were not. A
//! body that is not such an object is refused whole (400) and nothing is stored; a wrong token gets 401.

use chrono::{DateTime, NaiveDateTime};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;

use crate::domain::DeviceSn;
use crate::ingest::PunchRecord;

/// Largest webhook body accepted (bytes); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most events in one request.
pub const MAX_EVENTS: usize = 10_000;

/// Why one event was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EventError {
    /// 0-based index in `events`.
    pub index: usize,
    /// Why, in plain words.
    pub reason: String,
}

/// A request's events, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    /// The device the events belong to.
    pub device_sn: DeviceSn,
    /// The good events as punch records (`line_no` = index + 1).
    pub punches: Vec<PunchRecord>,
    /// The refused events.
    pub errors: Vec<EventError>,
}

const EVENT_FIELDS: &[&str] = &["user_id", "time", "type", "verify", "work_code"];

/// Read a webhook body. `zone` is the source's zone (for naive times and for converting times with an offset).
///
/// Errors: the body is not JSON, not an object with a string `device_id` and an array `events`, has other
/// top-level fields, or has too many events; the message says which.
pub fn read_events(body: &[u8], zone: Tz) -> Result<Events, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(top) = value else {
        return Err("the body must be a JSON object {\"device_id\": …, \"events\": […]}".into());
    };
    if let Some(other) = top.keys().find(|k| *k != "device_id" && *k != "events") {
        return Err(format!(
            "unknown field {other:?} (the body has device_id and events only)"
        ));
    }
    let device_sn = match top.get("device_id") {
        Some(Value::String(s)) => {
            DeviceSn::parse(s).map_err(|e| format!("device_id {s:?} is not a device id: {e}"))?
        }
        Some(other) => return Err(format!("device_id must be a string, not {}", kind(other))),
        None => return Err("device_id is missing".into()),
    };
    let events = match top.get("events") {
        Some(Value::Array(a)) => a,
        Some(other) => return Err(format!("events must be an array, not {}", kind(other))),
        None => return Err("events is missing".into()),
    };
    if events.len() > MAX_EVENTS {
        return Err(format!(
            "{} events in one request; send at most {MAX_EVENTS}",
            events.len()
        ));
    }
    let mut punches = Vec::with_capacity(events.len());
    let mut errors = Vec::new();
    for (index, event) in events.iter().enumerate() {
        match read_event(event, zone) {
            Ok(mut p) => {
                p.line_no = index + 1;
                punches.push(p);
            }
            Err(reason) => errors.push(EventError { index, reason }),
        }
    }
    Ok(Events {
        device_sn,
        punches,
        errors,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn read_event(event: &Value, zone: Tz) -> Result<PunchRecord, String> {
    let Value::Object(e) = event else {
        return Err(format!("an event must be an object, not {}", kind(event)));
    };
    if let Some(other) = e.keys().find(|k| !EVENT_FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field {other:?} (an event has {})",
            EVENT_FIELDS.join(", ")
        ));
    }
    let pin = match e.get("user_id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::String(_)) => return Err("user_id is empty".into()),
        Some(other) => {
            return Err(format!(
                "user_id must be a string (PINs keep leading zeros), not {}",
                kind(other)
            ))
        }
        None => return Err("user_id is missing".into()),
    };
    if pin.chars().count() > 64 || pin.chars().any(char::is_control) {
        return Err(format!(
            "user_id {pin:?} is too long or has control characters"
        ));
    }
    let punched_at = match e.get("time") {
        Some(Value::String(s)) => read_time(s, zone)?,
        Some(other) => return Err(format!("time must be a string, not {}", kind(other))),
        None => return Err("time is missing".into()),
    };
    let punch_state = match e.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(read_type(s)?),
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| format!("type {n} is not a punch state code (0–65535)"))?,
        ),
        Some(other) => {
            return Err(format!(
                "type must be a string or a number, not {}",
                kind(other)
            ))
        }
    };
    let verify_mode = match e.get("verify") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| format!("verify {n} is not a verify mode code (0–65535)"))?,
        ),
        Some(other) => return Err(format!("verify must be a number, not {}", kind(other))),
    };
    let work_code = match e.get("work_code") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("work_code must be a string, not {}", kind(other))),
    };
    Ok(PunchRecord {
        line_no: 0,
        pin,
        punched_at,
        punch_state,
        verify_mode,
        work_code,
        extra: Vec::new(),
    })
}

/// RFC 3339 with an offset (to wall time in `zone`) or a naive wall time.
fn read_time(s: &str, zone: Tz) -> Result<NaiveDateTime, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&zone).naive_local());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.with_nanosecond(0).unwrap_or(t));
        }
    }
    Err(format!(
        "time {s:?} is not RFC 3339 (2026-11-02T08:01:00+03:00) or a wall time (2026-11-02T08:01:00)"
    ))
}

use chrono::Timelike;

/// `IN`, `OUT`, `BREAK_OUT`, `BREAK_IN`, `OT_IN`/`OVERTIME_IN`, `OT_OUT`/`OVERTIME_OUT` or a number.
fn read_type(s: &str) -> Result<u16, String> {
    let key: String = s
        .trim()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    Ok(match key.as_str() {
        "in" | "checkin" => 0,
        "out" | "checkout" => 1,
        "breakout" => 2,
        "breakin" => 3,
        "otin" | "overtimein" => 4,
        "otout" | "overtimeout" => 5,
        _ => s.trim().parse::<u16>().map_err(|_| {
            format!("type {s:?} is not IN, OUT, BREAK_OUT, BREAK_IN, OT_IN, OT_OUT or a number")
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn istanbul() -> Tz {
        "Europe/Istanbul".parse().unwrap()
    }

    #[test]
    fn the_seed_shape_is_read_in_the_source_zone() {
        let body = br#"{"device_id": "GATE-01", "events": [
            {"user_id": "1001", "time": "2026-11-02T08:01:00+03:00", "type": "IN"},
            {"user_id": "0042", "time": "2026-11-02T05:02:00Z", "type": "out", "verify": 15},
            {"user_id": "7", "time": "2026-11-02 08:03:00"}
        ]}"#;
        let e = read_events(body, istanbul()).unwrap();
        assert_eq!(e.device_sn.as_str(), "GATE-01");
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        let got: Vec<(String, String, Option<u16>)> = e
            .punches
            .iter()
            .map(|p| (p.pin.clone(), p.punched_at.to_string(), p.punch_state))
            .collect();
        assert_eq!(
            got,
            [
                ("1001".into(), "2026-11-02 08:01:00".into(), Some(0)),
                ("0042".into(), "2026-11-02 08:02:00".into(), Some(1)),
                ("7".into(), "2026-11-02 08:03:00".into(), None),
            ]
        );
    }

    #[test]
    fn bad_events_are_named_and_the_rest_kept() {
        let body = br#"{"device_id": "GATE-01", "events": [
            {"user_id": 1001, "time": "2026-11-02T08:01:00"},
            {"user_id": "1", "time": "tomorrow"},
            {"user_id": "2", "time": "2026-11-02T08:01:00", "colour": "red"},
            {"user_id": "3", "time": "2026-11-02T08:01:00", "type": "LUNCH"},
            "nope",
            {"user_id": "4", "time": "2026-11-02T08:01:00"}
        ]}"#;
        let e = read_events(body, istanbul()).unwrap();
        assert_eq!(e.punches.len(), 1);
        assert_eq!(e.punches[0].line_no, 6);
        let indexes: Vec<usize> = e.errors.iter().map(|x| x.index).collect();
        assert_eq!(indexes, [0, 1, 2, 3, 4]);
        assert!(e.errors[0].reason.contains("user_id must be a string"));
        assert!(e.errors[2].reason.contains("unknown field \"colour\""));
    }

    #[test]
    fn a_bad_body_is_refused_whole() {
        for (body, want) in [
            (&b"{not json"[..], "not JSON"),
            (b"[]", "JSON object"),
            (br#"{"events": []}"#, "device_id is missing"),
            (
                br#"{"device_id": 5, "events": []}"#,
                "device_id must be a string",
            ),
            (
                br#"{"device_id": "A", "events": {}}"#,
                "events must be an array",
            ),
            (
                br#"{"device_id": "A", "events": [], "x": 1}"#,
                "unknown field",
            ),
        ] {
            let err = read_events(body, istanbul()).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
