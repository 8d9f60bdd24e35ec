//! One session with a registered pull device: connect, check it is the terminal registered under this SN,
//! read its attendance log (only new punches reach `ingest`), clear it safely when asked, sync its clock, run
//! its queued commands, keep its users in the store, and record health.
//!
//! Every pulled dataset is journaled raw (source `pull`) in the same transaction as the punches it carries,
//! through `ingest` (DESIGN.md "Raw first", "One ingest path"). A pull that finds nothing new writes nothing but
//! last-seen and health, like a push heartbeat.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use zk_pull::records::{Attendance, FreeSizes, User};
use zk_pull::{AttendanceDownload, Client, ClientError, ClientOptions, DeviceInfo};

use super::cursor::{Cursor, STAMP_TABLE};
use super::PullSettings;
use crate::app::App;
use crate::devices::registry::ContactFacts;
use crate::domain::{Device, DeviceSn, Pin, Source, Transport};
use crate::ingest::{Delivery, PunchRecord};
use crate::store::{Batch, BatchOutcome, DeviceUser, LineIssue, RawEntry, StoreError};

/// What ended a session early, in words an operator can act on (this text becomes the device's `last_error`).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Talking to the terminal failed: "connection refused by …", "wrong comm key", "timeout after 5 s …".
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The terminal at the registered address reports another serial number; nothing of it is stored.
    #[error(
        "serial number mismatch: the terminal at {address} reports {reported:?}, registered as {registered}; nothing stored"
    )]
    WrongDevice {
        /// The registered address.
        address: String,
        /// What the terminal reported (empty when it did not say).
        reported: String,
        /// The SN it is registered under.
        registered: DeviceSn,
    },
    /// The device has no address (a pull device registered without one).
    #[error("no address registered for {0}")]
    NoAddress(DeviceSn),
    /// The store failed; nothing of the failed write was kept.
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
}

impl SessionError {
    /// Whether the connection is gone (a command in flight may or may not have run; it stays `sent` and is
    /// retried after the command timeout).
    pub(crate) fn lost_connection(&self) -> bool {
        matches!(
            self,
            SessionError::Client(
                ClientError::Timeout { .. }
                    | ClientError::Closed
                    | ClientError::NotConnected
                    | ClientError::Io { .. }
                    | ClientError::ConnectionRefused { .. }
                    | ClientError::ConnectTimeout { .. }
            ) | SessionError::Store(_)
        )
    }
}

/// `host`, `host:port`, `ip` or `ip:port` → a `host:port` to resolve (port 4370 when none is given).
pub fn socket_address(address: &str) -> String {
    let address = address.trim();
    if address.parse::<std::net::SocketAddr>().is_ok() {
        return address.to_owned();
    }
    if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        return std::net::SocketAddr::new(ip, 4370).to_string();
    }
    match address.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => address.to_owned(),
        _ => format!("{address}:4370"),
    }
}

/// Terminal clock minus the time in `tz` now, in whole seconds.
pub fn clock_drift_secs(device_time: NaiveDateTime, tz: Tz, now: DateTime<Utc>) -> i64 {
    (device_time - now.with_timezone(&tz).naive_local()).num_seconds()
}

/// Counts, capacities and identity for the device's `info`, named like the push protocol's INFO where one
/// exists (pull.md §6.1, §6.4).
pub fn info_map(info: &DeviceInfo) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    let mut text = |key: &str, value: &Option<String>| {
        if let Some(v) = value {
            map.insert(key.to_owned(), v.clone().into());
        }
    };
    text("firmware", &info.firmware_version);
    text("Platform", &info.platform);
    text("DeviceName", &info.device_name);
    text("MAC", &info.mac);
    text("FPVersion", &info.fingerprint_version);
    text("FaceVersion", &info.face_version);
    let s = &info.sizes;
    for (key, value) in [
        ("UserCount", Some(s.users)),
        ("MaxUserCount", Some(s.user_capacity)),
        ("FPCount", Some(s.fingers)),
        ("MaxFingerCount", Some(s.finger_capacity)),
        ("TransactionCount", Some(s.records)),
        ("MaxAttLogCount", Some(s.record_capacity)),
        ("FreeAttLogCount", Some(s.records_available)),
        ("FaceCount", s.faces),
        ("MaxFaceCount", s.face_capacity),
    ] {
        if let Some(v) = value {
            map.insert(key.to_owned(), v.into());
        }
    }
    map
}

/// Connection options for a scheduled session: the keypad is locked by the session itself around the whole
/// read/clear window, not by each read.
fn client_options(device: &Device, settings: &PullSettings) -> zk_pull::ClientOptions {
    let mut options = ClientOptions::new(match device.transport {
        Transport::Udp => zk_pull::Transport::Udp,
        Transport::Tcp | Transport::Push | Transport::Biotime => zk_pull::Transport::Tcp,
    });
    options.comm_key = device.comm_key.unwrap_or(0);
    options.timeout = settings.timeout;
    options.retries = settings.retries;
    options.disable_during_reads = false;
    options
}

/// What a session remembers between sessions of one device (kept by the device's scheduler task).
#[derive(Debug, Default)]
pub struct DeviceState {
    /// When the clock was last set.
    pub last_time_sync: Option<Instant>,
    /// When the users were last read into the store.
    pub last_user_sync: Option<Instant>,
    /// The log as it was when a scheduled clear was last refused: while it is unchanged, scheduled pulls
    /// neither re-ingest it nor try again (a stuck garbage record would otherwise be journaled every pull).
    pub refused_clear: Option<Cursor>,
}

/// What happened to a requested clear of the attendance log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClearOutcome {
    /// Cleared; punchd holds every one of these punches.
    Cleared(usize),
    /// Not cleared, and why.
    Refused(String),
    /// Not cleared yet because a sink has not delivered (or parked) every punch of the terminal
    /// (sinks/safe_clear.rs); unlike a refusal, the next pull tries again.
    Deferred(String),
}

/// What one attendance pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// Records decoded from the log.
    pub n_records: usize,
    /// Records handed to `ingest` (new since the cursor, or all of them when clearing).
    pub n_ingested: usize,
    /// Punches newly stored.
    pub n_stored: usize,
    /// The clear, when one was asked for (and not skipped, see [`DeviceState::refused_clear`]).
    pub clear: Option<ClearOutcome>,
    /// The log as read.
    pub cursor: Cursor,
}

/// A verified connection to one registered device.
pub struct Session<'a> {
    pub(crate) app: &'a App,
    pub(crate) settings: &'a PullSettings,
    pub(crate) device: Device,
    pub(crate) tz: Tz,
    pub(crate) address: String,
    /// `None` after a reboot closed it.
    pub(crate) client: Option<Client>,
    /// Identity, counts and capacities read at connect.
    pub(crate) info: DeviceInfo,
    /// Device info not yet written to the store (written with the next batch, or on its own at the end).
    pending_info: Option<serde_json::Map<String, serde_json::Value>>,
    /// Set during a scheduled pull: the log at which the last scheduled clear was refused.
    refused_clear: Option<Cursor>,
    /// Terminal clock minus ours, last measured.
    pub(crate) drift_secs: Option<i64>,
    /// A command changed the users on the device: read them back before leaving.
    pub(crate) users_changed: bool,
}

impl<'a> Session<'a> {
    /// Connect, read the device info and check the serial number.
    ///
    /// Errors: the connection fails, the comm key is wrong, or the terminal is not the registered one.
    pub async fn open(
        app: &'a App,
        settings: &'a PullSettings,
        device: Device,
    ) -> Result<Session<'a>, SessionError> {
        // The registry's copy has the settings, but not the info and facts earlier sessions wrote: compare
        // with the store's.
        let device = match app.store.get_device(&device.sn).await {
            Ok(stored) => stored,
            Err(StoreError::NotFound(_)) => device,
            Err(e) => return Err(e.into()),
        };
        let address = socket_address(
            device
                .address
                .as_deref()
                .ok_or_else(|| SessionError::NoAddress(device.sn.clone()))?,
        );
        let mut client =
            Client::connect_with(address.as_str(), client_options(&device, settings)).await?;
        let info = match client.device_info().await {
            Ok(info) => info,
            Err(e) => {
                let _ = client.disconnect().await;
                return Err(e.into());
            }
        };
        let reported = info
            .serial_number
            .as_deref()
            .map(str::trim)
            .unwrap_or_default();
        if reported != device.sn.as_str() {
            let _ = client.disconnect().await;
            return Err(SessionError::WrongDevice {
                address,
                reported: reported.to_owned(),
                registered: device.sn.clone(),
            });
        }
        let tz = app.registry.time_zone(&device);
        let new_info = info_map(&info);
        let changed = new_info.iter().any(|(k, v)| device.info.get(k) != Some(v));
        Ok(Session {
            app,
            settings,
            tz,
            address,
            client: Some(client),
            pending_info: changed.then_some(new_info),
            refused_clear: None,
            info,
            drift_secs: None,
            users_changed: false,
            device,
        })
    }

    pub(crate) fn sn(&self) -> &DeviceSn {
        &self.device.sn
    }

    pub(crate) fn client(&mut self) -> Result<&mut Client, SessionError> {
        self.client
            .as_mut()
            .ok_or(SessionError::Client(ClientError::NotConnected))
    }

    /// Hand pulled punches and their batch (raw journal entry included) to the one ingest path.
    async fn ingest(
        &self,
        punches: Vec<PunchRecord>,
        batch: Batch,
    ) -> Result<BatchOutcome, StoreError> {
        self.app
            .ingest
            .ingest(Delivery {
                device_sn: self.device.sn.clone(),
                time_zone: self.tz,
                source: Source::Pull,
                punches,
                batch,
            })
            .await
    }

    fn raw_entry(&self, kind: &str, request: String, body: Vec<u8>) -> RawEntry {
        RawEntry {
            received_at: Utc::now(),
            device_sn: Some(self.device.sn.clone()),
            source: Source::Pull,
            kind: kind.to_owned(),
            request,
            remote_addr: Some(self.address.clone()),
            body,
            errors: Vec::new(),
        }
    }

    /// Read the terminal clock and remember the drift.
    ///
    /// Errors: the terminal did not answer.
    pub async fn measure_drift(&mut self) -> Result<i64, SessionError> {
        let device_time = self.client()?.get_time().await?;
        let drift = clock_drift_secs(device_time, self.tz, Utc::now());
        self.drift_secs = Some(drift);
        Ok(drift)
    }

    /// Set the terminal clock to the time in the device's zone; returns the drift before.
    ///
    /// Errors: the terminal refused or did not answer.
    pub async fn sync_time(&mut self, state: &mut DeviceState) -> Result<i64, SessionError> {
        let before = self.measure_drift().await?;
        let local = Utc::now().with_timezone(&self.tz).naive_local();
        self.client()?.set_time(local).await?;
        state.last_time_sync = Some(Instant::now());
        self.measure_drift().await?;
        tracing::info!(sn = %self.device.sn, drift_before = before, zone = %self.tz, "terminal clock set");
        Ok(before)
    }

    /// Set the clock when it is due (never set by this task, set longer ago than the schedule allows) or off by
    /// more than the allowed drift.
    ///
    /// Errors: as [`Session::sync_time`].
    pub async fn sync_time_if_due(&mut self, state: &mut DeviceState) -> Result<(), SessionError> {
        let drift = match self.drift_secs {
            Some(d) => d,
            None => self.measure_drift().await?,
        };
        let due = state
            .last_time_sync
            .is_none_or(|t| t.elapsed() >= self.settings.time_sync_every);
        if due || drift.abs() > self.settings.max_drift_secs {
            self.sync_time(state).await?;
        }
        Ok(())
    }

    /// [`Session::pull_attendance`] for the schedule: a clear refused before is not retried (and the log not
    /// ingested again) until the log changes.
    ///
    /// Errors: as [`Session::pull_attendance`].
    pub async fn pull_attendance_scheduled(
        &mut self,
        clear: bool,
        state: &mut DeviceState,
    ) -> Result<PullOutcome, SessionError> {
        self.refused_clear = state.refused_clear.take();
        let outcome = self.pull_attendance(clear).await;
        state.refused_clear = match &outcome {
            Ok(o) if matches!(o.clear, Some(ClearOutcome::Refused(_))) => Some(o.cursor.clone()),
            Ok(o) if o.clear.is_none() && clear => self.refused_clear.take(),
            _ => None,
        };
        self.refused_clear = None;
        outcome
    }

    /// Read the attendance log with the keypad locked, store what is new, and clear the log when `clear` and
    /// punchd provably holds every punch on it: every record decoded, the terminal's count equals the records read,
    /// each of them is held after ingest, and the count is unchanged right before clearing.
    ///
    /// Errors: the terminal failed (nothing was cleared) or the store failed.
    pub async fn pull_attendance(&mut self, clear: bool) -> Result<PullOutcome, SessionError> {
        let locked = match self.client()?.disable_device().await {
            Ok(()) => true,
            Err(ClientError::Refused { code, .. }) => {
                tracing::warn!(sn = %self.device.sn, code, "terminal refused to lock its keypad; reading anyway");
                false
            }
            Err(e) => return Err(e.into()),
        };
        let result = self.read_and_store(clear, locked).await;
        let unlocked = if locked {
            self.client()?.enable_device().await
        } else {
            Ok(())
        };
        let outcome = result?;
        unlocked?;
        Ok(outcome)
    }

    async fn read_and_store(
        &mut self,
        clear: bool,
        locked: bool,
    ) -> Result<PullOutcome, SessionError> {
        let client = self.client()?;
        let sizes = client.free_sizes().await?;
        let download = client.attendance().await?;
        let cursor = self
            .app
            .store
            .stamps(&self.device.sn)
            .await?
            .into_iter()
            .find(|(table, _)| table == STAMP_TABLE)
            .and_then(|(_, value)| Cursor::parse(&value));
        let new_cursor = Cursor::after(&download.records);
        let by_cursor = Cursor::first_new(cursor.as_ref(), &download.records);
        // Sinks first (safe clear, on unless the device turned it off): while one still owes punches of this
        // terminal, this pull is an ordinary one (nothing re-ingested) and the clear waits for a later pull.
        let safe_clear = self.device.safe_clear;
        let deferred = if clear && safe_clear {
            crate::sinks::safe_clear::clear_blocked_by(self.app.store.as_ref(), &self.device.sn)
                .await?
        } else {
            None
        };
        let clear = clear
            && deferred.is_none()
            && !(by_cursor == download.records.len()
                && self.refused_clear.as_ref() == Some(&new_cursor));
        let first_new = if clear { 0 } else { by_cursor };
        let mut outcome = PullOutcome {
            n_records: download.records.len(),
            n_ingested: download.records.len().saturating_sub(first_new),
            n_stored: 0,
            clear: None,
            cursor: new_cursor.clone(),
        };
        let mut n_held = 0;
        if outcome.n_ingested > 0 || cursor.as_ref() != Some(&new_cursor) {
            let request = format!(
                "pull attendance log from {} ({} records, {} new)",
                self.address, outcome.n_records, outcome.n_ingested
            );
            let mut raw = self.raw_entry("pull:attendance", request, download.raw.clone());
            raw.errors = download
                .errors
                .iter()
                .enumerate()
                .map(|(idx, e)| LineIssue {
                    line_no: idx + 1,
                    line: String::new(),
                    reason: format!("attendance record not decoded: {e}"),
                })
                .collect();
            let mut batch = Batch::new(raw);
            batch.stamp = Some((
                self.device.sn.clone(),
                STAMP_TABLE.to_owned(),
                new_cursor.encode(),
            ));
            batch.device_info = self
                .pending_info
                .take()
                .map(|info| (self.device.sn.clone(), info));
            let punches = download
                .records
                .get(first_new..)
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(idx, r)| punch_record(r, first_new + idx + 1))
                .collect();
            let stored = self.ingest(punches, batch).await?;
            outcome.n_stored = stored.n_stored;
            n_held = stored.n_stored + stored.n_duplicate;
            if outcome.n_stored > 0 {
                tracing::info!(sn = %self.device.sn, stored = outcome.n_stored, read = outcome.n_records, "punches pulled");
            }
        }
        if let Some(why) = deferred {
            tracing::info!(sn = %self.device.sn, reason = %why, "attendance log not cleared yet");
            outcome.clear = Some(ClearOutcome::Deferred(why));
        }
        if clear {
            // Punches this pull stored are not delivered yet: the sinks are asked again after the ingest.
            let owed = if safe_clear && outcome.n_stored > 0 {
                crate::sinks::safe_clear::clear_blocked_by(self.app.store.as_ref(), &self.device.sn)
                    .await?
            } else {
                None
            };
            let verdict = if let Some(why) = owed {
                ClearOutcome::Deferred(why)
            } else if locked {
                self.safe_clear(&sizes, &download, n_held).await?
            } else {
                ClearOutcome::Refused(
                    "the terminal refused to lock its keypad, so punches could arrive while clearing".into(),
                )
            };
            match &verdict {
                ClearOutcome::Cleared(n) => {
                    tracing::info!(sn = %self.device.sn, punches = n, "attendance log cleared after a verified pull")
                }
                ClearOutcome::Refused(why) => {
                    tracing::warn!(sn = %self.device.sn, reason = %why, "attendance log not cleared")
                }
                ClearOutcome::Deferred(why) => {
                    tracing::info!(sn = %self.device.sn, reason = %why, "attendance log not cleared yet")
                }
            }
            outcome.clear = Some(verdict);
        }
        Ok(outcome)
    }

    /// Clear the log only when nothing can be lost: every record decoded, the terminal's count equals the
    /// records read, punchd holds each of them (`n_held`, from the ingest of the whole log), and the count is
    /// unchanged right before clearing (the keypad is locked, but firmware and our own mistakes are not trusted).
    async fn safe_clear(
        &mut self,
        sizes: &FreeSizes,
        download: &AttendanceDownload,
        n_held: usize,
    ) -> Result<ClearOutcome, SessionError> {
        let n_read = download.records.len();
        if !download.errors.is_empty() {
            return Ok(ClearOutcome::Refused(format!(
                "{} attendance records could not be decoded; they exist only on the terminal",
                download.errors.len()
            )));
        }
        if usize::try_from(sizes.records).ok() != Some(n_read) {
            return Ok(ClearOutcome::Refused(format!(
                "the terminal reports {} punches but {n_read} were read",
                sizes.records
            )));
        }
        let distinct: HashSet<(&str, NaiveDateTime, u8)> = download
            .records
            .iter()
            .map(|r| (r.user_id.trim(), r.time, r.punch))
            .collect();
        if n_held != distinct.len() {
            return Ok(ClearOutcome::Refused(format!(
                "punchd holds {n_held} of the {} punches read",
                distinct.len()
            )));
        }
        if n_read == 0 {
            return Ok(ClearOutcome::Cleared(0));
        }
        let client = self.client()?;
        let now = client.free_sizes().await?;
        if now.records != sizes.records {
            return Ok(ClearOutcome::Refused(format!(
                "the terminal's log changed during the pull ({} punches, then {}); the next pull reads them",
                sizes.records, now.records
            )));
        }
        client.clear_attendance().await?;
        Ok(ClearOutcome::Cleared(n_read))
    }

    /// Read the whole log again and hand every punch between `from` (inclusive) and `to` (exclusive, terminal
    /// local times) to `ingest`, whatever the cursor says. Returns (punches in range, newly stored).
    ///
    /// Errors: the terminal or the store failed.
    pub async fn reupload(
        &mut self,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Result<(usize, usize), SessionError> {
        let client = self.client()?;
        let locked = client.disable_device().await.is_ok();
        let download = client.attendance().await;
        if locked {
            client.enable_device().await?;
        }
        let download = download?;
        let punches: Vec<PunchRecord> = download
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.time >= from && r.time < to)
            .map(|(idx, r)| punch_record(r, idx + 1))
            .collect();
        let n_in_range = punches.len();
        let request = format!(
            "pull attendance log from {} again for {from} to {to} ({} records, {n_in_range} in range)",
            self.address,
            download.records.len()
        );
        let batch = Batch::new(self.raw_entry("pull:attendance", request, download.raw));
        let stored = self.ingest(punches, batch).await?;
        Ok((n_in_range, stored.n_stored))
    }

    /// Remember device info to write with the next batch (or when the session closes).
    pub fn set_info(&mut self, info: serde_json::Map<String, serde_json::Value>) {
        self.pending_info = Some(info);
    }

    /// [`Session::sync_users`] when a command changed the users, on the device's first session, and every
    /// `users_every`.
    ///
    /// Errors: as [`Session::sync_users`].
    pub async fn sync_users_if_due(&mut self, state: &mut DeviceState) -> Result<(), SessionError> {
        let due = state
            .last_user_sync
            .is_none_or(|t| t.elapsed() >= self.settings.users_every);
        if self.client.is_some() && (due || self.users_changed) {
            self.sync_users().await?;
            state.last_user_sync = Some(Instant::now());
        }
        Ok(())
    }

    /// Read the terminal's users and bring the store's copy in line (added, changed, removed).
    ///
    /// Errors: the terminal or the store failed.
    pub async fn sync_users(&mut self) -> Result<(), SessionError> {
        let client = self.client()?;
        let locked = client.disable_device().await.is_ok();
        let users = client.users().await;
        if locked {
            client.enable_device().await?;
        }
        let users = users?;
        let now = Utc::now();
        let on_device: Vec<DeviceUser> = users
            .iter()
            .filter(|u| !u.user_id.trim().is_empty())
            .map(|u| device_user(&self.device.sn, u, now))
            .collect();
        let stored = self.app.store.list_device_users(&self.device.sn).await?;
        let key = |u: &DeviceUser| {
            (
                u.pin.clone(),
                u.name.clone(),
                u.privilege,
                u.password.clone(),
                u.card.clone(),
                u.group.clone(),
                u.enabled,
            )
        };
        let stored_keys: HashSet<_> = stored.iter().map(key).collect();
        let changed: Vec<DeviceUser> = on_device
            .iter()
            .filter(|u| !stored_keys.contains(&key(u)))
            .cloned()
            .collect();
        if !changed.is_empty() {
            let body = users
                .iter()
                .map(|u| {
                    format!(
                        "{}\t{}\t{}\t{}\t{}\t{}\n",
                        u.uid, u.user_id, u.name, u.privilege, u.card, u.group_id
                    )
                })
                .collect::<String>();
            let raw = self.raw_entry(
                "pull:users",
                format!(
                    "pull users from {} (uid, PIN, name, privilege, card, group; passwords not journaled)",
                    self.address
                ),
                body.into_bytes(),
            );
            let mut batch = Batch::new(raw);
            batch.users = changed;
            batch.device_info = self
                .pending_info
                .take()
                .map(|info| (self.device.sn.clone(), info));
            self.app.store.write_batch(batch).await?;
        }
        let pins: HashSet<&Pin> = on_device.iter().map(|u| &u.pin).collect();
        for gone in stored.iter().filter(|u| !pins.contains(&u.pin)) {
            self.app
                .store
                .delete_device_user(&self.device.sn, &gone.pin)
                .await?;
        }
        self.users_changed = false;
        Ok(())
    }

    /// Write device info that changed and was not carried by a batch yet, record firmware and platform, and
    /// disconnect.
    ///
    /// Errors: the store failed.
    pub async fn close(mut self) -> Result<Option<i64>, SessionError> {
        if let Some(info) = self.pending_info.take() {
            let body = serde_json::Value::Object(info.clone()).to_string();
            let raw = self.raw_entry(
                "pull:info",
                format!("pull device info from {}", self.address),
                body.into_bytes(),
            );
            let mut batch = Batch::new(raw);
            batch.device_info = Some((self.device.sn.clone(), info));
            self.app.store.write_batch(batch).await?;
        }
        let platform = self.info.platform.clone();
        let firmware = self.info.firmware_version.clone();
        if firmware != self.device.firmware || platform != self.device.device_type {
            let ip = self.address.rsplit_once(':').map(|(ip, _)| ip.to_owned());
            self.app
                .registry
                .contact(
                    &self.device.sn,
                    self.device.transport,
                    ip,
                    Utc::now(),
                    Some(ContactFacts {
                        firmware,
                        device_type: platform,
                        ..ContactFacts::default()
                    }),
                )
                .await?;
        }
        if let Some(client) = self.client.take() {
            if let Err(e) = client.disconnect().await {
                tracing::debug!(sn = %self.device.sn, error = %e, "disconnect");
            }
        }
        Ok(self.drift_secs)
    }
}

/// A pulled attendance record as `ingest` takes it: the PIN as text, the terminal's wall time, the punch state
/// and verify mode as sent. `record_no` is its 1-based position among the records read (0 for a live event).
pub fn punch_record(r: &Attendance, record_no: usize) -> PunchRecord {
    PunchRecord {
        line_no: record_no,
        pin: r.user_id.clone(),
        punched_at: r.time,
        punch_state: Some(u16::from(r.punch)),
        verify_mode: Some(u16::from(r.status)),
        work_code: None,
        extra: Vec::new(),
    }
}

/// A pulled user as the store keeps it: privilege level and the disabled bit apart (pull.md §8.4).
pub fn device_user(sn: &DeviceSn, u: &User, now: DateTime<Utc>) -> DeviceUser {
    let mut fields = serde_json::Map::new();
    fields.insert("uid".into(), u.uid.into());
    fields.insert("privilege".into(), u.privilege.into());
    DeviceUser {
        device_sn: sn.clone(),
        pin: Pin(u.user_id.trim().to_owned()),
        name: u.name.clone(),
        privilege: Some(u16::from(u.level())),
        password: u.password.clone(),
        card: if u.card == 0 {
            String::new()
        } else {
            u.card.to_string()
        },
        group: u.group_id.clone(),
        time_zones: String::new(),
        verify_mode: None,
        enabled: u.is_enabled(),
        fields,
        updated_at: now,
    }
}

/// How long to wait before reconnecting after `failures` failures in a row: doubling from `min`, at most `max`.
pub fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u32::MAX);
    min.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};

    #[test]
    fn addresses_get_the_default_port() {
        assert_eq!(socket_address("192.168.1.201"), "192.168.1.201:4370");
        assert_eq!(socket_address(" 192.168.1.201:4371 "), "192.168.1.201:4371");
        assert_eq!(socket_address("gate-2.local"), "gate-2.local:4370");
        assert_eq!(socket_address("gate-2.local:5005"), "gate-2.local:5005");
        assert_eq!(socket_address("::1"), "[::1]:4370");
        assert_eq!(socket_address("[::1]:4371"), "[::1]:4371");
    }

    #[test]
    fn drift_is_measured_in_the_device_zone() {
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 3, 30, 0).unwrap();
        let device_time = NaiveDate::from_ymd_opt(2026, 3, 2)
            .and_then(|d| d.and_hms_opt(9, 1, 5))
            .unwrap();
        assert_eq!(clock_drift_secs(device_time, kolkata, now), 65);
        assert_eq!(
            clock_drift_secs(device_time, chrono_tz::UTC, now),
            5 * 3600 + 1865
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n, min, max).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(200, min, max), max);
    }

    #[test]
    fn users_keep_level_and_disabled_bit_apart() {
        let sn = DeviceSn::parse("SIM1").unwrap();
        let user = User {
            uid: 3,
            user_id: "0042".into(),
            name: "Ana".into(),
            privilege: 15,
            password: "12".into(),
            group_id: "1".into(),
            card: 0,
        };
        let stored = device_user(&sn, &user, Utc::now());
        assert_eq!(stored.pin.as_str(), "0042");
        assert_eq!(stored.privilege, Some(14));
        assert!(!stored.enabled);
        assert_eq!(stored.card, "");
        assert_eq!(stored.fields.get("uid"), Some(&serde_json::Value::from(3)));
    }
}
