//! `punchd journal`: list raw journal entries, to find what a terminal sent and the lines that could not be
//! read (log lines name the `journal_id`; `GET /api/v1/journal/{id}` has the body).

use std::sync::Arc;

use clap::Args;

use crate::format::{Format, Rows};
use crate::store::operations::JournalSummary;
use crate::store::{JournalFilter, Store};

/// `journal` options. Times are arrival times: RFC 3339, or `YYYY-MM-DD[ HH:MM[:SS]]` read as UTC.
#[derive(Debug, Args)]
pub struct JournalArgs {
    /// Only this device (SN).
    #[arg(long)]
    pub device: Option<String>,
    /// Only this kind (ATTLOG, OPERLOG, devicecmd, pull:attendance, …).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only entries with lines that could not be read.
    #[arg(long)]
    pub errors: bool,
    /// Arrived at or after (UTC).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Arrived before (UTC).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only entries with an id greater than this.
    #[arg(long, value_name = "ID")]
    pub after: Option<i64>,
    /// At most this many (0 = all).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Journal entries as rows: id, arrival, device, source, kind, body size, records, stored, duplicates, errors
/// and the first error (`line N: reason`).
pub fn journal_rows(entries: &[JournalSummary]) -> Rows {
    Rows {
        header: vec![
            "id",
            "received_at",
            "device_sn",
            "source",
            "kind",
            "bytes",
            "records",
            "stored",
            "duplicate",
            "errors",
            "first_error",
        ],
        rows: entries
            .iter()
            .map(|e| {
                vec![
                    e.id.to_string(),
                    e.received_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                    e.device_sn
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    e.source.as_str().to_owned(),
                    e.kind.clone(),
                    e.body_len.to_string(),
                    e.n_records.to_string(),
                    e.n_stored.to_string(),
                    e.n_duplicate.to_string(),
                    e.errors.len().to_string(),
                    e.errors
                        .first()
                        .map(|i| {
                            format!("line {}: {}", i.line_no, i.reason)
                                .chars()
                                .map(|c| if c.is_control() { ' ' } else { c })
                                .take(120)
                                .collect()
                        })
                        .unwrap_or_default(),
                ]
            })
            .collect(),
    }
}

/// Run `punchd journal`.
pub async fn journal(store: Arc<dyn Store>, args: JournalArgs) -> anyhow::Result<()> {
    let time = |s: &Option<String>| -> anyhow::Result<_> {
        s.as_deref()
            .map(crate::web::api::parse_utc)
            .transpose()
            .map_err(anyhow::Error::msg)
    };
    let device_sn = args
        .device
        .as_deref()
        .map(|s| {
            crate::domain::DeviceSn::parse(s).map_err(|e| anyhow::anyhow!("invalid SN {s:?}: {e}"))
        })
        .transpose()?;
    let filter = JournalFilter {
        device_sn,
        kind: args.kind,
        has_errors: args.errors.then_some(true),
        from: time(&args.since)?,
        to: time(&args.until)?,
        after_id: args.after,
        limit: args.limit,
    };
    let entries = store.list_journal(&filter).await?;
    super::print_rows(
        &journal_rows(&entries),
        args.format,
        serde_json::to_value(&entries)?,
    )
}
