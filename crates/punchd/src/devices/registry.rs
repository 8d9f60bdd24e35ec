//! The device registry: every known device in memory, backed by the store.
//!
//! Terminals poll every few seconds, so the hot path (an approved device polling with nothing queued) must not
//! touch the database: approval, settings and a "has queued commands" hint live here; "last seen" is updated in
//! memory and flushed in bulk every few seconds. Settings changed elsewhere (the CLI, another instance) are picked
//! up by [`Registry::refresh`] through the store's device revision, and so are commands queued elsewhere.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::{ApprovalConfig, ApprovalMode};
use crate::domain::{Approval, Device, DeviceSn, Transport};
use crate::store::{DeviceContact, Result, SeenUpdate, Store};

/// A pull device as an operator registers it: approved, with its address and schedule.
pub fn new_pull_device(
    sn: DeviceSn,
    transport: Transport,
    address: String,
    comm_key: u32,
    pull_interval_secs: u32,
    clear_after_pull: bool,
    now: DateTime<Utc>,
) -> Device {
    Device {
        sn,
        approval: Approval::Approved,
        transport,
        alias: None,
        site: None,
        time_zone: None,
        address: Some(address),
        comm_key: Some(comm_key),
        pull_interval_secs: Some(pull_interval_secs),
        clear_after_pull,
        first_seen: now,
        last_seen: None,
        last_ip: None,
        firmware: None,
        push_version: None,
        language: None,
        device_type: None,
        poll_delay_secs: 0,
        info: serde_json::Map::new(),
        last_error: None,
        clock_drift_secs: None,
        safe_clear: true,
    }
}

/// Decides the approval of a device seen for the first time.
#[derive(Debug, Clone, Default)]
pub struct ApprovalPolicy {
    config: ApprovalConfig,
}

/// Glob match with `*` (any run) and `?` (one character).
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl ApprovalPolicy {
    /// A policy from the configuration.
    pub fn new(config: ApprovalConfig) -> ApprovalPolicy {
        ApprovalPolicy { config }
    }

    /// The approval a new device gets: approved when its SN matches an `allow` pattern; otherwise approved in
    /// `auto` mode with an empty allow-list, pending in every other case.
    pub fn decide(&self, sn: &DeviceSn) -> Approval {
        if self.config.allow.iter().any(|p| glob_match(p, sn.as_str())) {
            return Approval::Approved;
        }
        if self.config.mode == ApprovalMode::Auto && self.config.allow.is_empty() {
            Approval::Approved
        } else {
            Approval::Pending
        }
    }
}

/// One device in memory.
#[derive(Debug)]
pub struct Entry {
    device: RwLock<Device>,
    /// Last contact not yet flushed to the store.
    seen: Mutex<Option<(DateTime<Utc>, Option<String>)>>,
    /// Set when commands may be queued; cleared when a poll finds none.
    has_queued: AtomicBool,
}

impl Entry {
    /// A copy of the device's settings and facts.
    pub fn device(&self) -> Device {
        self.device
            .read()
            .map(|d| d.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Current approval.
    pub fn approval(&self) -> Approval {
        self.device
            .read()
            .map(|d| d.approval)
            .unwrap_or(Approval::Pending)
    }

    /// The zone of the device's own setting, if it has one (no copy of the device is made).
    pub fn own_time_zone(&self) -> Option<Tz> {
        self.device
            .read()
            .ok()
            .and_then(|d| d.time_zone.as_deref().and_then(|name| name.parse().ok()))
    }

    /// Seconds between polls asked of the device.
    pub fn poll_delay_secs(&self) -> u32 {
        self.device.read().map(|d| d.poll_delay_secs).unwrap_or(10)
    }

    /// Whether commands may be waiting (a hint; the store is the truth).
    pub fn may_have_commands(&self) -> bool {
        self.has_queued.load(Ordering::Acquire)
    }

    /// Mark that commands may be waiting, or that none are.
    pub fn set_may_have_commands(&self, value: bool) {
        self.has_queued.store(value, Ordering::Release);
    }

    fn replace(&self, device: Device) {
        if let Ok(mut d) = self.device.write() {
            // Keep the newest last-seen we know of.
            let last_seen = d.last_seen.max(device.last_seen);
            *d = device;
            d.last_seen = last_seen;
        }
    }

    fn touch(&self, at: DateTime<Utc>, ip: Option<String>) {
        if let Ok(mut d) = self.device.write() {
            d.last_seen = Some(at);
            if ip.is_some() {
                d.last_ip.clone_from(&ip);
            }
        }
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some((at, ip));
        }
    }
}

/// Facts a device reported about itself on this contact (handshake parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactFacts {
    /// Firmware version.
    pub firmware: Option<String>,
    /// `pushver=`.
    pub push_version: Option<String>,
    /// `language=`.
    pub language: Option<String>,
    /// `DeviceType=`.
    pub device_type: Option<String>,
}

/// Every known device, in memory.
pub struct Registry {
    store: Arc<dyn Store>,
    policy: ApprovalPolicy,
    default_time_zone: Tz,
    default_poll_delay_secs: u32,
    devices: RwLock<HashMap<DeviceSn, Arc<Entry>>>,
    revision: AtomicI64,
}

impl Registry {
    /// Load every device and the queued-command hints from the store.
    pub async fn load(
        store: Arc<dyn Store>,
        policy: ApprovalPolicy,
        default_time_zone: Tz,
        default_poll_delay_secs: u32,
    ) -> Result<Registry> {
        let registry = Registry {
            store,
            policy,
            default_time_zone,
            default_poll_delay_secs,
            devices: RwLock::new(HashMap::new()),
            revision: AtomicI64::new(0),
        };
        registry.refresh().await?;
        Ok(registry)
    }

    /// The zone of a device's clock: its own, else the configured default.
    pub fn time_zone(&self, device: &Device) -> Tz {
        device
            .time_zone
            .as_deref()
            .and_then(|name| name.parse().ok())
            .unwrap_or(self.default_time_zone)
    }

    /// The zone of a device's clock, read from its registry entry.
    pub fn entry_time_zone(&self, entry: &Entry) -> Tz {
        entry.own_time_zone().unwrap_or(self.default_time_zone)
    }

    /// The default zone.
    pub fn default_time_zone(&self) -> Tz {
        self.default_time_zone
    }

    /// A known device.
    pub fn get(&self, sn: &DeviceSn) -> Option<Arc<Entry>> {
        self.devices
            .read()
            .ok()
            .and_then(|map| map.get(sn).cloned())
    }

    /// How many devices match `test` (nothing is copied).
    pub fn count_where(&self, test: impl Fn(&Device) -> bool) -> usize {
        let map = match self.devices.read() {
            Ok(map) => map,
            Err(p) => p.into_inner(),
        };
        map.values()
            .filter(|entry| entry.device.read().is_ok_and(|d| test(&d)))
            .count()
    }

    /// What `pick` takes from each device it answers `Some` for (no device is copied: the web UI's presence
    /// check reads every terminal every few seconds, and a registry may hold thousands of push terminals, each
    /// with its INFO map). Unordered.
    pub fn pick<T>(&self, pick: impl Fn(&Device) -> Option<T>) -> Vec<T> {
        let map = match self.devices.read() {
            Ok(map) => map,
            Err(p) => p.into_inner(),
        };
        map.values()
            .filter_map(|entry| pick(&*entry.device.read().ok()?))
            .collect()
    }

    /// Copies of the devices that match `keep` (only those are copied: the pull scheduler asks every second,
    /// and a registry may hold thousands of push terminals).
    pub fn devices_where(&self, keep: impl Fn(&Device) -> bool) -> Vec<Device> {
        let map = match self.devices.read() {
            Ok(map) => map,
            Err(p) => p.into_inner(),
        };
        map.values()
            .filter_map(|entry| {
                let device = entry.device.read().ok()?;
                keep(&device).then(|| device.clone())
            })
            .collect()
    }

    fn insert(&self, device: Device) -> Arc<Entry> {
        let sn = device.sn.clone();
        let mut map = match self.devices.write() {
            Ok(map) => map,
            Err(p) => p.into_inner(),
        };
        if let Some(entry) = map.get(&sn) {
            entry.replace(device);
            return entry.clone();
        }
        let entry = Arc::new(Entry {
            device: RwLock::new(device),
            seen: Mutex::new(None),
            has_queued: AtomicBool::new(false),
        });
        map.insert(sn, entry.clone());
        entry
    }

    /// A device made contact. Unknown devices are registered (with the approval policy's decision); when `facts`
    /// are given (a handshake) they are written to the store at once; otherwise only "last seen" is updated, in
    /// memory.
    ///
    /// Errors: the store failed while registering or recording facts.
    pub async fn contact(
        &self,
        sn: &DeviceSn,
        transport: Transport,
        ip: Option<String>,
        now: DateTime<Utc>,
        facts: Option<ContactFacts>,
    ) -> Result<Arc<Entry>> {
        self.contact_known(self.get(sn), sn, transport, ip, now, facts)
            .await
    }

    /// [`Registry::contact`] for a caller that has just looked the device up (`known`: what [`Registry::get`]
    /// returned for `sn`), so the map is read once per request.
    pub async fn contact_known(
        &self,
        known: Option<Arc<Entry>>,
        sn: &DeviceSn,
        transport: Transport,
        ip: Option<String>,
        now: DateTime<Utc>,
        facts: Option<ContactFacts>,
    ) -> Result<Arc<Entry>> {
        if let (Some(entry), None) = (&known, &facts) {
            entry.touch(now, ip);
            return Ok(entry.clone());
        }
        let facts = facts.unwrap_or_default();
        let device = self
            .store
            .upsert_device(DeviceContact {
                sn: sn.clone(),
                poll_delay_secs: self.default_poll_delay_secs,
                approval_if_new: self.policy.decide(sn),
                transport,
                seen_at: now,
                ip: ip.clone(),
                firmware: facts.firmware,
                push_version: facts.push_version,
                language: facts.language,
                device_type: facts.device_type,
            })
            .await?;
        if known.is_none() {
            match device.approval {
                Approval::Approved => {
                    tracing::info!(sn = %sn, ip = ?ip, "new device registered and approved")
                }
                other => tracing::warn!(
                    sn = %sn, ip = ?ip, approval = other.as_str(),
                    "new device registered; it is answered UNKNOWN DEVICE until approved (punchd devices approve {sn})"
                ),
            }
        }
        let entry = self.insert(device);
        entry.touch(now, ip);
        Ok(entry)
    }

    /// Drop a device from memory (after the store forgot it: a pending device over the cap).
    pub fn forget(&self, sn: &DeviceSn) {
        let mut map = match self.devices.write() {
            Ok(map) => map,
            Err(p) => p.into_inner(),
        };
        map.remove(sn);
    }

    /// Put a device read from the store into memory (after an API or CLI change on this instance).
    pub fn update(&self, device: Device) -> Arc<Entry> {
        self.insert(device)
    }

    /// Forget a removed device (its task in the pull scheduler stops on the next check).
    pub fn remove(&self, sn: &DeviceSn) {
        let mut map = match self.devices.write() {
            Ok(map) => map,
            Err(p) => p.into_inner(),
        };
        map.remove(sn);
    }

    /// Reload devices whose settings changed since the last refresh, and the queued-command hints.
    pub async fn refresh(&self) -> Result<()> {
        let since = self.revision.load(Ordering::Acquire);
        // Removals first: a device removed and registered again since `since` is in `changed` too.
        let (deleted, deleted_max) = self.store.devices_deleted_since(since).await?;
        for sn in deleted {
            self.remove(&sn);
        }
        let (changed, max) = self.store.devices_changed_since(since).await?;
        let max = max.max(deleted_max);
        for device in changed {
            self.insert(device);
        }
        self.revision.fetch_max(max, Ordering::AcqRel);
        for sn in self.store.devices_with_queued_commands().await? {
            if let Some(entry) = self.get(&sn) {
                entry.set_may_have_commands(true);
            }
        }
        Ok(())
    }

    /// Write "last seen" facts gathered in memory to the store.
    pub async fn flush_seen(&self) -> Result<()> {
        let entries: Vec<(DeviceSn, Arc<Entry>)> = match self.devices.read() {
            Ok(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => return Ok(()),
        };
        let mut updates = Vec::new();
        for (sn, entry) in entries {
            let taken = entry.seen.lock().ok().and_then(|mut s| s.take());
            if let Some((at, ip)) = taken {
                updates.push(SeenUpdate { sn, at, ip });
            }
        }
        self.store.record_seen(updates).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        assert!(glob_match("CNYG*", "CNYG213260182"));
        assert!(glob_match("*", "X"));
        assert!(glob_match("A?C", "ABC"));
        assert!(!glob_match("A?C", "ABBC"));
        assert!(glob_match("*182", "CNYG213260182"));
        assert!(!glob_match("CNYG*", "PYA8262300072"));
        assert!(glob_match("PYA8262300072", "PYA8262300072"));
    }

    #[test]
    fn approval_policy() {
        let sn = DeviceSn::parse("CNYG213260182").unwrap();
        let auto = ApprovalPolicy::new(ApprovalConfig::default());
        assert_eq!(auto.decide(&sn), Approval::Approved);
        let manual = ApprovalPolicy::new(ApprovalConfig {
            mode: ApprovalMode::Manual,
            allow: vec![],
        });
        assert_eq!(manual.decide(&sn), Approval::Pending);
        let allow = ApprovalPolicy::new(ApprovalConfig {
            mode: ApprovalMode::Auto,
            allow: vec!["CNYG*".into()],
        });
        assert_eq!(allow.decide(&sn), Approval::Approved);
        assert_eq!(
            allow.decide(&DeviceSn::parse("PYA1").unwrap()),
            Approval::Pending
        );
    }

    /// `pick` answers what the closure takes from the devices it accepts, and nothing for the others.
    #[tokio::test]
    async fn pick_takes_only_what_is_asked_of_matching_devices() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            crate::store::sqlite::SqliteStore::open(
                &dir.path().join("registry.db"),
                crate::store::sqlite::Durability::CrashSafe,
            )
            .unwrap(),
        );
        let registry = Registry::load(
            store,
            ApprovalPolicy::new(ApprovalConfig {
                mode: ApprovalMode::Manual,
                allow: vec!["OK*".into()],
            }),
            chrono_tz::UTC,
            30,
        )
        .await
        .unwrap();
        let now = Utc::now();
        for sn in ["OK1", "OK2", "NEW1"] {
            registry
                .contact(
                    &DeviceSn::parse(sn).unwrap(),
                    Transport::Push,
                    Some("10.0.0.9".into()),
                    now,
                    None,
                )
                .await
                .unwrap();
        }
        let mut picked = registry.pick(|d| {
            (d.approval == Approval::Approved).then(|| (d.sn.as_str().to_owned(), d.last_seen))
        });
        picked.sort();
        assert_eq!(
            picked,
            vec![("OK1".to_owned(), Some(now)), ("OK2".to_owned(), Some(now))]
        );
    }
}
