//! [`SourcesStore`] on PostgreSQL: webhook, import and BioTime sources.
//!
//! PLACEHOLDER until the sources area is ported (helper pgops): every method answers a `Backend` error.
//! Port `sqlite/sources.rs` (its table goes into migration 0002).

use chrono::{DateTime, Utc};

use super::{unported, PgStore};
use crate::domain::Punch;
use crate::store::sources::{NewSource, PunchOrder, SourceInfo, SourceRun, SourcesStore};
use crate::store::{PunchFilter, Result, StoreError};

#[async_trait::async_trait]
impl SourcesStore for PgStore {
    async fn create_source(&self, _source: NewSource, _now: DateTime<Utc>) -> Result<SourceInfo> {
        Err(unported("sources"))
    }

    async fn ensure_source(&self, _source: NewSource, _now: DateTime<Utc>) -> Result<SourceInfo> {
        Err(unported("sources"))
    }

    async fn get_source(&self, name: &str) -> Result<SourceInfo> {
        Err(StoreError::NotFound(format!("source {name}")))
    }

    async fn find_source_by_token(&self, _token_hash: &str) -> Result<Option<SourceInfo>> {
        // No source can exist until sources are ported.
        Ok(None)
    }

    async fn list_sources(&self) -> Result<Vec<SourceInfo>> {
        // An empty list lets `serve` run its BioTime scheduler with nothing to read.
        Ok(Vec::new())
    }

    async fn source_secret(&self, _id: i64) -> Result<Option<String>> {
        Err(unported("sources"))
    }

    async fn punch_page(
        &self,
        _filter: &PunchFilter,
        _order: PunchOrder,
        _offset: u64,
        _limit: u64,
    ) -> Result<Vec<Punch>> {
        Err(unported("punch pages"))
    }

    async fn record_source_run(&self, _id: i64, _run: SourceRun) -> Result<()> {
        Err(unported("sources"))
    }
}
