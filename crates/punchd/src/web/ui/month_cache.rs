//! The computed months the review pages show, kept between requests.
//!
//! A site's month is computed from every punch of its devices (`attendance::monthly::month`): for 10,000
//! employees that is close to a million punches and most of a second. The review grid shows one page of
//! employees at a time, and HR clicks through pages and days, so the month is computed once and each page is
//! rendered from it. An entry is used while nothing it was computed from can have changed:
//!
//! - the highest stored punch id is the same (no punch arrived since), and
//! - the newest audit log id is the same (every change HR makes — employees, mappings, shifts, roster, policies,
//!   corrections, reviews, sign-off, reopen — is written with an audit record), and
//! - it is younger than [`MAX_AGE`] (device watermarks, and so incomplete days, move with time alone).
//!
//! Depends on `attendance` and `store` only; no HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::attendance::monthly::{self, Month};
use crate::attendance::setup::AttResult;
use crate::store::Store;

/// How long a computed month is used at most, even when no punch and no change arrived (watermarks advance).
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// How many months are kept (each site-month of 10,000 employees is tens of megabytes).
pub const MAX_ENTRIES: usize = 4;

/// What an entry was computed from: (highest punch id, newest audit id).
type Fingerprint = (i64, i64);

struct Entry {
    month: Arc<Month>,
    fingerprint: Fingerprint,
    computed: Instant,
}

/// Computed months by (site, `YYYY-MM`). Cheap to share (`Arc`); one per router.
#[derive(Default)]
pub struct MonthCache {
    entries: Mutex<HashMap<(String, String), Entry>>,
}

impl MonthCache {
    /// The month of `site` (`YYYY-MM`), from the cache when still valid, else computed and kept.
    ///
    /// Errors: those of [`monthly::month`] (unknown site, bad month, store failure).
    pub async fn month(&self, store: &dyn Store, site: &str, month: &str) -> AttResult<Arc<Month>> {
        let fingerprint = fingerprint(store).await?;
        let key = (site.to_owned(), month.to_owned());
        if let Some(m) = self.lookup(&key, fingerprint) {
            return Ok(m);
        }
        let computed = Arc::new(monthly::month(store, site, month, Utc::now()).await?);
        self.keep(key, fingerprint, computed.clone());
        Ok(computed)
    }

    /// Forget every entry of a site (after a change made through the UI, so the next page shows it at once).
    pub fn forget_site(&self, site: &str) {
        self.lock().retain(|(s, _), _| s != site);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        // A panic while holding the lock leaves a map that is still consistent (single inserts and removes).
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lookup(&self, key: &(String, String), fingerprint: Fingerprint) -> Option<Arc<Month>> {
        let entries = self.lock();
        let e = entries.get(key)?;
        (e.fingerprint == fingerprint && e.computed.elapsed() < MAX_AGE).then(|| e.month.clone())
    }

    fn keep(&self, key: (String, String), fingerprint: Fingerprint, month: Arc<Month>) {
        let mut entries = self.lock();
        entries.retain(|_, e| e.computed.elapsed() < MAX_AGE);
        while entries.len() >= MAX_ENTRIES {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.computed)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
        entries.insert(
            key,
            Entry {
                month,
                fingerprint,
                computed: Instant::now(),
            },
        );
    }
}

async fn fingerprint(store: &dyn Store) -> AttResult<Fingerprint> {
    let max_punch = store.max_punch_id().await?;
    let last_audit = store.list_audit(1).await?.first().map_or(0, |a| a.id);
    Ok((max_punch, last_audit))
}
