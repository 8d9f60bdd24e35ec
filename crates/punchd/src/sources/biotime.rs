//! The ZKBio Time (BioTime) reader (issue 9; the API is in shared/protocol/biotime.md): punches read from a
//! BioTime server's `/iclock/api/transactions/` become punches with source `biotime`, through the one ingest path.
//!
//! **Reading without gaps.** BioTime filters transactions by punch time only, and a terminal that was offline
//! uploads old punches late, so a punch-time window misses them. Transaction ids are assigned on arrival, so "new"
//! means "an id not seen before". Each run asks for the newest uploads first (`ordering=-upload_time`) and walks
//! pages until a page ends more than [`OVERLAP`] before the newest upload time of the previous run (the overlap
//! window catches rows committed late by a slow database transaction). Rows are new when their id is above the
//! highest id seen, or within [`RECENT_ID_SPAN`] below it and not among the ids seen there ([`ReadState`]). A
//! server that ignores the sort (upload times rising within one page) is read in full, every run.
//! Pages are numbered by punchd (`page=N`) on the configured URL: the server's `next` links (which point at an
//! internal host on real servers) are only used to know whether there is a next page. A row seen twice in a run
//! (rows shift between pages while new punches arrive) is taken once; the store's punch identity drops any punch
//! already held, whatever its id.
//!
//! **Restores.** When the highest id the server shows is below the highest id seen before, the BioTime database was
//! restored (or replaced): the run says so as the source's last error (a warning in the log), forgets its state and
//! reads everything again; punches already held are not stored twice.
//!
//! **Durability.** Each page with new rows is journaled raw (with its row errors) and stored as one batch per
//! terminal; the cursor ([`ReadState`] as JSON) advances only after every page of the run is durable. A failed run
//! (HTTP errors after retries, HTML where JSON was expected, a rejected login) changes no cursor: the next run reads
//! the same rows again.
//!
//! **Login.** `token` (`POST /api-token-auth/`, header `Token …`), `jwt` (`POST /jwt-api-token-auth/`, header
//! `JWT …`, renewed [`JWT_RENEW_BEFORE`] before the token's `exp`) or `basic`. A 401 on a data request logs in again
//! once. A rejected password (400/401 at login) pauses the source for [`LOGIN_PAUSE`] so the account is not
//! locked. 502/503/504/429 are retried up to [`RETRIES`] times with a growing pause.
//!
//! **Fields.** `emp_code` → PIN, `punch_time` (server wall time, `YYYY-MM-DD HH:MM:SS`) → terminal local time in
//! the source's zone, `punch_state` → punch state, `verify_type` → verify mode, `work_code`, `terminal_sn` →
//! device (a row without one is stored under `biotime:<source name>`). The BioTime id and upload time are kept in
//! the punch's `extra` as `biotime_id=…`, `upload_time=…`.
//!
//! **Terminals.** Every terminal BioTime lists (`/iclock/api/terminals/`, every page, 100 per page) is registered
//! in the device registry on each run, before the transactions: transport `biotime` (where it comes from),
//! approved (BioTime's terminal, not ours to approve), `alias` → alias, `area.area_name` (or `area_name`) → site;
//! a later run updates alias and site. It has no address, so the pull scheduler never pulls it, and commands to it
//! are refused ("read through BioTime"). A terminal already registered as one of our own push or pull devices is
//! left as it is.

pub mod employees;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::App;
use crate::domain::{DeviceSn, Source, Transport};
use crate::ingest::{Delivery, PunchRecord};
use crate::store::sources::{SourceInfo, SourceKind, SourceRun};
use crate::store::{Batch, DevicePatch, LineIssue, RawEntry, SeenUpdate, StoreError};

/// Ids this far below the highest id seen are still checked one by one (a lower id can become visible after a
/// higher one when the server's database transactions commit out of order).
pub const RECENT_ID_SPAN: i64 = 2000;
/// How far before the previous run's newest upload time a run keeps reading.
pub const OVERLAP: chrono::Duration = chrono::Duration::minutes(10);
/// Pause after a rejected login.
pub const LOGIN_PAUSE: Duration = Duration::from_secs(60);
/// A JWT is renewed this long before it expires.
pub const JWT_RENEW_BEFORE: Duration = Duration::from_secs(120);
/// Retries of a request answered 429/502/503/504 or not answered.
pub const RETRIES: u32 = 4;
/// Rows per page asked for.
pub const PAGE_SIZE: u32 = 200;
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// How to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// `POST /jwt-api-token-auth/`, header `JWT <token>`.
    Jwt,
    /// `POST /api-token-auth/`, header `Token <token>`.
    Token,
    /// HTTP Basic on every request.
    Basic,
}

/// A BioTime source's settings (kept in the source's `settings`; the password is its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Base URL, e.g. `http://biotime.local:8081`.
    pub url: String,
    /// API user.
    pub username: String,
    /// How to log in.
    pub auth: Auth,
    /// Seconds between runs under `punchd serve`.
    pub interval_secs: u64,
    /// Only punches at or after this server wall time (`start_time`), if set.
    pub since: Option<String>,
    /// Rows per page.
    pub page_size: u32,
    /// Also read BioTime's employees into punchd's employees on every run ([`employees`]).
    #[serde(default)]
    pub employees: bool,
}

/// What earlier runs saw (the source's cursor, as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadState {
    /// Highest transaction id seen.
    pub max_id: Option<i64>,
    /// Ids above `max_id - RECENT_ID_SPAN` already taken.
    pub recent_ids: BTreeSet<i64>,
    /// Newest upload time seen (server wall time, as BioTime formats it).
    pub max_upload_time: Option<String>,
}

impl ReadState {
    fn is_new(&self, id: i64) -> bool {
        match self.max_id {
            None => true,
            Some(max) => id > max || (id > max - RECENT_ID_SPAN && !self.recent_ids.contains(&id)),
        }
    }

    fn advance(&mut self, ids: &HashSet<i64>, newest_upload: Option<&str>) {
        if let Some(&top) = ids.iter().max() {
            self.max_id = Some(self.max_id.map_or(top, |m| m.max(top)));
        }
        if let Some(max) = self.max_id {
            let floor = max - RECENT_ID_SPAN;
            self.recent_ids.extend(ids.iter().copied());
            self.recent_ids.retain(|i| *i > floor);
        }
        if let Some(u) = newest_upload {
            if self.max_upload_time.as_deref().is_none_or(|m| u > m) {
                self.max_upload_time = Some(u.to_owned());
            }
        }
    }
}

/// A login kept between runs.
#[derive(Debug, Default)]
pub struct Session {
    header: Option<String>,
    expires: Option<Instant>,
    paused_until: Option<Instant>,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// Pages read.
    pub pages: u32,
    /// New rows taken (not seen before by id).
    pub rows: u64,
    /// Punches newly stored.
    pub stored: u64,
    /// Punches already held.
    pub duplicate: u64,
    /// Rows refused (missing emp_code, unreadable time).
    pub rejected: u64,
    /// Terminals the server lists.
    pub terminals: usize,
    /// Employees the server lists (0 unless the source reads employees).
    pub employees: usize,
    /// Employees created or changed in punchd by this run.
    pub employees_changed: usize,
    /// A warning (restore detected), if any.
    pub warning: Option<String>,
}

fn settings_of(source: &SourceInfo) -> Result<Settings, String> {
    serde_json::from_value(Value::Object(source.settings.clone()))
        .map_err(|e| format!("the source's settings are unreadable: {e}"))
}

/// Run one read of a BioTime source: log in if needed, list terminals, read new transactions, store them, advance
/// the cursor. Records the run (counts, error) on the source either way.
///
/// Errors: the run failed (the message is in plain words and is the source's last error); nothing after the last
/// durable page was acknowledged and the cursor did not move.
pub async fn run_once(
    app: &App,
    source: &SourceInfo,
    session: &mut Session,
) -> Result<RunReport, String> {
    let mut report = RunReport::default();
    let result = read(app, source, session, &mut report).await;
    let (error, cursor) = match &result {
        Ok(state) => (
            report.warning.clone(),
            Some(serde_json::to_string(state).unwrap_or_default()),
        ),
        Err(e) => (Some(e.clone()), None),
    };
    if let Some(w) = &report.warning {
        tracing::warn!(source = %source.name, "{w}");
    }
    let run = SourceRun {
        at: Utc::now(),
        error,
        n_stored: report.stored,
        n_duplicate: report.duplicate,
        n_rejected: report.rejected,
        cursor,
    };
    if let Err(e) = app.store.record_source_run(source.id, run).await {
        tracing::warn!(error = %e, source = %source.name, "recording the BioTime run failed");
    }
    result.map(|_| report)
}

async fn read(
    app: &App,
    source: &SourceInfo,
    session: &mut Session,
    report: &mut RunReport,
) -> Result<ReadState, String> {
    let settings = settings_of(source)?;
    if let Some(until) = session.paused_until {
        if Instant::now() < until {
            return Err(format!(
                "paused for {} s after the BioTime server rejected the password (so the account is not locked)",
                until.saturating_duration_since(Instant::now()).as_secs()
            ));
        }
    }
    let password = app
        .store
        .source_secret(source.id)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let mut api = Api {
        client,
        base: settings.url.trim_end_matches('/').to_owned(),
        settings: &settings,
        password,
        session,
    };
    let zone: Tz = source
        .time_zone
        .as_deref()
        .and_then(|z| z.parse().ok())
        .unwrap_or_else(|| app.registry.default_time_zone());
    let previous: ReadState = match &source.cursor {
        Some(c) if !c.is_empty() => serde_json::from_str(c).unwrap_or_default(),
        _ => ReadState::default(),
    };

    // Terminals: counted (and checked to answer JSON) before the transactions.
    let started = Utc::now();
    let rows = read_terminals(&mut api).await?;
    report.terminals = rows.len();
    let ours = register_terminals(app, &rows).await?;
    if settings.employees {
        let (listed, changed) = employees::sync(app, &mut api, &source.name).await?;
        report.employees = listed;
        report.employees_changed = changed;
    }

    let mut state = previous.clone();
    let mut outcome = walk(app, &mut api, source, &settings, zone, &state, report).await?;
    if let (Some(seen), Some(server_max)) = (previous.max_id, outcome.max_id_on_server) {
        if server_max < seen {
            report.warning = Some(format!(
                "BioTime ids went back (the highest id is now {server_max}, punchd had seen {seen}): the BioTime \
                 database was restored or replaced. Reading everything again; punches already held are not stored \
                 twice."
            ));
            state = ReadState::default();
            outcome = walk(app, &mut api, source, &settings, zone, &state, report).await?;
        }
    }
    state.advance(&outcome.taken, outcome.newest_upload.as_deref());
    // Every transaction BioTime held when this read started is now durable here: that instant is the
    // watermark of its terminals (attendance::watermark reads `last_seen`, as for a complete pull). What a
    // terminal has not uploaded to BioTime yet cannot be seen from here.
    let seen: Vec<SeenUpdate> = ours
        .into_iter()
        .map(|sn| SeenUpdate {
            sn,
            at: started,
            ip: None,
        })
        .collect();
    if !seen.is_empty() {
        app.store
            .record_seen(seen)
            .await
            .map_err(|e| format!("recording the BioTime terminals' watermark failed: {e}"))?;
    }
    Ok(state)
}

/// Terminals are read [`TERMINAL_PAGE_SIZE`] per page, page after page while the server announces a `next` page.
pub const TERMINAL_PAGE_SIZE: u32 = 100;
/// At most this many terminal pages are read per run (100,000 terminals): a server that ignores `page` and always
/// announces a next page cannot keep a run going forever.
pub const MAX_TERMINAL_PAGES: u32 = 1_000;

/// Every terminal BioTime lists (see [`read_all_pages`]).
///
/// Errors: an HTTP or JSON error on any page (the run fails; nothing of it is registered).
async fn read_terminals(api: &mut Api<'_>) -> Result<Vec<Value>, String> {
    read_all_pages(api, "/iclock/api/terminals/", "sn").await
}

/// Every row of a BioTime list, all pages, [`TERMINAL_PAGE_SIZE`] per page (numbered by punchd on the configured
/// URL, as transactions are; the server's `next` link only says whether there is one), at most
/// [`MAX_TERMINAL_PAGES`] pages. Rows are told apart by `key` (`sn`, `emp_code`): a row whose key was seen
/// before is left out, and a page that brings no new key ends the listing (a server that ignores `page`).
///
/// Errors: an HTTP or JSON error on any page, in plain words.
async fn read_all_pages(api: &mut Api<'_>, path: &str, key: &str) -> Result<Vec<Value>, String> {
    let mut all: Vec<Value> = Vec::new();
    let mut keys: HashSet<String> = HashSet::new();
    for page in 1..=MAX_TERMINAL_PAGES {
        let value = api
            .get(&format!(
                "{path}?page_size={TERMINAL_PAGE_SIZE}&page={page}"
            ))
            .await?;
        let (has_next, rows) = envelope(&value, path)?;
        let mut new = 0usize;
        for row in rows {
            let k = text(row.get(key)).unwrap_or_default();
            if k.is_empty() || keys.insert(k) {
                new += 1;
                all.push(row.clone());
            }
        }
        if !has_next || new == 0 {
            break;
        }
    }
    Ok(all)
}

struct Walk {
    taken: HashSet<i64>,
    newest_upload: Option<String>,
    max_id_on_server: Option<i64>,
}

async fn walk(
    app: &App,
    api: &mut Api<'_>,
    source: &SourceInfo,
    settings: &Settings,
    zone: Tz,
    state: &ReadState,
    report: &mut RunReport,
) -> Result<Walk, String> {
    let stop_before = state.max_upload_time.as_deref().and_then(|t| {
        NaiveDateTime::parse_from_str(t, TIME_FORMAT)
            .ok()
            .map(|t| (t - OVERLAP).format(TIME_FORMAT).to_string())
    });
    let mut walk = Walk {
        taken: HashSet::new(),
        newest_upload: None,
        max_id_on_server: None,
    };
    let mut page = 1u32;
    loop {
        let mut query = format!(
            "/iclock/api/transactions/?ordering=-upload_time&page_size={}&page={page}",
            settings.page_size.max(1)
        );
        if let Some(since) = &settings.since {
            query.push_str("&start_time=");
            query.push_str(&since.replace(' ', "%20"));
        }
        let (status, body) = api.get_raw(&query).await?;
        if status == 404 && page > 1 {
            // "Invalid page": the data shrank while paging; what was read is complete up to here.
            break;
        }
        let value = json_of(status, &body, &query)?;
        let (has_next, rows) = envelope(&value, &query)?;
        report.pages += 1;
        let mut uploads: Vec<String> = Vec::new();
        let mut records: Vec<(String, PunchRecord)> = Vec::new();
        let mut issues = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let id = row.get("id").and_then(number).ok_or_else(|| {
                format!("{query}: row {i} has no numeric id (the page is not read as complete)")
            })?;
            walk.max_id_on_server = Some(walk.max_id_on_server.map_or(id, |m| m.max(id)));
            let upload = row
                .get("upload_time")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if !upload.is_empty() {
                uploads.push(upload.clone());
                if walk
                    .newest_upload
                    .as_deref()
                    .is_none_or(|n| upload.as_str() > n)
                {
                    walk.newest_upload = Some(upload.clone());
                }
            }
            if !state.is_new(id) || !walk.taken.insert(id) {
                continue;
            }
            report.rows += 1;
            match transaction(row, id, &upload, zone) {
                Ok((terminal, record)) => {
                    let device = if terminal.is_empty() {
                        format!("biotime:{}", source.name)
                    } else {
                        terminal
                    };
                    records.push((device, record));
                }
                Err(reason) => {
                    report.rejected += 1;
                    issues.push(LineIssue {
                        line_no: i + 1,
                        line: row.to_string().chars().take(512).collect(),
                        reason,
                    });
                }
            }
        }
        if !records.is_empty() || !issues.is_empty() {
            store_page(app, source, zone, &query, &body, records, issues, report).await?;
        }
        let unsorted = uploads.windows(2).any(|w| w[1] > w[0]);
        let oldest = uploads.iter().min();
        let past_window = match (&stop_before, oldest) {
            (Some(stop), Some(oldest)) => oldest.as_str() < stop.as_str(),
            _ => false,
        };
        if !has_next || (past_window && !unsorted) {
            break;
        }
        page += 1;
    }
    Ok(walk)
}

#[allow(clippy::too_many_arguments)]
async fn store_page(
    app: &App,
    source: &SourceInfo,
    zone: Tz,
    query: &str,
    body: &[u8],
    records: Vec<(String, PunchRecord)>,
    issues: Vec<LineIssue>,
    report: &mut RunReport,
) -> Result<(), String> {
    let mut by_device: Vec<(String, Vec<PunchRecord>)> = Vec::new();
    for (device, record) in records {
        match by_device.iter_mut().find(|(d, _)| *d == device) {
            Some((_, v)) => v.push(record),
            None => by_device.push((device, vec![record])),
        }
    }
    let raw = |device_sn: Option<DeviceSn>, body: Vec<u8>, errors: Vec<LineIssue>| RawEntry {
        received_at: Utc::now(),
        device_sn,
        source: Source::Biotime,
        kind: "biotime:transactions".to_owned(),
        request: format!("GET {query} (source {})", source.name),
        remote_addr: None,
        body,
        errors,
    };
    if by_device.is_empty() {
        app.ingest
            .journal(raw(None, body.to_vec(), issues))
            .await
            .map_err(|e| format!("storing failed: {e}"))?;
        return Ok(());
    }
    let mut body = Some(body.to_vec());
    let mut issues = Some(issues);
    for (device, punches) in by_device {
        let sn = DeviceSn::parse(&device)
            .map_err(|e| format!("terminal_sn {device:?} is not a serial number: {e}"))?;
        let outcome = app
            .ingest
            .ingest(Delivery {
                device_sn: sn.clone(),
                time_zone: zone,
                source: Source::Biotime,
                punches,
                batch: Batch::new(raw(
                    Some(sn),
                    body.take().unwrap_or_default(),
                    issues.take().unwrap_or_default(),
                )),
            })
            .await
            .map_err(|e| {
                format!("storing failed (nothing acknowledged, read again next run): {e}")
            })?;
        report.stored += outcome.n_stored as u64;
        report.duplicate += outcome.n_duplicate as u64;
    }
    Ok(())
}

/// Register or update BioTime's terminals as `biotime` devices (see the module docs). A row without a usable
/// `sn` is skipped with a warning.
///
/// Errors: the store failed (the run fails; nothing was acknowledged).
/// Register or update the terminals BioTime lists; returns the SNs of those that are BioTime devices here (not
/// our own push or pull terminals with the same SN).
async fn register_terminals(app: &App, rows: &[Value]) -> Result<Vec<DeviceSn>, String> {
    let now = Utc::now();
    let mut ours = Vec::new();
    for row in rows {
        let Some(sn) = text(row.get("sn")).and_then(|s| DeviceSn::parse(&s).ok()) else {
            tracing::warn!(row = %row, "BioTime terminal without a usable serial number skipped");
            continue;
        };
        let alias = text(row.get("alias"));
        let site = text(row.get("area").and_then(|a| a.get("area_name")))
            .or_else(|| text(row.get("area_name")));
        let device = match app.store.get_device(&sn).await {
            Ok(d) if d.transport != Transport::Biotime => continue,
            Ok(d) if d.alias == alias && d.site == site => {
                ours.push(sn);
                continue;
            }
            Ok(_) => app
                .store
                .update_device(
                    &sn,
                    DevicePatch {
                        alias: Some(alias),
                        site: Some(site),
                        ..DevicePatch::default()
                    },
                )
                .await
                .map_err(|e| format!("updating BioTime terminal {sn} failed: {e}"))?,
            Err(StoreError::NotFound(_)) => {
                let mut device = crate::devices::registry::new_pull_device(
                    sn.clone(),
                    Transport::Biotime,
                    String::new(),
                    0,
                    0,
                    false,
                    now,
                );
                device.address = None;
                device.comm_key = None;
                device.pull_interval_secs = None;
                device.alias = alias;
                device.site = site;
                app.store
                    .create_device(device)
                    .await
                    .map_err(|e| format!("registering BioTime terminal {sn} failed: {e}"))?
            }
            Err(e) => return Err(format!("reading device {sn} failed: {e}")),
        };
        app.registry.update(device);
        ours.push(sn);
    }
    Ok(ours)
}

fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One transaction row as (terminal SN, punch).
fn transaction(
    row: &Value,
    id: i64,
    upload: &str,
    _zone: Tz,
) -> Result<(String, PunchRecord), String> {
    let pin = text(row.get("emp_code")).ok_or("missing emp_code")?;
    let time = row
        .get("punch_time")
        .and_then(Value::as_str)
        .ok_or("missing punch_time")?;
    let punched_at = NaiveDateTime::parse_from_str(time.trim(), TIME_FORMAT)
        .or_else(|_| NaiveDateTime::parse_from_str(time.trim(), "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| format!("punch_time {time:?} is not YYYY-MM-DD HH:MM:SS"))?;
    let punch_state = row
        .get("punch_state")
        .and_then(number)
        .and_then(|n| u16::try_from(n).ok());
    let verify_mode = row
        .get("verify_type")
        .and_then(number)
        .and_then(|n| u16::try_from(n).ok());
    let terminal = text(row.get("terminal_sn")).unwrap_or_default();
    Ok((
        terminal,
        PunchRecord {
            line_no: 0,
            pin,
            punched_at,
            punch_state,
            verify_mode,
            work_code: text(row.get("work_code")),
            extra: vec![format!("biotime_id={id}"), format!("upload_time={upload}")],
        },
    ))
}

/// The paging envelope: (has a next page, rows).
fn envelope<'a>(v: &'a Value, what: &str) -> Result<(bool, &'a Vec<Value>), String> {
    let rows = v.get("data").and_then(Value::as_array).ok_or_else(|| {
        format!(
            "{what}: the answer has no `data` array: {}",
            snippet(v.to_string().as_bytes())
        )
    })?;
    let has_next = matches!(v.get("next"), Some(Value::String(s)) if !s.is_empty());
    Ok((has_next, rows))
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(120)]).replace(['\n', '\r'], " ")
}

fn json_of(status: u16, body: &[u8], what: &str) -> Result<Value, String> {
    if !(200..300).contains(&status) {
        return Err(format!("{what}: HTTP {status}: {}", snippet(body)));
    }
    serde_json::from_slice(body).map_err(|_| {
        format!(
            "{what}: expected JSON, got {} (wrong URL, or a proxy's page?)",
            if body.trim_ascii_start().starts_with(b"<") {
                format!("an HTML page: {}", snippet(body))
            } else {
                snippet(body)
            }
        )
    })
}

struct Api<'a> {
    client: reqwest::Client,
    base: String,
    settings: &'a Settings,
    password: String,
    session: &'a mut Session,
}

impl Api<'_> {
    async fn login(&mut self) -> Result<(), String> {
        let path = match self.settings.auth {
            Auth::Basic => {
                let pair = format!("{}:{}", self.settings.username, self.password);
                self.session.header = Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ));
                return Ok(());
            }
            Auth::Token => "/api-token-auth/",
            Auth::Jwt => "/jwt-api-token-auth/",
        };
        let url = format!("{}{path}", self.base);
        let body =
            serde_json::json!({"username": self.settings.username, "password": self.password});
        let response = self
            .client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("logging in at {url}: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("logging in: {e}"))?;
        if status == 400 || status == 401 || status == 403 {
            self.session.paused_until = Some(Instant::now() + LOGIN_PAUSE);
            self.session.header = None;
            return Err(format!(
                "the BioTime server rejected user {:?} (HTTP {status}: {}); pausing {} s so the account is not locked",
                self.settings.username,
                snippet(&bytes),
                LOGIN_PAUSE.as_secs()
            ));
        }
        let value = json_of(status, &bytes, path)?;
        let token = value
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{path}: no token in the answer"))?;
        let scheme = if self.settings.auth == Auth::Jwt {
            "JWT"
        } else {
            "Token"
        };
        self.session.header = Some(format!("{scheme} {token}"));
        self.session.expires = if self.settings.auth == Auth::Jwt {
            jwt_expiry(token)
        } else {
            None
        };
        self.session.paused_until = None;
        Ok(())
    }

    async fn ensure_login(&mut self) -> Result<(), String> {
        let renew = match (&self.session.header, self.session.expires) {
            (None, _) => true,
            (Some(_), Some(exp)) => Instant::now() + JWT_RENEW_BEFORE >= exp,
            (Some(_), None) => false,
        };
        if renew {
            self.login().await?;
        }
        Ok(())
    }

    async fn get(&mut self, path_and_query: &str) -> Result<Value, String> {
        let (status, body) = self.get_raw(path_and_query).await?;
        json_of(status, &body, path_and_query)
    }

    /// GET with login, one re-login on 401, and retries of 429/502/503/504 and transport errors.
    async fn get_raw(&mut self, path_and_query: &str) -> Result<(u16, Vec<u8>), String> {
        self.ensure_login().await?;
        let url = format!("{}{path_and_query}", self.base);
        let mut relogged = false;
        let mut attempt = 0u32;
        loop {
            let header = self.session.header.clone().unwrap_or_default();
            let sent = self
                .client
                .get(&url)
                .header("Authorization", header)
                .header("Accept", "application/json")
                .send()
                .await;
            let (status, body) = match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    match r.bytes().await {
                        Ok(b) => (status, b.to_vec()),
                        Err(e) => (0, e.to_string().into_bytes()),
                    }
                }
                Err(e) => (0, e.to_string().into_bytes()),
            };
            match status {
                401 if !relogged => {
                    relogged = true;
                    self.session.header = None;
                    self.login().await?;
                }
                0 | 429 | 502 | 503 | 504 if attempt < RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt * attempt)))
                        .await;
                }
                0 => return Err(format!("{url}: {}", String::from_utf8_lossy(&body))),
                _ => return Ok((status, body)),
            }
        }
    }
}

/// When a JWT expires, from its `exp` claim (unix seconds), as an `Instant`.
fn jwt_expiry(token: &str) -> Option<Instant> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let exp = serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_i64()?;
    let left = exp - Utc::now().timestamp();
    Some(Instant::now() + Duration::from_secs(left.max(0) as u64))
}

/// Read every enabled BioTime source at its interval until `shutdown` resolves (`punchd serve`). With several
/// instances on one PostgreSQL, a source is read by the instance holding its lease (`biotime:<name>`,
/// [`crate::leases`]) only; a read whose lease is lost midway is dropped before its next page is stored.
///
/// A request to read now ([`SourceInfo::run_requested_at`], set by `POST /api/v1/sources/{name}/run` or the
/// sources page) newer than the start of this instance's last read of the source starts a read at the next tick
/// (sources are listed from the store every second, so any instance may take the request), inside the interval
/// and through the [`LOGIN_PAUSE`] after a rejected password (the pause is lifted: someone fixed the password or
/// wants to see the error again).
pub async fn run_scheduler(app: App, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut held: HashMap<i64, crate::leases::Held> = HashMap::new();
    let mut sessions: HashMap<i64, Session> = HashMap::new();
    let mut next_run: HashMap<i64, Instant> = HashMap::new();
    // When this instance last started reading each source (UTC, to compare with requests to read now).
    let mut started: HashMap<i64, chrono::DateTime<Utc>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        let sources = match app.store.list_sources().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "BioTime scheduler: listing sources failed");
                continue;
            }
        };
        for source in sources
            .iter()
            .filter(|s| s.kind == SourceKind::Biotime && s.enabled)
        {
            let now = Instant::now();
            let requested = source
                .run_requested_at
                .is_some_and(|at| started.get(&source.id).is_none_or(|s| at > *s));
            if !requested && next_run.get(&source.id).is_some_and(|t| now < *t) {
                continue;
            }
            if !held
                .get(&source.id)
                .is_some_and(crate::leases::Held::is_held)
            {
                held.remove(&source.id);
                match app
                    .leases
                    .try_hold(app.store.clone(), &format!("biotime:{}", source.name))
                    .await
                {
                    Ok(Some(lease)) => {
                        held.insert(source.id, lease);
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(source = %source.name, error = %e, "taking the BioTime source's lease failed");
                        continue;
                    }
                }
            }
            let Some(lease) = held.get(&source.id) else {
                continue;
            };
            let interval = settings_of(source)
                .map(|s| s.interval_secs)
                .unwrap_or(60)
                .max(1);
            next_run.insert(source.id, now + Duration::from_secs(interval));
            started.insert(source.id, Utc::now());
            let session = sessions.entry(source.id).or_default();
            if requested {
                tracing::info!(source = %source.name, "BioTime read asked for; reading now");
                session.paused_until = None;
            }
            let outcome = tokio::select! {
                outcome = run_once(&app, source, session) => outcome,
                () = lease.lost() => Err("this instance lost the source's lease midway; another instance reads it now".into()),
            };
            match outcome {
                Ok(r) => {
                    tracing::info!(source = %source.name, pages = r.pages, stored = r.stored, duplicate = r.duplicate, "BioTime read")
                }
                Err(e) => tracing::warn!(source = %source.name, error = %e, "BioTime read failed"),
            }
        }
    }
    for (_, lease) in held {
        lease.release().await;
    }
}

/// Ask for the BioTime source `name` to be read now (the API's `POST /api/v1/sources/{name}/run` and the sources
/// page's "Read now"): the instance holding its lease reads it within a second or two, inside its interval and
/// through a pause after a rejected password ([`run_scheduler`]). Answers the source with its request time.
///
/// Errors: `NotFound` for an unknown name; `Conflict` for a source that is not a BioTime reader (webhooks and
/// imports are sent to punchd, there is nothing to read) or that is switched off.
pub async fn request_read(
    store: &dyn crate::store::Store,
    name: &str,
    now: chrono::DateTime<Utc>,
) -> Result<SourceInfo, StoreError> {
    let source = store.get_source(name).await?;
    if source.kind != SourceKind::Biotime {
        return Err(StoreError::Conflict(format!(
            "source {name:?} is a {} source: punchd reads only BioTime sources, the others send to it",
            source.kind.as_str()
        )));
    }
    if !source.enabled {
        return Err(StoreError::Conflict(format!(
            "source {name:?} is switched off; switch it on to read it"
        )));
    }
    store.request_source_run(name, now).await
}

/// Parse an interval: `60`, `60s`, `5m`, `1h`.
pub fn parse_interval(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (n, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("interval {s:?} is not like 60s, 5m or 1h"))?;
    Ok(match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("interval {s:?} is not like 60s, 5m or 1h")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_new_above_the_highest_or_unseen_in_the_recent_span() {
        let mut s = ReadState::default();
        assert!(s.is_new(5));
        s.advance(&HashSet::from([5, 7]), Some("2026-11-02 08:00:00"));
        assert_eq!(s.max_id, Some(7));
        assert!(!s.is_new(7) && !s.is_new(5));
        assert!(s.is_new(6), "a lower id committed late is still taken");
        assert!(s.is_new(8));
        s.advance(&HashSet::from([5000]), Some("2026-11-01 08:00:00"));
        assert!(!s.is_new(6), "far below the highest id: old");
        assert_eq!(s.recent_ids, BTreeSet::from([5000]));
        assert_eq!(s.max_upload_time.as_deref(), Some("2026-11-02 08:00:00"));
    }

    #[test]
    fn intervals_and_jwt_expiry() {
        assert_eq!(parse_interval("60s"), Ok(60));
        assert_eq!(parse_interval("5m"), Ok(300));
        assert_eq!(parse_interval("90"), Ok(90));
        assert!(parse_interval("soon").is_err());
        let exp = Utc::now().timestamp() + 600;
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"exp\": {exp}}}"));
        let left = jwt_expiry(&format!("h.{payload}.sig")).unwrap() - Instant::now();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
    }

    #[test]
    fn rows_become_punches_and_bad_rows_are_named() {
        let row = serde_json::json!({"id": 9, "emp_code": "0042", "punch_time": "2026-11-02 08:01:00",
            "punch_state": "1", "verify_type": 15, "terminal_sn": "T1", "upload_time": "2026-11-02 09:00:00"});
        let (t, p) = transaction(&row, 9, "2026-11-02 09:00:00", chrono_tz::UTC).unwrap();
        assert_eq!(
            (t.as_str(), p.pin.as_str(), p.punch_state, p.verify_mode),
            ("T1", "0042", Some(1), Some(15))
        );
        let missing = serde_json::json!({"id": 9, "punch_time": "2026-11-02 08:01:00"});
        assert_eq!(
            transaction(&missing, 9, "", chrono_tz::UTC).unwrap_err(),
            "missing emp_code"
        );
        let html = json_of(200, b"<!DOCTYPE HTML><html>", "/x").unwrap_err();
        assert!(html.contains("expected JSON, got an HTML page"), "{html}");
    }
}
