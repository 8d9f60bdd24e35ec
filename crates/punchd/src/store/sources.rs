//! Sources other than terminals (webhooks, file imports, BioTime readers): their settings, cursor and counts
//! (issue 9). A source is named; its punches carry the source kind (`domain::Source`) and its journal entries
//! name it in `request`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{PunchFilter, Result};
use crate::domain::Punch;

/// What kind of source a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Devices or apps POST JSON to `/api/v1/sources/webhook` with the source's token.
    Webhook,
    /// Files imported with `punchd import` or `POST /api/v1/imports`.
    Import,
    /// A ZKBio Time server read by `punchd serve`.
    Biotime,
}

impl SourceKind {
    /// Lowercase name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Webhook => "webhook",
            SourceKind::Import => "import",
            SourceKind::Biotime => "biotime",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<SourceKind> {
        Some(match s {
            "webhook" => SourceKind::Webhook,
            "import" => SourceKind::Import,
            "biotime" => SourceKind::Biotime,
            _ => return None,
        })
    }
}

/// A source to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSource {
    /// Unique name (`gate-app`).
    pub name: String,
    /// Kind.
    pub kind: SourceKind,
    /// SHA-256 hex of the webhook token (never the token itself).
    pub token_hash: Option<String>,
    /// IANA zone naive times are read in; `None` = the configured default.
    pub time_zone: Option<String>,
    /// Kind-specific settings (JSON object).
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// A secret the source needs in clear (the BioTime password); never listed.
    pub secret: Option<String>,
}

/// A source as stored, with what its runs did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SourceInfo {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Kind.
    pub kind: SourceKind,
    /// IANA zone naive times are read in; `None` = the configured default.
    pub time_zone: Option<String>,
    /// Kind-specific settings (never secrets: the webhook token is stored hashed).
    #[schema(value_type = Object)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// False when the source is switched off.
    pub enabled: bool,
    /// `ok` (last run succeeded), `failing` (last run failed), `new` (never ran) or `disabled`.
    pub state: String,
    /// Kind-specific position; `None` for sources that are pushed to.
    pub cursor: Option<String>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last run, successful or not (UTC).
    pub last_run_at: Option<DateTime<Utc>>,
    /// Last successful run (UTC).
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last run's error in plain words; `None` once a run succeeded.
    pub last_error: Option<String>,
    /// When that error happened (UTC).
    pub last_error_at: Option<DateTime<Utc>>,
    /// Runs (webhook requests, imported chunks, BioTime pages) counted so far.
    pub n_runs: u64,
    /// Punches newly stored through this source.
    pub n_stored: u64,
    /// Punches it delivered that were already held.
    pub n_duplicate: u64,
    /// Rows or events it delivered that were refused (bad row, bad event).
    pub n_rejected: u64,
    /// When someone last asked for the source to be read now (`POST /api/v1/sources/{name}/run`, the sources
    /// page's button), UTC; `None` if nobody ever did. A BioTime source is read within a second or two of a
    /// request newer than its last run's start, inside its interval or its pause after a rejected password.
    pub run_requested_at: Option<DateTime<Utc>>,
}

/// What one run (request, chunk, page) of a source did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceRun {
    /// When it ended (UTC).
    pub at: DateTime<Utc>,
    /// `None` on success, else the error in plain words (the counts are still added).
    pub error: Option<String>,
    /// Punches newly stored.
    pub n_stored: u64,
    /// Punches already held.
    pub n_duplicate: u64,
    /// Rows or events refused.
    pub n_rejected: u64,
    /// The new cursor, when the run advanced it (`None` leaves it).
    pub cursor: Option<String>,
}

/// The orders the BioTime-compatible API lists punches in (ties broken by id, in the same direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunchOrder {
    /// By id.
    Id,
    /// By id, newest first.
    IdDesc,
    /// By terminal local time.
    PunchTime,
    /// By terminal local time, latest first.
    PunchTimeDesc,
    /// By receive time (BioTime's upload_time).
    Received,
    /// By receive time, latest first.
    ReceivedDesc,
}

/// Persistence of sources. `record_source_run` must be durable before `Ok`.
#[async_trait::async_trait]
pub trait SourcesStore: Send + Sync + 'static {
    /// Create a source; `Conflict` if the name is taken.
    async fn create_source(&self, source: NewSource, now: DateTime<Utc>) -> Result<SourceInfo>;
    /// The source of this name, creating it with `source` when there is none (imports name their source on use).
    async fn ensure_source(&self, source: NewSource, now: DateTime<Utc>) -> Result<SourceInfo>;
    /// One source by name, or `NotFound`.
    async fn get_source(&self, name: &str) -> Result<SourceInfo>;
    /// The enabled source holding this token hash, if any.
    async fn find_source_by_token(&self, token_hash: &str) -> Result<Option<SourceInfo>>;
    /// All sources, by name.
    async fn list_sources(&self) -> Result<Vec<SourceInfo>>;
    /// The source's secret (the BioTime password), if it has one.
    async fn source_secret(&self, id: i64) -> Result<Option<String>>;
    /// One page of punches matching `filter` (its `after_id` and `limit` are ignored) in `order`, skipping
    /// `offset` (the BioTime-compatible API's page numbers).
    async fn punch_page(
        &self,
        filter: &PunchFilter,
        order: PunchOrder,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Punch>>;
    /// Add a run's counts and outcome to a source (by id); `NotFound` if it is gone.
    async fn record_source_run(&self, id: i64, run: SourceRun) -> Result<()>;
    /// Ask for the source of this name to be read now: set its `run_requested_at` to `at` and answer the source
    /// as it is then; `NotFound` if there is none. Which kinds can be read is the caller's business.
    async fn request_source_run(&self, name: &str, at: DateTime<Utc>) -> Result<SourceInfo>;
}
