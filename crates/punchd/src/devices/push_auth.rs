//! Who may speak for an approved push terminal (README "Terminal authentication").
//!
//! In the attendance push dialect the SN is the only identity a terminal sends (push.md §11: "no authentication
//! in 2.x beyond the serial number"), so anyone who knows an approved SN could push punches as it and read its
//! queued commands (user records with cards and passwords). [`PushGuard`] adds what the protocol and the network
//! allow, checked on every `/iclock` request of an approved terminal:
//!
//! 1. **Address binding.** The terminal is bound to the remote addresses it was approved from (the address of
//!    the first request after approval, or the one it waited in `pending` from). A request from another address
//!    is answered `UNKNOWN DEVICE` (the terminal keeps its data and retries after `ErrorDelay`, push.md §12) and
//!    the address is *held*: logged, shown by `punchd devices push-auth SN` / `GET /api/v1/devices/{sn}/push-auth`,
//!    and accepted by `punchd devices approve SN`. Binding can be turned off per terminal or server-wide
//!    (`[push] bind_addresses = false`) for DHCP sites. Behind a reverse proxy, list it in
//!    `[push] trusted_proxies` so the terminal's own address (`X-Forwarded-For`) is used.
//! 2. **`ComKey=`** (SPEC-US, push.md §3.1): with the device option `IsPushComKey=1` the terminal sends
//!    `ComKey=<PushComKey>` on every request. Once a key is set for a terminal (`--comm-key`, which also queues
//!    `SET OPTION PushComKey=…` and `SET OPTION IsPushComKey=1`), a wrong key is refused at once, and a missing
//!    key is refused from the first request that carried the right one.
//! 3. **`pushcommkey=`** (SPEC-ATT, push.md §3.1, sample att01): firmware with the option `PushCommKey` set sends
//!    it on the handshake. It is pinned from the first approved handshake; a handshake with another value, or
//!    without one after it was pinned, is refused. It is only sent on the handshake, so it guards the handshake
//!    (where a terminal learns its stamps and options), not the uploads.
//!
//! None of this is cryptographic: keys travel in the clear over plain HTTP, and an attacker on the same LAN
//! segment who can spoof the terminal's address (or sniff its key) still passes. HTTPS (a TLS proxy) and a
//! separate network segment are what protect against that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::domain::{Device, DeviceSn};
use crate::store::push::{PushAuth, PushAuthPatch};
use crate::store::{Result, Store};

/// How long a terminal's state is served from memory before it is read again (settings changed by the CLI in
/// another process are seen within this).
const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// A held address is written (with the requests counted since) at most this often per terminal.
const HOLD_WRITE_EVERY: Duration = Duration::from_secs(10);
/// A refusal is logged at most this often per terminal and reason.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What one request carries that the guard looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The remote address (IP, no port), after trusted-proxy resolution.
    pub address: Option<&'a str>,
    /// `ComKey=` of the query, when sent.
    pub comm_key: Option<&'a str>,
    /// Whether the request is the handshake (`options=all`).
    pub handshake: bool,
    /// `pushcommkey=` of the handshake, when sent.
    pub handshake_key: Option<&'a str>,
}

/// The guard's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Serve the request.
    Accept,
    /// Answer `UNKNOWN DEVICE`; the reason is logged (rate-limited) and not sent to the client.
    Refuse(String),
}

struct Cached {
    auth: PushAuth,
    fetched: Instant,
    /// Refused requests from the held address not written yet.
    unwritten_holds: u64,
    last_hold_write: Option<Instant>,
    last_warn: HashMap<&'static str, Instant>,
}

/// Checks every request of an approved push terminal; see the module documentation.
pub struct PushGuard {
    store: Arc<dyn Store>,
    /// `[push] bind_addresses`: binding for terminals without their own setting.
    default_bind: bool,
    cache: Mutex<HashMap<DeviceSn, Cached>>,
}

impl PushGuard {
    /// A guard over the store; `default_bind` is the server-wide binding setting.
    pub fn new(store: Arc<dyn Store>, default_bind: bool) -> PushGuard {
        PushGuard {
            store,
            default_bind,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether binding applies to a terminal with this state.
    pub fn binds(&self, auth: &PushAuth) -> bool {
        auth.bind_addresses.unwrap_or(self.default_bind)
    }

    async fn state(&self, sn: &DeviceSn) -> Result<PushAuth> {
        if let Some(c) = self.cache.lock().ok().and_then(|cache| {
            cache
                .get(sn)
                .filter(|c| c.fetched.elapsed() < REFRESH_EVERY)
                .map(|c| c.auth.clone())
        }) {
            return Ok(c);
        }
        let auth = self.store.push_auth(sn).await?;
        self.remember(sn, auth.clone());
        Ok(auth)
    }

    fn remember(&self, sn: &DeviceSn, auth: PushAuth) {
        if let Ok(mut cache) = self.cache.lock() {
            let entry = cache.entry(sn.clone()).or_insert_with(|| Cached {
                auth: auth.clone(),
                fetched: Instant::now(),
                unwritten_holds: 0,
                last_hold_write: None,
                last_warn: HashMap::new(),
            });
            entry.auth = auth;
            entry.fetched = Instant::now();
        }
    }

    /// Whether to log a refusal of this kind now (at most once a minute per terminal and kind).
    fn should_warn(&self, sn: &DeviceSn, kind: &'static str) -> bool {
        let Ok(mut cache) = self.cache.lock() else {
            return true;
        };
        let Some(entry) = cache.get_mut(sn) else {
            return true;
        };
        let now = Instant::now();
        match entry.last_warn.get(kind) {
            Some(at) if now.duration_since(*at) < WARN_EVERY => false,
            _ => {
                entry.last_warn.insert(kind, now);
                true
            }
        }
    }

    fn refuse(&self, sn: &DeviceSn, kind: &'static str, reason: String) -> Verdict {
        if self.should_warn(sn, kind) {
            tracing::warn!(sn = %sn, "{reason}");
        }
        Verdict::Refuse(reason)
    }

    /// Check one request of an approved terminal. Writes what it learns (a first address, a pinned handshake key,
    /// a held address) to the store.
    ///
    /// Errors: the store failed (the caller answers 503; the terminal retries).
    pub async fn check(
        &self,
        sn: &DeviceSn,
        presented: Presented<'_>,
        now: DateTime<Utc>,
    ) -> Result<Verdict> {
        let mut auth = self.state(sn).await?;
        if let Some(expected) = auth.comm_key.clone() {
            match presented.comm_key {
                Some(key) if key == expected && !auth.comm_key_seen => {
                    auth = self.store.mark_push_comm_key_seen(sn, now).await?;
                    self.remember(sn, auth.clone());
                    tracing::info!(sn = %sn, "terminal sends its ComKey; from now on every request must carry it");
                }
                Some(key) if key == expected => {}
                Some(_) => {
                    return Ok(self.refuse(
                        sn,
                        "comm_key_wrong",
                        format!(
                            "push terminal {sn}: request from {} carries a wrong ComKey; answered UNKNOWN DEVICE",
                            presented.address.unwrap_or("an unknown address")
                        ),
                    ))
                }
                None if auth.comm_key_seen => {
                    return Ok(self.refuse(
                        sn,
                        "comm_key_missing",
                        format!(
                            "push terminal {sn}: request from {} carries no ComKey, which this terminal sends; \
                             answered UNKNOWN DEVICE (clear it with `punchd devices push-auth {sn} --no-comm-key` \
                             if the terminal was reset)",
                            presented.address.unwrap_or("an unknown address")
                        ),
                    ))
                }
                None => {}
            }
        }
        if presented.handshake {
            match (&auth.handshake_key, presented.handshake_key) {
                (None, Some(key)) if !key.is_empty() => {
                    auth = self.store.pin_push_handshake_key(sn, key, now).await?;
                    self.remember(sn, auth.clone());
                    tracing::info!(sn = %sn, "pushcommkey of the handshake pinned; later handshakes must carry it");
                }
                (Some(pinned), Some(key)) if pinned == key => {}
                (Some(_), presented_key) => {
                    return Ok(self.refuse(
                        sn,
                        "handshake_key",
                        format!(
                            "push terminal {sn}: handshake from {} {} pushcommkey; answered UNKNOWN DEVICE (forget \
                             the pinned key with `punchd devices push-auth {sn} --forget-handshake-key` if the \
                             terminal was replaced)",
                            presented.address.unwrap_or("an unknown address"),
                            if presented_key.is_some() { "carries another" } else { "carries no" }
                        ),
                    ))
                }
                (None, _) => {}
            }
        }
        let Some(address) = presented.address else {
            return Ok(Verdict::Accept);
        };
        if !self.binds(&auth) || auth.addresses.iter().any(|a| a == address) {
            return Ok(Verdict::Accept);
        }
        if auth.addresses.is_empty() {
            let auth = self.store.bind_push_address(sn, address, now).await?;
            self.remember(sn, auth);
            tracing::info!(sn = %sn, address, "push terminal bound to the address of its first approved request");
            return Ok(Verdict::Accept);
        }
        self.hold(sn, address, &auth, now).await?;
        Ok(self.refuse(
            sn,
            "address",
            format!(
                "push terminal {sn} contacted from {address}, which it was not approved from (accepted: {}); its \
                 requests are answered UNKNOWN DEVICE and held until `punchd devices approve {sn}` accepts the \
                 address (or `punchd devices push-auth {sn} --bind off` for a DHCP site)",
                auth.addresses.join(", ")
            ),
        ))
    }

    /// Record a refused request from `address`: the first one at once, then the count every few seconds.
    async fn hold(
        &self,
        sn: &DeviceSn,
        address: &str,
        auth: &PushAuth,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let write = {
            let Ok(mut cache) = self.cache.lock() else {
                return Ok(());
            };
            let Some(entry) = cache.get_mut(sn) else {
                return Ok(());
            };
            entry.unwritten_holds += 1;
            let new_address = auth.held_address.as_deref() != Some(address);
            let due = entry
                .last_hold_write
                .is_none_or(|at| at.elapsed() >= HOLD_WRITE_EVERY);
            if new_address || due {
                entry.last_hold_write = Some(Instant::now());
                Some(std::mem::take(&mut entry.unwritten_holds))
            } else {
                None
            }
        };
        if let Some(n) = write {
            let auth = self.store.hold_push_address(sn, address, n, now).await?;
            self.remember(sn, auth);
        }
        Ok(())
    }

    /// Forget what is cached for a terminal (after its settings changed in this process).
    pub fn forget(&self, sn: &DeviceSn) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(sn);
        }
    }
}

/// What approving a device does for push authentication: the held address (if any) is accepted, and a terminal
/// that has no accepted address yet is bound to the address it last talked from (the one it waited in
/// `pending` from). Called by `punchd devices approve` and `POST /api/v1/devices/{sn}/approve`.
///
/// Errors: the store failed.
pub async fn on_approve(
    store: &dyn Store,
    device: &Device,
    now: DateTime<Utc>,
) -> Result<PushAuth> {
    if device.transport != crate::domain::Transport::Push {
        return store.push_auth(&device.sn).await;
    }
    let mut auth = store.accept_held_push_address(&device.sn, now).await?;
    if auth.addresses.is_empty() {
        if let Some(ip) = &device.last_ip {
            auth = store.bind_push_address(&device.sn, ip, now).await?;
        }
    }
    if let Some(added) = auth.addresses.last() {
        tracing::info!(sn = %device.sn, address = %added, "push terminal accepted from its address");
    }
    Ok(auth)
}

/// Set a terminal's authentication settings (binding, ComKey, forgetting pinned values).
///
/// Errors: the store failed.
pub async fn update(
    store: &dyn Store,
    sn: &DeviceSn,
    patch: PushAuthPatch,
    now: DateTime<Utc>,
) -> Result<PushAuth> {
    store.update_push_auth(sn, patch, now).await
}
