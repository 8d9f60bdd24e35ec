//! Attendance persistence: sites, employees, PIN mappings, shifts and roster, punch-state policies, corrections,
//! exception reviews, sign-offs and the audit log ([`AttendanceStore`]).
//!
//! The store keeps facts; `crate::attendance` computes days and months from them and from the raw punches, which
//! attendance never changes. Every change HR makes is written together with its [`AuditRecord`] in one
//! transaction, so the audit log cannot miss a change that happened.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Result;
use crate::domain::{DeviceSn, Punch};

/// A place with one IANA zone, a day-change time, weekly offs and holidays. Devices belong to a site by their
/// `site` field (the site's name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Site {
    /// Name (what devices carry in `site`).
    pub name: String,
    /// IANA time zone of the site's days, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// When a working day without a shift starts, site local `HH:MM` (default `00:00`).
    #[serde(default = "default_day_change")]
    pub day_change: String,
    /// Weekly offs, ISO weekday numbers: Monday 1 … Sunday 7.
    #[serde(default)]
    pub weekly_offs: Vec<u8>,
    /// Holidays (site local dates).
    #[serde(default)]
    pub holidays: Vec<Holiday>,
}

fn default_day_change() -> String {
    "00:00".into()
}

/// A holiday of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Holiday {
    /// The site local date.
    pub day: NaiveDate,
    /// What it is called.
    #[serde(default)]
    pub name: String,
}

/// An employee's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmployeeStatus {
    /// Working.
    Active,
    /// Not working for now (leave of absence); punches are exceptions.
    Inactive,
    /// Left the company on `left_on`; later punches are exceptions.
    Left,
}

impl EmployeeStatus {
    /// Stored form: `active`, `inactive`, `left`.
    pub fn as_str(self) -> &'static str {
        match self {
            EmployeeStatus::Active => "active",
            EmployeeStatus::Inactive => "inactive",
            EmployeeStatus::Left => "left",
        }
    }

    /// From the stored form (case-insensitive).
    pub fn parse(s: &str) -> Option<EmployeeStatus> {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" => Some(EmployeeStatus::Active),
            "inactive" => Some(EmployeeStatus::Inactive),
            "left" => Some(EmployeeStatus::Left),
            _ => None,
        }
    }
}

/// A person in HR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Employee {
    /// Employee code; a PIN equal to it maps itself (on the employee's site).
    pub code: String,
    /// Full name.
    pub name: String,
    /// active, inactive or left.
    pub status: EmployeeStatus,
    /// First working day (site local date), if known.
    #[serde(default)]
    pub joined_on: Option<NaiveDate>,
    /// Last working day (status left).
    #[serde(default)]
    pub left_on: Option<NaiveDate>,
    /// Site name.
    #[serde(default)]
    pub site: Option<String>,
    /// Department.
    #[serde(default)]
    pub department: Option<String>,
    /// Shift worked when the roster says nothing else.
    #[serde(default)]
    pub default_shift: Option<String>,
}

/// What a PIN mapping applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every device of a site.
    Site,
    /// One device.
    Device,
}

impl Scope {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Site => "site",
            Scope::Device => "device",
        }
    }
    /// From the stored form.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "site" => Some(Scope::Site),
            "device" => Some(Scope::Device),
            _ => None,
        }
    }
}

/// (site or device, PIN) → employee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PinMapping {
    /// Site or device.
    pub scope: Scope,
    /// The site name or the device SN.
    pub scope_key: String,
    /// The PIN as the device sends it.
    pub pin: String,
    /// The employee.
    pub employee_code: String,
}

/// A shift as stored: its name and its definition (JSON of `attendance::rules::Shift`; the store does not read it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShiftDef {
    /// Name (`Day`, `Night`), unique.
    pub name: String,
    /// The definition.
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
}

/// One roster line: on `day`, `employee_code` works `shift` (`None` = a day off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RosterEntry {
    /// The employee.
    pub employee_code: String,
    /// The working day (site local date).
    pub day: NaiveDate,
    /// The shift, or none for a day off.
    pub shift: Option<String>,
}

/// One page of a month's roster ([`AttendanceStore::list_roster_page`]): the lines on it and how many lines
/// match in all (for "page n of m").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RosterPage {
    /// The lines of the page, by employee code (byte order) then day.
    pub lines: Vec<RosterEntry>,
    /// How many lines match the range and the employee filter, on every page.
    pub total: u64,
}

/// The punch-state policy of a device or a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicySetting {
    /// Site or device.
    pub scope: Scope,
    /// Site name or device SN.
    pub scope_key: String,
    /// `device`, `first-last`, `alternating` or `schedule`.
    pub policy: String,
    /// Punches of the same person within this many seconds count once (double taps); default 60.
    pub double_tap_secs: u32,
}

/// A kind of correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CorrectionKind {
    /// A punch HR adds (a forgotten check-out).
    AddPunch,
    /// A stored punch that must not count (the raw punch stays).
    VoidPunch,
    /// The day's status set by hand.
    SetStatus,
    /// Overtime kept as computed, or up to `minutes`.
    ApproveOvertime,
    /// Overtime cut to `minutes` (0 = none).
    CutOvertime,
}

impl CorrectionKind {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            CorrectionKind::AddPunch => "add-punch",
            CorrectionKind::VoidPunch => "void-punch",
            CorrectionKind::SetStatus => "set-status",
            CorrectionKind::ApproveOvertime => "approve-overtime",
            CorrectionKind::CutOvertime => "cut-overtime",
        }
    }
    /// From the stored form.
    pub fn parse(s: &str) -> Option<CorrectionKind> {
        Some(match s {
            "add-punch" => CorrectionKind::AddPunch,
            "void-punch" => CorrectionKind::VoidPunch,
            "set-status" => CorrectionKind::SetStatus,
            "approve-overtime" => CorrectionKind::ApproveOvertime,
            "cut-overtime" => CorrectionKind::CutOvertime,
            _ => return None,
        })
    }
}

/// A correction to one employee-day, with author and reason. Raw punches never change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Correction {
    /// Id (0 before it is stored).
    #[serde(default)]
    pub id: i64,
    /// The employee.
    pub employee_code: String,
    /// The working day (site local date).
    pub day: NaiveDate,
    /// What it does.
    pub kind: CorrectionKind,
    /// add-punch: the punch's site local wall time.
    #[serde(default)]
    pub punched_at: Option<NaiveDateTime>,
    /// add-punch: the punch state (0 check-in, 1 check-out, …).
    #[serde(default)]
    pub punch_state: Option<u16>,
    /// void-punch: the stored punch's id.
    #[serde(default)]
    pub punch_id: Option<i64>,
    /// set-status: the status (`present`, `absent`, `half-day`, `leave`, …).
    #[serde(default)]
    pub status: Option<String>,
    /// approve/cut overtime: minutes kept.
    #[serde(default)]
    pub minutes: Option<u32>,
    /// Who.
    #[serde(default)]
    pub author: String,
    /// Why.
    pub reason: String,
    /// When it was recorded (UTC).
    #[serde(default = "Utc::now")]
    pub created_at: DateTime<Utc>,
}

/// How a correction was revoked: when, by whom and why (the author and reason of its `correction.revoke` audit
/// record, kept on the correction too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Revocation {
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// Who (`ui:<name>`, `token:<name>`, a CLI user); empty for a correction revoked before punchd kept it.
    pub author: String,
    /// Why; empty for a correction revoked before punchd kept it.
    pub reason: String,
}

/// A stored correction with its revocation, if it was revoked ([`AttendanceStore::corrections_of`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CorrectionRecord {
    /// The correction as recorded.
    pub correction: Correction,
    /// Set once it is revoked (it then no longer counts).
    pub revoked: Option<Revocation>,
}

/// Where an exception is in its review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReviewState {
    /// Nobody looked at it yet (no review row).
    Open,
    /// Someone explained it.
    Explained,
    /// Accepted.
    Approved,
    /// Refused.
    Rejected,
}

impl ReviewState {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Open => "open",
            ReviewState::Explained => "explained",
            ReviewState::Approved => "approved",
            ReviewState::Rejected => "rejected",
        }
    }
    /// From the stored form.
    pub fn parse(s: &str) -> Option<ReviewState> {
        Some(match s {
            "open" => ReviewState::Open,
            "explained" => ReviewState::Explained,
            "approved" => ReviewState::Approved,
            "rejected" => ReviewState::Rejected,
            _ => return None,
        })
    }
}

/// The review of one exception (employee, day, kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExceptionReview {
    /// The employee.
    pub employee_code: String,
    /// The working day.
    pub day: NaiveDate,
    /// The exception kind (`missing-out`, `late`, …).
    pub kind: String,
    /// explained, approved or rejected.
    pub state: ReviewState,
    /// Who.
    pub author: String,
    /// Why.
    pub note: String,
    /// When (UTC).
    pub updated_at: DateTime<Utc>,
}

/// A signed-off month of a site: the frozen results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignOff {
    /// The site.
    pub site: String,
    /// `YYYY-MM`.
    pub month: String,
    /// When (UTC).
    pub signed_at: DateTime<Utc>,
    /// Who.
    pub author: String,
    /// Signed off with incomplete days (`--force`).
    pub forced: bool,
    /// The highest punch id held at sign-off: punches with a higher id arrived after it.
    pub max_punch_id: i64,
    /// The frozen month as computed at sign-off (JSON of `attendance::Month`).
    #[schema(value_type = Object)]
    pub snapshot: serde_json::Value,
}

/// What the audit log records about a change (written in the change's transaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Who (a person, or `token:<name>` for the API).
    pub author: String,
    /// What: `employee.import`, `mapping.add`, `correction.add`, `signoff`, `reopen`, …
    pub action: String,
    /// About what: an employee code, `site/month`, …
    pub subject: String,
    /// Details (the reason, the new values).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl AuditRecord {
    /// The reason the detail carries (`detail.reason`, as `correction.add` and `correction.revoke` write it),
    /// empty when it names none.
    pub fn reason(&self) -> &str {
        self.detail
            .get("reason")
            .and_then(|r| r.as_str())
            .unwrap_or_default()
    }
}

/// A stored audit log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Id (increasing).
    pub id: i64,
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// A stored punch as the attendance month reads it: the fields the rules and the unmapped queue use, nothing
/// else (see [`Punch`] for the whole record, journal and terminal local time included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendancePunch {
    /// Store id (increases with insertion order).
    pub id: i64,
    /// The terminal's SN.
    pub device_sn: DeviceSn,
    /// The user id on the terminal (shared: a month holds each PIN about a hundred times).
    pub pin: std::sync::Arc<str>,
    /// The instant, UTC (the stored `punched_at_utc`, whole seconds).
    pub punched_at_utc: DateTime<Utc>,
    /// Punch state code as sent (0 check-in, 1 check-out, …); `None` when the terminal sent none.
    pub punch_state: Option<u16>,
}

impl From<&Punch> for AttendancePunch {
    fn from(p: &Punch) -> AttendancePunch {
        AttendancePunch {
            id: p.id,
            device_sn: p.device_sn.clone(),
            pin: p.pin.0.as_str().into(),
            punched_at_utc: p.punched_at_utc,
            punch_state: p.punch_state,
        }
    }
}

/// Punches per (device, PIN): the raw material of the unmapped queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PinSeen {
    /// The device.
    #[schema(value_type = String)]
    pub device_sn: DeviceSn,
    /// The PIN.
    pub pin: String,
    /// How many punches.
    pub count: u64,
    /// First punch (UTC).
    pub first_seen: DateTime<Utc>,
    /// Last punch (UTC).
    pub last_seen: DateTime<Utc>,
}

/// Attendance persistence. Writes are durable on `Ok`; a refused write changes nothing.
#[async_trait::async_trait]
pub trait AttendanceStore: Send + Sync {
    /// Create or replace a site (its holidays are replaced by `site.holidays`).
    async fn put_site(&self, site: Site, audit: AuditRecord) -> Result<()>;
    /// All sites, by name, with holidays.
    async fn list_sites(&self) -> Result<Vec<Site>>;

    /// Create or replace employees, all in one transaction.
    async fn put_employees(&self, employees: Vec<Employee>, audit: AuditRecord) -> Result<()>;
    /// All employees, by code.
    async fn list_employees(&self) -> Result<Vec<Employee>>;

    /// Add a mapping. `Conflict` when the same (scope, key, PIN) is mapped already, or when a site mapping and a
    /// device mapping of a device on that site would give the PIN two employees on one device. `NotFound` for
    /// an unknown employee.
    async fn add_mapping(&self, mapping: PinMapping, audit: AuditRecord) -> Result<()>;
    /// Remove a mapping; `NotFound` when there is none.
    async fn remove_mapping(
        &self,
        scope: Scope,
        scope_key: &str,
        pin: &str,
        audit: AuditRecord,
    ) -> Result<()>;
    /// All mappings.
    async fn list_mappings(&self) -> Result<Vec<PinMapping>>;
    /// Punch counts per (device, PIN) over every stored punch.
    async fn pins_seen(&self) -> Result<Vec<PinSeen>>;
    /// [`AttendanceStore::pins_seen`] over the punches with `after_id < id <= up_to_id` only, by device and PIN
    /// (the web UI's [`crate::attendance::seen_cache::SeenCache`] reads what arrived since it last looked).
    async fn pins_seen_between(&self, after_id: i64, up_to_id: i64) -> Result<Vec<PinSeen>>;
    /// The saved per-(device, PIN) summary ([`AttendanceStore::save_pin_summary`]): the highest punch id it counts
    /// and its pairs by device and PIN (byte order), as [`AttendanceStore::pins_seen_between`]`(0, up_to_id)`
    /// answered when it was saved. `None` when none was ever saved.
    async fn load_pin_summary(&self) -> Result<Option<(i64, Vec<PinSeen>)>>;
    /// Save the per-(device, PIN) summary as of punch id `up_to_id`, in one transaction (derived data kept so a
    /// start need not read every punch: [`crate::attendance::seen_cache::SeenCache`]).
    ///
    /// `changed_after: None`: `pairs` is the whole summary; it replaces what is saved. `Some(after_id)`: `pairs`
    /// are the pairs with punches in `after_id < id <= up_to_id` (each with its totals up to `up_to_id`); each
    /// overwrites its saved row, the others are kept. That is only right when the saved summary counts up to an
    /// id in `after_id ..= up_to_id` (then no pair left out had punches since), so otherwise nothing is written
    /// and the answer is `Ok(false)`: another instance saved meanwhile, or none was saved; save whole instead.
    /// `Ok(true)` when written.
    async fn save_pin_summary(
        &self,
        changed_after: Option<i64>,
        up_to_id: i64,
        pairs: Vec<PinSeen>,
    ) -> Result<bool>;

    /// Add a shift; `Conflict` if the name exists and `replace` is false.
    async fn put_shift(&self, shift: ShiftDef, replace: bool, audit: AuditRecord) -> Result<()>;
    /// All shifts, by name.
    async fn list_shifts(&self) -> Result<Vec<ShiftDef>>;
    /// Write roster lines (replacing those of the same employee and day), all or nothing; `NotFound` names the
    /// first missing employee or shift.
    async fn put_roster(&self, entries: Vec<RosterEntry>, audit: AuditRecord) -> Result<()>;
    /// Roster lines with `from <= day < to`.
    async fn list_roster(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<RosterEntry>>;
    /// One page of the roster lines with `from <= day < to` whose employee code contains `employee` (every line
    /// when empty; case-sensitive, as typed): ordered by employee code (byte order) then day, `offset` lines
    /// skipped, at most `limit` returned, and the number of matching lines. Paged and counted in the store, so a
    /// month of 10,000 employees (300,000 lines) is never read whole for one page.
    async fn list_roster_page(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        employee: &str,
        limit: usize,
        offset: usize,
    ) -> Result<RosterPage>;

    /// Set a device's or site's punch-state policy.
    async fn put_policy(&self, policy: PolicySetting, audit: AuditRecord) -> Result<()>;
    /// All policies.
    async fn list_policies(&self) -> Result<Vec<PolicySetting>>;

    /// Record a correction; returns it with its id. `NotFound` for an unknown employee or voided punch.
    async fn add_correction(
        &self,
        correction: Correction,
        audit: AuditRecord,
    ) -> Result<Correction>;
    /// Corrections with `from <= day < to`, by id (revoked ones left out).
    async fn list_corrections(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Correction>>;
    /// The corrections of `employee_code` with `from <= day < to`, revoked ones included (with their revocation), by
    /// id.
    async fn corrections_of(
        &self,
        employee_code: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<CorrectionRecord>>;
    /// One correction by id, and when it was revoked (UTC), if it was. `NotFound` for an unknown id.
    async fn get_correction(&self, id: i64) -> Result<(Correction, Option<DateTime<Utc>>)>;
    /// Revoke a correction at `at` (UTC): it stops counting (the month, delivery) but stays stored, with the audit
    /// record; the record's author and the `reason` string of its detail are kept on the correction too
    /// ([`AttendanceStore::corrections_of`] shows them). `NotFound` for an unknown id, `Conflict` when it is
    /// revoked already.
    async fn revoke_correction(&self, id: i64, at: DateTime<Utc>, audit: AuditRecord)
        -> Result<()>;

    /// Move an exception to a review state.
    async fn put_review(&self, review: ExceptionReview, audit: AuditRecord) -> Result<()>;
    /// Reviews with `from <= day < to`.
    async fn list_reviews(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<ExceptionReview>>;

    /// Sign off a month; `Conflict` if it is signed off already.
    async fn sign_off(&self, signoff: SignOff, audit: AuditRecord) -> Result<()>;
    /// The sign-off of a site's month, if any.
    async fn get_signoff(&self, site: &str, month: &str) -> Result<Option<SignOff>>;
    /// Reopen a signed-off month (the audit record carries the reason); `NotFound` if it is not signed off.
    async fn reopen(&self, site: &str, month: &str, audit: AuditRecord) -> Result<()>;
    /// The audit log, newest first, at most `limit` entries (0 = all).
    async fn list_audit(&self, limit: usize) -> Result<Vec<AuditEntry>>;

    /// What the attendance month reads of the punches of these devices with `from <= punched_at_utc < to`, by
    /// id: [`punches_between`](AttendanceStore::punches_between) without the columns attendance does not use (a
    /// site's month is about a million rows; issue 7's "month from the store in under 2 s").
    async fn attendance_punches_between(
        &self,
        devices: Vec<DeviceSn>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AttendancePunch>>;
    /// Punches of these devices with `from <= punched_at_utc < to`, by id.
    async fn punches_between(
        &self,
        devices: Vec<DeviceSn>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Punch>>;
    /// How many punches these devices hold per hour of terminal local time, for `from <= punched_at < to`
    /// (terminal local times, as sent): (the hour's start, count), by hour, hours without punches left out, the
    /// devices summed. Counted in the store from the punch identity index (the dashboard's chart), not loaded.
    async fn punches_per_hour(
        &self,
        devices: Vec<DeviceSn>,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Result<Vec<(NaiveDateTime, u64)>>;
    /// The highest punch id stored (0 when none).
    async fn max_punch_id(&self) -> Result<i64>;
    /// Punches of these devices with `after_id < id <= up_to_id`, by id, at most `limit` (the month cache reads
    /// what arrived since it last looked; fewer than `limit` means there are no more). No devices: none.
    async fn punches_after_id(
        &self,
        devices: Vec<DeviceSn>,
        after_id: i64,
        up_to_id: i64,
        limit: usize,
    ) -> Result<Vec<Punch>>;
}
