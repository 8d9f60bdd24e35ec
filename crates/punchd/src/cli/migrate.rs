//! `punchd migrate --from punchd.db --to postgres://…`: move an installation from SQLite to PostgreSQL.
//!
//! Generic over the schema, so a table added by a later issue moves without code here: every table of the SQLite
//! file is copied into the table of the same name that the PostgreSQL migrations created, column by column, each
//! value converted to the target column's type (integers, booleans, text, bytes, JSON, site local dates and wall
//! times, UTC instants from unix milliseconds — or seconds for the columns in [`SECONDS_COLUMNS`]).
//!
//! - **Batches.** Rows are read in primary-key order and written with binary `COPY`, one transaction per batch.
//! - **Resumable.** Before copying, each table's target rows must be exactly the source's first rows in key
//!   order (same count, same checksum); the copy then continues after the last key held. A table copied in full
//!   is skipped. A table without a primary key is copied in one transaction, so it is either empty or complete.
//! - **Refuses other data.** A target table whose rows are not such a prefix (a target that already served
//!   terminals, or a different installation) stops the migration before anything is written.
//! - **Verified.** At the end every table is counted and checksummed on both sides and the result printed as a
//!   table; any difference is an error.
//!
//! The checksum of a table is the sum (mod 2^256) of the SHA-256 of each row's canonical encoding
//! ([`Cell::encode`]), so it does not depend on the order either database returns rows in, and it covers every
//! column, after conversion: equal checksums mean the target holds the same values as the source.
//!
//! The source is read in one transaction (one consistent snapshot) while holding its instance lock, so no
//! `punchd serve` can write to it meanwhile. Must not be used by anything but the CLI.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use clap::Args;
use futures_util::TryStreamExt;
use rusqlite::types::Value as SqlValue;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

use crate::format::{Format, Rows};

/// `punchd migrate` options.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The SQLite database to copy from (stop `punchd serve` on it first).
    #[arg(long, value_name = "PATH")]
    pub from: PathBuf,
    /// The PostgreSQL database to copy to, e.g. `postgres://punchd@db.example.com/punchd`. Its schema is created
    /// (or brought up to date) first.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Rows per batch; each batch is one transaction on the target.
    #[arg(long, default_value_t = 5000, value_name = "N")]
    pub batch: usize,
    /// Tables of the source not to copy (repeatable).
    #[arg(long, value_name = "TABLE")]
    pub skip: Vec<String>,
    /// Copy nothing: count and checksum both sides and print the comparison.
    #[arg(long)]
    pub verify_only: bool,
    /// Stop with an error after this many batches (to test resuming).
    #[arg(long, hide = true, value_name = "N")]
    pub stop_after_batches: Option<usize>,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Source tables that are never copied: SQLite's own, the storage probe (a scratch row the SQLite writer
/// inserts and deletes while storage fails), leases (claims of the one SQLite instance, which would only keep
/// the new instances waiting until they expire) and where SQLite's outbox pruning resumes (`outbox_prune`;
/// PostgreSQL deletes its outbox rows instead).
const NEVER_COPIED: &[&str] = &["storage_probe", "leases", "outbox_prune"];

/// Integer columns of the SQLite schema that hold unix **seconds** (the others hold milliseconds) and become
/// `timestamptz` on PostgreSQL: (table, column).
const SECONDS_COLUMNS: &[(&str, &str)] = &[("punches", "punched_at_utc"), ("sinks", "since_utc")];

/// Source views copied like tables, with the column that keys them (copied in that order, resumable): SQLite keeps
/// outbox events on their punch (`punches.outbox_at`, migrations/sqlite/0020_outbox_by_punch.sql) and shows them
/// as the `outbox` view, which becomes PostgreSQL's `outbox` table.
const COPIED_VIEWS: &[(&str, &str)] = &[("outbox", "id")];

/// Source columns with no counterpart on the target, left behind: what SQLite keeps elsewhere on PostgreSQL (the
/// outbox event on the punch row; a sink's count of passed events, which PostgreSQL counts when asked).
const SOURCE_ONLY_COLUMNS: &[(&str, &str)] = &[("punches", "outbox_at"), ("sinks", "passed")];

/// Source columns stored under another name on the target: (table, SQLite column, PostgreSQL column).
const RENAMED_COLUMNS: &[(&str, &str, &str)] = &[
    // A sink's cursor is an (xid, id) pair on PostgreSQL (store/postgres/outbox.rs); SQLite's is the id part.
    ("sinks", "cursor", "cursor_id"),
];

/// Statements run after every copy (idempotent) when their table was copied, filling target-only columns from
/// copied ones.
const AFTER_COPY: &[(&str, &str)] = &[
    (
        "sinks",
        // Copied events carry the xid of the batch that copied them, and batches go in id order, so a sink that
        // took every event up to its cursor id took every event up to the largest xid among them.
        "UPDATE sinks SET cursor_xid = COALESCE((SELECT MAX(o.xid) FROM outbox o WHERE o.id <= sinks.cursor_id), 0)",
    ),
    (
        "sinks",
        // A sink made without a start date gets a creation snapshot that sees no transaction ('1:1:'): every
        // copied event, written with its punch, stays its own, and an event a later backfill writes (another sink
        // added with an earlier start date) is not (store/postgres/outbox.rs, `OF_SINK`), as on SQLite. Left
        // alone when backfilled events already wait past its cursor (a migration resumed after PostgreSQL ran),
        // which the snapshot would hide.
        "UPDATE sinks SET created_snapshot = '1:1:' WHERE since_utc IS NULL AND created_snapshot IS NULL \
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.backfilled \
                           AND (o.xid, o.id) > (sinks.cursor_xid, sinks.cursor_id))",
    ),
];

/// Sequences not owned by one column, and the columns whose values they hand out: after the copy each is moved
/// past the largest value copied, so new rows never reuse one.
const SHARED_SEQUENCES: &[(&str, &[(&str, &str)])] = &[(
    "device_revision",
    &[("devices", "revision"), ("device_deletions", "revision")],
)];

/// `pg_try_advisory_lock` key held for the whole run: one migration into a database at a time.
const MIGRATE_LOCK: i64 = 0x7075_6e63_6864_6d67;

/// How a value is represented on the target, chosen from the target column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int2,
    Int4,
    Int8,
    Bool,
    Float4,
    Float8,
    Text,
    Bytes,
    Json,
    Jsonb,
    /// A date (SQLite: `YYYY-MM-DD`).
    Date,
    /// A wall time without zone (SQLite: `YYYY-MM-DD HH:MM:SS`).
    Local,
    /// A UTC instant (SQLite: unix milliseconds, or seconds when `seconds`).
    Instant {
        seconds: bool,
    },
}

impl Kind {
    fn of(ty: &Type, seconds: bool) -> Option<Kind> {
        Some(match *ty {
            Type::INT2 => Kind::Int2,
            Type::INT4 => Kind::Int4,
            Type::INT8 => Kind::Int8,
            Type::BOOL => Kind::Bool,
            Type::FLOAT4 => Kind::Float4,
            Type::FLOAT8 => Kind::Float8,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Kind::Text,
            Type::BYTEA => Kind::Bytes,
            Type::JSON => Kind::Json,
            Type::JSONB => Kind::Jsonb,
            Type::DATE => Kind::Date,
            Type::TIMESTAMP => Kind::Local,
            Type::TIMESTAMPTZ => Kind::Instant { seconds },
            _ => return None,
        })
    }

    /// Keys are compared on both sides: PostgreSQL must order them as SQLite does (bytes for text).
    fn order_expr(self, quoted: &str) -> String {
        match self {
            Kind::Text => format!("{quoted} COLLATE \"C\""),
            _ => quoted.to_owned(),
        }
    }
}

/// One value, as the target column holds it.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Bool(bool),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Json(serde_json::Value),
    Date(NaiveDate),
    Local(NaiveDateTime),
    Instant(DateTime<Utc>),
}

impl Cell {
    /// Convert a SQLite value for a target column of `kind`. Errors name what did not fit.
    fn from_sqlite(value: SqlValue, kind: Kind) -> Result<Cell, String> {
        use SqlValue as V;
        Ok(match (value, kind) {
            (V::Null, _) => Cell::Null,
            (V::Integer(v), Kind::Int2 | Kind::Int4 | Kind::Int8) => {
                let fits = match kind {
                    Kind::Int2 => i16::try_from(v).is_ok(),
                    Kind::Int4 => i32::try_from(v).is_ok(),
                    _ => true,
                };
                if !fits {
                    return Err(format!("{v} does not fit the target integer column"));
                }
                Cell::Int(v)
            }
            (V::Integer(v), Kind::Bool) => Cell::Bool(v != 0),
            (V::Integer(v), Kind::Float4 | Kind::Float8) => Cell::Float(v as f64),
            (V::Real(v), Kind::Float4 | Kind::Float8) => Cell::Float(v),
            (V::Integer(v), Kind::Text) => Cell::Text(v.to_string()),
            (V::Real(v), Kind::Text) => Cell::Text(v.to_string()),
            (V::Text(s), Kind::Text) => Cell::Text(s),
            (V::Blob(b), Kind::Bytes) => Cell::Bytes(b),
            (V::Text(s), Kind::Bytes) => Cell::Bytes(s.into_bytes()),
            (V::Text(s), Kind::Json | Kind::Jsonb) => Cell::Json(
                serde_json::from_str(&s).map_err(|e| format!("not JSON ({e}): {s:.80}"))?,
            ),
            (V::Integer(v), Kind::Json | Kind::Jsonb) => Cell::Json(v.into()),
            (V::Text(s), Kind::Date) => Cell::Date(
                NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                    .map_err(|e| format!("not a date ({e}): {s:.40}"))?,
            ),
            (V::Text(s), Kind::Local) => {
                Cell::Local(parse_local(&s).ok_or_else(|| format!("not a local time: {s:.40}"))?)
            }
            (V::Integer(v), Kind::Instant { seconds }) => {
                let t = if seconds {
                    Utc.timestamp_opt(v, 0).single()
                } else {
                    Utc.timestamp_millis_opt(v).single()
                };
                Cell::Instant(t.ok_or_else(|| format!("{v} is not a time"))?)
            }
            (v, kind) => {
                return Err(format!(
                    "a SQLite {} cannot go into {kind:?}",
                    v.data_type()
                ))
            }
        })
    }

    /// The SQLite form of a value (to compare keys in SQLite).
    fn to_sqlite(&self, kind: Kind) -> SqlValue {
        match self {
            Cell::Null => SqlValue::Null,
            Cell::Int(v) => SqlValue::Integer(*v),
            Cell::Bool(b) => SqlValue::Integer(i64::from(*b)),
            Cell::Float(v) => SqlValue::Real(*v),
            Cell::Text(s) => SqlValue::Text(s.clone()),
            Cell::Bytes(b) => SqlValue::Blob(b.clone()),
            Cell::Json(v) => SqlValue::Text(v.to_string()),
            Cell::Date(d) => SqlValue::Text(d.format("%Y-%m-%d").to_string()),
            Cell::Local(t) => SqlValue::Text(t.format("%Y-%m-%d %H:%M:%S").to_string()),
            Cell::Instant(t) => SqlValue::Integer(match kind {
                Kind::Instant { seconds: true } => t.timestamp(),
                _ => t.timestamp_millis(),
            }),
        }
    }

    /// Read column `i` of a PostgreSQL row.
    fn from_pg(row: &Row, i: usize, kind: Kind) -> Result<Cell, tokio_postgres::Error> {
        fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> Cell) -> Cell {
            v.map(f).unwrap_or(Cell::Null)
        }
        Ok(match kind {
            Kind::Int2 => or_null(row.try_get::<_, Option<i16>>(i)?, |v| Cell::Int(v.into())),
            Kind::Int4 => or_null(row.try_get::<_, Option<i32>>(i)?, |v| Cell::Int(v.into())),
            Kind::Int8 => or_null(row.try_get::<_, Option<i64>>(i)?, Cell::Int),
            Kind::Bool => or_null(row.try_get::<_, Option<bool>>(i)?, Cell::Bool),
            Kind::Float4 => or_null(row.try_get::<_, Option<f32>>(i)?, |v| Cell::Float(v.into())),
            Kind::Float8 => or_null(row.try_get::<_, Option<f64>>(i)?, Cell::Float),
            Kind::Text => or_null(row.try_get::<_, Option<String>>(i)?, Cell::Text),
            Kind::Bytes => or_null(row.try_get::<_, Option<Vec<u8>>>(i)?, Cell::Bytes),
            Kind::Json | Kind::Jsonb => {
                or_null(row.try_get::<_, Option<serde_json::Value>>(i)?, Cell::Json)
            }
            Kind::Date => or_null(row.try_get::<_, Option<NaiveDate>>(i)?, Cell::Date),
            Kind::Local => or_null(row.try_get::<_, Option<NaiveDateTime>>(i)?, Cell::Local),
            Kind::Instant { .. } => {
                or_null(row.try_get::<_, Option<DateTime<Utc>>>(i)?, Cell::Instant)
            }
        })
    }

    /// The value as a parameter of exactly the target column's type (binary `COPY` checks types strictly).
    fn param(&self, kind: Kind) -> Box<dyn ToSql + Sync + Send> {
        let int = |c: &Cell| match c {
            Cell::Int(v) => Some(*v),
            _ => None,
        };
        match kind {
            Kind::Int2 => Box::new(int(self).map(|v| v as i16)),
            Kind::Int4 => Box::new(int(self).map(|v| v as i32)),
            Kind::Int8 => Box::new(int(self)),
            Kind::Bool => Box::new(match self {
                Cell::Bool(b) => Some(*b),
                _ => None,
            }),
            Kind::Float4 | Kind::Float8 => {
                let v = match self {
                    Cell::Float(v) => Some(*v),
                    _ => None,
                };
                if kind == Kind::Float4 {
                    Box::new(v.map(|v| v as f32))
                } else {
                    Box::new(v)
                }
            }
            Kind::Text => Box::new(match self {
                Cell::Text(s) => Some(s.clone()),
                _ => None,
            }),
            Kind::Bytes => Box::new(match self {
                Cell::Bytes(b) => Some(b.clone()),
                _ => None,
            }),
            Kind::Json | Kind::Jsonb => Box::new(match self {
                Cell::Json(v) => Some(tokio_postgres::types::Json(v.clone())),
                _ => None,
            }),
            Kind::Date => Box::new(match self {
                Cell::Date(d) => Some(*d),
                _ => None,
            }),
            Kind::Local => Box::new(match self {
                Cell::Local(t) => Some(*t),
                _ => None,
            }),
            Kind::Instant { .. } => Box::new(match self {
                Cell::Instant(t) => Some(*t),
                _ => None,
            }),
        }
    }

    /// Append the canonical encoding: a tag byte, then a fixed-width or length-prefixed body. Integers of every
    /// width encode alike; JSON with its object keys sorted (PostgreSQL's `jsonb` reorders them); instants to the
    /// microsecond (PostgreSQL's precision).
    fn encode(&self, out: &mut Vec<u8>) {
        let text = |out: &mut Vec<u8>, tag: u8, b: &[u8]| {
            out.push(tag);
            out.extend_from_slice(&(b.len() as u64).to_be_bytes());
            out.extend_from_slice(b);
        };
        match self {
            Cell::Null => out.push(0),
            Cell::Int(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Cell::Bool(b) => out.extend_from_slice(&[2, u8::from(*b)]),
            Cell::Float(v) => {
                out.push(3);
                out.extend_from_slice(&v.to_bits().to_be_bytes());
            }
            Cell::Text(s) => text(out, 4, s.as_bytes()),
            Cell::Bytes(b) => text(out, 5, b),
            Cell::Json(v) => {
                let mut s = String::new();
                canonical_json(v, &mut s);
                text(out, 6, s.as_bytes());
            }
            Cell::Date(d) => text(out, 7, d.format("%Y-%m-%d").to_string().as_bytes()),
            Cell::Local(t) => {
                out.push(8);
                out.extend_from_slice(&t.and_utc().timestamp_micros().to_be_bytes());
            }
            Cell::Instant(t) => {
                out.push(9);
                out.extend_from_slice(&t.timestamp_micros().to_be_bytes());
            }
        }
    }
}

/// A terminal local time as SQLite holds it: `YYYY-MM-DD HH:MM:SS`, optionally with a fraction or a `T`.
fn parse_local(s: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

/// JSON text with object keys sorted, recursively.
fn canonical_json(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                out.push(':');
                canonical_json(&map[*k], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// An order-independent checksum of a set of rows: the sum, mod 2^256, of each row's SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Checksum([u64; 4]);

impl Checksum {
    fn add_row(&mut self, cells: &[Cell], buf: &mut Vec<u8>) {
        buf.clear();
        for c in cells {
            c.encode(buf);
        }
        let digest = Sha256::digest(&buf[..]);
        // Big-endian 256-bit addition, least significant word last.
        let mut carry = 0u64;
        for word in (0..4).rev() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&digest[word * 8..word * 8 + 8]);
            let (s1, c1) = self.0[word].overflowing_add(u64::from_be_bytes(w));
            let (s2, c2) = s1.overflowing_add(carry);
            self.0[word] = s2;
            carry = u64::from(c1) + u64::from(c2);
        }
    }

    fn hex(&self) -> String {
        self.0.iter().map(|w| format!("{w:016x}")).collect()
    }
}

/// Count and checksum of a set of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Tally {
    rows: u64,
    sum: Checksum,
}

/// A column: its name on the source, its name and type on the target.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    target: String,
    kind: Kind,
    ty: Type,
}

/// One table to copy: its columns (in the source's order) and its primary key (indexes into `columns`, empty
/// for a table without one).
#[derive(Debug, Clone)]
struct Table {
    name: String,
    columns: Vec<Column>,
    key: Vec<usize>,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Table {
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn target_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(&c.target))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_kinds(&self) -> Vec<Kind> {
        self.key.iter().map(|&i| self.columns[i].kind).collect()
    }

    /// `("a", "b")` of the key columns, for SQLite row-value comparisons.
    fn sqlite_key_tuple(&self) -> String {
        let cols: Vec<String> = self
            .key
            .iter()
            .map(|&i| quote(&self.columns[i].name))
            .collect();
        format!("({})", cols.join(", "))
    }

    fn sqlite_order(&self) -> String {
        if self.key.is_empty() {
            "rowid".into()
        } else {
            self.key
                .iter()
                .map(|&i| quote(&self.columns[i].name))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    fn placeholders(&self, first: usize) -> String {
        let p: Vec<String> = (0..self.key.len())
            .map(|i| format!("?{}", first + i))
            .collect();
        format!("({})", p.join(", "))
    }
}

/// What happened to one table, for the summary.
#[derive(Debug, Clone, Serialize)]
struct Outcome {
    table: String,
    source_rows: u64,
    target_rows: u64,
    copied_now: u64,
    checksum: String,
    state: String,
}

/// Read the SQLite side: rows converted to target cells.
struct Source {
    conn: rusqlite::Connection,
}

impl Source {
    fn rows(
        &self,
        table: &Table,
        filter: &str,
        limit: Option<usize>,
        params: &[SqlValue],
        mut each: impl FnMut(Vec<Cell>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let sql = format!(
            "SELECT {} FROM {} {filter} ORDER BY {}{limit}",
            table.column_list(),
            quote(&table.name),
            table.sqlite_order()
        );
        let mut st = self
            .conn
            .prepare(&sql)
            .with_context(|| format!("reading {} on the source", table.name))?;
        let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(table.columns.len());
            for (i, col) in table.columns.iter().enumerate() {
                let value: SqlValue = row.get(i)?;
                let cell = Cell::from_sqlite(value, col.kind).map_err(|e| {
                    anyhow!(
                        "{}.{} on the source: {e} (key {})",
                        table.name,
                        col.name,
                        key_text(table, row)
                    )
                })?;
                cells.push(cell);
            }
            each(cells)?;
        }
        Ok(())
    }

    /// Count and checksum of the rows with key `<= upto` (all rows when `None`).
    fn tally(&self, table: &Table, upto: Option<&[Cell]>) -> anyhow::Result<Tally> {
        let (filter, params) = match upto {
            Some(key) => (
                format!(
                    "WHERE {} <= {}",
                    table.sqlite_key_tuple(),
                    table.placeholders(1)
                ),
                sqlite_key(table, key),
            ),
            None => (String::new(), Vec::new()),
        };
        let mut tally = Tally::default();
        let mut buf = Vec::new();
        self.rows(table, &filter, None, &params, |cells| {
            tally.rows += 1;
            tally.sum.add_row(&cells, &mut buf);
            Ok(())
        })?;
        Ok(tally)
    }

    /// Up to `limit` rows with key `> after`, in key order.
    fn batch(
        &self,
        table: &Table,
        after: Option<&[Cell]>,
        limit: usize,
    ) -> anyhow::Result<Vec<Vec<Cell>>> {
        let (filter, params) = match after {
            Some(key) => (
                format!(
                    "WHERE {} > {}",
                    table.sqlite_key_tuple(),
                    table.placeholders(1)
                ),
                sqlite_key(table, key),
            ),
            None => (String::new(), Vec::new()),
        };
        let mut out = Vec::new();
        self.rows(table, &filter, Some(limit), &params, |cells| {
            out.push(cells);
            Ok(())
        })?;
        Ok(out)
    }
}

fn sqlite_key(table: &Table, key: &[Cell]) -> Vec<SqlValue> {
    key.iter()
        .zip(table.key_kinds())
        .map(|(c, k)| c.to_sqlite(k))
        .collect()
}

fn key_text(table: &Table, row: &rusqlite::Row<'_>) -> String {
    if table.key.is_empty() {
        return "none".into();
    }
    table
        .key
        .iter()
        .map(|&i| match row.get::<_, SqlValue>(i) {
            Ok(SqlValue::Integer(v)) => v.to_string(),
            Ok(SqlValue::Text(s)) => s,
            Ok(other) => format!("{other:?}"),
            Err(e) => e.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run `punchd migrate`.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if !args.from.exists() {
        bail!("no database at {}", args.from.display());
    }
    // No server may write the source meanwhile (and no second migration may read it).
    let _lock = crate::instance_lock::acquire(&args.from).with_context(|| {
        format!(
            "stop `punchd serve` on {} before migrating it",
            args.from.display()
        )
    })?;
    // Bring the source's schema up to date, so its tables are those the target's migrations mirror.
    drop(
        crate::store::sqlite::SqliteStore::open(&args.from, Default::default())
            .map_err(|e| anyhow!("opening {}: {e}", args.from.display()))?,
    );
    let conn = rusqlite::Connection::open_with_flags(
        &args.from,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", args.from.display()))?;
    // One read transaction: every phase sees the same snapshot.
    conn.execute_batch("BEGIN")?;
    let source = Source { conn };

    // The target's schema first (under its migration lock), then a plain connection for the copy.
    crate::store::postgres::PgStore::open(&args.to)
        .await
        .map_err(|e| anyhow!("opening the target database: {e}"))?;
    let mut client = connect(&args.to).await?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&MIGRATE_LOCK])
        .await?
        .get(0);
    if !locked {
        bail!("another `punchd migrate` is running into this database");
    }

    let tables = plan(&source, &client, &args.skip).await?;
    let mut outcomes = Vec::new();
    // Check every table before writing anything: a target with other data is refused untouched.
    let mut starts = Vec::new();
    if !args.verify_only {
        for table in &tables {
            starts.push(check_prefix(&source, &client, table).await?);
        }
    }
    starts.resize(tables.len(), None);
    let mut batches_left = args.stop_after_batches;
    for (table, start) in tables.iter().zip(starts) {
        let copied = if args.verify_only {
            0
        } else {
            copy_table(
                &source,
                &mut client,
                table,
                start,
                args.batch,
                &mut batches_left,
            )
            .await?
        };
        outcomes.push((table, copied));
    }
    if !args.verify_only {
        fix_sequences(&client, &tables).await?;
        for (table, sql) in AFTER_COPY {
            if tables.iter().any(|t| t.name == *table) {
                client
                    .batch_execute(sql)
                    .await
                    .with_context(|| format!("completing {table} after the copy"))?;
            }
        }
    }

    let mut summary = Vec::new();
    let mut bad = Vec::new();
    for (table, copied) in outcomes {
        let src = source.tally(table, None)?;
        let dst = target_tally(&client, table).await?;
        let state = if src != dst {
            bad.push(table.name.clone());
            "MISMATCH"
        } else if src.rows == 0 {
            "empty"
        } else if copied == 0 {
            if args.verify_only {
                "verified"
            } else {
                "already copied"
            }
        } else if copied < src.rows {
            "resumed"
        } else {
            "copied"
        };
        summary.push(Outcome {
            table: table.name.clone(),
            source_rows: src.rows,
            target_rows: dst.rows,
            copied_now: copied,
            checksum: if src.sum == dst.sum {
                src.sum.hex()[..16].to_owned()
            } else {
                format!("{} != {}", &src.sum.hex()[..16], &dst.sum.hex()[..16])
            },
            state: state.into(),
        });
    }
    let rows = Rows {
        header: vec!["table", "source", "target", "copied", "checksum", "state"],
        rows: summary
            .iter()
            .map(|o| {
                vec![
                    o.table.clone(),
                    o.source_rows.to_string(),
                    o.target_rows.to_string(),
                    o.copied_now.to_string(),
                    o.checksum.clone(),
                    o.state.clone(),
                ]
            })
            .collect(),
    };
    super::print_rows(&rows, args.format, serde_json::to_value(&summary)?)?;
    if !bad.is_empty() {
        bail!(
            "the target differs from the source in {}; see the table above",
            bad.join(", ")
        );
    }
    Ok(())
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to the target database")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "target database connection ended");
        }
    });
    Ok(client)
}

/// The tables to copy: every source table (but [`NEVER_COPIED`] and `skip`), with the target's column types.
async fn plan(source: &Source, client: &Client, skip: &[String]) -> anyhow::Result<Vec<Table>> {
    let names: Vec<String> = source
        .conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE (type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\')
               OR (type = 'view' AND name IN (SELECT value FROM json_each(?1)))
             ORDER BY name",
        )?
        .query_map(
            [serde_json::to_string(&COPIED_VIEWS.iter().map(|(v, _)| v).collect::<Vec<_>>())?],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let skip: HashSet<&str> = skip.iter().map(String::as_str).collect();
    let target_tables: HashSet<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut tables = Vec::new();
    for name in names {
        if NEVER_COPIED.contains(&name.as_str()) || skip.contains(name.as_str()) {
            continue;
        }
        // (name, pk position) in declaration order; pk 0 = not part of the key. A view has no key of its own: a
        // copied one is keyed by the column COPIED_VIEWS names.
        let mut source_columns: Vec<(String, i64)> = source
            .conn
            .prepare(&format!("PRAGMA table_info({})", quote(&name)))?
            .query_map([], |r| Ok((r.get(1)?, r.get(5)?)))?
            .collect::<rusqlite::Result<_>>()?;
        source_columns
            .retain(|(col, _)| !SOURCE_ONLY_COLUMNS.contains(&(name.as_str(), col.as_str())));
        if let Some((_, key)) = COPIED_VIEWS.iter().find(|(view, _)| *view == name) {
            for (col, pk) in &mut source_columns {
                *pk = i64::from(col == key);
            }
        }
        if !target_tables.contains(&name) {
            let n: i64 = source.conn.query_row(
                &format!("SELECT COUNT(*) FROM {}", quote(&name)),
                [],
                |r| r.get(0),
            )?;
            if n == 0 {
                continue;
            }
            bail!(
                "table {name} ({n} rows) has no counterpart on the target; \
                 upgrade punchd, or leave it behind with --skip {name}"
            );
        }
        let target_name = |col: &str| -> String {
            RENAMED_COLUMNS
                .iter()
                .find(|(t, c, _)| *t == name && *c == col)
                .map_or_else(|| col.to_owned(), |(_, _, to)| (*to).to_owned())
        };
        let list = source_columns
            .iter()
            .map(|(c, _)| quote(&target_name(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let statement = client
            .prepare(&format!("SELECT {list} FROM {} LIMIT 0", quote(&name)))
            .await
            .with_context(|| format!("table {name}: the target lacks a column the source has"))?;
        let mut columns = Vec::new();
        for ((col, _), target) in source_columns.iter().zip(statement.columns()) {
            let seconds = SECONDS_COLUMNS.contains(&(name.as_str(), col.as_str()));
            let kind = Kind::of(target.type_(), seconds).ok_or_else(|| {
                anyhow!(
                    "{name}.{col}: target type {} is not one migrate converts to",
                    target.type_()
                )
            })?;
            columns.push(Column {
                name: col.clone(),
                target: target_name(col),
                kind,
                ty: target.type_().clone(),
            });
        }
        let mut key: Vec<(i64, usize)> = source_columns
            .iter()
            .enumerate()
            .filter(|(_, (_, pk))| *pk > 0)
            .map(|(i, (_, pk))| (*pk, i))
            .collect();
        key.sort();
        let mut key: Vec<usize> = key.into_iter().map(|(_, i)| i).collect();
        // JSON does not order alike on both sides: such a table is copied whole.
        if key
            .iter()
            .any(|&i| matches!(columns[i].kind, Kind::Json | Kind::Jsonb))
        {
            key.clear();
        }
        tables.push(Table { name, columns, key });
    }
    Ok(tables)
}

/// The rows held on the target must be the source's first rows in key order. Returns the last key held (`None`
/// when the target table is empty). Errors when they are not (other data), naming the table.
async fn check_prefix(
    source: &Source,
    client: &Client,
    table: &Table,
) -> anyhow::Result<Option<Vec<Cell>>> {
    let target = target_tally(client, table).await?;
    if target.rows == 0 {
        return Ok(None);
    }
    let last = if table.key.is_empty() {
        None
    } else {
        Some(target_last_key(client, table).await?)
    };
    let held = source.tally(table, last.as_deref())?;
    if held != target {
        bail!(
            "the target's table {} holds {} rows that are not a copy of the source's (the source has {} rows \
             up to the target's last key); refusing to migrate into a database with other data",
            table.name,
            target.rows,
            held.rows
        );
    }
    match last {
        Some(key) => Ok(Some(key)),
        // A table without key is copied in one transaction: held in full already.
        None => Ok(Some(Vec::new())),
    }
}

async fn target_last_key(client: &Client, table: &Table) -> anyhow::Result<Vec<Cell>> {
    let cols: Vec<String> = table
        .key
        .iter()
        .map(|&i| quote(&table.columns[i].target))
        .collect();
    let order: Vec<String> = table
        .key
        .iter()
        .map(|&i| {
            format!(
                "{} DESC",
                table.columns[i]
                    .kind
                    .order_expr(&quote(&table.columns[i].target))
            )
        })
        .collect();
    let row = client
        .query_one(
            &format!(
                "SELECT {} FROM {} ORDER BY {} LIMIT 1",
                cols.join(", "),
                quote(&table.name),
                order.join(", ")
            ),
            &[],
        )
        .await?;
    table
        .key_kinds()
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Ok(Cell::from_pg(&row, i, kind)?))
        .collect()
}

async fn target_tally(client: &Client, table: &Table) -> anyhow::Result<Tally> {
    let stream = client
        .query_raw(
            &format!("SELECT {} FROM {}", table.target_list(), quote(&table.name)),
            Vec::<String>::new(),
        )
        .await
        .with_context(|| format!("reading {} on the target", table.name))?;
    let mut stream = std::pin::pin!(stream);
    let mut tally = Tally::default();
    let mut buf = Vec::new();
    let mut cells = Vec::with_capacity(table.columns.len());
    while let Some(row) = stream.try_next().await? {
        cells.clear();
        for (i, col) in table.columns.iter().enumerate() {
            cells.push(Cell::from_pg(&row, i, col.kind)?);
        }
        tally.rows += 1;
        tally.sum.add_row(&cells, &mut buf);
    }
    Ok(tally)
}

/// Copy the rows after `start` (all when `None`; nothing when `Some` of an empty key: a keyless table held in
/// full). Returns how many rows were copied.
async fn copy_table(
    source: &Source,
    client: &mut Client,
    table: &Table,
    start: Option<Vec<Cell>>,
    batch: usize,
    batches_left: &mut Option<usize>,
) -> anyhow::Result<u64> {
    if matches!(&start, Some(k) if k.is_empty()) {
        return Ok(0);
    }
    let types: Vec<Type> = table.columns.iter().map(|c| c.ty.clone()).collect();
    let copy_sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        quote(&table.name),
        table.target_list()
    );
    let mut after = start;
    let mut copied = 0u64;
    loop {
        // A table without key goes in one transaction (read all at once); others batch by key.
        let rows = if table.key.is_empty() {
            let mut all = Vec::new();
            source.rows(table, "", None, &[], |cells| {
                all.push(cells);
                Ok(())
            })?;
            all
        } else {
            source.batch(table, after.as_deref(), batch)?
        };
        if rows.is_empty() {
            break;
        }
        if *batches_left == Some(0) {
            bail!(
                "stopped after the requested number of batches (in table {}); run again to resume",
                table.name
            );
        }
        let n = rows.len();
        let tx = client.transaction().await?;
        let sink = tx.copy_in(&copy_sql).await?;
        let writer = BinaryCopyInWriter::new(sink, &types);
        let mut writer = std::pin::pin!(writer);
        for cells in &rows {
            let params: Vec<Box<dyn ToSql + Sync + Send>> = cells
                .iter()
                .zip(&table.columns)
                .map(|(c, col)| c.param(col.kind))
                .collect();
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            writer
                .as_mut()
                .write(&refs)
                .await
                .with_context(|| format!("copying {}", table.name))?;
        }
        writer
            .finish()
            .await
            .with_context(|| format!("copying {}", table.name))?;
        tx.commit().await?;
        copied += n as u64;
        if let Some(left) = batches_left.as_mut() {
            *left -= 1;
        }
        eprintln!("{}: {copied} rows copied", table.name);
        if table.key.is_empty() || n < batch {
            break;
        }
        let last = rows.last().map(|cells| {
            table
                .key
                .iter()
                .map(|&i| cells[i].clone())
                .collect::<Vec<_>>()
        });
        after = last;
    }
    Ok(copied)
}

/// Move every sequence past the largest value copied into its column(s), never back.
async fn fix_sequences(client: &Client, tables: &[Table]) -> anyhow::Result<()> {
    let mut targets: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for table in tables {
        for col in &table.columns {
            if !matches!(col.kind, Kind::Int2 | Kind::Int4 | Kind::Int8) {
                continue;
            }
            let seq: Option<String> = client
                .query_one(
                    "SELECT pg_get_serial_sequence($1, $2)",
                    &[&quote(&table.name), &col.target],
                )
                .await?
                .get(0);
            if let Some(seq) = seq {
                targets.push((seq, vec![(table.name.clone(), col.target.clone())]));
            }
        }
    }
    let copied: HashSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    for (seq, columns) in SHARED_SEQUENCES {
        let exists: Option<String> = client
            .query_one("SELECT to_regclass($1)::text", &[seq])
            .await?
            .get(0);
        let columns: Vec<(String, String)> = columns
            .iter()
            .filter(|(t, _)| copied.contains(t))
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect();
        if exists.is_some() && !columns.is_empty() {
            targets.push((seq.to_string(), columns));
        }
    }
    for (seq, columns) in targets {
        let maxes: Vec<String> = columns
            .iter()
            .map(|(t, c)| format!("(SELECT MAX({})::bigint FROM {})", quote(c), quote(t)))
            .collect();
        let max: Option<i64> = client
            .query_one(&format!("SELECT GREATEST({})", maxes.join(", ")), &[])
            .await?
            .get(0);
        if let Some(max) = max.filter(|m| *m >= 1) {
            client
                .execute(
                    "SELECT setval($1::text::regclass, GREATEST($2, COALESCE(pg_sequence_last_value($1::text::regclass), 1)))",
                    &[&seq, &max],
                )
                .await
                .with_context(|| format!("moving sequence {seq}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(rows: &[Vec<Cell>]) -> Checksum {
        let mut c = Checksum::default();
        let mut buf = Vec::new();
        for r in rows {
            c.add_row(r, &mut buf);
        }
        c
    }

    #[test]
    fn checksum_ignores_row_order_but_not_values() {
        let a = vec![Cell::Int(1), Cell::Text("x".into())];
        let b = vec![Cell::Int(2), Cell::Null];
        assert_eq!(sum(&[a.clone(), b.clone()]), sum(&[b.clone(), a.clone()]));
        assert_ne!(sum(&[a.clone(), b.clone()]), sum(&[a.clone(), a.clone()]));
        // Text "1" and the integer 1 differ; an empty text and NULL differ.
        assert_ne!(
            sum(&[vec![Cell::Int(1)]]),
            sum(&[vec![Cell::Text("1".into())]])
        );
        assert_ne!(
            sum(&[vec![Cell::Null]]),
            sum(&[vec![Cell::Text(String::new())]])
        );
        // Two rows never cancel out (a sum, not an exclusive or).
        assert_ne!(sum(&[a.clone(), a.clone()]), Checksum::default());
    }

    #[test]
    fn json_checksum_ignores_key_order() {
        let one: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":null}}"#).unwrap();
        let two: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(sum(&[vec![Cell::Json(one)]]), sum(&[vec![Cell::Json(two)]]));
    }

    #[test]
    fn sqlite_values_convert_to_target_kinds_and_back() {
        let ms = Cell::from_sqlite(
            SqlValue::Integer(1_790_000_000_123),
            Kind::Instant { seconds: false },
        )
        .unwrap();
        assert_eq!(
            ms,
            Cell::Instant(
                Utc.timestamp_millis_opt(1_790_000_000_123)
                    .single()
                    .unwrap()
            )
        );
        assert_eq!(
            ms.to_sqlite(Kind::Instant { seconds: false }),
            SqlValue::Integer(1_790_000_000_123)
        );
        let s = Cell::from_sqlite(
            SqlValue::Integer(1_790_000_000),
            Kind::Instant { seconds: true },
        )
        .unwrap();
        assert_eq!(
            s,
            Cell::Instant(Utc.timestamp_opt(1_790_000_000, 0).single().unwrap())
        );
        assert_eq!(
            s.to_sqlite(Kind::Instant { seconds: true }),
            SqlValue::Integer(1_790_000_000)
        );
        let local =
            Cell::from_sqlite(SqlValue::Text("2026-10-05 08:59:07".into()), Kind::Local).unwrap();
        assert_eq!(
            local.to_sqlite(Kind::Local),
            SqlValue::Text("2026-10-05 08:59:07".into())
        );
        let day = Cell::from_sqlite(SqlValue::Text("2026-10-05".into()), Kind::Date).unwrap();
        assert_eq!(
            day.to_sqlite(Kind::Date),
            SqlValue::Text("2026-10-05".into())
        );
        assert_eq!(
            Cell::from_sqlite(SqlValue::Integer(1), Kind::Bool).unwrap(),
            Cell::Bool(true)
        );
        assert_eq!(
            Cell::from_sqlite(SqlValue::Text("[1,\"a\"]".into()), Kind::Jsonb).unwrap(),
            Cell::Json(serde_json::json!([1, "a"]))
        );
        assert!(Cell::from_sqlite(SqlValue::Text("{not json".into()), Kind::Jsonb).is_err());
        assert!(Cell::from_sqlite(SqlValue::Integer(70_000), Kind::Int2).is_err());
        assert!(Cell::from_sqlite(SqlValue::Text("05/10/2026".into()), Kind::Date).is_err());
        assert!(Cell::from_sqlite(SqlValue::Blob(vec![1]), Kind::Int8).is_err());
    }
}
