//! Reading import files into rows and rows into punches: no IO beyond the reader it is given, no store.
//!
//! A `RowSource` yields the rows of a file (tab-separated attlog lines, CSV records, spreadsheet rows) as text
//! cells; a `Mapping` says which cell holds what; `Mapping::convert` turns one row into a punch or a reason.

use std::io::{BufRead, Read};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use chrono_tz::Tz;

use super::{ImportError, MAX_PIN_LEN};

/// The rows of a file, in order, with their 1-based line (CSV, attlog) or row (spreadsheet) number.
pub(crate) trait RowSource: Send {
    /// Read the next row into `cells` (its strings are reused: a million-line file is not a million `Vec`s of
    /// `String`s) and return its line number; `None` at the end.
    fn read_row(&mut self, cells: &mut Vec<String>) -> Result<Option<usize>, ImportError>;
    /// The next row as a new vector, `None` at the end.
    fn next_row(&mut self) -> Result<Option<(usize, Vec<String>)>, ImportError> {
        let mut cells = Vec::new();
        Ok(self.read_row(&mut cells)?.map(|n| (n, cells)))
    }
    /// The file's bytes read since the last call (the raw journal of the rows read meanwhile).
    fn take_raw(&mut self) -> Vec<u8>;
    /// Bytes of the file consumed so far (for the progress bar).
    fn position(&self) -> u64;
}

/// A reader that keeps a copy of what it reads, so each chunk of rows is journaled with exactly the bytes it came
/// from: concatenated in journal order, the entries of one import are the file.
pub(crate) struct Tee<R> {
    inner: R,
    copy: Vec<u8>,
    position: u64,
}

impl<R: Read> Tee<R> {
    pub(crate) fn new(inner: R) -> Tee<R> {
        Tee {
            inner,
            copy: Vec::new(),
            position: 0,
        }
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.extend_from_slice(&buf[..n]);
        self.position += n as u64;
        Ok(n)
    }
}

/// Text of a cell or line: UTF-8 when it is valid UTF-8, else Windows-1252 (what Excel's "CSV" and old Windows
/// tools write). Decided per cell, so one odd cell does not garble the rest of the file.
pub(crate) fn decode(bytes: &[u8]) -> String {
    decode_cow(bytes).into_owned()
}

/// [`decode`] without a copy when the bytes are UTF-8 (the common case).
fn decode_cow(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => {
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
        }
    }
}

/// Put `parts` into `cells`, reusing the strings already there; `cells` ends with exactly the parts.
fn fill_cells<'a>(cells: &mut Vec<String>, parts: impl Iterator<Item = &'a str>) {
    let mut n = 0;
    for part in parts {
        match cells.get_mut(n) {
            Some(cell) => {
                cell.clear();
                cell.push_str(part);
            }
            None => cells.push(part.to_owned()),
        }
        n += 1;
    }
    cells.truncate(n);
}

/// Tab-separated attlog lines (a terminal's USB export).
pub(crate) struct AttlogRows<R> {
    reader: std::io::BufReader<Tee<R>>,
    line_no: usize,
    line: Vec<u8>,
}

impl<R: Read + Send> AttlogRows<R> {
    pub(crate) fn new(reader: R) -> AttlogRows<R> {
        AttlogRows {
            reader: std::io::BufReader::with_capacity(64 * 1024, Tee::new(reader)),
            line_no: 0,
            line: Vec::new(),
        }
    }
}

impl<R: Read + Send> RowSource for AttlogRows<R> {
    fn read_row(&mut self, cells: &mut Vec<String>) -> Result<Option<usize>, ImportError> {
        loop {
            self.line.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.line)
                .map_err(|e| ImportError::Io(e.to_string()))?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let decoded = decode_cow(&self.line);
            let mut text: &str = &decoded;
            if self.line_no == 1 {
                text = text.strip_prefix('\u{feff}').unwrap_or(text);
            }
            let text = text.trim_end_matches(['\r', '\n']);
            if text.trim().is_empty() {
                continue;
            }
            fill_cells(cells, text.split('\t'));
            return Ok(Some(self.line_no));
        }
    }

    fn take_raw(&mut self) -> Vec<u8> {
        // What the BufReader holds but has not handed out yet belongs to the next chunk.
        let buffered = self.reader.buffer().len();
        let tee = self.reader.get_mut();
        let keep = tee.copy.split_off(tee.copy.len() - buffered);
        std::mem::replace(&mut tee.copy, keep)
    }

    fn position(&self) -> u64 {
        self.reader.get_ref().position - self.reader.buffer().len() as u64
    }
}

/// CSV records (delimiter `,`, `;` or tab, found from the first line; a UTF-8 BOM is skipped).
pub(crate) struct CsvRows<R: Read> {
    reader: csv::Reader<Tee<std::io::BufReader<R>>>,
    record: csv::ByteRecord,
    first: bool,
    /// The file ends its lines with CRLF: the csv crate then reports every record after the first one line
    /// early (it counts the LF of the previous record's CRLF into the next record), corrected here.
    crlf: bool,
}

impl<R: Read + Send> CsvRows<R> {
    pub(crate) fn new(reader: R) -> Result<CsvRows<R>, ImportError> {
        let mut reader = std::io::BufReader::with_capacity(64 * 1024, reader);
        let head = reader
            .fill_buf()
            .map_err(|e| ImportError::Io(e.to_string()))?;
        let first_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
        let delimiter = guess_delimiter(first_line);
        let crlf = first_line.ends_with(b"\r");
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(Tee::new(reader));
        Ok(CsvRows {
            reader,
            record: csv::ByteRecord::new(),
            first: true,
            crlf,
        })
    }
}

/// The delimiter that occurs most often outside quotes in the first line (`,` when none does).
fn guess_delimiter(line: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let candidates = [b',', b';', b'\t'];
    let (best, n) = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
        .unwrap_or((0, &0));
    if *n == 0 {
        b','
    } else {
        candidates[best]
    }
}

impl<R: Read + Send> RowSource for CsvRows<R> {
    fn read_row(&mut self, cells: &mut Vec<String>) -> Result<Option<usize>, ImportError> {
        loop {
            let more = self
                .reader
                .read_byte_record(&mut self.record)
                .map_err(|e| ImportError::Io(format!("reading CSV: {e}")))?;
            if !more {
                return Ok(None);
            }
            let line_no = self
                .record
                .position()
                .map(|p| p.line() as usize)
                .unwrap_or(0)
                + usize::from(self.crlf && !self.first);
            cells.clear();
            cells.extend(self.record.iter().map(decode));
            if self.first {
                self.first = false;
                if let Some(cell) = cells.first_mut() {
                    if let Some(rest) = cell.strip_prefix('\u{feff}') {
                        *cell = rest.to_owned();
                    }
                }
            }
            if cells.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            return Ok(Some(line_no));
        }
    }

    fn take_raw(&mut self) -> Vec<u8> {
        // The csv reader buffers ahead; what it buffered belongs to the chunk journaled when it is handed out.
        std::mem::take(&mut self.reader.get_mut().copy)
    }

    fn position(&self) -> u64 {
        self.reader.get_ref().position
    }
}

/// Rows of the first non-empty sheet of a spreadsheet (XLSX, XLSM, XLS, ODS), read whole by calamine (the format
/// is a zip of XML; a sheet holds at most 1,048,576 rows). The file's bytes are journaled with the first chunk.
pub(crate) struct SheetRows {
    rows: std::vec::IntoIter<(usize, Vec<String>)>,
    raw: Vec<u8>,
    size: u64,
    done: u64,
    total: usize,
}

impl SheetRows {
    pub(crate) fn new(bytes: Vec<u8>) -> Result<SheetRows, ImportError> {
        use calamine::Reader;
        let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes.as_slice()))
            .map_err(|e| ImportError::Spreadsheet(e.to_string()))?;
        let names = book.sheet_names();
        let mut rows = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let Some(range) = book.worksheet_range_at(i) else {
                continue;
            };
            let range =
                range.map_err(|e| ImportError::Spreadsheet(format!("sheet {name:?}: {e}")))?;
            let first_row = range.start().map(|(r, _)| r as usize).unwrap_or(0);
            for (i, row) in range.rows().enumerate() {
                let cells: Vec<String> = row.iter().map(cell_text).collect();
                if cells.iter().all(|c| c.trim().is_empty()) {
                    continue;
                }
                rows.push((first_row + i + 1, cells));
            }
            if !rows.is_empty() {
                break;
            }
        }
        let total = rows.len();
        Ok(SheetRows {
            rows: rows.into_iter(),
            size: bytes.len() as u64,
            raw: bytes,
            done: 0,
            total,
        })
    }
}

impl RowSource for SheetRows {
    fn read_row(&mut self, cells: &mut Vec<String>) -> Result<Option<usize>, ImportError> {
        Ok(self.rows.next().map(|(n, row)| {
            self.done += 1;
            *cells = row;
            n
        }))
    }

    fn take_raw(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.raw)
    }

    fn position(&self) -> u64 {
        if self.total == 0 {
            self.size
        } else {
            self.size * self.done / self.total as u64
        }
    }
}

/// A spreadsheet cell as text. Dates and times (Excel serial days) become `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD`
/// (whole days) or `HH:MM:SS` (a time of day, under one day), rounded to the second; whole numbers lose their
/// `.0` (a numeric PIN 1001 reads `1001`).
pub(crate) fn cell_text(cell: &calamine::Data) -> String {
    use calamine::Data;
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                f.to_string()
            }
        }
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => excel_serial_text(d.as_f64()),
        Data::Error(e) => format!("#ERROR {e}"),
    }
}

/// Excel serial days (day 0 = 1899-12-30, the 1900 leap-year bug included) as text.
fn excel_serial_text(serial: f64) -> String {
    let seconds = (serial * 86_400.0).round() as i64;
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default();
    let t = epoch + chrono::Duration::seconds(seconds);
    if seconds < 86_400 {
        t.time().format("%H:%M:%S").to_string()
    } else if seconds % 86_400 == 0 {
        t.date().format("%Y-%m-%d").to_string()
    } else {
        t.to_string()
    }
}

/// Date-and-time forms read without `--date-format` (in this order). A slashed or dotted date is read day
/// first (`02/11/2026` is 2 November) unless it carries AM/PM, the US form, which is read month first.
const DATE_TIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d %I:%M:%S %p",
    "%Y-%m-%d %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%Y%m%d%H%M%S",
];

/// Date forms for a date column of its own.
const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y"];

/// Time-of-day forms for a time column of its own.
const TIME_FORMATS: &[&str] = &["%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p"];

/// A terminal-local time from text: one of [`DATE_TIME_FORMATS`] (or `format`), or RFC 3339 with an offset,
/// which is converted to the wall time in `zone`. Fractions of a second are dropped.
pub(crate) fn parse_date_time(
    text: &str,
    format: Option<&str>,
    zone: Tz,
) -> Result<NaiveDateTime, String> {
    let text = text.trim();
    if let Some(format) = format {
        return NaiveDateTime::parse_from_str(text, format)
            .or_else(|_| {
                NaiveDate::parse_from_str(text, format).map(|d| d.and_time(NaiveTime::MIN))
            })
            .map_err(|e| format!("time {text:?} does not match --date-format {format:?}: {e}"));
    }
    // `YYYY-MM-DD HH:MM:SS` (or with `T`), what terminals write: read digit by digit by the push parser's reader
    // (chrono's format-string parse was 2,820 of the 8,990 instructions of reading an attlog line, BENCHMARKS.md
    // issue 9); anything it declines takes the general path.
    if let Some(t) = zk_push::attlog::fixed_width_time(text.as_bytes()) {
        return Ok(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&zone).naive_local());
    }
    let trimmed = text.split('.').next().unwrap_or(text);
    for f in DATE_TIME_FORMATS {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, f)
            .or_else(|_| NaiveDateTime::parse_from_str(trimmed, f))
        {
            return Ok(t);
        }
    }
    Err(format!(
        "time {text:?} is not a date and time punchd reads (2026-11-02 08:01:00, 02/11/2026 08:01, \
         11/02/2026 08:01 AM, …; give --date-format)"
    ))
}

/// A date and a time of day from two cells.
pub(crate) fn parse_date_and_time(
    date: &str,
    time: &str,
    format: Option<&str>,
    zone: Tz,
) -> Result<NaiveDateTime, String> {
    let (date, time) = (date.trim(), time.trim());
    if format.is_some() {
        return parse_date_time(&format!("{date} {time}"), format, zone);
    }
    // A spreadsheet date cell may carry 00:00:00; a time cell may carry the 1899-12-30 date.
    let date_part = date.strip_suffix(" 00:00:00").unwrap_or(date);
    let time_part = time
        .rsplit(' ')
        .next()
        .filter(|_| time.contains(':') && time.len() > 10);
    let time_part = time_part.map_or(time, |t| {
        // "1899-12-30 08:01:00" → "08:01:00"; "08:01 AM" must stay whole.
        if time.starts_with("1899-12-") {
            t
        } else {
            time
        }
    });
    let d = DATE_FORMATS
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(date_part, f).ok())
        .ok_or_else(|| format!("date {date:?} is not a date punchd reads (2026-11-02, 02/11/2026, 02.11.2026; give --date-format)"))?;
    let t = TIME_FORMATS
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(time_part, f).ok())
        .ok_or_else(|| format!("time of day {time:?} is not HH:MM[:SS] or H:MM AM/PM"))?;
    Ok(d.and_time(t))
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Pin,
    Time,
    Date,
    State,
    Verify,
    WorkCode,
    Device,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Pin => "pin",
            Field::Time => "time",
            Field::Date => "date",
            Field::State => "state",
            Field::Verify => "verify",
            Field::WorkCode => "workcode",
            Field::Device => "device",
        }
    }

    fn parse(s: &str) -> Option<Field> {
        Some(match normal(s).as_str() {
            "pin" | "user" | "userid" => Field::Pin,
            "time" | "datetime" => Field::Time,
            "date" => Field::Date,
            "state" | "status" | "punchstate" => Field::State,
            "verify" | "verifymode" => Field::Verify,
            "workcode" => Field::WorkCode,
            "device" | "sn" => Field::Device,
            _ => return None,
        })
    }

    /// Header names recognised without `--columns` (compared lowercase, letters and digits only).
    fn from_header(cell: &str) -> Option<Field> {
        Some(match normal(cell).as_str() {
            "pin" | "userid" | "user" | "empcode" | "employeeid" | "employeecode"
            | "employeeno" | "empid" | "empno" | "acno" | "enrollnumber" | "enrollno"
            | "enrollid" | "badge" | "badgenumber" | "personnelid" | "staffid" | "staffno"
            | "id" | "no" | "cardno" | "userno" => Field::Pin,
            "time" | "datetime" | "timestamp" | "punchtime" | "checktime" | "clocktime"
            | "atttime" | "attendancetime" | "logtime" | "recordtime" | "dateandtime" => {
                Field::Time
            }
            "date" | "punchdate" | "attdate" | "logdate" | "checkdate" => Field::Date,
            "state" | "status" | "punchstate" | "type" | "inout" | "checktype" | "punchtype"
            | "attstate" | "event" => Field::State,
            "verify" | "verifymode" | "verifytype" | "verification" | "verifycode" => Field::Verify,
            "workcode" => Field::WorkCode,
            "device" | "sn" | "serial" | "serialnumber" | "devicesn" | "terminalsn"
            | "terminal" | "deviceserial" | "terminalserial" => Field::Device,
            _ => return None,
        })
    }
}

fn normal(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A column named on the command line: by header text or by 1-based number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnRef {
    /// The header cell's text (compared case-insensitively, letters and digits only).
    Name(String),
    /// 1-based column number.
    Number(usize),
}

/// `--columns pin=Emp No,time=Clock Time,state=3`: which column holds what. Keys: `pin`, `time` (date and time,
/// or the time of day when `date` is given too), `date`, `state`, `verify`, `workcode`, `device`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnSpec(pub(crate) Vec<(Field, ColumnRef)>);

impl std::str::FromStr for ColumnSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<ColumnSpec, String> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not key=column (e.g. pin=Emp No)"))?;
            let field = Field::parse(key).ok_or_else(|| {
                format!("{key:?} is not one of pin, time, date, state, verify, workcode, device")
            })?;
            let value = value.trim();
            let column = match value.parse::<usize>() {
                Ok(0) => return Err(format!("{key}=0: columns are numbered from 1")),
                Ok(n) => ColumnRef::Number(n),
                Err(_) => ColumnRef::Name(value.to_owned()),
            };
            out.push((field, column));
        }
        if !out.iter().any(|(f, _)| *f == Field::Pin) {
            return Err("--columns needs pin=…".into());
        }
        if !out
            .iter()
            .any(|(f, _)| matches!(f, Field::Time | Field::Date))
        {
            return Err("--columns needs time=… (or date=… and time=…)".into());
        }
        Ok(ColumnSpec(out))
    }
}

/// Which column (0-based) holds what.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Mapping {
    pub(crate) pin: usize,
    /// Date and time, or the time of day when `date` is set.
    pub(crate) time: Option<usize>,
    pub(crate) date: Option<usize>,
    pub(crate) state: Option<usize>,
    pub(crate) verify: Option<usize>,
    pub(crate) work_code: Option<usize>,
    pub(crate) device: Option<usize>,
    /// Cells from this column on are kept as `extra` (attlog's reserved columns).
    pub(crate) extra_from: Option<usize>,
    /// Header cell texts, for the description.
    pub(crate) header: Vec<String>,
}

impl Mapping {
    fn set(&mut self, field: Field, col: usize) {
        match field {
            Field::Pin => self.pin = col,
            Field::Time => self.time = Some(col),
            Field::Date => self.date = Some(col),
            Field::State => self.state = Some(col),
            Field::Verify => self.verify = Some(col),
            Field::WorkCode => self.work_code = Some(col),
            Field::Device => self.device = Some(col),
        }
    }

    /// The mapping in words: `pin=1 "User ID", time=2 "Punch Time", …` (1-based columns).
    pub(crate) fn describe(&self) -> String {
        let name = |c: usize| {
            self.header
                .get(c)
                .map(|h| format!("{} {h:?}", c + 1))
                .unwrap_or_else(|| (c + 1).to_string())
        };
        let mut parts = vec![format!("pin={}", name(self.pin))];
        for (field, col) in [
            (Field::Date, self.date),
            (Field::Time, self.time),
            (Field::State, self.state),
            (Field::Verify, self.verify),
            (Field::WorkCode, self.work_code),
            (Field::Device, self.device),
        ] {
            if let Some(c) = col {
                parts.push(format!("{}={}", field.name(), name(c)));
            }
        }
        if let Some(c) = self.extra_from {
            parts.push(format!("extra={}…", c + 1));
        }
        parts.join(", ")
    }

    /// Find the header among a file's first rows: the first row whose cells name a PIN column and a time (or
    /// date) column. `Ok(None)` when no row does.
    pub(crate) fn from_header(cells: &[String]) -> Option<Mapping> {
        let mut m = Mapping {
            pin: usize::MAX,
            header: cells.to_vec(),
            ..Mapping::default()
        };
        let mut seen_pin = false;
        for (i, cell) in cells.iter().enumerate() {
            let Some(field) = Field::from_header(cell) else {
                continue;
            };
            // The first column of a kind wins ("No." before "ID" would be odd but harmless).
            let taken = match field {
                Field::Pin => seen_pin,
                Field::Time => m.time.is_some(),
                Field::Date => m.date.is_some(),
                Field::State => m.state.is_some(),
                Field::Verify => m.verify.is_some(),
                Field::WorkCode => m.work_code.is_some(),
                Field::Device => m.device.is_some(),
            };
            if !taken {
                if field == Field::Pin {
                    seen_pin = true;
                }
                m.set(field, i);
            }
        }
        (seen_pin && (m.time.is_some() || m.date.is_some())).then_some(m)
    }

    /// A mapping from `--columns`; names are looked up in `header` (which must then be the header row).
    /// `Err` names the column not found.
    pub(crate) fn from_spec(spec: &ColumnSpec, header: &[String]) -> Result<Mapping, String> {
        let mut m = Mapping {
            header: header.to_vec(),
            ..Mapping::default()
        };
        for (field, column) in &spec.0 {
            let col = match column {
                ColumnRef::Number(n) => n - 1,
                ColumnRef::Name(name) => {
                    let want = normal(name);
                    header
                        .iter()
                        .position(|h| normal(h) == want)
                        .ok_or_else(|| format!("no column {name:?} in the header"))?
                }
            };
            m.set(*field, col);
        }
        Ok(m)
    }

    /// Turn a row into (device cell, punch). `Err` is the reason the row is bad.
    pub(crate) fn convert(
        &self,
        cells: &[String],
        date_format: Option<&str>,
        zone: Tz,
    ) -> Result<(Option<String>, Punch), String> {
        let cell = |c: usize| cells.get(c).map(|s| s.trim()).unwrap_or("");
        let pin = cell(self.pin);
        if pin.is_empty() {
            return Err("no PIN".into());
        }
        if pin.chars().count() > MAX_PIN_LEN || pin.chars().any(char::is_control) {
            return Err(format!("PIN {pin:?} is too long or has control characters"));
        }
        let punched_at = match (self.date, self.time) {
            (Some(d), Some(t)) => parse_date_and_time(cell(d), cell(t), date_format, zone)?,
            (None, Some(t)) => {
                if cell(t).is_empty() {
                    return Err("no time".into());
                }
                parse_date_time(cell(t), date_format, zone)?
            }
            (Some(d), None) => parse_date_time(cell(d), date_format, zone)?,
            (None, None) => return Err("no time column".into()),
        };
        let punch_state = match self.state.map(cell).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(parse_state(s)?),
        };
        let verify_mode = match self.verify.map(cell).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                s.parse::<u16>()
                    .map_err(|_| format!("verify mode {s:?} is not a number"))?,
            ),
        };
        let work_code = self
            .work_code
            .map(cell)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let device = self
            .device
            .map(cell)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let extra = self
            .extra_from
            .map(|from| {
                cells
                    .iter()
                    .skip(from)
                    .map(|c| c.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        Ok((
            device,
            Punch {
                pin: pin.to_owned(),
                punched_at,
                punch_state,
                verify_mode,
                work_code,
                extra,
            },
        ))
    }
}

/// A punch read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Punch {
    pub(crate) pin: String,
    pub(crate) punched_at: NaiveDateTime,
    pub(crate) punch_state: Option<u16>,
    pub(crate) verify_mode: Option<u16>,
    pub(crate) work_code: Option<String>,
    pub(crate) extra: Vec<String>,
}

/// A punch state from a number (kept as sent, as from terminals) or a word: `in`/`check-in`/`C/In` 0,
/// `out`/`check-out`/`C/Out` 1, `break out` 2, `break in` 3, `OT in`/`overtime in` 4, `OT out`/`overtime out` 5.
pub fn parse_state(s: &str) -> Result<u16, String> {
    if let Ok(n) = s.trim().parse::<u16>() {
        return Ok(n);
    }
    Ok(match normal(s).as_str() {
        "in" | "checkin" | "cin" | "clockin" | "entry" | "0" => 0,
        "out" | "checkout" | "cout" | "clockout" | "exit" => 1,
        "breakout" => 2,
        "breakin" => 3,
        "otin" | "overtimein" => 4,
        "otout" | "overtimeout" => 5,
        _ => {
            return Err(format!(
                "punch state {s:?} is not a number or one of in, out, break out, break in, OT in, OT out"
            ))
        }
    })
}

/// The two attlog layouts punchd reads (`<SN>_attlog.dat`, tab-separated, one punch per line; the PIN may be
/// right-aligned with spaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AttlogLayout {
    /// The push ATTLOG order (push.md §7.1), written by current TFT/SpeedFace firmware:
    /// `PIN, time, state, verify, work code, reserved…` (2 to 10 columns).
    Push,
    /// The older BW/iClock export with the machine number third:
    /// `PIN (space-padded), time, machine no, state, verify, work code` (exactly 6 columns).
    Machine,
}

impl AttlogLayout {
    /// Which layout a file has, from its first line: `Machine` when it has exactly 6 columns, the PIN is padded
    /// with spaces and the third column is a small machine number; `Push` otherwise.
    pub(crate) fn detect(first: &[String]) -> AttlogLayout {
        let padded = first.first().is_some_and(|p| p.starts_with(' '));
        let machine_no = first
            .get(2)
            .and_then(|c| c.trim().parse::<u16>().ok())
            .is_some_and(|n| (1..=255).contains(&n));
        if first.len() == 6 && padded && machine_no {
            AttlogLayout::Machine
        } else {
            AttlogLayout::Push
        }
    }

    /// The column mapping of the layout.
    pub(crate) fn mapping(self) -> Mapping {
        match self {
            AttlogLayout::Push => Mapping {
                pin: 0,
                time: Some(1),
                state: Some(2),
                verify: Some(3),
                work_code: Some(4),
                extra_from: Some(5),
                ..Mapping::default()
            },
            AttlogLayout::Machine => Mapping {
                pin: 0,
                time: Some(1),
                state: Some(3),
                verify: Some(4),
                work_code: Some(5),
                ..Mapping::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> Tz {
        chrono_tz::UTC
    }

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn common_date_forms_are_read() {
        for (text, want) in [
            ("2026-11-02 08:01:00", "2026-11-02 08:01:00"),
            ("2026-11-02T08:01", "2026-11-02 08:01:00"),
            ("2026/11/02 08:01:05", "2026-11-02 08:01:05"),
            ("02/11/2026 08:01", "2026-11-02 08:01:00"),
            ("11/02/2026 08:01 PM", "2026-11-02 20:01:00"),
            ("02.11.2026 08:01:09", "2026-11-02 08:01:09"),
            ("2026-11-02 08:01:00.250", "2026-11-02 08:01:00"),
        ] {
            assert_eq!(parse_date_time(text, None, utc()), Ok(at(want)), "{text}");
        }
        let istanbul: Tz = "Europe/Istanbul".parse().unwrap();
        assert_eq!(
            parse_date_time("2026-11-02T05:01:00Z", None, istanbul),
            Ok(at("2026-11-02 08:01:00"))
        );
        assert_eq!(
            parse_date_time("2.11.26 8h01", Some("%d.%m.%y %Hh%M"), utc()),
            Ok(at("2026-11-02 08:01:00"))
        );
        assert!(parse_date_time("yesterday", None, utc()).is_err());
        assert_eq!(
            parse_date_and_time("02/11/2026", "8:01 AM", None, utc()),
            Ok(at("2026-11-02 08:01:00"))
        );
        assert_eq!(
            parse_date_and_time("2026-11-02", "1899-12-30 17:30:00", None, utc()),
            Ok(at("2026-11-02 17:30:00"))
        );
    }

    #[test]
    fn the_quick_time_reader_agrees_with_chrono() {
        for text in [
            "2026-11-02 08:01:00",
            "2026-11-02T23:59:59",
            "2028-02-29 00:00:00",
            "0001-01-01 00:00:00",
            "2026-02-29 08:00:00",
            "2026-13-01 08:00:00",
            "2026-11-02 24:00:00",
            "2026-11-02 08:60:00",
            "2026-11-02 23:59:60",
            "2026-11-02 08:01:0x",
            "2026-11-02+08:01:00",
            "2026/11/02 08:01:00",
        ] {
            let chrono = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
                .ok();
            match zk_push::attlog::fixed_width_time(text.as_bytes()) {
                Some(t) => assert_eq!(Some(t), chrono, "{text}"),
                // Declined: the general path decides (a leap second, an impossible date, another form).
                None => assert!(
                    chrono.is_none() || text.ends_with(":60"),
                    "{text} declined but chrono reads {chrono:?}"
                ),
            }
            assert_eq!(
                parse_date_time(text, None, utc()).ok(),
                chrono.or_else(|| {
                    DATE_TIME_FORMATS
                        .iter()
                        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn reused_cells_hold_exactly_the_next_row() {
        let body = "1\t2026-11-02 08:00:00\t0\t1\t0\t0\n2\t2026-11-02 08:01:00\n";
        let mut rows = AttlogRows::new(body.as_bytes());
        let mut cells = Vec::new();
        assert_eq!(rows.read_row(&mut cells).unwrap(), Some(1));
        assert_eq!(cells, ["1", "2026-11-02 08:00:00", "0", "1", "0", "0"]);
        assert_eq!(rows.read_row(&mut cells).unwrap(), Some(2));
        assert_eq!(cells, ["2", "2026-11-02 08:01:00"]);
        assert_eq!(rows.read_row(&mut cells).unwrap(), None);
    }

    #[test]
    fn excel_serials_become_text() {
        assert_eq!(excel_serial_text(46_328.0), "2026-11-02");
        assert_eq!(
            excel_serial_text(46_328.334_027_777_8),
            "2026-11-02 08:01:00"
        );
        assert_eq!(excel_serial_text(0.75), "18:00:00");
    }

    #[test]
    fn headers_and_delimiters_are_found() {
        let header: Vec<String> = ["No.", "Name", "Date", "Time", "Status", "Device SN"]
            .map(String::from)
            .to_vec();
        let m = Mapping::from_header(&header).unwrap();
        assert_eq!(
            (m.pin, m.date, m.time, m.state, m.device),
            (0, Some(2), Some(3), Some(4), Some(5))
        );
        assert!(Mapping::from_header(&["Name".into(), "Dept".into()]).is_none());
        assert_eq!(guess_delimiter(b"a;b;\"c,d\""), b';');
        assert_eq!(guess_delimiter(b"a\tb\tc"), b'\t');
        assert_eq!(guess_delimiter(b"abc"), b',');
    }

    #[test]
    fn csv_line_numbers_count_lf_and_crlf_files_alike() {
        for body in [&b"a,b\n1,x\n2,\"y\"\n"[..], b"a,b\r\n1,x\r\n2,\"y\"\r\n"] {
            let mut rows = CsvRows::new(body).unwrap();
            let mut lines = Vec::new();
            while let Some((n, _)) = rows.next_row().unwrap() {
                lines.push(n);
            }
            assert_eq!(lines, [1, 2, 3], "{body:?}");
        }
    }

    #[test]
    fn windows_1252_cells_are_decoded() {
        assert_eq!(decode(b"Jos\xe9"), "José");
        assert_eq!(decode("José".as_bytes()), "José");
    }

    #[test]
    fn states_are_numbers_or_words() {
        assert_eq!(parse_state("1"), Ok(1));
        assert_eq!(parse_state("C/In"), Ok(0));
        assert_eq!(parse_state("Check-Out"), Ok(1));
        assert_eq!(parse_state("OT Out"), Ok(5));
        assert!(parse_state("lunch").is_err());
    }

    #[test]
    fn attlog_layouts_are_told_apart() {
        let machine: Vec<String> = ["     1001", "2026-11-02 08:01:00", "1", "0", "1", "0"]
            .map(String::from)
            .to_vec();
        assert_eq!(AttlogLayout::detect(&machine), AttlogLayout::Machine);
        let push: Vec<String> = ["1001", "2026-11-02 08:01:00", "0", "1", "0", "0", "0"]
            .map(String::from)
            .to_vec();
        assert_eq!(AttlogLayout::detect(&push), AttlogLayout::Push);
    }

    #[test]
    fn attlog_chunks_journal_exactly_the_file() {
        let body = b"1\t2026-11-02 08:00:00\t0\t1\n2\t2026-11-02 08:01:00\t0\t1\n\n3\t2026-11-02 08:02:00\n";
        let mut rows = AttlogRows::new(&body[..]);
        let mut raw = Vec::new();
        let (n, cells) = rows.next_row().unwrap().unwrap();
        assert_eq!((n, cells.len()), (1, 4));
        raw.extend(rows.take_raw());
        assert_eq!(raw, b"1\t2026-11-02 08:00:00\t0\t1\n");
        while rows.next_row().unwrap().is_some() {}
        raw.extend(rows.take_raw());
        assert_eq!(raw, body);
    }
}
