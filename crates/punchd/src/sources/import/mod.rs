//! File import (issue 9): a terminal's USB export (`<SN>_attlog.dat`), a CSV file or a spreadsheet (XLSX, and
//! whatever else calamine reads: XLSM, XLS, ODS) becomes punches through the one ingest path, with source
//! `import`.
//!
//! How a file is read:
//! - **Format**: `--format`, else the extension (`.dat` attlog, `.csv`/`.txt` CSV, `.xlsx`/`.xlsm`/`.xls`/`.ods`
//!   spreadsheet), else the content (a zip or OLE file is a spreadsheet; a first line with a tab and a date is an
//!   attlog; anything else CSV).
//! - **attlog**: tab-separated, one punch per line, no header; the layouts are in [`AttlogLayout`] (detected from
//!   the first line, or `--attlog-layout`). The device is `--device`, else the file name's `<SN>_attlog.dat`.
//! - **CSV**: UTF-8 (a BOM is skipped) or Windows-1252, decided per cell; delimiter `,`, `;` or tab from the
//!   first line; quoted cells as RFC 4180.
//! - **Columns** (CSV, spreadsheets): `--columns pin=…,time=…` ([`ColumnSpec`]), else the header: the first of
//!   the first 20 rows that names a PIN column (`User ID`, `PIN`, `Emp Code`, `AC-No.`, `No.`, …) and a time
//!   (`Time`, `Date/Time`, `Punch Time`, …) or a date column (then `Time` is the time of day). Rows above the
//!   header (report titles) are skipped. Without a header, a first row whose second cell is a date and time is
//!   read as `PIN, time, state, verify, work code`. A file with none of these is refused with the cells found.
//! - **Times** are terminal local wall times in the device's zone (`--time-zone`, else the device's zone, else
//!   the configured default); RFC 3339 times with an offset are converted into that zone. Forms: see
//!   `parse::parse_date_time`; `--date-format` (chrono strftime) overrides them.
//!
//! Rows are read on a blocking thread and handed over in chunks of [`CHUNK_ROWS`] through a channel of two, so a
//! 1,000,000-line file never sits in memory (spreadsheets are the exception: calamine reads a sheet whole). Each
//! chunk is one journal entry (its exact bytes: the entries of one import, in id order, are the file; a
//! spreadsheet's bytes go with the first chunk) and one batch; bad rows are recorded in the entry's errors with
//! their line and reason, the rest stored. Importing the same file again stores nothing new (the store's punch
//! identity), and counts every punch as already held.

pub mod parse;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::Utc;
use chrono_tz::Tz;
use serde::Serialize;

use crate::app::App;
use crate::domain::{DeviceSn, Source};
use crate::ingest::{Delivery, PunchRecord};
use crate::store::sources::{NewSource, SourceKind, SourceRun};
use crate::store::{Batch, LineIssue, RawEntry, StoreError};
pub use parse::{parse_state, AttlogLayout, ColumnRef, ColumnSpec};
use parse::{AttlogRows, CsvRows, Mapping, RowSource, SheetRows};

/// Rows per chunk (one journal entry and one batch each).
pub const CHUNK_ROWS: usize = 10_000;
/// How many bad rows a report lists (all are counted and all are in the journal).
pub const MAX_LISTED_BAD_ROWS: usize = 10_000;
/// How many rows a report shows as a preview.
pub const PREVIEW_ROWS: usize = 10;
/// Longest PIN accepted (as in ingest).
pub(crate) const MAX_PIN_LEN: usize = 64;
/// How many leading rows are searched for a header.
const HEADER_SEARCH_ROWS: usize = 20;
/// The name of the source row imports are counted under (`punchd sources`).
pub const IMPORT_SOURCE_NAME: &str = "import";

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// A terminal's USB export, `<SN>_attlog.dat`: tab-separated, no header.
    Attlog,
    /// Comma, semicolon or tab separated text with a header or `--columns`.
    Csv,
    /// A spreadsheet (XLSX; XLSM, XLS and ODS are read too): the first sheet with data.
    Xlsx,
}

impl FileFormat {
    /// Parse a name (`attlog`, `csv`, `xlsx`).
    pub fn parse(s: &str) -> Option<FileFormat> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "attlog" | "dat" => FileFormat::Attlog,
            "csv" | "txt" => FileFormat::Csv,
            "xlsx" | "xlsm" | "xls" | "ods" | "excel" => FileFormat::Xlsx,
            _ => return None,
        })
    }

    fn from_name(name: &str) -> Option<FileFormat> {
        let ext = Path::new(name).extension()?.to_str()?;
        FileFormat::parse(ext)
    }

    fn sniff(head: &[u8]) -> FileFormat {
        if head.starts_with(b"PK\x03\x04") || head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
            return FileFormat::Xlsx;
        }
        let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
        let text = parse::decode(line);
        let cells: Vec<&str> = text.split('\t').collect();
        let dated = cells.get(1).is_some_and(|c| {
            parse::parse_date_time(c.trim_end_matches('\r'), None, chrono_tz::UTC).is_ok()
        });
        if dated {
            FileFormat::Attlog
        } else {
            FileFormat::Csv
        }
    }
}

/// How to import a file.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The file's name (for format and SN detection, and the journal).
    pub file_name: String,
    /// The device the punches belong to; required unless the file names it (attlog file name, device column).
    pub device: Option<DeviceSn>,
    /// Format; detected when `None`.
    pub format: Option<FileFormat>,
    /// Attlog layout; detected when `None`.
    pub attlog_layout: Option<AttlogLayout>,
    /// Zone of the times in the file; `None` = each device's zone, else the configured default.
    pub time_zone: Option<Tz>,
    /// Column mapping; detected from the header when `None`.
    pub columns: Option<ColumnSpec>,
    /// A chrono strftime format for the time (or date and time) cells.
    pub date_format: Option<String>,
    /// Read and report, store nothing.
    pub dry_run: bool,
}

/// What a file holds: a path, or bytes already in memory (an upload).
pub enum ImportInput {
    /// A file on disk.
    Path(PathBuf),
    /// An uploaded file's bytes.
    Bytes(Vec<u8>),
}

/// A punch as read, shown in a report's preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PreviewRow {
    /// 1-based line (CSV, attlog) or row (spreadsheet) number.
    pub line_no: usize,
    /// The device.
    pub device_sn: String,
    /// PIN.
    pub pin: String,
    /// Terminal local wall time, `YYYY-MM-DD HH:MM:SS`.
    pub punched_at: String,
    /// Punch state code, if the file has one.
    pub punch_state: Option<u16>,
    /// Verify mode code, if the file has one.
    pub verify_mode: Option<u16>,
}

/// What an import did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// The file's name.
    pub file: String,
    /// The format read.
    #[schema(value_type = Option<String>)]
    pub format: Option<FileFormat>,
    /// Which column held what, in words (`pin=1 "User ID", time=2 "Punch Time"`), and the attlog layout.
    pub columns: String,
    /// True when nothing was stored.
    pub dry_run: bool,
    /// Data rows read (header and blank lines not counted).
    pub n_rows: u64,
    /// Rows that became punches.
    pub n_punches: u64,
    /// Punches newly stored (0 in a dry run).
    pub n_stored: u64,
    /// Punches already held (imported before, or repeated in the file); 0 in a dry run.
    pub n_duplicate: u64,
    /// Rows refused.
    pub n_bad: u64,
    /// The refused rows with line and reason (the first 10,000).
    pub bad_rows: Vec<LineIssue>,
    /// The first punches read.
    pub first_rows: Vec<PreviewRow>,
    /// Devices the punches belong to.
    pub devices: Vec<String>,
    /// Journal entries written, first and last id.
    pub journal_ids: Option<(i64, i64)>,
}

/// Why a file was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("reading the file: {0}")]
    Io(String),
    /// The spreadsheet could not be opened.
    #[error("reading the spreadsheet: {0}")]
    Spreadsheet(String),
    /// No PIN and time columns were found.
    #[error(
        "no recognisable columns (a PIN and a time): {0}; name them with --columns pin=…,time=…"
    )]
    NoColumns(String),
    /// The punches belong to no known device.
    #[error("{0}")]
    NoDevice(String),
    /// An option is wrong.
    #[error("{0}")]
    BadOption(String),
    /// The store failed; what was committed before stays (a re-import adds only the rest).
    #[error("storing: {0}")]
    Store(#[from] StoreError),
}

/// One row read: its line number, and the punch with its device (`None`: the file's device, given once in
/// [`Message::Start`], not cloned per row) or why the row is bad.
type ReadRow = (usize, Result<(Option<DeviceSn>, parse::Punch), BadRow>);

/// A row refused: the reason and the row's cells joined by tabs (made only for bad rows).
struct BadRow {
    reason: String,
    text: String,
}

/// One chunk of parsed rows and the file bytes they came from.
struct Chunk {
    raw: Vec<u8>,
    rows: Vec<ReadRow>,
    position: u64,
    first_line: usize,
    last_line: usize,
}

/// What the reader thread sends.
enum Message {
    Start {
        format: FileFormat,
        columns: String,
        /// The device of every row (`--device` or the attlog file name); `None` when a column names it.
        device: Option<DeviceSn>,
    },
    Chunk(Chunk),
}

/// Import a file through the app's ingest path. `progress` is told the bytes read (total = file size).
///
/// Errors: the file cannot be read or has no recognisable columns, no device is known, or the store failed
/// (chunks committed before the failure stay; importing the file again adds only what is missing).
pub async fn import(
    app: &App,
    input: ImportInput,
    options: ImportOptions,
    progress: Option<indicatif::ProgressBar>,
) -> Result<ImportReport, ImportError> {
    let zones: HashMap<DeviceSn, Tz> = app
        .registry
        .devices_where(|_| true)
        .into_iter()
        .map(|d| {
            let zone = app.registry.time_zone(&d);
            (d.sn, zone)
        })
        .collect();
    let default_zone = app.registry.default_time_zone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(2);
    let reader_options = options.clone();
    let reader = tokio::task::spawn_blocking(move || {
        read_file(input, &reader_options, &zones, default_zone, &tx)
    });
    let mut report = ImportReport {
        file: options.file_name.clone(),
        dry_run: options.dry_run,
        ..ImportReport::default()
    };
    let mut devices: Vec<String> = Vec::new();
    let mut failure: Option<ImportError> = None;
    let mut file_device: Option<DeviceSn> = None;
    while let Some(message) = rx.recv().await {
        match message {
            Message::Start {
                format,
                columns,
                device,
            } => {
                report.format = Some(format);
                report.columns = columns;
                file_device = device;
            }
            Message::Chunk(chunk) => {
                if let Some(p) = &progress {
                    p.set_position(chunk.position);
                }
                if failure.is_some() {
                    continue;
                }
                let stored = store_chunk(
                    app,
                    &options,
                    file_device.as_ref(),
                    chunk,
                    &mut report,
                    &mut devices,
                );
                if let Err(e) = stored.await {
                    failure = Some(e);
                }
            }
        }
    }
    let read = reader
        .await
        .map_err(|e| ImportError::Io(format!("reader thread failed: {e}")))?;
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    devices.sort();
    report.devices = devices;
    let outcome = match (failure, read) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(())) => Ok(()),
    };
    if !options.dry_run && report.format.is_some() {
        record_run(app, &report, outcome.as_ref().err()).await;
    }
    outcome.map(|()| report)
}

/// Count the import under the `import` source (`punchd sources`); a failure to do so is logged, not fatal.
async fn record_run(app: &App, report: &ImportReport, error: Option<&ImportError>) {
    let now = Utc::now();
    let source = NewSource {
        name: IMPORT_SOURCE_NAME.to_owned(),
        kind: SourceKind::Import,
        token_hash: None,
        time_zone: None,
        settings: serde_json::Map::new(),
        secret: None,
    };
    let result = async {
        let source = app.store.ensure_source(source, now).await?;
        app.store
            .record_source_run(
                source.id,
                SourceRun {
                    at: now,
                    error: error.map(|e| format!("{}: {e}", report.file)),
                    n_stored: report.n_stored,
                    n_duplicate: report.n_duplicate,
                    n_rejected: report.n_bad,
                    cursor: Some(report.file.clone()),
                },
            )
            .await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "recording the import under the import source failed");
    }
}

async fn store_chunk(
    app: &App,
    options: &ImportOptions,
    file_device: Option<&DeviceSn>,
    mut chunk: Chunk,
    report: &mut ImportReport,
    devices: &mut Vec<String>,
) -> Result<(), ImportError> {
    // Rows of the file's device carry `None` (see `ReadRow`).
    let mut by_device: Vec<(Option<DeviceSn>, Vec<PunchRecord>)> = Vec::new();
    let mut issues = Vec::new();
    let rows = std::mem::take(&mut chunk.rows);
    let n_rows = rows.len();
    for (line_no, row) in rows {
        report.n_rows += 1;
        match row {
            Ok((sn, p)) => {
                report.n_punches += 1;
                if report.first_rows.len() < PREVIEW_ROWS {
                    report.first_rows.push(PreviewRow {
                        line_no,
                        device_sn: sn
                            .as_ref()
                            .or(file_device)
                            .map(DeviceSn::to_string)
                            .unwrap_or_default(),
                        pin: p.pin.clone(),
                        punched_at: p.punched_at.to_string(),
                        punch_state: p.punch_state,
                        verify_mode: p.verify_mode,
                    });
                }
                let record = PunchRecord {
                    line_no,
                    pin: p.pin,
                    punched_at: p.punched_at,
                    punch_state: p.punch_state,
                    verify_mode: p.verify_mode,
                    work_code: p.work_code,
                    extra: p.extra,
                };
                match by_device.iter_mut().find(|(d, _)| *d == sn) {
                    Some((_, records)) => records.push(record),
                    None => {
                        // Usually one device a file: its group takes the whole chunk.
                        let mut records = if by_device.is_empty() {
                            Vec::with_capacity(n_rows)
                        } else {
                            Vec::new()
                        };
                        records.push(record);
                        by_device.push((sn, records));
                    }
                }
            }
            Err(BadRow { reason, text }) => {
                report.n_bad += 1;
                let issue = LineIssue {
                    line_no,
                    line: text.chars().take(512).collect(),
                    reason,
                };
                if report.bad_rows.len() < MAX_LISTED_BAD_ROWS {
                    report.bad_rows.push(issue.clone());
                }
                issues.push(issue);
            }
        }
    }
    let mut grouped = Vec::with_capacity(by_device.len());
    for (sn, records) in by_device {
        let Some(sn) = sn.or_else(|| file_device.cloned()) else {
            // Unreachable: a row without a device column is the file's device, and the reader refuses a file
            // with neither.
            continue;
        };
        if !devices.iter().any(|d| d == sn.as_str()) {
            devices.push(sn.to_string());
        }
        grouped.push((sn, records));
    }
    let by_device = grouped;
    if options.dry_run {
        return Ok(());
    }
    if by_device.is_empty() {
        // Only bad rows (or none): journal the bytes and the reasons all the same.
        let id = app
            .ingest
            .journal({
                let body = std::mem::take(&mut chunk.raw);
                raw_entry(options, &chunk, None, body, issues)
            })
            .await?;
        note_journal(report, id);
        return Ok(());
    }
    let mut raw = Some(std::mem::take(&mut chunk.raw));
    let mut issues = Some(issues);
    for (sn, punches) in by_device {
        let zone = options.time_zone.unwrap_or_else(|| zone_of(app, &sn));
        let body = raw.take().unwrap_or_default();
        let entry = raw_entry(
            options,
            &chunk,
            Some(sn.clone()),
            body,
            issues.take().unwrap_or_default(),
        );
        let outcome = app
            .ingest
            .ingest(Delivery {
                device_sn: sn,
                time_zone: zone,
                source: Source::Import,
                punches,
                batch: Batch::new(entry),
            })
            .await?;
        report.n_stored += outcome.n_stored as u64;
        report.n_duplicate += outcome.n_duplicate as u64;
        note_journal(report, outcome.journal_id);
    }
    Ok(())
}

fn note_journal(report: &mut ImportReport, id: i64) {
    report.journal_ids = Some(match report.journal_ids {
        None => (id, id),
        Some((first, _)) => (first, id),
    });
}

fn zone_of(app: &App, sn: &DeviceSn) -> Tz {
    app.registry
        .get(sn)
        .map(|entry| app.registry.entry_time_zone(&entry))
        .unwrap_or_else(|| app.registry.default_time_zone())
}

fn raw_entry(
    options: &ImportOptions,
    chunk: &Chunk,
    device_sn: Option<DeviceSn>,
    body: Vec<u8>,
    errors: Vec<LineIssue>,
) -> RawEntry {
    RawEntry {
        received_at: Utc::now(),
        device_sn,
        source: Source::Import,
        kind: "import".to_owned(),
        request: format!(
            "import {} lines {}-{}",
            options.file_name, chunk.first_line, chunk.last_line
        ),
        remote_addr: None,
        body,
        errors,
    }
}

/// The reader thread: open, detect, map, parse, send chunks. Stops early when the receiver is gone.
fn read_file(
    input: ImportInput,
    options: &ImportOptions,
    zones: &HashMap<DeviceSn, Tz>,
    default_zone: Tz,
    tx: &tokio::sync::mpsc::Sender<Message>,
) -> Result<(), ImportError> {
    let (format, mut rows): (FileFormat, Box<dyn RowSource>) = open(input, options)?;
    let file_device = match (&options.device, format) {
        (Some(sn), _) => Some(sn.clone()),
        (None, FileFormat::Attlog) => Some(device_from_file_name(&options.file_name)?),
        (None, _) => None,
    };
    // Find the mapping: fixed for attlog, from the header (or --columns) for the others.
    let mut pending: Vec<(usize, Vec<String>)> = Vec::new();
    let mapping = match format {
        FileFormat::Attlog => {
            let Some(first) = rows.next_row()? else {
                return finish_empty(format, tx);
            };
            let layout = options
                .attlog_layout
                .unwrap_or_else(|| AttlogLayout::detect(&first.1));
            pending.push(first);
            let mut m = layout.mapping();
            m.header.clear();
            (m, format!("attlog layout {layout:?}: ").to_lowercase())
        }
        _ => {
            let mut head = Vec::new();
            let mut found = None;
            while head.len() < HEADER_SEARCH_ROWS {
                let Some(row) = rows.next_row()? else { break };
                if let Some(spec) = &options.columns {
                    if let Ok(m) = Mapping::from_spec(spec, &row.1) {
                        let by_number = spec
                            .0
                            .iter()
                            .all(|(_, c)| matches!(c, ColumnRef::Number(_)));
                        let header_row = !by_number
                            || m.convert(&row.1, options.date_format.as_deref(), default_zone)
                                .is_err();
                        if header_row {
                            found = Some(m);
                        } else {
                            found = Some(Mapping {
                                header: Vec::new(),
                                ..m
                            });
                            head.push(row);
                        }
                        break;
                    }
                } else if let Some(m) = Mapping::from_header(&row.1) {
                    found = Some(m);
                    break;
                }
                head.push(row);
            }
            let mapping = match found {
                Some(m) => m,
                None => {
                    // No header: a first row of PIN, date-time, … is read positionally.
                    let positional = AttlogLayout::Push.mapping();
                    match head.first() {
                        Some((_, cells))
                            if options.columns.is_none()
                                && positional
                                    .convert(cells, options.date_format.as_deref(), default_zone)
                                    .is_ok() =>
                        {
                            positional
                        }
                        _ => {
                            let found = head
                                .first()
                                .map(|(n, cells)| format!("row {n} has {cells:?}"))
                                .unwrap_or_else(|| "the file has no rows".to_owned());
                            return Err(match &options.columns {
                                Some(_) => ImportError::BadOption(format!(
                                    "--columns names columns that are not in the first {HEADER_SEARCH_ROWS} rows; {found}"
                                )),
                                None => ImportError::NoColumns(found),
                            });
                        }
                    }
                }
            };
            if mapping.header.is_empty() {
                pending = head;
            }
            let description = String::new();
            (mapping, description)
        }
    };
    let (mapping, mut description) = mapping;
    description.push_str(&mapping.describe());
    if file_device.is_none() && mapping.device.is_none() {
        return Err(ImportError::NoDevice(
            "the file names no device: give --device SN (or a device column)".into(),
        ));
    }
    // The zone of the file's device, looked up once (it matters only for RFC 3339 times with an offset).
    let file_device = file_device.map(|sn| {
        let zone = options
            .time_zone
            .or_else(|| zones.get(&sn).copied())
            .unwrap_or(default_zone);
        (sn, zone)
    });
    if tx
        .blocking_send(Message::Start {
            format,
            columns: description,
            device: file_device.as_ref().map(|(sn, _)| sn.clone()),
        })
        .is_err()
    {
        return Ok(());
    }
    let mut chunk = new_chunk();
    let mut pending = pending.into_iter();
    // One row's cells, reused from row to row.
    let mut cells: Vec<String> = Vec::new();
    loop {
        let line_no = match pending.next() {
            Some((line_no, row)) => {
                cells = row;
                line_no
            }
            None => match rows.read_row(&mut cells)? {
                Some(line_no) => line_no,
                None => break,
            },
        };
        if chunk.rows.is_empty() {
            chunk.first_line = line_no;
        }
        chunk.last_line = line_no;
        let result = convert_row(
            &mapping,
            &cells,
            options,
            file_device.as_ref().map(|(_, zone)| *zone),
            zones,
            default_zone,
        )
        .map_err(|reason| BadRow {
            reason,
            text: cells.join("\t"),
        });
        chunk.rows.push((line_no, result));
        if chunk.rows.len() >= CHUNK_ROWS {
            chunk.raw = rows.take_raw();
            chunk.position = rows.position();
            if tx.blocking_send(Message::Chunk(chunk)).is_err() {
                return Ok(());
            }
            chunk = new_chunk();
        }
    }
    chunk.raw = rows.take_raw();
    chunk.position = rows.position();
    if !chunk.rows.is_empty() || !chunk.raw.is_empty() {
        let _ = tx.blocking_send(Message::Chunk(chunk));
    }
    Ok(())
}

fn finish_empty(
    format: FileFormat,
    tx: &tokio::sync::mpsc::Sender<Message>,
) -> Result<(), ImportError> {
    let _ = tx.blocking_send(Message::Start {
        format,
        columns: String::new(),
        device: None,
    });
    Ok(())
}

fn new_chunk() -> Chunk {
    Chunk {
        raw: Vec::new(),
        rows: Vec::with_capacity(CHUNK_ROWS),
        position: 0,
        first_line: 0,
        last_line: 0,
    }
}

/// One row into a punch. `file_zone` is the zone of the file's device when the file has one (then every row is
/// that device's and `None` is returned as the device); else the row's device column names it.
fn convert_row(
    mapping: &Mapping,
    cells: &[String],
    options: &ImportOptions,
    file_zone: Option<Tz>,
    zones: &HashMap<DeviceSn, Tz>,
    default_zone: Tz,
) -> Result<(Option<DeviceSn>, parse::Punch), String> {
    // The zone matters only for RFC 3339 times with an offset; the device must be known first.
    if let Some(zone) = file_zone {
        let (_, punch) = mapping.convert(cells, options.date_format.as_deref(), zone)?;
        return Ok((None, punch));
    }
    let device_cell = mapping
        .device
        .and_then(|c| cells.get(c))
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    let sn = match device_cell {
        Some(cell) => DeviceSn::parse(cell)
            .map_err(|e| format!("device {cell:?} is not a serial number: {e}"))?,
        None => return Err("no device in this row (give --device)".into()),
    };
    let zone = options
        .time_zone
        .or_else(|| zones.get(&sn).copied())
        .unwrap_or(default_zone);
    let (_, punch) = mapping.convert(cells, options.date_format.as_deref(), zone)?;
    Ok((Some(sn), punch))
}

/// Open the input as rows of the right format.
fn open(
    input: ImportInput,
    options: &ImportOptions,
) -> Result<(FileFormat, Box<dyn RowSource>), ImportError> {
    let io = |e: std::io::Error| ImportError::Io(e.to_string());
    let format = match options
        .format
        .or_else(|| FileFormat::from_name(&options.file_name))
    {
        Some(f) => f,
        None => {
            let mut head = vec![0u8; 4096];
            let n = match &input {
                ImportInput::Bytes(b) => {
                    let n = b.len().min(head.len());
                    head[..n].copy_from_slice(&b[..n]);
                    n
                }
                ImportInput::Path(p) => std::fs::File::open(p)
                    .and_then(|mut f| f.read(&mut head))
                    .map_err(io)?,
            };
            FileFormat::sniff(&head[..n])
        }
    };
    let reader: Box<dyn Read + Send> = match input {
        ImportInput::Path(p) => Box::new(
            std::fs::File::open(&p)
                .map_err(|e| ImportError::Io(format!("{}: {e}", p.display())))?,
        ),
        ImportInput::Bytes(b) => Box::new(std::io::Cursor::new(b)),
    };
    let rows: Box<dyn RowSource> = match format {
        FileFormat::Attlog => Box::new(AttlogRows::new(reader)),
        FileFormat::Csv => Box::new(CsvRows::new(reader)?),
        FileFormat::Xlsx => {
            let mut bytes = Vec::new();
            let mut reader = reader;
            reader.read_to_end(&mut bytes).map_err(io)?;
            Box::new(SheetRows::new(bytes)?)
        }
    };
    Ok((format, rows))
}

/// The SN in a USB export's file name, `<SN>_attlog.dat`. A bare number (`1_attlog.dat`) is the machine
/// number, not a serial: `--device` is needed then.
pub fn device_from_file_name(name: &str) -> Result<DeviceSn, ImportError> {
    let base = Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name);
    let lower = base.to_ascii_lowercase();
    let prefix = lower
        .find("_attlog")
        .map(|i| &base[..i])
        .filter(|p| !p.is_empty());
    match prefix {
        Some(p) if p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()) => {
            Err(ImportError::NoDevice(format!(
                "{base:?} names machine number {p}, not a serial number: give --device SN"
            )))
        }
        Some(p) => DeviceSn::parse(p).map_err(|e| {
            ImportError::NoDevice(format!(
                "{base:?}: {p:?} is not a serial number ({e}); give --device SN"
            ))
        }),
        None => Err(ImportError::NoDevice(format!(
            "{base:?} is not named <SN>_attlog.dat: give --device SN"
        ))),
    }
}

/// A progress bar on stderr for `total` bytes, or `None` when stderr is not a terminal.
pub fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}
